// SPDX-License-Identifier: Apache-2.0
// The Windows command-line quoting (src/internal/command_line.h), tested on
// every platform against fixed cases and against a splitter written from
// the documented CommandLineToArgvW / Microsoft C runtime rules.

#include "src/internal/command_line.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal::internal::AppendQuotedWindowsArgument;
using canal::internal::BuildWindowsCommandLine;

std::string Quote(const std::string& arg) {
  std::string out;
  AppendQuotedWindowsArgument(arg, &out);
  return out;
}

// Splits a command line as CommandLineToArgvW does (the program name by its
// own rule, then the backslash/quote rules for the arguments).
std::vector<std::string> Split(const std::string& line) {
  std::vector<std::string> args;
  size_t i = 0;
  std::string program;
  if (i < line.size() && line[i] == '"') {
    ++i;
    while (i < line.size() && line[i] != '"') program.push_back(line[i++]);
    if (i < line.size()) ++i;
  } else {
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') {
      program.push_back(line[i++]);
    }
  }
  args.push_back(program);
  while (true) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) break;
    std::string arg;
    bool quoted = false;
    while (i < line.size()) {
      if (!quoted && (line[i] == ' ' || line[i] == '\t')) break;
      if (line[i] == '\\') {
        size_t n = 0;
        while (i < line.size() && line[i] == '\\') {
          ++n;
          ++i;
        }
        if (i < line.size() && line[i] == '"') {
          arg.append(n / 2, '\\');
          if (n % 2 == 1) {
            arg.push_back('"');
            ++i;
          }
        } else {
          arg.append(n, '\\');
        }
        continue;
      }
      if (line[i] == '"') {
        quoted = !quoted;
        ++i;
        continue;
      }
      arg.push_back(line[i++]);
    }
    args.push_back(arg);
  }
  return args;
}

TEST(CommandLineTest, QuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(Quote("plain"), "plain");
  EXPECT_EQ(Quote("back\\slash"), "back\\slash");
  EXPECT_EQ(Quote("trailing\\"), "trailing\\");
  EXPECT_EQ(Quote(""), "\"\"");
  EXPECT_EQ(Quote("with space"), "\"with space\"");
  EXPECT_EQ(Quote("tab\t"), "\"tab\t\"");
}

TEST(CommandLineTest, BackslashesBeforeQuotesAreDoubled) {
  EXPECT_EQ(Quote("a\"b"), "\"a\\\"b\"");
  EXPECT_EQ(Quote("\\\""), "\"\\\\\\\"\"");
  EXPECT_EQ(Quote("x y\\"), "\"x y\\\\\"");
  EXPECT_EQ(Quote("x y\\\\"), "\"x y\\\\\\\\\"");
  EXPECT_EQ(Quote("a\\b c"), "\"a\\b c\"");  // Not before a quote: literal.
  EXPECT_EQ(Quote("\""), "\"\\\"\"");
}

TEST(CommandLineTest, ProgramName) {
  absl::StatusOr<std::string> line =
      BuildWindowsCommandLine({"C:\\Program Files\\x.exe", "a b", ""});
  CANAL_ASSERT_OK(line);
  EXPECT_EQ(*line, "\"C:\\Program Files\\x.exe\" \"a b\" \"\"");
  line = BuildWindowsCommandLine({"C:\\dir\\"});
  CANAL_ASSERT_OK(line);
  EXPECT_EQ(*line, "C:\\dir\\");
  CANAL_EXPECT_CODE(BuildWindowsCommandLine({"a\"b"}), kInvalidArgument);
  CANAL_EXPECT_CODE(BuildWindowsCommandLine({}), kInvalidArgument);
  CANAL_EXPECT_CODE(BuildWindowsCommandLine({""}), kInvalidArgument);
  CANAL_EXPECT_CODE(BuildWindowsCommandLine({"p", std::string("\0", 1)}),
                    kInvalidArgument);
}

TEST(CommandLineTest, TrickyCasesRoundTrip) {
  const std::vector<std::string> argv = {"C:\\a b\\prog.exe",
                                         "",
                                         " ",
                                         "\"",
                                         "\\",
                                         "\\\\",
                                         "\\\"",
                                         "a\\\\\"b",
                                         "trailing\\",
                                         "two trailing\\\\",
                                         "\"\"",
                                         "a\"\"b",
                                         "x\ty",
                                         "caf\xc3\xa9",
                                         "%PATH%",
                                         "^&|<>"};
  absl::StatusOr<std::string> line = BuildWindowsCommandLine(argv);
  CANAL_ASSERT_OK(line);
  EXPECT_EQ(Split(*line), argv);
}

TEST(CommandLineTest, RandomArgumentsRoundTrip) {
  std::mt19937 rng(12345);
  const std::string alphabet = "ab \\\"\t";
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::string> argv = {"prog"};
    const int count = 1 + static_cast<int>(rng() % 4);
    for (int a = 0; a < count; ++a) {
      std::string arg;
      const int len = static_cast<int>(rng() % 8);
      for (int c = 0; c < len; ++c)
        arg.push_back(alphabet[rng() % alphabet.size()]);
      argv.push_back(arg);
    }
    absl::StatusOr<std::string> line = BuildWindowsCommandLine(argv);
    CANAL_ASSERT_OK(line);
    ASSERT_EQ(Split(*line), argv) << *line;
  }
}

}  // namespace
