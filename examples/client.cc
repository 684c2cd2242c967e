// SPDX-License-Identifier: Apache-2.0
// Named pipe client (Microsoft's "Named Pipe Client"): waits for a busy
// listener, connects, sends a message and reads the reply in pieces with a
// small buffer, continuing while `more` is set (ERROR_MORE_DATA on Windows).
//
//   client NAME [MESSAGE]   talk to a message-mode listener, e.g.
//                           `canal serve NAME --message --echo`
//   client --self-test      start an echo listener in-process and talk to it

#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "canal/canal.h"

namespace {

// Connects to `name`, sends `message` and returns the reply.
absl::StatusOr<std::string> Talk(const std::string& name,
                                 const std::string& message) {
  // Like WaitNamedPipe: wait up to 20 s while every instance is busy.
  if (absl::Status s = canal::WaitForListener(name, absl::Seconds(20));
      !s.ok()) {
    return s;
  }
  canal::ConnectOptions options;
  options.timeout = absl::Seconds(20);
  absl::StatusOr<canal::Channel> channel =
      canal::Channel::Connect(name, options);
  if (!channel.ok()) return channel.status();
  if (channel->mode() != canal::PipeMode::kMessage) {
    return absl::FailedPreconditionError("the listener is not in message mode");
  }
  if (absl::Status s = channel->WriteMessage(message); !s.ok()) return s;

  // Read the reply 8 bytes at a time: `more` says the message goes on.
  std::string reply;
  char buffer[8];
  while (true) {
    absl::StatusOr<canal::ReadResult> r =
        channel->Read(absl::MakeSpan(buffer), absl::Seconds(20));
    if (!r.ok()) return r.status();
    reply.append(buffer, r->size);
    if (!r->more) break;
  }
  return reply;
}

int SelfTest() {
  const std::string name = absl::StrCat(
      "canal-example-client-", absl::ToUnixNanos(absl::Now()) % 1000000000);
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  if (!listener.ok()) {
    std::fprintf(stderr, "%s\n", listener.status().ToString().c_str());
    return 1;
  }
  std::thread echo([&listener] {
    absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(20));
    if (!ch.ok()) return;
    absl::StatusOr<std::string> msg = ch->ReadMessage();
    if (msg.ok()) (void)ch->WriteMessage(*msg);
  });
  const std::string message = "a message longer than the 8-byte buffer";
  absl::StatusOr<std::string> reply = Talk(name, message);
  echo.join();
  const bool passed = reply.ok() && *reply == message;
  std::printf("client self-test: %s\n", passed ? "ok" : "FAILED");
  return passed ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--self-test") return SelfTest();
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: client NAME [MESSAGE] | --self-test\n");
    return 2;
  }
  absl::StatusOr<std::string> reply =
      Talk(argv[1], argc == 3 ? argv[2] : "Default message from client.");
  if (!reply.ok()) {
    std::fprintf(stderr, "%s\n", reply.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", reply->c_str());
  return 0;
}
