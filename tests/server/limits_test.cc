// SPDX-License-Identifier: Apache-2.0
// ServerOptions::max_connections and idle_timeout. At the cap the server
// stops accepting and new clients wait until a connection ends; clients
// that hold a connection without moving a byte are closed after the idle
// timeout (DeadlineExceeded), so many idle clients cannot keep a new one
// out for long, while an active client is never closed.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server_test_util.h"

namespace canal_test {
namespace {

// What the handlers saw, for the assertions.
struct Tracker {
  std::mutex mu;
  std::condition_variable cv;
  int open = 0;
  int max_open = 0;
  int opened = 0;
  std::vector<absl::Status> closes;

  canal::ServerHandlers Handlers() {
    canal::ServerHandlers handlers;
    handlers.on_open = [this](canal::Connection&) {
      std::lock_guard<std::mutex> lock(mu);
      ++opened;
      max_open = std::max(max_open, ++open);
      cv.notify_all();
    };
    handlers.on_close = [this](canal::Connection&, const absl::Status& s) {
      std::lock_guard<std::mutex> lock(mu);
      --open;
      closes.push_back(s);
      cv.notify_all();
    };
    handlers.on_request = [](canal::Connection&, absl::string_view r)
        -> absl::StatusOr<std::string> { return std::string(r); };
    return handlers;
  }

  bool WaitUntil(const std::function<bool()>& done) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(60), done);
  }

  // For failure messages.
  std::string Describe() {
    std::lock_guard<std::mutex> lock(mu);
    std::string out = absl::StrCat("opened ", opened, ", open ", open,
                                   ", max open ", max_open, ", closes:");
    for (const absl::Status& s : closes)
      absl::StrAppend(&out, " [", s.ToString(), "]");
    return out;
  }

  int CountCloses(absl::StatusCode code) {
    std::lock_guard<std::mutex> lock(mu);
    return static_cast<int>(std::count_if(
        closes.begin(), closes.end(),
        [code](const absl::Status& s) { return s.code() == code; }));
  }
};

canal::ConnectOptions Patient() {
  canal::ConnectOptions options;
  options.timeout = absl::Seconds(60);
  return options;
}

TEST(ServerLimitsTest, InvalidLimitsAreRefused) {
  const std::string name = UniqueName("srv-lim-bad");
  canal::ServerOptions options = MessageServerOptions();
  options.max_connections = -1;
  CANAL_EXPECT_CODE(StartServer(name, options, {}), kInvalidArgument);
  options.max_connections = 0;
  options.idle_timeout = absl::ZeroDuration();
  CANAL_EXPECT_CODE(StartServer(name, options, {}), kInvalidArgument);
  options.idle_timeout = -absl::Seconds(1);
  absl::StatusOr<std::unique_ptr<canal::Server>> refused =
      StartServer(name, options, {});
  CANAL_EXPECT_CODE(refused, kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "idle_timeout"))
      << refused.status();
  // The defaults and explicit limits start.
  options = MessageServerOptions();
  EXPECT_EQ(options.max_connections, 0);
  EXPECT_EQ(options.idle_timeout, absl::Minutes(1));
  options.max_connections = 1;
  options.idle_timeout = absl::InfiniteDuration();
  CANAL_EXPECT_OK(StartServer(name, options, {}));
}

TEST(ServerLimitsTest, AtTheCapNewClientsWaitUntilAConnectionEnds) {
  constexpr int kCap = 3;
  constexpr int kWaiting = 2;
  const std::string name = UniqueName("srv-lim-cap");
  Tracker tracker;
  canal::ServerOptions options = MessageServerOptions();
  options.max_connections = kCap;
  options.idle_timeout = absl::InfiniteDuration();
  auto server = StartServer(name, options, tracker.Handlers());
  CANAL_ASSERT_OK(server);

  std::vector<canal::Channel> held;
  for (int i = 0; i < kCap; ++i) {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    absl::StatusOr<std::string> r =
        ch->Transact(absl::StrCat("held ", i), kHangGuard);
    CANAL_ASSERT_OK(r);
    held.push_back(*std::move(ch));
  }
  // Clients beyond the cap: connected (the listener's pending instances on
  // Windows, the backlog on POSIX) and waiting for their reply.
  std::mutex mu;
  std::condition_variable cv;
  int connected = 0;
  std::vector<absl::StatusOr<std::string>> replies(
      kWaiting, absl::UnknownError("not run"));
  std::vector<std::unique_ptr<Background>> waiters;
  for (int i = 0; i < kWaiting; ++i) {
    waiters.push_back(std::make_unique<Background>([&, i] {
      absl::StatusOr<canal::Channel> ch =
          canal::Channel::Connect(name, Patient());
      {
        std::lock_guard<std::mutex> lock(mu);
        ++connected;
        cv.notify_all();
      }
      if (!ch.ok()) {
        replies[i] = ch.status();
        return;
      }
      replies[i] = ch->Transact(absl::StrCat("waiting ", i), absl::Seconds(60));
    }));
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60),
                            [&] { return connected == kWaiting; }));
  }
  EXPECT_EQ((*server)->connection_count(), static_cast<size_t>(kCap));
  // Each connection that ends lets one waiting client in (and that client
  // may finish and let the next one in before this thread looks: >=).
  held[0].Close();
  ASSERT_TRUE(tracker.WaitUntil([&] { return tracker.opened >= kCap + 1; }))
      << tracker.Describe() << "; connection_count "
      << (*server)->connection_count() << "; " << replies[0].status() << "; "
      << replies[1].status();
  held[1].Close();
  for (auto& w : waiters) EXPECT_TRUE(w->Finished(absl::Seconds(60)));
  waiters.clear();
  for (int i = 0; i < kWaiting; ++i) {
    CANAL_ASSERT_OK(replies[i]);
    EXPECT_EQ(*replies[i], absl::StrCat("waiting ", i));
  }
  std::lock_guard<std::mutex> lock(tracker.mu);
  EXPECT_EQ(tracker.max_open, kCap);
  EXPECT_EQ(tracker.opened, kCap + kWaiting);
}

TEST(ServerLimitsTest, ManyIdleClientsDoNotKeepANewOneOut) {
  constexpr int kCap = 4;
  constexpr int kIdle = 3 * kCap;
  const std::string name = UniqueName("srv-lim-idle");
  Tracker tracker;
  canal::ServerOptions options = MessageServerOptions();
  options.max_connections = kCap;
  options.idle_timeout = absl::Milliseconds(300);
  auto server = StartServer(name, options, tracker.Handlers());
  CANAL_ASSERT_OK(server);

  // Clients that connect and never send a byte, three times the cap.
  std::vector<canal::Channel> idle;
  for (int i = 0; i < kIdle; ++i) {
    absl::StatusOr<canal::Channel> ch =
        canal::Channel::Connect(name, Patient());
    CANAL_ASSERT_OK(ch);
    idle.push_back(*std::move(ch));
  }
  absl::StatusOr<std::string> reply =
      canal::Call(name, "let me in", absl::Seconds(60));
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "let me in");
  ASSERT_TRUE(tracker.WaitUntil(
      [&] { return static_cast<int>(tracker.closes.size()) == kIdle + 1; }));
  EXPECT_EQ(tracker.CountCloses(absl::StatusCode::kDeadlineExceeded), kIdle);
  EXPECT_EQ(tracker.CountCloses(absl::StatusCode::kOutOfRange), 1);
  {
    std::lock_guard<std::mutex> lock(tracker.mu);
    EXPECT_LE(tracker.max_open, kCap);
    for (const absl::Status& s : tracker.closes) {
      if (s.code() != absl::StatusCode::kDeadlineExceeded) continue;
      EXPECT_TRUE(MessageNames(s, "Server", name));
      EXPECT_TRUE(absl::StrContains(s.message(), "idle_timeout")) << s;
    }
  }
  // An idle client sees the end of the stream.
  CANAL_EXPECT_CODE(idle.front().ReadMessage(absl::Seconds(30)), kOutOfRange);
}

TEST(ServerLimitsTest, IdleConnectionIsClosedActiveOneIsNot) {
  const std::string name = UniqueName("srv-lim-active");
  constexpr absl::Duration kIdle = absl::Seconds(2);
  Tracker tracker;
  canal::ServerOptions options = MessageServerOptions();
  options.idle_timeout = kIdle;
  auto server = StartServer(name, options, tracker.Handlers());
  CANAL_ASSERT_OK(server);

  absl::StatusOr<canal::Channel> quiet = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(quiet);
  // Before the server's last byte to it, so that the bound below holds.
  const absl::Time quiet_since = absl::Now();
  CANAL_ASSERT_OK(quiet->Transact("once", kHangGuard));
  absl::StatusOr<canal::Channel> busy = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(busy);
  // The busy client keeps talking until the quiet one has been closed.
  int transactions = 0;
  while (tracker.CountCloses(absl::StatusCode::kDeadlineExceeded) == 0) {
    absl::StatusOr<std::string> r =
        busy->Transact(absl::StrCat("busy ", transactions), kHangGuard);
    CANAL_ASSERT_OK(r);
    ++transactions;
    ASSERT_LT(absl::Now() - quiet_since, absl::Seconds(60))
        << "the quiet connection was never closed";
  }
  EXPECT_GE(absl::Now() - quiet_since, kIdle);
  CANAL_ASSERT_OK(busy->Transact("still here", kHangGuard));
  std::lock_guard<std::mutex> lock(tracker.mu);
  ASSERT_EQ(tracker.closes.size(), 1u);
  EXPECT_EQ(tracker.closes[0].code(), absl::StatusCode::kDeadlineExceeded)
      << tracker.closes[0];
  EXPECT_EQ(tracker.open, 1);
}

TEST(ServerLimitsTest, ClientThatStopsReadingIsClosedByTheIdleTimeout) {
  const std::string name = UniqueName("srv-lim-stuck");
  Tracker tracker;
  canal::ServerHandlers handlers = tracker.Handlers();
  handlers.on_request = nullptr;
  handlers.on_data = [](canal::Connection& c, absl::string_view) {
    EXPECT_TRUE(c.Send(std::string(8 << 20, 'x')).ok());
  };
  canal::ServerOptions options = MessageServerOptions();
  options.idle_timeout = absl::Milliseconds(300);
  auto server = StartServer(name, options, std::move(handlers));
  CANAL_ASSERT_OK(server);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  CANAL_ASSERT_OK(ch->WriteMessage("send me a lot, I will not read it"));
  ASSERT_TRUE(tracker.WaitUntil([&] { return !tracker.closes.empty(); }));
  std::lock_guard<std::mutex> lock(tracker.mu);
  EXPECT_EQ(tracker.closes[0].code(), absl::StatusCode::kDeadlineExceeded)
      << tracker.closes[0];
  EXPECT_EQ((*server)->connection_count(), 0u);
}

}  // namespace
}  // namespace canal_test
