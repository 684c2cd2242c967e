// SPDX-License-Identifier: Apache-2.0
// No exception leaves the Win32 backend when memory runs out: every
// allocation that fails inside Listener::Create (the listener's thread
// included), Connect, Accept and ReadMessage becomes a status
// (ResourceExhausted), nothing is lost, and the listener keeps working.
//
// This binary replaces the global operator new so that exactly the n-th
// allocation from a chosen moment fails, for every n in turn.

#include <windows.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "win32/raw_win32.h"

namespace {

// >0: the allocation that brings it to 0 fails. Counts allocations of the
// armed thread only, or of every thread if `g_all_threads`.
std::atomic<long> g_countdown{0};
std::atomic<bool> g_all_threads{false};
thread_local bool t_armed = false;

bool ShouldFail() {
  if (!t_armed && !g_all_threads.load(std::memory_order_relaxed)) {
    return false;
  }
  return g_countdown.fetch_sub(1) == 1;
}

void* Allocate(std::size_t size) {
  if (ShouldFail()) return nullptr;
  return std::malloc(size == 0 ? 1 : size);
}

}  // namespace

void* operator new(std::size_t size) {
  void* p = Allocate(size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void* operator new[](std::size_t size) {
  void* p = Allocate(size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return Allocate(size);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return Allocate(size);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace {

using canal_test::kHangGuard;
using canal_test::MessageOptions;
using canal_test::UniqueName;
using canal_win32_test::PipePath;

// Makes the n-th allocation of this thread fail while alive.
class FailNth {
 public:
  explicit FailNth(long n) {
    g_countdown.store(n);
    t_armed = true;
  }
  ~FailNth() { Disarm(); }
  // Whether the failure was injected (n allocations happened).
  bool Disarm() {
    t_armed = false;
    return g_countdown.load() <= 0;
  }
};

// Runs `call` with its n-th allocation failing, for n = 1, 2, ... until a
// run makes fewer than n allocations. `check(result, n)` judges each
// result. An exception out of `call` fails the test.
template <typename Call, typename Check>
void ForEveryAllocation(Call call, Check check) {
  for (long n = 1; n < 2000; ++n) {
    bool hit = false;
    bool threw = false;
    decltype(call()) result = absl::UnknownError("not run");
    {
      FailNth fail(n);
      try {
        result = call();
      } catch (...) {
        threw = true;
      }
      hit = fail.Disarm();
    }
    ASSERT_FALSE(threw) << "an exception escaped when allocation " << n
                        << " failed";
    check(result, n);
    if (::testing::Test::HasFatalFailure()) return;
    if (!hit) return;  // The call made fewer than n allocations: all done.
  }
  FAIL() << "more than 2000 allocations";
}

// OK, or ResourceExhausted naming the operation.
template <typename R>
void ExpectOkOrExhausted(const R& result, long n) {
  const absl::Status& status = canal_test::ToStatus(result);
  EXPECT_TRUE(status.ok() ||
              status.code() == absl::StatusCode::kResourceExhausted)
      << "allocation " << n << ": " << status;
}

TEST(AllocFailureTest, CreateReturnsAStatusAndLeavesNothingBehind) {
  std::string name;
  for (long n = 1; n < 2000; ++n) {
    name = UniqueName("alloc-create");
    absl::Status created = absl::UnknownError("not run");
    bool threw = false;
    bool hit = false;
    {
      FailNth fail(n);
      try {
        created = canal::Listener::Create(name, MessageOptions()).status();
      } catch (...) {
        threw = true;
      }
      hit = fail.Disarm();
    }
    ASSERT_FALSE(threw) << "an exception escaped when allocation " << n
                        << " failed";
    ExpectOkOrExhausted(created, n);
    // Whatever happened, the listener is gone again (closed by its
    // destructor, or never made): nothing holds the name.
    CANAL_EXPECT_CODE(canal::WaitForListener(name, absl::ZeroDuration()),
                      kNotFound);
    if (!hit) return;
  }
  FAIL() << "more than 2000 allocations";
}

TEST(AllocFailureTest, ConnectReturnsAStatus) {
  const std::string name = UniqueName("alloc-connect");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, MessageOptions());
  ASSERT_TRUE(listener.ok()) << listener.status();
  ForEveryAllocation(
      [&]() -> absl::StatusOr<canal::Channel> {
        return canal::Channel::Connect(name);
      },
      [&](const absl::StatusOr<canal::Channel>& connected, long n) {
        ExpectOkOrExhausted(connected, n);
      });
  // The listener serves on.
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(client);
  CANAL_EXPECT_OK(client->WriteMessage("ping", kHangGuard));
}

TEST(AllocFailureTest, AcceptReturnsAStatusAndLeaksNoInstance) {
  const std::string name = UniqueName("alloc-accept");
  canal::ListenerOptions options = MessageOptions();
  options.max_instances = 1;  // A leaked instance would block every client.
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  for (long n = 1; n < 2000; ++n) {
    SCOPED_TRACE(n);
    // Connected on another thread, whose allocations are not counted.
    absl::StatusOr<canal::Channel> client;
    std::thread connect([&] { client = canal::Channel::Connect(name); });
    connect.join();
    ASSERT_TRUE(client.ok()) << client.status();
    absl::StatusOr<canal::Channel> server = absl::UnknownError("not run");
    bool threw = false;
    bool hit = false;
    {
      FailNth fail(n);
      try {
        server = listener->Accept(kHangGuard);
      } catch (...) {
        threw = true;
      }
      hit = fail.Disarm();
    }
    ASSERT_FALSE(threw) << "an exception escaped";
    ExpectOkOrExhausted(server, n);
    if (server.ok()) {
      CANAL_ASSERT_OK(client->WriteMessage("ping", kHangGuard));
      absl::StatusOr<std::string> got = server->ReadMessage(kHangGuard);
      CANAL_ASSERT_OK(got);
      EXPECT_EQ(*got, "ping");
    } else {
      // The refused instance was dropped: the client sees the pipe end.
      CANAL_EXPECT_CODE(client->ReadMessage(kHangGuard), kOutOfRange);
    }
    // Both ends go before the next round (Windows counts an instance until
    // both are closed).
    if (server.ok()) server->Close();
    client->Close();
    if (!hit) break;
  }
}

TEST(AllocFailureTest, ReadMessageLosesNothing) {
  absl::StatusOr<canal_test::ConnectedPair> pair =
      canal_test::MakePair(UniqueName("alloc-read"), MessageOptions());
  ASSERT_TRUE(pair.ok()) << pair.status();
  const std::string message = canal_test::Pattern(20000, 3);
  // One message per round: send it, read it with the n-th allocation
  // failing; if that read fails, the next one returns the whole message.
  for (long n = 1; n < 2000; ++n) {
    CANAL_ASSERT_OK(pair->client.WriteMessage(message, kHangGuard));
    absl::StatusOr<std::string> got = absl::UnknownError("not run");
    bool threw = false;
    bool hit = false;
    {
      FailNth fail(n);
      try {
        got = pair->server.ReadMessage(kHangGuard);
      } catch (...) {
        threw = true;
      }
      hit = fail.Disarm();
    }
    ASSERT_FALSE(threw) << "an exception escaped when allocation " << n
                        << " failed";
    ExpectOkOrExhausted(got, n);
    if (!got.ok()) got = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(got);
    ASSERT_TRUE(*got == message)
        << "allocation " << n << ": the message "
        << "came back with " << got->size() << " bytes";
    if (!hit) break;
  }
}

// The listener's own thread allocates when it replaces an instance a client
// took; a failure there must not end the process, and the listener must
// serve on.
TEST(AllocFailureTest, ListenerThreadSurvivesAFailedAllocation) {
  const std::string name = UniqueName("alloc-thread");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  ASSERT_TRUE(listener.ok()) << listener.status();
  const std::wstring path = PipePath(name);
  // Each raw client makes the listener thread allocate at least once (the
  // instance that replaces the one it took), so four clients reach n <= 4.
  for (long n = 1; n <= 4; ++n) {
    SCOPED_TRACE(n);
    // Raw clients (no operator new on this thread) make the listener
    // thread replace instances while every thread's n-th allocation fails.
    HANDLE raw[4];
    g_countdown.store(n);
    g_all_threads.store(true);
    for (HANDLE& pipe : raw) {
      pipe = INVALID_HANDLE_VALUE;
      const absl::Time give_up = absl::Now() + kHangGuard;
      while (pipe == INVALID_HANDLE_VALUE && absl::Now() < give_up) {
        pipe = CreateFileW(path.c_str(), GENERIC_READ | GENERIC_WRITE, 0,
                           nullptr, OPEN_EXISTING, 0, nullptr);
        if (pipe == INVALID_HANDLE_VALUE) WaitNamedPipeW(path.c_str(), 50);
      }
    }
    const absl::Time give_up = absl::Now() + kHangGuard;
    while (g_countdown.load() > 0 && absl::Now() < give_up) {
      std::this_thread::yield();
    }
    g_all_threads.store(false);
    EXPECT_LE(g_countdown.load(), 0) << "the listener thread did not allocate";
    for (HANDLE pipe : raw) {
      EXPECT_NE(pipe, INVALID_HANDLE_VALUE);
      if (pipe != INVALID_HANDLE_VALUE) CloseHandle(pipe);
    }
    // A new client is served: accept until its channel comes (the raw
    // clients' come first, and end at once).
    absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(client);
    CANAL_ASSERT_OK(client->Write("alive"));
    bool served = false;
    for (int i = 0; i < 8 && !served; ++i) {
      absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
      CANAL_ASSERT_OK(server);
      absl::StatusOr<std::string> got = canal_test::ReadExactly(*server, 5);
      if (!got.ok()) continue;  // A raw client that hung up.
      EXPECT_EQ(*got, "alive");
      served = true;
    }
    EXPECT_TRUE(served);
  }
}

}  // namespace
