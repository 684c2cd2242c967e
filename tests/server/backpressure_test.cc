// SPDX-License-Identifier: Apache-2.0
// A client that stops reading: its outbound queue stays bounded, the server
// stops reading from it (its writes then stall), Send reports
// ResourceExhausted, and other clients keep being served. When it reads
// again everything arrives and the server resumes.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "server_test_util.h"

namespace canal_test {
namespace {

TEST(ServerBackpressureTest, StuckClientIsBoundedOthersServed) {
  constexpr size_t kBound = 256 * 1024;
  constexpr size_t kReply = 64 * 1024;
  const std::string name = UniqueName("srv-stuck");
  std::mutex mu;
  std::condition_variable cv;
  canal::Connection stuck_conn;
  std::atomic<size_t> max_queued{0};
  std::atomic<int> stuck_requests{0};
  canal::ServerHandlers handlers;
  handlers.on_data = [&](canal::Connection& c, absl::string_view data) {
    if (data.substr(0, 5) == "stuck") {
      {
        std::lock_guard<std::mutex> lock(mu);
        stuck_conn = c;
      }
      stuck_requests.fetch_add(1);
      absl::Status s = c.Send(std::string(kReply, 's'));
      // The loop stops dispatching once the queue is full, so an echo
      // like this one is never refused.
      EXPECT_TRUE(s.ok()) << s;
      size_t q = c.queued_bytes();
      size_t prev = max_queued.load();
      while (q > prev && !max_queued.compare_exchange_weak(prev, q)) {
      }
      cv.notify_all();
    } else {
      EXPECT_TRUE(c.Send(data).ok());
    }
  };
  canal::ServerOptions options = MessageServerOptions();
  options.max_queued_bytes = kBound;
  options.listener.buffer_size = 16 * 1024;
  // Over shared memory: a ring smaller than one reply, so that the server's
  // writer thread, once the client stops reading, hangs in the middle of a
  // reply (which stays queued) instead of moving whole ones out of the
  // queue after dispatching paused: the queue then stays at the bound.
  options.listener.ring_size = canal::kMinRingSize;
  options.read_chunk_size = 4096;
  auto server = StartServer(name, options, std::move(handlers));
  CANAL_ASSERT_OK(server);

  absl::StatusOr<canal::Channel> stuck = canal::Channel::Connect(name);
  CANAL_ASSERT_OK(stuck);
  // Write requests without reading until a write stalls: the server has
  // stopped reading from this client. Over shared memory a stall may also
  // come from a slow (sanitized) server whose queue is not full yet: write
  // on until a stall finds the queue full.
  // A message this small goes into the ring whole or not at all, so one
  // that timed out was not sent; on a pipe part of it may have been, so
  // there the first stall ends the writing.
  auto queue_full = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return stuck_conn.queued_bytes() >= kBound;
  };
  const absl::Time start = absl::Now();
  int written = 0;
  absl::Status last;
  while (written < 100000) {
    last = stuck->WriteMessage(
        absl::StrCat("stuck", written, std::string(1000, '.')),
        absl::Milliseconds(300));
    if (last.ok()) {
      ++written;
      continue;
    }
    if (!absl::IsDeadlineExceeded(last) ||
        stuck->transport() != canal::Transport::kSharedMemory || queue_full()) {
      break;
    }
    ASSERT_LT(absl::Now() - start, kHangGuard) << "the queue never filled";
  }
  ASSERT_EQ(last.code(), absl::StatusCode::kDeadlineExceeded) << last;
  // The server queued at most the bound plus one reply.
  EXPECT_LE(max_queued.load(), kBound + kReply + 64);
  EXPECT_GE(max_queued.load(), kBound);
  // It dispatched only what fit: far fewer requests than were written.
  // (The system's socket or pipe buffers took a few replies as well.)
  EXPECT_LE(stuck_requests.load(), static_cast<int>(kBound / kReply) + 12);
  EXPECT_GT(written, stuck_requests.load());
  canal::Connection conn;
  {
    std::lock_guard<std::mutex> lock(mu);
    conn = stuck_conn;
  }
  ASSERT_TRUE(conn.is_open());
  EXPECT_GE(conn.queued_bytes(), kBound);
  CANAL_EXPECT_CODE(conn.Send("more"), kResourceExhausted);

  // Others are served meanwhile.
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<std::string> r =
        canal::Call(name, absl::StrCat("other", i), absl::Seconds(30));
    CANAL_ASSERT_OK(r);
    EXPECT_EQ(*r, absl::StrCat("other", i));
  }

  // The stuck client reads again: every dispatched request gets its reply,
  // the server resumes and handles the rest.
  const int total = written;
  int replies = 0;
  while (replies < total) {
    absl::StatusOr<std::string> m = stuck->ReadMessage(absl::Seconds(30));
    CANAL_ASSERT_OK(m);
    ASSERT_EQ(m->size(), kReply);
    ++replies;
  }
  EXPECT_EQ(stuck_requests.load(), total);
  EXPECT_LE(max_queued.load(), kBound + kReply + 64);
}

}  // namespace
}  // namespace canal_test
