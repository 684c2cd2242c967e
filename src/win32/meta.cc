// SPDX-License-Identifier: Apache-2.0
#include "src/win32/meta.h"

#include <aclapi.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/internal/errors.h"
#include "src/internal/little_endian.h"
#include "src/win32/error.h"
#include "src/win32/names.h"
#include "src/win32/security.h"

namespace canal {
namespace internal {
namespace win32 {
namespace {

constexpr unsigned char kMagic[4] = {'C', 'N', 'L', 'M'};
constexpr uint32_t kVersion = 2;
constexpr DWORD kSize = 32;
constexpr size_t kMaxMessageOffset = 8;
constexpr size_t kStateOffset = 12;
constexpr size_t kPidOffset = 16;
constexpr size_t kFlagsOffset = 20;
constexpr uint32_t kFlagSharedMemory = 1;
constexpr size_t kCreationOffset = 24;
constexpr uint32_t kStateWriting = 0;
constexpr uint32_t kStateOpen = 1;
constexpr uint32_t kStateClosed = 2;

// The state word is written last (and first, when a stale section is
// reused) with a full barrier, so that a reader who sees "open" or
// "closed" also sees the fields written before it. Windows runs only on
// little-endian machines, so the LONG is the little-endian field.
void StoreState(void* view, uint32_t state) {
  InterlockedExchange(reinterpret_cast<volatile LONG*>(
                          static_cast<unsigned char*>(view) + kStateOffset),
                      static_cast<LONG>(state));
}

uint64_t FileTimeToU64(const FILETIME& t) {
  return (static_cast<uint64_t>(t.dwHighDateTime) << 32) | t.dwLowDateTime;
}

// When process `process` was created; 0 if that cannot be read.
uint64_t CreationTime(HANDLE process) {
  FILETIME created, exited, kernel, user;
  if (!GetProcessTimes(process, &created, &exited, &kernel, &user)) return 0;
  return FileTimeToU64(created);
}

// What a section says, copied out of the shared view.
struct Snapshot {
  uint32_t max_message_size = 0;
  uint32_t state = kStateWriting;
  uint32_t pid = 0;
  uint32_t flags = 0;
  uint64_t creation = 0;
};

// Parses a view of `size` bytes; false if it is not a version-2 section.
bool ReadSnapshot(const void* view, SIZE_T size, Snapshot* out) {
  if (size < kSize) return false;
  const unsigned char* shared = static_cast<const unsigned char*>(view);
  const LONG state =
      *reinterpret_cast<const volatile LONG*>(shared + kStateOffset);
  MemoryBarrier();
  unsigned char bytes[kSize];
  std::memcpy(bytes, shared, kSize);
  if (std::memcmp(bytes, kMagic, sizeof(kMagic)) != 0 ||
      static_cast<uint32_t>(GetLe(bytes + 4, 4)) != kVersion) {
    return false;
  }
  out->state = static_cast<uint32_t>(state);
  if (out->state != kStateWriting && out->state != kStateOpen &&
      out->state != kStateClosed) {
    return false;
  }
  out->max_message_size =
      static_cast<uint32_t>(GetLe(bytes + kMaxMessageOffset, 4));
  out->pid = static_cast<uint32_t>(GetLe(bytes + kPidOffset, 4));
  out->flags = static_cast<uint32_t>(GetLe(bytes + kFlagsOffset, 4));
  out->creation = GetLe(bytes + kCreationOffset, 8);
  return true;
}

enum class ProcessState { kRunning, kGone, kUnknown };

// Whether process `pid`, created at `creation`, still runs. A pid that now
// belongs to a process created at another time was reused: the recorded one
// is gone.
ProcessState CheckProcess(uint32_t pid, uint64_t creation) {
  if (pid == 0 || creation == 0) return ProcessState::kGone;
  ScopedHandle process(
      OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, FALSE,
                  static_cast<DWORD>(pid)));
  if (!process.valid()) {
    // ERROR_INVALID_PARAMETER: no process has this id. Anything else
    // (ERROR_ACCESS_DENIED: a process we may not inspect) proves nothing.
    return GetLastError() == ERROR_INVALID_PARAMETER ? ProcessState::kGone
                                                     : ProcessState::kUnknown;
  }
  if (WaitForSingleObject(process.get(), 0) == WAIT_OBJECT_0) {
    return ProcessState::kGone;  // Exited; someone still holds its handle.
  }
  const uint64_t created = CreationTime(process.get());
  if (created == 0) return ProcessState::kUnknown;
  return created == creation ? ProcessState::kRunning : ProcessState::kGone;
}

// Whether a section saying `snapshot` belongs to a listener that may still
// serve.
bool MayBeAlive(const Snapshot& snapshot) {
  return snapshot.state != kStateClosed &&
         CheckProcess(snapshot.pid, snapshot.creation) != ProcessState::kGone;
}

// A read-only view of the section for a pipe, if its owner is trusted.
class TrustedView {
 public:
  TrustedView(const std::wstring& pipe_path,
              const std::vector<std::wstring>& trusted_owners) {
    if (trusted_owners.empty()) return;
    const std::wstring name = ListenerMetaName(pipe_path);
    section_.reset(
        OpenFileMappingW(FILE_MAP_READ | READ_CONTROL, FALSE, name.c_str()));
    if (!section_.valid()) return;
    DWORD error = ERROR_SUCCESS;
    const std::wstring owner = KernelObjectOwnerSid(section_.get(), &error);
    if (owner.empty() || std::find(trusted_owners.begin(), trusted_owners.end(),
                                   owner) == trusted_owners.end()) {
      return;
    }
    view_ = MapViewOfFile(section_.get(), FILE_MAP_READ, 0, 0, 0);
    if (view_ == nullptr) return;
    MEMORY_BASIC_INFORMATION info;
    if (VirtualQuery(view_, &info, sizeof(info)) == sizeof(info)) {
      size_ = info.RegionSize;
    }
  }
  ~TrustedView() {
    if (view_ != nullptr) UnmapViewOfFile(view_);
  }
  TrustedView(const TrustedView&) = delete;
  TrustedView& operator=(const TrustedView&) = delete;

  // False if there is no trusted, well-formed section.
  bool Read(Snapshot* snapshot) const {
    return view_ != nullptr && ReadSnapshot(view_, size_, snapshot);
  }

 private:
  ScopedHandle section_;
  void* view_ = nullptr;
  SIZE_T size_ = 0;
};

}  // namespace

std::wstring ListenerMetaName(const std::wstring& pipe_path) {
  // Pipe names are case-insensitive, section names are not: hash the
  // upper-cased path (FNV-1a, 64 bits) into a fixed-length name.
  std::wstring upper = pipe_path;
  if (!upper.empty()) {
    CharUpperBuffW(&upper[0], static_cast<DWORD>(upper.size()));
  }
  uint64_t hash = 0xcbf29ce484222325ull;
  for (wchar_t c : upper) {
    hash ^= static_cast<uint16_t>(c);
    hash *= 0x100000001b3ull;
  }
  static const wchar_t kHex[] = L"0123456789abcdef";
  std::wstring name = L"Local\\canal-pipe-meta-";
  for (int shift = 60; shift >= 0; shift -= 4) {
    name.push_back(kHex[(hash >> shift) & 0xf]);
  }
  return name;
}

PublishedMeta::PublishedMeta(ScopedHandle section, void* view)
    : section_(std::move(section)), view_(view) {}

PublishedMeta::~PublishedMeta() {
  MarkClosed();
  UnmapViewOfFile(view_);
}

void PublishedMeta::MarkClosed() {
  if (closed_) return;
  closed_ = true;
  StoreState(view_, kStateClosed);
}

absl::StatusOr<std::unique_ptr<PublishedMeta>> PublishedMeta::Publish(
    const std::wstring& pipe_path, absl::string_view name,
    uint32_t max_message_size, bool offers_shared_memory,
    SECURITY_ATTRIBUTES* security_attributes, const std::wstring& own_sid) {
  const std::wstring section_name = ListenerMetaName(pipe_path);
  const std::string printable = WideToUtf8(section_name.c_str());
  ScopedHandle section(CreateFileMappingW(INVALID_HANDLE_VALUE,
                                          security_attributes, PAGE_READWRITE,
                                          0, kSize, section_name.c_str()));
  const DWORD error = GetLastError();
  if (!section.valid()) {
    if (error == ERROR_ACCESS_DENIED) {
      return MakeError(
          absl::StatusCode::kAlreadyExists, "Listen", name,
          absl::StrCat("another user holds this listener's "
                       "metadata section ",
                       printable, " and denies this user access to it"),
          DescribeWin32Error(error));
    }
    return Win32Status(error, ErrorContext::kGeneric, "Listen", name,
                       "cannot create the listener's metadata section");
  }
  const bool existed = error == ERROR_ALREADY_EXISTS;
  if (existed) {
    DWORD owner_error = ERROR_SUCCESS;
    const std::wstring owner =
        KernelObjectOwnerSid(section.get(), &owner_error);
    if (owner != own_sid) {
      return MakeError(
          absl::StatusCode::kAlreadyExists, "Listen", name,
          absl::StrCat("the metadata section ", printable,
                       " already exists and is owned by ",
                       owner.empty() ? std::string("an unreadable owner")
                                     : SidToUtf8(owner),
                       ", not by this listener's user ", SidToUtf8(own_sid),
                       "; refusing to use it (clients would not trust it)"),
          owner.empty() ? DescribeWin32Error(owner_error) : std::string());
    }
  }
  void* view =
      MapViewOfFile(section.get(), FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
  if (view == nullptr) {
    return Win32Status(GetLastError(), ErrorContext::kGeneric, "Listen", name,
                       "cannot map the listener's metadata section");
  }
  std::unique_ptr<PublishedMeta> meta(
      new PublishedMeta(std::move(section), view));
  MEMORY_BASIC_INFORMATION info;
  if (VirtualQuery(view, &info, sizeof(info)) != sizeof(info) ||
      info.RegionSize < kSize) {
    meta->closed_ = true;  // Not ours to write.
    return MakeError(absl::StatusCode::kAlreadyExists, "Listen", name,
                     absl::StrCat("the metadata section ", printable,
                                  " already exists and is too small"));
  }
  if (existed) {
    Snapshot snapshot;
    if (ReadSnapshot(view, info.RegionSize, &snapshot) &&
        MayBeAlive(snapshot)) {
      meta->closed_ = true;  // Not ours to write.
      return MakeError(
          absl::StatusCode::kAlreadyExists, "Listen", name,
          absl::StrCat("a listener in process ", snapshot.pid,
                       " still publishes this name's metadata section ",
                       printable));
    }
    // Our own stale section (a closed or crashed listener's, still held by
    // some process): take it over, with this listener's DACL.
    BOOL present = FALSE;
    BOOL defaulted = FALSE;
    PACL dacl = nullptr;
    if (security_attributes != nullptr &&
        GetSecurityDescriptorDacl(security_attributes->lpSecurityDescriptor,
                                  &present, &dacl, &defaulted) &&
        present) {
      const DWORD set_error = SetSecurityInfo(
          meta->section_.get(), SE_KERNEL_OBJECT,
          DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
          nullptr, nullptr, dacl, nullptr);
      if (set_error != ERROR_SUCCESS) {
        meta->closed_ = true;
        return Win32Status(set_error, ErrorContext::kGeneric, "Listen", name,
                           absl::StrCat("cannot reset the DACL of the stale "
                                        "metadata section ",
                                        printable));
      }
    }
  }
  unsigned char* bytes = static_cast<unsigned char*>(view);
  StoreState(view, kStateWriting);
  std::memcpy(bytes, kMagic, sizeof(kMagic));
  PutLe(bytes + 4, kVersion, 4);
  PutLe(bytes + kMaxMessageOffset, max_message_size, 4);
  PutLe(bytes + kPidOffset, GetCurrentProcessId(), 4);
  PutLe(bytes + kFlagsOffset, offers_shared_memory ? kFlagSharedMemory : 0, 4);
  PutLe(bytes + kCreationOffset, CreationTime(GetCurrentProcess()), 8);
  StoreState(view, kStateOpen);
  return meta;
}

Liveness ListenerLiveness(const std::wstring& pipe_path,
                          const std::vector<std::wstring>& trusted_owners) {
  TrustedView view(pipe_path, trusted_owners);
  Snapshot snapshot;
  if (!view.Read(&snapshot)) return Liveness::kUnknown;
  return MayBeAlive(snapshot) ? Liveness::kAlive : Liveness::kClosed;
}

ListenerInfo ReadListenerInfo(const std::wstring& pipe_path,
                              const std::wstring& server_sid,
                              uint32_t server_pid) {
  ListenerInfo info;
  if (server_sid.empty()) return info;
  TrustedView view(pipe_path, {server_sid});
  Snapshot snapshot;
  if (!view.Read(&snapshot)) return info;
  if (snapshot.max_message_size != 0) {
    info.max_message_size = snapshot.max_message_size;
  }
  info.shared_memory = (snapshot.flags & kFlagSharedMemory) != 0 &&
                       snapshot.state == kStateOpen && server_pid != 0 &&
                       snapshot.pid == server_pid;
  return info;
}

}  // namespace win32
}  // namespace internal
}  // namespace canal
