// SPDX-License-Identifier: Apache-2.0
// A flood of peers that the authorisation callback refuses: Accept must
// still end at its deadline (DeadlineExceeded), however many refused peers
// keep arriving, and the listener must keep serving once the flood ends.

#include <windows.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "win32/raw_win32.h"

namespace {

using canal_test::Background;
using canal_test::kHangGuard;
using canal_test::UniqueName;
using canal_win32_test::PipePath;

// Raw clients that connect (and hang up) again and again, as fast as the
// pipe lets them, until stopped: connected peers pile up faster than Accept
// refuses them.
class Flood {
 public:
  Flood(const std::string& name, int threads) : path_(PipePath(name)) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { Run(); });
    }
  }
  ~Flood() {
    stop_.store(true);
    for (std::thread& thread : threads_) thread.join();
  }
  int connections() const { return connections_.load(); }
  // Returns once `count` connections have been made in total.
  void WaitFor(int count) {
    while (connections_.load() < count && !stop_.load()) {
      std::this_thread::yield();
    }
  }

 private:
  void Run() {
    while (!stop_.load()) {
      HANDLE pipe = CreateFileW(path_.c_str(), GENERIC_READ | GENERIC_WRITE, 0,
                                nullptr, OPEN_EXISTING, 0, nullptr);
      if (pipe == INVALID_HANDLE_VALUE) {
        if (GetLastError() == ERROR_PIPE_BUSY)
          WaitNamedPipeW(path_.c_str(), 20);
        continue;
      }
      connections_.fetch_add(1);
      CloseHandle(pipe);
    }
  }

  const std::wstring path_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::vector<std::thread> threads_;
};

TEST(RefusedFloodTest, AcceptStillEndsAtItsDeadline) {
  const std::string name = UniqueName("flood");
  std::atomic<int> refused{0};
  canal::ListenerOptions options;
  options.authorize = [&](const canal::PeerInfo&) {
    refused.fetch_add(1);
    return absl::PermissionDeniedError("flood");
  };
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  absl::Status accepted;
  {
    Flood flood(name, 4);
    flood.WaitFor(8);  // The flood is on before Accept starts.
    Background accept(
        [&] { accepted = listener->Accept(absl::Milliseconds(300)).status(); });
    EXPECT_TRUE(accept.Finished(kHangGuard))
        << "Accept(300 ms) kept refusing peers past its deadline ("
        << refused.load() << " so far)";
    // Leaving this scope stops the flood, which also ends a hung Accept.
  }
  EXPECT_EQ(accepted.code(), absl::StatusCode::kDeadlineExceeded) << accepted;
  EXPECT_GT(refused.load(), 0);

  // The listener serves once the flood is over (the refusing callback
  // refuses everyone, so the new client is refused too: it sees the pipe
  // disconnected rather than a hang or a crash).
  absl::Notification served;
  Background accept_again([&] {
    (void)listener->Accept(absl::Milliseconds(500));
    served.Notify();
  });
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  ASSERT_TRUE(client.ok()) << client.status();
  char byte = 0;
  CANAL_EXPECT_CODE(client->Read(absl::MakeSpan(&byte, 1), kHangGuard),
                    kOutOfRange);
  EXPECT_TRUE(served.WaitForNotificationWithTimeout(kHangGuard));
}

}  // namespace
