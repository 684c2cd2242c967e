// SPDX-License-Identifier: Apache-2.0
#include "src/win32/envelope.h"

#include <cstring>

#include "src/internal/little_endian.h"

namespace canal {
namespace internal {
namespace win32 {

bool StartsWithMagic(absl::string_view data) {
  return data.size() >= sizeof(kEnvelopeMagic) &&
         std::memcmp(data.data(), kEnvelopeMagic, sizeof(kEnvelopeMagic)) == 0;
}

std::string MakeEnvelope(absl::Span<const uint64_t> values,
                         absl::string_view data) {
  std::string out;
  out.reserve(kEnvelopeHeader + 8 * values.size() + data.size());
  out.append(kEnvelopeMagic, sizeof(kEnvelopeMagic));
  char number[8];
  PutLe(number, values.size(), 4);
  out.append(number, 4);
  for (uint64_t v : values) {
    PutLe(number, v, 8);
    out.append(number, 8);
  }
  out.append(data.data(), data.size());
  return out;
}

std::string EscapeMessage(absl::string_view data) {
  if (StartsWithMagic(data)) return MakeEnvelope({}, data);
  return std::string(data);
}

}  // namespace win32
}  // namespace internal
}  // namespace canal
