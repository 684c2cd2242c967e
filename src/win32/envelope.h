// SPDX-License-Identifier: Apache-2.0
// The envelope of a Win32 message that carries handles (message mode), shared
// by the channel (which sends and receives handles) and canal::Server's loop
// (which closes the handles a client sends and escapes what it sends):
//   bytes 0..15   kEnvelopeMagic
//   bytes 16..19  handle count N, unsigned 32-bit little-endian
//   then N        handle values in the receiver's process, unsigned 64-bit
//                 little-endian each (duplicated there by the sender)
//   then          the message's data.
// A message without handles is sent as it is, unless its data begins with
// the magic: then it goes as an envelope with no handles, so that every
// message reads back as it was written.

#ifndef CANAL_SRC_WIN32_ENVELOPE_H_
#define CANAL_SRC_WIN32_ENVELOPE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "canal/types.h"

namespace canal {
namespace internal {
namespace win32 {

inline constexpr char kEnvelopeMagic[16] = {'\0', 'c', 'a',    'n',   'a', 'l',
                                            '-',  'h', 'a',    'n',   'd', 'l',
                                            'e',  's', '\x01', '\x7e'};
inline constexpr size_t kEnvelopeHeader = 20;
// What an envelope may add to a message of max_message_size bytes.
inline constexpr size_t kEnvelopeMax =
    kEnvelopeHeader + 8 * static_cast<size_t>(kMaxHandlesPerMessageLimit);

// True if `data` begins with the whole magic.
bool StartsWithMagic(absl::string_view data);

// An envelope naming `values` around `data`. Throws std::bad_alloc.
std::string MakeEnvelope(absl::Span<const uint64_t> values,
                         absl::string_view data);

// `data` as it goes on the wire without handles: itself, or an envelope
// with none if it begins with the magic. Throws std::bad_alloc.
std::string EscapeMessage(absl::string_view data);

}  // namespace win32
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_WIN32_ENVELOPE_H_
