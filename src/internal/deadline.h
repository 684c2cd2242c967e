// SPDX-License-Identifier: Apache-2.0
// A point in time derived from an absl::Duration timeout, so that a call
// that waits several times (connect, then read) keeps one overall budget.

#ifndef CANAL_SRC_INTERNAL_DEADLINE_H_
#define CANAL_SRC_INTERNAL_DEADLINE_H_

#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace canal {
namespace internal {

class Deadline {
 public:
  // Negative timeouts behave like zero (poll once).
  explicit Deadline(absl::Duration timeout)
      : infinite_(timeout == absl::InfiniteDuration()),
        when_(infinite_ ? absl::InfiniteFuture()
                        : absl::Now() + (timeout < absl::ZeroDuration()
                                             ? absl::ZeroDuration()
                                             : timeout)) {}

  bool infinite() const { return infinite_; }
  absl::Time when() const { return when_; }
  bool expired() const { return !infinite_ && absl::Now() >= when_; }

  // Time left, zero once expired, InfiniteDuration if infinite.
  absl::Duration remaining() const {
    if (infinite_) return absl::InfiniteDuration();
    absl::Duration left = when_ - absl::Now();
    return left < absl::ZeroDuration() ? absl::ZeroDuration() : left;
  }

  // Milliseconds left for poll(2)/WaitForSingleObject: -1 when infinite,
  // rounded up so that a wait never ends before the deadline, at most `cap`.
  int64_t remaining_ms(int64_t cap = 0x7fffffff) const {
    if (infinite_) return -1;
    int64_t ms =
        absl::ToInt64Milliseconds(remaining() + absl::Microseconds(999));
    return ms > cap ? cap : ms;
  }

 private:
  bool infinite_;
  absl::Time when_;
};

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_DEADLINE_H_
