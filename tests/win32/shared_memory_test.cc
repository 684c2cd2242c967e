// SPDX-License-Identifier: Apache-2.0
// The Win32 shared-memory objects of the shared-memory transport
// (src/win32/shared_memory.cc): unnamed, not inheritable sections, and what
// a mapping side refuses from a hostile peer so that no later access can
// fault.
#include <windows.h>

#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "src/internal/backend.h"

namespace canal {
namespace internal {
namespace {

constexpr absl::string_view kName = "shm-test-pipe";
constexpr size_t kSize = 4 * 4096;

HANDLE Duplicate(HANDLE handle) {
  HANDLE copy = nullptr;
  if (!DuplicateHandle(GetCurrentProcess(), handle, GetCurrentProcess(), &copy,
                       0, FALSE, DUPLICATE_SAME_ACCESS)) {
    return nullptr;
  }
  return copy;
}

bool IsOpen(HANDLE handle) {
  DWORD flags = 0;
  return GetHandleInformation(handle, &flags) != 0;
}

void ExpectRefusedNamingTheCall(const absl::Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("MapSharedMemory"), absl::string_view::npos)
      << status;
  EXPECT_NE(status.message().find(kName), absl::string_view::npos) << status;
}

TEST(Win32SharedMemoryTest, CreatedSectionIsNotInheritableZeroedAndShared) {
  auto created = BackendCreateSharedMemory(kName, kSize);
  ASSERT_TRUE(created.ok()) << created.status();
  SharedMemoryImpl& mine = **created;
  ASSERT_EQ(mine.memory().size(), kSize);
  for (char c : mine.memory()) ASSERT_EQ(c, 0);
  HANDLE section = mine.handle();
  DWORD flags = 0;
  ASSERT_TRUE(GetHandleInformation(section, &flags));
  EXPECT_EQ(flags & HANDLE_FLAG_INHERIT, 0u);

  std::memcpy(mine.memory().data(), "from creator", 12);
  HANDLE copy = Duplicate(section);
  ASSERT_NE(copy, nullptr);
  auto mapped = BackendMapSharedMemory(kName, copy, kSize);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_EQ(std::string((*mapped)->memory().data(), 12), "from creator");

  // Closing both handles keeps both views, as the transport needs once the
  // peer has its own.
  mine.CloseHandle();
  (*mapped)->CloseHandle();
  EXPECT_EQ(mine.handle(), nullptr);
  std::memcpy((*mapped)->memory().data() + kSize - 6, "mapper", 6);
  EXPECT_EQ(std::string(mine.memory().data() + kSize - 6, 6), "mapper");
}

TEST(Win32SharedMemoryTest, SectionSmallerThanAgreedIsRefused) {
  auto created = BackendCreateSharedMemory(kName, kSize);
  ASSERT_TRUE(created.ok()) << created.status();
  HANDLE copy = Duplicate((*created)->handle());
  ASSERT_NE(copy, nullptr);
  ExpectRefusedNamingTheCall(
      BackendMapSharedMemory(kName, copy, 2 * kSize).status());
  EXPECT_FALSE(IsOpen(copy));
}

TEST(Win32SharedMemoryTest, ReservedButUncommittedSectionIsRefused) {
  // Touching a page that is only reserved faults, so such a section must
  // never reach the ring code.
  HANDLE section =
      CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr,
                         PAGE_READWRITE | SEC_RESERVE, 0, kSize, nullptr);
  ASSERT_NE(section, nullptr);
  ExpectRefusedNamingTheCall(
      BackendMapSharedMemory(kName, section, kSize).status());
  EXPECT_FALSE(IsOpen(section));
}

TEST(Win32SharedMemoryTest, ReadOnlySectionAndOtherHandlesAreRefused) {
  HANDLE read_only = CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr,
                                        PAGE_READONLY, 0, kSize, nullptr);
  ASSERT_NE(read_only, nullptr);
  ExpectRefusedNamingTheCall(
      BackendMapSharedMemory(kName, read_only, kSize).status());
  EXPECT_FALSE(IsOpen(read_only));

  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  ASSERT_NE(event, nullptr);
  absl::Status status = BackendMapSharedMemory(kName, event, kSize).status();
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("MapSharedMemory"), absl::string_view::npos)
      << status;
  EXPECT_FALSE(IsOpen(event));
}

TEST(Win32SharedMemoryTest, BadSizesAndHandlesAreInvalidArgument) {
  EXPECT_EQ(BackendCreateSharedMemory(kName, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BackendCreateSharedMemory(kName, ~size_t{0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BackendMapSharedMemory(kName, nullptr, kSize).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto created = BackendCreateSharedMemory(kName, kSize);
  ASSERT_TRUE(created.ok()) << created.status();
  HANDLE copy = Duplicate((*created)->handle());
  ASSERT_NE(copy, nullptr);
  EXPECT_EQ(BackendMapSharedMemory(kName, copy, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(IsOpen(copy));
}

}  // namespace
}  // namespace internal
}  // namespace canal
