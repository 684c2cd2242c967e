// SPDX-License-Identifier: Apache-2.0
// Small helpers shared by canal's test suites. Only the public API, absl and
// the standard library appear here, so the conformance suite built on top of
// it compiles unchanged for Windows.

#ifndef CANAL_TESTS_TEST_UTIL_H_
#define CANAL_TESTS_TEST_UTIL_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"

namespace canal_test {

// A pipe name that no other test (in this or another process) uses:
// "ct-<label>-<pid>-<counter>-<random>", portable characters only and short
// (the label is cut to 24 characters), so that it also fits into sun_path.
std::string UniqueName(absl::string_view label);

// Whether this Windows build runs under Wine (ntdll exports
// wine_get_version). Always false elsewhere.
bool RunningUnderWine();

// The id of this process, as canal::PeerInfo reports it.
int64_t CurrentProcessId();

// Descriptors (POSIX: the entries of /proc/self/fd, or /dev/fd) or handles
// (Windows: GetProcessHandleCount) open in this process, for leak checks;
// -1 if the system cannot say. Wine's GetProcessHandleCount answers 0, so
// there the values that name a handle are counted (multiples of 4, given
// out from the bottom of the table, so a process that does not leak stays
// far below the range scanned).
int64_t OpenHandleCount();

// `size` deterministic bytes (all 256 values occur) that differ by `seed`.
std::string Pattern(size_t size, uint32_t seed = 0);

// Reads exactly `size` bytes with repeated Channel::Read calls, each bounded
// by `timeout`. Fails with the first error.
absl::StatusOr<std::string> ReadExactly(
    canal::Channel& channel, size_t size,
    absl::Duration timeout = absl::Seconds(10));

// Calls `condition` until it returns true or `bound` has passed, and returns
// its last result. For state that only polling can observe, such as what
// Peek reports while another thread's Write is blocked; `bound` is a hang
// guard, not a timing assertion. Yields between calls, never sleeps.
bool PollUntil(const std::function<bool()>& condition, absl::Duration bound);

// The transport the conformance suite runs over: kSharedMemory when the
// environment has CANAL_TEST_TRANSPORT=shm (tests/conformance/meson.build
// runs every suite both ways), else kPipe.
canal::Transport TestTransport();

// canal::Listener::Create with `options.transport` set to TestTransport()
// (unless the test asked for shared memory itself). Tests that are about
// the pipe's own behaviour call Listener::Create directly.
absl::StatusOr<canal::Listener> CreateListener(
    absl::string_view name, const canal::ListenerOptions& options = {});

// The transport a channel accepted or connected on a listener of
// `options` made with CreateListener must use.
canal::Transport ExpectedTransport(const canal::ListenerOptions& options);

// A listener with one client connected and accepted.
struct ConnectedPair {
  canal::Listener listener;
  canal::Channel server;  // The accepted end.
  canal::Channel client;  // The connected end.
};

// Creates a listener on `name` with `options` (through CreateListener),
// connects a client (before anyone calls Accept) and accepts it. An error
// too if either end's transport is not ExpectedTransport(options).
absl::StatusOr<ConnectedPair> MakePair(
    absl::string_view name, const canal::ListenerOptions& options = {});

// Runs `fn` on its own thread; the destructor joins it. `Finished(bound)` is
// the hang guard: whether `fn` returned within `bound`.
class Background {
 public:
  explicit Background(std::function<void()> fn)
      : thread_([this, fn = std::move(fn)] {
          fn();
          done_.Notify();
        }) {}
  ~Background() { thread_.join(); }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  bool Finished(absl::Duration bound) {
    return done_.WaitForNotificationWithTimeout(bound);
  }

 private:
  absl::Notification done_;
  std::thread thread_;
};

// Counts a canal::Server's connections through its handlers, so that a
// test can wait for every connection to end on a signal instead of polling
// Server::connection_count(). A connection counts as ended once its
// on_close has run, which is after the server closed its end.
class ConnectionCounter {
 public:
  // `handlers` with on_open and on_close also counting; they still run the
  // given handlers (on_close counts even if its handler throws). The
  // counter must outlive the server that gets them.
  canal::ServerHandlers Wrap(canal::ServerHandlers handlers);
  // Waits until every connection opened so far has ended, at most `bound`
  // (a hang guard). Whether they all had.
  bool WaitUntilAllClosed(absl::Duration bound);
  // Connections opened and not yet ended.
  int open();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int opened_ = 0;  // Guarded by mu_.
  int closed_ = 0;  // Guarded by mu_.
};

// The bound used by hang guards: far longer than any correct run needs.
inline constexpr absl::Duration kHangGuard = absl::Seconds(10);

inline canal::ListenerOptions MessageOptions() {
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  return options;
}

inline const absl::Status& ToStatus(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& ToStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// Whether the status message names both the operation and the pipe.
inline ::testing::AssertionResult MessageNames(const absl::Status& status,
                                               absl::string_view op,
                                               absl::string_view name) {
  if (absl::StrContains(status.message(), op) &&
      absl::StrContains(status.message(), name)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << "message of " << status << " does not contain both \"" << op
         << "\" and \"" << name << "\"";
}

// The child program (tests/helper/canal_test_child).

// The path of tests/helper/canal_test_child from $CANAL_TEST_CHILD (set by
// meson). Under Wine the Unix path becomes its Z: drive form.
inline std::string ChildPath() {
  const char* path = std::getenv("CANAL_TEST_CHILD");
  std::string p = path != nullptr ? path : "";
#ifdef _WIN32
  if (!p.empty() && p[0] == '/') {
    p = "Z:" + absl::StrReplaceAll(p, {{"/", "\\"}});
  }
#endif
  return p;
}

// The child's argv for `args`.
inline std::vector<std::string> ChildArgv(std::vector<std::string> args) {
  args.insert(args.begin(), ChildPath());
  return args;
}

// What `canal_test_child write N` writes to stdout (stream 1) and stderr
// (stream 2).
inline std::string StreamPattern(size_t size, int stream) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    out[i] = static_cast<char>((i * 131 + i / 251 + stream * 17) & 0xff);
  }
  return out;
}

}  // namespace canal_test

#define CANAL_ASSERT_OK(expr)                                             \
  do {                                                                    \
    const absl::Status canal_test_status_ = ::canal_test::ToStatus(expr); \
    ASSERT_TRUE(canal_test_status_.ok()) << canal_test_status_;           \
  } while (false)

#define CANAL_EXPECT_OK(expr)                                             \
  do {                                                                    \
    const absl::Status canal_test_status_ = ::canal_test::ToStatus(expr); \
    EXPECT_TRUE(canal_test_status_.ok()) << canal_test_status_;           \
  } while (false)

// Asserts that `expr` (a Status or StatusOr) has exactly `code`, e.g.
// CANAL_ASSERT_CODE(ch.Read(buf), kCancelled).
#define CANAL_ASSERT_CODE(expr, expected_code)                              \
  do {                                                                      \
    const absl::Status canal_test_status_ = ::canal_test::ToStatus(expr);   \
    ASSERT_EQ(canal_test_status_.code(), ::absl::StatusCode::expected_code) \
        << canal_test_status_;                                              \
  } while (false)

#define CANAL_EXPECT_CODE(expr, expected_code)                              \
  do {                                                                      \
    const absl::Status canal_test_status_ = ::canal_test::ToStatus(expr);   \
    EXPECT_EQ(canal_test_status_.code(), ::absl::StatusCode::expected_code) \
        << canal_test_status_;                                              \
  } while (false)

#endif  // CANAL_TESTS_TEST_UTIL_H_
