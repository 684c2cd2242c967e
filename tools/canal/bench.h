// SPDX-License-Identifier: Apache-2.0
// `canal bench`: measures canal against the raw system primitive (see
// bench/raw/raw.h) in the same run, the same way: throughput with clients
// streaming writes of one size, and round-trip latency with clients doing
// ping-pong. bench_command.cc turns the command line into BenchOptions.

#ifndef CANAL_TOOLS_CANAL_BENCH_H_
#define CANAL_TOOLS_CANAL_BENCH_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "canal/types.h"
#include "tools/canal/stop_source.h"

namespace canal_cli {

// What to measure.
struct BenchOptions {
  bool message_mode = false;  // Message mode instead of byte mode.
  size_t size = 4096;         // Bytes per write (and per ping).
  int clients = 1;            // Concurrent client/server pairs.
  absl::Duration duration = absl::Seconds(1);  // Per phase and transport.
  size_t buffer_size = 0;  // ListenerOptions::buffer_size, and the same for
                           // the raw primitive; 0: each side's default.
  // ListenerOptions::transport of canal's listener. kSharedMemory: each
  // canal pair makes one exchange each way before it is timed.
  canal::Transport transport = canal::Transport::kPipe;
};

// The figures for one transport.
struct BenchFigures {
  double bytes_per_second = 0;        // Throughput phase.
  double messages_per_second = 0;     // Throughput phase: writes per second.
  double round_trips_per_second = 0;  // Latency phase, all clients.
  double latency_median_us = 0;       // Latency phase.
  double latency_p99_us = 0;          // Latency phase.
  int64_t round_trips = 0;            // Latency samples taken.
};

// canal and the raw primitive side by side.
struct BenchReport {
  BenchOptions options;
  std::string primitive;  // RawPrimitiveName().
  BenchFigures canal;
  BenchFigures raw;
  // How many canal channel ends (both ends of every pair, both phases) used
  // each transport, by StreamEnd::TransportName(), as they were when timing
  // began.
  std::map<std::string, int> canal_transports;
};

// Runs the four measurements (canal and raw, throughput and latency), each
// for `options.duration`. `progress`, if set, gets a one-line status about
// ten times a second. Returns Cancelled if `stop` is stopped meanwhile.
absl::StatusOr<BenchReport> RunBench(
    const BenchOptions& options,
    const std::function<void(absl::string_view)>& progress, StopSource* stop);

// The report as one JSON object on one line: "mode", "size", "clients",
// "duration_ms", "transport" (the one asked for: "pipe" or "shm"),
// "canal_transports" (BenchReport::canal_transports, keys "pipe" and
// "shared memory"), "primitive", "canal" and "raw" (each with the
// BenchFigures fields), and "ratio" (canal / raw for "throughput",
// "messages_per_second", "latency_median" and "latency_p99").
std::string ReportJson(const BenchReport& report);

// The report as a small table for people.
std::string ReportText(const BenchReport& report);

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_BENCH_H_
