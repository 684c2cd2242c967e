// SPDX-License-Identifier: Apache-2.0
// The POSIX listener: a listening AF_UNIX stream socket plus the metadata
// lock and slot files of src/posix/meta.h.
//
// Access control (secure by default: only the listener's own user gets in
// unless its access policy says otherwise):
//  - The socket gets the mode of the access policy (0600 by default, 0666
//    for every local user, posix_mode for a custom policy) before listen(2):
//    on Linux fchmod() on the unbound socket sets the mode bind() creates
//    the file with (less the umask); after bind the file is set to exactly
//    that mode (fchmodat without following links) and, for a custom policy,
//    given the policy's group. Until listen() every connect() is refused,
//    so no client ever reaches the socket under a wider mode.
//  - The metadata and slot files are readable by the classes the socket
//    mode admits (clients open them read-only); the lock file never is
//    (see meta.h).
//  - Accept checks every peer's credentials against the policy (some
//    systems ignore socket file modes, and abstract sockets have none),
//    then runs the authorize callback; a refused peer is closed and Accept
//    waits for the next one, within the same deadline.
//  - Linux abstract names ("@name") only with allow_abstract_namespace; they
//    have no files, so they carry byte-mode, duplex, unlimited listeners
//    only (a client has nowhere to learn anything else from, and byte mode
//    has no handshake), and the peer check is their only protection.

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "src/internal/backend.h"
#include "src/internal/deadline.h"
#include "src/internal/errors.h"
#include "src/posix/channel.h"
#include "src/posix/error.h"
#include "src/posix/io.h"
#include "src/posix/meta.h"
#include "src/internal/shm_channel.h"
#include "src/posix/names.h"
#include "src/posix/security.h"

namespace canal {
namespace internal {
namespace posix {
namespace {

constexpr absl::string_view kListen = "Listen";
constexpr absl::string_view kAccept = "Accept";

// accept(2) with the new descriptor non-blocking and close-on-exec.
int AcceptNonblocking(int listen_fd) {
#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__)
  return ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
  int fd = ::accept(listen_fd, nullptr, nullptr);
  if (fd < 0) return -1;
  if (!SetCloexecNonblock(fd)) {
    CloseFd(fd);
    return -1;
  }
  return fd;
#endif
}

class PosixListener final : public ListenerImpl {
 public:
  // `socket_path` is empty for an abstract name (no files, no lock_fd or
  // meta_fd).
  PosixListener(std::string name, const ListenerOptions& options,
                std::string socket_path, UniqueFd listen_fd, UniqueFd lock_fd,
                UniqueFd meta_fd, UniqueFd wake_read, UniqueFd wake_write)
      : name_(std::move(name)),
        options_(options),
        owner_uid_(::geteuid()),
        socket_path_(std::move(socket_path)),
        lock_path_(socket_path_.empty() ? std::string()
                                        : LockPathFor(socket_path_)),
        meta_path_(socket_path_.empty() ? std::string()
                                        : MetaPathFor(socket_path_)),
        socket_id_(socket_path_.empty() ? FileId()
                                        : FileIdOfPath(socket_path_)),
        lock_id_(FileIdOfFd(lock_fd.get())),
        meta_id_(FileIdOfFd(meta_fd.get())),
        listen_fd_(listen_fd.Release()),
        wake_read_(wake_read.Release()),
        wake_write_(wake_write.Release()),
        lock_fd_(std::move(lock_fd)),
        meta_fd_(std::move(meta_fd)) {}

  bool shared_memory_offered() const override {
    return !socket_path_.empty() && OffersSharedMemory(options_);
  }

  // Safe while other threads are inside Accept: Close wakes them (they
  // return Cancelled), and nothing is freed before the last one has left.
  // (A thread that only enters Accept once the destructor runs uses a
  // destroyed object: that is the caller's bug, as with any object.)
  ~PosixListener() override {
    Close();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &PosixListener::NoAcceptRunning));
    CloseFdsLocked();
  }

  bool is_open() const override {
    absl::MutexLock lock(&mu_);
    return !closed_;
  }
  absl::string_view name() const override { return name_; }
  const ListenerOptions& options() const override { return options_; }

  absl::StatusOr<std::unique_ptr<ChannelImpl>> Accept(
      absl::Duration timeout) override;
  void Close() override;

 private:
  absl::Status Cancelled() const {
    return MakeError(absl::StatusCode::kCancelled, kAccept, name_,
                     "the listener was closed");
  }
  absl::Status TimedOut() const {
    return MakeError(absl::StatusCode::kDeadlineExceeded, kAccept, name_,
                     "timed out waiting for a client");
  }
  void CloseFdsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (int* fd : {&listen_fd_, &wake_read_, &wake_write_}) {
      if (*fd >= 0) CloseFd(*fd);
      *fd = -1;
    }
  }

  bool NoAcceptRunning() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return in_flight_ == 0;
  }

  // Whether the peer on the accepted socket `fd` may be served: the policy
  // check, then the authorize callback. `why` gets the reason otherwise.
  bool Admit(int fd, PeerCred* cred, std::string* why);

  const std::string name_;
  const ListenerOptions options_;
  const uid_t owner_uid_;  // Who the policy's "current user" is.
  const std::string socket_path_;
  const std::string lock_path_;
  const std::string meta_path_;
  // What we created, so Close removes only files that are still ours (a
  // later listener, or someone else, may have replaced them).
  const FileId socket_id_;
  const FileId lock_id_;
  const FileId meta_id_;

  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int listen_fd_ ABSL_GUARDED_BY(mu_);
  // Self-pipe: Close writes a byte so that Accepts blocked in poll() wake.
  int wake_read_ ABSL_GUARDED_BY(mu_);
  int wake_write_ ABSL_GUARDED_BY(mu_);
  // Holds the exclusive flock that says "a listener owns this name".
  UniqueFd lock_fd_ ABSL_GUARDED_BY(mu_);
  // Holds the write lock that tells clients the listener is alive.
  UniqueFd meta_fd_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::unique_ptr<ChannelImpl>> PosixListener::Accept(
    absl::Duration timeout) {
  const Deadline deadline(timeout);
  int listen_fd, wake_fd;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return Cancelled();
    ++in_flight_;
    listen_fd = listen_fd_;
    wake_fd = wake_read_;
  }
  // The descriptors are closed by the last Accept out after Close, never
  // under a running one (the numbers could be reused by then).
  struct Leave {
    PosixListener* self;
    ~Leave() {
      absl::MutexLock lock(&self->mu_);
      if (--self->in_flight_ == 0 && self->closed_) self->CloseFdsLocked();
    }
  } leave{this};

  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return Cancelled();
    }
    int fd = AcceptNonblocking(listen_fd);
    if (fd >= 0) {
      PeerCred cred;
      std::string why;
      if (!Admit(fd, &cred, &why)) {
        // Refused: disconnect this peer silently (it sees end of stream) and
        // wait for the next one within the same deadline, which a stream of
        // refused peers must not extend.
        CloseFd(fd);
        if (deadline.expired()) return TimedOut();
        continue;
      }
      SetNoSigPipe(fd);
      SetBufferSizes(fd, options_.buffer_size);
      PosixChannel::Params params;
      params.name = name_;
      params.mode = options_.mode;
      // Access is seen from the listener: inbound = the listener reads.
      params.can_read = options_.access != PipeAccess::kOutbound;
      params.can_write = options_.access != PipeAccess::kInbound;
      params.max_message_size = options_.max_message_size;
      params.max_handles_per_message =
          static_cast<size_t>(options_.max_handles_per_message);
      return std::unique_ptr<ChannelImpl>(
          new PosixChannel(UniqueFd(fd), UniqueFd(), std::move(params)));
    }
    const int err = errno;
    // A client that gave up between connect and accept is not our error.
    if (err == EINTR || err == ECONNABORTED || err == EPROTO) {
      if (deadline.expired()) return TimedOut();
      continue;
    }
    if (err != EAGAIN && err != EWOULDBLOCK) {
      return ErrnoError(kAccept, name_, "accept failed", err);
    }
    if (deadline.expired()) return TimedOut();
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int rc = PollUntil(fds, 2, deadline);
    if (rc < 0) {
      const int poll_err = errno;
      return ErrnoError(kAccept, name_, "poll failed", poll_err);
    }
    if (fds[1].revents != 0) return Cancelled();
    if (rc == 0) return TimedOut();
  }
}

bool PosixListener::Admit(int fd, PeerCred* cred, std::string* why) {
  if (!ReadPeerCred(fd, cred)) {
    // No credentials (the peer vanished, or the system has none): admit
    // only where the policy does not depend on who it is.
    if (options_.access_policy.scope != AccessPolicy::Scope::kAllLocalUsers) {
      *why = "cannot read the peer's credentials";
      return false;
    }
    *cred = PeerCred();
  } else if (!PolicyAdmits(options_.access_policy, owner_uid_, *cred, why)) {
    return false;
  }
  if (options_.authorize) {
    absl::Status verdict = options_.authorize(ToPeerInfo(*cred));
    if (!verdict.ok()) {
      *why = std::string(verdict.message());
      return false;
    }
  }
  return true;
}

void PosixListener::Close() {
  absl::MutexLock lock(&mu_);
  if (closed_) return;
  closed_ = true;
  if (wake_write_ >= 0) {
    const char byte = 1;
    // The pipe is non-blocking and read by nobody: one byte stays readable
    // for good, which wakes every present and future poll on it.
    ssize_t ignored = ::write(wake_write_, &byte, 1);
    (void)ignored;
  }
  // Release the name in this order: socket first (new clients get ENOENT
  // and NotFound), then the slots and the metadata file (its liveness lock
  // goes with it), and only then the lock file and the name lock itself.
  if (!socket_path_.empty()) {
    if (SameFile(socket_id_, FileIdOfPath(socket_path_))) {
      ::unlink(socket_path_.c_str());
    }
    RemoveSlots(socket_path_, options_.max_instances);
    if (SameFile(meta_id_, FileIdOfPath(meta_path_))) {
      ::unlink(meta_path_.c_str());
    }
    meta_fd_.Reset();
    if (SameFile(lock_id_, FileIdOfPath(lock_path_))) {
      ::unlink(lock_path_.c_str());
    }
  }
  lock_fd_.Reset();
  if (in_flight_ == 0) CloseFdsLocked();
}

// Undoes a Create that fails after taking the name lock (destroy it before
// the lock is released). Everything at canal's paths is then the lock
// holder's, except the socket path, where someone may have put something
// else after bind(): only a socket of ours is removed there.
class CreateUndo {
 public:
  CreateUndo(const std::string& socket_path, int lock_fd)
      : socket_path_(socket_path),
        lock_path_(LockPathFor(socket_path)),
        lock_id_(FileIdOfFd(lock_fd)) {}
  ~CreateUndo() {
    if (dismissed_) return;
    struct stat st;
    if (bound_ && ::lstat(socket_path_.c_str(), &st) == 0 &&
        S_ISSOCK(st.st_mode) && st.st_uid == ::geteuid()) {
      ::unlink(socket_path_.c_str());
    }
    RemoveSlots(socket_path_, slots_);
    if (SameFile(lock_id_, FileIdOfPath(lock_path_))) {
      ::unlink(lock_path_.c_str());
    }
  }
  CreateUndo(const CreateUndo&) = delete;
  CreateUndo& operator=(const CreateUndo&) = delete;

  void SlotsMade(int count) { slots_ = count; }
  void Bound() { bound_ = true; }
  void Dismiss() { dismissed_ = true; }

 private:
  const std::string socket_path_;
  const std::string lock_path_;
  const FileId lock_id_;
  int slots_ = 0;
  bool bound_ = false;
  bool dismissed_ = false;
};

// Makes a listening socket at the abstract name `name` ("@name").
absl::StatusOr<std::unique_ptr<ListenerImpl>> ListenAbstract(
    absl::string_view name, const ListenerOptions& options) {
  absl::Status allowed =
      CheckAbstractName(kListen, name, options.allow_abstract_namespace);
  if (!allowed.ok()) return allowed;
  // With no files beside the socket a client learns nothing about the
  // listener, so it must be what a client assumes of any plain socket.
  if (options.mode != PipeMode::kByte ||
      options.access != PipeAccess::kDuplex ||
      options.max_instances != kUnlimitedInstances ||
      options.transport != Transport::kPipe) {
    return MakeError(
        absl::StatusCode::kInvalidArgument, kListen, name,
        "an abstract-namespace listener must use byte mode, duplex access, "
        "unlimited instances and the pipe transport: it has no metadata file "
        "from which clients could learn anything else");
  }
  UniqueFd listen_fd(MakeStreamSocket());
  if (!listen_fd.valid()) {
    const int err = errno;
    return ErrnoError(kListen, name, "cannot create a socket", err);
  }
  sockaddr_un addr;
  const socklen_t addr_len = MakeAbstractSockaddr(name.substr(1), &addr);
  if (::bind(listen_fd.get(), reinterpret_cast<sockaddr*>(&addr), addr_len) !=
      0) {
    const int err = errno;
    if (err == EADDRINUSE) {
      return ErrnoError(absl::StatusCode::kAlreadyExists, kListen, name,
                        "another socket already has this abstract name", err);
    }
    return ErrnoError(kListen, name, "cannot bind the abstract name", err);
  }
  if (::listen(listen_fd.get(), SOMAXCONN) != 0) {
    const int err = errno;
    return ErrnoError(kListen, name, "listen failed", err);
  }
  int wake[2];
  if (!MakePipe(wake)) {
    const int err = errno;
    return ErrnoError(kListen, name, "cannot create the wake-up pipe", err);
  }
  return std::unique_ptr<ListenerImpl>(new PosixListener(
      std::string(name), options, std::string(), std::move(listen_fd),
      UniqueFd(), UniqueFd(), UniqueFd(wake[0]), UniqueFd(wake[1])));
}

// Gives the freshly bound (not yet listening) socket file at `path` exactly
// `mode` and, if `group` >= 0, that group, without following a link that
// might have replaced it; then checks the result.
absl::Status SetSocketAccess(absl::string_view name, const std::string& path,
                             mode_t mode, int64_t group) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    return ErrnoError(kListen, name,
                      absl::StrCat("cannot inspect \"", path, "\" after bind"),
                      err);
  }
  if (!S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid()) {
    return MakeError(absl::StatusCode::kPermissionDenied, kListen, name,
                     absl::StrCat("\"", path,
                                  "\" was replaced right after "
                                  "bind (is its directory writable by "
                                  "others?)"));
  }
  if (group >= 0 && st.st_gid != static_cast<gid_t>(group)) {
    if (::lchown(path.c_str(), static_cast<uid_t>(-1),
                 static_cast<gid_t>(group)) != 0) {
      const int err = errno;
      return ErrnoError(
          kListen, name,
          absl::StrCat("cannot give \"", path, "\" to group ", group), err);
    }
  }
  // Only ever widens (bind used at most `mode`, less the umask), or, where
  // fchmod before bind has no effect, narrows a socket nobody can connect
  // to yet (listen() comes later). chown may have cleared nothing we need:
  // sockets have no set-id bits.
  if ((st.st_mode & 07777) != mode) {
    if (::fchmodat(AT_FDCWD, path.c_str(), mode, AT_SYMLINK_NOFOLLOW) != 0) {
      const int err = errno;
      return ErrnoError(kListen, name,
                        absl::StrCat("cannot set the mode of \"", path, "\""),
                        err);
    }
  }
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) ||
      (st.st_mode & 07777) != mode || st.st_uid != ::geteuid() ||
      (group >= 0 && st.st_gid != static_cast<gid_t>(group))) {
    return MakeError(absl::StatusCode::kPermissionDenied, kListen, name,
                     absl::StrCat("\"", path,
                                  "\" does not have the mode and "
                                  "owner of the access policy after bind"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ListenerImpl>> Listen(
    absl::string_view name, const ListenerOptions& options) {
  if (IsAbstractName(name)) return ListenAbstract(name, options);
  const mode_t socket_mode = SocketModeFor(options.access_policy);
  const mode_t file_mode = MetaModeFor(options.access_policy);
  const int64_t group = GroupFor(options.access_policy);
  absl::StatusOr<std::string> path_or = SocketPathFor(kListen, name, true);
  if (!path_or.ok()) return path_or.status();
  const std::string socket_path = *std::move(path_or);

  int wake[2];
  if (!MakePipe(wake)) {
    const int err = errno;
    return ErrnoError(kListen, name, "cannot create the wake-up pipe", err);
  }
  UniqueFd wake_read(wake[0]);
  UniqueFd wake_write(wake[1]);

  absl::StatusOr<UniqueFd> lock_or =
      AcquireNameLock(kListen, name, LockPathFor(socket_path));
  if (!lock_or.ok()) return lock_or.status();
  UniqueFd lock_fd = *std::move(lock_or);
  CreateUndo undo(socket_path, lock_fd.get());

  // We hold the name: any earlier canal listener of this name is dead, and
  // the metadata and slot paths are ours to clear.
  absl::Status cleared = RemoveLeftovers(kListen, name, socket_path);
  if (!cleared.ok()) return cleared;
  struct stat st;
  if (::lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return MakeError(
          absl::StatusCode::kAlreadyExists, kListen, name,
          absl::StrCat("\"", socket_path, "\" exists and is not a socket"));
    }
    // A socket nobody canal-locked: a crashed listener's leftover, or a
    // program that is not canal serving it. Only a connect tells them apart.
    UniqueFd probe(MakeStreamSocket());
    if (!probe.valid()) {
      const int err = errno;
      return ErrnoError(kListen, name, "cannot create a socket", err);
    }
    sockaddr_un addr;
    const socklen_t len = MakeSockaddr(socket_path, &addr);
    int rc;
    do {
      rc = ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), len);
    } while (rc != 0 && errno == EINTR);
    const int err = rc == 0 ? 0 : errno;
    if (rc == 0 || err == EINPROGRESS || err == EAGAIN) {
      return MakeError(absl::StatusCode::kAlreadyExists, kListen, name,
                       absl::StrCat("a program that is not a canal listener "
                                    "is serving \"",
                                    socket_path, "\""));
    }
    if (err != ECONNREFUSED && err != ENOENT) {
      return ErrnoError(kListen, name,
                        absl::StrCat("cannot probe the existing socket \"",
                                     socket_path, "\""),
                        err);
    }
    // Stale: reclaim it.
    if (::unlink(socket_path.c_str()) != 0 && errno != ENOENT) {
      const int unlink_err = errno;
      return ErrnoError(
          kListen, name,
          absl::StrCat("cannot remove the stale socket \"", socket_path, "\""),
          unlink_err);
    }
  } else if (errno != ENOENT) {
    const int err = errno;
    return ErrnoError(kListen, name,
                      absl::StrCat("cannot inspect \"", socket_path, "\""),
                      err);
  }

  undo.SlotsMade(options.max_instances);
  absl::Status slots = CreateSlots(kListen, name, socket_path,
                                   options.max_instances, file_mode, group);
  if (!slots.ok()) return slots;

  UniqueFd listen_fd(MakeStreamSocket());
  if (!listen_fd.valid()) {
    const int err = errno;
    return ErrnoError(kListen, name, "cannot create a socket", err);
  }
#if defined(__linux__)
  // Linux creates the socket file with the mode of the socket's inode less
  // the umask, so the file never exists with more than `socket_mode`.
  // (Elsewhere this fails or is ignored; SetSocketAccess fixes the mode
  // before listen() either way.)
  ::fchmod(listen_fd.get(), socket_mode);
#endif
  sockaddr_un addr;
  const socklen_t addr_len = MakeSockaddr(socket_path, &addr);
  if (::bind(listen_fd.get(), reinterpret_cast<sockaddr*>(&addr), addr_len) !=
      0) {
    const int err = errno;
    // EADDRINUSE: something appeared at the path since we looked.
    return ErrnoError(kListen, name,
                      absl::StrCat("cannot bind \"", socket_path, "\""), err);
  }
  undo.Bound();
  absl::Status socket_access =
      SetSocketAccess(name, socket_path, socket_mode, group);
  if (!socket_access.ok()) return socket_access;
  // A full backlog makes clients retry; SOMAXCONN lets a burst of clients
  // connect with nobody in Accept, as Windows' queued instances do.
  if (::listen(listen_fd.get(), SOMAXCONN) != 0) {
    const int err = errno;
    return ErrnoError(kListen, name, "listen failed", err);
  }
  ListenerMeta meta;
  meta.mode = options.mode;
  meta.access = options.access;
  meta.max_instances = options.max_instances;
  meta.max_message_size = options.max_message_size;
  meta.buffer_size = options.buffer_size;
  meta.pid = static_cast<int64_t>(::getpid());
  meta.shared_memory = OffersSharedMemory(options);
  // Published once the socket accepts, so a client that finds the metadata
  // can connect; until then canal clients see a held lock and wait.
  absl::StatusOr<UniqueFd> meta_fd =
      PublishMeta(kListen, name, socket_path, meta, file_mode, group);
  if (!meta_fd.ok()) return meta_fd.status();
  undo.Dismiss();
  return std::unique_ptr<ListenerImpl>(new PosixListener(
      std::string(name), options, socket_path, std::move(listen_fd),
      std::move(lock_fd), *std::move(meta_fd), std::move(wake_read),
      std::move(wake_write)));
}

}  // namespace posix

absl::StatusOr<std::unique_ptr<ListenerImpl>> BackendListen(
    absl::string_view name, const ListenerOptions& options) {
  return posix::Listen(name, options);
}

}  // namespace internal
}  // namespace canal
