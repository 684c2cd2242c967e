// SPDX-License-Identifier: Apache-2.0
// The listener end of a Win32 named pipe: a pool of instances with
// ConnectNamedPipe outstanding, kept topped up by a small internal thread so
// that clients connect whether or not anyone is blocked in Accept.

#ifndef CANAL_SRC_WIN32_LISTENER_H_
#define CANAL_SRC_WIN32_LISTENER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "canal/types.h"
#include "src/internal/backend.h"

namespace canal {
namespace internal {
namespace win32 {

class ListenerState;

class Win32Listener final : public ListenerImpl {
 public:
  static absl::StatusOr<std::unique_ptr<Win32Listener>> Create(
      absl::string_view name, const ListenerOptions& options);
  ~Win32Listener() override;

  bool is_open() const override;
  absl::string_view name() const override;
  const ListenerOptions& options() const override;
  bool shared_memory_offered() const override;
  absl::StatusOr<std::unique_ptr<ChannelImpl>> Accept(
      absl::Duration timeout) override;
  void Close() override;

 private:
  explicit Win32Listener(std::shared_ptr<ListenerState> state);

  std::shared_ptr<ListenerState> state_;
  absl::Mutex thread_mu_;
  std::thread thread_ ABSL_GUARDED_BY(thread_mu_);
};

}  // namespace win32
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_WIN32_LISTENER_H_
