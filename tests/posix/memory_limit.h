// SPDX-License-Identifier: Apache-2.0
// Set-up for the POSIX tests that run canal in a forked child whose address
// space is limited (setrlimit(RLIMIT_AS)), so that an allocation canal
// should not make fails at once instead of going unnoticed: whether a
// sanitizer's allocator runs, the child's memory figures, the limit, the
// fork and the child's checks.

#ifndef CANAL_TESTS_POSIX_MEMORY_LIMIT_H_
#define CANAL_TESTS_POSIX_MEMORY_LIMIT_H_

#include <sys/resource.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <functional>

#include "posix/other_user.h"

namespace canal_test {

// Whether AddressSanitizer or ThreadSanitizer runs. Their allocators
// reserve shadow memory (no address-space limit leaves room for it), keep
// freed memory in quarantine and abort instead of throwing std::bad_alloc.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitizedAllocator = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kSanitizedAllocator = true;
#else
inline constexpr bool kSanitizedAllocator = false;
#endif
#else
inline constexpr bool kSanitizedAllocator = false;
#endif

// This process's virtual and resident size in bytes (/proc/self/statm);
// both 0 if it cannot be read.
struct MemoryUse {
  size_t virtual_bytes = 0;
  size_t resident_bytes = 0;
};

inline MemoryUse ReadMemoryUse() {
  MemoryUse use;
  FILE* f = std::fopen("/proc/self/statm", "re");
  if (f == nullptr) return use;
  unsigned long size = 0, resident = 0;
  if (std::fscanf(f, "%lu %lu", &size, &resident) == 2) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    use.virtual_bytes = size * page;
    use.resident_bytes = resident * page;
  }
  std::fclose(f);
  return use;
}

// Lets this process's address space grow by `headroom` bytes from now on.
// False if the size cannot be read or setrlimit fails.
inline bool LimitAddressSpace(size_t headroom) {
  const size_t now = ReadMemoryUse().virtual_bytes;
  if (now == 0) return false;
  rlimit limit;
  limit.rlim_cur = limit.rlim_max = now + headroom;
  return setrlimit(RLIMIT_AS, &limit) == 0;
}

// LimitAddressSpace, but under a sanitizer (kSanitizedAllocator) it sets
// nothing and returns true: the limit would test the sanitizer's allocator,
// not canal.
inline bool LimitAddressSpaceUnlessSanitized(size_t headroom) {
  return kSanitizedAllocator || LimitAddressSpace(headroom);
}

// Runs `body` in a forked child and returns its exit code (200 + signal if
// a signal ended it, -1 if fork failed). An exception escaping `body` ends
// the child as it would end any program (std::terminate: SIGABRT), instead
// of unwinding into the test framework, which would go on running tests in
// the child.
inline int RunInChild(const std::function<int()>& body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    [&]() noexcept { _exit(body()); }();
  }
  if (pid < 0) return -1;
  return WaitExit(pid);
}

}  // namespace canal_test

// In a child's body: unless `cond` holds, prints "child: <format...> (line
// N)" to stderr and returns `code` (the child's exit code).
#define CHILD_CHECK(cond, code, ...)                  \
  do {                                                \
    if (!(cond)) {                                    \
      std::fprintf(stderr, "child: " __VA_ARGS__);    \
      std::fprintf(stderr, " (line %d)\n", __LINE__); \
      return code;                                    \
    }                                                 \
  } while (false)

#endif  // CANAL_TESTS_POSIX_MEMORY_LIMIT_H_
