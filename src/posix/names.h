// SPDX-License-Identifier: Apache-2.0
// Where POSIX canal sockets live: the mapping of a pipe name to a socket path
// and the checks on the runtime directory. Exposed for the POSIX-only tests.
//
// A portable name maps to `<runtime dir>/<name in lower case>` (portable
// names are case-insensitive, as Windows pipe names are). The runtime dir is
// `$CANAL_RUNTIME_DIR` if set and non-empty, else `$XDG_RUNTIME_DIR/canal` if
// XDG_RUNTIME_DIR is set and non-empty, else `/tmp/canal-<euid>`. A listener
// creates its last component (mode 0700, set through a descriptor of the new
// directory, never by a second walk of its path) when missing; listener and
// client both insist that it is a real directory (not a symbolic link),
// owned by the effective uid, with no group/other permission bits, because
// anyone who can write there could plant a socket that impersonates a
// server.
// A native name (an absolute path) is used unchanged and its directory is
// not checked: the caller chose it.

#ifndef CANAL_SRC_POSIX_NAMES_H_
#define CANAL_SRC_POSIX_NAMES_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace canal {
namespace internal {
namespace posix {

// The runtime dir from the environment, without any checks.
std::string RuntimeDirPath();

// Checks an existing directory as described above. PermissionDenied names
// what is wrong ("is a symbolic link", "owned by uid 1234, not 0",
// "mode 0755 allows group/other access"); NotFound if it does not exist.
absl::Status CheckRuntimeDir(absl::string_view op, absl::string_view name,
                             const std::string& dir);

// The checked runtime dir; with `create`, made (mode 0700) if missing.
// `op` and `name` only label errors.
absl::StatusOr<std::string> RuntimeDir(absl::string_view op,
                                       absl::string_view name, bool create);
// Same, labelled as a Listen (create) or Connect (!create) with no pipe name.
absl::StatusOr<std::string> RuntimeDir(bool create);

// The longest socket path this system accepts (sizeof(sun_path) - 1).
size_t MaxSocketPathLength();

// Whether `name` is a Linux abstract-namespace name ("@name").
bool IsAbstractName(absl::string_view name);

// Checks that the abstract name `name` ("@name") may be used: only on Linux,
// only with `allowed` (ListenerOptions / ConnectOptions
// ::allow_abstract_namespace), and only if it fits into sun_path.
// InvalidArgument saying which of these failed.
absl::Status CheckAbstractName(absl::string_view op, absl::string_view name,
                               bool allowed);

// The socket path for a validated pipe name (portable or native). Checks
// the sun_path limit (InvalidArgument, never truncated) and, for portable
// names, the runtime dir (created first if `create_dir`). Abstract names
// have no path: InvalidArgument (callers that support them check
// IsAbstractName first).
absl::StatusOr<std::string> SocketPathFor(absl::string_view op,
                                          absl::string_view name,
                                          bool create_dir);

}  // namespace posix
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_POSIX_NAMES_H_
