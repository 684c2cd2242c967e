// SPDX-License-Identifier: Apache-2.0
// Unsigned little-endian integers in byte buffers. Every format canal puts
// on a pipe or in shared memory (frames, handle envelopes, the set-up
// records, the Windows metadata section) is little-endian whatever the
// host, and is read byte by byte, so that no buffer needs alignment.

#ifndef CANAL_SRC_INTERNAL_LITTLE_ENDIAN_H_
#define CANAL_SRC_INTERNAL_LITTLE_ENDIAN_H_

#include <cstdint>

namespace canal {
namespace internal {

// Writes the low `bytes` bytes of `value` (1 to 8) at `at`.
inline void PutLe(void* at, uint64_t value, int bytes) {
  unsigned char* out = static_cast<unsigned char*>(at);
  for (int i = 0; i < bytes; ++i) {
    out[i] = static_cast<unsigned char>((value >> (8 * i)) & 0xff);
  }
}

// The number in the `bytes` bytes (1 to 8) at `at`.
inline uint64_t GetLe(const void* at, int bytes) {
  const unsigned char* in = static_cast<const unsigned char*>(at);
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= uint64_t{in[i]} << (8 * i);
  return value;
}

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_LITTLE_ENDIAN_H_
