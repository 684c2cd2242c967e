// SPDX-License-Identifier: Apache-2.0
// Bad input from the API user: every public function given bad arguments
// (empty, oversized or malformed names, invalid options, default-constructed,
// moved-from or closed objects, zero and negative timeouts, empty buffers)
// returns a clear status naming the operation, and never crashes or hangs.
// Only the public API is used; platform differences are marked.
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "canal/fifo.h"
#include "canal/pipe.h"
#include "canal/server.h"
#include "canal/subprocess.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::UniqueName;

// The malformed names every name-taking function must refuse.
std::vector<std::string> BadNames() {
  return {"",       std::string(201, 'n'),
          "a/b",    std::string("ab\0cd", 5),
          ".",      "..",
          "sp ace", "caf\xc3\xa9",
          "@",      std::string(5000, 'x')};
}

::testing::AssertionResult Names(const absl::Status& s, absl::string_view op) {
  if (absl::StrContains(s.message(), op)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "message of " << s << " does not name \"" << op << "\"";
}

// Runs `fn` on a thread and fails the test if it does not return in time.
#define CANAL_NO_HANG(body)                                              \
  do {                                                                   \
    canal_test::Background bg_([&] { body; });                           \
    ASSERT_TRUE(bg_.Finished(canal_test::kHangGuard)) << "hung: " #body; \
  } while (false)

// --- Names --------------------------------------------------------------

TEST(BadInput, ConnectBadNames) {
  for (const std::string& name : BadNames()) {
    auto ch = canal::Channel::Connect(name);
    CANAL_EXPECT_CODE(ch, kInvalidArgument);
    EXPECT_TRUE(Names(ch.status(), "Connect"));
  }
  auto missing = canal::Channel::Connect(UniqueName("bi-missing"));
  CANAL_EXPECT_CODE(missing, kNotFound);
  EXPECT_TRUE(Names(missing.status(), "Connect"));
}

TEST(BadInput, CallBadNames) {
  for (const std::string& name : BadNames()) {
    auto r = canal::Call(name, "x", absl::Seconds(1));
    CANAL_EXPECT_CODE(r, kInvalidArgument);
    EXPECT_TRUE(Names(r.status(), "Call"));
    canal::ConnectOptions options;
    r = canal::Call(name, "x", absl::Seconds(1), options);
    CANAL_EXPECT_CODE(r, kInvalidArgument);
  }
  auto missing = canal::Call(UniqueName("bi-missing"), "x", absl::Seconds(1));
  CANAL_EXPECT_CODE(missing, kNotFound);
}

TEST(BadInput, WaitForListenerBadNames) {
  for (const std::string& name : BadNames()) {
    absl::Status s = canal::WaitForListener(name, absl::Seconds(1));
    CANAL_EXPECT_CODE(s, kInvalidArgument);
    EXPECT_TRUE(Names(s, "WaitForListener"));
  }
  absl::Status missing =
      canal::WaitForListener(UniqueName("bi-missing"), absl::ZeroDuration());
  CANAL_EXPECT_CODE(missing, kNotFound);
  EXPECT_TRUE(Names(missing, "WaitForListener"));
}

TEST(BadInput, ListenerCreateBadNames) {
  for (const std::string& name : BadNames()) {
    auto l = canal::Listener::Create(name);
    CANAL_EXPECT_CODE(l, kInvalidArgument);
    EXPECT_TRUE(Names(l.status(), "Listen"));
  }
}

TEST(BadInput, AbstractNamesRefusedWithoutOptIn) {
  auto l = canal::Listener::Create("@" + UniqueName("bi-abstract"));
  CANAL_EXPECT_CODE(l, kInvalidArgument);
  auto ch = canal::Channel::Connect("@" + UniqueName("bi-abstract"));
  CANAL_EXPECT_CODE(ch, kInvalidArgument);
}

// --- Options ------------------------------------------------------------

TEST(BadInput, ListenerCreateBadOptions) {
  const std::string name = UniqueName("bi-options");
  std::vector<std::pair<std::string, canal::ListenerOptions>> cases;
  for (int n : {-1, -1000, 255, 1000}) {
    canal::ListenerOptions o;
    o.max_instances = n;
    cases.emplace_back(absl::StrCat("max_instances ", n), o);
  }
  {
    canal::ListenerOptions o;
    o.max_message_size = 0;
    cases.emplace_back("max_message_size 0", o);
    o.max_message_size = size_t{1} << 40;
    cases.emplace_back("max_message_size 1 TiB", o);
  }
  {
    canal::ListenerOptions o;
    o.buffer_size = ~size_t{0};
    cases.emplace_back("buffer_size huge", o);
  }
  {
    canal::ListenerOptions o;
    o.mode = static_cast<canal::PipeMode>(42);
    cases.emplace_back("mode 42", o);
  }
  {
    canal::ListenerOptions o;
    o.access = static_cast<canal::PipeAccess>(-3);
    cases.emplace_back("access -3", o);
  }
  {
    canal::ListenerOptions o;
    o.access_policy.scope = static_cast<canal::AccessPolicy::Scope>(99);
    cases.emplace_back("scope 99", o);
  }
#ifndef _WIN32
  {
    canal::ListenerOptions o;
    o.access_policy.scope = canal::AccessPolicy::Scope::kCustom;
    o.access_policy.posix_mode = 0777;
    cases.emplace_back("posix_mode 0777", o);
    o.access_policy.posix_mode = 0066;
    cases.emplace_back("posix_mode 0066", o);
    o.access_policy.posix_mode = 0600;
    o.access_policy.posix_group = -5;
    cases.emplace_back("posix_group -5", o);
  }
#else
  {
    canal::ListenerOptions o;
    o.access_policy.scope = canal::AccessPolicy::Scope::kCustom;
    cases.emplace_back("empty sddl", o);
  }
#endif
  for (const auto& [what, options] : cases) {
    SCOPED_TRACE(what);
    auto l = canal::Listener::Create(name, options);
    CANAL_EXPECT_CODE(l, kInvalidArgument);
    EXPECT_TRUE(Names(l.status(), "Listen")) << what;
  }
  // The name was never taken.
  CANAL_EXPECT_CODE(canal::WaitForListener(name, absl::ZeroDuration()),
                    kNotFound);
}

TEST(BadInput, ConnectBadExpectedServer) {
  const std::string name = UniqueName("bi-expected");
  auto l = canal::Listener::Create(name);
  CANAL_ASSERT_OK(l);
  canal::ConnectOptions o;
  o.timeout = absl::Seconds(2);
  o.expected_server.kind = static_cast<canal::ExpectedServer::Kind>(77);
  auto ch = canal::Channel::Connect(name, o);
  CANAL_EXPECT_CODE(ch, kInvalidArgument);
  EXPECT_TRUE(Names(ch.status(), "Connect"));
  auto call = canal::Call(name, "x", absl::Seconds(2), o);
  CANAL_EXPECT_CODE(call, kInvalidArgument);
}

TEST(BadInput, ServerStartBadOptions) {
  const std::string name = UniqueName("bi-server");
  auto echo = [] {
    canal::ServerHandlers h;
    h.on_request = [](canal::Connection&,
                      absl::string_view r) -> absl::StatusOr<std::string> {
      return std::string(r);
    };
    return h;
  };
  canal::ServerOptions good;
  good.listener.mode = canal::PipeMode::kMessage;
  std::vector<std::pair<std::string, canal::ServerOptions>> cases;
  for (int t : {0, -1, -1000}) {
    canal::ServerOptions o = good;
    o.threads = t;
    cases.emplace_back(absl::StrCat("threads ", t), o);
  }
  {
    canal::ServerOptions o = good;
    o.max_queued_bytes = 0;
    cases.emplace_back("max_queued_bytes 0", o);
  }
  {
    canal::ServerOptions o = good;
    o.read_chunk_size = 0;
    cases.emplace_back("read_chunk_size 0", o);
  }
  {
    canal::ServerOptions o = good;
    o.listener.max_instances = -1;
    cases.emplace_back("listener max_instances -1", o);
  }
  {
    canal::ServerOptions o = good;
    o.listener.mode = canal::PipeMode::kByte;
    cases.emplace_back("on_request on a byte listener", o);
  }
  for (const auto& [what, options] : cases) {
    SCOPED_TRACE(what);
    auto s = canal::Server::Start(name, options, echo());
    CANAL_EXPECT_CODE(s, kInvalidArgument);
  }
  canal::ServerHandlers both = echo();
  both.on_data = [](canal::Connection&, absl::string_view) {};
  auto s = canal::Server::Start(name, good, std::move(both));
  CANAL_EXPECT_CODE(s, kInvalidArgument);
  EXPECT_TRUE(Names(s.status(), "Server::Start"));
  auto bad_name = canal::Server::Start("a/b", good, echo());
  CANAL_EXPECT_CODE(bad_name, kInvalidArgument);
  // After all that, the name is free and a good server starts.
  auto ok = canal::Server::Start(name, good, echo());
  CANAL_ASSERT_OK(ok);
  auto reply = canal::Call(name, "hi", absl::Seconds(5));
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "hi");
}

// --- Invalid objects ----------------------------------------------------

void ExpectChannelInvalid(canal::Channel& ch, absl::StatusCode code) {
  EXPECT_FALSE(ch.is_open());
  char buf[8];
  auto r = ch.Read(absl::MakeSpan(buf), absl::Seconds(1));
  EXPECT_EQ(r.status().code(), code) << r.status();
  EXPECT_TRUE(Names(r.status(), "Read"));
  absl::Status w = ch.Write("x", absl::Seconds(1));
  EXPECT_EQ(w.code(), code) << w;
  EXPECT_TRUE(Names(w, "Write"));
  auto rm = ch.ReadMessage(absl::Seconds(1));
  EXPECT_EQ(rm.status().code(), code) << rm.status();
  EXPECT_TRUE(Names(rm.status(), "ReadMessage"));
  absl::Status wm = ch.WriteMessage("x", absl::Seconds(1));
  EXPECT_EQ(wm.code(), code) << wm;
  // A closed channel's backend reports WriteMessage as the Write it is.
  EXPECT_TRUE(Names(wm, "Write"));
  auto t = ch.Transact("x", absl::Seconds(1));
  EXPECT_EQ(t.status().code(), code) << t.status();
  EXPECT_TRUE(Names(t.status(), "Transact"));
  auto p = ch.Peek(absl::MakeSpan(buf));
  EXPECT_EQ(p.status().code(), code) << p.status();
  EXPECT_TRUE(Names(p.status(), "Peek"));
  auto peer = ch.Peer();
  EXPECT_EQ(peer.status().code(), code) << peer.status();
  EXPECT_TRUE(Names(peer.status(), "Peer"));
  bool ran = false;
  absl::Status rac = ch.RunAsClient([&] { ran = true; });
  EXPECT_FALSE(rac.ok());
  EXPECT_FALSE(ran);
#ifdef _WIN32
  EXPECT_EQ(ch.native_handle(), nullptr);
#else
  EXPECT_EQ(ch.native_handle(), -1);
#endif
  ch.Close();
  ch.Close();
  EXPECT_FALSE(ch.is_open());
}

TEST(BadInput, DefaultConstructedChannel) {
  canal::Channel ch;
  EXPECT_EQ(ch.mode(), canal::PipeMode::kByte);
  EXPECT_TRUE(ch.name().empty());
  ExpectChannelInvalid(ch, absl::StatusCode::kFailedPrecondition);
}

TEST(BadInput, MovedFromChannel) {
  auto pair = canal_test::MakePair(UniqueName("bi-moved"),
                                   canal_test::MessageOptions());
  CANAL_ASSERT_OK(pair);
  canal::Channel taken = std::move(pair->client);
  EXPECT_TRUE(taken.is_open());
  ExpectChannelInvalid(pair->client, absl::StatusCode::kFailedPrecondition);
  // Self-move-assignment through a reference keeps the channel usable.
  canal::Channel& alias = taken;
  taken = std::move(alias);
  CANAL_EXPECT_OK(taken.WriteMessage("still here", absl::Seconds(5)));
  auto got = pair->server.ReadMessage(absl::Seconds(5));
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "still here");
}

TEST(BadInput, ClosedChannel) {
  auto pair = canal_test::MakePair(UniqueName("bi-closed"),
                                   canal_test::MessageOptions());
  CANAL_ASSERT_OK(pair);
  pair->client.Close();
  ExpectChannelInvalid(pair->client, absl::StatusCode::kCancelled);
}

TEST(BadInput, DefaultMovedAndClosedListener) {
  canal::Listener def;
  EXPECT_FALSE(def.is_open());
  EXPECT_TRUE(def.name().empty());
  auto a = def.Accept(absl::Seconds(1));
  CANAL_EXPECT_CODE(a, kFailedPrecondition);
  EXPECT_TRUE(Names(a.status(), "Accept"));
  (void)def.options();
  def.Close();
  def.Close();

  auto made = canal::Listener::Create(UniqueName("bi-listener"));
  CANAL_ASSERT_OK(made);
  canal::Listener live = std::move(*made);
  EXPECT_FALSE(made->is_open());
  a = made->Accept(absl::Seconds(1));
  CANAL_EXPECT_CODE(a, kFailedPrecondition);
  made->Close();

  live.Close();
  live.Close();
  EXPECT_FALSE(live.is_open());
  CANAL_NO_HANG(a = live.Accept(absl::InfiniteDuration()));
  CANAL_EXPECT_CODE(a, kCancelled);
  EXPECT_TRUE(Names(a.status(), "Accept"));
}

TEST(BadInput, DefaultAndMovedSubprocess) {
  canal::Subprocess def;
  EXPECT_EQ(def.pid(), 0);
  auto w = def.Wait(absl::ZeroDuration());
  CANAL_EXPECT_CODE(w, kFailedPrecondition);
  EXPECT_TRUE(Names(w.status(), "Wait"));
  absl::Status k = def.Kill();
  CANAL_EXPECT_CODE(k, kFailedPrecondition);
  EXPECT_TRUE(Names(k, "Kill"));
  EXPECT_FALSE(def.stdin_channel().is_open());
  EXPECT_FALSE(def.TakeStdout().is_open());
  EXPECT_FALSE(def.TakeStderr().is_open());
  EXPECT_FALSE(def.TakeStdin().is_open());
  canal::Subprocess moved = std::move(def);
  CANAL_EXPECT_CODE(moved.Wait(absl::ZeroDuration()), kFailedPrecondition);
  CANAL_EXPECT_CODE(def.Kill(), kFailedPrecondition);
}

TEST(BadInput, DefaultConnection) {
  canal::Connection c;
  EXPECT_EQ(c.id(), 0u);
  EXPECT_FALSE(c.is_open());
  EXPECT_EQ(c.Peer().process_id, 0);
  CANAL_EXPECT_CODE(c.Send("x"), kFailedPrecondition);
  EXPECT_EQ(c.queued_bytes(), 0u);
  c.Close();
  c.Close();
}

// --- Subprocess, Fifo, pipes ----------------------------------------------

TEST(BadInput, SubprocessStartBadArgv) {
  auto empty = canal::Subprocess::Start({});
  CANAL_EXPECT_CODE(empty, kInvalidArgument);
  EXPECT_TRUE(Names(empty.status(), "Start"));
  auto empty_prog = canal::Subprocess::Start({""});
  EXPECT_FALSE(empty_prog.ok());
  auto nul0 = canal::Subprocess::Start({std::string("tr\0ue", 5)});
  CANAL_EXPECT_CODE(nul0, kInvalidArgument);
  auto nul1 = canal::Subprocess::Start({"true", std::string("a\0b", 3)});
  CANAL_EXPECT_CODE(nul1, kInvalidArgument);
  auto missing = canal::Subprocess::Start({"canal-no-such-program-xyz"});
  CANAL_EXPECT_CODE(missing, kNotFound);
  canal::SubprocessOptions bad;
  bad.stdin_mode = canal::StdioMode::kStdout;
  CANAL_EXPECT_CODE(canal::Subprocess::Start({"true"}, bad), kInvalidArgument);
  bad = {};
  bad.stdout_mode = canal::StdioMode::kStdout;
  CANAL_EXPECT_CODE(canal::Subprocess::Start({"true"}, bad), kInvalidArgument);
  bad = {};
  bad.stderr_mode = static_cast<canal::StdioMode>(9);
  CANAL_EXPECT_CODE(canal::Subprocess::Start({"true"}, bad), kInvalidArgument);
  bad = {};
  bad.environment[std::string("A\0B", 3)] = "x";
  CANAL_EXPECT_CODE(canal::Subprocess::Start({"true"}, bad), kInvalidArgument);
  bad = {};
  bad.environment["A=B"] = "x";
  CANAL_EXPECT_CODE(canal::Subprocess::Start({"true"}, bad), kInvalidArgument);
  bad = {};
  bad.working_dir = "/canal/no/such/dir";
  EXPECT_FALSE(canal::Subprocess::Start({"true"}, bad).ok());
  auto run = canal::Run({}, "");
  CANAL_EXPECT_CODE(run, kInvalidArgument);
  auto run_nul = canal::Run({"true", std::string("\0", 1)}, "");
  CANAL_EXPECT_CODE(run_nul, kInvalidArgument);
}

TEST(BadInput, FifoBadArguments) {
#ifdef _WIN32
  CANAL_EXPECT_CODE(canal::Fifo::Create("x"), kUnimplemented);
  CANAL_EXPECT_CODE(canal::Fifo::OpenRead("x"), kUnimplemented);
  CANAL_EXPECT_CODE(canal::Fifo::OpenWrite("x"), kUnimplemented);
  CANAL_EXPECT_CODE(canal::Fifo::Remove("x"), kUnimplemented);
#else
  absl::Status c = canal::Fifo::Create("");
  CANAL_EXPECT_CODE(c, kInvalidArgument);
  EXPECT_TRUE(Names(c, "Fifo::Create"));
  CANAL_EXPECT_CODE(canal::Fifo::Create("/tmp/canal-bi-fifo", 01777),
                    kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Fifo::Create(std::string("/tmp/a\0b", 8)),
                    kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Fifo::OpenRead(""), kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Fifo::OpenWrite("", absl::ZeroDuration()),
                    kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Fifo::Remove(""), kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Fifo::OpenRead("/canal/no/such/fifo"), kNotFound);
  CANAL_EXPECT_CODE(canal::Fifo::Remove("/canal/no/such/fifo"), kNotFound);
  // Not a FIFO.
  CANAL_EXPECT_CODE(canal::Fifo::OpenRead("/"), kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Fifo::OpenWrite("/", absl::ZeroDuration()),
                    kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Fifo::Remove("/"), kFailedPrecondition);
  // A FIFO with no reader: zero timeout polls once.
  const std::string path = "/tmp/" + UniqueName("bi-fifo");
  CANAL_ASSERT_OK(canal::Fifo::Create(path));
  absl::StatusOr<canal::Channel> w;
  CANAL_NO_HANG(w = canal::Fifo::OpenWrite(path, absl::ZeroDuration()));
  CANAL_EXPECT_CODE(w, kDeadlineExceeded);
  CANAL_NO_HANG(w = canal::Fifo::OpenWrite(path, -absl::Seconds(1)));
  CANAL_EXPECT_CODE(w, kDeadlineExceeded);
  CANAL_EXPECT_OK(canal::Fifo::Remove(path));
#endif
}

TEST(BadInput, PipesBadArguments) {
  canal::PipeOptions huge;
  huge.buffer_size = ~size_t{0};
  auto p = canal::CreatePipe(huge);  // A hint: best effort, never a failure.
  CANAL_EXPECT_OK(p);
#ifdef _WIN32
  auto a = canal::AdoptPipeEnd(nullptr, canal::PipeEnd::kRead);
#else
  auto a = canal::AdoptPipeEnd(-1, canal::PipeEnd::kRead);
#endif
  CANAL_EXPECT_CODE(a, kInvalidArgument);
}

TEST(BadInput, AdoptPipeEndUnknownEndLeavesTheHandleAlone) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  absl::StatusOr<canal::Channel> adopted = canal::AdoptPipeEnd(
      pipe->read_end.native_handle(), static_cast<canal::PipeEnd>(7));
  CANAL_EXPECT_CODE(adopted, kInvalidArgument);
  EXPECT_TRUE(Names(adopted.status(), "AdoptPipeEnd"));
  adopted = absl::UnknownError("dropped");  // Closes nothing.
  // The handle still belongs to the read end alone.
  CANAL_ASSERT_OK(pipe->write_end.Write("x"));
  char byte = 0;
  absl::StatusOr<canal::ReadResult> r =
      pipe->read_end.Read(absl::MakeSpan(&byte, 1), canal_test::kHangGuard);
  CANAL_ASSERT_OK(r);
  EXPECT_EQ(r->size, 1u);
  EXPECT_EQ(byte, 'x');
}

// --- Zero and negative timeouts, empty buffers -----------------------------

TEST(BadInput, ZeroAndNegativeTimeoutsPoll) {
  for (absl::Duration d :
       {absl::ZeroDuration(), -absl::Seconds(5), -absl::InfiniteDuration()}) {
    SCOPED_TRACE(absl::FormatDuration(d));
    auto pair = canal_test::MakePair(UniqueName("bi-zero"),
                                     canal_test::MessageOptions());
    CANAL_ASSERT_OK(pair);
    char buf[8];
    absl::StatusOr<canal::ReadResult> r;
    CANAL_NO_HANG(r = pair->client.Read(absl::MakeSpan(buf), d));
    CANAL_EXPECT_CODE(r, kDeadlineExceeded);
    absl::StatusOr<std::string> m;
    CANAL_NO_HANG(m = pair->server.ReadMessage(d));
    CANAL_EXPECT_CODE(m, kDeadlineExceeded);
    absl::StatusOr<canal::Channel> a;
    CANAL_NO_HANG(a = pair->listener.Accept(d));
    CANAL_EXPECT_CODE(a, kDeadlineExceeded);
    // Data that is already there is returned by a poll.
    CANAL_ASSERT_OK(pair->client.WriteMessage("ready", absl::Seconds(5)));
    absl::Time until = absl::Now() + absl::Seconds(5);
    do {
      m = pair->server.ReadMessage(d);
    } while (m.status().code() == absl::StatusCode::kDeadlineExceeded &&
             absl::Now() < until);
    CANAL_ASSERT_OK(m);
    EXPECT_EQ(*m, "ready");
    // A zero-timeout write of a small message into an empty pipe succeeds.
    CANAL_EXPECT_OK(pair->server.WriteMessage("back", d));
    auto back = pair->client.ReadMessage(absl::Seconds(5));
    CANAL_ASSERT_OK(back);
    EXPECT_EQ(*back, "back");
    // Nothing is ever consumed by a timed-out read: the channel still works.
    CANAL_EXPECT_CODE(pair->client.ReadMessage(d), kDeadlineExceeded);
    auto t = pair->client.Transact("req", d);
    EXPECT_FALSE(t.ok());
    // Connect and WaitForListener with the listener free.
    canal::ConnectOptions o;
    o.timeout = d;
    CANAL_EXPECT_OK(
        canal::WaitForListener(std::string(pair->listener.name()), d));
    auto extra = canal::Channel::Connect(pair->listener.name(), o);
    CANAL_EXPECT_OK(extra);
    // A client that is already waiting is accepted by a polling Accept.
    until = absl::Now() + absl::Seconds(5);
    do {
      a = pair->listener.Accept(d);
    } while (a.status().code() == absl::StatusCode::kDeadlineExceeded &&
             absl::Now() < until);
    CANAL_EXPECT_OK(a);
  }
}

TEST(BadInput, SubprocessWaitZeroTimeout) {
  // tests/helper/canal_test_child, which sleeps until killed with "hang".
  const char* child_path = std::getenv("CANAL_TEST_CHILD");
  if (child_path == nullptr || *child_path == '\0') {
    GTEST_SKIP() << "CANAL_TEST_CHILD is not set";
  }
  std::vector<std::string> argv = {child_path, "hang"};
  canal::SubprocessOptions o;
  o.kill_on_destroy = true;
  auto child = canal::Subprocess::Start(argv, o);
  CANAL_ASSERT_OK(child);
  absl::StatusOr<canal::ExitStatus> w;
  CANAL_NO_HANG(w = child->Wait(absl::ZeroDuration()));
  CANAL_EXPECT_CODE(w, kDeadlineExceeded);
  CANAL_NO_HANG(w = child->Wait(-absl::Seconds(1)));
  CANAL_EXPECT_CODE(w, kDeadlineExceeded);
  CANAL_EXPECT_OK(child->Kill());
  CANAL_EXPECT_OK(child->Wait(absl::Seconds(10)));
  CANAL_EXPECT_OK(child->Kill());  // Already ended: OK.
}

TEST(BadInput, EmptyBuffersAndEmptyData) {
  {
    auto pair = canal_test::MakePair(UniqueName("bi-empty-byte"));
    CANAL_ASSERT_OK(pair);
    // Writing nothing succeeds and sends nothing.
    CANAL_EXPECT_OK(pair->client.Write("", absl::Seconds(1)));
    char buf[1];
    absl::StatusOr<canal::ReadResult> r;
    CANAL_NO_HANG(r = pair->server.Read(absl::Span<char>(buf, 0),
                                        absl::Milliseconds(50)));
    EXPECT_TRUE(r.ok()
                    ? r->size == 0
                    : r.status().code() == absl::StatusCode::kDeadlineExceeded)
        << r.status();
    // Peek with a larger buffer than the data.
    CANAL_ASSERT_OK(pair->client.Write("abc", absl::Seconds(1)));
    char big[64];
    absl::StatusOr<canal::PeekResult> p;
    absl::Time until = absl::Now() + absl::Seconds(5);
    do {
      p = pair->server.Peek(absl::MakeSpan(big));
    } while (p.ok() && p->available < 3 && absl::Now() < until);
    CANAL_ASSERT_OK(p);
    EXPECT_EQ(p->size, 3u);
    EXPECT_EQ(p->available, 3u);
    EXPECT_EQ(std::string(big, 3), "abc");
    // Peek with no buffer at all.
    p = pair->server.Peek();
    CANAL_ASSERT_OK(p);
    EXPECT_EQ(p->size, 0u);
    EXPECT_EQ(p->available, 3u);
    auto all = canal_test::ReadExactly(pair->server, 3);
    CANAL_ASSERT_OK(all);
    EXPECT_EQ(*all, "abc");
  }
  {
    auto pair = canal_test::MakePair(UniqueName("bi-empty-msg"),
                                     canal_test::MessageOptions());
    CANAL_ASSERT_OK(pair);
    // An empty message is a message.
    CANAL_EXPECT_OK(pair->client.Write("", absl::Seconds(1)));
    CANAL_EXPECT_OK(pair->client.WriteMessage("xyz", absl::Seconds(1)));
    char buf[1];
    auto r = pair->server.Read(absl::Span<char>(buf, 0), absl::Seconds(5));
    CANAL_ASSERT_OK(r);
    EXPECT_EQ(r->size, 0u);
    EXPECT_FALSE(r->more);
    // An empty buffer on a non-empty message: nothing stored, `more` set.
    r = pair->server.Read(absl::Span<char>(buf, 0), absl::Seconds(5));
    CANAL_ASSERT_OK(r);
    EXPECT_EQ(r->size, 0u);
    EXPECT_TRUE(r->more);
    char big[64];
    auto p = pair->server.Peek(absl::MakeSpan(big));
    CANAL_ASSERT_OK(p);
    EXPECT_EQ(p->size, 3u);
    EXPECT_EQ(p->message_remaining, 3u);
    auto rest = pair->server.ReadMessage(absl::Seconds(5));
    CANAL_ASSERT_OK(rest);
    EXPECT_EQ(*rest, "xyz");
    // Over the message limit: refused before anything is sent.
    canal::ListenerOptions small = canal_test::MessageOptions();
    small.max_message_size = 4;
    auto pair2 = canal_test::MakePair(UniqueName("bi-limit"), small);
    CANAL_ASSERT_OK(pair2);
    absl::Status big_write = pair2->client.WriteMessage("12345");
    CANAL_EXPECT_CODE(big_write, kInvalidArgument);
    EXPECT_TRUE(Names(big_write, "WriteMessage"));
    CANAL_EXPECT_CODE(pair2->client.Transact("12345"), kInvalidArgument);
  }
}

TEST(BadInput, WrongModeAndDirection) {
  auto pair = canal_test::MakePair(UniqueName("bi-mode"));
  CANAL_ASSERT_OK(pair);
  CANAL_EXPECT_CODE(pair->client.ReadMessage(absl::ZeroDuration()),
                    kFailedPrecondition);
  CANAL_EXPECT_CODE(pair->client.WriteMessage("x"), kFailedPrecondition);
  CANAL_EXPECT_CODE(pair->client.Transact("x"), kFailedPrecondition);
  canal::ListenerOptions in = canal_test::MessageOptions();
  in.access = canal::PipeAccess::kInbound;
  auto one_way = canal_test::MakePair(UniqueName("bi-inbound"), in);
  CANAL_ASSERT_OK(one_way);
  CANAL_EXPECT_CODE(one_way->server.WriteMessage("x"), kFailedPrecondition);
  char buf[4];
  CANAL_EXPECT_CODE(one_way->client.Read(absl::MakeSpan(buf)),
                    kFailedPrecondition);
  CANAL_EXPECT_CODE(one_way->client.Transact("x"), kFailedPrecondition);
}

}  // namespace
