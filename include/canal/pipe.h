// SPDX-License-Identifier: Apache-2.0
// canal::CreatePipe: an anonymous one-way pipe, as two connected channels.
//
//   absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
//   if (!pipe.ok()) return pipe.status();
//   absl::Status written = pipe->write_end.Write("hello");
//   if (!written.ok()) return written;
//   char buf[16];
//   absl::StatusOr<canal::ReadResult> r =
//       pipe->read_end.Read(absl::MakeSpan(buf), absl::Seconds(1));
//
// Both ends are byte-mode `Channel`s with the behaviour of named channels:
// timeouts (a timed-out Read consumes nothing), `Close()` from another thread
// wakes a blocked Read or Write with Cancelled, the reader gets everything
// written and then OutOfRange once the write end is closed, a writer whose
// reader is gone gets Unavailable (never SIGPIPE). Writing on the read end
// (or reading on the write end) is FailedPrecondition.
//
// POSIX: a pipe(2) made close-on-exec at birth with pipe2(O_CLOEXEC), then
// O_NONBLOCK. Where pipe2 is missing (macOS) it is pipe() and then
// FD_CLOEXEC: a fork+exec on another thread in between may inherit the
// ends. Windows: anonymous
// pipes cannot do overlapped I/O, so this is a uniquely named pipe
// `\\.\pipe\canal-anon-<pid>-<counter>-<random>` with one instance, opened
// overlapped at both ends and refusing remote clients (as libuv and CPython
// do). Neither end is inheritable; to hand one to a child process use
// `SubprocessOptions::extra` (canal/subprocess.h).

#ifndef CANAL_PIPE_H_
#define CANAL_PIPE_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "canal/channel.h"
#include "canal/types.h"

namespace canal {

// Options for `CreatePipe`.
struct PipeOptions {
  // Capacity hint in bytes. Windows: the pipe's buffer size (0: 64 KiB).
  // Linux: applied with F_SETPIPE_SZ, best effort (rounded up by the kernel,
  // capped by /proc/sys/fs/pipe-max-size); 0 keeps the system default
  // (64 KiB). Other POSIX systems: ignored.
  size_t buffer_size = 0;
};

// The two ends of a pipe: bytes written to `write_end` are read from
// `read_end`.
struct PipePair {
  Channel read_end;
  Channel write_end;
};

// Creates a pipe. Returns ResourceExhausted when the process or system is
// out of descriptors/handles, or the error of the failing system call.
absl::StatusOr<PipePair> CreatePipe(const PipeOptions& options = {});

// Which end of a pipe a native handle is, for `AdoptPipeEnd`.
enum class PipeEnd { kRead, kWrite };

// Wraps a pipe end received from a parent process (see
// `SubprocessOptions::extra`) or made by other code into a byte-mode Channel,
// which owns it from then on. POSIX: any pipe, FIFO or socket descriptor; it
// is made non-blocking and close-on-exec. Windows: a pipe handle opened for
// overlapped I/O (every pipe end canal creates is). Returns InvalidArgument
// for an invalid handle or an unknown `end` (the handle is left alone);
// after any other failure the handle is closed.
absl::StatusOr<Channel> AdoptPipeEnd(NativeHandle handle, PipeEnd end);

}  // namespace canal

#endif  // CANAL_PIPE_H_
