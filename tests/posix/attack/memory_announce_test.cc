// SPDX-License-Identifier: Apache-2.0
// Memory attacks on the POSIX message channel: peers announce large
// (allowed: the default 64 MiB max_message_size) messages and send only a
// few bytes, many of them at once, through ReadMessage, Read, Peek and
// Transact; and a real message larger than what is left of the reader's
// address space. Each case runs in a forked child whose address space is
// limited with setrlimit(RLIMIT_AS): the child must survive (an escaped
// std::bad_alloc is SIGABRT), its resident memory (/proc/self/statm) must
// stay within a bound proportional to the bytes the peers sent, a
// timed-out ReadMessage must give back what it cannot use, and an
// allocation that really fails must be ResourceExhausted.
//
// Under AddressSanitizer and ThreadSanitizer the address-space limit and the
// memory bounds do not apply (their allocators reserve shadow memory, keep
// freed memory in quarantine and abort instead of throwing): the same
// attacks then run without the limit, checking only the statuses, and the
// forced allocation failure is skipped.

#include <malloc.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "posix/memory_limit.h"
#include "posix/other_user.h"
#include "posix/raw_socket.h"
#include "test_util.h"

namespace canal_test {
namespace {

constexpr uint32_t k64MiB = 64u * 1024 * 1024;
constexpr size_t kMiB = 1024 * 1024;

constexpr bool kLimitsApply = !kSanitizedAllocator;

size_t Resident() { return ReadMemoryUse().resident_bytes; }

// Child exit codes: 0 success, kChildSetupFailed, or one of these.
constexpr int kWrongStatus = 10;
constexpr int kTooMuchMemory = 11;
constexpr int kWrongData = 12;

// Runs `body` in a forked child (RunInChild) and returns its exit code.
int InChild(const std::function<int()>& body) {
  return RunInChild([&]() -> int {
#ifdef __GLIBC__
    // Large buffers straight from mmap and back to the system when freed,
    // so that resident memory measures what is held, not what malloc
    // caches.
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024);
#endif
    return body();
  });
}

// Joins `thread` when the scope ends, after `release()` (which unblocks
// it), so that an early return from a child never leaves it joinable.
class JoinAtEnd {
 public:
  JoinAtEnd(std::thread* thread, std::function<void()> release)
      : thread_(thread), release_(std::move(release)) {}
  ~JoinAtEnd() {
    if (!thread_->joinable()) return;
    release_();
    thread_->join();
  }
  JoinAtEnd(const JoinAtEnd&) = delete;
  JoinAtEnd& operator=(const JoinAtEnd&) = delete;

 private:
  std::thread* thread_;
  std::function<void()> release_;
};

class MemoryAnnounce : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok()) << "cannot create a directory in /tmp";
  }
  SharedDir dir_{0700};
  const std::string path_ = dir_.PathOf("s");  // A native name: the path.
};

// How the victim reads the hostile announcement.
enum class Via { kReadMessage, kRead, kPeek };

std::string ViaName(Via via) {
  switch (via) {
    case Via::kReadMessage:
      return "ReadMessage";
    case Via::kRead:
      return "Read";
    case Via::kPeek:
      return "Peek";
  }
  return "?";
}

// 16 raw peers each send a header announcing 64 MiB and 4 payload bytes
// (12 bytes each), and 4 more after the victim's first round of reads; the
// victim reads every channel in both rounds and keeps them all open. The
// old behaviour sized the whole message as soon as bytes of it arrived:
// 64 MiB per peer, far beyond the 48 MiB of address space left.
class ManyPeers : public MemoryAnnounce,
                  public ::testing::WithParamInterface<Via> {};

TEST_P(ManyPeers, AnnouncementsCostOnlyTheBytesSent) {
  const Via via = GetParam();
  constexpr int kPeers = 16;
  constexpr size_t kSentPerPeer = 16;
  const int rc = InChild([&]() -> int {
    canal::ListenerOptions options = MessageOptions();  // 64 MiB limit.
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(path_, options);
    CHILD_CHECK(listener.ok(), kChildSetupFailed, "Create: %s",
                listener.status().ToString().c_str());
    std::vector<int> peers;
    std::vector<canal::Channel> channels;
    for (int i = 0; i < kPeers; ++i) {
      const int fd = ConnectRawPeer(path_);
      CHILD_CHECK(fd >= 0, kChildSetupFailed, "connect");
      peers.push_back(fd);
      absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(10));
      CHILD_CHECK(ch.ok(), kChildSetupFailed, "Accept: %s",
                  ch.status().ToString().c_str());
      channels.push_back(*std::move(ch));
      CHILD_CHECK(WriteAll(fd, FrameHeader(k64MiB) + "abcd"), kChildSetupFailed,
                  "send");
    }
    // Read's buffer is the caller's and may be as large as the message; it
    // is reserved (not touched) before the limit.
    std::unique_ptr<char[]> big(new char[k64MiB]);
    char small[16];
    const size_t before = Resident();
    CHILD_CHECK(LimitAddressSpaceUnlessSanitized(48 * kMiB), kChildSetupFailed,
                "setrlimit");
    for (int round = 0; round < 2; ++round) {
      if (round == 1) {
        for (int fd : peers) {
          CHILD_CHECK(WriteAll(fd, "efgh"), kChildSetupFailed, "send");
        }
      }
      for (canal::Channel& ch : channels) {
        absl::Status status;
        switch (via) {
          case Via::kReadMessage:
            status = ch.ReadMessage(absl::Milliseconds(5)).status();
            break;
          case Via::kRead:
            status = ch.Read(absl::MakeSpan(big.get(), k64MiB),
                             absl::Milliseconds(5))
                         .status();
            break;
          case Via::kPeek: {
            // The announced length counts, as on Windows; only the bytes
            // that arrived are copied. Between the rounds 2 of them are
            // read, which works although the rest never comes.
            const size_t taken = round == 0 ? 0 : 2;
            const std::string arrived =
                std::string(round == 0 ? "abcd" : "abcdefgh").substr(taken);
            absl::StatusOr<canal::PeekResult> p =
                ch.Peek(absl::MakeSpan(small));
            CHILD_CHECK(p.ok(), kWrongStatus, "Peek: %s",
                        p.status().ToString().c_str());
            CHILD_CHECK(p->size == arrived.size() &&
                            p->message_remaining == k64MiB - taken &&
                            p->available == k64MiB - taken,
                        kWrongData, "Peek: size %zu remaining %zu avail %zu",
                        p->size, p->message_remaining, p->available);
            CHILD_CHECK(std::string(small, p->size) == arrived, kWrongData,
                        "Peek bytes");
            if (round == 0) {
              absl::StatusOr<canal::ReadResult> r =
                  ch.Read(absl::MakeSpan(small, 2), absl::Seconds(5));
              CHILD_CHECK(r.ok() && r->size == 2 && r->more, kWrongData,
                          "Read after Peek: %s", r.status().ToString().c_str());
            }
            continue;
          }
        }
        CHILD_CHECK(status.code() == absl::StatusCode::kDeadlineExceeded,
                    kWrongStatus, "%s: %s", ViaName(via).c_str(),
                    status.ToString().c_str());
      }
    }
    const size_t after = Resident();
    std::fprintf(stderr, "child: %s: resident grew by %zu bytes\n",
                 ViaName(via).c_str(), after - before);
    // Everything is still held: every channel, with its announced message
    // pending. A few pages per peer, where the old code kept 64 MiB each.
    const size_t bound = 2 * kMiB + kPeers * (64 * 1024 + 4 * kSentPerPeer);
    if (kLimitsApply) {
      CHILD_CHECK(after <= before + bound, kTooMuchMemory,
                  "resident grew by %zu bytes (bound %zu)", after - before,
                  bound);
    }
    for (int fd : peers) ::close(fd);
    return 0;
  });
  EXPECT_EQ(rc, 0) << "child exit code (200 + n: killed by signal n)";
}

INSTANTIATE_TEST_SUITE_P(Via, ManyPeers,
                         ::testing::Values(Via::kReadMessage, Via::kRead,
                                           Via::kPeek),
                         [](const ::testing::TestParamInfo<Via>& info) {
                           return ViaName(info.param);
                         });

// Transact: 8 hostile servers each answer a request with a reply header
// announcing 64 MiB and 4 bytes; every client's Transact times out, and the
// clients keep their channels.
TEST_F(MemoryAnnounce, HostileRepliesToTransactCostOnlyTheBytesSent) {
  constexpr int kClients = 8;
  const int rc = InChild([&]() -> int {
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(path_, MessageOptions());
    CHILD_CHECK(listener.ok(), kChildSetupFailed, "Create");
    std::vector<canal::Channel> clients;
    std::vector<canal::Channel> servers;
    for (int i = 0; i < kClients; ++i) {
      absl::StatusOr<canal::Channel> c = canal::Channel::Connect(path_);
      CHILD_CHECK(c.ok(), kChildSetupFailed, "Connect: %s",
                  c.status().ToString().c_str());
      clients.push_back(*std::move(c));
      absl::StatusOr<canal::Channel> s = listener->Accept(absl::Seconds(10));
      CHILD_CHECK(s.ok(), kChildSetupFailed, "Accept");
      servers.push_back(*std::move(s));
    }
    // The hostile side, started before the limit (a thread's stack is
    // address space too): reads each request, answers with a raw header.
    absl::Notification go;
    int server_failures = 0;
    std::thread hostile([&] {
      go.WaitForNotification();
      for (canal::Channel& s : servers) {
        absl::StatusOr<std::string> request = s.ReadMessage(absl::Seconds(10));
        if (!request.ok() ||
            !WriteAll(s.native_handle(), FrameHeader(k64MiB) + "abcd")) {
          ++server_failures;
        }
      }
    });
    JoinAtEnd join(&hostile, [&] {
      if (!go.HasBeenNotified()) go.Notify();
      for (canal::Channel& s : servers) s.Close();
    });
    const size_t before = Resident();
    CHILD_CHECK(LimitAddressSpaceUnlessSanitized(48 * kMiB), kChildSetupFailed,
                "setrlimit");
    go.Notify();
    int wrong = 0;
    for (canal::Channel& c : clients) {
      absl::StatusOr<std::string> reply =
          c.Transact("request", absl::Milliseconds(200));
      if (reply.status().code() != absl::StatusCode::kDeadlineExceeded) {
        std::fprintf(stderr, "child: Transact: %s\n",
                     reply.status().ToString().c_str());
        ++wrong;
      }
    }
    hostile.join();
    CHILD_CHECK(server_failures == 0, kChildSetupFailed, "hostile server");
    CHILD_CHECK(wrong == 0, kWrongStatus, "%d Transacts", wrong);
    const size_t after = Resident();
    std::fprintf(stderr, "child: Transact: resident grew by %zu bytes\n",
                 after - before);
    const size_t bound = 2 * kMiB + kClients * 64 * 1024;
    if (kLimitsApply) {
      CHILD_CHECK(after <= before + bound, kTooMuchMemory,
                  "resident grew by %zu bytes (bound %zu)", after - before,
                  bound);
    }
    return 0;
  });
  EXPECT_EQ(rc, 0) << "child exit code (200 + n: killed by signal n)";
}

// One peer announces 32 MiB and sends 8 MiB of it, in steps, each read by a
// ReadMessage that times out: afterwards the victim holds about what
// arrived (the old code kept the whole announced 32 MiB), and once the rest
// comes the message is whole and intact.
TEST_F(MemoryAnnounce, TimedOutReadMessageKeepsOnlyWhatArrived) {
  constexpr size_t kSent = 8 * kMiB;
  constexpr size_t kMessage = 32 * kMiB;
  const int rc = InChild([&]() -> int {
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(path_, MessageOptions());
    CHILD_CHECK(listener.ok(), kChildSetupFailed, "Create");
    const int peer = ConnectRawPeer(path_);
    CHILD_CHECK(peer >= 0, kChildSetupFailed, "connect");
    absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(10));
    CHILD_CHECK(ch.ok(), kChildSetupFailed, "Accept");
    const std::string payload = Pattern(kMessage, 7);
    CHILD_CHECK(WriteAll(peer, FrameHeader(static_cast<uint32_t>(kMessage))),
                kChildSetupFailed, "send");
    // The writer of the rest, started before the limit (its stack is
    // address space too).
    absl::Notification go;
    std::thread writer([&] {
      go.WaitForNotification();
      (void)WriteAll(peer, absl::string_view(payload).substr(kSent));
    });
    JoinAtEnd join(&writer, [&] {
      if (!go.HasBeenNotified()) go.Notify();
      ch->Close();
      ::shutdown(peer, SHUT_RDWR);
    });
    const size_t before = Resident();
    CHILD_CHECK(LimitAddressSpaceUnlessSanitized(64 * kMiB), kChildSetupFailed,
                "setrlimit");
    size_t sent = 0;
    while (sent < kSent) {
      // What the socket takes without blocking, then a read that drains
      // it and times out.
      const ssize_t n = ::send(peer, payload.data() + sent,
                               std::min<size_t>(kSent - sent, 256 * 1024),
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) sent += static_cast<size_t>(n);
      CHILD_CHECK(n > 0 || errno == EAGAIN || errno == EINTR, kChildSetupFailed,
                  "send: %s", std::strerror(errno));
      absl::StatusOr<std::string> m = ch->ReadMessage(absl::Milliseconds(1));
      CHILD_CHECK(m.status().code() == absl::StatusCode::kDeadlineExceeded,
                  kWrongStatus, "ReadMessage: %s",
                  m.status().ToString().c_str());
    }
    // Drain whatever is still in the socket into the channel.
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<std::string> m = ch->ReadMessage(absl::Milliseconds(5));
      CHILD_CHECK(m.status().code() == absl::StatusCode::kDeadlineExceeded,
                  kWrongStatus, "ReadMessage: %s",
                  m.status().ToString().c_str());
    }
    const size_t after = Resident();
    std::fprintf(stderr, "child: holding %zu bytes after %zu arrived\n",
                 after - before, kSent);
    if (kLimitsApply) {
      const size_t bound = kSent + kSent / 4 + 2 * kMiB;
      CHILD_CHECK(after <= before + bound, kTooMuchMemory,
                  "holding %zu bytes after %zu arrived (bound %zu)",
                  after - before, kSent, bound);
    }
    // The rest arrives: one whole, intact message.
    go.Notify();
    absl::StatusOr<std::string> m = ch->ReadMessage(absl::Seconds(20));
    writer.join();
    CHILD_CHECK(m.ok(), kWrongStatus, "final ReadMessage: %s",
                m.status().ToString().c_str());
    CHILD_CHECK(*m == payload, kWrongData, "message differs");
    ::close(peer);
    return 0;
  });
  EXPECT_EQ(rc, 0) << "child exit code (200 + n: killed by signal n)";
}

// A real 64 MiB message for a reader with 48 MiB of address space left:
// ReadMessage cannot hold it and says so with ResourceExhausted (the old
// code died of an uncaught std::bad_alloc); the channel stays usable and
// the message can still be read in parts, intact.
TEST_F(MemoryAnnounce,
       RealMessageLargerThanTheAddressSpaceIsResourceExhausted) {
  if (!kLimitsApply) {
    GTEST_SKIP() << "sanitizer allocators abort on a failed allocation "
                    "instead of throwing std::bad_alloc";
  }
  const int rc = InChild([&]() -> int {
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(path_, MessageOptions());
    CHILD_CHECK(listener.ok(), kChildSetupFailed, "Create");
    absl::StatusOr<canal::Channel> client = canal::Channel::Connect(path_);
    CHILD_CHECK(client.ok(), kChildSetupFailed, "Connect");
    absl::StatusOr<canal::Channel> server = listener->Accept(absl::Seconds(10));
    CHILD_CHECK(server.ok(), kChildSetupFailed, "Accept");
    const std::string message = Pattern(k64MiB, 9);
    absl::Status written;
    std::thread writer(
        [&] { written = client->WriteMessage(message, absl::Seconds(60)); });
    JoinAtEnd join(&writer, [&] { server->Close(); });
    CHILD_CHECK(LimitAddressSpaceUnlessSanitized(48 * kMiB), kChildSetupFailed,
                "setrlimit");
    absl::StatusOr<std::string> whole = server->ReadMessage(absl::Seconds(30));
    if (whole.status().code() != absl::StatusCode::kResourceExhausted) {
      std::fprintf(stderr, "child: ReadMessage: %s\n",
                   whole.status().ToString().c_str());
      return kWrongStatus;
    }
    // In parts, 1 MiB at a time: every byte, in order.
    std::unique_ptr<char[]> part(new char[kMiB]);
    size_t got = 0;
    bool same = true;
    while (true) {
      absl::StatusOr<canal::ReadResult> r =
          server->Read(absl::MakeSpan(part.get(), kMiB), absl::Seconds(30));
      if (!r.ok()) {
        std::fprintf(stderr, "child: Read after %zu: %s\n", got,
                     r.status().ToString().c_str());
        same = false;
        break;
      }
      if (got + r->size > message.size() ||
          std::memcmp(part.get(), message.data() + got, r->size) != 0) {
        same = false;
      }
      got += r->size;
      if (!r->more) break;
    }
    writer.join();
    CHILD_CHECK(written.ok(), kWrongStatus, "WriteMessage: %s",
                written.ToString().c_str());
    CHILD_CHECK(same && got == message.size(), kWrongData,
                "parts differ (%zu bytes)", got);
    return 0;
  });
  EXPECT_EQ(rc, 0) << "child exit code (200 + n: killed by signal n)";
}

}  // namespace
}  // namespace canal_test
