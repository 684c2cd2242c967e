// SPDX-License-Identifier: Apache-2.0
// Message and byte mode through the server loop: whole messages (empty to
// 16 MiB), pipelined requests, large byte streams written in parts, and the
// handler contract (peer info, Send/Close errors, on_request errors).

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server_test_util.h"

namespace canal_test {
namespace {

std::unique_ptr<canal::Server> StartEcho(const std::string& name,
                                         canal::PipeMode mode, CloseLog* log,
                                         canal::ServerOptions options = {}) {
  options.listener.mode = mode;
  canal::ServerHandlers handlers;
  handlers.on_data = [](canal::Connection& c, absl::string_view data) {
    absl::Status s = c.Send(data);
    EXPECT_TRUE(s.ok()) << s;
  };
  handlers.on_close = [log](canal::Connection&, const absl::Status& s) {
    if (log) log->Add(s);
  };
  absl::StatusOr<std::unique_ptr<canal::Server>> server =
      StartServer(name, options, std::move(handlers));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

TEST(ServerModesTest, MessageModeKeepsBoundariesUpTo16MiB) {
  const std::string name = UniqueName("srv-msg");
  CloseLog log;
  auto server = StartEcho(name, canal::PipeMode::kMessage, &log);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  for (size_t size : {size_t{0}, size_t{1}, size_t{100}, size_t{65536},
                      size_t{1} << 20, size_t{16} << 20}) {
    const std::string msg = Pattern(size, static_cast<uint32_t>(size));
    absl::StatusOr<std::string> reply = ch->Transact(msg, absl::Seconds(60));
    CANAL_ASSERT_OK(reply);
    ASSERT_EQ(reply->size(), size);
    EXPECT_TRUE(*reply == msg) << "size " << size;
  }
  ch->Close();
  std::vector<absl::Status> closed = log.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].code(), absl::StatusCode::kOutOfRange) << closed[0];
}

TEST(ServerModesTest, PipelinedMessagesComeBackInOrder) {
  const std::string name = UniqueName("srv-pipe");
  auto server = StartEcho(name, canal::PipeMode::kMessage, nullptr);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  constexpr int kCount = 200;
  Background writer([&] {
    for (int i = 0; i < kCount; ++i) {
      CANAL_EXPECT_OK(ch->WriteMessage(
          absl::StrCat("m", i, std::string(i * 37, 'x')), absl::Seconds(30)));
    }
  });
  for (int i = 0; i < kCount; ++i) {
    absl::StatusOr<std::string> m = ch->ReadMessage(absl::Seconds(30));
    CANAL_ASSERT_OK(m);
    EXPECT_EQ(*m, absl::StrCat("m", i, std::string(i * 37, 'x')));
  }
  EXPECT_TRUE(writer.Finished(kHangGuard));
}

TEST(ServerModesTest, ByteModeStreamsLargeDataInParts) {
  const std::string name = UniqueName("srv-byte");
  canal::ServerOptions options;
  options.read_chunk_size = 4096;  // Many chunks, many partial writes.
  options.max_queued_bytes = 64 * 1024;
  auto server = StartEcho(name, canal::PipeMode::kByte, nullptr, options);
  ASSERT_NE(server, nullptr);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  const std::string data = Pattern(16 << 20, 7);
  Background writer(
      [&] { CANAL_EXPECT_OK(ch->Write(data, absl::Seconds(60))); });
  absl::StatusOr<std::string> back =
      ReadExactly(*ch, data.size(), absl::Seconds(60));
  CANAL_ASSERT_OK(back);
  EXPECT_TRUE(*back == data);
  EXPECT_TRUE(writer.Finished(kHangGuard));
}

TEST(ServerModesTest, HandlersSeePeerAndCanReplyLater) {
  const std::string name = UniqueName("srv-peer");
  std::mutex mu;
  std::condition_variable cv;
  canal::Connection saved;
  std::string saved_request;
  canal::ServerHandlers handlers;
  std::atomic<int64_t> peer_pid{0};
  handlers.on_open = [&](canal::Connection& c) {
    peer_pid = c.Peer().process_id;
    EXPECT_TRUE(c.is_open());
    EXPECT_GT(c.id(), 0u);
    EXPECT_EQ(c.mode(), canal::PipeMode::kMessage);
  };
  handlers.on_data = [&](canal::Connection& c, absl::string_view data) {
    std::lock_guard<std::mutex> lock(mu);
    saved = c;  // Reply later, from another thread.
    saved_request = std::string(data);
    cv.notify_all();
  };
  auto server = StartServer(name, MessageServerOptions(), std::move(handlers));
  CANAL_ASSERT_OK(server);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  CANAL_ASSERT_OK(ch->WriteMessage("later"));
  canal::Connection conn;
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30),
                            [&] { return saved.is_open(); }));
    conn = saved;
  }
  EXPECT_EQ(peer_pid.load(), CurrentProcessId());
  EXPECT_EQ(conn.Peer().process_id, CurrentProcessId());
  CANAL_ASSERT_OK(conn.Send("reply from another thread"));
  absl::StatusOr<std::string> reply = ch->ReadMessage(absl::Seconds(30));
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "reply from another thread");
  // Over the listener's message limit: InvalidArgument, nothing sent.
  canal::ServerOptions defaults;
  CANAL_EXPECT_CODE(
      conn.Send(std::string(defaults.listener.max_message_size + 1, 'x')),
      kInvalidArgument);
  // Close from this thread: the client sees the end, Send fails after.
  conn.Close();
  EXPECT_FALSE(conn.is_open());
  CANAL_EXPECT_CODE(conn.Send("x"), kFailedPrecondition);
  CANAL_EXPECT_CODE(ch->ReadMessage(absl::Seconds(30)), kOutOfRange);
  canal::Connection empty;
  CANAL_EXPECT_CODE(empty.Send("x"), kFailedPrecondition);
  EXPECT_EQ(empty.id(), 0u);
}

TEST(ServerModesTest, RequestErrorClosesThatConnectionOnly) {
  const std::string name = UniqueName("srv-err");
  CloseLog log;
  canal::ServerHandlers handlers;
  handlers.on_request =
      [](canal::Connection&,
         absl::string_view request) -> absl::StatusOr<std::string> {
    if (request == "bad") return absl::PermissionDeniedError("refused");
    return std::string(request);
  };
  handlers.on_close = [&](canal::Connection&, const absl::Status& s) {
    log.Add(s);
  };
  auto server = StartServer(name, MessageServerOptions(), std::move(handlers));
  CANAL_ASSERT_OK(server);
  absl::StatusOr<canal::Channel> good = canal::Channel::Connect(name);
  absl::StatusOr<canal::Channel> bad = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(good);
  CANAL_ASSERT_OK(bad);
  // The client sees its connection end (Transact reports OutOfRange on
  // POSIX, Unavailable from TransactNamedPipe on Windows).
  absl::StatusOr<std::string> refused = bad->Transact("bad", absl::Seconds(30));
  EXPECT_TRUE(refused.status().code() == absl::StatusCode::kOutOfRange ||
              refused.status().code() == absl::StatusCode::kUnavailable)
      << refused.status();
  std::vector<absl::Status> closed = log.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].code(), absl::StatusCode::kPermissionDenied) << closed[0];
  absl::StatusOr<std::string> reply = good->Transact("fine", absl::Seconds(30));
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "fine");
  // Calls through canal::Call work too.
  absl::StatusOr<std::string> called =
      canal::Call(name, "call", absl::Seconds(30));
  CANAL_ASSERT_OK(called);
  EXPECT_EQ(*called, "call");
}

TEST(ServerModesTest, ClientClosingWithRequestOutstandingEndsWithOutOfRange) {
  const std::string name = UniqueName("srv-gone");
  CloseLog log;
  std::mutex mu;
  std::condition_variable cv;
  canal::Connection held;
  canal::ServerHandlers handlers;
  handlers.on_data = [&](canal::Connection& c, absl::string_view) {
    std::lock_guard<std::mutex> lock(mu);
    held = c;  // Never answered.
    cv.notify_all();
  };
  handlers.on_close = [&](canal::Connection&, const absl::Status& s) {
    log.Add(s);
  };
  auto server = StartServer(name, MessageServerOptions(), std::move(handlers));
  CANAL_ASSERT_OK(server);
  {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    CANAL_ASSERT_OK(ch->WriteMessage("unanswered"));
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30),
                            [&] { return held.id() != 0; }));
  }
  std::vector<absl::Status> closed = log.WaitFor(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].code(), absl::StatusCode::kOutOfRange) << closed[0];
  CANAL_EXPECT_CODE(held.Send("too late"), kFailedPrecondition);
  // Still serving: the next client is accepted and read.
  uint64_t first_id = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    first_id = held.id();
  }
  absl::StatusOr<canal::Channel> next = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(next);
  CANAL_ASSERT_OK(next->WriteMessage("next"));
  std::unique_lock<std::mutex> lock(mu);
  EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(30),
                          [&] { return held.id() != first_id; }));
}

TEST(ServerModesTest, AuthorizeCallbackApplies) {
  const std::string name = UniqueName("srv-auth");
  std::atomic<int> asked{0};
  std::atomic<int> opened{0};
  canal::ServerOptions options = MessageServerOptions();
  options.listener.authorize = [&](const canal::PeerInfo&) {
    return asked.fetch_add(1) == 0 ? absl::PermissionDeniedError("first")
                                   : absl::OkStatus();
  };
  canal::ServerHandlers handlers;
  handlers.on_open = [&](canal::Connection&) { opened.fetch_add(1); };
  handlers.on_request = [](canal::Connection&,
                           absl::string_view r) -> absl::StatusOr<std::string> {
    return std::string(r);
  };
  auto server = StartServer(name, options, std::move(handlers));
  CANAL_ASSERT_OK(server);
  // The first peer is refused (disconnected), the second is served.
  absl::StatusOr<std::string> first =
      canal::Call(name, "one", absl::Seconds(30));
  EXPECT_FALSE(first.ok());
  absl::StatusOr<std::string> second =
      canal::Call(name, "two", absl::Seconds(30));
  CANAL_ASSERT_OK(second);
  EXPECT_EQ(*second, "two");
  EXPECT_EQ(opened.load(), 1);
}

TEST(ServerModesTest, StartRejectsBadOptions) {
  canal::ServerHandlers both;
  both.on_data = [](canal::Connection&, absl::string_view) {};
  both.on_request = [](canal::Connection&,
                       absl::string_view) -> absl::StatusOr<std::string> {
    return std::string();
  };
  CANAL_EXPECT_CODE(
      StartServer(UniqueName("srv-bad"), MessageServerOptions(), both),
      kInvalidArgument);
  canal::ServerHandlers request_only;
  request_only.on_request = both.on_request;
  CANAL_EXPECT_CODE(
      StartServer(UniqueName("srv-bad"), canal::ServerOptions(), request_only),
      kInvalidArgument);
  canal::ServerOptions no_threads;
  no_threads.threads = 0;
  CANAL_EXPECT_CODE(StartServer(UniqueName("srv-bad"), no_threads, {}),
                    kInvalidArgument);
  const std::string name = UniqueName("srv-held");
  auto first = StartServer(name, canal::ServerOptions(), {});
  CANAL_ASSERT_OK(first);
  CANAL_EXPECT_CODE(StartServer(name, canal::ServerOptions(), {}),
                    kAlreadyExists);
}

TEST(ServerModesTest, SeveralLoopThreads) {
  const std::string name = UniqueName("srv-threads");
  canal::ServerOptions options = MessageServerOptions();
  options.threads = 4;
  canal::ServerHandlers handlers;
  handlers.on_request = [](canal::Connection& c,
                           absl::string_view r) -> absl::StatusOr<std::string> {
    return absl::StrCat(r, "@", c.id());
  };
  auto server = StartServer(name, options, std::move(handlers));
  CANAL_ASSERT_OK(server);
  std::vector<canal::Channel> channels;
  for (int i = 0; i < 16; ++i) {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    channels.push_back(*std::move(ch));
  }
  for (int round = 0; round < 10; ++round) {
    for (auto& ch : channels) {
      absl::StatusOr<std::string> r = ch.Transact("x", absl::Seconds(30));
      CANAL_ASSERT_OK(r);
      EXPECT_EQ(r->substr(0, 2), "x@");
    }
  }
  EXPECT_EQ((*server)->connection_count(), 16u);
}

}  // namespace
}  // namespace canal_test
