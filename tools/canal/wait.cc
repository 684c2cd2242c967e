// SPDX-License-Identifier: Apache-2.0
// `canal wait NAME [--timeout DURATION] [--poll]`.

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "tools/canal/commands.h"
#include "tools/canal/output.h"

namespace canal_cli {

int WaitCommand(const WaitFlags& flags, const Io& io) {
  const absl::Time deadline = absl::Now() + flags.timeout;
  while (true) {
    const absl::Duration left =
        std::max(deadline - absl::Now(), absl::ZeroDuration());
    absl::Status status = canal::WaitForListener(flags.name, left);
    if (status.ok()) return kExitOk;
    if (!absl::IsNotFound(status) || !flags.poll) return Fail(io, status);
    if (left == absl::ZeroDuration()) {
      return Fail(io, absl::DeadlineExceededError(
                          absl::StrCat("canal wait \"", flags.name,
                                       "\": no listener appeared within ",
                                       absl::FormatDuration(flags.timeout))));
    }
    // No notification exists for "a name appeared": look again shortly.
    absl::SleepFor(std::min(left, absl::Milliseconds(10)));
  }
}

}  // namespace canal_cli
