// SPDX-License-Identifier: Apache-2.0
// Shutdown while clients are mid-request: completed replies are delivered
// (also a large one still queued when Shutdown starts), the rest end with
// Cancelled, and nothing hangs.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server_test_util.h"

namespace canal_test {
namespace {

TEST(ServerShutdownTest, DeliversQueuedRepliesCancelsTheRest) {
  const std::string name = UniqueName("srv-shut");
  constexpr int kSlow = 10;
  constexpr int kFast = 10;
  constexpr size_t kBig = 8 << 20;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<canal::Connection> held;
  int slow_seen = 0;
  bool big_sent = false;
  int cancelled = 0;
  int other_close = 0;
  canal::ServerHandlers handlers;
  handlers.on_data = [&](canal::Connection& c, absl::string_view data) {
    if (data == "slow") {
      std::lock_guard<std::mutex> lock(mu);
      held.push_back(c);  // Mid-request: never answered.
      ++slow_seen;
      cv.notify_all();
    } else if (data == "big") {
      EXPECT_TRUE(c.Send(Pattern(kBig, 3)).ok());
      std::lock_guard<std::mutex> lock(mu);
      big_sent = true;
      cv.notify_all();
    } else {
      EXPECT_TRUE(c.Send(absl::StrCat(data, ":done")).ok());
    }
  };
  handlers.on_close = [&](canal::Connection&, const absl::Status& s) {
    std::lock_guard<std::mutex> lock(mu);
    if (s.code() == absl::StatusCode::kCancelled) {
      ++cancelled;
    } else {
      ++other_close;
    }
    cv.notify_all();
  };
  auto server = StartServer(name, MessageServerOptions(), std::move(handlers));
  CANAL_ASSERT_OK(server);

  std::vector<canal::Channel> slow, fast;
  for (int i = 0; i < kSlow; ++i) {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    CANAL_ASSERT_OK(ch->WriteMessage("slow"));
    slow.push_back(*std::move(ch));
  }
  for (int i = 0; i < kFast; ++i) {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    absl::StatusOr<std::string> r =
        ch->Transact(absl::StrCat("fast", i), absl::Seconds(30));
    CANAL_ASSERT_OK(r);
    EXPECT_EQ(*r, absl::StrCat("fast", i, ":done"));
    fast.push_back(*std::move(ch));
  }
  absl::StatusOr<canal::Channel> big = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(big);
  CANAL_ASSERT_OK(big->WriteMessage("big"));  // Not read yet.
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30),
                            [&] { return slow_seen == kSlow && big_sent; }));
  }

  Background shutdown([&] { (*server)->Shutdown(absl::Seconds(60)); });
  // Connections with nothing queued close at once with Cancelled; the big
  // reply is still being written.
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30),
                            [&] { return cancelled == kSlow + kFast; }));
  }
  absl::StatusOr<std::string> reply = big->ReadMessage(absl::Seconds(60));
  CANAL_ASSERT_OK(reply);
  EXPECT_TRUE(*reply == Pattern(kBig, 3));
  ASSERT_TRUE(shutdown.Finished(absl::Seconds(60)));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(cancelled, kSlow + kFast + 1);
    EXPECT_EQ(other_close, 0);
  }
  // The clients mid-request see the end of the stream, not a hang.
  for (canal::Channel& ch : slow) {
    absl::StatusOr<std::string> r = ch.ReadMessage(absl::Seconds(30));
    EXPECT_FALSE(r.ok());
    EXPECT_NE(r.status().code(), absl::StatusCode::kDeadlineExceeded)
        << r.status();
  }
  for (canal::Connection& c : held) {
    EXPECT_FALSE(c.is_open());
    CANAL_EXPECT_CODE(c.Send("late"), kFailedPrecondition);
  }
  // Idempotent, and the name is free again.
  (*server)->Shutdown(absl::Seconds(1));
  EXPECT_EQ((*server)->connection_count(), 0u);
  CANAL_EXPECT_CODE(canal::Channel::Connect(name), kNotFound);
}

TEST(ServerShutdownTest, GraceExpiresForAClientThatNeverReads) {
  const std::string name = UniqueName("srv-grace");
  std::mutex mu;
  std::condition_variable cv;
  bool replied = false;
  absl::Status closed_with;
  canal::ServerHandlers handlers;
  handlers.on_data = [&](canal::Connection& c, absl::string_view) {
    EXPECT_TRUE(c.Send(std::string(4 << 20, 'z')).ok());
    std::lock_guard<std::mutex> lock(mu);
    replied = true;
    cv.notify_all();
  };
  handlers.on_close = [&](canal::Connection&, const absl::Status& s) {
    std::lock_guard<std::mutex> lock(mu);
    closed_with = s;
  };
  auto server = StartServer(name, MessageServerOptions(), std::move(handlers));
  CANAL_ASSERT_OK(server);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  CANAL_ASSERT_OK(ch->WriteMessage("give me lots"));
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(
        cv.wait_for(lock, std::chrono::seconds(30), [&] { return replied; }));
  }
  const absl::Time start = absl::Now();
  Background shutdown([&] { (*server)->Shutdown(absl::Milliseconds(300)); });
  ASSERT_TRUE(shutdown.Finished(kHangGuard));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(closed_with.code(), absl::StatusCode::kCancelled) << closed_with;
}

TEST(ServerShutdownTest, ShutdownFromAHandlerAndDestructor) {
  const std::string name = UniqueName("srv-selfstop");
  canal::Server* raw = nullptr;
  std::atomic<int> closes{0};
  canal::ServerHandlers handlers;
  handlers.on_data = [&](canal::Connection&, absl::string_view) {
    raw->Shutdown(absl::Seconds(1));  // Starts it; does not wait.
  };
  handlers.on_close = [&](canal::Connection&, const absl::Status& s) {
    EXPECT_EQ(s.code(), absl::StatusCode::kCancelled) << s;
    closes.fetch_add(1);
  };
  auto server = StartServer(name, MessageServerOptions(), std::move(handlers));
  CANAL_ASSERT_OK(server);
  raw = server->get();
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  CANAL_ASSERT_OK(ch->WriteMessage("stop"));
  CANAL_EXPECT_CODE(ch->ReadMessage(absl::Seconds(30)), kOutOfRange);
  server->reset();  // Joins the loop.
  EXPECT_EQ(closes.load(), 1);
}

TEST(ServerShutdownTest, ShutdownFromTheAuthorizeCallback) {
  // The listener's authorize callback runs on the accept thread, which a
  // Shutdown there cannot wait for: it only starts the shutdown, and the
  // destructor later finishes it.
  const std::string name = UniqueName("srv-authstop");
  std::atomic<canal::Server*> raw{nullptr};
  absl::Notification called;
  canal::ServerOptions options = MessageServerOptions();
  options.listener.authorize = [&](const canal::PeerInfo&) -> absl::Status {
    raw.load()->Shutdown(absl::Seconds(1));
    if (!called.HasBeenNotified()) called.Notify();
    return absl::PermissionDeniedError("shutting down");
  };
  auto server = StartServer(name, options, canal::ServerHandlers());
  CANAL_ASSERT_OK(server);
  raw.store(server->get());
  Background client([&] {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    if (ch.ok()) {
      EXPECT_FALSE(ch->ReadMessage(absl::Seconds(30)).ok());
    }
  });
  ASSERT_TRUE(called.WaitForNotificationWithTimeout(kHangGuard));
  ASSERT_TRUE(client.Finished(absl::Seconds(60)));
  Background destroy([&] { server->reset(); });
  ASSERT_TRUE(destroy.Finished(kHangGuard));
  CANAL_EXPECT_CODE(canal::Channel::Connect(name), kNotFound);
}

}  // namespace
}  // namespace canal_test
