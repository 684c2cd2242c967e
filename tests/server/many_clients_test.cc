// SPDX-License-Identifier: Apache-2.0
// 1,000 concurrent clients (200 under Wine), each doing 100 request/reply
// round trips with sequence numbers, served by one loop thread.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server_test_util.h"

namespace canal_test {
namespace {

TEST(ServerManyClientsTest, EveryReplyRightNoneLost) {
  RaiseFdLimit();
  // Fewer clients under Wine, and over shared memory under ThreadSanitizer,
  // where each of the server's two threads per connection makes every
  // synchronisation slower (1000 clients take minutes there).
  const bool fewer =
      RunningUnderWine() || (OverSharedMemory() && kThreadSanitizer);
  const int kThreads = fewer ? 20 : 50;
  const int kPerThread = fewer ? 10 : 20;
  const int kClients = kThreads * kPerThread;
  const int kRounds = 100;

  // Loop-thread state (threads = 1): the next sequence number expected
  // from each connection.
  std::unordered_map<uint64_t, int64_t> next_seq;
  std::atomic<int> opened{0};
  std::atomic<int> bad_sequence{0};
  std::atomic<int64_t> served{0};
  std::atomic<int> closed_ok{0};
  std::mutex close_mu;
  std::condition_variable close_cv;
  int closes = 0;
  canal::ServerHandlers handlers;
  handlers.on_open = [&](canal::Connection& c) {
    next_seq[c.id()] = 0;
    opened.fetch_add(1);
  };
  // Request "<client>:<seq>", reply "<client>:<seq>:ok".
  handlers.on_request =
      [&](canal::Connection& c,
          absl::string_view request) -> absl::StatusOr<std::string> {
    std::vector<absl::string_view> parts = absl::StrSplit(request, ':');
    int64_t seq = -1;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &seq) ||
        seq != next_seq[c.id()]) {
      bad_sequence.fetch_add(1);
      return absl::InvalidArgumentError("bad sequence");
    }
    ++next_seq[c.id()];
    served.fetch_add(1);
    return absl::StrCat(request, ":ok");
  };
  handlers.on_close = [&](canal::Connection& c, const absl::Status& status) {
    if (status.code() == absl::StatusCode::kOutOfRange &&
        next_seq[c.id()] == kRounds) {
      closed_ok.fetch_add(1);
    }
    std::lock_guard<std::mutex> lock(close_mu);
    ++closes;
    close_cv.notify_all();
  };
  canal::ServerOptions options = MessageServerOptions();
  options.threads = 1;
  const std::string name = UniqueName("srv-many");
  absl::StatusOr<std::unique_ptr<canal::Server>> server =
      StartServer(name, options, std::move(handlers));
  CANAL_ASSERT_OK(server);
  EXPECT_EQ(canal::Server::LoopKind(), ExpectedLoopKind());

  // All clients connect first; round trips start once every one of them is
  // connected, so that all are connected at the same time.
  std::mutex mu;
  std::condition_variable cv;
  int connected_threads = 0;
  std::atomic<int> failures{0};
  std::atomic<int64_t> replies_ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<canal::Channel> channels;
      canal::ConnectOptions connect;
      connect.timeout = absl::Seconds(30);
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<canal::Channel> ch =
            canal::Channel::Connect(name, connect);
        if (!ch.ok()) {
          ADD_FAILURE() << ch.status();
          failures.fetch_add(1);
          break;
        }
        channels.push_back(*std::move(ch));
      }
      {
        std::unique_lock<std::mutex> lock(mu);
        ++connected_threads;
        cv.notify_all();
        cv.wait(lock, [&] { return connected_threads == kThreads; });
      }
      for (int round = 0; round < kRounds; ++round) {
        for (size_t i = 0; i < channels.size(); ++i) {
          const std::string request = absl::StrCat(
              t * kPerThread + static_cast<int>(i), "-", t, ":", round);
          absl::StatusOr<std::string> reply =
              channels[i].Transact(request, absl::Seconds(60));
          if (!reply.ok() || *reply != request + ":ok") {
            if (failures.fetch_add(1) < 5) {
              ADD_FAILURE()
                  << "client " << i << " round " << round << ": "
                  << (reply.ok() ? *reply : reply.status().ToString());
            }
            return;
          }
          replies_ok.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(opened.load(), kClients);
  EXPECT_EQ(replies_ok.load(), int64_t{kClients} * kRounds);
  EXPECT_EQ(served.load(), int64_t{kClients} * kRounds);
  EXPECT_EQ(bad_sequence.load(), 0);
  // The channels closed when their threads ended: every connection ends
  // with OutOfRange after all its rounds.
  {
    std::unique_lock<std::mutex> lock(close_mu);
    EXPECT_TRUE(close_cv.wait_for(lock, std::chrono::seconds(60),
                                  [&] { return closes == kClients; }));
  }
  (*server)->Shutdown(absl::Seconds(5));
  EXPECT_EQ(closed_ok.load(), kClients);
  EXPECT_EQ((*server)->connection_count(), 0u);
}

}  // namespace
}  // namespace canal_test
