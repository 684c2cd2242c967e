// SPDX-License-Identifier: Apache-2.0
// Resource exhaustion where canal starts threads: with the address space
// limited (setrlimit(RLIMIT_AS)) so that no thread stack can be mapped,
// std::thread throws std::system_error. Run, which starts a writer thread,
// must return ResourceExhausted instead of letting it escape, and a
// Subprocess destroyed while its child still runs (its reaper is a thread)
// must not bring the process down; the child is still reaped later, by the
// next Subprocess call. Each case runs in a forked child.
//
// Skipped under AddressSanitizer and ThreadSanitizer, whose shadow memory
// an address-space limit cannot leave room for.

#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/memory_limit.h"
#include "posix/other_user.h"
#include "test_util.h"

namespace canal_test {
namespace {

constexpr int kWrongStatus = 10;
constexpr int kNotReaped = 11;

void SkipIfSanitized() {
  if (kSanitizedAllocator) {
    GTEST_SKIP() << "a sanitizer's shadow memory leaves no room for an "
                    "address-space limit";
  }
}

// Address space left to the child: enough for small allocations and
// posix_spawn, not for a thread's stack (8 MiB).
constexpr size_t kNoRoomForAThread = 2 << 20;
// Enough for threads and small allocations, far from enough for two rings
// of kMaxRingSize.
constexpr size_t kNoRoomForTheRings = 256 << 20;

// The state letter of `pid` in /proc/<pid>/stat, or '?' if it is gone.
char ProcessState(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return '?';
  const size_t close = line.rfind(") ");
  return close == std::string::npos || close + 2 >= line.size()
             ? '?'
             : line[close + 2];
}

bool Exists(const char* path) { return access(path, X_OK) == 0; }

TEST(MemoryThreads, RunWithoutRoomForAThreadIsResourceExhausted) {
  SkipIfSanitized();
  if (!Exists("/bin/cat")) GTEST_SKIP() << "no /bin/cat";
  const int rc = RunInChild([]() -> int {
    CHILD_CHECK(LimitAddressSpace(kNoRoomForAThread), kChildSetupFailed,
                "setrlimit");
    canal::RunOptions options;
    options.timeout = absl::Seconds(20);
    absl::StatusOr<canal::RunResult> r =
        canal::Run({"/bin/cat"}, "hello", options);
    CHILD_CHECK(r.status().code() == absl::StatusCode::kResourceExhausted,
                kWrongStatus, "Run: %s", r.status().ToString().c_str());
    CHILD_CHECK(absl::StrContains(r.status().message(), "Run"), kWrongStatus,
                "message: %s", r.status().ToString().c_str());
    return 0;
  });
  EXPECT_EQ(rc, 0) << "child exit code (200 + n: killed by signal n)";
}

TEST(MemoryThreads, DestroyingARunningSubprocessWithoutRoomForAReaper) {
  SkipIfSanitized();
  if (!Exists("/bin/sleep") || !Exists("/bin/true")) {
    GTEST_SKIP() << "no /bin/sleep or /bin/true";
  }
  const int rc = RunInChild([]() -> int {
    pid_t pid = 0;
    {
      absl::StatusOr<canal::Subprocess> sleeper =
          canal::Subprocess::Start({"/bin/sleep", "60"});
      CHILD_CHECK(sleeper.ok(), kChildSetupFailed, "Start: %s",
                  sleeper.status().ToString().c_str());
      pid = static_cast<pid_t>(sleeper->pid());
      CHILD_CHECK(LimitAddressSpace(kNoRoomForAThread), kChildSetupFailed,
                  "setrlimit");
      // Destroyed here, still running: no thread can reap it.
    }
    ::kill(pid, SIGKILL);
    // Wait until it is a zombie, the state the next call must clean up.
    const absl::Time deadline = absl::Now() + kHangGuard;
    while (ProcessState(pid) != 'Z') {
      CHILD_CHECK(absl::Now() < deadline, kNotReaped, "state %c",
                  ProcessState(pid));
      absl::SleepFor(absl::Milliseconds(1));
    }
    absl::StatusOr<canal::Subprocess> next =
        canal::Subprocess::Start({"/bin/true"});
    CHILD_CHECK(next.ok(), kWrongStatus, "Start: %s",
                next.status().ToString().c_str());
    CHILD_CHECK(next->Wait(kHangGuard).ok(), kWrongStatus, "Wait");
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    CHILD_CHECK(r < 0 && errno == ECHILD, kNotReaped,
                "the first child was not reaped (waitpid %d, state %c)",
                static_cast<int>(r), ProcessState(pid));
    return 0;
  });
  EXPECT_EQ(rc, 0) << "child exit code (200 + n: killed by signal n)";
}

// A server whose listener offers shared memory serves each connection
// with two threads of its own: without room for them, that connection ends
// with ResourceExhausted (on_close says so), the client sees its end, and
// the server goes on serving once threads can be started again.
TEST(MemoryThreads, SharedMemoryServerWithoutRoomForAConnectionsThreads) {
  SkipIfSanitized();
  const int rc = RunInChild([]() -> int {
    const std::string name = UniqueName("mem-srv-shm");
    std::mutex mu;
    std::condition_variable cv;
    std::vector<absl::Status> closes;
    canal::ServerOptions options;
    options.listener.mode = canal::PipeMode::kMessage;
    options.listener.transport = canal::Transport::kSharedMemory;
    canal::ServerHandlers handlers;
    handlers.on_request = [](canal::Connection&, absl::string_view r)
        -> absl::StatusOr<std::string> { return std::string(r); };
    handlers.on_close = [&](canal::Connection&, const absl::Status& s) {
      std::lock_guard<std::mutex> lock(mu);
      closes.push_back(s);
      cv.notify_all();
    };
    absl::StatusOr<std::unique_ptr<canal::Server>> server =
        canal::Server::Start(name, options, std::move(handlers));
    CHILD_CHECK(server.ok(), kChildSetupFailed, "Start: %s",
                server.status().ToString().c_str());
    rlimit unlimited;
    CHILD_CHECK(getrlimit(RLIMIT_AS, &unlimited) == 0, kChildSetupFailed,
                "getrlimit");
    // The soft limit only, so that it can be raised again.
    rlimit limited = unlimited;
    limited.rlim_cur = ReadMemoryUse().virtual_bytes + kNoRoomForAThread;
    CHILD_CHECK(setrlimit(RLIMIT_AS, &limited) == 0, kChildSetupFailed,
                "setrlimit");
    {
      absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
      CHILD_CHECK(ch.ok(), kChildSetupFailed, "Connect: %s",
                  ch.status().ToString().c_str());
      absl::StatusOr<std::string> reply = ch->Transact("x", kHangGuard);
      CHILD_CHECK(!reply.ok() && !absl::IsDeadlineExceeded(reply.status()),
                  kWrongStatus, "Transact: %s",
                  reply.status().ToString().c_str());
    }
    {
      std::unique_lock<std::mutex> lock(mu);
      CHILD_CHECK(cv.wait_for(lock, std::chrono::seconds(30),
                              [&] { return !closes.empty(); }),
                  kWrongStatus, "no on_close");
      CHILD_CHECK(absl::IsResourceExhausted(closes[0]) &&
                      absl::StrContains(closes[0].message(), "thread"),
                  kWrongStatus, "on_close: %s", closes[0].ToString().c_str());
    }
    CHILD_CHECK(setrlimit(RLIMIT_AS, &unlimited) == 0, kChildSetupFailed,
                "setrlimit back");
    absl::StatusOr<std::string> reply = canal::Call(name, "y", kHangGuard);
    CHILD_CHECK(reply.ok() && *reply == "y", kWrongStatus, "Call: %s",
                reply.status().ToString().c_str());
    CHILD_CHECK((*server)->connection_count() <= 1, kWrongStatus,
                "connection_count %zu", (*server)->connection_count());
    return 0;
  });
  EXPECT_EQ(rc, 0) << "child exit code (200 + n: killed by signal n)";
}

// A listener that cannot create the shared memory for a client (here: no
// room in the address space for the rings) serves that client over the
// pipe, and says so nowhere but in Channel::transport(). The same fallback
// serves a canal::Server's clients.
TEST(MemoryThreads, SharedMemoryWithoutRoomForTheRingsServesOverThePipe) {
  SkipIfSanitized();
  const int rc = RunInChild([]() -> int {
    const std::string name = UniqueName("mem-shm-pipe");
    canal::ListenerOptions options;
    options.mode = canal::PipeMode::kMessage;
    options.transport = canal::Transport::kSharedMemory;
    // Two rings of 1 GiB: far more than kNoRoomForTheRings.
    options.ring_size = canal::kMaxRingSize;
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(name, options);
    CHILD_CHECK(listener.ok(), kChildSetupFailed, "Listen: %s",
                listener.status().ToString().c_str());
    canal::ServerOptions server_options;
    server_options.listener = options;
    canal::ServerHandlers handlers;
    handlers.on_request = [](canal::Connection&, absl::string_view r)
        -> absl::StatusOr<std::string> { return absl::StrCat("re ", r); };
    const std::string server_name = name + "-srv";
    absl::StatusOr<std::unique_ptr<canal::Server>> server =
        canal::Server::Start(server_name, server_options, std::move(handlers));
    CHILD_CHECK(server.ok(), kChildSetupFailed, "Start: %s",
                server.status().ToString().c_str());
    CHILD_CHECK(LimitAddressSpace(kNoRoomForTheRings), kChildSetupFailed,
                "setrlimit");

    absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
    CHILD_CHECK(client.ok(), kWrongStatus, "Connect: %s",
                client.status().ToString().c_str());
    CHILD_CHECK(client->WriteMessage("ping", kHangGuard).ok(), kWrongStatus,
                "WriteMessage");
    absl::StatusOr<canal::Channel> accepted = listener->Accept(kHangGuard);
    CHILD_CHECK(accepted.ok(), kWrongStatus, "Accept: %s",
                accepted.status().ToString().c_str());
    absl::StatusOr<std::string> got = accepted->ReadMessage(kHangGuard);
    CHILD_CHECK(got.ok() && *got == "ping", kWrongStatus, "ReadMessage: %s",
                got.status().ToString().c_str());
    CHILD_CHECK(accepted->WriteMessage("pong", kHangGuard).ok(), kWrongStatus,
                "WriteMessage back");
    got = client->ReadMessage(kHangGuard);
    CHILD_CHECK(got.ok() && *got == "pong", kWrongStatus, "ReadMessage: %s",
                got.status().ToString().c_str());
    CHILD_CHECK(client->transport() == canal::Transport::kPipe, kWrongStatus,
                "the client's transport is not the pipe");
    CHILD_CHECK(accepted->transport() == canal::Transport::kPipe, kWrongStatus,
                "the accepted channel's transport is not the pipe");

    absl::StatusOr<canal::Channel> served =
        canal::Channel::Connect(server_name);
    CHILD_CHECK(served.ok(), kWrongStatus, "Connect to the server: %s",
                served.status().ToString().c_str());
    absl::StatusOr<std::string> reply = served->Transact("x", kHangGuard);
    CHILD_CHECK(reply.ok() && *reply == "re x", kWrongStatus, "Transact: %s",
                reply.status().ToString().c_str());
    reply = served->Transact("y", kHangGuard);
    CHILD_CHECK(reply.ok() && *reply == "re y", kWrongStatus, "Transact: %s",
                reply.status().ToString().c_str());
    CHILD_CHECK(served->transport() == canal::Transport::kPipe, kWrongStatus,
                "the server's client's transport is not the pipe");
    return 0;
  });
  EXPECT_EQ(rc, 0) << "child exit code (200 + n: killed by signal n)";
}

}  // namespace
}  // namespace canal_test
