#include "src/win32/meta.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/internal/errors.h"
#include "src/win32/error.h"
#include "src/win32/names.h"

namespace canal {
namespace internal {
namespace win32 {
namespace {

constexpr unsigned char kMagic[4] = {'C', 'N', 'L', 'M'};
constexpr uint32_t kVersion = 1;
constexpr DWORD kSize = 12;

void PutU32(unsigned char* out, uint32_t v) {
  out[0] = static_cast<unsigned char>(v & 0xff);
  out[1] = static_cast<unsigned char>((v >> 8) & 0xff);
  out[2] = static_cast<unsigned char>((v >> 16) & 0xff);
  out[3] = static_cast<unsigned char>((v >> 24) & 0xff);
}

uint32_t GetU32(const unsigned char* in) {
  return static_cast<uint32_t>(in[0]) | (static_cast<uint32_t>(in[1]) << 8) |
         (static_cast<uint32_t>(in[2]) << 16) |
         (static_cast<uint32_t>(in[3]) << 24);
}

// Pipe names are case-insensitive, section names are not: hash the
// upper-cased path (FNV-1a, 64 bits) into a fixed-length name.
std::wstring SectionName(const std::wstring& pipe_path) {
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

}  // namespace

absl::StatusOr<ScopedHandle> PublishListenerMeta(
    const std::wstring& pipe_path, absl::string_view name,
    uint32_t max_message_size, SECURITY_ATTRIBUTES* security_attributes) {
  const std::wstring section_name = SectionName(pipe_path);
  ScopedHandle section(CreateFileMappingW(INVALID_HANDLE_VALUE,
                                          security_attributes, PAGE_READWRITE,
                                          0, kSize, section_name.c_str()));
  const DWORD error = GetLastError();
  if (section.valid() && error == ERROR_ALREADY_EXISTS) {
    return MakeError(absl::StatusCode::kAlreadyExists, "Listen", name,
                     absl::StrCat("another process already created this "
                                  "listener's metadata section ",
                                  WideToUtf8(section_name.c_str()),
                                  "; refusing to trust or use it"),
                     DescribeWin32Error(error));
  }
  if (!section.valid()) {
    if (error == ERROR_ACCESS_DENIED) {
      return MakeError(absl::StatusCode::kAlreadyExists, "Listen", name,
                       absl::StrCat("another user holds this listener's "
                                    "metadata section ",
                                    WideToUtf8(section_name.c_str())),
                       DescribeWin32Error(error));
    }
    return Win32Status(error, ErrorContext::kGeneric, "Listen", name,
                       "cannot create the listener's metadata section");
  }
  void* view = MapViewOfFile(section.get(), FILE_MAP_WRITE, 0, 0, kSize);
  if (view == nullptr) {
    return Win32Status(GetLastError(), ErrorContext::kGeneric, "Listen", name,
                       "cannot map the listener's metadata section");
  }
  unsigned char* bytes = static_cast<unsigned char*>(view);
  std::memcpy(bytes, kMagic, 4);
  PutU32(bytes + 4, kVersion);
  PutU32(bytes + 8, max_message_size);
  UnmapViewOfFile(view);
  return section;
}

bool ListenerMetaExists(const std::wstring& pipe_path) {
  const std::wstring name = SectionName(pipe_path);
  ScopedHandle section(OpenFileMappingW(FILE_MAP_READ, FALSE, name.c_str()));
  return section.valid();
}

uint32_t ReadListenerMaxMessageSize(const std::wstring& pipe_path) {
  const std::wstring name = SectionName(pipe_path);
  ScopedHandle section(OpenFileMappingW(FILE_MAP_READ, FALSE, name.c_str()));
  uint32_t result = 0xffffffffu;
  if (!section.valid()) return result;
  const void* view = MapViewOfFile(section.get(), FILE_MAP_READ, 0, 0, kSize);
  if (view == nullptr) return result;
  const unsigned char* bytes = static_cast<const unsigned char*>(view);
  if (std::memcmp(bytes, kMagic, 4) == 0 && GetU32(bytes + 4) == kVersion) {
    const uint32_t published = GetU32(bytes + 8);
    if (published > 0) result = published;
  }
  UnmapViewOfFile(view);
  return result;
}

}  // namespace win32
}  // namespace internal
}  // namespace canal
