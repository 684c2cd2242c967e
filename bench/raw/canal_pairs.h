// SPDX-License-Identifier: Apache-2.0
// canal's side of the comparison that `canal bench` and bench/ make:
// canal::Channel pairs behind the same StreamEnd interface as the raw
// primitives (raw.h).
//
//   canal_raw::PairOptions options;
//   absl::StatusOr<std::vector<canal_raw::StreamPair>> pairs =
//       canal_raw::MakeCanalPairs(options, 4);

#ifndef CANAL_BENCH_RAW_CANAL_PAIRS_H_
#define CANAL_BENCH_RAW_CANAL_PAIRS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "bench/raw/raw.h"

namespace canal_raw {

// Creates `count` connected canal channel pairs on a fresh listener with a
// unique name, in the mode and with the buffer and message sizes of
// `options` (clients connected, servers accepted; the listener is closed
// again, which leaves the channels open). With `options.shared_memory`
// each pair has made one exchange each way (see PairOptions). Returns the
// error of Listener::Create, Channel::Connect, Listener::Accept or of that
// exchange.
absl::StatusOr<std::vector<StreamPair>> MakeCanalPairs(
    const PairOptions& options, int count);

}  // namespace canal_raw

#endif  // CANAL_BENCH_RAW_CANAL_PAIRS_H_
