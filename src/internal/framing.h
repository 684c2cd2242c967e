// The message framing used where the platform has no message pipes (POSIX).
//
// Wire format of a message-mode connection, in each direction: a sequence of
// frames, each an 8-byte header followed by the payload.
//   bytes 0..3  magic "CNL1" (0x43 0x4e 0x4c 0x31), catches a peer that is not
//               speaking canal's message framing
//   bytes 4..7  payload length, unsigned 32-bit little-endian, so a message
//               is at most 4 GiB - 1 bytes (also Windows' limit per write).
// A zero-length payload is an empty message. There is no handshake: the
// listener's mode, access and limits are published beside the socket (see
// src/posix/meta.h).

#ifndef CANAL_SRC_INTERNAL_FRAMING_H_
#define CANAL_SRC_INTERNAL_FRAMING_H_

#include <cstddef>
#include <cstdint>

namespace canal {
namespace internal {

inline constexpr size_t kFrameHeaderSize = 8;
inline constexpr uint32_t kMaxFramePayload = 0xffffffffu;
inline constexpr unsigned char kFrameMagic[4] = {'C', 'N', 'L', '1'};

// Writes the header for a payload of `size` bytes (size <= kMaxFramePayload).
void EncodeFrameHeader(uint32_t size, unsigned char out[kFrameHeaderSize]);

enum class FrameHeaderError { kOk, kBadMagic };

// Parses a header. On kOk stores the payload length in `*size`.
FrameHeaderError DecodeFrameHeader(const unsigned char in[kFrameHeaderSize],
                                   uint32_t* size);

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_FRAMING_H_
