// SPDX-License-Identifier: Apache-2.0
// EINTR storms (POSIX): a thread sends SIGUSR1, whose handler is installed
// without SA_RESTART, every ~100 us to the thread blocked in Read, Accept,
// Connect (waiting for a free instance) or Write. Timeouts still hold (never
// early, not much late) and data arrives intact.

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace canal_test {
namespace {

std::atomic<long> g_signals{0};
void OnSignal(int) { g_signals.fetch_add(1, std::memory_order_relaxed); }

// Installs the handler (no SA_RESTART) and bombards the constructing thread
// with SIGUSR1 every ~100 us until destroyed.
class SignalStorm {
 public:
  SignalStorm() : target_(pthread_self()) {
    struct sigaction sa {};
    sa.sa_handler = OnSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: every blocking call sees EINTR
    sigaction(SIGUSR1, &sa, &old_);
    start_ = g_signals.load();
    thread_ = std::thread([this] {
      const timespec pause{0, 100 * 1000};
      while (!stop_.load()) {
        pthread_kill(target_, SIGUSR1);
        nanosleep(&pause, nullptr);
      }
    });
  }
  ~SignalStorm() {
    stop_ = true;
    thread_.join();
    sigaction(SIGUSR1, &old_, nullptr);
  }
  long delivered() const { return g_signals.load() - start_; }

 private:
  pthread_t target_;
  struct sigaction old_ {};
  long start_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

constexpr absl::Duration kTimeout = absl::Milliseconds(200);
// Each call must end by its deadline and never before it. There is no
// upper bound on how late: a loaded machine may run the caller late. A call
// that restarted its timeout after every EINTR would never end under the
// storm, and the test's own timeout would fail it.

TEST(FaultsEintr, ReadTimeoutHoldsUnderSignalStorm) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("eintr-read"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  SignalStorm storm;
  for (int i = 0; i < 3; ++i) {
    char buf[64];
    const absl::Time start = absl::Now();
    absl::StatusOr<canal::ReadResult> r =
        pair->client.Read(absl::MakeSpan(buf), kTimeout);
    const absl::Duration took = absl::Now() - start;
    CANAL_EXPECT_CODE(r, kDeadlineExceeded);
    EXPECT_GE(took, kTimeout);
  }
  EXPECT_GT(storm.delivered(), 100) << "the storm did not reach the reader";
}

TEST(FaultsEintr, AcceptAndConnectWaitTimeoutsHoldUnderSignalStorm) {
  const std::string name = UniqueName("eintr-accept");
  canal::ListenerOptions options = MessageOptions();
  options.max_instances = 1;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);
  SignalStorm storm;
  {
    const absl::Time start = absl::Now();
    absl::StatusOr<canal::Channel> ch = listener->Accept(kTimeout);
    const absl::Duration took = absl::Now() - start;
    CANAL_EXPECT_CODE(ch, kDeadlineExceeded);
    EXPECT_GE(took, kTimeout);
  }
  absl::StatusOr<canal::Channel> first = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(first);
  absl::StatusOr<canal::Channel> accepted = listener->Accept(absl::Seconds(10));
  CANAL_ASSERT_OK(accepted);
  {
    // The only instance is taken: Connect waits, then DeadlineExceeded.
    canal::ConnectOptions co;
    co.timeout = kTimeout;
    const absl::Time start = absl::Now();
    absl::StatusOr<canal::Channel> second = canal::Channel::Connect(name, co);
    const absl::Duration took = absl::Now() - start;
    CANAL_EXPECT_CODE(second, kDeadlineExceeded);
    EXPECT_GE(took, kTimeout);
  }
  EXPECT_GT(storm.delivered(), 100);
}

TEST(FaultsEintr, DataArrivesIntactUnderSignalStorm) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("eintr-data"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  const std::string big = Pattern(8 * 1024 * 1024, 7);
  SignalStorm storm;
  // Reading under the storm while the other side writes.
  {
    Background writer([&] {
      for (int i = 0; i < 4; ++i) {
        ASSERT_TRUE(pair->server.WriteMessage(big, absl::Seconds(20)).ok());
      }
    });
    for (int i = 0; i < 4; ++i) {
      absl::StatusOr<std::string> m =
          pair->client.ReadMessage(absl::Seconds(20));
      CANAL_ASSERT_OK(m);
      ASSERT_TRUE(*m == big) << "message " << i << " corrupted";
    }
    EXPECT_TRUE(writer.Finished(kHangGuard));
  }
  // Writing under the storm while the other side reads.
  {
    Background reader([&] {
      for (int i = 0; i < 4; ++i) {
        absl::StatusOr<std::string> m =
            pair->server.ReadMessage(absl::Seconds(20));
        ASSERT_TRUE(m.ok()) << m.status();
        ASSERT_TRUE(*m == big) << "message " << i << " corrupted";
      }
    });
    for (int i = 0; i < 4; ++i) {
      CANAL_ASSERT_OK(pair->client.WriteMessage(big, absl::Seconds(20)));
    }
    EXPECT_TRUE(reader.Finished(kHangGuard));
  }
  EXPECT_GT(storm.delivered(), 10);
}

}  // namespace
}  // namespace canal_test
