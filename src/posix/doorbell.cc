// SPDX-License-Identifier: Apache-2.0
// Doorbells of the shared-memory transport on POSIX: a shared futex on
// Linux; elsewhere short sleeps that re-check the word (see backend.h).
#include <time.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>
#include <memory>
#include <new>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "src/internal/backend.h"
#include "src/internal/errors.h"

namespace canal {
namespace internal {
namespace posix {
namespace {

timespec BoundedTimespec(absl::Duration timeout) {
  if (timeout < absl::ZeroDuration()) timeout = absl::ZeroDuration();
  // Long enough for any caller, short enough for every time_t.
  if (timeout > absl::Hours(24)) timeout = absl::Hours(24);
  return absl::ToTimespec(timeout);
}

class PosixDoorbell final : public DoorbellImpl {
 public:
  void Wait(const std::atomic<uint32_t>& word, uint32_t seen,
            absl::Duration timeout) override {
    if (word.load(std::memory_order_seq_cst) != seen) return;
#ifdef __linux__
    // FUTEX_WAIT, not FUTEX_WAIT_PRIVATE: the word is in memory mapped by
    // two processes. The kernel compares the word with `seen` under its
    // lock, so a Wake between our load and the sleep is never lost.
    timespec limit = BoundedTimespec(timeout);
    syscall(SYS_futex, const_cast<std::atomic<uint32_t>*>(&word), FUTEX_WAIT,
            seen, &limit, nullptr, 0);
#else
    // No wait on a shared address here: sleep a slice and let the caller
    // re-check.
    timespec slice =
        BoundedTimespec(std::min(timeout, absl::Microseconds(200)));
    nanosleep(&slice, nullptr);
#endif
  }

  void Wake(const std::atomic<uint32_t>& word) override {
#ifdef __linux__
    syscall(SYS_futex, const_cast<std::atomic<uint32_t>*>(&word), FUTEX_WAKE,
            INT_MAX, nullptr, nullptr, 0);
#else
    (void)word;
#endif
  }

  NativeHandle handle() const override { return kInvalidNativeHandle; }
};

}  // namespace
}  // namespace posix

size_t BackendUsableCpus() {
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return static_cast<size_t>(count);
  }
#endif
  const unsigned count = std::thread::hardware_concurrency();
  return count > 0 ? count : 1;
}

absl::StatusOr<std::unique_ptr<DoorbellImpl>> BackendCreateDoorbell(
    absl::string_view name) {
  std::unique_ptr<DoorbellImpl> doorbell(new (std::nothrow)
                                             posix::PosixDoorbell());
  if (!doorbell) return OutOfMemoryError("CreateDoorbell", name);
  return doorbell;
}

absl::StatusOr<std::unique_ptr<DoorbellImpl>> BackendOpenDoorbell(
    absl::string_view name, NativeHandle handle) {
  if (handle != kInvalidNativeHandle) {
    return MakeError(absl::StatusCode::kInvalidArgument, "OpenDoorbell", name,
                     "a POSIX doorbell has no handle");
  }
  return BackendCreateDoorbell(name);
}

}  // namespace internal
}  // namespace canal
