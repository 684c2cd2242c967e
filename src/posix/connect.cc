// SPDX-License-Identifier: Apache-2.0
// Client side of the POSIX backend: Connect (also for Call) and
// WaitForListener.
//
// There is no handshake: the client learns the listener's mode, direction
// and limits from the metadata file beside the socket (src/posix/meta.h),
// and takes an instance slot there before connecting. A socket without
// metadata is a program that is not canal; it is treated as an unlimited
// duplex byte-mode listener. Metadata and slot files are only trusted when
// they are regular files of a server user the client accepts (the same
// check as the one on the server's credentials below), so another user who
// planted or replaced them cannot change what the client does.
//
// Server authentication (so that no other user can pose as the server by
// taking its name first): right after connect(2) succeeds, before
// any byte is sent and before the channel is returned, the client reads the
// credentials the listener had at listen(2) and checks them against
// ConnectOptions::expected_server (by default: the client's own euid or
// root). A failure closes the socket, releases the instance slot and is
// PermissionDenied. This also covers programs that are not canal.
//
// Abstract names ("@name", Linux, opt-in): one connect(2), no files; the
// channel is byte mode, duplex (see listener.cc).

#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "src/internal/backend.h"
#include "src/internal/deadline.h"
#include "src/internal/errors.h"
#include "src/posix/channel.h"
#include "src/posix/error.h"
#include "src/posix/io.h"
#include "src/posix/meta.h"
#include "src/posix/names.h"
#include "src/posix/security.h"

namespace canal {
namespace internal {
namespace posix {
namespace {

#if defined(__linux__)
constexpr bool kRefusedMeansGone = true;
#else
constexpr bool kRefusedMeansGone = false;
#endif

// Busy retries start fast (an instance is often freed within a millisecond)
// and back off to a rate that costs nothing measurable.
constexpr absl::Duration kFirstBackoff = absl::Milliseconds(1);
constexpr absl::Duration kMaxBackoff = absl::Milliseconds(10);

absl::Status NoListener(absl::string_view op, absl::string_view name,
                        absl::string_view detail, int err = 0) {
  const std::string what = absl::StrCat("no listener has this name", detail);
  if (err != 0) {
    return ErrnoError(absl::StatusCode::kNotFound, op, name, what, err);
  }
  return MakeError(absl::StatusCode::kNotFound, op, name, what);
}

bool PathExists(const std::string& path, int* err) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) return true;
  *err = errno;
  return false;
}

// What a probe of the name found.
struct Target {
  bool ready = false;  // Connectable now (as far as the files tell).
  bool canal = false;  // A canal listener (with metadata), not a foreign one.
  ListenerMeta meta;   // For a foreign server: byte mode, duplex, unlimited.
  uid_t owner = 0;     // Owner of a canal listener's metadata and slots.
  std::string busy;    // Why not ready, for the DeadlineExceeded message.
};

// Looks at the files of `socket_path`. NotFound if nobody listens there.
absl::StatusOr<Target> Probe(absl::string_view op, absl::string_view name,
                             const std::string& socket_path,
                             const ExpectedServer& expected) {
  Target target;
  absl::StatusOr<ProbeResult> probe =
      ProbeListener(op, name, socket_path, expected);
  if (!probe.ok()) return probe.status();
  switch (probe->state) {
    case ListenerState::kAbsent: {
      int err = 0;
      if (!PathExists(socket_path, &err)) {
        if (err == ENOENT) return NoListener(op, name, "", err);
        return ErrnoError(op, name,
                          absl::StrCat("cannot inspect \"", socket_path, "\""),
                          err);
      }
      // (A link to a socket is fine: connect(2) follows it.)
      struct stat st;
      if (::stat(socket_path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
        return NoListener(
            op, name, absl::StrCat(" (\"", socket_path, "\" is not a socket)"));
      }
      // A socket with no canal metadata: some other program's server.
      target.meta = ListenerMeta();
      target.ready = true;
      return target;
    }
    case ListenerState::kStale:
      return NoListener(op, name,
                        " (only files of a listener that exited are left)");
    case ListenerState::kStarting:
      target.canal = true;
      target.busy = "the listener is still starting";
      return target;
    case ListenerState::kLive:
      target.canal = true;
      target.ready = true;
      target.meta = probe->meta;
      target.owner = probe->owner;
      return target;
  }
  return target;
}

// The outcome of one connect(2) attempt.
enum class Attempt { kConnected, kRetry, kFailed };

Attempt TryConnect(absl::string_view op, absl::string_view name,
                   const std::string& socket_path, bool canal,
                   const Deadline& deadline, UniqueFd* out, std::string* busy,
                   absl::Status* error) {
  UniqueFd fd(MakeStreamSocket());
  if (!fd.valid()) {
    const int err = errno;
    *error = ErrnoError(op, name, "cannot create a socket", err);
    return Attempt::kFailed;
  }
  sockaddr_un addr;
  const socklen_t len = MakeSockaddr(socket_path, &addr);
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len);
  } while (rc != 0 && errno == EINTR);
  int err = rc == 0 ? 0 : errno;
  if (err == EINPROGRESS) {
    // Some systems complete non-blocking local connects asynchronously.
    pollfd pfd{fd.get(), POLLOUT, 0};
    int ready = PollUntil(&pfd, 1, deadline);
    if (ready == 0) {
      *busy = "the listener did not complete the connection";
      return Attempt::kRetry;
    }
    socklen_t err_len = sizeof(err);
    if (ready < 0 ||
        ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &err_len) != 0) {
      err = errno;
    }
  }
  if (err == 0) {
    *out = std::move(fd);
    return Attempt::kConnected;
  }
  if (err == ENOENT || err == ECONNREFUSED) {
    // A canal listener publishes its metadata only once it accepts, so its
    // socket is missing only when it is closing (or someone removed it),
    // and on Linux a refusal means nobody accepts on it any more (a full
    // backlog is EAGAIN there). Elsewhere a full backlog is ECONNREFUSED
    // too: retry.
    if (canal && !kRefusedMeansGone && err == ECONNREFUSED) {
      *busy = "the listener is not accepting connections";
      return Attempt::kRetry;
    }
    *error = NoListener(
        op, name,
        canal ? " (the listener's socket does not accept connections: it "
                "has closed or exited)"
              : "",
        err);
    return Attempt::kFailed;
  }
  if (err == EAGAIN || err == EWOULDBLOCK) {
    *busy = "the listener's connection backlog is full";
    return Attempt::kRetry;
  }
  *error = ErrnoError(
      op, name, absl::StrCat("cannot connect to \"", socket_path, "\""), err);
  return Attempt::kFailed;
}

absl::Status Busy(absl::string_view op, absl::string_view name,
                  absl::string_view why) {
  return MakeError(absl::StatusCode::kDeadlineExceeded, op, name,
                   absl::StrCat("timed out: ", why));
}

std::string AllBusy(int instances) {
  return absl::StrCat("all ", instances, " instance",
                      instances == 1 ? " is" : "s are", " busy");
}

// The server check on the connected socket `fd`.
absl::Status AuthenticateServer(absl::string_view op, absl::string_view name,
                                int fd, const ConnectOptions& options) {
  if (options.expected_server.kind == ExpectedServer::Kind::kAnyone) {
    return absl::OkStatus();
  }
  PeerCred server;
  if (!ReadPeerCred(fd, &server)) {
    const int err = errno;
    return ErrnoError(absl::StatusCode::kPermissionDenied, op, name,
                      "cannot read the server's credentials to check who runs "
                      "it",
                      err);
  }
  return CheckExpectedServer(op, name, options.expected_server, server);
}

absl::StatusOr<std::unique_ptr<PosixChannel>> ConnectAbstract(
    absl::string_view op, absl::string_view name, const ConnectOptions& options,
    const Deadline& deadline) {
  absl::Status allowed =
      CheckAbstractName(op, name, options.allow_abstract_namespace);
  if (!allowed.ok()) return allowed;
  absl::Duration backoff = kFirstBackoff;
  while (true) {
    UniqueFd fd(MakeStreamSocket());
    if (!fd.valid()) {
      const int err = errno;
      return ErrnoError(op, name, "cannot create a socket", err);
    }
    sockaddr_un addr;
    const socklen_t len = MakeAbstractSockaddr(name.substr(1), &addr);
    int rc;
    do {
      rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len);
    } while (rc != 0 && errno == EINTR);
    const int err = rc == 0 ? 0 : errno;
    if (err == 0) {
      absl::Status server = AuthenticateServer(op, name, fd.get(), options);
      if (!server.ok()) return server;
      PosixChannel::Params params;
      params.name = std::string(name);
      return std::make_unique<PosixChannel>(std::move(fd), UniqueFd(),
                                            std::move(params));
    }
    if (err == ECONNREFUSED || err == ENOENT) {
      return NoListener(op, name, "", err);
    }
    if (err != EAGAIN && err != EWOULDBLOCK) {
      return ErrnoError(op, name, "cannot connect to the abstract name", err);
    }
    if (deadline.expired()) {
      return Busy(op, name, "the listener's connection backlog is full");
    }
    SleepWithin(backoff, deadline);
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

absl::StatusOr<std::unique_ptr<PosixChannel>> ConnectWithin(
    absl::string_view op, absl::string_view name, const ConnectOptions& options,
    const Deadline& deadline) {
  absl::Status expectation =
      ValidateExpectedServer(op, name, options.expected_server);
  if (!expectation.ok()) return expectation;
  if (IsAbstractName(name)) {
    return ConnectAbstract(op, name, options, deadline);
  }
  absl::StatusOr<std::string> path_or = SocketPathFor(op, name, false);
  if (!path_or.ok()) return path_or.status();
  const std::string socket_path = *std::move(path_or);

  absl::Duration backoff = kFirstBackoff;
  while (true) {
    absl::StatusOr<Target> target_or =
        Probe(op, name, socket_path, options.expected_server);
    if (!target_or.ok()) return target_or.status();
    const Target& target = *target_or;
    std::string busy = target.busy;
    if (target.ready) {
      // With an instance limit, hold a slot for the channel's whole life.
      // Programs that are not canal connect without one; they are not
      // counted against the limit.
      UniqueFd slot;
      bool have_slot = true;
      if (target.canal && target.meta.max_instances > 0) {
        absl::StatusOr<UniqueFd> slot_or = TryAcquireSlot(
            op, name, socket_path, target.meta.max_instances, target.owner);
        if (!slot_or.ok()) return slot_or.status();
        slot = *std::move(slot_or);
        have_slot = slot.valid();
        if (!have_slot) busy = AllBusy(target.meta.max_instances);
      }
      if (have_slot) {
        UniqueFd fd;
        absl::Status error;
        switch (TryConnect(op, name, socket_path, target.canal, deadline, &fd,
                           &busy, &error)) {
          case Attempt::kConnected: {
            // On failure `fd` and `slot` close here: the listener sees a
            // client that left, and the instance is free again.
            absl::Status server =
                AuthenticateServer(op, name, fd.get(), options);
            if (!server.ok()) return server;
            SetBufferSizes(fd.get(), target.meta.buffer_size);
            PosixChannel::Params params;
            params.name = std::string(name);
            params.mode = target.meta.mode;
            // The mirror of the listener's side: inbound = clients write.
            params.can_read = target.meta.access != PipeAccess::kInbound;
            params.can_write = target.meta.access != PipeAccess::kOutbound;
            params.max_message_size = target.meta.max_message_size;
            params.shared_memory_offered = target.meta.shared_memory;
            params.max_handles_per_message =
                static_cast<size_t>(options.max_handles_per_message);
            return std::make_unique<PosixChannel>(
                std::move(fd), std::move(slot), std::move(params));
          }
          case Attempt::kFailed:
            return error;
          case Attempt::kRetry:
            break;
        }
      }
    }
    if (deadline.expired()) return Busy(op, name, busy);
    SleepWithin(backoff, deadline);
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChannelImpl>> Connect(
    absl::string_view op, absl::string_view name,
    const ConnectOptions& options) {
  absl::StatusOr<std::unique_ptr<PosixChannel>> ch =
      ConnectWithin(op, name, options, Deadline(options.timeout));
  if (!ch.ok()) return ch.status();
  return std::unique_ptr<ChannelImpl>(*std::move(ch));
}

absl::Status WaitForListener(absl::string_view name, absl::Duration timeout) {
  constexpr absl::string_view kOp = "WaitForListener";
  const Deadline deadline(timeout);
  absl::StatusOr<std::string> path_or = SocketPathFor(kOp, name, false);
  if (!path_or.ok()) return path_or.status();
  const std::string socket_path = *std::move(path_or);

  absl::Duration backoff = kFirstBackoff;
  while (true) {
    // Like WaitNamedPipe this does not authenticate the server (Connect
    // does), but it only believes metadata written by the user who owns the
    // socket (ourselves by default) or by root, never a file someone else
    // put beside it.
    ExpectedServer expected;
    struct stat st;
    if (::lstat(socket_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_uid != ::geteuid()) {
      expected.kind = ExpectedServer::Kind::kUser;
      expected.posix_uid = static_cast<int64_t>(st.st_uid);
    }
    absl::StatusOr<Target> target_or = Probe(kOp, name, socket_path, expected);
    if (!target_or.ok()) return target_or.status();
    std::string busy = target_or->busy;
    if (target_or->ready) {
      const int instances = target_or->meta.max_instances;
      if (target_or->canal) {
        int err = 0;
        // Closing: it removes its socket first.
        if (!PathExists(socket_path, &err)) {
          return NoListener(kOp, name, " (the listener is closing)", err);
        }
      }
      if (!target_or->canal || instances == 0) return absl::OkStatus();
      // Free if a slot can be locked; the lock is dropped at once, so (as
      // with WaitNamedPipe) another client may still win the race.
      absl::StatusOr<UniqueFd> slot =
          TryAcquireSlot(kOp, name, socket_path, instances, target_or->owner);
      if (!slot.ok()) return slot.status();
      if (slot->valid()) return absl::OkStatus();
      busy = AllBusy(instances);
    }
    if (deadline.expired()) return Busy(kOp, name, busy);
    SleepWithin(backoff, deadline);
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

}  // namespace posix

absl::StatusOr<std::unique_ptr<ChannelImpl>> BackendConnect(
    absl::string_view op, absl::string_view name,
    const ConnectOptions& options) {
  return posix::Connect(op, name, options);
}

absl::Status BackendWaitForListener(absl::string_view name,
                                    absl::Duration timeout) {
  return posix::WaitForListener(name, timeout);
}

}  // namespace internal
}  // namespace canal
