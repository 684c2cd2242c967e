// SPDX-License-Identifier: Apache-2.0
// POSIX stop requests: SIGINT, SIGTERM and SIGHUP through a self-pipe.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "tools/canal/signals.h"

namespace canal_cli {
namespace {

int signal_pipe[2] = {-1, -1};

void OnSignal(int) {
  const int saved = errno;
  const char byte = 1;
  (void)!::write(signal_pipe[1], &byte, 1);
  errno = saved;
}

// A close-on-exec pipe: atomically where the system has pipe2, so that a
// child started by `serve --exec` on another thread never inherits it.
int MakePipe(int fds[2]) {
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__)
  return ::pipe2(fds, O_CLOEXEC);
#else
  // No pipe2 (macOS): this runs in main() before any thread exists.
  if (::pipe(fds) != 0) return -1;
  for (int i = 0; i < 2; ++i) ::fcntl(fds[i], F_SETFD, FD_CLOEXEC);
  return 0;
#endif
}

}  // namespace

absl::Status InstallStopHandler(StopSource* stop) {
  if (MakePipe(signal_pipe) != 0) {
    return absl::ErrnoToStatus(errno, "canal: cannot create the signal pipe");
  }
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    if (::sigaction(sig, &action, nullptr) != 0) {
      return absl::ErrnoToStatus(errno,
                                 "canal: cannot install a signal handler");
    }
  }
  // The watcher blocks for the life of the process, so it is detached.
  std::thread([stop] {
    char byte;
    while (true) {
      const ssize_t n = ::read(signal_pipe[0], &byte, 1);
      if (n == 1) {
        stop->Stop();
      } else if (n == 0 || errno != EINTR) {
        return;
      }
    }
  }).detach();
  return absl::OkStatus();
}

}  // namespace canal_cli
