// SPDX-License-Identifier: Apache-2.0
// Paths swapped between create and use: in a directory another user can
// write, the path canal just created (a FIFO, the runtime directory, the
// socket) or just opened (a FIFO's read end) may name something else a
// moment later, e.g. a link to a file of the victim. canal must never
// change anything through the path after that moment, nor use a different
// file than the one it made or opened.
//
// The window is a few instructions wide, too small to hit by chance, so the
// swap is forced: this test binary interposes mkfifo, mkdir, bind and open
// (its definitions come before the C library's; each calls the real one
// through dlsym(RTLD_NEXT)) and, for the one path a test arms, performs the
// attacker's swap right after the real call returns. canal is linked into
// the test statically, so its calls go through these wrappers. The swap is
// done by this (root) process on the attacker's behalf, with the renames
// and links an attacker who can write the directory could make.

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstring>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/attack/attacker.h"
#include "posix/raw_socket.h"
#include "posix/runtime_dir_fixture.h"
#include "posix/other_user.h"
#include "test_util.h"

namespace canal_test {
namespace {

// The armed swap: which call, on which path, and what the attacker does.
// Only the test's thread arms and fires swaps, but any thread of the
// process may pass through the wrappers, hence the atomic.
enum class Call { kNone, kMkfifo, kMkdir, kBind, kOpen };
std::atomic<Call> armed_call{Call::kNone};
std::string armed_path;
std::function<void()> armed_swap;

// Arms `swap` to run once, right after the next successful `call` on
// `path`.
void Arm(Call call, const std::string& path, std::function<void()> swap) {
  armed_path = path;
  armed_swap = std::move(swap);
  armed_call = call;
}

void Disarm() {
  armed_call = Call::kNone;
  armed_swap = nullptr;
}

void AfterCall(Call call, const char* path) {
  if (armed_call.load() != call || path == nullptr || armed_path != path) {
    return;
  }
  std::function<void()> swap = std::move(armed_swap);
  Disarm();  // Before the swap: it may make the same calls itself.
  swap();
}

template <typename Fn>
Fn Real(const char* symbol) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, symbol));
}

}  // namespace
}  // namespace canal_test

extern "C" int mkfifo(const char* path, mode_t mode) {
  static const auto real =
      canal_test::Real<int (*)(const char*, mode_t)>("mkfifo");
  const int rc = real(path, mode);
  if (rc == 0) canal_test::AfterCall(canal_test::Call::kMkfifo, path);
  return rc;
}

extern "C" int mkdir(const char* path, mode_t mode) {
  static const auto real =
      canal_test::Real<int (*)(const char*, mode_t)>("mkdir");
  const int rc = real(path, mode);
  if (rc == 0) canal_test::AfterCall(canal_test::Call::kMkdir, path);
  return rc;
}

extern "C" int bind(int fd, const struct sockaddr* addr, socklen_t len) {
  static const auto real =
      canal_test::Real<int (*)(int, const struct sockaddr*, socklen_t)>("bind");
  const int rc = real(fd, addr, len);
  if (rc == 0 && addr != nullptr && addr->sa_family == AF_UNIX) {
    const auto* un = reinterpret_cast<const struct sockaddr_un*>(addr);
    if (un->sun_path[0] != '\0') {
      canal_test::AfterCall(canal_test::Call::kBind, un->sun_path);
    }
  }
  return rc;
}

// With _FILE_OFFSET_BITS=64 (Meson's default) the C library's open is
// reached as open64, which is what canal's object code calls.
extern "C" int open64(const char* path, int flags, ...) {
  static const auto real =
      canal_test::Real<int (*)(const char*, int, ...)>("open64");
  mode_t mode = 0;
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
    va_list args;
    va_start(args, flags);
    mode = static_cast<mode_t>(va_arg(args, unsigned int));
    va_end(args);
  }
  const int rc = real(path, flags, mode);
  if (rc >= 0) canal_test::AfterCall(canal_test::Call::kOpen, path);
  return rc;
}

namespace canal_test {
namespace {

class PathSwap : public ::testing::Test {
 protected:
  void SetUp() override {
    CANAL_SKIP_UNLESS_ROOT();
    ASSERT_TRUE(dir_.ok());
    victim_ = MakeVictimFile(dir_.PathOf("victim"));
    ASSERT_FALSE(victim_.empty());
    victim_before_ = Snap(victim_);
  }
  void TearDown() override {
    EXPECT_TRUE(armed_call.load() == Call::kNone) << "an armed swap never ran";
    Disarm();
    if (!victim_.empty()) {
      EXPECT_EQ(Snap(victim_), victim_before_) << "the victim's file changed";
    }
  }

  // Moves what canal made at `path` aside and puts `what` there.
  static void SwapInSymlink(const std::string& path, const std::string& to) {
    ASSERT_EQ(rename(path.c_str(), (path + ".moved").c_str()), 0)
        << strerror(errno);
    ASSERT_EQ(symlink(to.c_str(), path.c_str()), 0) << strerror(errno);
  }

  // A directory anybody may change (not sticky), as a careless
  // CANAL_RUNTIME_DIR parent or a shared drop directory would be.
  SharedDir dir_{0777};
  std::string victim_;
  Snapshot victim_before_;
};

// Sets the umask for one scope, so that canal has to fix a mode.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(umask(mask)) {}
  ~ScopedUmask() { umask(old_); }

 private:
  mode_t old_;
};

TEST_F(PathSwap, FifoCreateNeverChmodsWhatReplacedTheFifo) {
  ScopedUmask mask(022);  // 0666 needs a chmod after mkfifo.
  const std::string path = dir_.PathOf("app.fifo");
  Arm(Call::kMkfifo, path, [&] { SwapInSymlink(path, victim_); });
  const absl::Status status = canal::Fifo::Create(path, 0666);
  EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
  EXPECT_TRUE(absl::StrContains(status.message(), "replaced")) << status;
  // The link is left where the attacker put it.
  struct stat st;
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST_F(PathSwap, FifoCreateNeverChmodsAHardLinkOrAnotherUsersFifo) {
  ScopedUmask mask(022);
  // A hard link to the victim's file.
  const std::string path = dir_.PathOf("app.fifo");
  Arm(Call::kMkfifo, path, [&] {
    ASSERT_EQ(rename(path.c_str(), (path + ".moved").c_str()), 0);
    ASSERT_EQ(link(victim_.c_str(), path.c_str()), 0) << strerror(errno);
  });
  CANAL_EXPECT_CODE(canal::Fifo::Create(path, 0666), kPermissionDenied);
  // The attacker's own FIFO, mode 0600.
  const std::string other = dir_.PathOf("other.fifo");
  const std::string theirs = dir_.PathOf("theirs.fifo");
  ASSERT_TRUE(PlantAsAttacker(PlantKind::kFifo, theirs, ""));
  ASSERT_EQ(chmod(theirs.c_str(), 0600), 0);
  const Snapshot theirs_before = Snap(theirs);
  Arm(Call::kMkfifo, other, [&] {
    ASSERT_EQ(rename(other.c_str(), (other + ".moved").c_str()), 0);
    ASSERT_EQ(rename(theirs.c_str(), other.c_str()), 0);
  });
  CANAL_EXPECT_CODE(canal::Fifo::Create(other, 0666), kPermissionDenied);
  EXPECT_EQ(Snap(other), theirs_before);
}

TEST_F(PathSwap, RuntimeDirModeIsNeverSetThroughASwappedPath) {
  // The victim's directory, mode 0755, which a chmod(0700) through the
  // link would lock everyone out of.
  const std::string victim_dir = dir_.PathOf("victim.d");
  ASSERT_EQ(::mkdir(victim_dir.c_str(), 0755), 0);
  ASSERT_EQ(chmod(victim_dir.c_str(), 0755), 0);
  const Snapshot victim_dir_before = Snap(victim_dir);
  const std::string runtime_dir = dir_.PathOf("rt");
  ScopedEnv env("CANAL_RUNTIME_DIR", runtime_dir);
  Arm(Call::kMkdir, runtime_dir,
      [&] { SwapInSymlink(runtime_dir, victim_dir); });
  const std::string name = UniqueName("swap-rt");
  const absl::Status status = canal::Listener::Create(name).status();
  EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
  EXPECT_EQ(Snap(victim_dir), victim_dir_before);
  EXPECT_FALSE(IsSocket(victim_dir + "/" + name));

  // The same with a link to a file, and a umask that leaves the new
  // directory short of 0700 (so a mode must be set).
  ScopedUmask mask(0277);
  const std::string second = dir_.PathOf("rt2");
  ScopedEnv env2("CANAL_RUNTIME_DIR", second);
  Arm(Call::kMkdir, second, [&] { SwapInSymlink(second, victim_); });
  CANAL_EXPECT_CODE(canal::Listener::Create(UniqueName("swap-rt2")),
                    kPermissionDenied);
}

TEST_F(PathSwap, SocketSwappedRightAfterBindIsRefusedAndLeftAlone) {
  const std::string path = dir_.PathOf("svc");
  Arm(Call::kBind, path, [&] { SwapInSymlink(path, victim_); });
  canal::ListenerOptions options;
  options.access_policy.scope = canal::AccessPolicy::Scope::kAllLocalUsers;
  const absl::Status status = canal::Listener::Create(path, options).status();
  EXPECT_TRUE(absl::IsPermissionDenied(status)) << status;
  // What the attacker put there is not canal's to remove; canal's own files
  // are gone.
  struct stat st;
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_NE(lstat((path + ".canal~lock").c_str(), &st), 0);
  EXPECT_NE(lstat((path + ".canal~meta").c_str(), &st), 0);
  // The name is free again for a listener (once the link is gone).
  ASSERT_EQ(unlink(path.c_str()), 0);
  CANAL_EXPECT_OK(canal::Listener::Create(path, options));
}

TEST_F(PathSwap, FifoOpenReadKeepsItsWriteEndOnTheSameFifo) {
  const std::string path = dir_.PathOf("app.fifo");
  CANAL_ASSERT_OK(canal::Fifo::Create(path, 0600));
  // The attacker's FIFO, which it reads: it sees a writer come and go if
  // canal opens the path again after the swap.
  const std::string theirs = dir_.PathOf("theirs.fifo");
  ASSERT_EQ(::mkfifo(theirs.c_str(), 0666), 0);
  Fd theirs_reader(open(theirs.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(theirs_reader.valid());
  Arm(Call::kOpen, path, [&] {
    ASSERT_EQ(rename(path.c_str(), (path + ".moved").c_str()), 0);
    ASSERT_EQ(rename(theirs.c_str(), path.c_str()), 0);
  });
  absl::StatusOr<canal::Channel> in = canal::Fifo::OpenRead(path);
  Disarm();
  CANAL_ASSERT_OK(in);
  // No writer yet on our FIFO: a read waits (our private write end is on
  // it) instead of seeing end of stream.
  char c;
  CANAL_EXPECT_CODE(in->Read(absl::MakeSpan(&c, 1), absl::Milliseconds(50)),
                    kDeadlineExceeded);
  // A writer of our FIFO (now at the moved path) reaches the channel.
  {
    Fd writer(
        open((path + ".moved").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    ASSERT_TRUE(writer.valid()) << strerror(errno);
    ASSERT_EQ(write(writer.get(), "ours", 4), 4);
  }
  absl::StatusOr<std::string> got = ReadExactly(*in, 4);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "ours");
  in->Close();
  // canal never opened the attacker's FIFO: no writer ever came and went.
  pollfd p{theirs_reader.get(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0) << "revents " << p.revents;
}

}  // namespace
}  // namespace canal_test
