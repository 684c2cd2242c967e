// SPDX-License-Identifier: Apache-2.0
// How messages travel over a byte stream (standard input and output, or a
// child's pipes) when the pipe is in message mode:
//
//   kLines   one message per line: "\n" ends a message (a "\r" before it is
//            dropped); not binary-safe. Output: the message, then "\n".
//   kHex     one message per line in hexadecimal (upper or lower case;
//            spaces and tabs ignored; an empty line is an empty message).
//            Output: lower-case hex digits, then "\n". Binary-safe.
//   kFrames  length-prefixed frames: a 4-byte unsigned big-endian length N,
//            then N bytes of message. Binary-safe; the same on input and
//            output.
//
// A message in any format is at most kMaxStreamMessage bytes. Input that
// ends in the middle of a line is one last message; input that ends in the
// middle of a frame is an error.

#ifndef CANAL_TOOLS_CANAL_MESSAGE_FORMAT_H_
#define CANAL_TOOLS_CANAL_MESSAGE_FORMAT_H_

#include <cstddef>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace canal_cli {

// See the file comment.
enum class MessageFormat { kLines, kHex, kFrames };

// The largest message on a stream: canal's default
// ListenerOptions::max_message_size (64 MiB). It bounds what a reader
// buffers however hostile the input.
inline constexpr size_t kMaxStreamMessage = size_t{64} << 20;

// Cuts a byte stream into messages. Not thread-safe.
class MessageReader {
 public:
  // Receives each complete message; a non-OK status stops the reader and
  // is returned by Add or Finish.
  using EmitFn = absl::FunctionRef<absl::Status(absl::string_view)>;

  explicit MessageReader(MessageFormat format) : format_(format) {}

  // Takes the next bytes of the stream and emits every message they
  // complete. Returns InvalidArgument for a line that is not hex (kHex),
  // ResourceExhausted for a message over kMaxStreamMessage, or the first
  // error of `emit`.
  absl::Status Add(absl::string_view data, EmitFn emit);

  // The stream ended: emits an unterminated last line as a message. Returns
  // DataLoss if it ended inside a frame (kFrames), else as for Add.
  absl::Status Finish(EmitFn emit);

 private:
  absl::Status EmitLine(absl::string_view line, EmitFn emit);

  MessageFormat format_;
  std::string pending_;  // bytes of an incomplete line or frame
  size_t scanned_ = 0;   // kLines/kHex: pending_[0, scanned_) has no "\n"
  size_t line_ = 0;      // lines seen, for error messages
};

// The bytes that stand for `message` on a stream in `format`.
std::string EncodeMessage(MessageFormat format, absl::string_view message);

// Lower-case hex of `data`, two digits a byte, nothing between them.
std::string EncodeHex(absl::string_view data);

// Decodes hex digits (either case), ignoring spaces and tabs. Returns
// InvalidArgument for any other character or an odd number of digits.
absl::StatusOr<std::string> DecodeHex(absl::string_view text);

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_MESSAGE_FORMAT_H_
