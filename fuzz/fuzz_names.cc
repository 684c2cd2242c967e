// SPDX-License-Identifier: Apache-2.0
// Fuzzes name parsing and validation: ClassifyName (both platforms' rules),
// and Listener::Create / Channel::Connect / WaitForListener / Call with
// arbitrary names in a private runtime dir. Each must return a status and
// never crash. A name ClassifyName calls portable must work as a listener
// name, creating exactly <runtime dir>/<name> and nothing else; an absolute
// (native) name is only used below the runtime dir, so nothing is ever
// created outside it.
#include <dirent.h>
#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "fuzz/fuzz_util.h"
#include "src/internal/names.h"

namespace {

std::set<std::string> List(const std::string& dir) {
  std::set<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) out.insert(e->d_name);
  closedir(d);
  return out;
}

bool AllowedCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

void CheckStatus(absl::string_view op, const absl::Status& s) {
  if (s.ok()) return;
  if (!AllowedCode(s.code())) canal_fuzz::Fail(op, s);
  if (s.message().find(op) == absl::string_view::npos) {
    // Every error names its operation.
    canal_fuzz::Fail(absl::StrCat(op, ": message does not name it"), s);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = canal_fuzz::RuntimeDir();
  static const std::set<std::string> before = List(dir);
  absl::string_view name(reinterpret_cast<const char*>(data), size);

  canal::internal::NameKind kind_posix, kind_win;
  const absl::Status posix =
      canal::internal::ClassifyName("Op", name, true, &kind_posix);
  const absl::Status win =
      canal::internal::ClassifyName("Op", name, false, &kind_win);
  const bool portable = canal::internal::IsPortableName(name);
  if (portable !=
      (posix.ok() && kind_posix == canal::internal::NameKind::kPortable)) {
    canal_fuzz::Fail("IsPortableName and ClassifyName disagree");
  }
  if (portable !=
      (win.ok() && kind_win == canal::internal::NameKind::kPortable)) {
    canal_fuzz::Fail("IsPortableName and ClassifyName(win) disagree");
  }
  if (!posix.ok() && posix.code() != absl::StatusCode::kInvalidArgument) {
    canal_fuzz::Fail("ClassifyName", posix);
  }
  if (!win.ok() && win.code() != absl::StatusCode::kInvalidArgument) {
    canal_fuzz::Fail("ClassifyName(win)", win);
  }
  if (portable) {
    for (char c : name) {
      if (c == '/' || c == '\\' || c == '\0') {
        canal_fuzz::Fail("portable name with a separator");
      }
    }
    if (name == "." || name == "..") canal_fuzz::Fail("dot name is portable");
  }

  // Names used with the library: portable and abstract names as given (an
  // abstract name is refused without allow_abstract_namespace); an absolute
  // path is moved below the runtime dir.
  std::string use(name);
  if (!name.empty() && name[0] == '/') use = absl::StrCat(dir, name);

  canal::ConnectOptions copts;
  copts.timeout = absl::ZeroDuration();
  CheckStatus("Connect", canal::Channel::Connect(use, copts).status());
  CheckStatus("WaitForListener",
              canal::WaitForListener(use, absl::ZeroDuration()));
  CheckStatus("Call", canal::Call(use, "x", absl::Milliseconds(1)).status());

  if (!name.empty() && name[0] == '/') return 0;  // Never create those.
  {
    canal::ListenerOptions lopts;
    lopts.mode =
        (size & 1) ? canal::PipeMode::kMessage : canal::PipeMode::kByte;
    auto listener = canal::Listener::Create(use, lopts);
    CheckStatus("Listen", listener.status());
    if (portable && !listener.ok()) {
      // Only sun_path can refuse a portable name.
      if (listener.status().code() != absl::StatusCode::kInvalidArgument) {
        canal_fuzz::Fail("Listener::Create(portable)", listener.status());
      }
    }
    if (!portable && listener.ok() && !(name.size() > 1 && name[0] == '@')) {
      canal_fuzz::Fail("Listener::Create accepted a non-portable name");
    }
    if (listener.ok() && portable) {
      struct stat st;
      // Portable names are case-insensitive: the socket is named in lower
      // case.
      if (lstat(absl::StrCat(dir, "/", absl::AsciiStrToLower(name)).c_str(),
                &st) != 0 ||
          !S_ISSOCK(st.st_mode)) {
        canal_fuzz::Fail("portable listener socket is not <dir>/<name>");
      }
      auto ch = canal::Channel::Connect(use, copts);
      if (!ch.ok()) canal_fuzz::Fail("Connect to a live listener", ch.status());
    }
  }
  // Whatever happened, the runtime dir holds what it held before.
  if (List(dir) != before) {
    canal_fuzz::Fail(
        absl::StrCat("runtime dir changed after name of size ", size));
  }
  return 0;
}
