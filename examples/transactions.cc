// SPDX-License-Identifier: Apache-2.0
// Transactions on named pipes (Microsoft's "Transactions on Named Pipes"):
// `Channel::Transact` writes one request and reads one reply on an open
// channel (TransactNamedPipe); `canal::Call` connects, transacts and closes
// in one call (CallNamedPipe).
//
//   transactions NAME       run transactions against a message-mode
//                           listener, e.g. `canal serve NAME --message --echo`
//   transactions --self-test  start an echo listener in-process too

#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "canal/canal.h"

namespace {

absl::Status RunTransactions(const std::string& name) {
  // Several transactions over one connection.
  absl::StatusOr<canal::Channel> channel = canal::Channel::Connect(name);
  if (!channel.ok()) return channel.status();
  for (int i = 1; i <= 3; ++i) {
    const std::string request = absl::StrCat("transaction ", i);
    absl::StatusOr<std::string> reply =
        channel->Transact(request, absl::Seconds(10));
    if (!reply.ok()) return reply.status();
    std::printf("Transact(\"%s\") -> \"%s\"\n", request.c_str(),
                reply->c_str());
  }
  channel->Close();

  // One transaction per connection.
  absl::StatusOr<std::string> reply =
      canal::Call(name, "one call", absl::Seconds(10));
  if (!reply.ok()) return reply.status();
  std::printf("Call(\"one call\") -> \"%s\"\n", reply->c_str());
  return absl::OkStatus();
}

int SelfTest() {
  const std::string name = absl::StrCat(
      "canal-example-tx-", absl::ToUnixNanos(absl::Now()) % 1000000000);
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  if (!listener.ok()) {
    std::fprintf(stderr, "%s\n", listener.status().ToString().c_str());
    return 1;
  }
  // An echo server for the two connections RunTransactions makes.
  std::thread server([&listener] {
    for (int i = 0; i < 2; ++i) {
      absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(20));
      if (!ch.ok()) return;
      while (true) {
        absl::StatusOr<std::string> msg = ch->ReadMessage();
        if (!msg.ok() || !ch->WriteMessage(*msg).ok()) break;
      }
    }
  });
  absl::Status status = RunTransactions(name);
  server.join();
  std::printf("transactions self-test: %s\n", status.ok() ? "ok" : "FAILED");
  if (!status.ok()) std::fprintf(stderr, "%s\n", status.ToString().c_str());
  return status.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--self-test") return SelfTest();
  if (argc != 2) {
    std::fprintf(stderr, "usage: transactions NAME | --self-test\n");
    return 2;
  }
  absl::Status status = RunTransactions(argv[1]);
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
