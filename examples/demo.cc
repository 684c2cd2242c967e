// SPDX-License-Identifier: Apache-2.0
// The canal demo: IPC between two real processes. It starts itself again as
// a message-mode server in a second process, then talks to it: the peer's
// process id, a reply read in pieces, a transaction, a second client waiting
// for the only instance, Call, and the end of the stream.
//
//   canal_demo                 run the demo
//   canal_demo --server NAME   (the second process) serve NAME

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "canal/canal.h"

#ifdef _WIN32
#include <windows.h>
#else
#include <unistd.h>
#endif

namespace {

// Generous bounds for each step: the demo never waits forever.
constexpr absl::Duration kStepTimeout = absl::Seconds(10);
// How long the first client keeps the only instance busy.
constexpr absl::Duration kBusyTime = absl::Milliseconds(500);

int64_t OwnPid() {
#ifdef _WIN32
  return static_cast<int64_t>(GetCurrentProcessId());
#else
  return static_cast<int64_t>(getpid());
#endif
}

// This program's own path, to start it again as the server.
std::string SelfPath(const char* argv0) {
#ifdef _WIN32
  wchar_t path[MAX_PATH];
  DWORD n = GetModuleFileNameW(nullptr, path, MAX_PATH);
  if (n == 0 || n >= MAX_PATH) return argv0;
  int size = WideCharToMultiByte(CP_UTF8, 0, path, static_cast<int>(n), nullptr,
                                 0, nullptr, nullptr);
  std::string utf8(static_cast<size_t>(size), '\0');
  WideCharToMultiByte(CP_UTF8, 0, path, static_cast<int>(n), &utf8[0], size,
                      nullptr, nullptr);
  return utf8;
#else
  return argv0;
#endif
}

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

int Fail(absl::string_view what, const absl::Status& status) {
  std::fprintf(stderr, "canal_demo: %.*s: %s\n", static_cast<int>(what.size()),
               what.data(), status.ToString().c_str());
  return 1;
}

// --- The server process -----------------------------------------------------

// Answers one client until it hangs up. Returns true when a client said
// "bye", which ends the server.
bool Serve(canal::Channel& ch) {
  while (true) {
    absl::StatusOr<std::string> request = ch.ReadMessage(kStepTimeout);
    if (!request.ok()) return false;  // the client closed (or went quiet)
    std::string reply;
    if (*request == "describe") {
      reply = absl::StrCat("server process ", OwnPid(),
                           ": a message-mode listener with one instance; "
                           "this reply is longer than your buffer");
    } else if (*request == "bye") {
      (void)ch.WriteMessage("bye", kStepTimeout);
      ch.Close();
      return true;
    } else {
      reply =
          absl::StrCat("server process ", OwnPid(), " got \"", *request, "\"");
    }
    if (!ch.WriteMessage(reply, kStepTimeout).ok()) return false;
  }
}

int RunServer(const std::string& name) {
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  options.max_instances = 1;  // a second client waits for the first
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  if (!listener.ok())
    return Fail("server: Listener::Create", listener.status());
  // Tell the parent (through our stdout pipe) that the name exists now.
  std::printf("ready\n");
  std::fflush(stdout);
  while (true) {
    absl::StatusOr<canal::Channel> ch = listener->Accept(kStepTimeout);
    if (!ch.ok()) return Fail("server: Accept", ch.status());
    if (Serve(*ch)) return 0;
  }
}

// --- The client (the demo itself) -------------------------------------------

// Reads the server's "ready" line from its stdout.
absl::Status AwaitReady(canal::Subprocess& server) {
  std::string line;
  char buf[64];
  while (line.find('\n') == std::string::npos) {
    absl::StatusOr<canal::ReadResult> r =
        server.stdout_channel().Read(absl::MakeSpan(buf), kStepTimeout);
    if (!r.ok()) return r.status();
    line.append(buf, r->size);
  }
  return absl::OkStatus();
}

int RunDemo(const std::string& self) {
  const std::string name = absl::StrCat("canal-demo-", OwnPid());
  Say("canal demo: one Channel/Listener API over Unix domain sockets or "
      "Win32 named pipes");

  // 1. A server in a second process: this program again, with --server.
  canal::SubprocessOptions options;
  options.stdout_mode = canal::StdioMode::kPipe;  // for its "ready" line
  options.kill_on_destroy = true;  // never leave it behind on failure
  absl::StatusOr<canal::Subprocess> server =
      canal::Subprocess::Start({self, "--server", name}, options);
  if (!server.ok()) return Fail("Subprocess::Start", server.status());
  if (absl::Status s = AwaitReady(*server); !s.ok()) {
    return Fail("waiting for the server", s);
  }
  Say(absl::StrCat("\n1. Started the server as process ", server->pid(),
                   ", listening on \"", name,
                   "\" (message mode, one instance)."));

  // 2. Connect, and ask who is at the other end.
  absl::StatusOr<canal::Channel> first = canal::Channel::Connect(name);
  if (!first.ok()) return Fail("Connect", first.status());
  absl::StatusOr<canal::PeerInfo> peer = first->Peer();
  if (!peer.ok()) return Fail("Peer", peer.status());
  Say(absl::StrCat("\n2. Connected. The peer is process ", peer->process_id,
                   "; this process is ", OwnPid(), "."));

  // 3. A reply longer than the buffer arrives in pieces: `more` says that
  //    the rest of the same message is still to come.
  if (absl::Status s = first->WriteMessage("describe", kStepTimeout); !s.ok()) {
    return Fail("WriteMessage", s);
  }
  Say("\n3. Sent \"describe\"; reading the reply with a 16-byte buffer:");
  char buf[16];
  std::string reply;
  while (true) {
    absl::StatusOr<canal::ReadResult> r =
        first->Read(absl::MakeSpan(buf), kStepTimeout);
    if (!r.ok()) return Fail("Read", r.status());
    Say(absl::StrCat("   \"", absl::string_view(buf, r->size), "\"",
                     r->more ? "  (more to come)" : "  (end of message)"));
    reply.append(buf, r->size);
    if (!r->more) break;
  }
  Say(absl::StrCat("   One message of ", reply.size(), " bytes."));

  // 4. A transaction: one request, one reply, in one call.
  absl::StatusOr<std::string> answer =
      first->Transact("a transaction", kStepTimeout);
  if (!answer.ok()) return Fail("Transact", answer.status());
  Say(absl::StrCat("\n4. Transact(\"a transaction\") -> \"", *answer, "\""));

  // 5. The listener has one instance and this client holds it: a second
  //    client waits in WaitForListener until the first one closes.
  Say("\n5. A second client waits for the only instance...");
  absl::Status second_status;
  std::string second_reply;
  absl::Duration waited;
  std::thread second([&] {
    const absl::Time start = absl::Now();
    second_status = canal::WaitForListener(name, kStepTimeout);
    waited = absl::Now() - start;
    if (second_status.ok()) {
      absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
      absl::StatusOr<std::string> r =
          ch.ok() ? ch->Transact("second client", kStepTimeout)
                  : absl::StatusOr<std::string>(ch.status());
      if (r.ok()) {
        second_reply = *r;
      } else {
        second_status = r.status();
      }
    }
  });
  absl::SleepFor(kBusyTime);
  Say(absl::StrCat("   (the first client closes after ",
                   absl::FormatDuration(kBusyTime), ")"));
  first->Close();
  second.join();
  if (!second_status.ok()) return Fail("second client", second_status);
  Say(absl::StrCat(
      "   The second client waited ",
      absl::FormatDuration(absl::Trunc(waited, absl::Milliseconds(1))),
      ", connected, and got \"", second_reply, "\""));

  // 6. Call: connect, transact and close in one call (CallNamedPipe).
  absl::StatusOr<std::string> called =
      canal::Call(name, "hello from Call", kStepTimeout);
  if (!called.ok()) return Fail("Call", called.status());
  Say(absl::StrCat("\n6. Call(\"hello from Call\") -> \"", *called, "\""));

  // 7. Say goodbye; the server replies, closes its end and exits. A read
  //    after the last message reports the end of the stream.
  absl::StatusOr<canal::Channel> last = canal::Channel::Connect(name);
  if (!last.ok()) return Fail("Connect", last.status());
  absl::StatusOr<std::string> bye = last->Transact("bye", kStepTimeout);
  if (!bye.ok()) return Fail("Transact", bye.status());
  absl::StatusOr<canal::ReadResult> after =
      last->Read(absl::MakeSpan(buf), kStepTimeout);
  if (after.ok() || !absl::IsOutOfRange(after.status())) {
    return Fail(
        "reading after the last message",
        after.ok() ? absl::InternalError("got more data") : after.status());
  }
  Say(absl::StrCat("\n7. Sent \"bye\", got \"", *bye,
                   "\"; the next read found the end of the stream: the "
                   "server has closed its end."));
  absl::StatusOr<canal::ExitStatus> exit = server->Wait(kStepTimeout);
  if (!exit.ok()) return Fail("Wait", exit.status());
  if (!exit->success()) {
    return Fail("server", absl::InternalError(absl::StrCat("exited with code ",
                                                           exit->exit_code)));
  }
  Say(absl::StrCat("   The server process ", server->pid(), " exited with 0."));

  Say("\nNext, try the canal tool in two terminals:\n"
      "  canal serve demo --message --echo\n"
      "  canal call demo hello");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--server") {
    return RunServer(argv[2]);
  }
  if (argc != 1) {
    std::fprintf(stderr, "usage: canal_demo\n");
    return 2;
  }
  return RunDemo(SelfPath(argv[0]));
}
