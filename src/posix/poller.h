// SPDX-License-Identifier: Apache-2.0
// Readiness notification for the POSIX server loop (server_loop.cc): epoll
// on Linux (poller_epoll.cc), poll(2) everywhere (poller_poll.cc). Both are
// level-triggered: an event repeats until the condition is handled. Only the
// loop thread calls them.

#ifndef CANAL_SRC_POSIX_POLLER_H_
#define CANAL_SRC_POSIX_POLLER_H_

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace canal {
namespace internal {
namespace posix {

struct PollEvent {
  void* tag = nullptr;
  bool readable = false;
  bool writable = false;
  bool error = false;  // Hang-up or error; reported even when not asked for.
};

class Poller {
 public:
  virtual ~Poller() = default;
  // `server_name` is for error messages.
  virtual absl::Status Init(absl::string_view server_name) = 0;
  // Starts watching `fd`; a failure (ResourceExhausted) as a status.
  virtual absl::Status Add(int fd, void* tag, bool read, bool write) = 0;
  virtual void Modify(int fd, void* tag, bool read, bool write) = 0;
  // Stops watching `fd` (before it is closed).
  virtual void Remove(int fd) = 0;
  // Waits up to `timeout_ms` (-1: no limit) and replaces `*events` with what
  // is ready (empty on timeout or EINTR).
  virtual void Wait(int timeout_ms, std::vector<PollEvent>* events) = 0;
};

std::unique_ptr<Poller> NewPollPoller();
#if defined(__linux__)
std::unique_ptr<Poller> NewEpollPoller();
#endif

}  // namespace posix
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_POSIX_POLLER_H_
