// SPDX-License-Identifier: Apache-2.0
#include "tools/canal/output.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace canal_cli {

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kDeadlineExceeded:
      return kExitTimeout;
    case absl::StatusCode::kPermissionDenied:
      return kExitPermissionDenied;
    default:
      return kExitError;
  }
}

int Fail(const Io& io, const absl::Status& status) {
  std::string message(status.message());
  absl::StrReplaceAll({{"\r", " "}, {"\n", " "}}, &message);
  if (!absl::StartsWith(message, "canal")) {
    message = absl::StrCat("canal: ", message);
  }
  *io.err << message << "\n" << std::flush;
  return ExitCodeFor(status);
}

int UsageError(const Io& io, absl::string_view command,
               absl::string_view what) {
  std::string line(what);
  absl::StrReplaceAll({{"\r", " "}, {"\n", " "}}, &line);
  const std::string prefix =
      command.empty() ? "canal" : absl::StrCat("canal ", command);
  *io.err << prefix << ": " << line << " (see '" << prefix << " --help')\n"
          << std::flush;
  return kExitUsage;
}

absl::Status SyncWriter::Write(absl::string_view data) {
  absl::MutexLock lock(&mu_);
  out_->write(data.data(), static_cast<std::streamsize>(data.size()));
  out_->flush();
  if (!out_->good())
    return absl::UnavailableError("canal: cannot write output");
  return absl::OkStatus();
}

}  // namespace canal_cli
