// SPDX-License-Identifier: Apache-2.0
// Multithreaded pipe server (Microsoft's "Multithreaded Pipe Server"): a
// message-mode listener that hands every client to a thread of its own. Each
// request gets the reply "answer to <request>".
//
//   multithreaded_server NAME        serve until Ctrl-C
//   multithreaded_server --self-test serve three clients in-process, exit
//
// Try it with the canal tool:  canal call NAME hello

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "canal/canal.h"

namespace {

// Serves one client until it closes: one reply per request message.
void ServeClient(canal::Channel channel) {
  while (true) {
    absl::StatusOr<std::string> request = channel.ReadMessage();
    if (!request.ok()) return;  // OutOfRange: the client is done.
    if (!channel.WriteMessage(absl::StrCat("answer to ", *request)).ok()) {
      return;
    }
  }
}

// Accepts clients until the listener is closed.
void AcceptLoop(canal::Listener& listener) {
  std::vector<std::thread> threads;
  while (true) {
    absl::StatusOr<canal::Channel> channel = listener.Accept();
    if (!channel.ok()) break;  // Cancelled: the listener was closed.
    threads.emplace_back(ServeClient, std::move(*channel));
  }
  for (std::thread& t : threads) t.join();
}

absl::StatusOr<canal::Listener> Listen(const std::string& name) {
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  return canal::Listener::Create(name, options);
}

int SelfTest() {
  const std::string name = absl::StrCat(
      "canal-example-mts-", absl::ToUnixNanos(absl::Now()) % 1000000000);
  absl::StatusOr<canal::Listener> listener = Listen(name);
  if (!listener.ok()) {
    std::fprintf(stderr, "%s\n", listener.status().ToString().c_str());
    return 1;
  }
  std::thread server([&listener] { AcceptLoop(*listener); });
  // Three clients at once, each with two requests on one connection.
  std::vector<std::thread> clients;
  std::vector<int> ok(3, 0);
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back([&name, &ok, i] {
      absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
      if (!ch.ok()) return;
      for (int j = 0; j < 2; ++j) {
        const std::string request = absl::StrCat("client ", i, " #", j);
        absl::StatusOr<std::string> reply =
            ch->Transact(request, absl::Seconds(10));
        if (reply.ok() && *reply == "answer to " + request) ++ok[i];
      }
    });
  }
  for (std::thread& t : clients) t.join();
  listener->Close();
  server.join();
  const bool passed = ok == std::vector<int>{2, 2, 2};
  std::printf("multithreaded_server self-test: %s\n", passed ? "ok" : "FAILED");
  return passed ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--self-test") return SelfTest();
  if (argc != 2) {
    std::fprintf(stderr, "usage: multithreaded_server NAME | --self-test\n");
    return 2;
  }
  absl::StatusOr<canal::Listener> listener = Listen(argv[1]);
  if (!listener.ok()) {
    std::fprintf(stderr, "%s\n", listener.status().ToString().c_str());
    return 1;
  }
  std::printf("serving \"%s\"; stop with Ctrl-C\n", argv[1]);
  std::fflush(stdout);
  AcceptLoop(*listener);
  return 0;
}
