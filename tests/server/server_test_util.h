// SPDX-License-Identifier: Apache-2.0
// Helpers for the canal::Server tests (tests/server/). Public API only, so
// the same tests run on the epoll, poll() and IOCP loops, and (started
// through StartServer) over shared memory, on the channel loop.

#ifndef CANAL_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define CANAL_TESTS_SERVER_SERVER_TEST_UTIL_H_

#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "canal/server.h"
#include "test_util.h"

#ifndef _WIN32
#include <sys/resource.h>
#endif

namespace canal_test {

// Raises the soft descriptor limit to the hard one (POSIX); a no-op on
// Windows.
inline void RaiseFdLimit() {
#ifndef _WIN32
  rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
#endif
}

// The loop canal::Server uses in this test run: IOCP on Windows; on Linux
// epoll, or poll() when the test runs with CANAL_SERVER_LOOP=poll (see
// tests/server/meson.build); poll() on other POSIX systems.
inline std::string ExpectedLoopKind() {
#if defined(_WIN32)
  return "iocp";
#elif defined(__linux__)
  const char* loop = std::getenv("CANAL_SERVER_LOOP");
  return loop != nullptr && std::string(loop) == "poll" ? "poll" : "epoll";
#else
  return "poll";
#endif
}

// Records how a server's connections ended: on_close's statuses, in order.
class CloseLog {
 public:
  // For ServerHandlers::on_close.
  void Add(const absl::Status& status) {
    std::lock_guard<std::mutex> lock(mu_);
    statuses_.push_back(status);
    cv_.notify_all();
  }

  // Takes the oldest status not taken yet, waiting up to `bound` (a hang
  // guard) for one; DeadlineExceeded if none came.
  absl::Status Next(absl::Duration bound = absl::Seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, absl::ToChronoNanoseconds(bound),
                      [&] { return statuses_.size() > taken_; })) {
      return absl::DeadlineExceededError("no on_close");
    }
    return statuses_[taken_++];
  }

  // Waits up to `bound` until `n` connections have closed and returns every
  // status recorded (fewer than `n` if the bound passed).
  std::vector<absl::Status> WaitFor(size_t n,
                                    absl::Duration bound = absl::Seconds(30)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(bound),
                 [&] { return statuses_.size() >= n; });
    return statuses_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<absl::Status> statuses_;  // Guarded by mu_.
  size_t taken_ = 0;                    // Guarded by mu_: taken by Next.
};

// canal::Server::Start with `options.listener.transport` set to
// TestTransport() (unless the test asked for shared memory itself), so that
// every suite runs over the pipe (server/..., server-poll/...) and over
// shared memory (server-shm/..., CANAL_TEST_TRANSPORT=shm; see
// tests/server/meson.build).
inline absl::StatusOr<std::unique_ptr<canal::Server>> StartServer(
    absl::string_view name, canal::ServerOptions options,
    canal::ServerHandlers handlers) {
  if (options.listener.transport == canal::Transport::kPipe) {
    options.listener.transport = TestTransport();
  }
  return canal::Server::Start(name, options, std::move(handlers));
}

// Whether ThreadSanitizer instruments this build.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif
#else
inline constexpr bool kThreadSanitizer = false;
#endif

// Whether this run's servers offer shared memory (CANAL_TEST_TRANSPORT=shm).
inline bool OverSharedMemory() {
  return TestTransport() == canal::Transport::kSharedMemory;
}

inline canal::ServerOptions MessageServerOptions() {
  canal::ServerOptions options;
  options.listener.mode = canal::PipeMode::kMessage;
  return options;
}

}  // namespace canal_test

#endif  // CANAL_TESTS_SERVER_SERVER_TEST_UTIL_H_
