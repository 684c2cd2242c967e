// SPDX-License-Identifier: Apache-2.0
// canal::Listener: the server end of a named pipe.
//
//   canal::ListenerOptions options;
//   options.mode = canal::PipeMode::kMessage;
//   absl::StatusOr<canal::Listener> listener =
//       canal::Listener::Create("my-service", options);
//   if (!listener.ok()) return listener.status();
//   while (true) {
//     absl::StatusOr<canal::Channel> ch = listener->Accept();
//     if (!ch.ok()) break;
//     ...  // typically hand `*ch` to a thread
//   }
//
// Clients can connect as soon as `Create` returns, whether or not a thread is
// blocked in `Accept`: connections queue up, up to `max_instances`.

#ifndef CANAL_LISTENER_H_
#define CANAL_LISTENER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "canal/channel.h"
#include "canal/types.h"

namespace canal {

namespace internal {
class ListenerImpl;
}  // namespace internal

class Listener {
 public:
  // Starts listening on `name`. Fails with AlreadyExists if a live listener
  // holds the name (or something that is not a socket is at its path),
  // InvalidArgument for a malformed name or options, PermissionDenied if
  // the system refuses or, on POSIX, if another user's file or a link is
  // where canal keeps the name's lock file (see docs/security.md).
  static absl::StatusOr<Listener> Create(absl::string_view name,
                                         const ListenerOptions& options = {});

  // An invalid listener: `Accept` fails with FailedPrecondition.
  Listener();
  // Closes the listener (see `Close`). Safe while other threads are blocked
  // in `Accept`: they return Cancelled, and the destructor waits until each
  // has left `Accept` before it frees anything. A thread must not start a
  // call on a listener that is already being destroyed (as with any
  // object).
  ~Listener();
  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&& other) noexcept;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Whether the listener is listening.
  bool is_open() const;

  // Returns the next connected client. DeadlineExceeded after `timeout`
  // (peers refused by the access policy or by `authorize` are disconnected
  // and do not extend it), Cancelled if the listener is closed or destroyed
  // meanwhile.
  absl::StatusOr<Channel> Accept(
      absl::Duration timeout = absl::InfiniteDuration());

  // Stops listening and releases the name. Idempotent; blocked `Accept` calls
  // return Cancelled. Channels already accepted stay open.
  // Windows: clients get NotFound from now on, but the pipe (and so the
  // name) lives until those channels, and their clients' ends, are closed:
  // until then `Create` on the same name returns AlreadyExists.
  void Close();

  // The name given to `Create`, as given (portable names are
  // case-insensitive: "Svc" and "svc" are one listener).
  absl::string_view name() const;

  // The options in force.
  const ListenerOptions& options() const;

  // For the backends only.
  explicit Listener(std::unique_ptr<internal::ListenerImpl> impl);

 private:
  std::unique_ptr<internal::ListenerImpl> impl_;
};

}  // namespace canal

#endif  // CANAL_LISTENER_H_
