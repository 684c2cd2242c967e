// SPDX-License-Identifier: Apache-2.0
#include "src/posix/op_guard.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "src/internal/errors.h"
#include "src/posix/io.h"

namespace canal {
namespace internal {
namespace posix {

OpState::~OpState() {
  if (!closed() && fd_ >= 0) CloseFd(fd_);
}

absl::Status OpState::Cancelled(absl::string_view op) const {
  return MakeError(absl::StatusCode::kCancelled, op, name_,
                   "the channel was closed");
}

absl::Status OpState::TimedOut(absl::string_view op,
                               absl::string_view what) const {
  return MakeError(absl::StatusCode::kDeadlineExceeded, op, name_,
                   absl::StrCat("timed out ", what));
}

OpGuard::OpGuard(OpState* state, absl::string_view op, int roles,
                 const Deadline& deadline)
    : state_(state), roles_(roles) {
  const uint32_t role_bits = OpState::RoleBits(roles);
  uint32_t s = state->word_.load(std::memory_order_acquire);
  while (true) {
    if ((s & OpState::kClosedBit) || state->fd_ < 0) {
      status_ = state->Cancelled(op);
      return;
    }
    if ((s & role_bits) == 0) {
      if (state->word_.compare_exchange_weak(
              s, (s | role_bits) + OpState::kOneOp, std::memory_order_acq_rel,
              std::memory_order_acquire)) {
        fd_ = state->fd_;
        return;
      }
      continue;  // `s` was reloaded.
    }
    // Held by another thread: sleep until it is released or we close.
    std::unique_lock<std::mutex> lock(state->mu_);
    state->role_waiters_.fetch_add(1, std::memory_order_seq_cst);
    auto free = [state, role_bits, &s] {
      s = state->word_.load(std::memory_order_seq_cst);
      return (s & OpState::kClosedBit) || (s & role_bits) == 0;
    };
    bool ready = true;
    if (deadline.infinite()) {
      state->roles_cv_.wait(lock, free);
    } else {
      ready = state->roles_cv_.wait_until(
          lock, absl::ToChronoTime(deadline.when()), free);
    }
    state->role_waiters_.fetch_sub(1, std::memory_order_seq_cst);
    if (!ready) {
      status_ = state->TimedOut(op,
                                "waiting for another thread's operation "
                                "on this channel to finish");
      return;
    }
    // Loop: take the role with a CAS (another thread may be faster).
  }
}

void OpState::EndOp(int roles) {
  const uint32_t role_bits = RoleBits(roles);
  // The role bits are set (we hold them), so subtracting clears them.
  const uint32_t after =
      word_.fetch_sub(role_bits + kOneOp, std::memory_order_seq_cst) -
      (role_bits + kOneOp);
  if (role_bits != 0 && role_waiters_.load(std::memory_order_seq_cst) > 0) {
    { std::lock_guard<std::mutex> lock(mu_); }
    roles_cv_.notify_all();
  }
  if ((after & kClosedBit) && (after >> kOpsShift) == 0) CloseFd(fd_);
}

bool OpState::Close(absl::FunctionRef<void(int fd)> wake) {
  // Sets the closed flag and counts ourselves as an operation, so that the
  // descriptor stays open while we wake the others.
  uint32_t s = word_.load(std::memory_order_acquire);
  do {
    if (s & kClosedBit) return false;
  } while (!word_.compare_exchange_weak(s, (s | kClosedBit) + kOneOp,
                                        std::memory_order_acq_rel,
                                        std::memory_order_acquire));
  if (fd_ >= 0) wake(fd_);
  { std::lock_guard<std::mutex> lock(mu_); }
  roles_cv_.notify_all();  // Role waiters return Cancelled.
  const uint32_t after =
      word_.fetch_sub(kOneOp, std::memory_order_acq_rel) - kOneOp;
  if ((after >> kOpsShift) == 0 && fd_ >= 0) CloseFd(fd_);
  return true;
}

}  // namespace posix
}  // namespace internal
}  // namespace canal
