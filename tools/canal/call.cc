// SPDX-License-Identifier: Apache-2.0
// `canal call NAME REQUEST|- [--hex|--frames] [--timeout DURATION]
// [--expect-user USER]`.

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "canal/canal.h"
#include "tools/canal/accounts.h"
#include "tools/canal/commands.h"
#include "tools/canal/message_format.h"
#include "tools/canal/output.h"

namespace canal_cli {
namespace {

// All of standard input, at most kMaxStreamMessage bytes (three times that
// for hex, which may hold white space).
absl::StatusOr<std::string> ReadAllInput(const Io& io, size_t limit) {
  std::string data;
  if (!io.read_input) return data;
  std::vector<char> buffer(64 * 1024);
  while (true) {
    absl::StatusOr<size_t> n = io.read_input(absl::MakeSpan(buffer));
    if (!n.ok()) return n.status();
    if (*n == 0) return data;
    data.append(buffer.data(), *n);
    if (data.size() > limit) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "canal call: the request on standard input is larger than ",
          kMaxStreamMessage, " bytes"));
    }
  }
}

// The request that standard input holds, in `format` (see flags.cc).
absl::StatusOr<std::string> RequestFromInput(const Io& io,
                                             MessageFormat format) {
  const size_t limit = format == MessageFormat::kHex ? 3 * kMaxStreamMessage
                                                     : kMaxStreamMessage + 4;
  absl::StatusOr<std::string> input = ReadAllInput(io, limit);
  if (!input.ok()) return input.status();
  switch (format) {
    case MessageFormat::kHex: {
      std::string digits = *input;
      for (char& c : digits) {
        if (c == '\n' || c == '\r') c = ' ';
      }
      absl::StatusOr<std::string> request = DecodeHex(digits);
      if (!request.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("canal call: the request on standard input is ",
                         request.status().message()));
      }
      return request;
    }
    case MessageFormat::kFrames: {
      std::vector<std::string> frames;
      MessageReader reader(format);
      auto collect = [&frames](absl::string_view m) {
        frames.emplace_back(m);
        return absl::OkStatus();
      };
      absl::Status status = reader.Add(*input, collect);
      if (status.ok()) status = reader.Finish(collect);
      if (!status.ok()) return status;
      if (frames.size() != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("canal call: standard input holds ", frames.size(),
                         " frames; a request is exactly one"));
      }
      return std::move(frames.front());
    }
    case MessageFormat::kLines:
      break;
  }
  std::string request = *std::move(input);
  if (absl::EndsWith(request, "\n")) request.pop_back();
  if (absl::EndsWith(request, "\r")) request.pop_back();
  return request;
}

}  // namespace

int CallCommand(const CallFlags& flags, const Io& io) {
  absl::StatusOr<canal::ExpectedServer> expected =
      ExpectedServerFor(flags.expect_user);
  if (!expected.ok())
    return UsageError(io, "call", expected.status().message());
  std::string request;
  if (flags.request_from_input) {
    absl::StatusOr<std::string> r = RequestFromInput(io, flags.format);
    if (!r.ok()) return Fail(io, r.status());
    request = *std::move(r);
  } else if (flags.format == MessageFormat::kHex) {
    absl::StatusOr<std::string> r = DecodeHex(flags.request);
    if (!r.ok()) {
      return UsageError(io, "call",
                        absl::StrCat("REQUEST is ", r.status().message()));
    }
    request = *std::move(r);
  } else {
    request = flags.request;
  }
  canal::ConnectOptions options;
  options.expected_server = *expected;
  absl::StatusOr<std::string> reply =
      canal::Call(flags.name, request, flags.timeout, options);
  if (!reply.ok()) return Fail(io, reply.status());
  const std::string out = EncodeMessage(flags.format, *reply);
  io.out->write(out.data(), static_cast<std::streamsize>(out.size()));
  io.out->flush();
  if (!io.out->good()) {
    return Fail(io,
                absl::UnavailableError("canal call: cannot write the reply"));
  }
  return kExitOk;
}

}  // namespace canal_cli
