// SPDX-License-Identifier: Apache-2.0
#include "tools/canal/dump.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace canal_cli {
namespace {

constexpr size_t kHexLine = 16;

bool Printable(unsigned char c) { return c >= 0x20 && c < 0x7f; }

void AppendText(absl::string_view data, std::string* out) {
  for (unsigned char c : data) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\r') {
      out->append("\\r");
    } else if (Printable(c) || c == '\n' || c == '\t') {
      out->push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(out, "\\x%02x", c);
    }
  }
  if (!data.empty() && data.back() != '\n') out->push_back('\n');
}

void AppendHex(absl::string_view data, std::string* out) {
  const int width = data.size() > 0x10000 ? 8 : 4;
  for (size_t line = 0; line < data.size(); line += kHexLine) {
    const absl::string_view part =
        data.substr(line, std::min(kHexLine, data.size() - line));
    absl::StrAppendFormat(out, "  %0*x ", width, line);
    for (size_t i = 0; i < kHexLine; ++i) {
      if (i < part.size()) {
        absl::StrAppendFormat(out, " %02x",
                              static_cast<unsigned char>(part[i]));
      } else {
        out->append("   ");
      }
    }
    out->append("  ");
    for (unsigned char c : part) {
      out->push_back(Printable(c) ? static_cast<char>(c) : '.');
    }
    out->push_back('\n');
  }
}

}  // namespace

std::string FormatDump(DumpFormat format, const DumpRecord& record) {
  if (format == DumpFormat::kNone) return "";
  std::string out =
      absl::StrCat(record.direction == Direction::kSent ? ">" : "<", " ");
  if (record.client > 0) absl::StrAppend(&out, "client ", record.client, ": ");
  if (record.message) out.append("message, ");
  absl::StrAppend(&out, record.data.size(),
                  record.data.size() == 1 ? " byte\n" : " bytes\n");
  if (format == DumpFormat::kText) {
    AppendText(record.data, &out);
  } else {
    AppendHex(record.data, &out);
  }
  return out;
}

void Dumper::Record(const DumpRecord& record) const {
  if (!enabled() || err_ == nullptr) return;
  (void)err_->Write(FormatDump(format_, record));
}

}  // namespace canal_cli
