// SPDX-License-Identifier: Apache-2.0
// Soak: 64 clients x 1,000 messages (under Wine 16 x 250, see
// handles_test.cc for why; the full size passes there in about 20 s) through a
// canal::Server, each client pipelining: a writer thread sends every request
// while a reader thread collects the replies. Every request carries the
// client's id, a sequence number, a payload of varying size (0 to 4 KiB) and
// an FNV-1a checksum; the server checks per connection that sequence numbers
// arrive in order without gaps or repeats and that checksums match, and
// echoes; each client checks the same of its replies. Nothing may be lost,
// duplicated, reordered or corrupted.

#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "reliability/faults/faults_util.h"
#include "test_util.h"

namespace canal_test {
namespace {

struct Parsed {
  uint32_t client = 0;
  uint32_t seq = 0;
  bool ok = false;
};

std::string Encode(uint32_t client, uint32_t seq) {
  const size_t payload = (static_cast<size_t>(seq) * 131 + client * 17) % 4097;
  std::string m(8, '\0');
  std::memcpy(&m[0], &client, 4);
  std::memcpy(&m[4], &seq, 4);
  m += Pattern(payload, client * 100003u + seq);
  const uint64_t sum = Fnv1a(m.data(), m.size());
  m.append(reinterpret_cast<const char*>(&sum), 8);
  return m;
}

Parsed Decode(absl::string_view m) {
  Parsed p;
  if (m.size() < 16) return p;
  std::memcpy(&p.client, m.data(), 4);
  std::memcpy(&p.seq, m.data() + 4, 4);
  uint64_t sum = 0;
  std::memcpy(&sum, m.data() + m.size() - 8, 8);
  p.ok = sum == Fnv1a(m.data(), m.size() - 8);
  return p;
}

TEST(FaultsSoak, ClientsTimesMessagesNothingLostDuplicatedReorderedCorrupted) {
  const bool wine = RunningUnderWine();
  const uint32_t clients = wine ? 16 : 64;
  const uint32_t messages = wine ? 250 : 1000;
  const std::string name = UniqueName("soak");

  std::mutex mu;
  std::map<uint64_t, uint32_t> next_seq;  // per connection id
  std::atomic<int64_t> server_errors{0};
  std::atomic<int64_t> served{0};

  canal::ServerOptions options;
  options.listener.mode = canal::PipeMode::kMessage;
  options.threads = 2;
  canal::ServerHandlers handlers;
  handlers.on_request =
      [&](canal::Connection& c,
          absl::string_view request) -> absl::StatusOr<std::string> {
    const Parsed p = Decode(request);
    bool good = p.ok;
    {
      std::lock_guard<std::mutex> lock(mu);
      uint32_t& expected = next_seq[c.id()];
      if (p.seq != expected) good = false;
      expected = p.seq + 1;
    }
    if (!good) ++server_errors;
    ++served;
    return std::string(request);
  };
  absl::StatusOr<std::unique_ptr<canal::Server>> server =
      canal::Server::Start(name, options, std::move(handlers));
  ASSERT_TRUE(server.ok()) << server.status();

  std::atomic<int64_t> client_errors{0};
  std::atomic<int64_t> received{0};
  std::string first_error;
  std::mutex error_mu;
  auto fail = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(error_mu);
    if (first_error.empty()) first_error = what;
    ++client_errors;
  };

  const absl::Time start = absl::Now();
  {
    std::vector<std::thread> threads;
    for (uint32_t id = 0; id < clients; ++id) {
      threads.emplace_back([&, id] {
        canal::ConnectOptions co;
        co.timeout = absl::Seconds(30);
        absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(name, co);
        if (!ch.ok()) return fail(ch.status().ToString());
        std::thread writer([&] {
          for (uint32_t seq = 0; seq < messages; ++seq) {
            absl::Status s =
                ch->WriteMessage(Encode(id, seq), absl::Seconds(60));
            if (!s.ok()) return fail(s.ToString());
          }
        });
        for (uint32_t seq = 0; seq < messages; ++seq) {
          absl::StatusOr<std::string> reply =
              ch->ReadMessage(absl::Seconds(60));
          if (!reply.ok()) {
            fail(reply.status().ToString());
            break;
          }
          const Parsed p = Decode(*reply);
          if (!p.ok || p.client != id || p.seq != seq ||
              *reply != Encode(id, seq)) {
            fail(absl::StrCat("client ", id, " expected seq ", seq, " got ",
                              p.client, "/", p.seq, p.ok ? "" : " (bad sum)"));
            break;
          }
          ++received;
        }
        writer.join();
      });
    }
    for (std::thread& t : threads) t.join();
  }
  const absl::Duration took = absl::Now() - start;
  std::printf("soak: %u clients x %u messages in %s\n", clients, messages,
              absl::FormatDuration(took).c_str());
  EXPECT_EQ(client_errors.load(), 0) << first_error;
  EXPECT_EQ(server_errors.load(), 0);
  const int64_t total = static_cast<int64_t>(clients) * messages;
  EXPECT_EQ(received.load(), total);
  EXPECT_EQ(served.load(), total);
}

}  // namespace
}  // namespace canal_test
