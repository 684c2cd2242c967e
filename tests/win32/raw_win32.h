// SPDX-License-Identifier: Apache-2.0
// Raw Win32 pipe code for the Win32-only tests: it talks
// to canal, so that canal is checked against what any Windows program does.
// Pipe names and the Wine check come from canal_test (tests/test_util.h).

#ifndef CANAL_TESTS_WIN32_RAW_WIN32_H_
#define CANAL_TESTS_WIN32_RAW_WIN32_H_

#include <windows.h>

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace canal_win32_test {

// `\\.\pipe\<name>` as UTF-16.
std::wstring PipePath(absl::string_view name);

// Owns a HANDLE.
class Handle {
 public:
  Handle() = default;
  explicit Handle(HANDLE h) : h_(h) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : h_(o.h_) { o.h_ = INVALID_HANDLE_VALUE; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = o.h_;
      o.h_ = INVALID_HANDLE_VALUE;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  HANDLE get() const { return h_; }
  bool valid() const { return h_ != INVALID_HANDLE_VALUE && h_ != nullptr; }
  void reset() {
    if (valid()) CloseHandle(h_);
    h_ = INVALID_HANDLE_VALUE;
  }

 private:
  HANDLE h_ = INVALID_HANDLE_VALUE;
};

// A plain synchronous client: CreateFileW(access) on the pipe, switched to
// message read mode if `message_read_mode`. Sets *error on failure.
Handle OpenRawClient(absl::string_view name, DWORD access,
                     bool message_read_mode, DWORD* error);

// The user SID of this process ("S-1-5-21-..."); "" if it cannot be read.
std::string CurrentUserSid();

// When `process` was created (a FILETIME as 64 bits); 0 on failure.
uint64_t ProcessCreationTime(HANDLE process);

// The name of the section in which a canal listener of `name` publishes its
// limits and liveness: `Local\canal-pipe-meta-<FNV-1a 64 of the
// upper-cased \\.\pipe\ path>`. Written out here, not taken from the
// library, so that a change to this cross-process format fails a test.
std::wstring MetaSectionName(absl::string_view name);

// What a listener writes into that section (version 2, 32 bytes). Flag
// bit 0: it sends each client a shared-memory offer first.
enum class MetaState : uint32_t { kWriting = 0, kOpen = 1, kClosed = 2 };
inline constexpr uint32_t kMetaSharedMemory = 1;
std::string MetaBytes(uint32_t max_message_size, MetaState state, uint32_t pid,
                      uint64_t creation_time, uint32_t flags = 0);

}  // namespace canal_win32_test

#endif  // CANAL_TESTS_WIN32_RAW_WIN32_H_
