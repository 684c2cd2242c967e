// SPDX-License-Identifier: Apache-2.0
// canal::Fifo: POSIX named one-way pipes (mkfifo), for interoperating with
// shell tools and programs that write to or read from a path.
//
//   absl::Status created = canal::Fifo::Create("/tmp/app.fifo", 0600);
//   if (!created.ok()) return created;
//   absl::StatusOr<canal::Channel> in = canal::Fifo::OpenRead("/tmp/app.fifo");
//   if (!in.ok()) return in.status();
//   // elsewhere: sh -c 'echo hello > /tmp/app.fifo'
//   char buf[256];
//   absl::StatusOr<canal::ReadResult> r = in->Read(absl::MakeSpan(buf));
//
// How a FIFO differs from a `Listener`:
// - One-way: one side only reads, the other only writes (the channels are
//   byte mode; FailedPrecondition for the wrong direction).
// - No connections: every writer that opens the path writes into the same
//   stream, and every reader reads from it; there is no Accept, no peer
//   identity, no per-client channel.
// - Writers interleave: a write of at most PIPE_BUF bytes (4096 on Linux,
//   512 guaranteed by POSIX) is atomic, so whole lines from several writers
//   never mix; longer writes may be split and interleaved.
// - The reader sees end of stream (OutOfRange) once every writer has closed.
// - No identity: canal cannot tell who made a FIFO or who has it open.
//
// Windows has no FIFOs: every function returns Unimplemented there (use
// `CreatePipe` for related processes, or a `Listener` for a named endpoint).

#ifndef CANAL_FIFO_H_
#define CANAL_FIFO_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "canal/channel.h"

namespace canal {

class Fifo {
 public:
  Fifo() = delete;

  // Creates a FIFO at `path` with exactly the permission bits `mode` (a
  // subset of 0777; the process umask is not applied). The mode is set
  // through a descriptor of the new FIFO, never by walking `path` again, so
  // in a directory others can write nothing but that FIFO is ever changed.
  // Returns AlreadyExists if anything exists at `path`, NotFound if the
  // directory is missing, PermissionDenied (also if the FIFO was replaced
  // at `path` right after it was made), InvalidArgument for an empty path
  // or a mode outside 0777; Unimplemented on Windows.
  static absl::Status Create(absl::string_view path, uint32_t mode = 0600);

  // Opens the read end. Never blocks (the FIFO is opened non-blocking): the
  // channel exists before any writer. Until the first byte arrives a Read
  // waits for a writer instead of reporting end of stream (canal holds a
  // private write end until then); after that, OutOfRange once every writer
  // has closed. Consequently a writer that opens and closes without writing
  // anything is not noticed. The private write end is opened through the
  // read end's descriptor, so it is on the same FIFO. Returns NotFound if
  // nothing is at `path`, InvalidArgument if it is not a FIFO (a symbolic
  // link at `path` is not followed), PermissionDenied; Unimplemented on
  // Windows.
  static absl::StatusOr<Channel> OpenRead(absl::string_view path);

  // Opens the write end, waiting up to `timeout` for a reader to open the
  // FIFO (open(O_WRONLY | O_NONBLOCK) fails with ENXIO until then; canal
  // retries with a short backoff, 1 to 20 ms). Returns DeadlineExceeded if no
  // reader came, NotFound, InvalidArgument if `path` is not a FIFO (a
  // symbolic link at `path` is not followed), PermissionDenied;
  // Unimplemented on Windows. Writes to the channel get Unavailable once
  // every reader has closed (no SIGPIPE).
  static absl::StatusOr<Channel> OpenWrite(
      absl::string_view path, absl::Duration timeout = absl::Seconds(5));

  // Removes the FIFO at `path`. Returns NotFound if nothing is there,
  // FailedPrecondition if it is not a FIFO (it is left alone),
  // PermissionDenied; Unimplemented on Windows. Open channels keep working.
  static absl::Status Remove(absl::string_view path);
};

}  // namespace canal

#endif  // CANAL_FIFO_H_
