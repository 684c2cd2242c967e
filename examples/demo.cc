// The canal demo: a byte-mode echo listener and a message-mode request/reply
// listener, each serving several clients at once with a thread per client
// (Microsoft's "multithreaded pipe server"), printing what happens.

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "canal/canal.h"

namespace {

absl::Mutex print_mu;

void Say(const std::string& line) {
  absl::MutexLock lock(&print_mu);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

int Fail(const absl::Status& status) {
  Say(absl::StrCat("demo failed: ", status.ToString()));
  return 1;
}

std::string UniqueName(absl::string_view what) {
  return absl::StrCat("canal-demo-", what, "-",
                      absl::ToUnixNanos(absl::Now()) % 1000000000);
}

// Byte mode: every client streams text in pieces; the server echoes it back
// upper-cased as it arrives.
int ByteModeDemo(int clients) {
  const std::string name = UniqueName("bytes");
  absl::StatusOr<canal::Listener> listener = canal::Listener::Create(name);
  if (!listener.ok()) return Fail(listener.status());
  Say(absl::StrCat("[bytes] listening on \"", name, "\" (byte mode)"));

  std::vector<std::thread> servers;
  std::thread acceptor([&] {
    for (int i = 0; i < clients; ++i) {
      absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(10));
      if (!ch.ok()) {
        Say(absl::StrCat("[bytes] accept: ", ch.status().ToString()));
        return;
      }
      servers.emplace_back([c = std::move(*ch)]() mutable {
        char buf[256];
        size_t total = 0;
        while (true) {
          absl::StatusOr<canal::ReadResult> r = c.Read(absl::MakeSpan(buf));
          if (!r.ok()) {
            Say(absl::StrCat("[bytes] server: client finished after ", total,
                             " bytes (", absl::StatusCodeToString(r.status().code()),
                             ")"));
            return;
          }
          total += r->size;
          std::string up = absl::AsciiStrToUpper(absl::string_view(buf, r->size));
          if (!c.Write(up).ok()) return;
        }
      });
    }
  });

  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
      if (!ch.ok()) {
        Say(absl::StrCat("[bytes] client ", i, ": ", ch.status().ToString()));
        return;
      }
      const std::string text = absl::StrCat("hello from byte client ", i);
      for (size_t pos = 0; pos < text.size(); pos += 5) {
        (void)ch->Write(absl::string_view(text).substr(pos, 5));
      }
      std::string echoed;
      char buf[64];
      while (echoed.size() < text.size()) {
        absl::StatusOr<canal::ReadResult> r =
            ch->Read(absl::MakeSpan(buf), absl::Seconds(5));
        if (!r.ok()) break;
        echoed.append(buf, r->size);
      }
      Say(absl::StrCat("[bytes] client ", i, " sent \"", text, "\" in pieces, got back \"",
                       echoed, "\""));
    });
  }
  for (std::thread& t : threads) t.join();
  acceptor.join();
  for (std::thread& t : servers) t.join();
  return 0;
}

// Message mode: a request/reply server with at most two instances; clients
// use Transact, Call and partial reads.
int MessageModeDemo(int clients) {
  const std::string name = UniqueName("messages");
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  options.max_instances = 2;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  if (!listener.ok()) return Fail(listener.status());
  Say(absl::StrCat("[messages] listening on \"", name,
                   "\" (message mode, 2 instances)"));

  std::thread server([&] {
    std::vector<std::thread> workers;
    // One Call per client plus the Transact client and the partial-read one.
    for (int i = 0; i < clients + 2; ++i) {
      absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(10));
      if (!ch.ok()) break;
      workers.emplace_back([c = std::move(*ch)]() mutable {
        while (true) {
          absl::StatusOr<std::string> req = c.ReadMessage();
          if (!req.ok()) return;
          absl::StatusOr<canal::PeerInfo> peer = c.Peer();
          std::string reply = absl::StrCat("reply to \"", *req, "\" (", req->size(),
                                           " bytes) from pid ",
                                           peer.ok() ? peer->process_id : 0);
          if (!c.WriteMessage(reply).ok()) return;
        }
      });
    }
    for (std::thread& t : workers) t.join();
  });

  {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
    if (!ch.ok()) return Fail(ch.status());
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<std::string> reply =
          ch->Transact(absl::StrCat("transaction ", i), absl::Seconds(5));
      Say(absl::StrCat("[messages] Transact -> ",
                       reply.ok() ? *reply : reply.status().ToString()));
    }
    // A reply bigger than the buffer arrives in pieces with more == true.
    (void)ch->WriteMessage("a request whose reply is longer than 16 bytes");
    char buf[16];
    std::string assembled;
    int pieces = 0;
    while (true) {
      absl::StatusOr<canal::ReadResult> r =
          ch->Read(absl::MakeSpan(buf), absl::Seconds(5));
      if (!r.ok()) return Fail(r.status());
      assembled.append(buf, r->size);
      ++pieces;
      if (!r->more) break;
    }
    Say(absl::StrCat("[messages] partial reads: ", pieces,
                     " pieces of at most 16 bytes made one message of ",
                     assembled.size(), " bytes"));
  }

  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<std::string> reply =
          canal::Call(name, absl::StrCat("call from client ", i), absl::Seconds(10));
      Say(absl::StrCat("[messages] Call from client ", i, " -> ",
                       reply.ok() ? *reply : reply.status().ToString()));
    });
  }
  for (std::thread& t : threads) t.join();

  // The one extra Accept in the server loop is for this last Call; after it
  // the listener is done.
  absl::StatusOr<std::string> last = canal::Call(name, "last call", absl::Seconds(10));
  Say(absl::StrCat("[messages] last Call -> ",
                   last.ok() ? *last : last.status().ToString()));
  server.join();
  listener->Close();
  absl::Status gone = canal::WaitForListener(name, absl::Milliseconds(100));
  Say(absl::StrCat("[messages] after Close, WaitForListener -> ",
                   absl::StatusCodeToString(gone.code())));
  return 0;
}

}  // namespace

int main() {
  Say("canal demo: one Channel/Listener API over Unix sockets or Win32 named pipes");
  if (int rc = ByteModeDemo(3); rc != 0) return rc;
  if (int rc = MessageModeDemo(4); rc != 0) return rc;
  Say("canal demo: done");
  return 0;
}
