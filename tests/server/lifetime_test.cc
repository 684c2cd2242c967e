// SPDX-License-Identifier: Apache-2.0
// Connection handles that outlive their Server. server.h allows every
// Connection method from any thread, also after the server is gone: Send
// then fails with FailedPrecondition, Close does nothing, and id(), Peer(),
// mode(), queued_bytes() and is_open() still answer. A handle must not
// reach into the destroyed server to do so; the asan leg turns such a read
// of freed memory into a failure, the tsan leg a race with the destruction.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "server_test_util.h"

namespace canal_test {
namespace {

struct Kept {
  std::mutex mu;
  std::condition_variable cv;
  canal::Connection conn;
  bool opened = false;
};

absl::StatusOr<std::unique_ptr<canal::Server>> StartKeepingServer(
    const std::string& name, Kept* kept) {
  canal::ServerHandlers handlers;
  handlers.on_open = [kept](canal::Connection& c) {
    std::lock_guard<std::mutex> lock(kept->mu);
    kept->conn = c;
    kept->opened = true;
    kept->cv.notify_all();
  };
  handlers.on_request = [](canal::Connection&, absl::string_view request)
      -> absl::StatusOr<std::string> { return std::string(request); };
  return StartServer(name, MessageServerOptions(), std::move(handlers));
}

TEST(ServerLifetimeTest, ConnectionAnswersAfterTheServerIsDestroyed) {
  const std::string name = UniqueName("srv-life");
  Kept kept;
  auto server = StartKeepingServer(name, &kept);
  CANAL_ASSERT_OK(server);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(client);
  absl::StatusOr<std::string> reply =
      client->Transact("hello", absl::Seconds(30));
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "hello");
  canal::Connection conn;
  {
    std::unique_lock<std::mutex> lock(kept.mu);
    ASSERT_TRUE(kept.cv.wait_for(lock, std::chrono::seconds(30),
                                 [&] { return kept.opened; }));
    conn = kept.conn;
  }
  const uint64_t id = conn.id();
  EXPECT_EQ(id, 1u);
  EXPECT_TRUE(conn.is_open());

  server->reset();

  EXPECT_FALSE(conn.is_open());
  EXPECT_EQ(conn.id(), id);
  EXPECT_EQ(conn.mode(), canal::PipeMode::kMessage);
  EXPECT_EQ(conn.Peer().process_id, CurrentProcessId());
  EXPECT_EQ(conn.queued_bytes(), 0u);
  absl::Status sent = conn.Send("too late");
  EXPECT_EQ(sent.code(), absl::StatusCode::kFailedPrecondition) << sent;
  EXPECT_TRUE(MessageNames(sent, "Server", name));
  conn.Close();  // A no-op, twice.
  conn.Close();
  EXPECT_FALSE(conn.is_open());
  // The copy held by the server's handler state is gone with it; ours is
  // the last one, and dropping it must not touch the server either.
  {
    std::lock_guard<std::mutex> lock(kept.mu);
    kept.conn = canal::Connection();
  }
  conn = canal::Connection();
  // The client sees the end of the stream.
  CANAL_EXPECT_CODE(client->ReadMessage(absl::Seconds(30)), kOutOfRange);
}

TEST(ServerLifetimeTest, CallsFromAnotherThreadWhileTheServerIsDestroyed) {
  const std::string name = UniqueName("srv-life-race");
  Kept kept;
  auto server = StartKeepingServer(name, &kept);
  CANAL_ASSERT_OK(server);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(client);
  canal::Connection conn;
  {
    std::unique_lock<std::mutex> lock(kept.mu);
    ASSERT_TRUE(kept.cv.wait_for(lock, std::chrono::seconds(30),
                                 [&] { return kept.opened; }));
    conn = kept.conn;
  }
  // Another thread keeps using its own copy of the handle before, during
  // and after the destruction.
  std::atomic<bool> destroyed{false};
  std::atomic<int> refused_after{0};
  std::thread user([conn, &destroyed, &refused_after]() mutable {
    int after = 0;
    while (after < 200) {
      const bool gone = destroyed.load();
      absl::Status s = conn.Send("ping");
      (void)conn.mode();
      (void)conn.queued_bytes();
      (void)conn.is_open();
      (void)conn.Peer();
      if (gone) {
        ++after;
        if (s.code() == absl::StatusCode::kFailedPrecondition) {
          refused_after.fetch_add(1);
        }
      }
    }
    conn.Close();
  });
  server->reset();
  destroyed.store(true);
  user.join();
  EXPECT_EQ(refused_after.load(), 200);
  EXPECT_FALSE(conn.is_open());
  EXPECT_EQ(conn.mode(), canal::PipeMode::kMessage);
  CANAL_EXPECT_CODE(conn.Send("late"), kFailedPrecondition);
}

}  // namespace
}  // namespace canal_test
