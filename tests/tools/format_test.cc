// SPDX-License-Identifier: Apache-2.0
// The text formats of the `canal` tool, on both backends: message formats
// (lines, hex, frames) against hostile input, the traffic dump, --exec's
// word splitting, the lock-file line that `list` reads, and list's output.

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_util.h"
#include "tools/canal/dump.h"
#include "tools/canal/flags.h"
#include "tools/canal/list.h"
#include "tools/canal/message_format.h"

namespace {

using canal_cli::MessageFormat;
using canal_cli::MessageReader;

// Feeds `input` in pieces of `step` bytes and returns the messages, or the
// first error.
absl::StatusOr<std::vector<std::string>> ReadAll(MessageFormat format,
                                                 const std::string& input,
                                                 size_t step = 1) {
  std::vector<std::string> out;
  MessageReader reader(format);
  auto emit = [&out](absl::string_view m) {
    out.emplace_back(m);
    return absl::OkStatus();
  };
  for (size_t i = 0; i < input.size(); i += step) {
    absl::Status s = reader.Add(absl::string_view(input).substr(i, step), emit);
    if (!s.ok()) return s;
  }
  absl::Status s = reader.Finish(emit);
  if (!s.ok()) return s;
  return out;
}

std::string Frame(const std::string& m) {
  return canal_cli::EncodeMessage(MessageFormat::kFrames, m);
}

TEST(MessageFormatTest, LinesDropCarriageReturnAndKeepALastPartialLine) {
  for (size_t step : {1, 3, 100}) {
    absl::StatusOr<std::vector<std::string>> m =
        ReadAll(MessageFormat::kLines, "alpha\r\nbeta\n\ngamma", step);
    CANAL_ASSERT_OK(m);
    EXPECT_EQ(*m, (std::vector<std::string>{"alpha", "beta", "", "gamma"}));
  }
  EXPECT_EQ(canal_cli::EncodeMessage(MessageFormat::kLines, "x"), "x\n");
}

TEST(MessageFormatTest, HexIsBinarySafeAndStrict) {
  const std::string all = canal_test::Pattern(256);
  const std::string encoded =
      canal_cli::EncodeMessage(MessageFormat::kHex, all) +
      canal_cli::EncodeMessage(MessageFormat::kHex, "");
  absl::StatusOr<std::vector<std::string>> m =
      ReadAll(MessageFormat::kHex, encoded, 7);
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, (std::vector<std::string>{all, ""}));
  // Either case, spaces and tabs between digits, CRLF.
  m = ReadAll(MessageFormat::kHex, "48 65\t6C6c 6F\r\n");
  CANAL_ASSERT_OK(m);
  EXPECT_EQ(*m, (std::vector<std::string>{"Hello"}));
  CANAL_EXPECT_CODE(ReadAll(MessageFormat::kHex, "4x\n"), kInvalidArgument);
  CANAL_EXPECT_CODE(ReadAll(MessageFormat::kHex, "abc\n"), kInvalidArgument);
  CANAL_EXPECT_CODE(canal_cli::DecodeHex("0g"), kInvalidArgument);
}

TEST(MessageFormatTest, FramesRoundTripEveryByteAndEmptyMessages) {
  const std::string all = canal_test::Pattern(1000, 7);
  const std::string input = Frame(all) + Frame("") + Frame("\n\r\0x");
  for (size_t step : {1, 5, 4096}) {
    absl::StatusOr<std::vector<std::string>> m =
        ReadAll(MessageFormat::kFrames, input, step);
    CANAL_ASSERT_OK(m);
    ASSERT_EQ(m->size(), 3u);
    EXPECT_EQ((*m)[0], all);
    EXPECT_EQ((*m)[1], "");
    EXPECT_EQ((*m)[2], "\n\r\0x");
  }
  // The length is 4 bytes, big-endian.
  EXPECT_EQ(Frame("ab"), std::string("\0\0\0\2ab", 6));
}

TEST(MessageFormatTest, HostileFramesFailWithoutBuffering) {
  // A header announcing 4 GiB - 1 is refused at once, before any payload.
  CANAL_EXPECT_CODE(ReadAll(MessageFormat::kFrames, "\xff\xff\xff\xff"),
                    kResourceExhausted);
  const std::string just_over =
      std::string("\x04\x00\x00\x01", 4);  // 64 MiB + 1
  CANAL_EXPECT_CODE(ReadAll(MessageFormat::kFrames, just_over),
                    kResourceExhausted);
  // End of input inside a header or a payload is an error, not a message.
  CANAL_EXPECT_CODE(ReadAll(MessageFormat::kFrames, std::string("\0\0", 2)),
                    kDataLoss);
  CANAL_EXPECT_CODE(
      ReadAll(MessageFormat::kFrames, std::string("\0\0\0\5ab", 6)), kDataLoss);
}

TEST(MessageFormatTest, AnEndlessLineIsRefused) {
  MessageReader reader(MessageFormat::kLines);
  const std::string block(1 << 20, 'x');
  absl::Status status;
  auto emit = [](absl::string_view) { return absl::OkStatus(); };
  for (int i = 0; i < 80 && status.ok(); ++i) status = reader.Add(block, emit);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
}

TEST(MessageFormatTest, EmitErrorsStopTheReader) {
  MessageReader reader(MessageFormat::kLines);
  int calls = 0;
  absl::Status status = reader.Add("a\nb\nc\n", [&calls](absl::string_view) {
    ++calls;
    return absl::UnavailableError("gone");
  });
  EXPECT_TRUE(absl::IsUnavailable(status));
  EXPECT_EQ(calls, 1);
}

TEST(DumpTest, TextEscapesWhatATerminalWouldInterpret) {
  canal_cli::DumpRecord r;
  r.direction = canal_cli::Direction::kSent;
  r.data = absl::string_view("hi\\\r\x1b[2J\x00\n", 10);
  EXPECT_EQ(canal_cli::FormatDump(canal_cli::DumpFormat::kText, r),
            "> 10 bytes\nhi\\\\\\r\\x1b[2J\\x00\n");
  r.direction = canal_cli::Direction::kReceived;
  r.client = 3;
  r.message = true;
  r.data = "x";
  EXPECT_EQ(canal_cli::FormatDump(canal_cli::DumpFormat::kText, r),
            "< client 3: message, 1 byte\nx\n");
  EXPECT_EQ(canal_cli::FormatDump(canal_cli::DumpFormat::kNone, r), "");
}

TEST(DumpTest, HexLinesHaveOffsetBytesAndAscii) {
  canal_cli::DumpRecord r;
  r.data = "0123456789abcdefXY\x01";
  const std::string out = canal_cli::FormatDump(canal_cli::DumpFormat::kHex, r);
  EXPECT_EQ(out,
            "> 19 bytes\n"
            "  0000  30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66  "
            "0123456789abcdef\n"
            "  0010  58 59 01                                         XY.\n");
}

TEST(SplitCommandTest, QuotesAndBackslashes) {
  using V = std::vector<std::string>;
  auto split = [](absl::string_view t) {
    absl::StatusOr<V> v = canal_cli::SplitCommand(t);
    return v.ok() ? *v : V{"<error>"};
  };
  EXPECT_EQ(split("tr a-z A-Z"), (V{"tr", "a-z", "A-Z"}));
  EXPECT_EQ(split("  a\t 'b c'  \"d \\\" e\" ''"),
            (V{"a", "b c", "d \" e", ""}));
  EXPECT_EQ(split("C:\\tools\\x.exe \\n"), (V{"C:\\tools\\x.exe", "\\n"}));
  EXPECT_EQ(split("a'b'\"c\"d"), (V{"abcd"}));
  CANAL_EXPECT_CODE(canal_cli::SplitCommand("echo 'open"), kInvalidArgument);
  CANAL_EXPECT_CODE(canal_cli::SplitCommand("echo \"open"), kInvalidArgument);
  CANAL_EXPECT_CODE(canal_cli::SplitCommand(" \t"), kInvalidArgument);
}

TEST(LockLineTest, ParsesTheDocumentedLine) {
  canal_cli::ListedPipe p;
  ASSERT_TRUE(canal_cli::ParseMetaLine(
      "canal 1 mode=message access=inbound max_instances=4 "
      "max_message_size=67108864 buffer_size=65536 pid=1234 future=x\n",
      &p));
  EXPECT_EQ(p.mode, "message");
  EXPECT_EQ(p.access, "inbound");
  EXPECT_EQ(p.max_instances, 4);
  EXPECT_EQ(p.pid, 1234);
}

TEST(LockLineTest, RefusesWhatIsNotACompleteVersion1Line) {
  for (const char* line :
       {"", "canal 1 mode=byte access=duplex pid=1",  // no newline yet
        "canal 2 mode=byte access=duplex\n", "cana 1 mode=byte access=duplex\n",
        "canal 1 mode=stream access=duplex\n", "canal 1 mode=byte\n",
        "canal 1 mode=byte access=sideways\n",
        "canal 1 mode=byte access=duplex max_instances=999\n",
        "canal 1 mode=byte access=duplex pid=-4\n"}) {
    canal_cli::ListedPipe p;
    p.name = "unchanged";
    EXPECT_FALSE(canal_cli::ParseMetaLine(line, &p)) << line;
    EXPECT_FALSE(p.mode.has_value()) << line;
    EXPECT_EQ(p.name, "unchanged");
  }
}

TEST(ListFormatTest, JsonEscapesNamesAndMarksTheUnknown) {
  canal_cli::ListedPipe p;
  p.name = "we\"ird\\na\nme\x01";
  p.path = "/x/" + p.name;
  p.mode = "byte";
  p.max_instances = 0;
  p.user = "r\xff";  // not UTF-8
  const std::string text = canal_cli::FormatJson({p});
  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
  nlohmann::json parsed = nlohmann::json::parse(text);
  ASSERT_TRUE(parsed.is_array());
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(parsed[0]["name"], p.name);
  EXPECT_EQ(parsed[0]["path"], p.path);
  EXPECT_EQ(parsed[0]["mode"], "byte");
  EXPECT_TRUE(parsed[0]["access"].is_null());
  EXPECT_TRUE(parsed[0]["pid"].is_null());
  EXPECT_EQ(parsed[0]["max_instances"], 0);
  EXPECT_TRUE(parsed[0]["user"].is_string());  // replaced, not thrown
  EXPECT_EQ(canal_cli::FormatJson({}), "[]");
}

TEST(ListFormatTest, TableHasAHeaderAndDashesForTheUnknown) {
  canal_cli::ListedPipe p;
  p.name = "svc";
  p.mode = "message";
  p.access = "duplex";
  p.max_instances = 4;
  p.instances = 1;
  const std::string table = canal_cli::FormatTable({p});
  EXPECT_TRUE(
      absl::StartsWith(table, "NAME  MODE     ACCESS  INSTANCES  PID  USER\n"))
      << table;
  EXPECT_TRUE(
      absl::StrContains(table, "svc   message  duplex  1/4        -    -\n"))
      << table;
}

}  // namespace
