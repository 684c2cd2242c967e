// SPDX-License-Identifier: Apache-2.0
// Shared-memory objects for the shared-memory transport: unnamed,
// pagefile-backed sections. Without a name, a section can only reach
// another process through a duplicated handle, so no other user can open or
// squat it, and it disappears with the last handle and view, crash or not.
//
// A section the peer sends is not trusted. A view larger than the section
// cannot be mapped at all, and a section's size never shrinks; but a section
// created with SEC_RESERVE has pages that are only reserved, and touching
// one faults. So every page of the view must be committed and writable
// before it is used; committed pages of a mapped section cannot be
// decommitted again, so the check holds for the mapping's life.
#include <windows.h>

#include <cstdint>
#include <memory>
#include <new>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "src/internal/backend.h"
#include "src/internal/errors.h"
#include "src/win32/error.h"
#include "src/win32/io.h"

namespace canal {
namespace internal {
namespace win32 {
namespace {

constexpr absl::string_view kCreateOp = "CreateSharedMemory";
constexpr absl::string_view kMapOp = "MapSharedMemory";

class Win32SharedMemory final : public SharedMemoryImpl {
 public:
  Win32SharedMemory(ScopedHandle section, char* base, size_t size)
      : section_(std::move(section)), base_(base), size_(size) {}
  ~Win32SharedMemory() override { UnmapViewOfFile(base_); }

  absl::Span<char> memory() const override {
    return absl::Span<char>(base_, size_);
  }
  NativeHandle handle() const override {
    return section_.valid() ? section_.get() : nullptr;
  }
  void CloseHandle() override { section_.reset(); }

 private:
  ScopedHandle section_;
  char* const base_;
  const size_t size_;
};

absl::Status CheckSize(absl::string_view op, absl::string_view name,
                       size_t size) {
  if (size == 0 || size > SIZE_MAX / 2) {
    return MakeError(absl::StatusCode::kInvalidArgument, op, name,
                     absl::StrCat("a shared-memory object of ", size,
                                  " bytes cannot be mapped"));
  }
  return absl::OkStatus();
}

// True when every page of [base, base + size) is committed and writable.
bool WholeViewIsUsable(const char* base, size_t size) {
  size_t checked = 0;
  while (checked < size) {
    MEMORY_BASIC_INFORMATION info;
    if (VirtualQuery(base + checked, &info, sizeof(info)) != sizeof(info)) {
      return false;
    }
    if (info.State != MEM_COMMIT ||
        (info.Protect & (PAGE_READWRITE | PAGE_WRITECOPY)) == 0 ||
        (info.Protect & (PAGE_GUARD | PAGE_NOACCESS)) != 0) {
      return false;
    }
    const char* region_end =
        static_cast<const char*>(info.BaseAddress) + info.RegionSize;
    if (region_end <= base + checked) return false;
    checked = static_cast<size_t>(region_end - base);
  }
  return true;
}

absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> MapSection(
    absl::string_view op, absl::string_view name, ScopedHandle section,
    size_t size) {
  void* base =
      MapViewOfFile(section.get(), FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, size);
  if (base == nullptr) {
    Win32Error error = GetLastError();
    // A handle that is not a writable section of at least `size` bytes.
    if (error == ERROR_ACCESS_DENIED || error == ERROR_INVALID_HANDLE ||
        error == ERROR_INVALID_PARAMETER) {
      return MakeError(absl::StatusCode::kFailedPrecondition, op, name,
                       "the handle is not a writable shared-memory section "
                       "of the agreed size",
                       DescribeWin32Error(error));
    }
    return Win32Status(error, ErrorContext::kGeneric, op, name,
                       "mapping the shared-memory section");
  }
  if (!WholeViewIsUsable(static_cast<const char*>(base), size)) {
    UnmapViewOfFile(base);
    return MakeError(absl::StatusCode::kFailedPrecondition, op, name,
                     "the shared-memory section has pages that are not "
                     "committed and writable");
  }
  std::unique_ptr<SharedMemoryImpl> memory(new (std::nothrow) Win32SharedMemory(
      std::move(section), static_cast<char*>(base), size));
  if (!memory) {
    UnmapViewOfFile(base);
    return OutOfMemoryError(op, name);
  }
  return memory;
}

}  // namespace
}  // namespace win32

absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> BackendCreateSharedMemory(
    absl::string_view name, size_t size) {
  if (absl::Status ok = win32::CheckSize(win32::kCreateOp, name, size);
      !ok.ok()) {
    return ok;
  }
  const uint64_t size64 = size;
  // No name and no inheritable handle: see the file comment.
  win32::ScopedHandle section(CreateFileMappingW(
      INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE | SEC_COMMIT,
      static_cast<DWORD>(size64 >> 32), static_cast<DWORD>(size64), nullptr));
  if (!section.valid()) {
    return win32::Win32Status(GetLastError(), win32::ErrorContext::kGeneric,
                              win32::kCreateOp, name,
                              "creating a shared-memory section");
  }
  return win32::MapSection(win32::kCreateOp, name, std::move(section), size);
}

absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> BackendMapSharedMemory(
    absl::string_view name, NativeHandle handle, size_t size) {
  win32::ScopedHandle section(handle);
  if (!section.valid()) {
    return MakeError(absl::StatusCode::kInvalidArgument, win32::kMapOp, name,
                     "no section handle");
  }
  if (absl::Status ok = win32::CheckSize(win32::kMapOp, name, size); !ok.ok()) {
    return ok;
  }
  return win32::MapSection(win32::kMapOp, name, std::move(section), size);
}

}  // namespace internal
}  // namespace canal
