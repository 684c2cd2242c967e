// The raw system primitives that `canal bench` and the Google Benchmark
// suite (bench/) measure canal against: a connected Unix stream socket pair
// on POSIX, a pair of raw overlapped named-pipe handles on Windows, and a raw
// connect + write + read + close server and client on each.

#ifndef CANAL_TOOLS_CANAL_RAW_H_
#define CANAL_TOOLS_CANAL_RAW_H_

#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace canal_cli {

// One end of a connected stream, as the benchmarks drive it. Implemented
// over canal::Channel (see bench.h) and over the raw primitives here.
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
};

// A connected pair: `server` and `client`.
struct StreamPair {
  std::unique_ptr<StreamEnd> server;
  std::unique_ptr<StreamEnd> client;
};

// A raw connected pair. POSIX: socketpair(AF_UNIX, SOCK_STREAM); message
// mode sends the bytes unframed and receives exactly the known size.
// Windows: CreateNamedPipe (PIPE_TYPE_BYTE or PIPE_TYPE_MESSAGE, overlapped)
// and CreateFile on a unique name, with I/O through OVERLAPPED + an event.
// `buffer_size` is applied as canal applies ListenerOptions::buffer_size
// (SO_SNDBUF/SO_RCVBUF, or the pipe's buffer sizes); 0 keeps the default.
absl::StatusOr<StreamPair> MakeRawPair(bool message_mode, size_t buffer_size);

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

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_RAW_H_
