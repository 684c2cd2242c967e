// SPDX-License-Identifier: Apache-2.0
// Row 9: every blocking call honours its timeout with DeadlineExceeded; a
// timed-out Read consumes nothing, and a message is never delivered torn.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/types/span.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::Background;
using canal_test::ConnectedPair;
using canal_test::kHangGuard;
using canal_test::MakePair;
using canal_test::MessageOptions;
using canal_test::Pattern;
using canal_test::ReadExactly;
using canal_test::UniqueName;

constexpr absl::Duration kShort = absl::Milliseconds(100);
// Timers may fire a little early on some systems; allow that much.
constexpr absl::Duration kSlack = absl::Milliseconds(20);

TEST(TimeoutTest, ByteReadIsDeadlineExceeded) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("to-read"));
  CANAL_ASSERT_OK(pair);
  char buffer[8];
  const absl::Time start = absl::Now();
  CANAL_EXPECT_CODE(pair->server.Read(absl::MakeSpan(buffer), kShort),
                    kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, kShort - kSlack);
}

TEST(TimeoutTest, MessageReadIsDeadlineExceeded) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("to-mread"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  char buffer[8];
  CANAL_EXPECT_CODE(pair->client.Read(absl::MakeSpan(buffer), kShort),
                    kDeadlineExceeded);
}

TEST(TimeoutTest, ReadMessageIsDeadlineExceeded) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("to-readmsg"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  const absl::Time start = absl::Now();
  CANAL_EXPECT_CODE(pair->server.ReadMessage(kShort), kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, kShort - kSlack);
}

TEST(TimeoutTest, ZeroTimeoutReadIsDeadlineExceededAtOnce) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("to-zero"));
  CANAL_ASSERT_OK(pair);
  char buffer[8];
  CANAL_EXPECT_CODE(
      pair->server.Read(absl::MakeSpan(buffer), absl::ZeroDuration()),
      kDeadlineExceeded);
}

TEST(TimeoutTest, AcceptIsDeadlineExceeded) {
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(UniqueName("to-accept"));
  CANAL_ASSERT_OK(listener);
  const absl::Time start = absl::Now();
  CANAL_EXPECT_CODE(listener->Accept(kShort), kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, kShort - kSlack);
}

TEST(TimeoutTest, ConnectToBusyListenerIsDeadlineExceeded) {
  const std::string name = UniqueName("to-connect");
  canal::ListenerOptions options;
  options.max_instances = 1;
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, options);
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> first = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(first);
  canal::ConnectOptions connect;
  connect.timeout = kShort;
  const absl::Time start = absl::Now();
  CANAL_EXPECT_CODE(canal::Channel::Connect(name, connect), kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, kShort - kSlack);
}

TEST(TimeoutTest, WriteToFullPipeIsDeadlineExceeded) {
  canal::ListenerOptions options;
  options.buffer_size = 4096;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("to-write"), options);
  CANAL_ASSERT_OK(pair);
  // Nobody reads: far more than any pipe buffer cannot be written.
  CANAL_EXPECT_CODE(pair->client.Write(Pattern(32 * 1024 * 1024), kShort),
                    kDeadlineExceeded);
}

TEST(TimeoutTest, TransactWithoutReplyIsDeadlineExceeded) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("to-transact"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.Transact("hello?", kShort), kDeadlineExceeded);
  // The request itself was delivered whole.
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "hello?");
}

TEST(TimeoutTest, CallWithoutReplyIsDeadlineExceeded) {
  const std::string name = UniqueName("to-call");
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, MessageOptions());
  CANAL_ASSERT_OK(listener);
  CANAL_EXPECT_CODE(canal::Call(name, "hello?", absl::Milliseconds(200)),
                    kDeadlineExceeded);
}

TEST(TimeoutTest, TimedOutReadConsumesNothing) {
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("to-nothing"));
  CANAL_ASSERT_OK(pair);
  char buffer[16];
  CANAL_ASSERT_CODE(pair->server.Read(absl::MakeSpan(buffer), kShort),
                    kDeadlineExceeded);
  CANAL_ASSERT_OK(pair->client.Write("intact"));
  absl::StatusOr<std::string> got = ReadExactly(pair->server, 6);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "intact");
}

TEST(TimeoutTest, TimedOutReadMessageLosesNoMessage) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("to-msgkeep"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_ASSERT_CODE(pair->server.ReadMessage(kShort), kDeadlineExceeded);
  CANAL_ASSERT_OK(pair->client.WriteMessage("first"));
  CANAL_ASSERT_OK(pair->client.WriteMessage("second"));
  absl::StatusOr<std::string> m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "first");
  m = pair->server.ReadMessage(kHangGuard);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "second");
}

// A big message arrives in pieces while the reader keeps timing out: every
// ReadMessage either times out or returns the whole message.
TEST(TimeoutTest, MessageIsNeverDeliveredTorn) {
  canal::ListenerOptions options = MessageOptions();
  options.buffer_size = 4096;
  absl::StatusOr<ConnectedPair> pair = MakePair(UniqueName("to-torn"), options);
  CANAL_ASSERT_OK(pair);
  const std::string big = Pattern(4 * 1024 * 1024, 17);
  absl::Status write_status;
  {
    Background writer([&] {
      write_status = pair->client.WriteMessage(big);
      if (write_status.ok()) write_status = pair->client.WriteMessage("tail");
    });
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    int timeouts = 0;
    absl::StatusOr<std::string> m;
    do {
      m = pair->server.ReadMessage(absl::Milliseconds(2));
      if (absl::IsDeadlineExceeded(m.status())) ++timeouts;
    } while (absl::IsDeadlineExceeded(m.status()) && absl::Now() < give_up);
    CANAL_EXPECT_OK(m);
    if (m.ok()) {
      EXPECT_EQ(m->size(), big.size()) << "after " << timeouts << " timeouts";
      EXPECT_TRUE(*m == big) << "after " << timeouts << " timeouts";
      m = pair->server.ReadMessage(kHangGuard);
      CANAL_EXPECT_OK(m);
      if (m.ok()) {
        EXPECT_EQ(*m, "tail");
      }
    } else {
      pair->client.Close();
    }
    EXPECT_TRUE(writer.Finished(kHangGuard));
  }
  CANAL_EXPECT_OK(write_status);
}

// The same with partial Reads: each chunk continues the message exactly.
TEST(TimeoutTest, TimedOutPartialReadsKeepTheMessageIntact) {
  canal::ListenerOptions options = MessageOptions();
  options.buffer_size = 4096;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("to-parts"), options);
  CANAL_ASSERT_OK(pair);
  const std::string big = Pattern(1024 * 1024, 19);
  absl::Status write_status;
  {
    Background writer([&] { write_status = pair->client.WriteMessage(big); });
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    std::string received;
    std::vector<char> buffer(10000);
    bool more = true;
    while (more && absl::Now() < give_up) {
      absl::StatusOr<canal::ReadResult> r =
          pair->server.Read(absl::MakeSpan(buffer), absl::Milliseconds(2));
      if (absl::IsDeadlineExceeded(r.status())) continue;
      if (!r.ok()) {
        ADD_FAILURE() << "Read after " << received.size() << ": " << r.status();
        break;
      }
      received.append(buffer.data(), r->size);
      more = r->more;
    }
    if (more) pair->client.Close();
    EXPECT_TRUE(writer.Finished(kHangGuard));
    EXPECT_EQ(received.size(), big.size());
    EXPECT_TRUE(received == big);
  }
  CANAL_EXPECT_OK(write_status);
}

// "With a blocking-wait handle, the write operation cannot succeed until
// sufficient space is created in the buffer by a thread reading from the
// other end of the pipe" (Named Pipe Type, Read, and Wait Modes): canal
// bounds that wait by the timeout, for messages too.
TEST(TimeoutTest, WriteMessageToFullPipeIsDeadlineExceeded) {
  canal::ListenerOptions options = MessageOptions();
  options.buffer_size = 4096;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("to-writemsg"), options);
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.WriteMessage(Pattern(4 * 1024 * 1024), kShort),
                    kDeadlineExceeded);
}

// The same with Write on a message-mode channel, from the listener side.
TEST(TimeoutTest, MessageModeWriteToFullPipeIsDeadlineExceeded) {
  canal::ListenerOptions options = MessageOptions();
  options.buffer_size = 4096;
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("to-writem2"), options);
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->server.Write(Pattern(4 * 1024 * 1024), kShort),
                    kDeadlineExceeded);
}

// "TransactNamedPipe is typically called by pipe clients, but can also be
// used by a pipe server" (Transactions on Named Pipes).
TEST(TimeoutTest, ServerSideTransactWithoutReplyIsDeadlineExceeded) {
  absl::StatusOr<ConnectedPair> pair =
      MakePair(UniqueName("to-stransact"), MessageOptions());
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->server.Transact("hello?", kShort), kDeadlineExceeded);
}

// CallNamedPipe waits for an instance up to its timeout; canal's Call does
// the same within its one budget.
TEST(TimeoutTest, CallToBusyListenerIsDeadlineExceeded) {
  const std::string name = UniqueName("to-callbusy");
  canal::ListenerOptions options = MessageOptions();
  options.max_instances = 1;
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, options);
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> holder = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(holder);
  CANAL_EXPECT_CODE(canal::Call(name, "x", absl::Milliseconds(200)),
                    kDeadlineExceeded);
}

// WaitNamedPipe: "If the time-out interval expires, the WaitNamedPipe
// function will fail with the error ERROR_SEM_TIMEOUT."
TEST(TimeoutTest, WaitForListenerOnBusyListenerIsDeadlineExceeded) {
  const std::string name = UniqueName("to-waitbusy");
  canal::ListenerOptions options;
  options.max_instances = 1;
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, options);
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> holder = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(holder);
  CANAL_EXPECT_CODE(canal::WaitForListener(name, kShort), kDeadlineExceeded);
}

// A zero timeout polls once (as PIPE_NOWAIT does, Wine's test_nowait): what
// is already there is taken, otherwise DeadlineExceeded at once.
TEST(TimeoutTest, ZeroTimeoutTakesWhatIsAlreadyThere) {
  const std::string name = UniqueName("to-zero-there");
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, MessageOptions());
  CANAL_ASSERT_OK(listener);
  CANAL_EXPECT_OK(canal::WaitForListener(name, absl::ZeroDuration()));
  canal::ConnectOptions connect;
  connect.timeout = absl::ZeroDuration();
  absl::StatusOr<canal::Channel> client =
      canal::Channel::Connect(name, connect);
  CANAL_ASSERT_OK(client);
  CANAL_ASSERT_OK(client->WriteMessage("queued", absl::ZeroDuration()));
  CANAL_ASSERT_OK(client->WriteMessage("second", absl::ZeroDuration()));
  absl::StatusOr<canal::Channel> server = listener->Accept(kHangGuard);
  CANAL_ASSERT_OK(server);
  char buffer[16];
  absl::StatusOr<canal::ReadResult> r =
      server->Read(absl::MakeSpan(buffer), absl::ZeroDuration());
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(std::string(buffer, r->size), "queued");
  absl::StatusOr<std::string> m = server->ReadMessage(absl::ZeroDuration());
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, "second");
  CANAL_EXPECT_CODE(server->ReadMessage(absl::ZeroDuration()),
                    kDeadlineExceeded);
  CANAL_EXPECT_CODE(listener->Accept(absl::ZeroDuration()), kDeadlineExceeded);
}

// ConnectNamedPipe: "If a client connects before the function is called,
// the function returns zero and GetLastError returns ERROR_PIPE_CONNECTED":
// a client whose Connect has returned is there, and a zero-timeout Accept
// takes it. Many rounds, so that a listener that only notices a connection
// some time after it was made fails here (it is a race: such a listener
// misses some rounds, not all).
TEST(TimeoutTest, ZeroTimeoutAcceptTakesAClientThatHasConnected) {
  const std::string name = UniqueName("to-zero-accept");
  absl::StatusOr<canal::Listener> listener = canal_test::CreateListener(name);
  CANAL_ASSERT_OK(listener);
  constexpr int kRounds = 200;
  int missed = 0;
  for (int round = 0; round < kRounds; ++round) {
    absl::StatusOr<canal::Channel> client =
        canal::Channel::Connect(name, canal::ConnectOptions());
    CANAL_ASSERT_OK(client);
    absl::StatusOr<canal::Channel> server =
        listener->Accept(absl::ZeroDuration());
    if (!server.ok()) {
      ASSERT_TRUE(absl::IsDeadlineExceeded(server.status())) << server.status();
      ++missed;
      // Take it anyway, so that the next round starts clean.
      server = listener->Accept(kHangGuard);
      CANAL_ASSERT_OK(server);
    }
    CANAL_ASSERT_OK(client->Write("r"));
    absl::StatusOr<std::string> got = ReadExactly(*server, 1);
    CANAL_ASSERT_OK(got);
  }
  EXPECT_EQ(missed, 0) << "Accept(ZeroDuration()) missed " << missed << " of "
                       << kRounds << " clients that had already connected";
}

// Wine's test_wait_pipe: WaitNamedPipe(1) on a pipe whose instance is
// taken fails at once with ERROR_SEM_TIMEOUT; a zero timeout does not wait.
TEST(TimeoutTest, ZeroTimeoutConnectAndWaitOnBusyListenerAreDeadlineExceeded) {
  const std::string name = UniqueName("to-zero-busy");
  canal::ListenerOptions options;
  options.max_instances = 1;
  absl::StatusOr<canal::Listener> listener =
      canal_test::CreateListener(name, options);
  CANAL_ASSERT_OK(listener);
  absl::StatusOr<canal::Channel> holder = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(holder);
  canal::ConnectOptions connect;
  connect.timeout = absl::ZeroDuration();
  CANAL_EXPECT_CODE(canal::Channel::Connect(name, connect), kDeadlineExceeded);
  CANAL_EXPECT_CODE(canal::WaitForListener(name, absl::ZeroDuration()),
                    kDeadlineExceeded);
  CANAL_EXPECT_CODE(canal::Call(name, "x", absl::ZeroDuration()),
                    kDeadlineExceeded);
}

}  // namespace
