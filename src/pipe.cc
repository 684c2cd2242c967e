// SPDX-License-Identifier: Apache-2.0
// The platform-independent half of canal::CreatePipe and canal::AdoptPipeEnd
// (canal/pipe.h): argument checks and the Channels; the backend makes the
// pipe (src/posix/pipe.cc, src/win32/pipe.cc).

#include "canal/pipe.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "src/internal/backend.h"
#include "src/internal/errors.h"
#include "src/internal/status_macros.h"

namespace canal {

absl::StatusOr<PipePair> CreatePipe(const PipeOptions& options) {
  // `buffer_size` is a hint: any value is accepted.
  return internal::GuardResources(
      "CreatePipe", "pipe", [&]() -> absl::StatusOr<PipePair> {
        CANAL_ASSIGN_OR_RETURN(internal::PipeEnds ends,
                               internal::BackendCreatePipe(options));
        PipePair pair;
        pair.read_end = Channel(std::move(ends.read_end));
        pair.write_end = Channel(std::move(ends.write_end));
        return pair;
      });
}

absl::StatusOr<Channel> AdoptPipeEnd(NativeHandle handle, PipeEnd end) {
  return internal::GuardResources(
      "AdoptPipeEnd", "pipe end", [&]() -> absl::StatusOr<Channel> {
        if (end != PipeEnd::kRead && end != PipeEnd::kWrite) {
          return internal::MakeError(
              absl::StatusCode::kInvalidArgument, "AdoptPipeEnd", "pipe end",
              absl::StrCat("unknown PipeEnd ", static_cast<int>(end),
                           "; the handle is left alone"));
        }
        CANAL_ASSIGN_OR_RETURN(std::unique_ptr<internal::ChannelImpl> impl,
                               internal::BackendAdoptPipeEnd(handle, end));
        return Channel(std::move(impl));
      });
}

}  // namespace canal
