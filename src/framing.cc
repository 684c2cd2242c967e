#include "src/internal/framing.h"

#include <cstring>

namespace canal {
namespace internal {

void EncodeFrameHeader(uint32_t size, unsigned char out[kFrameHeaderSize]) {
  std::memcpy(out, kFrameMagic, 4);
  out[4] = static_cast<unsigned char>(size & 0xff);
  out[5] = static_cast<unsigned char>((size >> 8) & 0xff);
  out[6] = static_cast<unsigned char>((size >> 16) & 0xff);
  out[7] = static_cast<unsigned char>((size >> 24) & 0xff);
}

FrameHeaderError DecodeFrameHeader(const unsigned char in[kFrameHeaderSize],
                                   uint32_t* size) {
  if (std::memcmp(in, kFrameMagic, 4) != 0) return FrameHeaderError::kBadMagic;
  *size = static_cast<uint32_t>(in[4]) | (static_cast<uint32_t>(in[5]) << 8) |
          (static_cast<uint32_t>(in[6]) << 16) |
          (static_cast<uint32_t>(in[7]) << 24);
  return FrameHeaderError::kOk;
}

}  // namespace internal
}  // namespace canal
