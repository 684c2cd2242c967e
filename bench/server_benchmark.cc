// SPDX-License-Identifier: Apache-2.0
// Google Benchmark suite for canal::Server, beside an equivalent echo server
// written with libuv, measured the same way in the same run. Every benchmark
// is registered twice, as "<Name>/canal/<clients>" and
// "<Name>/libuv/<clients>"; scripts/bench_ratios.py pairs them and prints
// canal/libuv ratios.
//
//   ServerRoundTrip/{canal,libuv}/{1,16,256}  Transact of 64 bytes, round
//                                             trips/s, p50_us and p99_us
//   ServerByteThroughput/{canal,libuv}/{1,16} byte-mode echo of 64 KiB
//                                             writes, bytes/s (one way)
//
// Both servers run one loop thread inside this process, and the SAME
// clients drive both: canal Channels, one thread each (two in byte mode: a
// writer and a reader). For request/reply the libuv server speaks canal's
// message framing (8-byte header "CNL1" + u32 LE length, see
// src/internal/framing.h), and publishes canal's listener metadata beside
// its socket (src/posix/meta.h: a flock'ed "<socket>.canal~lock" holding a
// "canal 1 mode=message ..." line), so `Channel::Connect` sees a message-mode
// listener and `Channel::Transact` works against it unchanged. Both sides
// thus do the same work per request: read up to 64 KiB, parse the frames,
// copy each payload into a reply, frame it, write it. Both leave the socket
// buffers at the kernel's sizes (canal's ListenerOptions::buffer_size
// default, 0, sets none) and stop reading from a client whose outbound queue
// holds 1 MiB (canal's ServerOptions::max_queued_bytes default).
//
// Work is handed out in batches: one benchmark iteration is a batch of
// round trips (or 64 KiB writes) shared by all clients through an atomic
// counter, so concurrency stays at N until the last few units of a batch.
// Each client times every Transact; p50_us / p99_us are computed from those
// per-round-trip timings of the final run.

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"
#include "canal/canal.h"
#include "uv.h"

namespace {

constexpr size_t kRequestSize = 64;
constexpr size_t kChunkSize = 64 * 1024;
constexpr size_t kReadChunk = 64 * 1024;          // ServerOptions default.
constexpr size_t kMaxQueued = 1024 * 1024;        // ServerOptions default.
constexpr size_t kMaxMessage = 64 * 1024 * 1024;  // ListenerOptions default.

// A private directory for the sockets of one run.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/canal-sb-XXXXXX";
    if (::mkdtemp(tmpl) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    if (!path_.empty()) ::rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------
// The libuv echo server.

class UvEchoServer {
 public:
  // Listens on the Unix socket `path`. In message mode it speaks canal's
  // framing and writes canal's metadata file beside the socket.
  static absl::StatusOr<std::unique_ptr<UvEchoServer>> Start(
      const std::string& path, bool message_mode) {
    std::unique_ptr<UvEchoServer> s(new UvEchoServer(path, message_mode));
    absl::Status st = s->Init();
    if (!st.ok()) return st;
    s->thread_ =
        std::thread([p = s.get()] { uv_run(&p->loop_, UV_RUN_DEFAULT); });
    return s;
  }

  ~UvEchoServer() {
    if (thread_.joinable()) {
      uv_async_send(&stop_);
      thread_.join();
    }
    if (loop_ready_) {
      // Close whatever is left (Init failures), then the loop itself.
      uv_walk(&loop_, &UvEchoServer::CloseAll, this);
      uv_run(&loop_, UV_RUN_DEFAULT);
      uv_loop_close(&loop_);
    }
    ::unlink(path_.c_str());
    if (lock_fd_ >= 0) {
      ::unlink(LockPath().c_str());
      ::close(lock_fd_);
    }
  }

 private:
  struct Conn {
    uv_pipe_t pipe;  // First: the handle pointer is the Conn pointer.
    UvEchoServer* server;
    bool reading = false;
    std::string pending;  // An incomplete frame (message mode).
    char buf[kReadChunk];
  };
  struct WriteReq {
    uv_write_t req;  // First.
    std::string data;
  };

  UvEchoServer(std::string path, bool message_mode)
      : path_(std::move(path)), message_mode_(message_mode) {}

  std::string LockPath() const { return path_ + ".canal~meta"; }

  // Closes `h`; connection handles (data = their Conn) are freed.
  static void CloseHandle(uv_handle_t* h) {
    if (uv_is_closing(h)) return;
    if (h->data != nullptr) {
      uv_close(h, [](uv_handle_t* c) { delete static_cast<Conn*>(c->data); });
    } else {
      uv_close(h, nullptr);
    }
  }

  absl::Status Init() {
    if (message_mode_) {
      // canal's listener metadata (src/posix/meta.h), with the write lock
      // that tells clients the listener is alive.
      lock_fd_ = ::open(LockPath().c_str(),
                        O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
      bool locked = lock_fd_ >= 0;
#if defined(F_OFD_SETLK)
      struct flock alive = {};
      alive.l_type = F_WRLCK;
      alive.l_whence = SEEK_SET;
      locked = locked && ::fcntl(lock_fd_, F_OFD_SETLK, &alive) == 0;
#endif
      if (!locked) {
        return absl::InternalError("cannot create the metadata lock file");
      }
      const std::string line = absl::StrCat(
          "canal 1 mode=message access=duplex max_instances=0 "
          "max_message_size=",
          kMaxMessage, " buffer_size=0 pid=", ::getpid(), "\n");
      if (::write(lock_fd_, line.data(), line.size()) !=
          static_cast<ssize_t>(line.size())) {
        return absl::InternalError("cannot write the metadata lock file");
      }
    }
    if (uv_loop_init(&loop_) != 0) return absl::InternalError("uv_loop_init");
    loop_ready_ = true;
    // The loop's `data` is the server; a handle's `data` is its Conn, or
    // null for the server's own handles.
    loop_.data = this;
    uv_async_init(&loop_, &stop_, [](uv_async_t* a) {
      uv_walk(a->loop, &UvEchoServer::CloseAll, nullptr);
    });
    stop_.data = nullptr;
    uv_pipe_init(&loop_, &listen_, 0);
    listen_.data = nullptr;
    int rc = uv_pipe_bind(&listen_, path_.c_str());
    if (rc == 0) {
      rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listen_), 1024,
                     &UvEchoServer::OnConnection);
    }
    if (rc != 0) return absl::InternalError(uv_strerror(rc));
    return absl::OkStatus();
  }

  static void CloseAll(uv_handle_t* h, void*) { CloseHandle(h); }

  static UvEchoServer* ServerOf(uv_stream_t* listen) {
    return static_cast<UvEchoServer*>(listen->loop->data);
  }

  static void OnConnection(uv_stream_t* listen, int status) {
    if (status != 0) return;
    UvEchoServer* self = ServerOf(listen);
    Conn* c = new Conn;
    c->server = self;
    uv_pipe_init(&self->loop_, &c->pipe, 0);
    c->pipe.data = c;
    if (uv_accept(listen, reinterpret_cast<uv_stream_t*>(&c->pipe)) != 0) {
      CloseHandle(reinterpret_cast<uv_handle_t*>(&c->pipe));
      return;
    }
    StartReading(c);
  }

  static void StartReading(Conn* c) {
    c->reading = true;
    uv_read_start(
        reinterpret_cast<uv_stream_t*>(&c->pipe),
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          Conn* conn = static_cast<Conn*>(h->data);
          *buf = uv_buf_init(conn->buf, sizeof(conn->buf));
        },
        &UvEchoServer::OnRead);
  }

  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
    Conn* c = static_cast<Conn*>(stream->data);
    if (nread < 0) {
      CloseHandle(reinterpret_cast<uv_handle_t*>(stream));
      return;
    }
    if (nread == 0) return;
    WriteReq* w = new WriteReq;
    if (!c->server->message_mode_) {
      w->data.assign(buf->base, static_cast<size_t>(nread));
    } else if (!Frame(c, buf->base, static_cast<size_t>(nread), &w->data)) {
      delete w;
      CloseHandle(reinterpret_cast<uv_handle_t*>(stream));
      return;
    }
    if (w->data.empty()) {
      delete w;
      return;
    }
    uv_buf_t out =
        uv_buf_init(&w->data[0], static_cast<unsigned>(w->data.size()));
    if (uv_write(&w->req, stream, &out, 1, &UvEchoServer::OnWritten) != 0) {
      delete w;
      CloseHandle(reinterpret_cast<uv_handle_t*>(stream));
      return;
    }
    // Flow control as in canal::Server: stop reading while 1 MiB is queued.
    if (stream->write_queue_size >= kMaxQueued) {
      uv_read_stop(stream);
      c->reading = false;
    }
  }

  static void OnWritten(uv_write_t* req, int status) {
    WriteReq* w = reinterpret_cast<WriteReq*>(req);
    uv_stream_t* stream = req->handle;
    delete w;
    if (status != 0) {
      CloseHandle(reinterpret_cast<uv_handle_t*>(stream));
      return;
    }
    Conn* c = static_cast<Conn*>(stream->data);
    if (!c->reading && !uv_is_closing(reinterpret_cast<uv_handle_t*>(stream)) &&
        stream->write_queue_size < kMaxQueued / 2) {
      StartReading(c);
    }
  }

  // Appends a reply frame (a copy of the request) to `out` for every whole
  // frame in pending + data; keeps an incomplete one in `pending`.
  static bool Frame(Conn* c, const char* data, size_t size, std::string* out) {
    if (!c->pending.empty()) {
      c->pending.append(data, size);
      data = c->pending.data();
      size = c->pending.size();
    }
    size_t pos = 0;
    while (size - pos >= 8) {
      const unsigned char* h =
          reinterpret_cast<const unsigned char*>(data + pos);
      if (std::memcmp(h, "CNL1", 4) != 0) return false;
      const uint32_t len =
          static_cast<uint32_t>(h[4]) | static_cast<uint32_t>(h[5]) << 8 |
          static_cast<uint32_t>(h[6]) << 16 | static_cast<uint32_t>(h[7]) << 24;
      if (len > kMaxMessage) return false;
      if (size - pos - 8 < len) break;
      // The handler's work: the reply is a copy of the request.
      std::string reply(data + pos + 8, len);
      char header[8] = {'C',
                        'N',
                        'L',
                        '1',
                        static_cast<char>(len & 0xff),
                        static_cast<char>((len >> 8) & 0xff),
                        static_cast<char>((len >> 16) & 0xff),
                        static_cast<char>((len >> 24) & 0xff)};
      out->append(header, 8);
      out->append(reply);
      pos += 8 + len;
    }
    if (c->pending.empty()) {
      c->pending.assign(data + pos, size - pos);
    } else {
      c->pending.erase(0, pos);
    }
    return true;
  }

  const std::string path_;
  const bool message_mode_;
  int lock_fd_ = -1;
  bool loop_ready_ = false;
  uv_loop_t loop_;
  uv_async_t stop_;
  uv_pipe_t listen_;
  std::thread thread_;
};

// ---------------------------------------------------------------------------
// The server under test, either kind.

class EchoServer {
 public:
  // Starts a canal or libuv echo server in `dir`; `name()` is what clients
  // pass to Channel::Connect (a native absolute path in both cases).
  static absl::StatusOr<std::unique_ptr<EchoServer>> Start(
      const std::string& dir, bool libuv, bool message_mode) {
    if (dir.empty()) return absl::InternalError("mkdtemp failed");
    std::unique_ptr<EchoServer> s(new EchoServer);
    s->name_ = absl::StrCat(dir, libuv ? "/uv.sock" : "/canal.sock");
    if (libuv) {
      absl::StatusOr<std::unique_ptr<UvEchoServer>> uv =
          UvEchoServer::Start(s->name_, message_mode);
      if (!uv.ok()) return uv.status();
      s->uv_ = std::move(*uv);
      return s;
    }
    canal::ServerOptions options;
    options.listener.mode =
        message_mode ? canal::PipeMode::kMessage : canal::PipeMode::kByte;
    options.threads = 1;
    canal::ServerHandlers handlers;
    if (message_mode) {
      handlers.on_request = [](canal::Connection&, absl::string_view request)
          -> absl::StatusOr<std::string> { return std::string(request); };
    } else {
      handlers.on_data = [](canal::Connection& c, absl::string_view data) {
        (void)c.Send(data);
      };
    }
    absl::StatusOr<std::unique_ptr<canal::Server>> server =
        canal::Server::Start(s->name_, options, std::move(handlers));
    if (!server.ok()) return server.status();
    s->canal_ = std::move(*server);
    return s;
  }

  ~EchoServer() {
    if (canal_ != nullptr) canal_->Shutdown();
  }

  const std::string& name() const { return name_; }

 private:
  EchoServer() = default;
  std::string name_;
  std::unique_ptr<canal::Server> canal_;
  std::unique_ptr<UvEchoServer> uv_;
};

// ---------------------------------------------------------------------------
// Client threads fed in batches.

class Batches {
 public:
  explicit Batches(int workers) : workers_(workers) {}

  // Main thread: hands out `units` units and waits until every worker has
  // finished its share.
  void Run(int64_t units) {
    absl::MutexLock lock(&mu_);
    remaining_.store(units, std::memory_order_relaxed);
    active_ = workers_;
    ++generation_;
    mu_.Await(absl::Condition(
        +[](int* active) { return *active == 0; }, &active_));
  }

  void Stop() {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }

  // Worker: waits for the next batch; false once stopped.
  bool Next(uint64_t* seen) {
    absl::MutexLock lock(&mu_);
    struct Arg {
      Batches* self;
      uint64_t seen;
    } arg{this, *seen};
    mu_.Await(absl::Condition(
        +[](Arg* a) {
          return a->self->stop_ || a->self->generation_ > a->seen;
        },
        &arg));
    if (stop_) return false;
    *seen = generation_;
    return true;
  }

  // Worker: claims one unit of the current batch.
  bool Take() { return remaining_.fetch_sub(1, std::memory_order_relaxed) > 0; }

  // Worker: done with the current batch.
  void Finished() {
    absl::MutexLock lock(&mu_);
    --active_;
  }

 private:
  const int workers_;
  std::atomic<int64_t> remaining_{0};
  absl::Mutex mu_;
  int active_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
};

// Connects `count` clients to `server`.
absl::StatusOr<std::vector<canal::Channel>> ConnectAll(const EchoServer& server,
                                                       int count) {
  std::vector<canal::Channel> channels;
  canal::ConnectOptions options;
  options.timeout = absl::Seconds(10);
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<canal::Channel> ch =
        canal::Channel::Connect(server.name(), options);
    if (!ch.ok()) return ch.status();
    channels.push_back(std::move(*ch));
  }
  return channels;
}

int64_t Percentile(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

// Each of `clients` clients does Transact(64 bytes) as fast as it can.
void ServerRoundTrip(benchmark::State& state, bool libuv) {
  const int clients = static_cast<int>(state.range(0));
  TempDir dir;
  absl::StatusOr<std::unique_ptr<EchoServer>> server =
      EchoServer::Start(dir.path(), libuv, /*message_mode=*/true);
  if (!server.ok()) {
    state.SkipWithError(std::string(server.status().message()).c_str());
    return;
  }
  absl::StatusOr<std::vector<canal::Channel>> channels =
      ConnectAll(**server, clients);
  if (!channels.ok()) {
    state.SkipWithError(std::string(channels.status().message()).c_str());
    return;
  }
  const int64_t batch = std::max<int64_t>(2048, 32 * clients);
  Batches batches(clients);
  std::atomic<bool> failed{false};
  std::vector<std::vector<int64_t>> latencies(clients);
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      canal::Channel& ch = (*channels)[i];
      std::vector<int64_t>& lat = latencies[i];
      lat.reserve(static_cast<size_t>(batch / clients * 64));
      const std::string request(kRequestSize, 'r');
      uint64_t seen = 0;
      while (batches.Next(&seen)) {
        while (batches.Take()) {
          if (failed.load(std::memory_order_relaxed)) continue;
          const auto t0 = std::chrono::steady_clock::now();
          absl::StatusOr<std::string> reply =
              ch.Transact(request, absl::Seconds(10));
          const auto t1 = std::chrono::steady_clock::now();
          if (!reply.ok() || reply->size() != kRequestSize) {
            failed.store(true);
            continue;
          }
          lat.push_back(
              std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0)
                  .count());
        }
        batches.Finished();
      }
    });
  }
  for (auto _ : state) {
    batches.Run(batch);
    if (failed.load()) {
      state.SkipWithError("Transact failed");
      break;
    }
  }
  batches.Stop();
  for (std::thread& t : threads) t.join();
  channels->clear();
  server->reset();
  std::vector<int64_t> all;
  for (std::vector<int64_t>& v : latencies) {
    all.insert(all.end(), v.begin(), v.end());
  }
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["p50_us"] = static_cast<double>(Percentile(all, 0.50)) / 1e3;
  state.counters["p99_us"] = static_cast<double>(Percentile(all, 0.99)) / 1e3;
}

// Each of `clients` byte-mode clients writes 64 KiB chunks from one thread
// and reads the echo back on another; an iteration ends when every byte of
// its batch has come back.
void ServerByteThroughput(benchmark::State& state, bool libuv) {
  const int clients = static_cast<int>(state.range(0));
  TempDir dir;
  absl::StatusOr<std::unique_ptr<EchoServer>> server =
      EchoServer::Start(dir.path(), libuv, /*message_mode=*/false);
  if (!server.ok()) {
    state.SkipWithError(std::string(server.status().message()).c_str());
    return;
  }
  absl::StatusOr<std::vector<canal::Channel>> channels =
      ConnectAll(**server, clients);
  if (!channels.ok()) {
    state.SkipWithError(std::string(channels.status().message()).c_str());
    return;
  }
  const int64_t batch = 256;  // 16 MiB per iteration.
  Batches batches(clients);
  std::atomic<bool> failed{false};
  std::atomic<int64_t> received{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    canal::Channel* ch = &(*channels)[i];
    threads.emplace_back([&, ch] {  // Writer.
      const std::string chunk(kChunkSize, 'x');
      uint64_t seen = 0;
      while (batches.Next(&seen)) {
        while (batches.Take()) {
          if (failed.load(std::memory_order_relaxed)) continue;
          if (!ch->Write(chunk, absl::Seconds(10)).ok()) failed.store(true);
        }
        batches.Finished();
      }
    });
    threads.emplace_back([&, ch] {  // Reader.
      std::vector<char> buffer(kChunkSize);
      while (true) {
        absl::StatusOr<canal::ReadResult> r = ch->Read(absl::MakeSpan(buffer));
        if (!r.ok()) return;  // Cancelled by Close at the end.
        received.fetch_add(static_cast<int64_t>(r->size),
                           std::memory_order_release);
      }
    });
  }
  int64_t sent = 0;
  for (auto _ : state) {
    batches.Run(batch);
    sent += batch * static_cast<int64_t>(kChunkSize);
    while (received.load(std::memory_order_acquire) < sent &&
           !failed.load(std::memory_order_relaxed)) {
      std::this_thread::yield();
    }
    if (failed.load()) {
      state.SkipWithError("write failed");
      break;
    }
  }
  batches.Stop();
  for (canal::Channel& ch : *channels) ch.Close();
  for (std::thread& t : threads) t.join();
  channels->clear();
  server->reset();
  state.SetBytesProcessed(state.iterations() * batch *
                          static_cast<int64_t>(kChunkSize));
  state.SetItemsProcessed(state.iterations() * batch);
}

void Register(const char* name, void (*fn)(benchmark::State&, bool),
              std::vector<int64_t> args) {
  for (bool libuv : {false, true}) {
    for (int64_t arg : args) {
      benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(
          absl::StrCat(name, libuv ? "/libuv/" : "/canal/", arg).c_str(),
          [fn, libuv](benchmark::State& state) { fn(state, libuv); });
      b->Arg(arg);
      // Wall-clock time: the work is on the client threads and the loop.
      b->UseRealTime();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  Register("ServerRoundTrip", ServerRoundTrip, {1, 16, 256});
  Register("ServerByteThroughput", ServerByteThroughput, {1, 16});
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
