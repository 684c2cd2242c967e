// SPDX-License-Identifier: Apache-2.0
// Helpers for the fault and load tests (tests/reliability/faults/): the child
// program, the process's descriptor / handle count, and a bounded poll for
// it.

#ifndef CANAL_TESTS_RELIABILITY_FAULTS_FAULTS_UTIL_H_
#define CANAL_TESTS_RELIABILITY_FAULTS_FAULTS_UTIL_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

#ifdef _WIN32
#include <windows.h>
#else
#include <dirent.h>
#endif

namespace canal_test {

// Open descriptors (/proc/self/fd, Linux) or handles (GetProcessHandleCount,
// Windows); -1 if the system cannot say. Wine's GetProcessHandleCount
// always reports 0, so there the valid handle values 4, 8, ... below 2^16
// are counted with GetHandleInformation instead (handle values are reused
// lowest first, so a process that does not leak stays far below 2^16).
inline int64_t OpenHandleCount() {
#ifdef _WIN32
  DWORD count = 0;
  if (GetProcessHandleCount(GetCurrentProcess(), &count) && count > 0) {
    return static_cast<int64_t>(count);
  }
  int64_t n = 0;
  for (uintptr_t value = 4; value < (1u << 16); value += 4) {
    DWORD flags = 0;
    if (GetHandleInformation(reinterpret_cast<HANDLE>(value), &flags)) ++n;
  }
  return n;
#else
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int64_t n = 0;
  while (readdir(dir) != nullptr) ++n;
  closedir(dir);
  return n - 3;  // ".", ".." and the directory's own descriptor.
#endif
}

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
