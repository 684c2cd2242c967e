// SPDX-License-Identifier: Apache-2.0
// Destroying a Listener while other threads are blocked in its Accept: the
// destructor closes the listener, each blocked Accept returns Cancelled, and
// nothing is freed before the last one has left (the sanitizer legs report
// any use after free). Entering Accept on a listener that is already being
// destroyed remains the caller's bug, as with any object.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/runtime_dir_fixture.h"
#include "test_util.h"

namespace canal_test {
namespace {

using ListenerDestroy = RuntimeDirTest;

TEST_F(ListenerDestroy, DestructorWakesBlockedAcceptsAndWaitsForThem) {
  constexpr int kThreads = 3;
  for (int round = 0; round < 20; ++round) {
    const std::string name = UniqueName("destroy");
    // Every peer is refused, so no Accept can return before the listener
    // closes. Each thread takes one refused client and waits in `authorize`
    // until all of them have one: then every thread is provably inside
    // Accept when the destructor starts.
    absl::Mutex mu;
    int arrived = 0;
    canal::ListenerOptions options;
    options.authorize = [&](const canal::PeerInfo&) {
      absl::MutexLock lock(&mu);
      ++arrived;
      mu.AwaitWithTimeout(absl::Condition(
                              +[](int* n) { return *n >= kThreads; }, &arrived),
                          kHangGuard);
      return absl::PermissionDeniedError("no");
    };
    auto listener = std::make_unique<canal::Listener>();
    {
      absl::StatusOr<canal::Listener> created =
          canal::Listener::Create(name, options);
      CANAL_ASSERT_OK(created);
      *listener = *std::move(created);
    }
    std::vector<absl::Status> results(kThreads);
    std::vector<std::unique_ptr<Background>> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.push_back(std::make_unique<Background>(
          [&, i] { results[i] = listener->Accept().status(); }));
    }
    std::vector<canal::Channel> clients;
    for (int i = 0; i < kThreads; ++i) {
      absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
      CANAL_ASSERT_OK(client);
      clients.push_back(*std::move(client));
    }
    {
      absl::MutexLock lock(&mu);
      ASSERT_TRUE(mu.AwaitWithTimeout(
          absl::Condition(
              +[](int* n) { return *n >= kThreads; }, &arrived),
          kHangGuard));
    }
    listener.reset();  // Destroyed with every Accept still inside.
    for (int i = 0; i < kThreads; ++i) {
      EXPECT_TRUE(threads[i]->Finished(kHangGuard));
      EXPECT_TRUE(absl::IsCancelled(results[i])) << results[i];
    }
    threads.clear();
    // The name was released.
    CANAL_EXPECT_CODE(canal::Channel::Connect(name), kNotFound);
  }
}

}  // namespace
}  // namespace canal_test
