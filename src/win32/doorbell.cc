// SPDX-License-Identifier: Apache-2.0
// Doorbells of the shared-memory transport on Windows: an auto-reset event
// per doorbell word, because Windows cannot wait on an address shared
// between processes (WaitOnAddress works within one process only).
#include <windows.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "src/internal/backend.h"
#include "src/internal/errors.h"
#include "src/win32/error.h"
#include "src/win32/io.h"

namespace canal {
namespace internal {
namespace win32 {
namespace {

class Win32Doorbell final : public DoorbellImpl {
 public:
  explicit Win32Doorbell(ScopedHandle event) : event_(std::move(event)) {}

  void Wait(const std::atomic<uint32_t>& word, uint32_t seen,
            absl::Duration timeout) override {
    if (word.load(std::memory_order_seq_cst) != seen) return;
    // Rounded up, so that a short timeout still sleeps; capped below
    // INFINITE.
    int64_t ms = absl::ToInt64Milliseconds(timeout + absl::Microseconds(999));
    if (ms < 0) ms = 0;
    if (ms > 24 * 3600 * 1000) ms = 24 * 3600 * 1000;
    WaitForSingleObject(event_.get(), static_cast<DWORD>(ms));
  }

  void Wake(const std::atomic<uint32_t>&) override { SetEvent(event_.get()); }

  NativeHandle handle() const override { return event_.get(); }

 private:
  ScopedHandle event_;
};

absl::StatusOr<std::unique_ptr<DoorbellImpl>> Wrap(absl::string_view op,
                                                   absl::string_view name,
                                                   ScopedHandle event) {
  std::unique_ptr<DoorbellImpl> doorbell(new (std::nothrow)
                                             Win32Doorbell(std::move(event)));
  if (!doorbell) return OutOfMemoryError(op, name);
  return doorbell;
}

}  // namespace
}  // namespace win32

std::unique_ptr<PeerWatchImpl> BackendWatchPeer(NativeHandle pipe,
                                                std::function<void()> on_gone) {
  // A pipe handle cannot be waited on for its peer's end closing, so the
  // doorbells' sleepers wake in slices and look at the pipe themselves.
  (void)pipe;
  (void)on_gone;
  return nullptr;
}

bool BackendPeerWatchesFire() { return false; }  // There are none.

size_t BackendUsableCpus() {
  DWORD_PTR process = 0;
  DWORD_PTR system = 0;
  if (!GetProcessAffinityMask(GetCurrentProcess(), &process, &system)) {
    return 1;
  }
  size_t count = 0;
  for (; process != 0; process &= process - 1) ++count;
  return count > 0 ? count : 1;
}

absl::StatusOr<std::unique_ptr<DoorbellImpl>> BackendCreateDoorbell(
    absl::string_view name) {
  // Auto-reset: each wake lets one wait return, and a wake with nobody
  // waiting makes the next wait return at once, which the ring's protocol
  // treats as an early return.
  win32::ScopedHandle event(CreateEventW(nullptr, FALSE, FALSE, nullptr));
  if (!event.valid()) {
    return win32::Win32Status(GetLastError(), win32::ErrorContext::kGeneric,
                              "CreateDoorbell", name, "creating an event");
  }
  return win32::Wrap("CreateDoorbell", name, std::move(event));
}

absl::StatusOr<std::unique_ptr<DoorbellImpl>> BackendOpenDoorbell(
    absl::string_view name, NativeHandle handle) {
  win32::ScopedHandle event(handle);
  if (!event.valid()) {
    return MakeError(absl::StatusCode::kInvalidArgument, "OpenDoorbell", name,
                     "no event handle");
  }
  // ResetEvent fails on anything that is not an event with the right to
  // signal it, and a wait without SYNCHRONIZE fails at once (which would
  // turn every Wait into a busy loop), so both are checked here.
  if (!ResetEvent(event.get()) ||
      WaitForSingleObject(event.get(), 0) == WAIT_FAILED) {
    return MakeError(absl::StatusCode::kFailedPrecondition, "OpenDoorbell",
                     name,
                     "the peer's doorbell is not an event this side "
                     "can wait on and signal",
                     win32::DescribeWin32Error(GetLastError()));
  }
  return win32::Wrap("OpenDoorbell", name, std::move(event));
}

}  // namespace internal
}  // namespace canal
