// SPDX-License-Identifier: Apache-2.0
// Interoperability of canal's Win32 backend with plain Win32 named-pipe
// code: raw clients against a canal listener, a canal Channel against raw
// servers, busy instances, one-way pipes and cancellation.

#include <windows.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "win32/raw_win32.h"

namespace {

using canal_test::Background;
using canal_test::RunningUnderWine;
using canal_test::UniqueName;
using canal_win32_test::Handle;
using canal_win32_test::OpenRawClient;
using canal_win32_test::PipePath;

constexpr absl::Duration kGuard = absl::Seconds(20);

canal::ListenerOptions MessageOptions() {
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  return options;
}

// Sends `data` with one synchronous WriteFile.
void RawWrite(HANDLE h, absl::string_view data) {
  DWORD written = 0;
  ASSERT_TRUE(WriteFile(h, data.data(), static_cast<DWORD>(data.size()),
                        &written, nullptr))
      << GetLastError();
  ASSERT_EQ(written, data.size());
}

// --- Raw clients against a canal listener ----------------------------------

TEST(RawClientTest, MessageModePartialReadsReportMoreData) {
  const std::string name = UniqueName("partial");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, MessageOptions());
  ASSERT_TRUE(listener.ok()) << listener.status();
  DWORD error = 0;
  Handle raw = OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, true, &error);
  ASSERT_TRUE(raw.valid()) << error;
  absl::StatusOr<canal::Channel> server = listener->Accept(kGuard);
  ASSERT_TRUE(server.ok()) << server.status();

  ASSERT_TRUE(server->WriteMessage("hello world").ok());
  char buffer[64];
  DWORD read = 0;
  EXPECT_FALSE(ReadFile(raw.get(), buffer, 5, &read, nullptr));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_MORE_DATA));
  EXPECT_EQ(std::string(buffer, read), "hello");
  ASSERT_TRUE(ReadFile(raw.get(), buffer, sizeof(buffer), &read, nullptr));
  EXPECT_EQ(std::string(buffer, read), " world");

  // Raw messages, including an empty one, keep their boundaries.
  RawWrite(raw.get(), "abc");
  RawWrite(raw.get(), "");
  RawWrite(raw.get(), "xyz12");
  absl::StatusOr<std::string> m = server->ReadMessage(kGuard);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, "abc");
  m = server->ReadMessage(kGuard);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, "");
  absl::StatusOr<canal::ReadResult> r =
      server->Read(absl::MakeSpan(buffer, 2), kGuard);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size, 2u);
  EXPECT_TRUE(r->more);
  r = server->Read(absl::MakeSpan(buffer + 2, 10), kGuard);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size, 3u);
  EXPECT_FALSE(r->more);
  EXPECT_EQ(std::string(buffer, 5), "xyz12");
}

// Echoes one message per connection, prefixed with "re:", `count` times.
void EchoServer(canal::Listener* listener, int count, size_t pad = 0) {
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<canal::Channel> ch = listener->Accept(kGuard);
    ASSERT_TRUE(ch.ok()) << ch.status();
    absl::StatusOr<std::string> request = ch->ReadMessage(kGuard);
    ASSERT_TRUE(request.ok()) << request.status();
    ASSERT_TRUE(
        ch->WriteMessage("re:" + *request + std::string(pad, '.')).ok());
    // Wait for the client to finish before closing.
    char byte;
    EXPECT_FALSE(ch->Read(absl::MakeSpan(&byte, 1), kGuard).ok());
  }
}

TEST(RawClientTest, TransactNamedPipe) {
  const std::string name = UniqueName("transact");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, MessageOptions());
  ASSERT_TRUE(listener.ok()) << listener.status();
  Background server([&] { EchoServer(&*listener, 2, 20); });

  DWORD error = 0;
  {
    Handle raw =
        OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, true, &error);
    ASSERT_TRUE(raw.valid()) << error;
    char reply[64];
    DWORD read = 0;
    char request[] = "ping";
    ASSERT_TRUE(TransactNamedPipe(raw.get(), request, 4, reply, sizeof(reply),
                                  &read, nullptr))
        << GetLastError();
    EXPECT_EQ(std::string(reply, read), "re:ping" + std::string(20, '.'));
  }
  {
    // A reply larger than the buffer: ERROR_MORE_DATA, the rest by ReadFile.
    Handle raw =
        OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, true, &error);
    ASSERT_TRUE(raw.valid()) << error;
    char reply[64];
    DWORD read = 0;
    char request[] = "pong";
    EXPECT_FALSE(
        TransactNamedPipe(raw.get(), request, 4, reply, 10, &read, nullptr));
    EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_MORE_DATA));
    std::string got(reply, read);
    ASSERT_TRUE(ReadFile(raw.get(), reply, sizeof(reply), &read, nullptr));
    got.append(reply, read);
    EXPECT_EQ(got, "re:pong" + std::string(20, '.'));
  }
  EXPECT_TRUE(server.Finished(kGuard));
}

TEST(RawClientTest, CallNamedPipe) {
  const std::string name = UniqueName("callnp");
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, MessageOptions());
  ASSERT_TRUE(listener.ok()) << listener.status();
  Background server([&] { EchoServer(&*listener, 1); });
  char request[] = "hi";
  char reply[64];
  DWORD read = 0;
  ASSERT_TRUE(CallNamedPipeW(PipePath(name).c_str(), request, 2, reply,
                             sizeof(reply), &read, 10000))
      << GetLastError();
  EXPECT_EQ(std::string(reply, read), "re:hi");
  EXPECT_TRUE(server.Finished(kGuard));
}

TEST(RawClientTest, ByteModeBothWays) {
  const std::string name = UniqueName("rawbyte");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  ASSERT_TRUE(listener.ok()) << listener.status();
  DWORD error = 0;
  Handle raw = OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, false, &error);
  ASSERT_TRUE(raw.valid()) << error;
  DWORD flags = 0;
  ASSERT_TRUE(GetNamedPipeInfo(raw.get(), &flags, nullptr, nullptr, nullptr));
  EXPECT_EQ(flags & PIPE_TYPE_MESSAGE, 0u);
  absl::StatusOr<canal::Channel> server = listener->Accept(kGuard);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(server->mode(), canal::PipeMode::kByte);
  RawWrite(raw.get(), "hello");
  RawWrite(raw.get(), "");  // A zero-byte write is not the end of a stream.
  RawWrite(raw.get(), "!");
  absl::StatusOr<std::string> got = canal_test::ReadExactly(*server, 6);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "hello!");
  ASSERT_TRUE(server->Write("world").ok());
  char buffer[16];
  DWORD read = 0;
  std::string back;
  while (back.size() < 5) {
    ASSERT_TRUE(ReadFile(raw.get(), buffer, sizeof(buffer), &read, nullptr));
    back.append(buffer, read);
  }
  EXPECT_EQ(back, "world");
}

TEST(RawClientTest, PeerProcessIds) {
  const std::string name = UniqueName("peer");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  ASSERT_TRUE(listener.ok()) << listener.status();
  DWORD error = 0;
  Handle raw = OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, false, &error);
  ASSERT_TRUE(raw.valid()) << error;
  absl::StatusOr<canal::Channel> server = listener->Accept(kGuard);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<canal::PeerInfo> peer = server->Peer();
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(peer->process_id, static_cast<int64_t>(GetCurrentProcessId()));
  ULONG pid = 0;
  ASSERT_TRUE(GetNamedPipeServerProcessId(raw.get(), &pid));
  EXPECT_EQ(pid, GetCurrentProcessId());
}

TEST(RawClientTest, PortableAndNativeNamesAreTheSamePipe) {
  const std::string name = UniqueName("native");
  const std::string native = "\\\\.\\pipe\\" + name;
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(native);
  ASSERT_TRUE(listener.ok()) << listener.status();
  DWORD error = 0;
  Handle raw = OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, false, &error);
  ASSERT_TRUE(raw.valid()) << error;
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  ASSERT_TRUE(client.ok()) << client.status();
  // Pipe names are case-insensitive on Windows.
  EXPECT_EQ(canal::Listener::Create(native).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(RawClientTest, OversizedRawMessageIsResourceExhaustedAndNotConsumed) {
  const std::string name = UniqueName("oversize");
  canal::ListenerOptions options = MessageOptions();
  options.max_message_size = 1024;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  DWORD error = 0;
  Handle raw = OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, true, &error);
  ASSERT_TRUE(raw.valid()) << error;
  absl::StatusOr<canal::Channel> server = listener->Accept(kGuard);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string big = canal_test::Pattern(3000, 7);
  RawWrite(raw.get(), big);
  absl::StatusOr<std::string> m = server->ReadMessage(kGuard);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kResourceExhausted)
      << m.status();
  // Nothing was consumed: Read still gets the whole message, piece by piece.
  std::string got;
  std::vector<char> buffer(1000);
  while (true) {
    absl::StatusOr<canal::ReadResult> r =
        server->Read(absl::MakeSpan(buffer), kGuard);
    ASSERT_TRUE(r.ok()) << r.status();
    got.append(buffer.data(), r->size);
    if (!r->more) break;
  }
  EXPECT_EQ(got, big);
}

// --- A canal Channel against raw servers -------------------------------------

Handle RawServer(absl::string_view name, DWORD pipe_type, DWORD access) {
  const DWORD read_mode =
      pipe_type == PIPE_TYPE_MESSAGE ? PIPE_READMODE_MESSAGE : 0;
  return Handle(CreateNamedPipeW(PipePath(name).c_str(), access,
                                 pipe_type | read_mode | PIPE_WAIT, 1, 4096,
                                 4096, 0, nullptr));
}

TEST(RawServerTest, ByteMode) {
  const std::string name = UniqueName("srvbyte");
  Handle pipe = RawServer(name, PIPE_TYPE_BYTE, PIPE_ACCESS_DUPLEX);
  ASSERT_TRUE(pipe.valid()) << GetLastError();
  Background server([&] {
    if (!ConnectNamedPipe(pipe.get(), nullptr)) {
      ASSERT_EQ(GetLastError(), static_cast<DWORD>(ERROR_PIPE_CONNECTED));
    }
    std::string got;
    char buffer[16];
    DWORD read = 0;
    while (got.size() < 5) {
      ASSERT_TRUE(ReadFile(pipe.get(), buffer, sizeof(buffer), &read, nullptr));
      got.append(buffer, read);
    }
    EXPECT_EQ(got, "ping!");
    RawWrite(pipe.get(), "pong!");
    pipe.reset();  // Closing without DisconnectNamedPipe keeps the data.
  });
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ(client->mode(), canal::PipeMode::kByte);
  ASSERT_TRUE(client->Write("ping!").ok());
  absl::StatusOr<std::string> got = canal_test::ReadExactly(*client, 5);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "pong!");
  EXPECT_TRUE(server.Finished(kGuard));
  char byte;
  EXPECT_EQ(client->Read(absl::MakeSpan(&byte, 1), kGuard).status().code(),
            absl::StatusCode::kOutOfRange);
  absl::StatusOr<canal::PeerInfo> peer = client->Peer();
  if (peer.ok()) {
    EXPECT_EQ(peer->process_id, static_cast<int64_t>(GetCurrentProcessId()));
  }
}

TEST(RawServerTest, MessageMode) {
  const std::string name = UniqueName("srvmsg");
  Handle pipe = RawServer(name, PIPE_TYPE_MESSAGE, PIPE_ACCESS_DUPLEX);
  ASSERT_TRUE(pipe.valid()) << GetLastError();
  absl::Notification replied;
  Background server([&] {
    if (!ConnectNamedPipe(pipe.get(), nullptr)) {
      ASSERT_EQ(GetLastError(), static_cast<DWORD>(ERROR_PIPE_CONNECTED));
    }
    char buffer[64];
    DWORD read = 0;
    ASSERT_TRUE(ReadFile(pipe.get(), buffer, sizeof(buffer), &read, nullptr));
    EXPECT_EQ(std::string(buffer, read), "question");
    RawWrite(pipe.get(), "answer");
    RawWrite(pipe.get(), "a");
    RawWrite(pipe.get(), "");
    RawWrite(pipe.get(), "0123456789");
    // Wait for the client to hang up.
    EXPECT_FALSE(ReadFile(pipe.get(), buffer, sizeof(buffer), &read, nullptr));
  });
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ(client->mode(), canal::PipeMode::kMessage);
  absl::StatusOr<std::string> reply = client->Transact("question", kGuard);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "answer");
  absl::StatusOr<std::string> m = client->ReadMessage(kGuard);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, "a");
  m = client->ReadMessage(kGuard);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, "");
  char buffer[4];
  absl::StatusOr<canal::ReadResult> r =
      client->Read(absl::MakeSpan(buffer), kGuard);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size, 4u);
  EXPECT_TRUE(r->more);
  m = client->ReadMessage(kGuard);  // The rest of the same message.
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, "456789");
  client->Close();
  EXPECT_TRUE(server.Finished(kGuard));
}

// --- Busy instances
// -----------------------------------------------------------

TEST(BusyTest, MaxInstancesOneIsBusyForRawAndCanalClients) {
  const std::string name = UniqueName("busy");
  canal::ListenerOptions options;
  options.max_instances = 1;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  DWORD error = 0;
  Handle first =
      OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, false, &error);
  ASSERT_TRUE(first.valid()) << error;

  Handle second =
      OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, false, &error);
  EXPECT_FALSE(second.valid());
  EXPECT_EQ(error, static_cast<DWORD>(ERROR_PIPE_BUSY));
  EXPECT_FALSE(WaitNamedPipeW(PipePath(name).c_str(), 50));
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_SEM_TIMEOUT));
  canal::ConnectOptions quick;
  quick.timeout = absl::Milliseconds(100);
  EXPECT_EQ(canal::Channel::Connect(name, quick).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(canal::WaitForListener(name, absl::Milliseconds(100)).code(),
            absl::StatusCode::kDeadlineExceeded);

  // A waiting Connect succeeds once the connected channel closes, without
  // anyone in Accept.
  absl::Notification waiting;
  absl::Status connected;
  Background waiter([&] {
    canal::ConnectOptions patient;
    patient.timeout = kGuard;
    waiting.Notify();
    connected = canal::Channel::Connect(name, patient).status();
  });
  waiting.WaitForNotification();
  {
    absl::StatusOr<canal::Channel> server = listener->Accept(kGuard);
    ASSERT_TRUE(server.ok()) << server.status();
    first.reset();
    server->Close();
  }
  EXPECT_TRUE(waiter.Finished(kGuard));
  EXPECT_TRUE(connected.ok()) << connected;
}

TEST(BusyTest, ManyRawClientsConnectWithoutAccept) {
  const std::string name = UniqueName("burst");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  ASSERT_TRUE(listener.ok()) << listener.status();
  std::vector<Handle> clients;
  for (int i = 0; i < 32; ++i) {
    // A well-behaved raw client: retry busy instances with WaitNamedPipe.
    Handle h;
    for (int attempt = 0; attempt < 100 && !h.valid(); ++attempt) {
      DWORD error = 0;
      h = OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, false, &error);
      if (h.valid()) break;
      ASSERT_EQ(error, static_cast<DWORD>(ERROR_PIPE_BUSY)) << i;
      WaitNamedPipeW(PipePath(name).c_str(), 1000);
    }
    ASSERT_TRUE(h.valid()) << i;
    clients.push_back(std::move(h));
  }
  for (int i = 0; i < 32; ++i) {
    absl::StatusOr<canal::Channel> server = listener->Accept(kGuard);
    ASSERT_TRUE(server.ok()) << server.status();
  }
}

// --- One-way pipes
// ------------------------------------------------------------

TEST(AccessTest, InboundPipe) {
  const std::string name = UniqueName("inbound");
  canal::ListenerOptions options = MessageOptions();
  options.access = canal::PipeAccess::kInbound;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  DWORD error = 0;
  Handle duplex =
      OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, false, &error);
  EXPECT_FALSE(duplex.valid());
  EXPECT_EQ(error, static_cast<DWORD>(ERROR_ACCESS_DENIED));
  Handle writer = OpenRawClient(name, GENERIC_WRITE, false, &error);
  ASSERT_TRUE(writer.valid()) << error;
  RawWrite(writer.get(), "in");
  absl::StatusOr<canal::Channel> server = listener->Accept(kGuard);
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<std::string> m = server->ReadMessage(kGuard);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, "in");
  EXPECT_EQ(server->WriteMessage("x").code(),
            absl::StatusCode::kFailedPrecondition);

  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  ASSERT_TRUE(client.ok()) << client.status();
  char byte;
  EXPECT_EQ(client->Read(absl::MakeSpan(&byte, 1)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(client->WriteMessage("from canal").ok());
  absl::StatusOr<canal::Channel> server2 = listener->Accept(kGuard);
  ASSERT_TRUE(server2.ok()) << server2.status();
  m = server2->ReadMessage(kGuard);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(*m, "from canal");
}

TEST(AccessTest, OutboundPipe) {
  const std::string name = UniqueName("outbound");
  canal::ListenerOptions options;
  options.access = canal::PipeAccess::kOutbound;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  ASSERT_TRUE(listener.ok()) << listener.status();
  DWORD error = 0;
  Handle duplex =
      OpenRawClient(name, GENERIC_READ | GENERIC_WRITE, false, &error);
  EXPECT_FALSE(duplex.valid());
  EXPECT_EQ(error, static_cast<DWORD>(ERROR_ACCESS_DENIED));
  Handle reader = OpenRawClient(name, GENERIC_READ, false, &error);
  ASSERT_TRUE(reader.valid()) << error;
  absl::StatusOr<canal::Channel> server = listener->Accept(kGuard);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(server->Write("out").ok());
  char buffer[8];
  DWORD read = 0;
  ASSERT_TRUE(ReadFile(reader.get(), buffer, sizeof(buffer), &read, nullptr));
  EXPECT_EQ(std::string(buffer, read), "out");
  char byte;
  EXPECT_EQ(server->Read(absl::MakeSpan(&byte, 1)).status().code(),
            absl::StatusCode::kFailedPrecondition);

  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ(client->Write("x").code(), absl::StatusCode::kFailedPrecondition);
}

// --- Cancellation
// -------------------------------------------------------------

TEST(CancelTest, CloseCancelsAPendingOverlappedRead) {
  const std::string name = UniqueName("cancel");
  absl::StatusOr<canal_test::ConnectedPair> pair = canal_test::MakePair(name);
  ASSERT_TRUE(pair.ok()) << pair.status();
  absl::Notification started;
  absl::Status status;
  absl::Time returned;
  Background reader([&] {
    char buffer[16];
    started.Notify();
    status = pair->client.Read(absl::MakeSpan(buffer)).status();
    returned = absl::Now();
  });
  started.WaitForNotification();
  const absl::Time closed = absl::Now();
  pair->client.Close();
  EXPECT_TRUE(reader.Finished(kGuard));
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_LT(returned - closed, absl::Seconds(1));
  // The handle is gone once nothing is in flight.
  EXPECT_EQ(pair->client.native_handle(), nullptr);
  EXPECT_FALSE(pair->client.is_open());
}

TEST(CancelTest, CloseCancelsAPendingWriteAndAccept) {
  const std::string name = UniqueName("cancelw");
  canal::ListenerOptions options;
  options.buffer_size = 4096;
  absl::StatusOr<canal_test::ConnectedPair> pair =
      canal_test::MakePair(name, options);
  ASSERT_TRUE(pair.ok()) << pair.status();
  absl::Notification started;
  absl::Status write_status;
  absl::Status accept_status;
  {
    Background writer([&] {
      started.Notify();
      // Nobody reads: this blocks once the pipe's buffer is full.
      write_status = pair->server.Write(std::string(8 << 20, 'w'));
    });
    Background acceptor(
        [&] { accept_status = pair->listener.Accept().status(); });
    started.WaitForNotification();
    pair->server.Close();
    pair->listener.Close();
    EXPECT_TRUE(writer.Finished(kGuard));
    EXPECT_TRUE(acceptor.Finished(kGuard));
  }
  EXPECT_EQ(write_status.code(), absl::StatusCode::kCancelled) << write_status;
  EXPECT_EQ(accept_status.code(), absl::StatusCode::kCancelled)
      << accept_status;
}

// --- Peer gone, names
// ---------------------------------------------------------

TEST(PeerGoneTest, DataWrittenBeforeServerCloseIsStillRead) {
  const std::string name = UniqueName("drain");
  absl::StatusOr<canal_test::ConnectedPair> pair =
      canal_test::MakePair(name, MessageOptions());
  ASSERT_TRUE(pair.ok()) << pair.status();
  ASSERT_TRUE(pair->server.WriteMessage("one").ok());
  ASSERT_TRUE(pair->server.WriteMessage("").ok());
  ASSERT_TRUE(pair->server.WriteMessage("three").ok());
  pair->server.Close();
  for (const char* want : {"one", "", "three"}) {
    absl::StatusOr<std::string> m = pair->client.ReadMessage(kGuard);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(*m, want);
  }
  EXPECT_EQ(pair->client.ReadMessage(kGuard).status().code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(pair->client.WriteMessage("x").code(),
            absl::StatusCode::kUnavailable);
}

TEST(NamesTest, SecondListenerIsAlreadyExistsEvenUnderWine) {
  // canal does not rely on FILE_FLAG_FIRST_PIPE_INSTANCE alone (Wine does
  // not enforce it): it looks for a live instance first.
  const std::string name = UniqueName("exists");
  absl::StatusOr<canal::Listener> first = canal::Listener::Create(name);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(canal::Listener::Create(name).status().code(),
            absl::StatusCode::kAlreadyExists);
  first->Close();
  absl::StatusOr<canal::Listener> again = canal::Listener::Create(name);
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST(NamesTest, NameHeldByARawServerIsAlreadyExists) {
  const std::string name = UniqueName("rawheld");
  Handle pipe = RawServer(name, PIPE_TYPE_BYTE, PIPE_ACCESS_DUPLEX);
  ASSERT_TRUE(pipe.valid()) << GetLastError();
  EXPECT_EQ(canal::Listener::Create(name).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(NamesTest, FirstPipeInstanceIsEnforced) {
  if (RunningUnderWine()) {
    GTEST_SKIP() << "Wine does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE";
  }
  const std::string name = UniqueName("firstinst");
  Handle a(CreateNamedPipeW(PipePath(name).c_str(),
                            PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE,
                            PIPE_TYPE_BYTE, PIPE_UNLIMITED_INSTANCES, 0, 0, 0,
                            nullptr));
  ASSERT_TRUE(a.valid());
  Handle b(CreateNamedPipeW(PipePath(name).c_str(),
                            PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE,
                            PIPE_TYPE_BYTE, PIPE_UNLIMITED_INSTANCES, 0, 0, 0,
                            nullptr));
  EXPECT_FALSE(b.valid());
  EXPECT_EQ(GetLastError(), static_cast<DWORD>(ERROR_ACCESS_DENIED));
}

}  // namespace
