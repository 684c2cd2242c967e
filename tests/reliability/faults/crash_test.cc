// SPDX-License-Identifier: Apache-2.0
// Peers that die: a client killed (SIGKILL / TerminateProcess) in the middle
// of writing a large message, and a listener process killed and replaced.
// Both run on both backends with tests/helper/canal_test_child
// ($CANAL_TEST_CHILD).

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace canal_test {
namespace {

// Reads one line from the child's stdout (bounded).
std::string ReadLine(canal::Channel& out) {
  std::string line;
  char c = 0;
  while (line.size() < 4096) {
    absl::StatusOr<canal::ReadResult> r =
        out.Read(absl::MakeSpan(&c, 1), absl::Seconds(20));
    if (!r.ok() || r->size == 0) break;
    if (c == '\n') break;
    line.push_back(c);
  }
  return line;
}

canal::SubprocessOptions ChildOptions() {
  canal::SubprocessOptions options;
  options.stdout_mode = canal::StdioMode::kPipe;
  options.kill_on_destroy = true;
  return options;
}

constexpr size_t kBigMessage = 32 * 1024 * 1024;

TEST(FaultsCrash, PeerKilledMidMessageGivesErrorNeverTorn) {
  const std::string name = UniqueName("kill-mid-msg");
  canal::ListenerOptions options = MessageOptions();
  options.max_message_size = 64 * 1024 * 1024;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);

  absl::StatusOr<canal::Subprocess> child = canal::Subprocess::Start(
      ChildArgv({"msg-write", name, absl::StrCat(kBigMessage)}),
      ChildOptions());
  CANAL_ASSERT_OK(child);
  absl::StatusOr<canal::Channel> server = listener->Accept(absl::Seconds(20));
  CANAL_ASSERT_OK(server);
  ASSERT_EQ(ReadLine(child->stdout_channel()), "writing");

  // The child is inside WriteMessage once the first bytes are queued; with
  // nobody reading, a 32 MiB message cannot complete (the pipe buffer is
  // 64 KiB), so the kill lands mid-message.
  // Only Peek can see that (the child's progress is in another process).
  const bool started = PollUntil(
      [&] {
        absl::StatusOr<canal::PeekResult> p = server->Peek();
        return p.ok() && p->available > 0;
      },
      absl::Seconds(10));
  EXPECT_TRUE(started) << "the child never started writing";

  const absl::Time killed = absl::Now();
  CANAL_ASSERT_OK(child->Kill());
  absl::StatusOr<std::string> message = server->ReadMessage(absl::Seconds(5));
  const absl::Duration took = absl::Now() - killed;
  ASSERT_FALSE(message.ok())
      << "got a " << message->size() << "-byte message from a killed writer";
  EXPECT_NE(message.status().code(), absl::StatusCode::kDeadlineExceeded)
      << message.status();
  // How soon is measured and printed, not asserted (a loaded machine may
  // run this process late); the read's own timeout is the hang guard.
  std::printf("peer killed mid-message: %s after %s\n",
              message.status().ToString().c_str(),
              absl::FormatDuration(took).c_str());
  // Never a torn message afterwards either.
  absl::StatusOr<std::string> again = server->ReadMessage(absl::Seconds(1));
  EXPECT_FALSE(again.ok());
  CANAL_EXPECT_OK(child->Wait(absl::Seconds(10)));
}

TEST(FaultsCrash, KilledListenerIsReplacedLiveOneNeverTakenOver) {
  const std::string name = UniqueName("listener-crash");
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start(ChildArgv({"listen", name}), ChildOptions());
  CANAL_ASSERT_OK(child);
  ASSERT_EQ(ReadLine(child->stdout_channel()), "ready");

  // While the child lives its name is never taken over.
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<canal::Listener> taken =
        canal::Listener::Create(name, MessageOptions());
    CANAL_ASSERT_CODE(taken, kAlreadyExists);
  }
  {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    EXPECT_EQ(ch->mode(), canal::PipeMode::kMessage);
  }
  CANAL_ASSERT_CODE(canal::Listener::Create(name, MessageOptions()),
                    kAlreadyExists);

  const absl::Time killed = absl::Now();
  CANAL_ASSERT_OK(child->Kill());
  // Once the process is gone (its exit is the signal), its name is free at
  // the first try.
  CANAL_ASSERT_OK(child->Wait(kHangGuard));
  absl::StatusOr<canal::Listener> restarted =
      canal::Listener::Create(name, MessageOptions());
  const absl::Duration took = absl::Now() - killed;
  CANAL_ASSERT_OK(restarted);
  std::printf("listener restarted after %s\n",
              absl::FormatDuration(took).c_str());

  // The restarted listener serves.
  Background serve([&] {
    absl::StatusOr<canal::Channel> ch = restarted->Accept(absl::Seconds(10));
    if (!ch.ok()) return;
    absl::StatusOr<std::string> req = ch->ReadMessage(absl::Seconds(10));
    if (req.ok()) (void)ch->WriteMessage("re:" + *req, absl::Seconds(10));
  });
  absl::StatusOr<std::string> reply =
      canal::Call(name, "hello", absl::Seconds(10));
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "re:hello");
  EXPECT_TRUE(serve.Finished(kHangGuard));
}

}  // namespace
}  // namespace canal_test
