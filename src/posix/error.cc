// SPDX-License-Identifier: Apache-2.0
#include "src/posix/error.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/internal/errors.h"

namespace canal {
namespace internal {
namespace posix {
namespace {

struct ErrnoEntry {
  int err;
  const char* symbol;
  absl::StatusCode code;
};

// The table. Entries are compile-guarded because not every errno exists on
// every POSIX system. Codes follow canal's error contract (see
// include/canal/channel.h): a missing listener is NotFound, a broken
// connection Unavailable, an exhausted system resource ResourceExhausted.
#define CANAL_ERRNO(e, code) {e, #e, absl::StatusCode::code},
constexpr ErrnoEntry kErrnoTable[] = {
    CANAL_ERRNO(ENOENT, kNotFound) CANAL_ERRNO(ENOTDIR, kNotFound) CANAL_ERRNO(
        ECONNREFUSED,
        kNotFound) CANAL_ERRNO(EACCES,
                               kPermissionDenied) CANAL_ERRNO(EPERM,
                                                              kPermissionDenied)
        CANAL_ERRNO(EROFS, kPermissionDenied) CANAL_ERRNO(
            EEXIST, kAlreadyExists) CANAL_ERRNO(EADDRINUSE, kAlreadyExists)
            CANAL_ERRNO(ETIMEDOUT, kDeadlineExceeded) CANAL_ERRNO(
                EPIPE, kUnavailable) CANAL_ERRNO(ECONNRESET, kUnavailable)
                CANAL_ERRNO(ECONNABORTED, kUnavailable) CANAL_ERRNO(
                    ENOTCONN, kUnavailable) CANAL_ERRNO(EAGAIN, kUnavailable)
#if defined(EWOULDBLOCK) && EWOULDBLOCK != EAGAIN
                    CANAL_ERRNO(EWOULDBLOCK, kUnavailable)
#endif
                        CANAL_ERRNO(EINTR, kUnavailable) CANAL_ERRNO(
                            EIO, kUnavailable) CANAL_ERRNO(ECANCELED,
                                                           kCancelled)
                            CANAL_ERRNO(EBADF, kCancelled) CANAL_ERRNO(
                                EINVAL,
                                kInvalidArgument) CANAL_ERRNO(ENAMETOOLONG,
                                                              kInvalidArgument)
                                CANAL_ERRNO(ELOOP, kInvalidArgument) CANAL_ERRNO(
                                    ENOTSOCK,
                                    kFailedPrecondition) CANAL_ERRNO(EPROTOTYPE, kFailedPrecondition)
                                    CANAL_ERRNO(EISDIR, kFailedPrecondition) CANAL_ERRNO(
                                        EAFNOSUPPORT,
                                        kUnimplemented) CANAL_ERRNO(EOPNOTSUPP, kUnimplemented)
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
                                        CANAL_ERRNO(ENOTSUP, kUnimplemented)
#endif
                                            CANAL_ERRNO(ENOSYS, kUnimplemented) CANAL_ERRNO(
                                                ENOMEM,
                                                kResourceExhausted)
                                                CANAL_ERRNO(
                                                    ENOBUFS,
                                                    kResourceExhausted)
                                                    CANAL_ERRNO(
                                                        EMFILE,
                                                        kResourceExhausted)
                                                        CANAL_ERRNO(
                                                            ENFILE,
                                                            kResourceExhausted)
                                                            CANAL_ERRNO(
                                                                ENOSPC,
                                                                kResourceExhausted)
#ifdef EDQUOT
                                                                CANAL_ERRNO(
                                                                    EDQUOT,
                                                                    kResourceExhausted)
#endif
                                                                    CANAL_ERRNO(
                                                                        EMSGSIZE,
                                                                        kResourceExhausted)};
#undef CANAL_ERRNO

const ErrnoEntry* Find(int err) {
  for (const ErrnoEntry& e : kErrnoTable) {
    if (e.err == err) return &e;
  }
  return nullptr;
}

// strerror_r comes in two flavours (XSI returns int, GNU returns char*);
// overloads pick the right reading of the result.
[[maybe_unused]] const char* StrErrorResult(int rc, const char* buf) {
  return rc == 0 ? buf : "Unknown error";
}
[[maybe_unused]] const char* StrErrorResult(const char* rc, const char*) {
  return rc;
}

}  // namespace

absl::StatusCode ErrnoToStatusCode(int err) {
  const ErrnoEntry* e = Find(err);
  return e != nullptr ? e->code : absl::StatusCode::kUnknown;
}

std::string DescribeErrno(int err) {
  char buf[256] = {0};
  const char* text = StrErrorResult(strerror_r(err, buf, sizeof(buf)), buf);
  const ErrnoEntry* e = Find(err);
  if (e == nullptr) return absl::StrCat("errno ", err, ": ", text);
  return absl::StrCat(e->symbol, ": ", text);
}

absl::Status ErrnoError(absl::string_view op, absl::string_view name,
                        absl::string_view what, int err) {
  return ErrnoError(ErrnoToStatusCode(err), op, name, what, err);
}

absl::Status ErrnoError(absl::StatusCode code, absl::string_view op,
                        absl::string_view name, absl::string_view what,
                        int err) {
  return MakeError(code, op, name, what, DescribeErrno(err));
}

}  // namespace posix
}  // namespace internal
}  // namespace canal
