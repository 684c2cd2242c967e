// POSIX parts of the `canal` tool: standard streams and signals.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "tools/canal/platform.h"

namespace canal_cli {
namespace {

int signal_pipe[2] = {-1, -1};

void OnSignal(int) {
  const int saved = errno;
  const char byte = 1;
  (void)!::write(signal_pipe[1], &byte, 1);
  errno = saved;
}

}  // namespace

void PrepareStdio() { ::signal(SIGPIPE, SIG_IGN); }

absl::StatusOr<size_t> ReadStdin(absl::Span<char> buffer) {
  while (true) {
    const ssize_t n = ::read(STDIN_FILENO, buffer.data(), buffer.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return absl::ErrnoToStatus(errno, "reading stdin");
  }
}

bool StdoutIsTerminal() { return ::isatty(STDOUT_FILENO) == 1; }

bool StdinIsTerminal() { return ::isatty(STDIN_FILENO) == 1; }

void InstallStopHandler(StopSource* stop) {
  if (::pipe(signal_pipe) != 0) return;
  for (int fd : signal_pipe) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &action, nullptr);
  // The watcher does the real work outside signal context. It blocks for the
  // life of the process, so it is detached.
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
}

}  // namespace canal_cli
