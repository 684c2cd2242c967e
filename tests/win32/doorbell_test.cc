// SPDX-License-Identifier: Apache-2.0
// The Win32 doorbells of the shared-memory transport (src/win32/
// doorbell.cc): an event per doorbell, one side created, the other opened
// from a duplicate, and what the opening side refuses from a hostile peer.
#include <windows.h>

#include <atomic>
#include <cstdint>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "src/internal/backend.h"

namespace canal {
namespace internal {
namespace {

constexpr absl::string_view kName = "doorbell-test-pipe";

HANDLE Duplicate(HANDLE handle, DWORD access, DWORD options) {
  HANDLE copy = nullptr;
  if (!DuplicateHandle(GetCurrentProcess(), handle, GetCurrentProcess(), &copy,
                       access, FALSE, options)) {
    return nullptr;
  }
  return copy;
}

bool IsOpen(HANDLE handle) {
  DWORD flags = 0;
  return GetHandleInformation(handle, &flags) != 0;
}

TEST(Win32DoorbellTest, WakeFromTheCreatorEndsTheOpenedSidesWait) {
  auto created = BackendCreateDoorbell(kName);
  ASSERT_TRUE(created.ok()) << created.status();
  DWORD flags = 0;
  ASSERT_TRUE(GetHandleInformation((*created)->handle(), &flags));
  EXPECT_EQ(flags & HANDLE_FLAG_INHERIT, 0u);
  auto opened = BackendOpenDoorbell(
      kName, Duplicate((*created)->handle(), 0, DUPLICATE_SAME_ACCESS));
  ASSERT_TRUE(opened.ok()) << opened.status();

  std::atomic<uint32_t> word{0};
  for (int round = 0; round < 50; ++round) {
    word.store(0);
    std::thread waiter([&] {
      // A day's timeout: only the wake (or the word already changed) ends
      // it.
      while (word.load() == 0) (*opened)->Wait(word, 0, absl::Hours(24));
    });
    word.store(1);
    (*created)->Wake(word);
    waiter.join();
  }
}

TEST(Win32DoorbellTest, WaitOnAChangedWordOrWithNoTimeLeftReturns) {
  auto doorbell = BackendCreateDoorbell(kName);
  ASSERT_TRUE(doorbell.ok()) << doorbell.status();
  std::atomic<uint32_t> word{5};
  (*doorbell)->Wait(word, 4, absl::Hours(24));
  (*doorbell)->Wait(word, 5, absl::ZeroDuration());
  (*doorbell)->Wait(word, 5, -absl::Seconds(1));
  EXPECT_EQ(word.load(), 5u);
}

TEST(Win32DoorbellTest, OpenRefusesWhatIsNotAUsableEvent) {
  EXPECT_EQ(BackendOpenDoorbell(kName, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);

  HANDLE section = CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr,
                                      PAGE_READWRITE, 0, 4096, nullptr);
  ASSERT_NE(section, nullptr);
  absl::Status status = BackendOpenDoorbell(kName, section).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find(kName), absl::string_view::npos) << status;
  EXPECT_FALSE(IsOpen(section));

  // An event the side could signal but never wait on would make every wait
  // return at once.
  HANDLE event = CreateEventW(nullptr, FALSE, FALSE, nullptr);
  ASSERT_NE(event, nullptr);
  HANDLE no_wait = Duplicate(event, EVENT_MODIFY_STATE, 0);
  ASSERT_NE(no_wait, nullptr);
  status = BackendOpenDoorbell(kName, no_wait).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_FALSE(IsOpen(no_wait));
  CloseHandle(event);
}

}  // namespace
}  // namespace internal
}  // namespace canal
