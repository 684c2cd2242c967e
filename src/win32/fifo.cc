// canal::Fifo on Windows: there are no FIFOs; every call says so.

#include "canal/fifo.h"
#include "src/internal/errors.h"

namespace canal {
namespace {

absl::Status NoFifos(absl::string_view op, absl::string_view path) {
  return internal::MakeError(
      absl::StatusCode::kUnimplemented, op, path,
      "FIFOs (mkfifo) are POSIX-only; on Windows use canal::CreatePipe for "
      "related processes or a canal::Listener for a named endpoint");
}

}  // namespace

absl::Status Fifo::Create(absl::string_view path, uint32_t) {
  return NoFifos("Fifo::Create", path);
}
absl::StatusOr<Channel> Fifo::OpenRead(absl::string_view path) {
  return NoFifos("Fifo::OpenRead", path);
}
absl::StatusOr<Channel> Fifo::OpenWrite(absl::string_view path,
                                        absl::Duration) {
  return NoFifos("Fifo::OpenWrite", path);
}
absl::Status Fifo::Remove(absl::string_view path) {
  return NoFifos("Fifo::Remove", path);
}

}  // namespace canal
