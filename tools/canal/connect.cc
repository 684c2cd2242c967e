// SPDX-License-Identifier: Apache-2.0
// `canal connect NAME ...`: standard input to the pipe, the pipe to
// standard output, both at once.

#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "tools/canal/accounts.h"
#include "tools/canal/commands.h"
#include "tools/canal/dump.h"
#include "tools/canal/output.h"
#include "tools/canal/relay.h"

namespace canal_cli {
namespace {

// What the two relay threads tell the waiting command.
struct ConnectState {
  absl::Mutex mu;
  bool input_done ABSL_GUARDED_BY(mu) = false;  // end of input (or failure)
  bool input_ok ABSL_GUARDED_BY(mu) = false;    // ... and all of it was sent
  bool peer_done ABSL_GUARDED_BY(mu) = false;   // the listener finished
  bool peer_ok ABSL_GUARDED_BY(mu) = false;     // ... at the end of its stream
  bool stop_requested ABSL_GUARDED_BY(mu) = false;  // Ctrl-C
  absl::Time last_activity ABSL_GUARDED_BY(mu);  // data arrived / input ended

  // Whether the command is over: both directions are done, or one failed.
  bool Over() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return stop_requested || (peer_done && (input_done || !peer_ok)) ||
           (input_done && !input_ok);
  }
};

}  // namespace

int ConnectCommand(const ConnectFlags& flags, const Io& io, StopSource* stop) {
  absl::StatusOr<canal::ExpectedServer> expected =
      ExpectedServerFor(flags.expect_user);
  if (!expected.ok()) {
    return UsageError(io, "connect", expected.status().message());
  }
  canal::ConnectOptions options;
  options.timeout = flags.timeout;
  options.expected_server = *expected;
  absl::StatusOr<canal::Channel> ch =
      canal::Channel::Connect(flags.name, options);
  if (!ch.ok()) return Fail(io, ch.status());
  const bool message = ch->mode() == canal::PipeMode::kMessage;
  if (!message && (flags.message || flags.format != MessageFormat::kLines)) {
    return Fail(io, absl::FailedPreconditionError(absl::StrCat(
                        "canal connect \"", flags.name,
                        "\": the listener is in byte mode, not message mode")));
  }
  canal::Channel& channel = *ch;

  SyncWriter out(io.out);
  SyncWriter err(io.err);
  const Dumper dumper(flags.dump, &err);
  RelayOptions relay;
  relay.format = flags.format;
  relay.dumper = &dumper;

  ConnectState state;
  {
    absl::MutexLock lock(&state.mu);
    state.last_activity = absl::Now();
  }
  InputPump pump(io.read_input);

  absl::Status output_status;
  std::thread output([&] {
    absl::Status status = ChannelToLocal(
        channel,
        [&](absl::string_view data) {
          absl::Status s = out.Write(data);
          absl::MutexLock lock(&state.mu);
          state.last_activity = absl::Now();
          return s;
        },
        relay);
    absl::MutexLock lock(&state.mu);
    state.peer_done = true;
    state.peer_ok = status.ok();
    output_status = status;
  });
  absl::Mutex close_mu;  // FinishSending and Close, one at a time
  absl::Status input_status;
  std::thread input([&] {
    absl::Status status = LocalToChannel(pump.Reader(), channel, relay);
    if (status.ok()) {
      absl::MutexLock lock(&close_mu);
      FinishSending(channel);  // the listener sees the end and may reply
    }
    absl::MutexLock lock(&state.mu);
    state.input_done = true;
    state.input_ok = status.ok();
    state.last_activity = absl::Now();
    input_status = status;
  });

  {
    StopScope stop_scope(stop, [&state] {
      absl::MutexLock lock(&state.mu);
      state.stop_requested = true;
    });
    absl::MutexLock lock(&state.mu);
    while (!state.Over()) {
      if (state.input_done) {
        // Input has ended: the listener gets --linger since the last data
        // to finish.
        const absl::Time deadline = state.last_activity + flags.linger;
        if (absl::Now() >= deadline) break;
        state.mu.AwaitWithDeadline(
            absl::Condition(
                +[](ConnectState* s)
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) { return s->Over(); },
                &state),
            deadline);
      } else {
        state.mu.Await(absl::Condition(
            +[](ConnectState* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
              return s->Over() || s->input_done;
            },
            &state));
      }
    }
  }
  {
    absl::MutexLock lock(&close_mu);
    channel.Close();  // wakes the output thread and a blocked write
  }
  pump.Interrupt();  // wakes the input thread if it waits for input
  output.join();
  input.join();
  // The listener closing is the normal end; a broken channel is not.
  if (!output_status.ok() && !absl::IsCancelled(output_status)) {
    return Fail(io, output_status);
  }
  if (!input_status.ok() && !absl::IsCancelled(input_status) &&
      !absl::IsUnavailable(input_status)) {
    return Fail(io, input_status);
  }
  return kExitOk;
}

}  // namespace canal_cli
