// A listener's limits, published for its clients. Windows tells a client
// the pipe type (GetNamedPipeInfo) but not canal's max_message_size, which
// a writer must check before sending (semantics row 2). The listener
// publishes it in a small named shared-memory section,
// `Local\canal-pipe-meta-<hash of the upper-cased pipe path>`; a client
// that finds none (a plain Win32 server) uses the Win32 limit of one
// WriteFile, 4 GiB - 1.
//
// Layout (little-endian): bytes 0..3 "CNLM", 4..7 version 1, 8..11
// max_message_size.
// Its existence also tells clients that the listener is still open.

#ifndef CANAL_SRC_WIN32_META_H_
#define CANAL_SRC_WIN32_META_H_

#include <windows.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "src/win32/io.h"

namespace canal {
namespace internal {
namespace win32 {

// Creates the section for `pipe_path` with `security_attributes` (the
// listener's restrictive DACL, src/win32/security.h). A section that
// already exists was made by someone else (a listener's own section lives
// exactly as long as the listener, which holds the pipe name): it is never
// trusted nor written to, and the listener fails with AlreadyExists, as
// for a held pipe name; ERROR_ACCESS_DENIED (another user's section) too.
// Other failures are returned as they are.
absl::StatusOr<ScopedHandle> PublishListenerMeta(
    const std::wstring& pipe_path, absl::string_view name,
    uint32_t max_message_size, SECURITY_ATTRIBUTES* security_attributes);

// Whether a canal listener holds `pipe_path`. The section lives exactly as
// long as the listener is open, so it tells "no such listener" from "the
// listener is between two instances" (the last instance just closed and
// the next one is being created), when the pipe name itself is briefly
// unknown to the system.
bool ListenerMetaExists(const std::wstring& pipe_path);

// The max_message_size published for `pipe_path`, or 0xffffffff.
uint32_t ReadListenerMaxMessageSize(const std::wstring& pipe_path);

}  // namespace win32
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_WIN32_META_H_
