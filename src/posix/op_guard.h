// SPDX-License-Identifier: Apache-2.0
// The close/cancel guard of the POSIX channels (PosixChannel, a socket, and
// PosixPipeChannel, a pipe or FIFO end): the descriptor shared by the
// operations that use it, the reader and writer roles, and Close() from any
// thread.
//
// OpState packs the closed flag, the two roles and the number of operations
// using the descriptor in one atomic word, so that taking and releasing a
// role is one compare-and-swap / fetch_sub without a lock (these run twice
// per Read or Write). Only a thread that finds its role taken sleeps, on
// roles_cv_ under mu_, at most until its deadline:
//  - it registers in role_waiters_ and then re-reads the word (both
//    seq_cst) before sleeping; a releaser changes the word and then reads
//    role_waiters_ (both seq_cst), so either the waiter sees the role free
//    or the releaser sees the waiter, and then notifies under mu_, which
//    the waiter holds until it is inside wait();
//  - the role hand-over orders the state a role's holder keeps without a
//    lock: the release RMW in EndOp is read by the acquiring CAS of the
//    next holder.
// The descriptor is closed exactly once, by whoever brings the count to zero
// with the closed flag set; Close() holds a count itself while it wakes the
// operations (shutdown() of a socket, a pipe's wake descriptor), so the
// number is never touched after it was closed.

#ifndef CANAL_SRC_POSIX_OP_GUARD_H_
#define CANAL_SRC_POSIX_OP_GUARD_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "src/internal/deadline.h"

namespace canal {
namespace internal {
namespace posix {

class OpState {
 public:
  enum Role { kNoRole = 0, kReader = 1, kWriter = 2 };

  // Owns `fd` (-1: none). `name` names the channel in error messages and
  // must outlive this object.
  OpState(int fd, absl::string_view name) : fd_(fd), name_(name) {}
  // Closes the descriptor if Close() did not (no operation may run).
  ~OpState();
  OpState(const OpState&) = delete;
  OpState& operator=(const OpState&) = delete;

  bool closed() const {
    return (word_.load(std::memory_order_acquire) & kClosedBit) != 0;
  }
  // Sets the closed flag and calls `wake` while the descriptor is still
  // open, then wakes the threads waiting for a role (they return
  // Cancelled). The descriptor is closed now if no operation uses it, else
  // by the last one to leave. False (and nothing done) if already closed.
  bool Close(absl::FunctionRef<void(int fd)> wake);

  // Cancelled: the channel was closed.
  absl::Status Cancelled(absl::string_view op) const;
  // DeadlineExceeded: "timed out <what>".
  absl::Status TimedOut(absl::string_view op, absl::string_view what) const;

 private:
  friend class OpGuard;
  static constexpr uint32_t kClosedBit = 1;
  static constexpr uint32_t kReadingBit = 2;
  static constexpr uint32_t kWritingBit = 4;
  static constexpr int kOpsShift = 3;
  static constexpr uint32_t kOneOp = 1u << kOpsShift;
  static constexpr uint32_t RoleBits(int roles) {
    return ((roles & kReader) ? kReadingBit : 0) |
           ((roles & kWriter) ? kWritingBit : 0);
  }
  void EndOp(int roles);

  // The descriptor; closed once the word is closed with no operation left.
  const int fd_;
  const absl::string_view name_;
  // kClosedBit | kReadingBit | kWritingBit | operations << kOpsShift.
  std::atomic<uint32_t> word_{0};
  // The sleeping side of role waits. std::mutex rather than absl::Mutex: an
  // absl::Mutex built without NDEBUG (as Debian ships it) runs deadlock
  // detection on every Lock.
  std::mutex mu_;
  // Signalled when a role is released (and someone waits) or on Close().
  std::condition_variable roles_cv_;
  std::atomic<int> role_waiters_{0};
};

// Registers an operation that uses the descriptor, so that Close() leaves
// closing it to the last operation out, and takes the reader and/or writer
// role, waiting for them no longer than the operation's deadline. On
// failure status() says why (Cancelled or DeadlineExceeded) and fd() is -1.
class OpGuard {
 public:
  OpGuard(OpState* state, absl::string_view op, int roles,
          const Deadline& deadline);
  // No role, never waits (Peek, Peer, native_handle).
  OpGuard(OpState* state, absl::string_view op)
      : OpGuard(state, op, OpState::kNoRole, Deadline(absl::ZeroDuration())) {}
  ~OpGuard() {
    if (fd_ >= 0) state_->EndOp(roles_);
  }
  OpGuard(const OpGuard&) = delete;
  OpGuard& operator=(const OpGuard&) = delete;
  int fd() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  const absl::Status& status() const { return status_; }

 private:
  OpState* state_;
  int roles_;
  int fd_ = -1;
  absl::Status status_;
};

}  // namespace posix
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_POSIX_OP_GUARD_H_
