// SPDX-License-Identifier: Apache-2.0
// Helpers for the canal::Server tests (tests/server/). Public API only, so
// the same tests run on the epoll, poll() and IOCP loops.

#ifndef CANAL_TESTS_SERVER_SERVER_TEST_UTIL_H_
#define CANAL_TESTS_SERVER_SERVER_TEST_UTIL_H_

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
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

inline canal::ServerOptions MessageServerOptions() {
  canal::ServerOptions options;
  options.listener.mode = canal::PipeMode::kMessage;
  return options;
}

}  // namespace canal_test

#endif  // CANAL_TESTS_SERVER_SERVER_TEST_UTIL_H_
