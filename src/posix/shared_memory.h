// SPDX-License-Identifier: Apache-2.0
// The POSIX shared-memory objects of the shared-memory transport (the
// backend.h hooks BackendCreateSharedMemory / BackendMapSharedMemory).
//
// Linux creates a memfd and seals its size (F_SEAL_SHRINK | F_SEAL_GROW |
// F_SEAL_SEAL) before the peer ever sees it, and maps only a memfd whose size
// is sealed: a peer that could shrink the object under our mapping would turn
// our next access into SIGBUS. Other systems have no seals; they create the
// object with shm_open under a random name with O_EXCL, mode 0600, and
// unlink it at once, so it never outlives the process or can be opened by
// name. There a peer holding the descriptor can still ftruncate it, which is
// documented in docs/security.md.

#ifndef CANAL_SRC_POSIX_SHARED_MEMORY_H_
#define CANAL_SRC_POSIX_SHARED_MEMORY_H_

#include <cstddef>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/internal/backend.h"

namespace canal {
namespace internal {
namespace posix {

// The shm_open path, which non-Linux systems use. Compiled everywhere so
// that Linux tests can check that the mapping side refuses its unsealed
// objects.
absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> CreateShmOpenMemory(
    absl::string_view name, size_t size);

}  // namespace posix
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_POSIX_SHARED_MEMORY_H_
