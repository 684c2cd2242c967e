// SPDX-License-Identifier: Apache-2.0
// Attack: a program that forks and execs children from other threads while
// it uses canal (any program that runs a helper tool, a shell command or a
// Subprocess) must never hand one of canal's descriptors to such a child:
// an inherited listening socket, accepted connection, lock file or wake-up
// pipe lets an unrelated program read a client's data, keep a name alive
// after its listener closed, or break canal's end-of-stream detection.
// Every descriptor canal creates must therefore be close-on-exec from the
// call that creates it (SOCK_CLOEXEC, O_CLOEXEC, pipe2, EPOLL_CLOEXEC, ...).
// Setting FD_CLOEXEC afterwards leaves a window of a few instructions in
// which another thread's fork+exec inherits it.
//
// That window is far too small to hit by chance, so this test makes the
// worst timing happen every time: it interposes (in this executable) every
// descriptor-creating C library call that canal uses, and each wrapper, right
// after the real call returns and before canal sees the result, forks and
// execs a small reporter (inherit_report) that says whether it inherited the
// new descriptors. The test then drives every part of canal that creates
// descriptors: Listener::Create, Channel::Connect, Listener::Accept,
// Server::Start and its connections, CreatePipe, Fifo opens, Subprocess and
// Run.

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "canal/canal.h"
#include "test_util.h"

extern char** environ;

namespace {

// Set while the test drives canal: only then do the wrappers check, so that
// GoogleTest's own files do not count.
std::atomic<bool> g_armed{false};

struct Findings {
  std::mutex mu;
  std::vector<std::string> inherited;  // What leaked, and from which call.
  std::map<std::string, int> checked;  // Call -> descriptors checked.
};

Findings& GetFindings() {
  static Findings* const findings = new Findings();
  return *findings;
}

// The real function behind an interposed name, looked up once per call
// site. No function-local static: its initialisation guard may wait with
// syscall(SYS_futex), which is interposed too.
template <typename Fn>
Fn Real(std::atomic<void*>* slot, const char* name) {
  void* sym = slot->load(std::memory_order_acquire);
  if (sym == nullptr) {
    sym = dlsym(RTLD_NEXT, name);
    if (sym == nullptr) {
      std::fprintf(stderr, "inherit_test: dlsym(%s) failed\n", name);
      std::abort();
    }
    slot->store(sym, std::memory_order_release);
  }
  return reinterpret_cast<Fn>(sym);
}

#define CANAL_TEST_REAL(type, name)       \
  static std::atomic<void*> real_slot_{}; \
  const auto real = Real<type>(&real_slot_, name)

// Whether the code at `caller` belongs to canal: this executable (which
// links canal's objects in a static build) or libcanal. Sanitizer runtimes,
// for one, make pipes of their own.
bool FromCanal(void* caller) {
  Dl_info here{}, there{};
  if (dladdr(reinterpret_cast<void*>(&FromCanal), &here) == 0 ||
      dladdr(caller, &there) == 0) {
    return true;  // Unknown: check it.
  }
  if (there.dli_fbase == here.dli_fbase) return true;
  return there.dli_fname != nullptr &&
         std::strstr(there.dli_fname, "libcanal") != nullptr;
}

// Forks and execs the reporter for the descriptors `fds` that `call` has
// just created for the code at `caller`, while the calling thread is still
// inside canal, and records what it says.
void CheckNotInherited(const char* call, void* caller, const int* fds,
                       int count) {
  if (!g_armed.load() || !FromCanal(caller)) return;
  const int saved_errno = errno;
  const char* reporter = std::getenv("CANAL_INHERIT_REPORTER");
  std::vector<std::string> args;
  args.push_back(reporter != nullptr ? reporter : "inherit_report");
  for (int i = 0; i < count; ++i) {
    struct stat st;
    if (fds[i] < 0 || fstat(fds[i], &st) != 0) continue;
    args.push_back(absl::StrCat(fds[i], ":",
                                static_cast<unsigned long long>(st.st_dev), ":",
                                static_cast<unsigned long long>(st.st_ino)));
  }
  if (args.size() > 1) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(&a[0]);
    argv.push_back(nullptr);
    // Everything the child needs is prepared: it only execs.
    const pid_t pid = fork();
    if (pid == 0) {
      execve(argv[0], argv.data(), environ);
      _exit(127);
    }
    int status = 0;
    pid_t waited = -1;
    if (pid > 0) {
      do {
        waited = waitpid(pid, &status, 0);
      } while (waited < 0 && errno == EINTR);
    }
    Findings& f = GetFindings();
    std::lock_guard<std::mutex> lock(f.mu);
    f.checked[call] += static_cast<int>(args.size() - 1);
    std::vector<int> made(fds, fds + count);
    if (pid < 0 || waited != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) > 1) {
      f.inherited.push_back(absl::StrCat(call, ": could not run the reporter (",
                                         args[0], "), status ", status));
    } else if (WEXITSTATUS(status) == 1) {
      f.inherited.push_back(absl::StrCat(
          call, " made descriptor(s) ", absl::StrJoin(made, ", "),
          " without close-on-exec: a child forked right after it inherited "
          "them"));
    }
  }
  errno = saved_errno;
}

void CheckOne(const char* call, void* caller, int fd) {
  if (fd >= 0) CheckNotInherited(call, caller, &fd, 1);
}

#define CANAL_TEST_CALLER __builtin_return_address(0)

}  // namespace

// --- The interposed calls ----------------------------------------------------
// Each calls the next definition (the C library, or a sanitizer runtime in
// front of it) and checks what it made. Both the plain and the 64-bit names
// are covered: with _FILE_OFFSET_BITS=64 (Meson's default) glibc's headers
// turn open and fcntl into open64 and fcntl64, so the wrappers name their
// symbols explicitly.

extern "C" {

int pipe(int fds[2]) {
  CANAL_TEST_REAL(int (*)(int*), "pipe");
  const int rc = real(fds);
  if (rc == 0) CheckNotInherited("pipe", CANAL_TEST_CALLER, fds, 2);
  return rc;
}

int pipe2(int fds[2], int flags) {
  CANAL_TEST_REAL(int (*)(int*, int), "pipe2");
  const int rc = real(fds, flags);
  if (rc == 0) CheckNotInherited("pipe2", CANAL_TEST_CALLER, fds, 2);
  return rc;
}

int socket(int domain, int type, int protocol) {
  CANAL_TEST_REAL(int (*)(int, int, int), "socket");
  const int fd = real(domain, type, protocol);
  CheckOne("socket", CANAL_TEST_CALLER, fd);
  return fd;
}

int socketpair(int domain, int type, int protocol, int fds[2]) {
  CANAL_TEST_REAL(int (*)(int, int, int, int*), "socketpair");
  const int rc = real(domain, type, protocol, fds);
  if (rc == 0) CheckNotInherited("socketpair", CANAL_TEST_CALLER, fds, 2);
  return rc;
}

int accept(int fd, struct sockaddr* addr, socklen_t* len) {
  CANAL_TEST_REAL(int (*)(int, sockaddr*, socklen_t*), "accept");
  const int made = real(fd, addr, len);
  CheckOne("accept", CANAL_TEST_CALLER, made);
  return made;
}

int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
  CANAL_TEST_REAL(int (*)(int, sockaddr*, socklen_t*, int), "accept4");
  const int made = real(fd, addr, len, flags);
  CheckOne("accept4", CANAL_TEST_CALLER, made);
  return made;
}

int eventfd(unsigned int initval, int flags) {
  CANAL_TEST_REAL(int (*)(unsigned int, int), "eventfd");
  const int fd = real(initval, flags);
  CheckOne("eventfd", CANAL_TEST_CALLER, fd);
  return fd;
}

int epoll_create(int size) {
  CANAL_TEST_REAL(int (*)(int), "epoll_create");
  const int fd = real(size);
  CheckOne("epoll_create", CANAL_TEST_CALLER, fd);
  return fd;
}

int epoll_create1(int flags) {
  CANAL_TEST_REAL(int (*)(int), "epoll_create1");
  const int fd = real(flags);
  CheckOne("epoll_create1", CANAL_TEST_CALLER, fd);
  return fd;
}

#define CANAL_TEST_OPEN_WRAPPER(wrapper, fn)                          \
  int wrapper(const char* path, int flags, ...) __asm__(#fn);         \
  int wrapper(const char* path, int flags, ...) {                     \
    CANAL_TEST_REAL(int (*)(const char*, int, ...), #fn);             \
    mode_t mode = 0;                                                  \
    if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) { \
      va_list ap;                                                     \
      va_start(ap, flags);                                            \
      mode = static_cast<mode_t>(va_arg(ap, int));                    \
      va_end(ap);                                                     \
    }                                                                 \
    const int fd = real(path, flags, mode);                           \
    CheckOne(#fn, CANAL_TEST_CALLER, fd);                             \
    return fd;                                                        \
  }
CANAL_TEST_OPEN_WRAPPER(CanalTestOpen, open)
CANAL_TEST_OPEN_WRAPPER(CanalTestOpen64, open64)
#undef CANAL_TEST_OPEN_WRAPPER

#define CANAL_TEST_OPENAT_WRAPPER(wrapper, fn)                           \
  int wrapper(int dirfd, const char* path, int flags, ...) __asm__(#fn); \
  int wrapper(int dirfd, const char* path, int flags, ...) {             \
    CANAL_TEST_REAL(int (*)(int, const char*, int, ...), #fn);           \
    mode_t mode = 0;                                                     \
    if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {    \
      va_list ap;                                                        \
      va_start(ap, flags);                                               \
      mode = static_cast<mode_t>(va_arg(ap, int));                       \
      va_end(ap);                                                        \
    }                                                                    \
    const int fd = real(dirfd, path, flags, mode);                       \
    CheckOne(#fn, CANAL_TEST_CALLER, fd);                                \
    return fd;                                                           \
  }
CANAL_TEST_OPENAT_WRAPPER(CanalTestOpenat, openat)
CANAL_TEST_OPENAT_WRAPPER(CanalTestOpenat64, openat64)
#undef CANAL_TEST_OPENAT_WRAPPER

// What _FORTIFY_SOURCE builds call for open/openat without a mode.
int __open_2(const char* path, int flags) {
  CANAL_TEST_REAL(int (*)(const char*, int), "__open_2");
  const int fd = real(path, flags);
  CheckOne("__open_2", CANAL_TEST_CALLER, fd);
  return fd;
}

int __open64_2(const char* path, int flags) {
  CANAL_TEST_REAL(int (*)(const char*, int), "__open64_2");
  const int fd = real(path, flags);
  CheckOne("__open64_2", CANAL_TEST_CALLER, fd);
  return fd;
}

int __openat_2(int dirfd, const char* path, int flags) {
  CANAL_TEST_REAL(int (*)(int, const char*, int), "__openat_2");
  const int fd = real(dirfd, path, flags);
  CheckOne("__openat_2", CANAL_TEST_CALLER, fd);
  return fd;
}

#define CANAL_TEST_CREAT_WRAPPER(wrapper, fn)              \
  int wrapper(const char* path, mode_t mode) __asm__(#fn); \
  int wrapper(const char* path, mode_t mode) {             \
    CANAL_TEST_REAL(int (*)(const char*, mode_t), #fn);    \
    const int fd = real(path, mode);                       \
    CheckOne(#fn, CANAL_TEST_CALLER, fd);                  \
    return fd;                                             \
  }
CANAL_TEST_CREAT_WRAPPER(CanalTestCreat, creat)
CANAL_TEST_CREAT_WRAPPER(CanalTestCreat64, creat64)
#undef CANAL_TEST_CREAT_WRAPPER

int dup(int fd) {
  CANAL_TEST_REAL(int (*)(int), "dup");
  const int made = real(fd);
  CheckOne("dup", CANAL_TEST_CALLER, made);
  return made;
}

int dup2(int fd, int target) {
  CANAL_TEST_REAL(int (*)(int, int), "dup2");
  const int made = real(fd, target);
  CheckOne("dup2", CANAL_TEST_CALLER, made);
  return made;
}

int dup3(int fd, int target, int flags) {
  CANAL_TEST_REAL(int (*)(int, int, int), "dup3");
  const int made = real(fd, target, flags);
  CheckOne("dup3", CANAL_TEST_CALLER, made);
  return made;
}

// fcntl's third argument is an int or a pointer; like the C library, pass
// it on as a pointer-sized value.
#define CANAL_TEST_FCNTL_WRAPPER(wrapper, fn)     \
  int wrapper(int fd, int cmd, ...) __asm__(#fn); \
  int wrapper(int fd, int cmd, ...) {             \
    CANAL_TEST_REAL(int (*)(int, int, ...), #fn); \
    va_list ap;                                   \
    va_start(ap, cmd);                            \
    void* arg = va_arg(ap, void*);                \
    va_end(ap);                                   \
    const int rc = real(fd, cmd, arg);            \
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) \
      CheckOne(#fn, CANAL_TEST_CALLER, rc);       \
    return rc;                                    \
  }
CANAL_TEST_FCNTL_WRAPPER(CanalTestFcntl, fcntl)
CANAL_TEST_FCNTL_WRAPPER(CanalTestFcntl64, fcntl64)
#undef CANAL_TEST_FCNTL_WRAPPER

// For descriptors made through syscall(2): pidfd_open (Subprocess) and
// memfd_create. Six register-sized arguments, as the C library's own
// syscall() takes them.
long syscall(long number, ...) {
  CANAL_TEST_REAL(long (*)(long, ...), "syscall");
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (long& v : a) v = va_arg(ap, long);
  va_end(ap);
  const long rc = real(number, a[0], a[1], a[2], a[3], a[4], a[5]);
#ifdef SYS_pidfd_open
  if (number == SYS_pidfd_open)
    CheckOne("syscall(pidfd_open)", CANAL_TEST_CALLER, static_cast<int>(rc));
#endif
#ifdef SYS_memfd_create
  if (number == SYS_memfd_create)
    CheckOne("syscall(memfd_create)", CANAL_TEST_CALLER, static_cast<int>(rc));
#endif
  return rc;
}

}  // extern "C"

namespace canal_test {
namespace {

class InheritTest : public ::testing::Test {
 protected:
  void SetUp() override {
    {
      Findings& f = GetFindings();
      std::lock_guard<std::mutex> lock(f.mu);
      f.inherited.clear();
      f.checked.clear();
    }
    ASSERT_NE(std::getenv("CANAL_INHERIT_REPORTER"), nullptr)
        << "run through meson test (CANAL_INHERIT_REPORTER is unset)";
    // The reporter itself works: a descriptor made without close-on-exec
    // is reported as inherited.
    g_armed.store(true);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    g_armed.store(false);
    close(fds[0]);
    close(fds[1]);
    Findings& f = GetFindings();
    std::lock_guard<std::mutex> lock(f.mu);
    ASSERT_EQ(f.inherited.size(), 1u)
        << "the reporter did not see a plain pipe() inherited";
    f.inherited.clear();
    f.checked.clear();
  }

  void TearDown() override {
    g_armed.store(false);
    // For the log: which calls made the descriptors that were checked.
    Findings& f = GetFindings();
    std::lock_guard<std::mutex> lock(f.mu);
    std::printf("descriptors checked:");
    for (const auto& entry : f.checked) {
      std::printf(" %s=%d", entry.first.c_str(), entry.second);
    }
    std::printf("\n");
  }

  // What leaked while armed; empty is the goal.
  std::string Leaks() {
    Findings& f = GetFindings();
    std::lock_guard<std::mutex> lock(f.mu);
    return absl::StrJoin(f.inherited, "\n");
  }

  // How many descriptors made by any of `calls` were checked.
  int Checked(std::initializer_list<const char*> calls) {
    Findings& f = GetFindings();
    std::lock_guard<std::mutex> lock(f.mu);
    int n = 0;
    for (const char* c : calls) {
      auto it = f.checked.find(c);
      if (it != f.checked.end()) n += it->second;
    }
    return n;
  }
};

TEST_F(InheritTest, ListenerConnectAcceptNeverLeak) {
  const std::string name = UniqueName("inh-lca");
  canal::ListenerOptions options = MessageOptions();
  options.max_instances = 2;  // Slot files too.
  g_armed.store(true);
  absl::StatusOr<ConnectedPair> pair = MakePair(name, options);
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_OK(pair->client.WriteMessage("ping"));
  absl::StatusOr<std::string> got = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "ping");
  g_armed.store(false);
  EXPECT_EQ(Leaks(), "");
  EXPECT_GT(Checked({"socket"}), 0);
  EXPECT_GT(Checked({"accept4", "accept"}), 0);
  EXPECT_GT(Checked({"open", "open64", "openat", "openat64"}), 0);
}

TEST_F(InheritTest, ServerNeverLeaks) {
  const std::string name = UniqueName("inh-srv");
  canal::ServerOptions options;
  options.listener.mode = canal::PipeMode::kMessage;
  options.threads = 2;
  canal::ServerHandlers handlers;
  handlers.on_request = [](canal::Connection&,
                           absl::string_view r) -> absl::StatusOr<std::string> {
    return std::string(r);
  };
  g_armed.store(true);
  auto server = canal::Server::Start(name, options, std::move(handlers));
  CANAL_ASSERT_OK(server);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::string> reply = canal::Call(name, "hello", kHangGuard);
    CANAL_ASSERT_OK(reply);
    EXPECT_EQ(*reply, "hello");
  }
  server->reset();
  g_armed.store(false);
  EXPECT_EQ(Leaks(), "");
  EXPECT_GT(Checked({"pipe", "pipe2", "eventfd"}), 0);
  EXPECT_GT(Checked({"accept4", "accept"}), 0);
  if (canal::Server::LoopKind() == "epoll") {
    EXPECT_GT(Checked({"epoll_create1", "epoll_create"}), 0);
  }
}

TEST_F(InheritTest, PipesFifosAndSubprocessesNeverLeak) {
  char tmpl[] = "/tmp/canal-inherit-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string fifo = std::string(tmpl) + "/f";
  g_armed.store(true);
  {
    absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
    CANAL_ASSERT_OK(pipe);
    CANAL_ASSERT_OK(pipe->write_end.Write("x"));
    CANAL_ASSERT_OK(canal::Fifo::Create(fifo));
    absl::StatusOr<canal::Channel> reader = canal::Fifo::OpenRead(fifo);
    CANAL_ASSERT_OK(reader);
    absl::StatusOr<canal::Channel> writer =
        canal::Fifo::OpenWrite(fifo, kHangGuard);
    CANAL_ASSERT_OK(writer);
    CANAL_ASSERT_OK(writer->Write("y"));

    canal::SubprocessOptions sp;
    sp.stdin_mode = canal::StdioMode::kPipe;
    sp.stdout_mode = canal::StdioMode::kPipe;
    sp.stderr_mode = canal::StdioMode::kNull;
    sp.extra.channel = &pipe->read_end;
    sp.extra.posix_fd = 5;
    absl::StatusOr<canal::Subprocess> child =
        canal::Subprocess::Start({"/bin/cat"}, sp);
    CANAL_ASSERT_OK(child);
    CANAL_ASSERT_OK(child->stdin_channel().Write("through cat"));
    child->stdin_channel().Close();
    absl::StatusOr<std::string> out =
        ReadExactly(child->stdout_channel(), 11, kHangGuard);
    CANAL_ASSERT_OK(out);
    EXPECT_EQ(*out, "through cat");
    absl::StatusOr<canal::ExitStatus> exit = child->Wait(kHangGuard);
    CANAL_ASSERT_OK(exit);
    EXPECT_TRUE(exit->success());

    absl::StatusOr<canal::RunResult> run = canal::Run({"/bin/echo", "hi"}, "");
    CANAL_ASSERT_OK(run);
    EXPECT_EQ(run->stdout_data, "hi\n");
  }
  g_armed.store(false);
  EXPECT_EQ(Leaks(), "");
  EXPECT_GT(Checked({"pipe", "pipe2"}), 0);
  EXPECT_GT(Checked({"open", "open64", "openat", "openat64"}), 0);
  EXPECT_GT(Checked({"fcntl", "fcntl64"}), 0);
  (void)canal::Fifo::Remove(fifo);
  rmdir(tmpl);
}

}  // namespace
}  // namespace canal_test
