// SPDX-License-Identifier: Apache-2.0
// Attack: clients that make a canal::Server run out of memory. Each test
// runs the server in a forked child under an address-space limit
// (RLIMIT_AS) a little above what it already uses, so an allocation the
// server should not make fails at once instead of going unnoticed, and
// checks that the child survives, stays small and keeps serving:
//  - hostile clients announce messages of the full default limit (64 MiB)
//    and send a few bytes of each: the server must not allocate for bytes
//    that have not arrived;
//  - a client that really sends a message larger than the memory left: only
//    that connection ends, with ResourceExhausted;
//  - a Send larger than the memory left returns ResourceExhausted;
//  - Server::Start when the system cannot create its threads returns
//    ResourceExhausted.
// An exception escaping a server thread would end the child with SIGABRT.
//
// Under AddressSanitizer and ThreadSanitizer the limit is not set: their
// allocators abort the process instead of throwing std::bad_alloc, so it
// would test them, not canal. The first test then still measures the
// child's virtual size, which also shows an allocation made ahead of the
// bytes; the others need a failing allocation and are skipped.

#include <fcntl.h>
#include <linux/sockios.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "canal/canal.h"
#include "posix/memory_limit.h"
#include "posix/other_user.h"
#include "posix/raw_socket.h"
#include "test_util.h"

namespace canal_test {
namespace {

constexpr size_t kMiB = 1024 * 1024;
constexpr size_t kAnnounced = 64 * kMiB;  // The default max_message_size.

void WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// One line from `fd`, waiting up to `timeout`; empty at end of file or on
// timeout.
std::string ReadLine(int fd, absl::Duration timeout) {
  std::string line;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    pollfd p{fd, POLLIN, 0};
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return "";
    int rc = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) return "";
    char c;
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    if (c == '\n') return line;
    line.push_back(c);
  }
}

// A server child: `body` runs in a forked child with a line-based
// conversation with the parent (`to_parent`, `from_parent`); its exit
// status ends the child (_exit: nothing of the parent's test runs there).
class ServerChild {
 public:
  explicit ServerChild(
      std::function<int(int to_parent, int from_parent)> body) {
    int up[2], down[2];
    if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      close(up[0]);
      close(down[1]);
      _exit(body(up[1], down[0]));
    }
    close(up[1]);
    close(down[0]);
    from_child_ = up[0];
    to_child_ = down[1];
  }

  ~ServerChild() {
    if (to_child_ >= 0) close(to_child_);
    if (from_child_ >= 0) close(from_child_);
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  bool started() const { return pid_ > 0; }
  void Send(absl::string_view line) {
    WriteAll(to_child_, absl::StrCat(line, "\n"));
  }
  std::string Receive() { return ReadLine(from_child_, absl::Seconds(60)); }

  // How the child ended, e.g. "exit 0" or "signal 6"; closes our end of the
  // conversation first so that a child waiting for a command ends.
  std::string Wait() {
    close(to_child_);
    to_child_ = -1;
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) return "waitpid failed";
    reaped_ = true;
    if (WIFEXITED(status)) return absl::StrCat("exit ", WEXITSTATUS(status));
    return absl::StrCat("signal ", WTERMSIG(status));
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int to_child_ = -1;
  int from_child_ = -1;
};

// What a server child records about its connections.
struct CloseLog {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<absl::StatusCode> codes;

  void Add(const absl::Status& s) {
    std::lock_guard<std::mutex> lock(mu);
    codes.push_back(s.code());
    cv.notify_all();
  }
  // The codes once at least `n` connections closed ("timeout" otherwise).
  std::string WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(60),
                     [&] { return codes.size() >= n; })) {
      return "timeout";
    }
    std::string out;
    for (absl::StatusCode c : codes) {
      absl::StrAppend(&out, out.empty() ? "" : ",",
                      absl::StatusCodeToString(c));
    }
    return out;
  }
};

class ServerMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok()) << "cannot create a directory in /tmp";
  }

  SharedDir dir_{0700};
  const std::string path_ = dir_.PathOf("s");
};

// The echo server most tests use, started in the child.
absl::StatusOr<std::unique_ptr<canal::Server>> StartEcho(
    const std::string& path, CloseLog* log) {
  canal::ServerOptions options;
  options.listener.mode = canal::PipeMode::kMessage;
  canal::ServerHandlers handlers;
  handlers.on_request = [](canal::Connection&,
                           absl::string_view r) -> absl::StatusOr<std::string> {
    return std::string(r);
  };
  handlers.on_close = [log](canal::Connection&, const absl::Status& s) {
    log->Add(s);
  };
  return canal::Server::Start(path, options, std::move(handlers));
}

TEST_F(ServerMemoryTest, AnnouncedButUnsentMessagesCostNothing) {
  constexpr int kHostile = 8;
  ServerChild child([&](int up, int down) {
#ifdef M_ARENA_MAX
    // One malloc arena: a thread's first allocation would otherwise reserve
    // a 64 MiB arena of address space and blur the measurement.
    mallopt(M_ARENA_MAX, 1);
#endif
    CloseLog log;
    auto server = StartEcho(path_, &log);
    if (!server.ok()) {
      WriteAll(
          up, absl::StrCat("start failed: ", server.status().ToString(), "\n"));
      return 3;
    }
    // Room for five announced messages at most, fewer than are announced.
    if (!LimitAddressSpaceUnlessSanitized(5 * kAnnounced + 32 * kMiB)) return 4;
    const MemoryUse before = ReadMemoryUse();
    WriteAll(up, "ready\n");
    if (ReadLine(down, absl::Minutes(2)) != "measure") return 5;
    const MemoryUse after = ReadMemoryUse();
    WriteAll(up, absl::StrCat(static_cast<int64_t>(after.virtual_bytes) -
                                  static_cast<int64_t>(before.virtual_bytes),
                              " ",
                              static_cast<int64_t>(after.resident_bytes) -
                                  static_cast<int64_t>(before.resident_bytes),
                              "\n"));
    ReadLine(down, absl::Minutes(2));  // Until the parent is done.
    server->reset();
    return 0;
  });
  ASSERT_TRUE(child.started());
  ASSERT_EQ(child.Receive(), "ready");

  std::vector<int> hostile;
  for (int i = 0; i < kHostile; ++i) {
    int fd = ConnectRawPeer(path_);
    ASSERT_GE(fd, 0) << strerror(errno);
    WriteAll(fd, FrameHeader(static_cast<uint32_t>(kAnnounced)) +
                     "just a few bytes");
    hostile.push_back(fd);
  }
  // A good client is served meanwhile. Its round trips through the same
  // loop also tell when the server has read what the hostile clients sent
  // (their socket's unread count, SIOCOUTQ, drops to 0).
  bool all_read = false;
  for (int round = 0; round < 1000 && !all_read; ++round) {
    absl::StatusOr<std::string> reply =
        canal::Call(path_, absl::StrCat("good ", round), absl::Seconds(30));
    ASSERT_TRUE(reply.ok())
        << reply.status() << "; the child: " << child.Wait();
    EXPECT_EQ(*reply, absl::StrCat("good ", round));
    all_read = true;
    for (int fd : hostile) {
      int unread = -1;
      ASSERT_EQ(ioctl(fd, SIOCOUTQ, &unread), 0);
      if (unread != 0) all_read = false;
    }
  }
  ASSERT_TRUE(all_read) << "the server never read the hostile clients' bytes";
  child.Send("measure");
  const std::string measured = child.Receive();
  std::vector<std::string> parts = absl::StrSplit(measured, ' ');
  int64_t vm_growth = 0, rss_growth = 0;
  ASSERT_EQ(parts.size(), 2u)
      << "child said \"" << measured << "\"; the child: " << child.Wait();
  ASSERT_TRUE(absl::SimpleAtoi(parts[0], &vm_growth));
  ASSERT_TRUE(absl::SimpleAtoi(parts[1], &rss_growth));
  std::printf(
      "with %d clients announcing %zu MiB each: virtual size +%lld KiB, "
      "resident +%lld KiB\n",
      kHostile, kAnnounced / kMiB, static_cast<long long>(vm_growth / 1024),
      static_cast<long long>(rss_growth / 1024));
  // Less than one announced message, for all of them together.
  EXPECT_LT(vm_growth, static_cast<int64_t>(kAnnounced));
  EXPECT_LT(rss_growth, static_cast<int64_t>(16 * kMiB));
  for (int fd : hostile) close(fd);
  EXPECT_EQ(child.Wait(), "exit 0");
}

TEST_F(ServerMemoryTest, MessageLargerThanTheMemoryLeftEndsOnlyItsConnection) {
  if (kSanitizedAllocator)
    GTEST_SKIP() << "needs std::bad_alloc (see the top of the file)";
  ServerChild child([&](int up, int down) {
#ifdef M_ARENA_MAX
    mallopt(M_ARENA_MAX, 1);
#endif
    CloseLog log;
    auto server = StartEcho(path_, &log);
    if (!server.ok()) return 3;
    // Less than one whole message.
    if (!LimitAddressSpaceUnlessSanitized(kAnnounced / 2)) return 4;
    WriteAll(up, "ready\n");
    if (ReadLine(down, absl::Minutes(2)) != "closes") return 5;
    WriteAll(up, log.WaitFor(1) + "\n");
    ReadLine(down, absl::Minutes(2));
    server->reset();
    return 0;
  });
  ASSERT_TRUE(child.started());
  ASSERT_EQ(child.Receive(), "ready");
  int fd = ConnectRawPeer(path_);
  ASSERT_GE(fd, 0);
  // The whole message, until the server gives up on it.
  const std::string chunk(kMiB, 'm');
  std::string first = FrameHeader(static_cast<uint32_t>(kAnnounced));
  ASSERT_EQ(send(fd, first.data(), first.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(first.size()));
  size_t sent = 0;
  while (sent < kAnnounced) {
    ssize_t n = send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // The server closed the connection.
    sent += static_cast<size_t>(n);
  }
  child.Send("closes");
  EXPECT_EQ(child.Receive(), "RESOURCE_EXHAUSTED");
  close(fd);
  absl::StatusOr<std::string> reply =
      canal::Call(path_, "still served", absl::Seconds(30));
  CANAL_EXPECT_OK(reply);
  if (reply.ok()) {
    EXPECT_EQ(*reply, "still served");
  }
  EXPECT_EQ(child.Wait(), "exit 0");
}

TEST_F(ServerMemoryTest, SendLargerThanTheMemoryLeftIsResourceExhausted) {
  if (kSanitizedAllocator)
    GTEST_SKIP() << "needs std::bad_alloc (see the top of the file)";
  static constexpr size_t kHuge = 256 * kMiB;
  ServerChild child([&](int up, int down) {
#ifdef M_ARENA_MAX
    mallopt(M_ARENA_MAX, 1);
#endif
    // The data to send exists already (untouched pages cost nothing); a
    // copy of it does not fit.
    void* huge =
        mmap(nullptr, kHuge, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (huge == MAP_FAILED) return 3;
    canal::ServerOptions options;  // Byte mode: no message size limit.
    canal::ServerHandlers handlers;
    handlers.on_data = [huge](canal::Connection& c, absl::string_view) {
      absl::Status big =
          c.Send(absl::string_view(static_cast<const char*>(huge), kHuge));
      absl::Status small = c.Send(absl::StrCat(
          absl::StatusCodeToString(big.code()), " ",
          big.message().find("Server") != absl::string_view::npos, "\n"));
      (void)small;
    };
    auto server = canal::Server::Start(path_, options, std::move(handlers));
    if (!server.ok()) return 4;
    if (!LimitAddressSpaceUnlessSanitized(kHuge / 2)) return 5;
    WriteAll(up, "ready\n");
    ReadLine(down, absl::Minutes(2));
    server->reset();
    return 0;
  });
  ASSERT_TRUE(child.started());
  ASSERT_EQ(child.Receive(), "ready");
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(path_);
  CANAL_ASSERT_OK(client);
  CANAL_ASSERT_OK(client->Write("go"));
  std::string got;
  while (got.find('\n') == std::string::npos) {
    char buf[256];
    absl::StatusOr<canal::ReadResult> r =
        client->Read(absl::MakeSpan(buf), absl::Seconds(60));
    ASSERT_TRUE(r.ok()) << r.status() << "; the child: " << child.Wait();
    got.append(buf, r->size);
  }
  // The first reply (a request split over two reads gets two).
  EXPECT_EQ(got.substr(0, got.find('\n')), "RESOURCE_EXHAUSTED 1");
  EXPECT_EQ(child.Wait(), "exit 0");
}

TEST_F(ServerMemoryTest, StartWithoutRoomForItsThreadsIsResourceExhausted) {
  if (kSanitizedAllocator)
    GTEST_SKIP() << "needs std::bad_alloc (see the top of the file)";
  ServerChild child([&](int up, int) {
    // Thread stacks (8 MiB each by default) do not fit 64 of them.
    if (!LimitAddressSpaceUnlessSanitized(64 * kMiB)) return 3;
    canal::ServerOptions options;
    options.threads = 64;
    absl::StatusOr<std::unique_ptr<canal::Server>> server =
        canal::Server::Start(path_, options, canal::ServerHandlers());
    WriteAll(up, absl::StrCat(absl::StatusCodeToString(server.status().code()),
                              "\n"));
    if (server.ok()) return 0;
    // Everything was released: the name can be taken again at once.
    options.threads = 1;
    server = canal::Server::Start(path_, options, canal::ServerHandlers());
    WriteAll(up, absl::StrCat(absl::StatusCodeToString(server.status().code()),
                              "\n"));
    return 0;
  });
  ASSERT_TRUE(child.started());
  EXPECT_EQ(child.Receive(), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(child.Receive(), "OK");
  EXPECT_EQ(child.Wait(), "exit 0");
}

}  // namespace
}  // namespace canal_test
