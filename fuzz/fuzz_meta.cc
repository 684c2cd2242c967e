// SPDX-License-Identifier: Apache-2.0
// Fuzzes the parser of the metadata line a POSIX listener keeps beside its
// socket (src/posix/meta.h), which every client reads before connecting: the
// nearest thing canal has to a handshake, and written by the peer. ParseMeta
// must never crash, must only accept values a listener could have
// (mode, access, 0..254 instances, a message limit of 1..4 GiB-1), and what
// it accepts must survive FormatMeta -> ParseMeta unchanged.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "canal/types.h"
#include "fuzz/fuzz_util.h"
#include "src/internal/framing.h"
#include "src/posix/meta.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using canal::internal::posix::ListenerMeta;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  ListenerMeta meta;
  if (!canal::internal::posix::ParseMeta(text, &meta)) return 0;
  if (meta.mode != canal::PipeMode::kByte &&
      meta.mode != canal::PipeMode::kMessage) {
    canal_fuzz::Fail("ParseMeta accepted an unknown mode");
  }
  if (meta.access != canal::PipeAccess::kDuplex &&
      meta.access != canal::PipeAccess::kInbound &&
      meta.access != canal::PipeAccess::kOutbound) {
    canal_fuzz::Fail("ParseMeta accepted an unknown access");
  }
  if (meta.max_instances < 0 || meta.max_instances > canal::kMaxInstanceLimit) {
    canal_fuzz::Fail(
        absl::StrCat("ParseMeta accepted max_instances ", meta.max_instances));
  }
  if (meta.max_message_size == 0 ||
      meta.max_message_size > canal::internal::kMaxFramePayload) {
    canal_fuzz::Fail(absl::StrCat("ParseMeta accepted max_message_size ",
                                  meta.max_message_size));
  }
  ListenerMeta again;
  const std::string line = canal::internal::posix::FormatMeta(meta);
  if (!canal::internal::posix::ParseMeta(line, &again) ||
      again.mode != meta.mode || again.access != meta.access ||
      again.max_instances != meta.max_instances ||
      again.max_message_size != meta.max_message_size ||
      again.buffer_size != meta.buffer_size || again.pid != meta.pid) {
    canal_fuzz::Fail(absl::StrCat("FormatMeta/ParseMeta round trip: ", line));
  }
  return 0;
}
