// SPDX-License-Identifier: Apache-2.0
// An event-driven server (Microsoft's "Named Pipe Server Using Overlapped
// I/O" / "Using Completion Routines"): one canal::Server serves many clients
// on a single loop thread (IOCP on Windows, epoll or poll() elsewhere).
//
//   event_server NAME          serve NAME until stdin ends; each request
//                              message gets "echo: <request>" back
//   event_server --self-test   also run 16 clients x 20 transactions

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "canal/canal.h"

namespace {

absl::StatusOr<std::unique_ptr<canal::Server>> StartEchoServer(
    const std::string& name, std::atomic<int>* connections) {
  canal::ServerOptions options;
  options.listener.mode = canal::PipeMode::kMessage;
  options.threads = 1;
  canal::ServerHandlers handlers;
  handlers.on_open = [connections](canal::Connection&) { ++*connections; };
  // Runs on the loop thread: never block here.
  handlers.on_request =
      [](canal::Connection&,
         absl::string_view request) -> absl::StatusOr<std::string> {
    return absl::StrCat("echo: ", request);
  };
  return canal::Server::Start(name, options, std::move(handlers));
}

int SelfTest() {
  const std::string name = absl::StrCat(
      "canal-example-events-", absl::ToUnixNanos(absl::Now()) % 1000000000);
  std::atomic<int> connections{0};
  absl::StatusOr<std::unique_ptr<canal::Server>> server =
      StartEchoServer(name, &connections);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  constexpr int kClients = 16;
  constexpr int kRequests = 20;
  std::atomic<int> good{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name);
      if (!ch.ok()) return;
      for (int i = 0; i < kRequests; ++i) {
        const std::string request = absl::StrCat("client ", c, " request ", i);
        absl::StatusOr<std::string> reply =
            ch->Transact(request, absl::Seconds(20));
        if (reply.ok() && *reply == "echo: " + request) ++good;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  (*server)->Shutdown(absl::Seconds(1));
  const bool ok = good == kClients * kRequests && connections == kClients;
  std::printf(
      "event_server self-test: %d clients, %d of %d replies right: %s\n",
      connections.load(), good.load(), kClients * kRequests,
      ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--self-test") return SelfTest();
  if (argc != 2) {
    std::fprintf(stderr, "usage: event_server NAME | --self-test\n");
    return 2;
  }
  std::atomic<int> connections{0};
  absl::StatusOr<std::unique_ptr<canal::Server>> server =
      StartEchoServer(argv[1], &connections);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("serving \"%s\"; end stdin to stop\n", argv[1]);
  while (std::getchar() != EOF) {
  }
  (*server)->Shutdown(absl::Seconds(1));
  std::printf("served %d connections\n", connections.load());
  return 0;
}
