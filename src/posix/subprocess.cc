// SPDX-License-Identifier: Apache-2.0
// Subprocess for POSIX: posix_spawn with file actions (no fork in a
// threaded process; glibc's posix_spawn uses CLONE_VFORK and reports exec
// failures), waiting with a pidfd where Linux has one.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "src/internal/backend.h"
#include "src/internal/deadline.h"
#include "src/internal/errors.h"
#include "src/posix/error.h"
#include "src/posix/io.h"
#include "src/posix/pipe.h"

extern char** environ;

#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define CANAL_HAVE_ADDCLOSEFROM 1
#endif
#if (defined(__GLIBC__) &&                                            \
     (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))) || \
    defined(__APPLE__)
#define CANAL_HAVE_ADDCHDIR 1
#endif

namespace canal {
namespace internal {
namespace posix {
namespace {

// Children left running by a destroyed Subprocess whose reaper thread could
// not be started: reaped (without blocking) whenever a child is started or
// another Subprocess is destroyed, so that they do not stay zombies for
// long.
ABSL_CONST_INIT absl::Mutex orphans_mu(absl::kConstInit);
std::vector<pid_t>* orphans ABSL_GUARDED_BY(orphans_mu) = nullptr;

void ReapOrphans() {
  absl::MutexLock lock(&orphans_mu);
  if (orphans == nullptr) return;
  std::vector<pid_t>& pids = *orphans;
  for (size_t i = 0; i < pids.size();) {
    int status;
    pid_t r;
    do {
      r = ::waitpid(pids[i], &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
      ++i;
      continue;
    }
    // Reaped, or no longer ours to wait for.
    pids[i] = pids.back();
    pids.pop_back();
  }
}

// Reaps `pid` once it exits, without blocking the caller.
void ReapLater(pid_t pid) {
  try {
    std::thread([pid] {
      int status;
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }).detach();
    return;
  } catch (const std::system_error&) {
    // No thread now: remember the child instead.
  } catch (const std::bad_alloc&) {
  }
  absl::MutexLock lock(&orphans_mu);
  try {
    if (orphans == nullptr) orphans = new std::vector<pid_t>();
    orphans->push_back(pid);
  } catch (const std::bad_alloc&) {
    // Out of memory as well: the child stays a zombie until this process
    // exits. Nothing else can be done without blocking here.
  }
}

class PosixProcess final : public ProcessImpl {
 public:
  PosixProcess(pid_t pid, bool kill_on_destroy)
      : pid_(pid), kill_on_destroy_(kill_on_destroy) {
#if defined(__linux__) && defined(SYS_pidfd_open)
    // Close-on-exec by definition. Older kernels: ENOSYS, then Wait polls.
    pidfd_.Reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
#endif
  }

  ~PosixProcess() override {
    ReapOrphans();
    absl::MutexLock lock(&mu_);
    if (reaped_ || ReapLocked(WNOHANG)) return;
    if (kill_on_destroy_) {
      ::kill(pid_, SIGKILL);
      ReapLocked(0);
      return;
    }
    // Still running and to be left alone: reap it when it ends, so that no
    // zombie remains.
    ReapLater(pid_);
  }

  int64_t pid() const override { return pid_; }

  absl::StatusOr<ExitStatus> Wait(absl::Duration timeout) override {
    const Deadline deadline(timeout);
    absl::Duration backoff = absl::Milliseconds(1);
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (reaped_ || ReapLocked(WNOHANG)) return status_;
        if (!wait_error_.ok()) return wait_error_;
      }
      if (deadline.expired()) {
        return MakeError(absl::StatusCode::kDeadlineExceeded, "Wait",
                         absl::StrCat("pid ", pid_),
                         "the child is still running");
      }
      if (pidfd_.valid()) {
        pollfd p;
        p.fd = pidfd_.get();
        p.events = POLLIN;
        p.revents = 0;
        PollUntil(&p, 1, deadline);
      } else {
        SleepWithin(backoff, deadline);
        backoff = std::min(backoff * 2, absl::Milliseconds(20));
      }
    }
  }

  absl::Status Kill() override {
    absl::MutexLock lock(&mu_);
    // Never signal a reaped pid: it may belong to another process by now.
    if (reaped_) return absl::OkStatus();
    if (::kill(pid_, SIGKILL) != 0 && errno != ESRCH) {
      return ErrnoError("Kill", absl::StrCat("pid ", pid_), "kill failed",
                        errno);
    }
    return absl::OkStatus();
  }

 private:
  // waitpid with `flags`; true once reaped (status_ filled).
  bool ReapLocked(int flags) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &status, flags);
    } while (r < 0 && errno == EINTR);
    if (r == 0) return false;
    if (r < 0) {
      // ECHILD: someone else reaped it (SIGCHLD set to SIG_IGN, or a
      // waitpid(-1) elsewhere). The exit status is lost.
      wait_error_ = ErrnoError(absl::StatusCode::kFailedPrecondition, "Wait",
                               absl::StrCat("pid ", pid_),
                               "the child was reaped by someone else", errno);
      reaped_ = true;
      return false;
    }
    reaped_ = true;
    if (WIFEXITED(status)) {
      status_.exited = true;
      status_.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      status_.exited = false;
      status_.signal = WTERMSIG(status);
    }
    return true;
  }

  const pid_t pid_;
  const bool kill_on_destroy_;
  UniqueFd pidfd_;
  absl::Mutex mu_;
  bool reaped_ ABSL_GUARDED_BY(mu_) = false;
  ExitStatus status_ ABSL_GUARDED_BY(mu_);
  absl::Status wait_error_ ABSL_GUARDED_BY(mu_);
};

// posix_spawn_file_actions_t / posix_spawnattr_t with destructors.
struct FileActions {
  FileActions() { posix_spawn_file_actions_init(&actions); }
  ~FileActions() { posix_spawn_file_actions_destroy(&actions); }
  posix_spawn_file_actions_t actions;
};
struct SpawnAttr {
  SpawnAttr() { posix_spawnattr_init(&attr); }
  ~SpawnAttr() { posix_spawnattr_destroy(&attr); }
  posix_spawnattr_t attr;
};

absl::Status SpawnError(const std::string& program, int err) {
  if (err == ENOENT || err == ENOTDIR) {
    return ErrnoError(absl::StatusCode::kNotFound, "Start", program,
                      "the program or the working directory does not exist",
                      err);
  }
  return ErrnoError("Start", program, "posix_spawn failed", err);
}

}  // namespace

absl::StatusOr<StartedProcess> StartProcess(
    const std::vector<std::string>& argv, const SubprocessOptions& options) {
  const std::string& program = argv[0];
  ReapOrphans();
#ifndef CANAL_HAVE_ADDCHDIR
  if (!options.working_dir.empty()) {
    return MakeError(absl::StatusCode::kUnimplemented, "Start", program,
                     "this C library cannot set a working directory in "
                     "posix_spawn");
  }
#endif
  StartedProcess started;
  const int extra_target =
      options.extra.channel != nullptr ? options.extra.posix_fd : -1;
  const int max_target = std::max(2, extra_target);

  // The child's descriptors (close-on-exec here), by target number.
  UniqueFd child_end[3];
  auto make_pipe = [&](int target, Channel* parent_channel,
                       const char* what) -> absl::Status {
    int fds[2];
    if (!MakeCloexecPipe(fds)) {
      return ErrnoError("Start", program, "cannot create a pipe", errno);
    }
    UniqueFd read_fd(fds[0]);
    UniqueFd write_fd(fds[1]);
    const bool parent_reads = target != 0;
    child_end[target] = parent_reads ? std::move(write_fd) : std::move(read_fd);
    auto impl = PosixPipeChannel::Create(
        parent_reads ? std::move(read_fd) : std::move(write_fd), parent_reads,
        absl::StrCat(what, " of ", program));
    if (!impl.ok()) return impl.status();
    *parent_channel = Channel(*std::move(impl));
    return absl::OkStatus();
  };
  auto open_null = [&](int target) -> absl::Status {
    const int fd = ::open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
      return ErrnoError("Start", program, "cannot open /dev/null", errno);
    child_end[target].Reset(fd);
    return absl::OkStatus();
  };
  const StdioMode modes[3] = {options.stdin_mode, options.stdout_mode,
                              options.stderr_mode};
  Channel* channels[3] = {&started.stdin_channel, &started.stdout_channel,
                          &started.stderr_channel};
  const char* names[3] = {"stdin", "stdout", "stderr"};
  for (int target = 0; target < 3; ++target) {
    if (modes[target] == StdioMode::kPipe) {
      absl::Status s = make_pipe(target, channels[target], names[target]);
      if (!s.ok()) return s;
    } else if (modes[target] == StdioMode::kNull) {
      absl::Status s = open_null(target);
      if (!s.ok()) return s;
    }
  }

  // Every source descriptor is copied above all target numbers, so that no
  // dup2 in the child overwrites a source still needed, and dup2 never gets
  // the same number twice (which would keep FD_CLOEXEC set).
  std::vector<UniqueFd> high;
  // Room for every copy first, so that storing one never fails after the
  // descriptor was made (three standard streams and the extra one).
  high.reserve(4);
  auto high_copy = [&](int fd) -> int {
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, max_target + 1);
    if (copy >= 0) high.emplace_back(copy);
    return copy;
  };
  FileActions fa;
  int rc = 0;
  for (int target = 0; target < 3 && rc == 0; ++target) {
    if (!child_end[target].valid()) continue;
    const int copy = high_copy(child_end[target].get());
    if (copy < 0)
      return ErrnoError("Start", program, "fcntl(F_DUPFD) failed", errno);
    rc = posix_spawn_file_actions_adddup2(&fa.actions, copy, target);
  }
  if (rc == 0 && options.stderr_mode == StdioMode::kStdout) {
    // After stdout's own redirection (if any): stderr joins it.
    rc = posix_spawn_file_actions_adddup2(&fa.actions, 1, 2);
  }
  if (rc == 0 && extra_target >= 0) {
    const int copy = high_copy(options.extra.channel->native_handle());
    if (copy < 0)
      return ErrnoError("Start", program, "fcntl(F_DUPFD) failed", errno);
    rc = posix_spawn_file_actions_adddup2(&fa.actions, copy, extra_target);
  }
#ifdef CANAL_HAVE_ADDCLOSEFROM
  // Descriptors between 3 and the extra one, and everything above: only
  // the intended descriptors survive, even ones another library opened
  // without O_CLOEXEC. (A close action on a number that is not open is
  // ignored.)
  for (int fd = 3; fd < extra_target && rc == 0; ++fd) {
    rc = posix_spawn_file_actions_addclose(&fa.actions, fd);
  }
  if (rc == 0) {
    rc = posix_spawn_file_actions_addclosefrom_np(&fa.actions, max_target + 1);
  }
#endif
#ifdef CANAL_HAVE_ADDCHDIR
  if (rc == 0 && !options.working_dir.empty()) {
    rc = posix_spawn_file_actions_addchdir_np(&fa.actions,
                                              options.working_dir.c_str());
  }
#endif
  if (rc != 0) return SpawnError(program, rc);

  // Default signal dispositions and an empty mask in the child, whatever
  // this process (or thread) has ignored or blocked.
  SpawnAttr sa;
  sigset_t empty;
  sigset_t all;
  sigemptyset(&empty);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&sa.attr, &empty);
  posix_spawnattr_setsigdefault(&sa.attr, &all);
  posix_spawnattr_setflags(&sa.attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  // The environment.
  std::map<std::string, std::string> env;
  if (!options.clear_environment) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      const std::string entry(*e);
      const size_t eq = entry.find('=');
      if (eq == std::string::npos) continue;
      env[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
  }
  for (const auto& [name, value] : options.environment) env[name] = value;
  if (extra_target >= 0 && !options.extra.env_var.empty()) {
    env[options.extra.env_var] = absl::StrCat(extra_target);
  }
  std::vector<std::string> env_strings;
  env_strings.reserve(env.size());
  for (const auto& [name, value] : env) {
    env_strings.push_back(absl::StrCat(name, "=", value));
  }
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(&s[0]);
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (std::string& s : args) argp.push_back(&s[0]);
  argp.push_back(nullptr);

  pid_t pid = 0;
  if (program.find('/') != std::string::npos) {
    rc = posix_spawn(&pid, program.c_str(), &fa.actions, &sa.attr, argp.data(),
                     envp.data());
  } else {
    rc = posix_spawnp(&pid, program.c_str(), &fa.actions, &sa.attr, argp.data(),
                      envp.data());
  }
  if (rc != 0) return SpawnError(program, rc);
  // The child's ends (and their high copies) close here, so the parent's
  // channels see EOF / EPIPE when the child ends.
  started.process.reset(new (std::nothrow)
                            PosixProcess(pid, options.kill_on_destroy));
  if (started.process == nullptr) {
    // Without the object nobody could wait for the child: stop it now.
    ::kill(pid, SIGKILL);
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return MakeError(absl::StatusCode::kResourceExhausted, "Start", program,
                     "out of memory after starting the child; it was killed");
  }
  return started;
}

}  // namespace posix

absl::StatusOr<StartedProcess> BackendStartProcess(
    const std::vector<std::string>& argv, const SubprocessOptions& options) {
  return posix::StartProcess(argv, options);
}

}  // namespace internal
}  // namespace canal
