// SPDX-License-Identifier: Apache-2.0
// A consumer of canal: a message-mode listener and one Call, through the
// installed headers only. Built by tests/consumer/wrap (canal as a Meson
// subproject) and tests/consumer/pkgconfig (the installed canal.pc).

#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "canal/canal.h"

int main() {
  const std::string name = absl::StrCat(
      "canal-consumer-", absl::ToUnixNanos(absl::Now()) % 1000000000);
  canal::ListenerOptions options;
  options.mode = canal::PipeMode::kMessage;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  if (!listener.ok()) {
    std::fprintf(stderr, "%s\n", listener.status().ToString().c_str());
    return 1;
  }
  std::thread server([&listener] {
    absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(10));
    if (!ch.ok()) return;
    absl::StatusOr<std::string> msg = ch->ReadMessage();
    if (msg.ok()) (void)ch->WriteMessage(absl::StrCat("re: ", *msg));
  });
  absl::StatusOr<std::string> reply =
      canal::Call(name, "hello", absl::Seconds(10));
  server.join();
  if (!reply.ok() || *reply != "re: hello") {
    std::fprintf(stderr, "consumer: unexpected reply\n");
    return 1;
  }
  std::printf("consumer: ok\n");
  return 0;
}
