// SPDX-License-Identifier: Apache-2.0
// Moving data between a canal channel and a local byte stream (standard
// input and output, or a child's pipes), both directions, as `connect`,
// `serve` and `serve --exec` do. In message mode each message is carried on
// the stream in a MessageFormat; every chunk or message can be dumped.
//
//   canal_cli::RelayOptions options;
//   absl::Status down = canal_cli::ChannelToLocal(channel, write, options);
//   absl::Status up = canal_cli::LocalToChannel(read, channel, options);

#ifndef CANAL_TOOLS_CANAL_RELAY_H_
#define CANAL_TOOLS_CANAL_RELAY_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "canal/canal.h"
#include "tools/canal/dump.h"
#include "tools/canal/message_format.h"

namespace canal_cli {

// Reads some bytes into the buffer, blocking until at least one is there;
// 0 at end of the stream.
using ReadFn = std::function<absl::StatusOr<size_t>(absl::Span<char>)>;

// Writes all of the bytes.
using WriteFn = std::function<absl::Status(absl::string_view)>;

// How a relay shows the channel's data on the local side.
struct RelayOptions {
  // How messages are written to and cut from the local stream (message
  // mode only; byte mode passes bytes through unchanged).
  MessageFormat format = MessageFormat::kLines;
  // Where each chunk or message is recorded; null: nowhere.
  const Dumper* dumper = nullptr;
  // The client number for the dump (0: none).
  int client = 0;
};

// Copies what arrives on `channel` to `write` until the peer finishes.
// Returns OK at the end of the stream, Cancelled if the channel was closed
// meanwhile, the channel's error, or the first error of `write`.
absl::Status ChannelToLocal(canal::Channel& channel, const WriteFn& write,
                            const RelayOptions& options);

// Copies `read` into `channel` until `read` returns 0 (message mode: cut
// into messages by options.format, a last unterminated line included).
// Returns OK at the end of input, the error of `read` (Cancelled from an
// interrupted InputPump), a malformed-input error of MessageReader, or the
// channel's error.
absl::Status LocalToChannel(const ReadFn& read, canal::Channel& channel,
                            const RelayOptions& options);

// Tells the peer that nothing more will be sent while still receiving
// (half-close): shutdown(SHUT_WR) on the POSIX socket, so the peer reads the
// end of the stream and can still reply. Windows named pipes have no
// half-close: nothing happens there, and the peer sees the end only when
// the channel is closed. Must not run concurrently with channel.Close()
// (the descriptor could be reused meanwhile): callers serialise the two.
void FinishSending(canal::Channel& channel);

// A channel's read end as a ReadFn: OutOfRange (end of stream) becomes 0.
ReadFn ChannelReader(canal::Channel* channel);

// Reads a blocking source (standard input) on a thread of its own, one chunk
// ahead, so that a relay can stop without waiting for input that may never
// come, and several relays in turn (serve's clients) share one input.
// Thread-safe.
class InputPump {
 public:
  // Starts the reading thread. An empty `read` is an input that has ended.
  explicit InputPump(ReadFn read);
  // Stops the thread: joins it, or detaches it if it is blocked in `read`
  // (it then ends when `read` returns).
  ~InputPump();
  InputPump(const InputPump&) = delete;
  InputPump& operator=(const InputPump&) = delete;

  // Copies the next bytes of input into `buffer`, blocking until there are
  // some. Returns 0 at the end of input (again on every later call), the
  // error of the source, or Cancelled once `Interrupt` has been called
  // (until `Rearm`).
  absl::StatusOr<size_t> Read(absl::Span<char> buffer);

  // Wakes a blocked `Read` (and fails later ones) with Cancelled. Bytes
  // already read ahead stay for the next reader.
  void Interrupt();

  // Lets `Read` return the bytes already read ahead, then fail with
  // Cancelled instead of waiting for more: the relay sends what the input
  // has delivered so far, then ends.
  void Drain();

  // Undoes `Interrupt` and `Drain` for the next relay.
  void Rearm();

  // This pump as a ReadFn. The pump must outlive it.
  ReadFn Reader();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_RELAY_H_
