// SPDX-License-Identifier: Apache-2.0
// canal::Server and handle passing: the server hands no handles to its
// handlers, so a client's message with handles reaches them as its data,
// and none of the handles stays open in the server's process; data that
// could pass for a Windows handle envelope goes both ways unchanged.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "reliability/faults/faults_util.h"
#include "server_test_util.h"

namespace canal_test {
namespace {

// The first bytes of a Windows handle envelope (src/win32/envelope.h),
// written out here as a client could send them by accident.
const std::string& EnvelopeLookalike() {
  static const std::string* const kLookalike =
      new std::string(std::string("\0canal-handles\x01\x7e", 16) +
                      std::string(4, '\0') + "then data");
  return *kLookalike;
}

std::unique_ptr<canal::Server> StartEcho(const std::string& name,
                                         std::vector<std::string>* seen,
                                         std::mutex* mu) {
  canal::ServerOptions options;
  options.listener.mode = canal::PipeMode::kMessage;
  canal::ServerHandlers handlers;
  handlers.on_data = [seen, mu](canal::Connection& c, absl::string_view data) {
    {
      std::lock_guard<std::mutex> lock(*mu);
      seen->emplace_back(data);
    }
    absl::Status s = c.Send(data);
    EXPECT_TRUE(s.ok()) << s;
  };
  absl::StatusOr<std::unique_ptr<canal::Server>> server =
      StartServer(name, options, std::move(handlers));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

TEST(ServerHandlesTest, HandlesFromAClientAreDataToTheServerAndLeaveNothing) {
  const std::string name = UniqueName("srv-handles");
  std::mutex mu;
  std::vector<std::string> seen;
  auto server = StartEcho(name, &seen, &mu);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  const canal::NativeHandle handles[] = {pipe->read_end.native_handle(),
                                         pipe->write_end.native_handle()};

  auto round = [&](int i) {
    const std::string msg = absl::StrCat("with handles ", i);
    CANAL_ASSERT_OK(ch->WriteMessageWithHandles(msg, handles, kHangGuard));
    absl::StatusOr<std::string> echo = ch->ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(echo);
    EXPECT_EQ(*echo, msg);
  };
  // The first rounds set up what the process keeps for good (threads'
  // events, the loop's state), so the count starts after them.
  for (int i = 0; i < 5; ++i) round(i);
  const int64_t before = OpenHandleCount();
  constexpr int kRounds = 300;
  for (int i = 0; i < kRounds; ++i) round(i);
  const int64_t after = OpenHandleCount();
  // Each round sent two handles: left open, they would be 600 more.
  EXPECT_LE(after, before + 2) << "before " << before << ", after " << after;
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(), 5u + kRounds);
  EXPECT_EQ(seen.back(), absl::StrCat("with handles ", kRounds - 1));
}

TEST(ServerHandlesTest, DataThatLooksLikeAnEnvelopeGoesBothWaysUnchanged) {
  const std::string name = UniqueName("srv-lookalike");
  std::mutex mu;
  std::vector<std::string> seen;
  auto server = StartEcho(name, &seen, &mu);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  const std::string lookalike = EnvelopeLookalike();
  for (const std::string& msg :
       {lookalike, lookalike.substr(0, 16), lookalike.substr(0, 15),
        lookalike + lookalike}) {
    absl::StatusOr<std::string> echo = ch->Transact(msg, kHangGuard);
    CANAL_ASSERT_OK(echo);
    EXPECT_EQ(*echo, msg);
  }
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0], lookalike);
  EXPECT_EQ(seen[3], lookalike + lookalike);
}

}  // namespace
}  // namespace canal_test
