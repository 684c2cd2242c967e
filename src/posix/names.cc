// SPDX-License-Identifier: Apache-2.0
#include "src/posix/names.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "src/internal/errors.h"
#include "src/internal/names.h"
#include "src/posix/error.h"

namespace canal {
namespace internal {
namespace posix {
namespace {

const char* NonEmptyEnv(const char* var) {
  const char* value = std::getenv(var);
  return (value != nullptr && value[0] != '\0') ? value : nullptr;
}

// The umask may have taken bits of 0700 from the directory mkdir just made;
// it can never have added any. Sets exactly 0700 through a descriptor of
// the directory itself: in a parent others can write, the path may already
// name something else (a link to some other file, say), and nothing but the
// directory we made may be changed.
absl::Status FixNewDirMode(absl::string_view op, absl::string_view name,
                           const std::string& dir) {
  int fd;
  do {
    fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int err = errno;
    return ErrnoError(absl::StatusCode::kPermissionDenied, op, name,
                      absl::StrCat("runtime directory \"", dir,
                                   "\" was replaced right after it was "
                                   "created (can others write its parent?)"),
                      err);
  }
  struct stat st;
  absl::Status result;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    result = ErrnoError(
        op, name,
        absl::StrCat("cannot inspect runtime directory \"", dir, "\""), err);
  } else if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
    // Someone else's directory in its place; CheckRuntimeDir says whose.
  } else if ((st.st_mode & 07777) != 0700 && ::fchmod(fd, 0700) != 0) {
    const int err = errno;
    result = ErrnoError(op, name,
                        absl::StrCat("cannot set the mode of runtime "
                                     "directory \"",
                                     dir, "\""),
                        err);
  }
  ::close(fd);
  return result;
}

}  // namespace

std::string RuntimeDirPath() {
  if (const char* dir = NonEmptyEnv("CANAL_RUNTIME_DIR")) return dir;
  if (const char* xdg = NonEmptyEnv("XDG_RUNTIME_DIR")) {
    absl::string_view base(xdg);
    // Avoid "//canal" when XDG_RUNTIME_DIR ends with a slash.
    while (base.size() > 1 && absl::EndsWith(base, "/")) base.remove_suffix(1);
    return absl::StrCat(base, base == "/" ? "" : "/", "canal");
  }
  return absl::StrCat("/tmp/canal-", static_cast<unsigned long>(::geteuid()));
}

absl::Status CheckRuntimeDir(absl::string_view op, absl::string_view name,
                             const std::string& dir) {
  struct stat st;
  if (::lstat(dir.c_str(), &st) != 0) {
    const int err = errno;
    return ErrnoError(
        op, name, absl::StrCat("cannot use runtime directory \"", dir, "\""),
        err);
  }
  auto refuse = [&](absl::string_view why) {
    return MakeError(absl::StatusCode::kPermissionDenied, op, name,
                     absl::StrCat("runtime directory \"", dir, "\": ", why));
  };
  if (S_ISLNK(st.st_mode)) return refuse("it is a symbolic link");
  if (!S_ISDIR(st.st_mode)) return refuse("it is not a directory");
  const uid_t me = ::geteuid();
  if (st.st_uid != me) {
    return refuse(absl::StrCat("it is owned by uid ",
                               static_cast<unsigned long>(st.st_uid), ", not ",
                               static_cast<unsigned long>(me)));
  }
  if ((st.st_mode & 077) != 0) {
    return refuse(absl::StrFormat("mode 0%03o allows group/other access",
                                  static_cast<unsigned>(st.st_mode & 07777)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RuntimeDir(absl::string_view op,
                                       absl::string_view name, bool create) {
  std::string dir = RuntimeDirPath();
  if (create) {
    if (::mkdir(dir.c_str(), 0700) == 0) {
      absl::Status fixed = FixNewDirMode(op, name, dir);
      if (!fixed.ok()) return fixed;
    } else if (errno != EEXIST) {
      const int err = errno;
      return ErrnoError(
          op, name,
          absl::StrCat("cannot create runtime directory \"", dir, "\""), err);
    }
  }
  absl::Status checked = CheckRuntimeDir(op, name, dir);
  if (!checked.ok()) {
    if (!create && absl::IsNotFound(checked)) {
      // No runtime dir yet simply means nobody is listening.
      return MakeError(absl::StatusCode::kNotFound, op, name,
                       absl::StrCat("no listener has this name (runtime "
                                    "directory \"",
                                    dir, "\" does not exist)"));
    }
    return checked;
  }
  return dir;
}

absl::StatusOr<std::string> RuntimeDir(bool create) {
  return RuntimeDir(create ? "Listen" : "Connect", "", create);
}

size_t MaxSocketPathLength() { return sizeof(sockaddr_un::sun_path) - 1; }

bool IsAbstractName(absl::string_view name) {
  return name.size() > 1 && name[0] == '@';
}

absl::Status CheckAbstractName(absl::string_view op, absl::string_view name,
                               bool allowed) {
#if defined(__linux__)
  if (!allowed) {
    return MakeError(
        absl::StatusCode::kInvalidArgument, op, name,
        "\"@name\" is a Linux abstract-namespace socket, which has no file "
        "permissions (any local process may bind or connect to it); set "
        "allow_abstract_namespace in the options to use one deliberately");
  }
  // sun_path holds the leading NUL and the name, with no terminator.
  if (name.size() - 1 > MaxSocketPathLength()) {
    return MakeError(
        absl::StatusCode::kInvalidArgument, op, name,
        absl::StrCat("abstract name is ", name.size() - 1,
                     " bytes; sun_path holds at most ", MaxSocketPathLength()));
  }
  return absl::OkStatus();
#else
  (void)allowed;
  return MakeError(absl::StatusCode::kInvalidArgument, op, name,
                   "\"@name\" names a Linux abstract-namespace socket, which "
                   "this system does not have; use a portable name or an "
                   "absolute path");
#endif
}

absl::StatusOr<std::string> SocketPathFor(absl::string_view op,
                                          absl::string_view name,
                                          bool create_dir) {
  if (IsAbstractName(name)) {
    return MakeError(absl::StatusCode::kInvalidArgument, op, name,
                     absl::StrCat("abstract-namespace names (\"@name\") are "
                                  "not supported by ",
                                  op,
                                  "; use Channel::Connect with "
                                  "ConnectOptions::allow_abstract_namespace"));
  }
  const bool portable = IsPortableName(name);
  // Windows pipe names are case-insensitive, so a portable name is too: the
  // socket file is named in lower case ("Svc" and "svc" are one listener).
  std::string path = portable ? absl::StrCat(RuntimeDirPath(), "/",
                                             absl::AsciiStrToLower(name))
                              : std::string(name);
  // Checked before touching the file system, so the answer does not depend
  // on the directory's state. The kernel would silently truncate (or refuse)
  // a longer path; a truncated path would name some other socket.
  if (path.size() > MaxSocketPathLength()) {
    return MakeError(
        absl::StatusCode::kInvalidArgument, op, name,
        absl::StrCat("socket path \"", path, "\" is ", path.size(),
                     " bytes; sun_path holds at most ", MaxSocketPathLength()));
  }
  if (portable) {
    absl::StatusOr<std::string> dir = RuntimeDir(op, name, create_dir);
    if (!dir.ok()) return dir.status();
  }
  return path;
}

}  // namespace posix
}  // namespace internal
}  // namespace canal
