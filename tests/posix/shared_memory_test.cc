// SPDX-License-Identifier: Apache-2.0
// The POSIX shared-memory objects of the shared-memory transport
// (src/posix/shared_memory.cc): what is created, and what a mapping side
// refuses from a hostile peer so that no later access can fault.
#include "src/posix/shared_memory.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
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

bool IsOpen(int fd) { return fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

// The names in /dev/shm that start with "canal-".
int CountCanalShmNames() {
  DIR* dir = opendir("/dev/shm");
  if (dir == nullptr) return 0;
  int count = 0;
  while (dirent* entry = readdir(dir)) {
    if (std::strncmp(entry->d_name, "canal-", 6) == 0) ++count;
  }
  closedir(dir);
  return count;
}

void ExpectRefusedNamingTheCall(const absl::Status& status) {
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("MapSharedMemory"), absl::string_view::npos)
      << status;
  EXPECT_NE(status.message().find(kName), absl::string_view::npos) << status;
}

TEST(PosixSharedMemoryTest, CreatedObjectIsCloseOnExecZeroedAndShared) {
  auto created = BackendCreateSharedMemory(kName, kSize);
  ASSERT_TRUE(created.ok()) << created.status();
  SharedMemoryImpl& mine = **created;
  ASSERT_EQ(mine.memory().size(), kSize);
  for (char c : mine.memory()) ASSERT_EQ(c, 0);
  int fd = mine.handle();
  ASSERT_GE(fd, 0);
  EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);

  std::memcpy(mine.memory().data(), "from creator", 12);
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  ASSERT_GE(copy, 0);
  auto mapped = BackendMapSharedMemory(kName, copy, kSize);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  EXPECT_EQ(std::string((*mapped)->memory().data(), 12), "from creator");

  // Closing both handles keeps both mappings, as the transport needs once
  // the peer has its own.
  mine.CloseHandle();
  (*mapped)->CloseHandle();
  EXPECT_FALSE(IsOpen(fd));
  std::memcpy((*mapped)->memory().data() + kSize - 6, "mapper", 6);
  EXPECT_EQ(std::string(mine.memory().data() + kSize - 6, 6), "mapper");
}

#ifdef __linux__
TEST(PosixSharedMemoryTest, LinuxObjectIsAMemfdWithItsSizeSealed) {
  auto created = BackendCreateSharedMemory(kName, kSize);
  ASSERT_TRUE(created.ok()) << created.status();
  int fd = (*created)->handle();
  int seals = fcntl(fd, F_GET_SEALS);
  ASSERT_GE(seals, 0) << std::strerror(errno);
  EXPECT_NE(seals & F_SEAL_SHRINK, 0);
  EXPECT_NE(seals & F_SEAL_GROW, 0);
  EXPECT_NE(seals & F_SEAL_SEAL, 0);
  EXPECT_NE(ftruncate(fd, 0), 0);
  EXPECT_EQ(CountCanalShmNames(), 0);
}

TEST(PosixSharedMemoryTest, UnsealedMemfdIsRefused) {
  // A peer that keeps the right to shrink the object could make our next
  // access a SIGBUS.
  int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, kSize), 0);
  ExpectRefusedNamingTheCall(BackendMapSharedMemory(kName, fd, kSize).status());
  EXPECT_FALSE(IsOpen(fd));
}

TEST(PosixSharedMemoryTest, MemfdSealedAgainstWritingIsRefused) {
  int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, kSize), 0);
  ASSERT_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_WRITE), 0);
  ExpectRefusedNamingTheCall(BackendMapSharedMemory(kName, fd, kSize).status());
  EXPECT_FALSE(IsOpen(fd));
}

TEST(PosixSharedMemoryTest, ShmOpenObjectIsRefusedOnLinuxAndLeavesNoName) {
  const int before = CountCanalShmNames();
  auto created = posix::CreateShmOpenMemory(kName, kSize);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(CountCanalShmNames(), before);
  EXPECT_NE(fcntl((*created)->handle(), F_GETFD) & FD_CLOEXEC, 0);
  int copy = fcntl((*created)->handle(), F_DUPFD_CLOEXEC, 0);
  ASSERT_GE(copy, 0);
  ExpectRefusedNamingTheCall(
      BackendMapSharedMemory(kName, copy, kSize).status());
}
#endif

TEST(PosixSharedMemoryTest, ObjectSmallerThanAgreedIsRefused) {
  auto created = BackendCreateSharedMemory(kName, kSize);
  ASSERT_TRUE(created.ok()) << created.status();
  int copy = fcntl((*created)->handle(), F_DUPFD_CLOEXEC, 0);
  ASSERT_GE(copy, 0);
  absl::Status status = BackendMapSharedMemory(kName, copy, 2 * kSize).status();
  ExpectRefusedNamingTheCall(status);
  EXPECT_FALSE(IsOpen(copy));
}

TEST(PosixSharedMemoryTest, PipeAndPlainFileAreRefused) {
  int ends[2];
  ASSERT_EQ(pipe2(ends, O_CLOEXEC), 0);
  ExpectRefusedNamingTheCall(
      BackendMapSharedMemory(kName, ends[0], kSize).status());
  EXPECT_FALSE(IsOpen(ends[0]));
  close(ends[1]);

  char path[] = "/tmp/canal-shm-test-XXXXXX";
  int fd = mkostemp(path, O_CLOEXEC);
  ASSERT_GE(fd, 0);
  unlink(path);
  ASSERT_EQ(ftruncate(fd, kSize), 0);
#ifdef __linux__
  // A file on disk has no seals, so its size could change under us.
  ExpectRefusedNamingTheCall(BackendMapSharedMemory(kName, fd, kSize).status());
#else
  auto mapped = BackendMapSharedMemory(kName, fd, kSize);
  EXPECT_TRUE(mapped.ok()) << mapped.status();
#endif
}

TEST(PosixSharedMemoryTest, BadSizesAndHandlesAreInvalidArgument) {
  EXPECT_EQ(BackendCreateSharedMemory(kName, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BackendCreateSharedMemory(kName, ~size_t{0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BackendMapSharedMemory(kName, -1, kSize).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto created = BackendCreateSharedMemory(kName, kSize);
  ASSERT_TRUE(created.ok()) << created.status();
  int copy = fcntl((*created)->handle(), F_DUPFD_CLOEXEC, 0);
  ASSERT_GE(copy, 0);
  EXPECT_EQ(BackendMapSharedMemory(kName, copy, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(IsOpen(copy));
}

}  // namespace
}  // namespace internal
}  // namespace canal
