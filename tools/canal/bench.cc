// SPDX-License-Identifier: Apache-2.0
#include "tools/canal/bench.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "bench/raw/canal_pairs.h"
#include "bench/raw/raw.h"
#include "nlohmann/json.hpp"

namespace canal_cli {
namespace {

using canal_raw::StreamEnd;
using canal_raw::StreamPair;

canal_raw::PairOptions PairOptionsFor(const BenchOptions& options) {
  canal_raw::PairOptions pair;
  pair.message_mode = options.message_mode;
  pair.max_message_size = std::max<size_t>(options.size, 1);
  pair.buffer_size = options.buffer_size;
  pair.shared_memory = options.transport == canal::Transport::kSharedMemory;
  return pair;
}

using PairFactory =
    std::function<absl::StatusOr<std::vector<StreamPair>>(int count)>;

absl::StatusOr<std::vector<StreamPair>> MakeRawPairs(
    const BenchOptions& options, int count) {
  std::vector<StreamPair> pairs;
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<StreamPair> pair =
        canal_raw::MakeRawPair(PairOptionsFor(options));
    if (!pair.ok()) return pair.status();
    pairs.push_back(std::move(*pair));
  }
  return pairs;
}

// Receives exactly `buffer.size()` bytes (one message in message mode).
// Returns false at end of stream or on error.
bool ReceiveExactly(StreamEnd& end, absl::Span<char> buffer) {
  size_t got = 0;
  while (got < buffer.size() || buffer.empty()) {
    absl::StatusOr<size_t> n = end.Receive(buffer.subspan(got));
    if (!n.ok() || *n == 0) return false;
    got += *n;
    if (buffer.empty()) break;
  }
  return true;
}

// Waits `duration`, reporting progress; false if stopped early.
bool RunFor(absl::Duration duration, StopSource* stop,
            const std::function<std::string()>& status,
            const std::function<void(absl::string_view)>& progress) {
  absl::Notification stopped;
  int id = -1;
  if (stop != nullptr)
    id = stop->Register([&stopped] {
      if (!stopped.HasBeenNotified()) stopped.Notify();
    });
  const absl::Time end = absl::Now() + duration;
  bool completed = true;
  while (absl::Now() < end) {
    const absl::Duration slice =
        std::min(absl::Milliseconds(100), end - absl::Now());
    if (stopped.WaitForNotificationWithTimeout(slice)) {
      completed = false;
      break;
    }
    if (progress) progress(status());
  }
  if (stop != nullptr) stop->Unregister(id);
  return completed;
}

std::string Rate(double bytes_per_second) {
  return absl::StrFormat("%.1f MiB/s", bytes_per_second / (1024.0 * 1024.0));
}

// Counts the transports of both ends of every pair into `transports`
// (null: not wanted).
void CountTransports(const std::vector<StreamPair>& pairs,
                     std::map<std::string, int>* transports) {
  if (transports == nullptr) return;
  for (const StreamPair& pair : pairs) {
    ++(*transports)[pair.server->TransportName()];
    ++(*transports)[pair.client->TransportName()];
  }
}

absl::Status MeasureThroughput(
    const PairFactory& factory, const BenchOptions& options,
    absl::string_view label, StopSource* stop,
    const std::function<void(absl::string_view)>& progress,
    BenchFigures* figures, std::map<std::string, int>* transports) {
  absl::StatusOr<std::vector<StreamPair>> pairs = factory(options.clients);
  if (!pairs.ok()) return pairs.status();
  CountTransports(*pairs, transports);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> sent_messages{0};
  const std::string chunk(options.size, 'x');
  const size_t read_size = options.message_mode
                               ? options.size
                               : std::max<size_t>(options.size, 64 * 1024);
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  for (StreamPair& pair : *pairs) {
    StreamEnd* server = pair.server.get();
    StreamEnd* client = pair.client.get();
    threads.emplace_back([server, read_size, &received] {
      std::vector<char> buffer(std::max<size_t>(read_size, 1));
      while (true) {
        absl::StatusOr<size_t> n =
            server->Receive(absl::MakeSpan(buffer.data(), read_size));
        if (!n.ok() || (*n == 0 && read_size != 0)) return;
        received.fetch_add(*n, std::memory_order_relaxed);
        if (read_size == 0) return;
      }
    });
    threads.emplace_back([client, &chunk, &done, &sent_messages] {
      uint64_t count = 0;
      while (!done.load(std::memory_order_relaxed)) {
        if (!client->Send(chunk).ok()) break;
        ++count;
      }
      sent_messages.fetch_add(count);
      client->Close();  // the server sees end of stream
    });
  }
  const bool completed = RunFor(
      options.duration, stop,
      [&] {
        const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
        return absl::StrCat(label, " throughput: ",
                            Rate(received.load() / std::max(seconds, 1e-9)));
      },
      progress);
  done = true;
  for (std::thread& t : threads) t.join();
  if (!completed) return absl::CancelledError("canal bench: interrupted");
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  figures->bytes_per_second = received.load() / seconds;
  figures->messages_per_second = sent_messages.load() / seconds;
  return absl::OkStatus();
}

absl::Status MeasureLatency(
    const PairFactory& factory, const BenchOptions& options,
    absl::string_view label, StopSource* stop,
    const std::function<void(absl::string_view)>& progress,
    BenchFigures* figures, std::map<std::string, int>* transports) {
  absl::StatusOr<std::vector<StreamPair>> pairs = factory(options.clients);
  if (!pairs.ok()) return pairs.status();
  CountTransports(*pairs, transports);
  std::atomic<bool> done{false};
  std::atomic<int64_t> trips{0};
  std::vector<std::vector<double>> samples(pairs->size());
  std::vector<std::thread> threads;
  const size_t size = options.size;
  const absl::Time start = absl::Now();
  for (size_t i = 0; i < pairs->size(); ++i) {
    StreamEnd* server = (*pairs)[i].server.get();
    StreamEnd* client = (*pairs)[i].client.get();
    std::vector<double>* mine = &samples[i];
    threads.emplace_back([server, size] {
      std::string buffer(size, '\0');
      while (ReceiveExactly(*server, absl::MakeSpan(&buffer[0], size))) {
        if (!server->Send(buffer).ok()) return;
      }
    });
    threads.emplace_back([client, size, mine, &done, &trips] {
      const std::string ping(size, 'p');
      std::string pong(size, '\0');
      mine->reserve(1 << 16);
      while (!done.load(std::memory_order_relaxed)) {
        const absl::Time t0 = absl::Now();
        if (!client->Send(ping).ok() ||
            !ReceiveExactly(*client, absl::MakeSpan(&pong[0], size))) {
          break;
        }
        mine->push_back(absl::ToDoubleMicroseconds(absl::Now() - t0));
        trips.fetch_add(1, std::memory_order_relaxed);
      }
      client->Close();
    });
  }
  const bool completed = RunFor(
      options.duration, stop,
      [&] {
        const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
        return absl::StrCat(
            label, " round trips: ",
            absl::StrFormat("%.0f/s", trips.load() / std::max(seconds, 1e-9)));
      },
      progress);
  done = true;
  for (std::thread& t : threads) t.join();
  if (!completed) return absl::CancelledError("canal bench: interrupted");
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<double> all;
  for (const std::vector<double>& s : samples) {
    all.insert(all.end(), s.begin(), s.end());
  }
  std::sort(all.begin(), all.end());
  figures->round_trips = static_cast<int64_t>(all.size());
  figures->round_trips_per_second = all.size() / seconds;
  if (!all.empty()) {
    figures->latency_median_us = all[all.size() / 2];
    figures->latency_p99_us =
        all[std::min(all.size() - 1, (all.size() * 99) / 100)];
  }
  return absl::OkStatus();
}

double Ratio(double a, double b) { return b > 0 ? a / b : 0; }

const char* RequestedTransport(const BenchOptions& options) {
  return options.transport == canal::Transport::kSharedMemory ? "shm" : "pipe";
}

// "pipe (4 channel ends)" or "shared memory 3, pipe 1 (4 channel ends)".
std::string TransportsText(const std::map<std::string, int>& transports) {
  int total = 0;
  for (const auto& [name, count] : transports) total += count;
  std::string out;
  if (transports.size() == 1) {
    out = transports.begin()->first;
  } else {
    for (const auto& [name, count] : transports) {
      absl::StrAppend(&out, out.empty() ? "" : ", ", name, " ", count);
    }
  }
  absl::StrAppend(&out, " (", total, " channel end", total == 1 ? "" : "s",
                  ")");
  return out;
}

nlohmann::ordered_json FiguresJson(const BenchFigures& f) {
  nlohmann::ordered_json o;
  o["bytes_per_second"] = f.bytes_per_second;
  o["messages_per_second"] = f.messages_per_second;
  o["round_trips_per_second"] = f.round_trips_per_second;
  o["latency_median_us"] = f.latency_median_us;
  o["latency_p99_us"] = f.latency_p99_us;
  o["round_trips"] = f.round_trips;
  return o;
}

}  // namespace

absl::StatusOr<BenchReport> RunBench(
    const BenchOptions& options,
    const std::function<void(absl::string_view)>& progress, StopSource* stop) {
  BenchReport report;
  report.options = options;
  report.primitive = canal_raw::RawPrimitiveName();
  const PairFactory canal_pairs = [&options](int n) {
    return canal_raw::MakeCanalPairs(PairOptionsFor(options), n);
  };
  const PairFactory raw_pairs = [&options](int n) {
    return MakeRawPairs(options, n);
  };
  const std::string raw_label = report.primitive;
  absl::Status status =
      MeasureThroughput(canal_pairs, options, "canal", stop, progress,
                        &report.canal, &report.canal_transports);
  if (status.ok()) {
    status = MeasureThroughput(raw_pairs, options, raw_label, stop, progress,
                               &report.raw, nullptr);
  }
  if (status.ok()) {
    status = MeasureLatency(canal_pairs, options, "canal", stop, progress,
                            &report.canal, &report.canal_transports);
  }
  if (status.ok()) {
    status = MeasureLatency(raw_pairs, options, raw_label, stop, progress,
                            &report.raw, nullptr);
  }
  if (!status.ok()) return status;
  return report;
}

std::string ReportJson(const BenchReport& r) {
  nlohmann::ordered_json o;
  o["mode"] = r.options.message_mode ? "message" : "byte";
  o["size"] = r.options.size;
  o["clients"] = r.options.clients;
  o["duration_ms"] = absl::ToInt64Milliseconds(r.options.duration);
  o["transport"] = RequestedTransport(r.options);
  nlohmann::ordered_json& used = o["canal_transports"];
  used = nlohmann::ordered_json::object();
  for (const auto& [name, count] : r.canal_transports) used[name] = count;
  o["primitive"] = r.primitive;
  o["canal"] = FiguresJson(r.canal);
  o["raw"] = FiguresJson(r.raw);
  nlohmann::ordered_json& ratio = o["ratio"];
  ratio["throughput"] = Ratio(r.canal.bytes_per_second, r.raw.bytes_per_second);
  ratio["messages_per_second"] =
      Ratio(r.canal.messages_per_second, r.raw.messages_per_second);
  ratio["latency_median"] =
      Ratio(r.canal.latency_median_us, r.raw.latency_median_us);
  ratio["latency_p99"] = Ratio(r.canal.latency_p99_us, r.raw.latency_p99_us);
  return o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string ReportText(const BenchReport& r) {
  std::string out = absl::StrFormat(
      "canal bench: %s mode, %d-byte %s, %d client%s, %s per phase\n",
      r.options.message_mode ? "message" : "byte", r.options.size,
      r.options.message_mode ? "messages" : "writes", r.options.clients,
      r.options.clients == 1 ? "" : "s",
      absl::FormatDuration(r.options.duration));
  absl::StrAppend(&out, "canal transport: ", RequestedTransport(r.options),
                  " asked, used: ", TransportsText(r.canal_transports), "\n");
  absl::StrAppendFormat(&out, "%-22s %16s %16s %8s\n", "", "canal", r.primitive,
                        "ratio");
  auto row = [&out](const char* what, const std::string& a,
                    const std::string& b, double ratio) {
    absl::StrAppendFormat(&out, "%-22s %16s %16s %7.2fx\n", what, a, b, ratio);
  };
  row("throughput", Rate(r.canal.bytes_per_second),
      Rate(r.raw.bytes_per_second),
      Ratio(r.canal.bytes_per_second, r.raw.bytes_per_second));
  row("writes/s", absl::StrFormat("%.0f", r.canal.messages_per_second),
      absl::StrFormat("%.0f", r.raw.messages_per_second),
      Ratio(r.canal.messages_per_second, r.raw.messages_per_second));
  row("round trip median",
      absl::StrFormat("%.1f us", r.canal.latency_median_us),
      absl::StrFormat("%.1f us", r.raw.latency_median_us),
      Ratio(r.canal.latency_median_us, r.raw.latency_median_us));
  row("round trip p99", absl::StrFormat("%.1f us", r.canal.latency_p99_us),
      absl::StrFormat("%.1f us", r.raw.latency_p99_us),
      Ratio(r.canal.latency_p99_us, r.raw.latency_p99_us));
  row("round trips/s", absl::StrFormat("%.0f", r.canal.round_trips_per_second),
      absl::StrFormat("%.0f", r.raw.round_trips_per_second),
      Ratio(r.canal.round_trips_per_second, r.raw.round_trips_per_second));
  return out;
}

}  // namespace canal_cli
