// SPDX-License-Identifier: Apache-2.0
// Exceptions thrown by handlers never leave the server's threads (which
// would end the process): each one closes only the connection it was
// handling, with Internal (ResourceExhausted for std::bad_alloc) in
// `on_close`, and the server keeps serving. An exception from `on_close`
// itself is ignored.

#include <condition_variable>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "server_test_util.h"

namespace canal_test {
namespace {

TEST(ServerExceptionsTest, ThrowingRequestHandlerClosesOnlyItsConnection) {
  const std::string name = UniqueName("srv-throw-req");
  CloseLog closes;
  canal::ServerHandlers handlers;
  handlers.on_request = [](canal::Connection&,
                           absl::string_view r) -> absl::StatusOr<std::string> {
    if (r == "throw") throw std::runtime_error("boom");
    if (r == "no memory") throw std::bad_alloc();
    return std::string(r);
  };
  handlers.on_close = [&](canal::Connection&, const absl::Status& s) {
    closes.Add(s);
    if (s.code() == absl::StatusCode::kOutOfRange) {
      throw std::logic_error("thrown from on_close");
    }
  };
  auto server = StartServer(name, MessageServerOptions(), std::move(handlers));
  CANAL_ASSERT_OK(server);

  absl::StatusOr<canal::Channel> thrower = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(thrower);
  CANAL_ASSERT_OK(thrower->WriteMessage("throw"));
  absl::Status s = closes.Next();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "on_request threw: boom")) << s;
  EXPECT_TRUE(MessageNames(s, "Server", name));
  CANAL_EXPECT_CODE(thrower->ReadMessage(absl::Seconds(30)), kOutOfRange);

  absl::StatusOr<canal::Channel> hungry = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(hungry);
  CANAL_ASSERT_OK(hungry->WriteMessage("no memory"));
  s = closes.Next();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "on_request")) << s;

  // Others are still served, and a throwing on_close (for this clean
  // close, OutOfRange) does not stop the server either.
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::string> reply = canal::Call(name, "fine", kHangGuard);
    CANAL_ASSERT_OK(reply);
    EXPECT_EQ(*reply, "fine");
    EXPECT_EQ(closes.Next().code(), absl::StatusCode::kOutOfRange);
  }
}

TEST(ServerExceptionsTest, ThrowingOpenAndDataHandlers) {
  const std::string name = UniqueName("srv-throw-data");
  CloseLog closes;
  canal::ServerHandlers handlers;
  int opens = 0;  // Loop thread only.
  handlers.on_open = [&](canal::Connection&) {
    if (++opens == 1) throw 42;  // Not even a std::exception.
  };
  handlers.on_data = [](canal::Connection& c, absl::string_view data) {
    if (data == "throw") throw std::runtime_error("bad data");
    (void)c.Send(data);
  };
  handlers.on_close = [&](canal::Connection&, const absl::Status& s) {
    closes.Add(s);
  };
  auto server = StartServer(name, MessageServerOptions(), std::move(handlers));
  CANAL_ASSERT_OK(server);

  absl::StatusOr<canal::Channel> first = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(first);
  absl::Status s = closes.Next();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "on_open threw")) << s;
  CANAL_EXPECT_CODE(first->ReadMessage(absl::Seconds(30)), kOutOfRange);

  absl::StatusOr<canal::Channel> second = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(second);
  absl::StatusOr<std::string> echo = second->Transact("echo", kHangGuard);
  CANAL_ASSERT_OK(echo);
  EXPECT_EQ(*echo, "echo");
  CANAL_ASSERT_OK(second->WriteMessage("throw"));
  s = closes.Next();
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "on_data threw: bad data")) << s;

  absl::StatusOr<std::string> reply = canal::Call(name, "still", kHangGuard);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "still");
}

}  // namespace
}  // namespace canal_test
