// Google Benchmark suite: canal beside the raw system primitive, measured
// the same way in the same run. Every benchmark is registered twice, as
// "<Name>/canal/<arg>" and "<Name>/raw/<arg>"; scripts/bench_ratios.py
// pairs them and prints canal/raw ratios.
//
//   ByteThroughput/{canal,raw}/{4096,65536}  byte-mode writes, bytes/s
//   MessageRate/{canal,raw}/{64,4096}        message-mode messages/s
//   RoundTrip/{canal,raw}/64                 ping-pong latency
//   Call/{canal,raw}/64                      connect + transact + close
//
// The raw primitive (bench/raw/raw.h) is a Unix stream socket pair on
// POSIX and a pair of overlapped named-pipe handles on Windows; for Call, a
// raw Unix-socket connect+write+read+close or CallNamedPipe.

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "canal/canal.h"
#include "bench/raw/canal_pairs.h"
#include "bench/raw/raw.h"

#ifndef _WIN32
#include <signal.h>
#endif

namespace {

using canal_raw::StreamEnd;
using canal_raw::StreamPair;

absl::StatusOr<StreamPair> MakePair(bool raw, bool message_mode, size_t size) {
  canal_raw::PairOptions options;
  options.message_mode = message_mode;
  options.max_message_size = size;
  if (raw) return canal_raw::MakeRawPair(options);
  absl::StatusOr<std::vector<StreamPair>> pairs =
      canal_raw::MakeCanalPairs(options, 1);
  if (!pairs.ok()) return pairs.status();
  return std::move(pairs->front());
}

bool ReceiveExactly(StreamEnd& end, char* data, size_t size) {
  size_t got = 0;
  while (got < size) {
    absl::StatusOr<size_t> n = end.Receive(absl::MakeSpan(data + got, size - got));
    if (!n.ok() || *n == 0) return false;
    got += *n;
  }
  return true;
}

// Streams writes of `size` bytes to a thread that drains them.
void Stream(benchmark::State& state, bool raw, bool message_mode) {
  const size_t size = static_cast<size_t>(state.range(0));
  absl::StatusOr<StreamPair> pair = MakePair(raw, message_mode, size);
  if (!pair.ok()) {
    state.SkipWithError(std::string(pair.status().message()).c_str());
    return;
  }
  StreamEnd* server = pair->server.get();
  std::thread drain([server, size, message_mode] {
    std::vector<char> buffer(message_mode ? size : 64 * 1024);
    while (true) {
      absl::StatusOr<size_t> n = server->Receive(absl::MakeSpan(buffer));
      if (!n.ok() || *n == 0) return;
    }
  });
  const std::string chunk(size, 'x');
  for (auto _ : state) {
    if (!pair->client->Send(chunk).ok()) {
      state.SkipWithError("send failed");
      break;
    }
  }
  pair->client->Close();
  drain.join();
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
  state.SetItemsProcessed(state.iterations());
}

void ByteThroughput(benchmark::State& state, bool raw) {
  Stream(state, raw, false);
}

void MessageRate(benchmark::State& state, bool raw) { Stream(state, raw, true); }

// One message of `size` bytes each way per iteration.
void RoundTrip(benchmark::State& state, bool raw) {
  const size_t size = static_cast<size_t>(state.range(0));
  absl::StatusOr<StreamPair> pair = MakePair(raw, true, size);
  if (!pair.ok()) {
    state.SkipWithError(std::string(pair.status().message()).c_str());
    return;
  }
  StreamEnd* server = pair->server.get();
  std::thread echo([server, size] {
    std::string buffer(size, '\0');
    while (ReceiveExactly(*server, &buffer[0], size)) {
      if (!server->Send(buffer).ok()) return;
    }
  });
  const std::string ping(size, 'p');
  std::string pong(size, '\0');
  for (auto _ : state) {
    if (!pair->client->Send(ping).ok() ||
        !ReceiveExactly(*pair->client, &pong[0], size)) {
      state.SkipWithError("round trip failed");
      break;
    }
  }
  pair->client->Close();
  echo.join();
  state.SetItemsProcessed(state.iterations());
}

// Connect, send one request, read the reply, close.
void Call(benchmark::State& state, bool raw) {
  const size_t size = static_cast<size_t>(state.range(0));
  const std::string request(size, 'r');
  std::string reply;
  if (raw) {
    absl::StatusOr<std::unique_ptr<canal_raw::RawCallServer>> server =
        canal_raw::RawCallServer::Start(size);
    if (!server.ok()) {
      state.SkipWithError(std::string(server.status().message()).c_str());
      return;
    }
    for (auto _ : state) {
      if (!(*server)->Call(request, &reply).ok()) {
        state.SkipWithError("raw call failed");
        break;
      }
    }
  } else {
    absl::BitGen gen;
    const std::string name = absl::StrCat(
        "canal-bench-call-", absl::Hex(absl::Uniform<uint64_t>(gen)));
    canal::ListenerOptions options;
    options.mode = canal::PipeMode::kMessage;
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(name, options);
    if (!listener.ok()) {
      state.SkipWithError(std::string(listener.status().message()).c_str());
      return;
    }
    std::thread server([&listener] {
      while (true) {
        absl::StatusOr<canal::Channel> ch = listener->Accept();
        if (!ch.ok()) return;
        absl::StatusOr<std::string> msg = ch->ReadMessage();
        if (msg.ok()) (void)ch->WriteMessage(*msg);
      }
    });
    for (auto _ : state) {
      absl::StatusOr<std::string> r = canal::Call(name, request);
      if (!r.ok()) {
        state.SkipWithError(std::string(r.status().message()).c_str());
        break;
      }
    }
    listener->Close();
    server.join();
  }
  state.SetItemsProcessed(state.iterations());
}

void Register(const char* name, void (*fn)(benchmark::State&, bool),
              std::vector<int64_t> args, bool use_real_time) {
  for (bool raw : {false, true}) {
    for (int64_t arg : args) {
      benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(
          absl::StrCat(name, raw ? "/raw/" : "/canal/", arg).c_str(),
          [fn, raw](benchmark::State& state) { fn(state, raw); });
      b->Arg(arg);
      if (use_real_time) b->UseRealTime();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
#ifndef _WIN32
  ::signal(SIGPIPE, SIG_IGN);
#endif
  // Wall-clock time for everything: the work is spread over two threads
  // (or processes' worth of kernel work), so CPU time of the benchmark
  // thread alone would flatter whichever side blocks more.
  Register("ByteThroughput", ByteThroughput, {4096, 65536}, true);
  Register("MessageRate", MessageRate, {64, 4096}, true);
  Register("RoundTrip", RoundTrip, {64}, true);
  Register("Call", Call, {64}, true);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
