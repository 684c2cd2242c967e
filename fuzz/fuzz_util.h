// SPDX-License-Identifier: Apache-2.0
// Helpers shared by canal's libFuzzer targets (POSIX only).
#ifndef CANAL_FUZZ_FUZZ_UTIL_H_
#define CANAL_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace canal_fuzz {

// Creates a private runtime dir (mode 0700) once per process, points
// CANAL_RUNTIME_DIR at it and returns its path.
const std::string& RuntimeDir();

// Prints `what` and `status` to stderr and aborts (libFuzzer then saves the
// input as a crash).
[[noreturn]] void Fail(absl::string_view what, const absl::Status& status);
[[noreturn]] void Fail(absl::string_view what);

// Connects a plain Unix stream socket to `path`; -1 on failure.
int RawConnect(const std::string& path);

// Writes all of `data` to `fd` (blocking); false if the peer went away.
bool WriteAll(int fd, absl::string_view data);

}  // namespace canal_fuzz

#endif  // CANAL_FUZZ_FUZZ_UTIL_H_
