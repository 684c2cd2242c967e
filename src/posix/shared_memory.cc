// SPDX-License-Identifier: Apache-2.0
// Shared-memory objects for the shared-memory transport; see
// shared_memory.h for why Linux insists on sealed memfds.
#include "src/posix/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "src/internal/errors.h"
#include "src/posix/error.h"
#include "src/posix/io.h"

#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || \
    defined(__NetBSD__) || defined(__linux__)
#include <sys/random.h>
#endif

namespace canal {
namespace internal {
namespace posix {
namespace {

constexpr absl::string_view kCreateOp = "CreateSharedMemory";
constexpr absl::string_view kMapOp = "MapSharedMemory";

class PosixSharedMemory final : public SharedMemoryImpl {
 public:
  PosixSharedMemory(UniqueFd fd, char* base, size_t size)
      : fd_(std::move(fd)), base_(base), size_(size) {}
  ~PosixSharedMemory() override { munmap(base_, size_); }

  absl::Span<char> memory() const override {
    return absl::Span<char>(base_, size_);
  }
  NativeHandle handle() const override { return fd_.get(); }
  void CloseHandle() override { fd_.Reset(); }

 private:
  UniqueFd fd_;
  char* const base_;
  const size_t size_;
};

// A size that mmap and ftruncate can take.
absl::Status CheckSize(absl::string_view op, absl::string_view name,
                       size_t size) {
  if (size == 0 ||
      size > static_cast<uint64_t>(std::numeric_limits<off_t>::max()) ||
      size > std::numeric_limits<size_t>::max() / 2) {
    return MakeError(absl::StatusCode::kInvalidArgument, op, name,
                     absl::StrCat("a shared-memory object of ", size,
                                  " bytes cannot be mapped"));
  }
  return absl::OkStatus();
}

// Maps `size` bytes of `fd` read-write and shared; takes `fd`. EPERM or
// EACCES (an object sealed against writing, or opened read-only) is
// FailedPrecondition: that object cannot carry a ring.
absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> MapFd(absl::string_view op,
                                                        absl::string_view name,
                                                        UniqueFd fd,
                                                        size_t size) {
  void* base =
      mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (base == MAP_FAILED) {
    int err = errno;
    absl::StatusCode code = (err == EPERM || err == EACCES)
                                ? absl::StatusCode::kFailedPrecondition
                                : ErrnoToStatusCode(err);
    return ErrnoError(code, op, name, "mapping the shared-memory object", err);
  }
  std::unique_ptr<SharedMemoryImpl> memory(new (std::nothrow) PosixSharedMemory(
      std::move(fd), static_cast<char*>(base), size));
  if (!memory) {
    munmap(base, size);
    return OutOfMemoryError(op, name);
  }
  return memory;
}

#ifdef __linux__
absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> CreateMemfd(
    absl::string_view name, size_t size) {
  UniqueFd fd(memfd_create("canal-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) {
    return ErrnoError(kCreateOp, name, "creating a memfd", errno);
  }
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return ErrnoError(kCreateOp, name, "sizing the memfd", errno);
  }
  // Sealed before anyone else has the descriptor: from here on nobody,
  // this process included, can change the size, so no mapping of it can
  // ever fault.
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) !=
      0) {
    return ErrnoError(kCreateOp, name, "sealing the memfd's size", errno);
  }
  return MapFd(kCreateOp, name, std::move(fd), size);
}
#endif

}  // namespace

absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> CreateShmOpenMemory(
    absl::string_view name, size_t size) {
  if (absl::Status ok = CheckSize(kCreateOp, name, size); !ok.ok()) return ok;
  // A random name, created exclusively: an object another user planted
  // under a guessed name makes shm_open fail with EEXIST instead of being
  // used, and the name is gone again before the peer hears of the object.
  for (int attempt = 0; attempt < 16; ++attempt) {
    unsigned char random[12];
    if (getentropy(random, sizeof(random)) != 0) {
      return ErrnoError(kCreateOp, name,
                        "getting random bytes for a shm_open name", errno);
    }
    char object_name[40] = "/canal-";
    static constexpr char kHex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(random); ++i) {
      object_name[7 + 2 * i] = kHex[random[i] >> 4];
      object_name[8 + 2 * i] = kHex[random[i] & 0xf];
    }
    object_name[7 + 2 * sizeof(random)] = '\0';
    // shm_open sets FD_CLOEXEC itself (POSIX requires it).
    UniqueFd fd(shm_open(object_name, O_RDWR | O_CREAT | O_EXCL, 0600));
    if (!fd.valid()) {
      if (errno == EEXIST) continue;
      return ErrnoError(kCreateOp, name, "creating a shm_open object", errno);
    }
    shm_unlink(object_name);
    if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
      return ErrnoError(kCreateOp, name, "sizing the shm_open object", errno);
    }
    return MapFd(kCreateOp, name, std::move(fd), size);
  }
  return MakeError(absl::StatusCode::kUnavailable, kCreateOp, name,
                   "every random shm_open name tried was taken");
}

}  // namespace posix

absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> BackendCreateSharedMemory(
    absl::string_view name, size_t size) {
  if (absl::Status ok = posix::CheckSize(posix::kCreateOp, name, size);
      !ok.ok()) {
    return ok;
  }
#ifdef __linux__
  return posix::CreateMemfd(name, size);
#else
  return posix::CreateShmOpenMemory(name, size);
#endif
}

absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> BackendMapSharedMemory(
    absl::string_view name, NativeHandle handle, size_t size) {
  posix::UniqueFd fd(handle);
  if (!fd.valid()) {
    return MakeError(absl::StatusCode::kInvalidArgument, posix::kMapOp, name,
                     "no descriptor");
  }
  if (absl::Status ok = posix::CheckSize(posix::kMapOp, name, size); !ok.ok()) {
    return ok;
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) {
    return posix::ErrnoError(posix::kMapOp, name,
                             "examining the peer's shared-memory object",
                             errno);
  }
  if (!S_ISREG(st.st_mode)) {
    return MakeError(absl::StatusCode::kFailedPrecondition, posix::kMapOp, name,
                     "the peer's descriptor is not shared memory");
  }
#ifdef __linux__
  // Only a size the peer can no longer change: otherwise it could shrink
  // the object after we checked, and our next access would fault.
  int seals = fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
    return MakeError(absl::StatusCode::kFailedPrecondition, posix::kMapOp, name,
                     "the peer's shared-memory object is not a memfd with "
                     "its size sealed");
  }
#endif
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) < size) {
    return MakeError(absl::StatusCode::kFailedPrecondition, posix::kMapOp, name,
                     absl::StrCat("the peer's shared-memory object has ",
                                  static_cast<int64_t>(st.st_size),
                                  " bytes, fewer than the ", size, " agreed"));
  }
  return posix::MapFd(posix::kMapOp, name, std::move(fd), size);
}

}  // namespace internal
}  // namespace canal
