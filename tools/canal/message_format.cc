// SPDX-License-Identifier: Apache-2.0
#include "tools/canal/message_format.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace canal_cli {
namespace {

constexpr size_t kFrameHeader = 4;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The longest line that can still hold a message of kMaxStreamMessage
// bytes: the message itself, or in hex two digits a byte with a space
// between bytes, plus "\r".
size_t MaxLine(MessageFormat format) {
  return format == MessageFormat::kHex ? 3 * kMaxStreamMessage + 1
                                       : kMaxStreamMessage + 1;
}

absl::Status TooLarge(size_t size) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "canal: a message of ", size, " bytes on the input is larger than ",
      kMaxStreamMessage, " bytes"));
}

}  // namespace

absl::Status MessageReader::EmitLine(absl::string_view line, EmitFn emit) {
  ++line_;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (format_ != MessageFormat::kHex) {
    if (line.size() > kMaxStreamMessage) return TooLarge(line.size());
    return emit(line);
  }
  absl::StatusOr<std::string> bytes = DecodeHex(line);
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "canal: line ", line_, " of the input: ", bytes.status().message()));
  }
  if (bytes->size() > kMaxStreamMessage) return TooLarge(bytes->size());
  return emit(*bytes);
}

absl::Status MessageReader::Add(absl::string_view data, EmitFn emit) {
  pending_.append(data.data(), data.size());
  size_t start = 0;
  absl::Status status;
  if (format_ == MessageFormat::kFrames) {
    while (status.ok() && pending_.size() - start >= kFrameHeader) {
      const auto* p = reinterpret_cast<const unsigned char*>(&pending_[start]);
      const size_t size = (size_t{p[0]} << 24) | (size_t{p[1]} << 16) |
                          (size_t{p[2]} << 8) | size_t{p[3]};
      if (size > kMaxStreamMessage) {
        status = TooLarge(size);
        break;
      }
      if (pending_.size() - start - kFrameHeader < size) break;
      status = emit(absl::string_view(&pending_[start + kFrameHeader], size));
      start += kFrameHeader + size;
    }
  } else {
    size_t nl;
    while (status.ok() &&
           (nl = pending_.find('\n', std::max(start, scanned_))) !=
               std::string::npos) {
      status = EmitLine(absl::string_view(&pending_[start], nl - start), emit);
      start = nl + 1;
    }
    if (status.ok() && pending_.size() - start > MaxLine(format_)) {
      status = TooLarge(pending_.size() - start);
    }
  }
  pending_.erase(0, start);
  scanned_ = pending_.size();
  return status;
}

absl::Status MessageReader::Finish(EmitFn emit) {
  if (pending_.empty()) return absl::OkStatus();
  std::string rest;
  rest.swap(pending_);
  scanned_ = 0;
  if (format_ == MessageFormat::kFrames) {
    return absl::DataLossError(
        absl::StrCat("canal: the input ended inside a frame (", rest.size(),
                     " bytes of it were there)"));
  }
  return EmitLine(rest, emit);
}

std::string EncodeHex(absl::string_view data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (unsigned char c : data) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

absl::StatusOr<std::string> DecodeHex(absl::string_view text) {
  std::string out;
  out.reserve(text.size() / 2);
  int high = -1;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == ' ' || c == '\t') continue;
    const int v = HexValue(c);
    if (v < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("not hex: character ", i + 1, " is \"",
                       absl::CHexEscape(absl::string_view(&text[i], 1)), "\""));
    }
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<char>((high << 4) | v));
      high = -1;
    }
  }
  if (high >= 0) {
    return absl::InvalidArgumentError("not hex: an odd number of digits");
  }
  return out;
}

std::string EncodeMessage(MessageFormat format, absl::string_view message) {
  switch (format) {
    case MessageFormat::kHex:
      return EncodeHex(message) + "\n";
    case MessageFormat::kFrames: {
      const uint32_t size = static_cast<uint32_t>(message.size());
      std::string out(kFrameHeader, '\0');
      out[0] = static_cast<char>(size >> 24);
      out[1] = static_cast<char>(size >> 16);
      out[2] = static_cast<char>(size >> 8);
      out[3] = static_cast<char>(size);
      out.append(message.data(), message.size());
      return out;
    }
    case MessageFormat::kLines:
      break;
  }
  return absl::StrCat(message, "\n");
}

}  // namespace canal_cli
