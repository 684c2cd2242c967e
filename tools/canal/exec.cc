// SPDX-License-Identifier: Apache-2.0
#include "tools/canal/exec.h"

#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

namespace canal_cli {
namespace {

// Errors that mean "the other side went away", which is how sessions end.
bool IsNormalEnd(const absl::Status& status) {
  return status.ok() || absl::IsCancelled(status) ||
         absl::IsUnavailable(status) || absl::IsOutOfRange(status);
}

std::string Describe(const canal::ExitStatus& status) {
  if (status.exited) return absl::StrCat("exited with code ", status.exit_code);
  return absl::StrCat("was ended by signal ", status.signal);
}

}  // namespace

void RunExecSession(canal::Channel& channel, int client,
                    const ExecContext& context) {
  const std::string who =
      absl::StrCat("canal serve ", context.pipe_name, ": client ", client);
  auto report = [&](absl::string_view what) {
    (void)context.err->Write(absl::StrCat(who, ": ", what, "\n"));
  };
  int64_t peer_pid = 0;
  if (absl::StatusOr<canal::PeerInfo> peer = channel.Peer(); peer.ok()) {
    peer_pid = peer->process_id;
  }
  canal::SubprocessOptions options;
  options.stdin_mode = canal::StdioMode::kPipe;
  options.stdout_mode = canal::StdioMode::kPipe;
  options.stderr_mode = canal::StdioMode::kInherit;
  options.environment = {{"CANAL_PIPE", context.pipe_name},
                         {"CANAL_PEER_PID", absl::StrCat(peer_pid)}};
  options.kill_on_destroy = true;
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start(context.argv, options);
  if (!child.ok()) {
    report(absl::StrCat("cannot start \"", context.argv[0],
                        "\": ", child.status().message()));
    return;
  }
  canal::Channel child_in = child->TakeStdin();
  canal::Channel child_out = child->TakeStdout();
  RelayOptions relay = context.relay;
  relay.client = client;

  absl::Status to_child_status;
  absl::Status from_child_status;
  absl::StatusOr<canal::ExitStatus> exit;
  {
    StopScope stop_scope(context.stop, [&] {
      channel.Close();
      child_in.Close();
      child_out.Close();
      (void)child->Kill();
    });
    std::thread to_child([&] {
      to_child_status = ChannelToLocal(
          channel, [&](absl::string_view data) { return child_in.Write(data); },
          relay);
      child_in.Close();  // the child sees the end of its input
    });
    from_child_status =
        LocalToChannel(ChannelReader(&child_out), channel, relay);
    // The child's output ended (the client then sees the end of the
    // stream), or the connection broke: then the child has nobody to talk
    // to and is ended.
    if (!from_child_status.ok()) (void)child->Kill();
    channel.Close();
    to_child.join();
    child_out.Close();
    exit = child->Wait();
  }
  if (!IsNormalEnd(from_child_status)) {
    report(absl::StrCat("relaying the output of \"", context.argv[0],
                        "\": ", from_child_status.message()));
  }
  if (!IsNormalEnd(to_child_status)) {
    report(absl::StrCat("relaying input to \"", context.argv[0],
                        "\": ", to_child_status.message()));
  }
  if (!exit.ok()) {
    report(absl::StrCat("waiting for \"", context.argv[0],
                        "\": ", exit.status().message()));
  } else if (context.verbose) {
    report(absl::StrCat("child ", child->pid(), " ", Describe(*exit)));
  }
}

}  // namespace canal_cli
