// SPDX-License-Identifier: Apache-2.0
// The raw system primitives that `canal bench` (tools/canal/) and the Google
// Benchmark suite (bench/) measure canal against: a connected Unix stream
// socket pair on POSIX, a pair of raw overlapped named-pipe handles on
// Windows, and a raw connect + write + read + close server and client on
// each. canal's own side of the comparison is in canal_pairs.h. This kit is
// a library of its own (canal_raw) so that neither user depends on the
// other.
//
//   canal_raw::PairOptions options;
//   options.message_mode = true;
//   absl::StatusOr<canal_raw::StreamPair> pair =
//       canal_raw::MakeRawPair(options);
//   pair->client->Send("ping");

#ifndef CANAL_BENCH_RAW_RAW_H_
#define CANAL_BENCH_RAW_RAW_H_

#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace canal_raw {

// One end of a connected stream, as the benchmarks drive it. Implemented
// over canal::Channel (canal_pairs.h) and over the raw primitives here.
class StreamEnd {
 public:
  virtual ~StreamEnd() = default;

  // Sends all of `data` (byte mode) or `data` as one message.
  virtual absl::Status Send(absl::string_view data) = 0;

  // Byte mode: receives at least one and up to `buffer.size()` bytes.
  // Message mode: receives one message of exactly `buffer.size()` bytes (the
  // benchmarks always know the size). Returns 0 at end of stream.
  virtual absl::StatusOr<size_t> Receive(absl::Span<char> buffer) = 0;

  // Closes this end; the peer then sees end of stream. Not concurrent with
  // Send or Receive on the same end.
  virtual void Close() = 0;

  // What carries this end's data, for reports: RawPrimitiveName() for the
  // raw ends, "pipe" or "shared memory" (canal::Channel::transport()) for
  // canal's.
  virtual std::string TransportName() const = 0;
};

// A connected pair: `server` and `client`.
struct StreamPair {
  std::unique_ptr<StreamEnd> server;
  std::unique_ptr<StreamEnd> client;
};

// How to make a pair, raw or canal.
struct PairOptions {
  // Message mode instead of byte mode.
  bool message_mode = false;
  // The largest message the pair must carry (canal's
  // ListenerOptions::max_message_size; at least 1). The raw pairs need no
  // limit.
  size_t max_message_size = 64 * 1024;
  // ListenerOptions::buffer_size for canal, and the same for the raw
  // primitive. 0, the default, gives each side its own default, which is
  // what a user compares: canal's ListenerOptions{} and, for the raw Unix
  // socket, the kernel's buffer sizes (no setsockopt). A raw named pipe has
  // no default, so there 0 means 64 KiB, which is also canal's.
  size_t buffer_size = 0;
  // canal only: its listener offers the shared-memory transport
  // (ListenerOptions::transport = kSharedMemory), and each pair does one
  // exchange each way before it is returned, which is where a channel moves
  // to its rings. The raw pairs ignore it.
  bool shared_memory = false;
};

// A raw connected pair. POSIX: socketpair(AF_UNIX, SOCK_STREAM); message
// mode sends the bytes unframed and receives exactly the known size.
// Windows: CreateNamedPipe (PIPE_TYPE_BYTE or PIPE_TYPE_MESSAGE, overlapped)
// and CreateFile on a unique name, with I/O through OVERLAPPED + an event.
// A non-zero `options.buffer_size` is applied as canal applies
// ListenerOptions::buffer_size (SO_SNDBUF/SO_RCVBUF, or the pipe's buffer
// sizes); 0 leaves the socket's buffers alone. Returns the system's error
// (errno or Windows error code in the message) if the pair cannot be made.
absl::StatusOr<StreamPair> MakeRawPair(const PairOptions& options);

// What the raw primitive is called, for reports: "unix socketpair" or
// "named pipe".
const char* RawPrimitiveName();

// A raw request/reply server on its own thread: accepts a connection, reads
// one request of the size given to `Start`, writes it back and closes; again
// until destroyed. POSIX: a Unix stream socket bound to a path in a fresh
// temporary directory; Windows: a message-mode named pipe.
class RawCallServer {
 public:
  // Starts serving requests of `request_size` bytes.
  static absl::StatusOr<std::unique_ptr<RawCallServer>> Start(
      size_t request_size);
  virtual ~RawCallServer() = default;

  // Connects, sends `request`, reads the reply of the same size into
  // `reply` and closes: the raw counterpart of canal::Call.
  virtual absl::Status Call(absl::string_view request, std::string* reply) = 0;
};

}  // namespace canal_raw

#endif  // CANAL_BENCH_RAW_RAW_H_
