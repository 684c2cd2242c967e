// SPDX-License-Identifier: Apache-2.0
// The shared-memory transport (ListenerOptions::transport) through the
// public API: which channels take it, that data keeps its order across the
// move from the pipe to the rings, and the options' checks. Every other
// behaviour is checked over both transports by running the whole
// conformance suite again with CANAL_TEST_TRANSPORT=shm.

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::ExpectedTransport;
using canal_test::kHangGuard;
using canal_test::UniqueName;

canal::ListenerOptions Shm(canal::PipeMode mode) {
  canal::ListenerOptions options;
  options.mode = mode;
  options.transport = canal::Transport::kSharedMemory;
  return options;
}

TEST(TransportTest, PipeListenerGivesPipeChannels) {
  canal::ListenerOptions options;
  options.transport = canal::Transport::kPipe;
  const std::string name = UniqueName("tr-pipe");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(client);
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  EXPECT_EQ(client->transport(), canal::Transport::kPipe);
  EXPECT_EQ(server->transport(), canal::Transport::kPipe);
  EXPECT_EQ(canal::Channel().transport(), canal::Transport::kPipe);
}

// Both ends report shared memory once the client has seen the offer, and
// data flows both ways, in both modes.
TEST(TransportTest, SharedMemoryListenerGivesSharedMemoryChannels) {
  for (canal::PipeMode mode :
       {canal::PipeMode::kByte, canal::PipeMode::kMessage}) {
    const canal::ListenerOptions options = Shm(mode);
    absl::StatusOr<canal_test::ConnectedPair> pair =
        canal_test::MakePair(UniqueName("tr-shm"), options);
    CANAL_ASSERT_OK(pair);
    EXPECT_EQ(pair->client.transport(), ExpectedTransport(options));
    EXPECT_EQ(pair->server.transport(), ExpectedTransport(options));
    for (int i = 0; i < 100; ++i) {
      const std::string up = absl::StrCat("up ", i);
      CANAL_ASSERT_OK(pair->client.Write(up, kHangGuard));
      absl::StatusOr<std::string> got =
          canal_test::ReadExactly(pair->server, up.size(), kHangGuard);
      CANAL_ASSERT_OK(got);
      EXPECT_EQ(*got, up);
      const std::string down = absl::StrCat("down ", i);
      CANAL_ASSERT_OK(pair->server.Write(down, kHangGuard));
      got = canal_test::ReadExactly(pair->client, down.size(), kHangGuard);
      CANAL_ASSERT_OK(got);
      EXPECT_EQ(*got, down);
    }
  }
}

TEST(TransportTest, ClientThatDisallowsSharedMemoryKeepsThePipe) {
  const std::string name = UniqueName("tr-disallow");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, Shm(canal::PipeMode::kMessage));
  CANAL_ASSERT_OK(listener);
  canal::ConnectOptions connect;
  connect.allow_shared_memory = false;
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(name, connect);
  CANAL_ASSERT_OK(client);
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  CANAL_ASSERT_OK(client->WriteMessage("hello", kHangGuard));
  absl::StatusOr<std::string> got = server->ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "hello");
  CANAL_ASSERT_OK(server->WriteMessage("back", kHangGuard));
  got = client->ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "back");
  EXPECT_EQ(client->transport(), canal::Transport::kPipe);
  EXPECT_EQ(server->transport(), canal::Transport::kPipe);
}

// A one-way listener keeps the pipe: its direction is kept as on any pipe.
TEST(TransportTest, OneWayListenerKeepsThePipe) {
  canal::ListenerOptions options = Shm(canal::PipeMode::kMessage);
  options.access = canal::PipeAccess::kInbound;
  absl::StatusOr<canal_test::ConnectedPair> pair =
      canal_test::MakePair(UniqueName("tr-oneway"), options);
  CANAL_ASSERT_OK(pair);
  EXPECT_EQ(pair->client.transport(), canal::Transport::kPipe);
  CANAL_ASSERT_OK(pair->client.WriteMessage("in", kHangGuard));
  absl::StatusOr<std::string> got = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "in");
  CANAL_EXPECT_CODE(pair->server.WriteMessage("out", kHangGuard),
                    kFailedPrecondition);
}

TEST(TransportTest, CallOnSharedMemoryListener) {
  const std::string name = UniqueName("tr-call");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, Shm(canal::PipeMode::kMessage));
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<std::string> reply;
  {
    canal_test::Background caller(
        [&] { reply = canal::Call(name, "ping", kHangGuard); });
    absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
    CANAL_ASSERT_OK(server);
    absl::StatusOr<std::string> request = server->ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(request);
    EXPECT_EQ(*request, "ping");
    CANAL_ASSERT_OK(server->WriteMessage("pong", kHangGuard));
  }
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "pong");
}

// Messages written before the listener accepted go on the pipe; later ones
// through the ring. The reader gets them all, in order, none twice.
TEST(TransportTest, MessagesKeepTheirOrderAcrossTheSwitch) {
  const std::string name = UniqueName("tr-order-m");
  const canal::ListenerOptions options = Shm(canal::PipeMode::kMessage);
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(client);
  for (int i = 0; i < 10; ++i) {
    CANAL_ASSERT_OK(client->WriteMessage(absl::StrCat("m", i), kHangGuard));
  }
  CANAL_ASSERT_OK(client->WriteMessage("", kHangGuard));
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  for (int i = 0; i < 10; ++i) {
    CANAL_ASSERT_OK(server->WriteMessage(absl::StrCat("s", i), kHangGuard));
  }
  for (int i = 10; i < 20; ++i) {
    CANAL_ASSERT_OK(client->WriteMessage(absl::StrCat("m", i), kHangGuard));
  }
  EXPECT_EQ(client->transport(), ExpectedTransport(options));
  for (int i = 20; i < 30; ++i) {
    CANAL_ASSERT_OK(client->WriteMessage(absl::StrCat("m", i), kHangGuard));
  }
  for (int i = 0; i < 30; ++i) {
    absl::StatusOr<std::string> got = server->ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(got);
    EXPECT_EQ(*got, absl::StrCat("m", i));
    if (i == 9) {
      got = server->ReadMessage(kHangGuard);
      CANAL_ASSERT_OK(got);
      EXPECT_EQ(*got, "") << "the empty message before the switch";
    }
  }
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<std::string> got = client->ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(got);
    EXPECT_EQ(*got, absl::StrCat("s", i));
  }
  CANAL_ASSERT_OK(server->WriteMessage("after", kHangGuard));
  absl::StatusOr<std::string> got = client->ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "after");
  EXPECT_EQ(server->transport(), ExpectedTransport(options));
}

// The same for a byte stream: no byte lost, doubled or added (the wake-up
// byte of the switch is never delivered).
TEST(TransportTest, BytesKeepTheirOrderAcrossTheSwitch) {
  const std::string name = UniqueName("tr-order-b");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, Shm(canal::PipeMode::kByte));
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(client);
  std::string sent;
  for (int i = 0; i < 50; ++i) {
    const std::string piece = absl::StrCat("[", i, "]");
    CANAL_ASSERT_OK(client->Write(piece, kHangGuard));
    sent += piece;
  }
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  // The server reads part of the pipe's bytes while the client switches.
  absl::StatusOr<std::string> first =
      canal_test::ReadExactly(*server, 20, kHangGuard);
  CANAL_ASSERT_OK(first);
  for (int i = 50; i < 100; ++i) {
    const std::string piece = absl::StrCat("[", i, "]");
    CANAL_ASSERT_OK(client->Write(piece, kHangGuard));
    sent += piece;
  }
  absl::StatusOr<std::string> rest =
      canal_test::ReadExactly(*server, sent.size() - 20, kHangGuard);
  CANAL_ASSERT_OK(rest);
  EXPECT_EQ(*first + *rest, sent);
  client->Close();
  char byte;
  CANAL_EXPECT_CODE(server->Read(absl::MakeSpan(&byte, 1), kHangGuard),
                    kOutOfRange);
}

// A message many times the ring's size passes through it in parts, each
// way, and Peek counts it whole as soon as it begins.
TEST(TransportTest, MessagesLargerThanTheRing) {
  canal::ListenerOptions options = Shm(canal::PipeMode::kMessage);
  options.ring_size = canal::kMinRingSize;
  absl::StatusOr<canal_test::ConnectedPair> pair =
      canal_test::MakePair(UniqueName("tr-big"), options);
  CANAL_ASSERT_OK(pair);
  // Settle both directions first.
  CANAL_ASSERT_OK(pair->client.WriteMessage("x", kHangGuard));
  CANAL_ASSERT_OK(pair->server.ReadMessage(kHangGuard).status());
  const std::string big = canal_test::Pattern(1 << 20, 11);
  absl::Status written;
  {
    canal_test::Background writer(
        [&] { written = pair->server.WriteMessage(big, kHangGuard); });
    absl::StatusOr<canal::PeekResult> p;
    canal_test::PollUntil(
        [&] {
          p = pair->client.Peek();
          return !p.ok() || p->message_remaining > 0;
        },
        kHangGuard);
    CANAL_ASSERT_OK(p);
    if (ExpectedTransport(options) == canal::Transport::kSharedMemory) {
      EXPECT_EQ(p->message_remaining, big.size());
    }
    absl::StatusOr<std::string> got = pair->client.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(got);
    EXPECT_TRUE(*got == big) << "the message came back changed";
  }
  CANAL_EXPECT_OK(written);
  {
    canal_test::Background writer(
        [&] { written = pair->client.WriteMessage(big, kHangGuard); });
    absl::StatusOr<std::string> back = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(back);
    EXPECT_TRUE(*back == big);
  }
  CANAL_EXPECT_OK(written);
}

// A channel over shared memory to a child that took the offer and now
// holds it (tests/helper: shm-hold), ready to be killed.
struct HeldPeer {
  canal::Listener listener;
  canal::Subprocess child;
  canal::Channel server;
};

absl::StatusOr<HeldPeer> StartHeldPeer(const std::string& name) {
  const canal::ListenerOptions options = Shm(canal::PipeMode::kMessage);
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  if (!listener.ok()) return listener.status();
  canal::SubprocessOptions child_options;
  child_options.kill_on_destroy = true;
  child_options.stdout_mode = canal::StdioMode::kPipe;
  absl::StatusOr<canal::Subprocess> child = canal::Subprocess::Start(
      canal_test::ChildArgv({"shm-hold", name}), child_options);
  if (!child.ok()) return child.status();
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  if (!server.ok()) return server.status();
  absl::Status sent = server->WriteMessage("go", kHangGuard);
  if (!sent.ok()) return sent;
  absl::StatusOr<std::string> echo = server->ReadMessage(kHangGuard);
  if (!echo.ok()) return echo.status();
  absl::StatusOr<std::string> ready =
      canal_test::ReadExactly(child->stdout_channel(), 6, kHangGuard);
  if (!ready.ok()) return ready.status();
  if (*echo != "go" || *ready != "ready\n") {
    return absl::InternalError("the child did not answer as shm-hold does");
  }
  return HeldPeer{*std::move(listener), *std::move(child), *std::move(server)};
}

// A killed peer wakes a call that waits with no deadline at all (which on
// Linux sleeps with no timer, the pipe being watched for the peer's end).
// If the call never returned, Close would end it (Cancelled) and the test
// fail, instead of hanging.
void ExpectKillWakesCallWithNoDeadline(
    const std::string& name,
    const std::function<absl::Status(canal::Channel&)>& call) {
  absl::StatusOr<HeldPeer> held = StartHeldPeer(name);
  CANAL_ASSERT_OK(held);
  EXPECT_EQ(held->server.transport(),
            ExpectedTransport(Shm(canal::PipeMode::kMessage)));
  absl::Status result;
  absl::Notification started;
  canal_test::Background waiter([&] {
    started.Notify();
    result = call(held->server);
  });
  started.WaitForNotification();
  CANAL_ASSERT_OK(held->child.Kill());
  const bool woke = waiter.Finished(kHangGuard);
  if (!woke) held->server.Close();
  EXPECT_TRUE(woke) << "the call was still waiting after the peer died";
  EXPECT_TRUE(absl::IsOutOfRange(result) || absl::IsUnavailable(result))
      << result;
}

// A peer that dies (killed, so it closes nothing itself) wakes a read
// blocked on the ring: the pipe that set the channel up is watched between
// sleeps of at most 100 ms. How long it took is printed, not asserted.
TEST(TransportTest, PeerThatDiesWakesABlockedRead) {
  absl::StatusOr<HeldPeer> held = StartHeldPeer(UniqueName("tr-death"));
  CANAL_ASSERT_OK(held);
  EXPECT_EQ(held->server.transport(),
            ExpectedTransport(Shm(canal::PipeMode::kMessage)));
  absl::Status read;
  absl::Time killed;
  absl::Time woke;
  {
    canal_test::Background reader([&] {
      read = held->server.ReadMessage(kHangGuard).status();
      woke = absl::Now();
    });
    killed = absl::Now();
    CANAL_ASSERT_OK(held->child.Kill());
  }
  EXPECT_TRUE(absl::IsOutOfRange(read) || absl::IsUnavailable(read)) << read;
  std::printf("a killed peer was noticed after %s\n",
              absl::FormatDuration(woke - killed).c_str());
  CANAL_EXPECT_CODE(held->server.WriteMessage("anyone?", kHangGuard),
                    kUnavailable);
}

TEST(TransportTest, PeerThatDiesWakesAReadWithNoDeadline) {
  ExpectKillWakesCallWithNoDeadline(
      UniqueName("tr-death-inf-r"), [](canal::Channel& ch) {
        return ch.ReadMessage(absl::InfiniteDuration()).status();
      });
}

TEST(TransportTest, PeerThatDiesWakesAWriteWithNoDeadline) {
  // Far more than the ring holds, to a peer that reads nothing: the write
  // waits for room.
  const std::string big(8 * canal::kDefaultRingSize, 'w');
  ExpectKillWakesCallWithNoDeadline(
      UniqueName("tr-death-inf-w"), [&big](canal::Channel& ch) {
        return ch.WriteMessage(big, absl::InfiniteDuration());
      });
}

// Close from another thread wakes a read that waits for the listener's
// offer (nobody accepted yet).
TEST(TransportTest, CloseWakesAReadWaitingForTheOffer) {
  const std::string name = UniqueName("tr-close-pending");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, Shm(canal::PipeMode::kByte));
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(client);
  absl::Status read;
  absl::Notification started;
  {
    canal_test::Background reader([&] {
      char byte;
      started.Notify();
      read = client->Read(absl::MakeSpan(&byte, 1), kHangGuard).status();
    });
    started.WaitForNotification();
    client->Close();
  }
  EXPECT_TRUE(absl::IsCancelled(read)) << read;
}

// As on a pipe (row 1), an empty byte read returns at once, also before
// the listener accepted (its offer has not come).
TEST(TransportTest, EmptyByteReadBeforeAcceptReturnsAtOnce) {
  const std::string name = UniqueName("tr-empty-read");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, Shm(canal::PipeMode::kByte));
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(client);
  absl::StatusOr<canal::ReadResult> r =
      client->Read(absl::Span<char>(), kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(r->size, 0u);
}

TEST(TransportTest, BadOptionsAreInvalidArgument) {
  const std::string name = UniqueName("tr-bad");
  canal::ListenerOptions options = Shm(canal::PipeMode::kByte);
  for (size_t size : {size_t{0}, size_t{1000}, canal::kMinRingSize / 2,
                      canal::kMaxRingSize * 2, canal::kMinRingSize + 16}) {
    options.ring_size = size;
    CANAL_EXPECT_CODE(canal::Listener::Create(name, options), kInvalidArgument);
  }
  options.ring_size = canal::kDefaultRingSize;
  options.spin = absl::Microseconds(-1);
  CANAL_EXPECT_CODE(canal::Listener::Create(name, options), kInvalidArgument);
  options.spin = absl::Seconds(2);
  CANAL_EXPECT_CODE(canal::Listener::Create(name, options), kInvalidArgument);
  options.spin = absl::ZeroDuration();
  options.transport = static_cast<canal::Transport>(7);
  CANAL_EXPECT_CODE(canal::Listener::Create(name, options), kInvalidArgument);
  canal::ConnectOptions connect;
  connect.spin = absl::Microseconds(-5);
  CANAL_EXPECT_CODE(canal::Channel::Connect(name, connect), kInvalidArgument);
}

// With no spin at all every wait sleeps at once; the data still flows.
TEST(TransportTest, ZeroSpinSleepsAndStillDelivers) {
  canal::ListenerOptions options = Shm(canal::PipeMode::kMessage);
  options.spin = absl::ZeroDuration();
  const std::string name = UniqueName("tr-nospin");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);
  canal::ConnectOptions connect;
  connect.spin = absl::ZeroDuration();
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(name, connect);
  CANAL_ASSERT_OK(client);
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  absl::Status echoed;
  {
    canal_test::Background echo([&] {
      for (int i = 0; i < 200; ++i) {
        absl::StatusOr<std::string> m = server->ReadMessage(kHangGuard);
        if (!m.ok()) {
          echoed = m.status();
          return;
        }
        echoed = server->WriteMessage(*m, kHangGuard);
        if (!echoed.ok()) return;
      }
    });
    for (int i = 0; i < 200; ++i) {
      absl::StatusOr<std::string> reply =
          client->Transact(absl::StrCat("t", i), kHangGuard);
      CANAL_ASSERT_OK(reply);
      EXPECT_EQ(*reply, absl::StrCat("t", i));
    }
  }
  CANAL_EXPECT_OK(echoed);
  EXPECT_EQ(client->transport(), ExpectedTransport(options));
}

// A client that writes and leaves without reading never takes the offer the
// listener sent when it accepted. On Windows its handles were duplicated
// into the client's process already; they must not stay there. Both ends
// are in this process, so the count covers both.
TEST(TransportTest, ClientThatLeavesWithoutReadingKeepsNoHandles) {
  for (canal::PipeMode mode :
       {canal::PipeMode::kByte, canal::PipeMode::kMessage}) {
    const std::string name = UniqueName("tr-leave");
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(name, Shm(mode));
    CANAL_ASSERT_OK(listener);
    auto cycle = [&]() {
      absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
      CANAL_ASSERT_OK(client);
      CANAL_ASSERT_OK(client->Write("bye", kHangGuard));
      absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
      CANAL_ASSERT_OK(server);
      client->Close();
      absl::StatusOr<std::string> got =
          canal_test::ReadExactly(*server, 3, kHangGuard);
      CANAL_ASSERT_OK(got);
      EXPECT_EQ(*got, "bye");
    };
    cycle();  // Anything made once per process is made now.
    const int64_t before = canal_test::OpenHandleCount();
    ASSERT_GT(before, 0);
    for (int i = 0; i < 50; ++i) cycle();
    EXPECT_LE(canal_test::OpenHandleCount(), before + 2);
  }
}

// Settles both directions of a message-mode pair on its rings: each side
// has written (so its writes moved) and the other has read that.
void SettleBothWays(canal_test::ConnectedPair& pair) {
  CANAL_ASSERT_OK(pair.client.WriteMessage("settle up", kHangGuard));
  absl::StatusOr<std::string> up = pair.server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(up);
  EXPECT_EQ(*up, "settle up");
  CANAL_ASSERT_OK(pair.server.WriteMessage("settle down", kHangGuard));
  absl::StatusOr<std::string> down = pair.client.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(down);
  EXPECT_EQ(*down, "settle down");
}

// Once the data goes through the rings, a message with handles (which only
// the pipe can carry) still arrives in its place among the ring's
// messages, each way, and its handle works at the receiver.
TEST(TransportTest, HandlesAfterTheSwitchKeepTheirPlaceBothWays) {
  const canal::ListenerOptions options = Shm(canal::PipeMode::kMessage);
  absl::StatusOr<canal_test::ConnectedPair> pair =
      canal_test::MakePair(UniqueName("tr-handles"), options);
  CANAL_ASSERT_OK(pair);
  SettleBothWays(*pair);
  EXPECT_EQ(pair->client.transport(), ExpectedTransport(options));
  EXPECT_EQ(pair->server.transport(), ExpectedTransport(options));
  for (int way = 0; way < 2; ++way) {
    canal::Channel& from = way == 0 ? pair->client : pair->server;
    canal::Channel& to = way == 0 ? pair->server : pair->client;
    for (int i = 0; i < 20; ++i) {
      absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
      CANAL_ASSERT_OK(pipe);
      const canal::NativeHandle handles[] = {pipe->write_end.native_handle()};
      const std::string before = absl::StrCat("before ", way, " ", i);
      const std::string with = absl::StrCat("with a handle ", way, " ", i);
      const std::string after = absl::StrCat("after ", way, " ", i);
      CANAL_ASSERT_OK(from.WriteMessage(before, kHangGuard));
      CANAL_ASSERT_OK(from.WriteMessageWithHandles(with, handles, kHangGuard));
      CANAL_ASSERT_OK(from.WriteMessage(after, kHangGuard));
      pipe->write_end.Close();
      absl::StatusOr<std::string> got = to.ReadMessage(kHangGuard);
      CANAL_ASSERT_OK(got);
      EXPECT_EQ(*got, before);
      absl::StatusOr<canal::MessageWithHandles> m =
          to.ReadMessageWithHandles(kHangGuard);
      CANAL_ASSERT_OK(m);
      EXPECT_EQ(m->data, with);
      ASSERT_EQ(m->handles.size(), 1u);
      absl::StatusOr<canal::Channel> end =
          canal::AdoptPipeEnd(m->handles[0].release(), canal::PipeEnd::kWrite);
      CANAL_ASSERT_OK(end);
      CANAL_ASSERT_OK(end->Write("through it", kHangGuard));
      absl::StatusOr<std::string> piped =
          canal_test::ReadExactly(pipe->read_end, 10, kHangGuard);
      CANAL_ASSERT_OK(piped);
      EXPECT_EQ(*piped, "through it");
      got = to.ReadMessage(kHangGuard);
      CANAL_ASSERT_OK(got);
      EXPECT_EQ(*got, after);
    }
  }
  EXPECT_EQ(pair->server.transport(), ExpectedTransport(options));
}

// After the switch, ReadMessage, Read in parts and a Transact reply
// deliver a handle message's data and close its handles: the count of open
// handles does not grow.
TEST(TransportTest, PlainReadsAfterTheSwitchCloseTheHandles) {
  const canal::ListenerOptions options = Shm(canal::PipeMode::kMessage);
  absl::StatusOr<canal_test::ConnectedPair> pair =
      canal_test::MakePair(UniqueName("tr-handles-plain"), options);
  CANAL_ASSERT_OK(pair);
  SettleBothWays(*pair);
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  const canal::NativeHandle h = pipe->write_end.native_handle();
  const canal::NativeHandle handles[] = {h, h, h};
  const int64_t before = canal_test::OpenHandleCount();
  ASSERT_GT(before, 0);
  for (int i = 0; i < 50; ++i) {
    CANAL_ASSERT_OK(pair->client.WriteMessage("ring", kHangGuard));
    CANAL_ASSERT_OK(
        pair->client.WriteMessageWithHandles("message", handles, kHangGuard));
    absl::StatusOr<std::string> ring = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(ring);
    EXPECT_EQ(*ring, "ring");
    absl::StatusOr<std::string> whole = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(whole);
    EXPECT_EQ(*whole, "message");
    CANAL_ASSERT_OK(
        pair->client.WriteMessageWithHandles("in parts", handles, kHangGuard));
    CANAL_ASSERT_OK(pair->client.WriteMessage("next", kHangGuard));
    char buf[3];
    std::string parts;
    while (true) {
      absl::StatusOr<canal::ReadResult> r =
          pair->server.Read(absl::MakeSpan(buf), kHangGuard);
      CANAL_ASSERT_OK(r);
      parts.append(buf, r->size);
      if (!r->more) break;
    }
    EXPECT_EQ(parts, "in parts");
    absl::StatusOr<std::string> next = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(next);
    EXPECT_EQ(*next, "next");
    // A reply with handles to a transaction.
    absl::Status replied;
    absl::StatusOr<std::string> reply;
    {
      canal_test::Background server([&] {
        absl::StatusOr<std::string> request =
            pair->server.ReadMessage(kHangGuard);
        replied = request.status();
        if (!request.ok()) return;
        replied = pair->server.WriteMessageWithHandles(
            absl::StrCat("re: ", *request), handles, kHangGuard);
      });
      reply = pair->client.Transact("question", kHangGuard);
    }
    CANAL_ASSERT_OK(replied);
    CANAL_ASSERT_OK(reply);
    EXPECT_EQ(*reply, "re: question");
  }
  const int64_t after = canal_test::OpenHandleCount();
  EXPECT_LE(after, before + 2);
  EXPECT_GE(after, before - 2);
  EXPECT_EQ(pair->server.transport(), ExpectedTransport(options));
}

// Peek after the switch reports a handle message in its place: its size,
// its bytes, and (over shared memory, where it is exact) everything queued.
// It is then read in parts, and the handles stay for a reader that asks.
TEST(TransportTest, PeekAndPartialReadOfAHandleMessageAfterTheSwitch) {
  const canal::ListenerOptions options = Shm(canal::PipeMode::kMessage);
  absl::StatusOr<canal_test::ConnectedPair> pair =
      canal_test::MakePair(UniqueName("tr-handles-peek"), options);
  CANAL_ASSERT_OK(pair);
  SettleBothWays(*pair);
  const bool shm =
      ExpectedTransport(options) == canal::Transport::kSharedMemory;
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  const canal::NativeHandle handles[] = {pipe->write_end.native_handle()};
  for (int i = 0; i < 2; ++i) {
    CANAL_ASSERT_OK(pair->client.WriteMessage("ring", kHangGuard));
    CANAL_ASSERT_OK(
        pair->client.WriteMessageWithHandles("peeked!", handles, kHangGuard));
    CANAL_ASSERT_OK(pair->client.WriteMessage("tail", kHangGuard));
    absl::StatusOr<std::string> ring = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(ring);
    EXPECT_EQ(*ring, "ring");
    char buf[16];
    canal::PeekResult peek;
    ASSERT_TRUE(canal_test::PollUntil(
        [&] {
          absl::StatusOr<canal::PeekResult> p =
              pair->server.Peek(absl::MakeSpan(buf));
          if (!p.ok()) return false;
          peek = *p;
          return p->size == 7;
        },
        kHangGuard));
    EXPECT_EQ(absl::string_view(buf, peek.size), "peeked!");
    EXPECT_EQ(peek.message_remaining, 7u);
    if (shm) {
      EXPECT_EQ(peek.available, 11u);
    }
    if (i == 0) {
      // In parts: the handles are closed, as a pipe's Read closes them.
      char part[3];
      std::string parts;
      while (true) {
        absl::StatusOr<canal::ReadResult> r =
            pair->server.Read(absl::MakeSpan(part), kHangGuard);
        CANAL_ASSERT_OK(r);
        parts.append(part, r->size);
        if (r->more && parts.size() == 3) {
          absl::StatusOr<canal::PeekResult> p =
              pair->server.Peek(absl::MakeSpan(buf));
          CANAL_ASSERT_OK(p);
          EXPECT_EQ(absl::string_view(buf, p->size), "ked!");
          EXPECT_EQ(p->message_remaining, 4u);
        }
        if (!r->more) break;
      }
      EXPECT_EQ(parts, "peeked!");
    } else {
      absl::StatusOr<canal::MessageWithHandles> m =
          pair->server.ReadMessageWithHandles(kHangGuard);
      CANAL_ASSERT_OK(m);
      EXPECT_EQ(m->data, "peeked!");
      EXPECT_EQ(m->handles.size(), 1u);
    }
    absl::StatusOr<std::string> tail = pair->server.ReadMessage(kHangGuard);
    CANAL_ASSERT_OK(tail);
    EXPECT_EQ(*tail, "tail");
  }
}

// A message with handles that times out on the pipe after the switch (the
// reader reads nothing, so the socket fills) may be partly out there, so
// it ends that direction: the write and later writes fail with the
// timeout, and the reader gets every message whose write succeeded, with
// its handles, then the end of the stream, never a torn message or a hang.
// Over shared memory only: on a pipe, the write side ends only if a part
// went out.
TEST(TransportTest, HandleMessageTimingOutAfterTheSwitchEndsTheDirection) {
  const canal::ListenerOptions options = Shm(canal::PipeMode::kMessage);
  if (ExpectedTransport(options) != canal::Transport::kSharedMemory) {
    GTEST_SKIP() << "no shared memory on this platform";
  }
  absl::StatusOr<canal_test::ConnectedPair> pair =
      canal_test::MakePair(UniqueName("tr-handles-full"), options);
  CANAL_ASSERT_OK(pair);
  SettleBothWays(*pair);
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  const canal::NativeHandle handles[] = {pipe->write_end.native_handle()};
  const std::string big = canal_test::Pattern(64 * 1024, 5);
  int sent = 0;
  absl::Status last;
  for (int i = 0; i < 10000; ++i) {
    last = pair->client.WriteMessageWithHandles(big, handles,
                                                absl::Milliseconds(50));
    if (!last.ok()) break;
    ++sent;
  }
  CANAL_EXPECT_CODE(last, kDeadlineExceeded);
  EXPECT_NE(last.message().find("direction was closed"), std::string::npos)
      << last;
  CANAL_EXPECT_CODE(pair->client.WriteMessage("later", kHangGuard),
                    kDeadlineExceeded);
  for (int i = 0; i < sent; ++i) {
    absl::StatusOr<canal::MessageWithHandles> m =
        pair->server.ReadMessageWithHandles(kHangGuard);
    CANAL_ASSERT_OK(m);
    EXPECT_TRUE(m->data == big) << "message " << i << " changed";
    EXPECT_EQ(m->handles.size(), 1u);
  }
  CANAL_EXPECT_CODE(pair->server.ReadMessage(kHangGuard), kOutOfRange);
}

}  // namespace
