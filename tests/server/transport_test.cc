// SPDX-License-Identifier: Apache-2.0
// canal::Server over shared memory (ServerOptions::listener.transport =
// kSharedMemory, served by the channel loop): its connections really move
// their data into the rings (the client's Channel::transport() says so
// after a round trip), and the server's documented behaviours hold there:
// echo in both modes, flow control (pause and resume), the idle timeout,
// Shutdown's drain, Connection::Close, a client that closes with replies
// queued, a client that dies, and a client that refuses shared memory.
// The other suites run over shared memory too (server-shm/..., see
// meson.build); these tests set the transport themselves and check it.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "canal/subprocess.h"
#include "server_test_util.h"

namespace canal_test {
namespace {

canal::ServerOptions Shm(canal::PipeMode mode) {
  canal::ServerOptions options;
  options.listener.mode = mode;
  options.listener.transport = canal::Transport::kSharedMemory;
  return options;
}

// What a client of a shared-memory server uses (the Win32 backend does not
// offer shared memory yet, docs/semantics.md).
canal::Transport Expected() {
  canal::ListenerOptions options;
  options.transport = canal::Transport::kSharedMemory;
  return ExpectedTransport(options);
}

canal::ServerHandlers Echo(CloseLog* log) {
  canal::ServerHandlers handlers;
  handlers.on_data = [](canal::Connection& c, absl::string_view data) {
    absl::Status s = c.Send(data);
    EXPECT_TRUE(s.ok()) << s;
  };
  handlers.on_close = [log](canal::Connection&, const absl::Status& s) {
    log->Add(s);
  };
  return handlers;
}

TEST(ServerTransportTest, MessageEchoGoesThroughSharedMemory) {
  const std::string name = UniqueName("srv-shm-msg");
  CloseLog log;
  auto server =
      canal::Server::Start(name, Shm(canal::PipeMode::kMessage), Echo(&log));
  CANAL_ASSERT_OK(server);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  for (size_t size :
       {size_t{0}, size_t{1}, size_t{4096}, size_t{1} << 20, size_t{4} << 20}) {
    const std::string msg = Pattern(size, static_cast<uint32_t>(size));
    absl::StatusOr<std::string> reply = ch->Transact(msg, kHangGuard);
    CANAL_ASSERT_OK(reply);
    EXPECT_TRUE(*reply == msg) << "size " << size;
    EXPECT_EQ(ch->transport(), Expected());
  }
  ch->Close();
  absl::Status closed = log.Next();
  EXPECT_EQ(closed.code(), absl::StatusCode::kOutOfRange) << closed;
  EXPECT_TRUE(MessageNames(closed, "Server", name));
}

TEST(ServerTransportTest, ByteEchoGoesThroughSharedMemory) {
  const std::string name = UniqueName("srv-shm-byte");
  CloseLog log;
  canal::ServerOptions options = Shm(canal::PipeMode::kByte);
  options.read_chunk_size = 4096;
  options.max_queued_bytes = 64 * 1024;
  auto server = canal::Server::Start(name, options, Echo(&log));
  CANAL_ASSERT_OK(server);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  CANAL_ASSERT_OK(ch->Write("hello", kHangGuard));
  absl::StatusOr<std::string> hello = ReadExactly(*ch, 5, kHangGuard);
  CANAL_ASSERT_OK(hello);
  EXPECT_EQ(*hello, "hello");
  EXPECT_EQ(ch->transport(), Expected());
  const std::string data = Pattern(8 << 20, 11);
  Background writer([&] { CANAL_EXPECT_OK(ch->Write(data, kHangGuard)); });
  absl::StatusOr<std::string> back = ReadExactly(*ch, data.size(), kHangGuard);
  CANAL_ASSERT_OK(back);
  EXPECT_TRUE(*back == data);
  EXPECT_TRUE(writer.Finished(kHangGuard));
  EXPECT_EQ(ch->transport(), Expected());
}

TEST(ServerTransportTest, FullQueuePausesReadingUntilTheClientReads) {
  constexpr size_t kBound = 128 * 1024;
  constexpr size_t kReply = 32 * 1024;
  const std::string name = UniqueName("srv-shm-bp");
  std::mutex mu;
  canal::Connection conn;
  std::atomic<int> dispatched{0};
  std::atomic<size_t> max_queued{0};
  canal::ServerHandlers handlers;
  handlers.on_data = [&](canal::Connection& c, absl::string_view data) {
    if (data == "hi") {
      EXPECT_TRUE(c.Send("hi").ok());
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      conn = c;
    }
    dispatched.fetch_add(1);
    absl::Status s = c.Send(std::string(kReply, 'r'));
    EXPECT_TRUE(s.ok()) << s;  // Never refused: dispatching pauses first.
    size_t q = c.queued_bytes();
    size_t prev = max_queued.load();
    while (q > prev && !max_queued.compare_exchange_weak(prev, q)) {
    }
  };
  canal::ServerOptions options = Shm(canal::PipeMode::kMessage);
  options.max_queued_bytes = kBound;
  // Smaller than one reply: once the client stops reading, the server's
  // writer hangs in the middle of a reply (which stays queued), so the
  // queue stays at the bound instead of draining into the ring.
  options.listener.ring_size = canal::kMinRingSize;
  auto server = canal::Server::Start(name, options, std::move(handlers));
  CANAL_ASSERT_OK(server);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  CANAL_ASSERT_OK(ch->Transact("hi", kHangGuard));
  EXPECT_EQ(ch->transport(), Expected());
  // Requests without reading, until a write stalls with the server's queue
  // full: the server stopped reading, and the ring in front of it filled.
  // (A stall with the queue not full yet is a slow server: write on. A
  // message this small goes into the ring whole or not at all, so one that
  // timed out was not sent.)
  auto queue_full = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return conn.queued_bytes() >= kBound;
  };
  const absl::Time start = absl::Now();
  int written = 0;
  while (true) {
    absl::Status last =
        ch->WriteMessage(absl::StrCat("req", written, std::string(500, '.')),
                         absl::Milliseconds(300));
    if (last.ok()) {
      ++written;
      continue;
    }
    ASSERT_EQ(last.code(), absl::StatusCode::kDeadlineExceeded) << last;
    if (queue_full()) break;
    ASSERT_LT(absl::Now() - start, kHangGuard) << "the queue never filled";
  }
  EXPECT_GE(max_queued.load(), kBound);
  EXPECT_LE(max_queued.load(), kBound + kReply);
  // Dispatched: what fits the queue, the ring and the writer's hands, plus
  // the one item the reader holds; far fewer than were written.
  EXPECT_LE(dispatched.load(), static_cast<int>(kBound / kReply) + 8);
  EXPECT_GT(written, dispatched.load());
  canal::Connection held;
  {
    std::lock_guard<std::mutex> lock(mu);
    held = conn;
  }
  EXPECT_GE(held.queued_bytes(), kBound);
  CANAL_EXPECT_CODE(held.Send("more"), kResourceExhausted);
  // Reading resumes the server: every request gets its reply.
  for (int i = 0; i < written; ++i) {
    absl::StatusOr<std::string> m = ch->ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(m);
    ASSERT_EQ(m->size(), kReply);
  }
  EXPECT_EQ(dispatched.load(), written);
  EXPECT_EQ(ch->transport(), Expected());
}

TEST(ServerTransportTest, IdleClientIsClosedWithDeadlineExceeded) {
  const std::string name = UniqueName("srv-shm-idle");
  CloseLog log;
  canal::ServerOptions options = Shm(canal::PipeMode::kMessage);
  options.idle_timeout = absl::Milliseconds(200);
  auto server = canal::Server::Start(name, options, Echo(&log));
  CANAL_ASSERT_OK(server);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  CANAL_ASSERT_OK(ch->Transact("once", kHangGuard));
  EXPECT_EQ(ch->transport(), Expected());
  absl::Status closed = log.Next();
  EXPECT_EQ(closed.code(), absl::StatusCode::kDeadlineExceeded) << closed;
  EXPECT_TRUE(absl::StrContains(closed.message(), "idle_timeout")) << closed;
  CANAL_EXPECT_CODE(ch->ReadMessage(kHangGuard), kOutOfRange);
  EXPECT_EQ((*server)->connection_count(), 0u);
}

TEST(ServerTransportTest, ShutdownDrainsQueuedRepliesThenCancels) {
  const std::string name = UniqueName("srv-shm-shut");
  constexpr size_t kBig = 4 << 20;
  CloseLog log;
  absl::Notification queued;
  canal::ServerHandlers handlers;
  handlers.on_data = [&](canal::Connection& c, absl::string_view data) {
    if (data == "big") {
      EXPECT_TRUE(c.Send(Pattern(kBig, 5)).ok());
      queued.Notify();
    } else {
      EXPECT_TRUE(c.Send(data).ok());
    }
  };
  handlers.on_close = [&](canal::Connection&, const absl::Status& s) {
    log.Add(s);
  };
  auto server = canal::Server::Start(name, Shm(canal::PipeMode::kMessage),
                                     std::move(handlers));
  CANAL_ASSERT_OK(server);
  absl::StatusOr<canal::Channel> idle = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(idle);
  CANAL_ASSERT_OK(idle->Transact("x", kHangGuard));
  absl::StatusOr<canal::Channel> big = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(big);
  CANAL_ASSERT_OK(big->Transact("y", kHangGuard));
  EXPECT_EQ(big->transport(), Expected());
  CANAL_ASSERT_OK(big->WriteMessage("big", kHangGuard));  // Not read yet.
  ASSERT_TRUE(queued.WaitForNotificationWithTimeout(kHangGuard));
  Background shutdown([&] { (*server)->Shutdown(kHangGuard); });
  // The connection with nothing queued closes at once; the big reply is
  // delivered whole, then its connection closes too.
  absl::Status first = log.Next();
  EXPECT_EQ(first.code(), absl::StatusCode::kCancelled) << first;
  absl::StatusOr<std::string> reply = big->ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(reply);
  EXPECT_TRUE(*reply == Pattern(kBig, 5));
  ASSERT_TRUE(shutdown.Finished(kHangGuard));
  absl::Status second = log.Next();
  EXPECT_EQ(second.code(), absl::StatusCode::kCancelled) << second;
  CANAL_EXPECT_CODE(big->ReadMessage(kHangGuard), kOutOfRange);
  CANAL_EXPECT_CODE(idle->ReadMessage(kHangGuard), kOutOfRange);
  EXPECT_EQ((*server)->connection_count(), 0u);
}

TEST(ServerTransportTest, ConnectionCloseEndsItWithCancelled) {
  const std::string name = UniqueName("srv-shm-close");
  CloseLog log;
  canal::ServerHandlers handlers;
  handlers.on_data = [](canal::Connection& c, absl::string_view data) {
    if (data == "bye") {
      c.Close();
      EXPECT_FALSE(c.is_open());
      CANAL_EXPECT_CODE(c.Send("late"), kFailedPrecondition);
      return;
    }
    EXPECT_TRUE(c.Send(data).ok());
  };
  handlers.on_close = [&](canal::Connection&, const absl::Status& s) {
    log.Add(s);
  };
  auto server = canal::Server::Start(name, Shm(canal::PipeMode::kMessage),
                                     std::move(handlers));
  CANAL_ASSERT_OK(server);
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(ch);
  CANAL_ASSERT_OK(ch->Transact("hello", kHangGuard));
  EXPECT_EQ(ch->transport(), Expected());
  CANAL_ASSERT_OK(ch->WriteMessage("bye", kHangGuard));
  absl::Status closed = log.Next();
  EXPECT_EQ(closed.code(), absl::StatusCode::kCancelled) << closed;
  CANAL_EXPECT_CODE(ch->ReadMessage(kHangGuard), kOutOfRange);
}

TEST(ServerTransportTest, ClientThatClosesWithRepliesQueuedEndsWithOutOfRange) {
  const std::string name = UniqueName("srv-shm-gone");
  CloseLog log;
  absl::Notification queued;
  canal::ServerHandlers handlers;
  handlers.on_data = [&](canal::Connection& c, absl::string_view) {
    // More than the ring holds: part of it stays queued.
    EXPECT_TRUE(c.Send(std::string(2 << 20, 'q')).ok());
    queued.Notify();
  };
  handlers.on_close = [&](canal::Connection&, const absl::Status& s) {
    log.Add(s);
  };
  auto server = canal::Server::Start(name, Shm(canal::PipeMode::kByte),
                                     std::move(handlers));
  CANAL_ASSERT_OK(server);
  {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    CANAL_ASSERT_OK(ch);
    CANAL_ASSERT_OK(ch->Write("go", kHangGuard));
    char first;
    CANAL_ASSERT_OK(ch->Read(absl::MakeSpan(&first, 1), kHangGuard));
    EXPECT_EQ(ch->transport(), Expected());
    ASSERT_TRUE(queued.WaitForNotificationWithTimeout(kHangGuard));
  }
  // Closing a shared-memory channel ends both directions: the rest of the
  // reply cannot be delivered, and the status says so.
  absl::Status closed = log.Next();
  EXPECT_EQ(closed.code(), absl::StatusCode::kOutOfRange) << closed;
  if (Expected() == canal::Transport::kSharedMemory) {
    EXPECT_TRUE(absl::StrContains(closed.message(), "not delivered")) << closed;
  }
  EXPECT_EQ((*server)->connection_count(), 0u);
}

TEST(ServerTransportTest, ClientThatDiesEndsOnlyItsConnection) {
  const std::string name = UniqueName("srv-shm-kill");
  CloseLog log;
  absl::Notification echoed;
  canal::ServerHandlers handlers;
  // The child (canal_test_child shm-hold) reads one message and sends it
  // back over shared memory, then waits to be killed.
  handlers.on_open = [](canal::Connection& c) {
    EXPECT_TRUE(c.Send("go").ok());
  };
  handlers.on_data = [&](canal::Connection& c, absl::string_view data) {
    if (data == "go") {
      if (!echoed.HasBeenNotified()) echoed.Notify();
      return;
    }
    EXPECT_TRUE(c.Send(data).ok());
  };
  handlers.on_close = [&](canal::Connection&, const absl::Status& s) {
    log.Add(s);
  };
  auto server = canal::Server::Start(name, Shm(canal::PipeMode::kMessage),
                                     std::move(handlers));
  CANAL_ASSERT_OK(server);
  canal::SubprocessOptions child_options;
  child_options.kill_on_destroy = true;
  child_options.stdout_mode = canal::StdioMode::kPipe;
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start(ChildArgv({"shm-hold", name}), child_options);
  CANAL_ASSERT_OK(child);
  absl::StatusOr<std::string> ready =
      ReadExactly(child->stdout_channel(), 6, kHangGuard);
  CANAL_ASSERT_OK(ready);
  EXPECT_EQ(*ready, "ready\n");
  ASSERT_TRUE(echoed.WaitForNotificationWithTimeout(kHangGuard));
  // Another client, kept open across the kill.
  absl::StatusOr<canal::Channel> other = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(other);
  CANAL_ASSERT_OK(other->ReadMessage(kHangGuard));  // Its "go".
  CANAL_ASSERT_OK(child->Kill());
  absl::Status closed = log.Next();
  EXPECT_TRUE(absl::IsOutOfRange(closed) || absl::IsUnavailable(closed))
      << closed;
  absl::StatusOr<std::string> reply = other->Transact("still", kHangGuard);
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "still");
  EXPECT_EQ(other->transport(), Expected());
  EXPECT_EQ((*server)->connection_count(), 1u);
}

TEST(ServerTransportTest, ClientThatRefusesSharedMemoryIsServedOverThePipe) {
  const std::string name = UniqueName("srv-shm-refuse");
  CloseLog log;
  auto server =
      canal::Server::Start(name, Shm(canal::PipeMode::kMessage), Echo(&log));
  CANAL_ASSERT_OK(server);
  canal::ConnectOptions options;
  options.allow_shared_memory = false;
  absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name, options);
  CANAL_ASSERT_OK(ch);
  for (size_t size : {size_t{0}, size_t{10}, size_t{1} << 20}) {
    const std::string msg = Pattern(size, 3);
    absl::StatusOr<std::string> reply = ch->Transact(msg, kHangGuard);
    CANAL_ASSERT_OK(reply);
    EXPECT_TRUE(*reply == msg) << "size " << size;
  }
  EXPECT_EQ(ch->transport(), canal::Transport::kPipe);
  // A shared-memory client of the same server at the same time.
  absl::StatusOr<canal::Channel> shm = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(shm);
  CANAL_ASSERT_OK(shm->Transact("both", kHangGuard));
  EXPECT_EQ(shm->transport(), Expected());
  ch->Close();
  absl::Status closed = log.Next();
  EXPECT_EQ(closed.code(), absl::StatusCode::kOutOfRange) << closed;
}

}  // namespace
}  // namespace canal_test
