// SPDX-License-Identifier: Apache-2.0
// `canal list`, in-process. POSIX: live listeners in a directory against
// planted files (stale locks, symlinks, FIFOs, hostile names, a listener
// still starting). Windows: the pipes of \\.\pipe\, or under Wine (which
// cannot enumerate them) the documented failure.

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_util.h"
#include "tests/tools/cli_test_util.h"

#ifndef _WIN32
#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#endif

namespace {

using canal_cli_test::AwaitListener;
using canal_cli_test::Capture;
using canal_cli_test::RunCli;
using canal_cli_test::Server;
using canal_test::UniqueName;

// `canal list ARGS --json`, parsed; fails the test on a bad exit or JSON.
nlohmann::json ListJson(std::vector<std::string> args) {
  Capture c;
  args.insert(args.begin(), "list");
  args.push_back("--json");
  EXPECT_EQ(RunCli(args, c), 0) << c.Err();
  nlohmann::json j = nlohmann::json::parse(c.Out(), nullptr, false);
  EXPECT_TRUE(j.is_array()) << c.Out();
  return j;
}

const nlohmann::json* Find(const nlohmann::json& list,
                           const std::string& name) {
  for (const auto& p : list) {
    if (p.is_object() && p["name"] == name) return &p;
  }
  return nullptr;
}

#ifdef _WIN32

TEST(ListTest, ListsPipesOrSaysWhyNot) {
  const std::string name = UniqueName("list-win");
  Server server({"serve", name, "--message", "--echo", "--max-instances", "3"});
  AwaitListener(name);
  Capture c;
  const int code = RunCli({"list"}, c);
  if (canal_test::RunningUnderWine()) {
    // Wine fails FindFirstFile and NtQueryDirectoryFile on \\.\pipe\.
    EXPECT_EQ(code, canal_cli::kExitError);
    EXPECT_TRUE(absl::StrContains(c.Err(), "cannot list named pipes"))
        << c.Err();
    EXPECT_EQ(server.Stop(), 0);
    GTEST_SKIP() << "Wine cannot enumerate \\\\.\\pipe\\: " << c.Err();
  }
  ASSERT_EQ(code, 0) << c.Err();
  nlohmann::json list = ListJson({});
  const nlohmann::json* p = Find(list, name);
  ASSERT_NE(p, nullptr) << list.dump();
  EXPECT_EQ((*p)["path"], "\\\\.\\pipe\\" + name);
  EXPECT_EQ((*p)["max_instances"], 3);
  EXPECT_TRUE((*p)["instances"].is_number());
  EXPECT_TRUE((*p)["mode"].is_null());  // not known without connecting
  EXPECT_EQ(server.Stop(), 0);
}

TEST(ListTest, DirIsForPosixOnly) {
  Capture c;
  EXPECT_EQ(RunCli({"list", "C:\\"}, c), canal_cli::kExitUsage) << c.Err();
}

#else  // POSIX

// A private directory for native socket paths, removed afterwards.
class ListDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/canal-list-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    (void)!std::system(("rm -rf '" + dir_ + "'").c_str());
  }
  std::string Path(const std::string& file) const { return dir_ + "/" + file; }
  // Plants what a listener of `socket` keeps beside its socket: an empty
  // lock file and a metadata file holding `line`. Returns the descriptor of
  // the lock file (open, not locked); the metadata file's is in `*meta_fd`
  // if asked for, else closed.
  int Plant(const std::string& socket, const std::string& line,
            int* meta_fd = nullptr) {
    const std::string lock = Path(socket + ".canal~lock");
    const int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0) << lock;
    const std::string meta = Path(socket + ".canal~meta");
    const int mfd = ::open(meta.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    EXPECT_GE(mfd, 0) << meta;
    EXPECT_EQ(::write(mfd, line.data(), line.size()),
              static_cast<ssize_t>(line.size()));
    if (meta_fd != nullptr) {
      *meta_fd = mfd;
    } else {
      ::close(mfd);
    }
    return fd;
  }
  // Holds the locks a live listener holds on the files Plant made.
  static void HoldAsListener(int lock_fd, int meta_fd) {
    ASSERT_EQ(::flock(lock_fd, LOCK_EX | LOCK_NB), 0);
#if defined(F_OFD_SETLK)
    struct flock wr = {};
    wr.l_type = F_WRLCK;
    wr.l_whence = SEEK_SET;
    ASSERT_EQ(::fcntl(meta_fd, F_OFD_SETLK, &wr), 0);
#else
    (void)meta_fd;
#endif
  }
  std::string dir_;
};

TEST_F(ListDirTest, ShowsTheLiveListenerWithItsMetadata) {
  Server server(
      {"serve", Path("svc"), "--message", "--echo", "--max-instances", "3"});
  AwaitListener(Path("svc"));
  nlohmann::json list = ListJson({dir_});
  ASSERT_EQ(list.size(), 1u) << list.dump();
  const nlohmann::json& p = list[0];
  EXPECT_EQ(p["name"], "svc");
  EXPECT_EQ(p["path"], Path("svc"));
  EXPECT_EQ(p["mode"], "message");
  EXPECT_EQ(p["access"], "duplex");
  EXPECT_EQ(p["max_instances"], 3);
  EXPECT_TRUE(p["instances"].is_null());
  EXPECT_EQ(p["pid"], canal_test::CurrentProcessId());
  EXPECT_EQ(p["uid"], static_cast<int64_t>(::geteuid()));
  const passwd* pw = ::getpwuid(::geteuid());
  ASSERT_NE(pw, nullptr);
  EXPECT_EQ(p["user"], pw->pw_name);

  Capture table;
  EXPECT_EQ(RunCli({"list", dir_}, table), 0);
  EXPECT_TRUE(absl::StartsWith(table.Out(), "NAME")) << table.Out();
  const std::string pid = absl::StrCat(canal_test::CurrentProcessId());
  EXPECT_TRUE(absl::StrContains(
      table.Out(),
      absl::StrCat("svc   message  duplex  3          ", pid,
                   std::string(pid.size() < 3 ? 5 - pid.size() : 2, ' '),
                   pw->pw_name, "\n")))
      << table.Out();

  EXPECT_EQ(server.Stop(), 0);
  EXPECT_EQ(ListJson({dir_}).size(), 0u);  // gone with its listener
}

TEST_F(ListDirTest, LeavesOutWhatNoLiveListenerHolds) {
  const std::string line =
      "canal 1 mode=byte access=duplex max_instances=0 pid=1\n";
  ::close(Plant("ghost", line));  // a listener that exited: not locked
  ASSERT_EQ(::symlink(Path("ghost.canal~lock").c_str(),
                      Path("link.canal~lock").c_str()),
            0);
  ASSERT_EQ(::mkfifo(Path("fifo.canal~lock").c_str(), 0600), 0);
  ASSERT_EQ(::mkdir(Path("dir.canal~lock").c_str(), 0700), 0);
  ::close(Plant("", line));  // no name at all
  // Symlinks to held files elsewhere are still not followed.
  int held_meta = -1;
  const int held = Plant("real", line, &held_meta);
  HoldAsListener(held, held_meta);
  for (const char* suffix : {".canal~lock", ".canal~meta"}) {
    ASSERT_EQ(::rename(Path(std::string("real") + suffix).c_str(),
                       (dir_ + "-outside" + suffix).c_str()),
              0);
    ASSERT_EQ(::symlink((dir_ + "-outside" + suffix).c_str(),
                        Path(std::string("evil") + suffix).c_str()),
              0);
  }
#if defined(F_OFD_SETLK)
  // Where the listener's liveness is its write lock on the metadata: a
  // stale metadata file beside a lock file someone else holds is no
  // listener.
  int stale_meta = -1;
  const int squatter = Plant("squat", line, &stale_meta);
  ASSERT_EQ(::flock(squatter, LOCK_EX | LOCK_NB), 0);
#endif
  EXPECT_EQ(ListJson({dir_}).size(), 0u) << ListJson({dir_}).dump();
  ::close(held);
  ::close(held_meta);
#if defined(F_OFD_SETLK)
  ::close(squatter);
  ::close(stale_meta);
#endif
  ::unlink((dir_ + "-outside.canal~lock").c_str());
  ::unlink((dir_ + "-outside.canal~meta").c_str());
}

TEST_F(ListDirTest, HostileNamesAndStartingListeners) {
  // Held locks that a test plants: one with a name full of JSON and
  // terminal specials, one whose line is not complete yet (starting).
  const std::string weird = "we\"ird\\name\x1b[31m\t";
  int a_meta = -1;
  const int a =
      Plant(weird, "canal 1 mode=byte access=outbound max_instances=2 pid=77\n",
            &a_meta);
  HoldAsListener(a, a_meta);
  // Starting: the name lock is held, the metadata is not published yet.
  const int b = ::open(Path("starting.canal~lock").c_str(),
                       O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(b, 0);
  ASSERT_EQ(::flock(b, LOCK_EX | LOCK_NB), 0);
  nlohmann::json list = ListJson({dir_});
  ASSERT_EQ(list.size(), 2u) << list.dump();
  const nlohmann::json* w = Find(list, weird);
  ASSERT_NE(w, nullptr) << list.dump();
  EXPECT_EQ((*w)["access"], "outbound");
  EXPECT_EQ((*w)["max_instances"], 2);
  EXPECT_EQ((*w)["pid"], 77);
  const nlohmann::json* s = Find(list, "starting");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE((*s)["mode"].is_null());
  EXPECT_TRUE((*s)["pid"].is_null());
  EXPECT_EQ((*s)["uid"], static_cast<int64_t>(::geteuid()));
  ::close(a);
  ::close(a_meta);
  ::close(b);
}

TEST_F(ListDirTest, AMissingDirectoryIsNotFound) {
  Capture c;
  EXPECT_EQ(RunCli({"list", Path("nowhere")}, c), canal_cli::kExitNotFound);
  EXPECT_TRUE(absl::StrContains(c.Err(), "nowhere")) << c.Err();
}

TEST(ListTest, TheRuntimeDirectoryByDefault) {
  const std::string name = UniqueName("list-rt");
  Server server({"serve", name});
  AwaitListener(name);
  nlohmann::json list = ListJson({});
  const nlohmann::json* p = Find(list, name);
  ASSERT_NE(p, nullptr) << list.dump();
  EXPECT_EQ((*p)["mode"], "byte");
  EXPECT_EQ((*p)["max_instances"], 0);
  EXPECT_EQ(server.Stop(), 0);
  EXPECT_EQ(Find(ListJson({}), name), nullptr);
}

#endif

}  // namespace
