// SPDX-License-Identifier: Apache-2.0
// canal::Fifo on Windows: there are no FIFOs; every call says so, whatever
// its arguments (src/fifo.cc checks them only where kBackendHasFifos).

#include <memory>

#include "src/internal/backend.h"
#include "src/internal/errors.h"

namespace canal {
namespace internal {
namespace win32 {
namespace {

absl::Status NoFifos(absl::string_view op, absl::string_view path) {
  return MakeError(
      absl::StatusCode::kUnimplemented, op, path,
      "FIFOs (mkfifo) are POSIX-only; on Windows use canal::CreatePipe for "
      "related processes or a canal::Listener for a named endpoint");
}

}  // namespace
}  // namespace win32

absl::Status BackendFifoCreate(absl::string_view path, uint32_t) {
  return win32::NoFifos("Fifo::Create", path);
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> BackendFifoOpenRead(
    absl::string_view path) {
  return win32::NoFifos("Fifo::OpenRead", path);
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> BackendFifoOpenWrite(
    absl::string_view path, absl::Duration) {
  return win32::NoFifos("Fifo::OpenWrite", path);
}

absl::Status BackendFifoRemove(absl::string_view path) {
  return win32::NoFifos("Fifo::Remove", path);
}

}  // namespace internal
}  // namespace canal
