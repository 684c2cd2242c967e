// SPDX-License-Identifier: Apache-2.0
// `--dump text|hex`: the traffic of `serve` and `connect` on stderr, like
// socat -v / -x. Each chunk read from or written to the pipe is one record:
// a header line, then the bytes. For instance, `connect --dump text`
// sending "hi\n" and serve receiving it as message 1 of client 2:
//
//   > 3 bytes                      (connect: ">" sent into the pipe)
//   hi
//   < client 2: message, 3 bytes   (serve: "<" received from the pipe)
//   hi
//
// text: the bytes as they are for printable ASCII, tab and newline, "\\"
// for a backslash, "\r" for a carriage return, "\xNN" for every other
// byte; a newline follows unless the data ended with one.
// hex: lines of 16 bytes: a 4-digit hex offset (8 digits past 64 KiB), the
// bytes in hex, and the bytes as ASCII with "." for the unprintable.

#ifndef CANAL_TOOLS_CANAL_DUMP_H_
#define CANAL_TOOLS_CANAL_DUMP_H_

#include <string>

#include "absl/strings/string_view.h"
#include "tools/canal/output.h"

namespace canal_cli {

// What --dump shows.
enum class DumpFormat { kNone, kText, kHex };

// Which way a chunk went, seen from the tool.
enum class Direction {
  kSent,      // ">": into the pipe.
  kReceived,  // "<": out of the pipe.
};

// One record of the traffic.
struct DumpRecord {
  Direction direction = Direction::kSent;
  int client = 0;        // serve's client number; 0: no client (connect).
  bool message = false;  // A whole message (message mode).
  absl::string_view data;
};

// The record as text in `format` (empty for kNone).
std::string FormatDump(DumpFormat format, const DumpRecord& record);

// Writes records to a SyncWriter, so that the two directions of a relay
// (and several clients) never interleave within a record.
class Dumper {
 public:
  // `err` may be null when `format` is kNone; it must outlive the Dumper.
  Dumper(DumpFormat format, SyncWriter* err) : format_(format), err_(err) {}

  // Whether records are written at all.
  bool enabled() const { return format_ != DumpFormat::kNone; }

  // Writes one record (nothing for kNone). A failing stderr is ignored: the
  // dump is a side view and must not end the relay.
  void Record(const DumpRecord& record) const;

 private:
  DumpFormat format_;
  SyncWriter* err_;
};

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_DUMP_H_
