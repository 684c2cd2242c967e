// SPDX-License-Identifier: Apache-2.0
// A hostile peer over a real socket against canal::Server. The first input
// byte picks the server (message or byte mode) and how the rest is cut into
// pieces; the pieces are written from a raw Unix socket client, which then
// closes. The server must survive and keep serving: a well-behaved client
// then completes a round trip (Transact in message mode, an echo in byte
// mode), and connections do not pile up.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "fuzz/fuzz_util.h"

namespace {

constexpr size_t kMaxMessage = 512;

canal::Server& TheServer(bool message) {
  static canal::Server* servers[2] = {nullptr, nullptr};
  canal::Server*& s = servers[message ? 1 : 0];
  if (s == nullptr) {
    canal_fuzz::RuntimeDir();
    canal::ServerOptions options;
    options.listener.mode =
        message ? canal::PipeMode::kMessage : canal::PipeMode::kByte;
    options.listener.max_message_size = kMaxMessage;
    options.threads = 2;
    options.read_chunk_size = 64;
    canal::ServerHandlers handlers;
    if (message) {
      handlers.on_request =
          [](canal::Connection&,
             absl::string_view req) -> absl::StatusOr<std::string> {
        if (req == "close-me") return absl::CancelledError("asked to");
        return absl::StrCat("echo:", req);
      };
    } else {
      handlers.on_data = [](canal::Connection& c, absl::string_view d) {
        (void)c.Send(d);
      };
    }
    auto started =
        canal::Server::Start(message ? "fuzz-hostile-msg" : "fuzz-hostile-byte",
                             options, std::move(handlers));
    if (!started.ok()) canal_fuzz::Fail("Server::Start", started.status());
    s = started->release();
  }
  return *s;
}

void WellBehaved(bool message) {
  const std::string name = message ? "fuzz-hostile-msg" : "fuzz-hostile-byte";
  canal::ConnectOptions copts;
  copts.timeout = absl::Seconds(5);
  auto ch = canal::Channel::Connect(name, copts);
  if (!ch.ok()) canal_fuzz::Fail("well-behaved Connect", ch.status());
  if (message) {
    auto reply = ch->Transact("ping", absl::Seconds(5));
    if (!reply.ok()) canal_fuzz::Fail("well-behaved Transact", reply.status());
    if (*reply != "echo:ping") canal_fuzz::Fail("wrong reply");
    return;
  }
  absl::Status w = ch->Write("ping", absl::Seconds(5));
  if (!w.ok()) canal_fuzz::Fail("well-behaved Write", w);
  std::string got;
  char buf[16];
  while (got.size() < 4) {
    auto r = ch->Read(absl::MakeSpan(buf), absl::Seconds(5));
    if (!r.ok()) canal_fuzz::Fail("well-behaved Read", r.status());
    got.append(buf, r->size);
  }
  if (got != "ping") canal_fuzz::Fail("wrong echo");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool message = (data[0] & 1) != 0;
  const size_t piece = 1 + (data[0] >> 1);  // 1..128 bytes per write
  ++data;
  --size;
  canal::Server& server = TheServer(message);
  const std::string path =
      canal_fuzz::RuntimeDir() +
      (message ? "/fuzz-hostile-msg" : "/fuzz-hostile-byte");
  const int fd = canal_fuzz::RawConnect(path);
  if (fd < 0) canal_fuzz::Fail("raw connect");
  // The server may close on us (DataLoss) or echo; either is fine, so a
  // failed write just ends the attack.
  for (size_t off = 0; off < size; off += piece) {
    const size_t n = size - off < piece ? size - off : piece;
    if (!canal_fuzz::WriteAll(
            fd,
            absl::string_view(reinterpret_cast<const char*>(data) + off, n))) {
      break;
    }
  }
  close(fd);
  WellBehaved(message);
  // The hostile connection goes away: no connection piles up.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (server.connection_count() > 0) {
    if (absl::Now() > deadline) {
      canal_fuzz::Fail(
          absl::StrCat("connections left open: ", server.connection_count()));
    }
    absl::SleepFor(absl::Microseconds(200));
  }
  return 0;
}
