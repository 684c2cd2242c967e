// SPDX-License-Identifier: Apache-2.0
#include "src/win32/envelope.h"

#include <cstring>

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
  const uint32_t count = static_cast<uint32_t>(values.size());
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<char>(count >> (8 * i)));
  }
  for (uint64_t v : values) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  }
  out.append(data.data(), data.size());
  return out;
}

std::string EscapeMessage(absl::string_view data) {
  if (StartsWithMagic(data)) return MakeEnvelope({}, data);
  return std::string(data);
}

uint64_t ReadLe(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return v;
}

}  // namespace win32
}  // namespace internal
}  // namespace canal
