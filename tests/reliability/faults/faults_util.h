// SPDX-License-Identifier: Apache-2.0
// Helpers for the fault and load tests (tests/reliability/faults/): the child
// program and a bounded poll for the process's descriptor / handle count
// (canal_test::OpenHandleCount, test_util.h).

#ifndef CANAL_TESTS_RELIABILITY_FAULTS_FAULTS_UTIL_H_
#define CANAL_TESTS_RELIABILITY_FAULTS_FAULTS_UTIL_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "test_util.h"

namespace canal_test {

// Polls `cond` every millisecond until it holds or `bound` passed. Only for
// what nothing signals (the process's descriptor or handle count) or where
// a signal would disturb what is measured (handles_test.cc says why); wait
// for anything else on a real signal.
inline bool SleepPollUntil(const std::function<bool()>& cond,
                           absl::Duration bound) {
  const absl::Time deadline = absl::Now() + bound;
  while (!cond()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

// FNV-1a, the soak test's checksum.
inline uint64_t Fnv1a(const char* data, size_t size) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < size; ++i) {
    h ^= static_cast<unsigned char>(data[i]);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace canal_test

#endif  // CANAL_TESTS_RELIABILITY_FAULTS_FAULTS_UTIL_H_
