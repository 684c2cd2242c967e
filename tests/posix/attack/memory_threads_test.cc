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
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/other_user.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CANAL_SANITIZED_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CANAL_SANITIZED_ALLOCATOR 1
#endif
#endif

namespace canal_test {
namespace {

constexpr int kWrongStatus = 10;
constexpr int kNotReaped = 11;

#define CHILD_CHECK(cond, code, ...)                  \
  do {                                                \
    if (!(cond)) {                                    \
      std::fprintf(stderr, "child: " __VA_ARGS__);    \
      std::fprintf(stderr, " (line %d)\n", __LINE__); \
      return code;                                    \
    }                                                 \
  } while (false)

void SkipIfSanitized() {
#ifdef CANAL_SANITIZED_ALLOCATOR
  GTEST_SKIP() << "a sanitizer's shadow memory leaves no room for an "
                  "address-space limit";
#endif
}

// Limits the address space to what is mapped now plus 2 MiB: enough for
// small allocations and posix_spawn, not for a thread's stack (8 MiB).
bool LimitAddressSpace() {
  std::ifstream statm("/proc/self/statm");
  unsigned long pages = 0;
  if (!(statm >> pages) || pages == 0) return false;
  rlimit limit;
  limit.rlim_cur = limit.rlim_max =
      pages * static_cast<unsigned long>(sysconf(_SC_PAGESIZE)) + (2 << 20);
  return setrlimit(RLIMIT_AS, &limit) == 0;
}

int InChild(const std::function<int()>& body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    // An escaping exception terminates the child (SIGABRT), as it would
    // any program, instead of unwinding into the test framework.
    [&]() noexcept { _exit(body()); }();
  }
  if (pid < 0) return -1;
  return WaitExit(pid);
}

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
  const int rc = InChild([]() -> int {
    CHILD_CHECK(LimitAddressSpace(), kChildSetupFailed, "setrlimit");
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
  const int rc = InChild([]() -> int {
    pid_t pid = 0;
    {
      absl::StatusOr<canal::Subprocess> sleeper =
          canal::Subprocess::Start({"/bin/sleep", "60"});
      CHILD_CHECK(sleeper.ok(), kChildSetupFailed, "Start: %s",
                  sleeper.status().ToString().c_str());
      pid = static_cast<pid_t>(sleeper->pid());
      CHILD_CHECK(LimitAddressSpace(), kChildSetupFailed, "setrlimit");
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

}  // namespace
}  // namespace canal_test
