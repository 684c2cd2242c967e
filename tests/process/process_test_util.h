// SPDX-License-Identifier: Apache-2.0
// Helpers for the process tests: where the child program is, and the
// pattern it writes.

#ifndef CANAL_TESTS_PROCESS_PROCESS_TEST_UTIL_H_
#define CANAL_TESTS_PROCESS_PROCESS_TEST_UTIL_H_

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_replace.h"

namespace canal_test {

// The path of tests/helper/canal_test_child from $CANAL_TEST_CHILD (set by
// meson). Under Wine the Unix path becomes its Z: drive form.
inline std::string ChildPath() {
  const char* path = std::getenv("CANAL_TEST_CHILD");
  std::string p = path != nullptr ? path : "";
#ifdef _WIN32
  if (!p.empty() && p[0] == '/') {
    p = "Z:" + absl::StrReplaceAll(p, {{"/", "\\"}});
  }
#endif
  return p;
}

// The child's argv for `args`.
inline std::vector<std::string> ChildArgv(std::vector<std::string> args) {
  args.insert(args.begin(), ChildPath());
  return args;
}

// What `canal_test_child write N` writes to stdout (stream 1) and stderr
// (stream 2).
inline std::string StreamPattern(size_t size, int stream) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    out[i] = static_cast<char>((i * 131 + i / 251 + stream * 17) & 0xff);
  }
  return out;
}

}  // namespace canal_test

#endif  // CANAL_TESTS_PROCESS_PROCESS_TEST_UTIL_H_
