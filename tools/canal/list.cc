// SPDX-License-Identifier: Apache-2.0
// `canal list [DIR] [--json]`: printing what list_posix.cc / list_win32.cc
// found.

#include "tools/canal/list.h"

#include <algorithm>
#include <array>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tools/canal/commands.h"
#include "tools/canal/output.h"

namespace canal_cli {
namespace {

template <typename T>
std::string Cell(const std::optional<T>& value) {
  if (!value.has_value()) return "-";
  return absl::StrCat(*value);
}

std::string InstancesCell(const ListedPipe& p) {
  std::string limit = "-";
  if (p.max_instances.has_value()) {
    limit =
        *p.max_instances == 0 ? "unlimited" : absl::StrCat(*p.max_instances);
  }
  if (!p.instances.has_value()) return limit;
  return absl::StrCat(*p.instances, "/", limit);
}

template <typename T>
nlohmann::ordered_json JsonOf(const std::optional<T>& value) {
  if (!value.has_value()) return nullptr;
  return *value;
}

}  // namespace

bool ParseMetaLine(absl::string_view line, ListedPipe* pipe) {
  // A line without its newline is still being written.
  if (line.empty() || line.back() != '\n') return false;
  line.remove_suffix(1);
  std::vector<absl::string_view> words =
      absl::StrSplit(line, ' ', absl::SkipEmpty());
  if (words.size() < 2 || words[0] != "canal" || words[1] != "1") return false;
  ListedPipe parsed = *pipe;
  bool have_mode = false;
  bool have_access = false;
  for (size_t i = 2; i < words.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(words[i], absl::MaxSplits('=', 1));
    const absl::string_view key = kv.first;
    const absl::string_view value = kv.second;
    int64_t number = 0;
    if (key == "mode") {
      if (value != "byte" && value != "message") return false;
      parsed.mode = std::string(value);
      have_mode = true;
    } else if (key == "access") {
      if (value != "duplex" && value != "inbound" && value != "outbound") {
        return false;
      }
      parsed.access = std::string(value);
      have_access = true;
    } else if (key == "max_instances") {
      if (!absl::SimpleAtoi(value, &number) || number < 0 || number > 255) {
        return false;
      }
      parsed.max_instances = static_cast<int>(number);
    } else if (key == "pid") {
      if (!absl::SimpleAtoi(value, &number) || number < 0) return false;
      parsed.pid = number;
    }
  }
  if (!have_mode || !have_access) return false;
  *pipe = std::move(parsed);
  return true;
}

std::string FormatTable(const std::vector<ListedPipe>& pipes) {
  std::vector<std::array<std::string, 6>> rows;
  rows.push_back({"NAME", "MODE", "ACCESS", "INSTANCES", "PID", "USER"});
  for (const ListedPipe& p : pipes) {
    rows.push_back({p.name, Cell(p.mode), Cell(p.access), InstancesCell(p),
                    Cell(p.pid), Cell(p.user)});
  }
  std::array<size_t, 6> width{};
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string FormatJson(const std::vector<ListedPipe>& pipes) {
  nlohmann::ordered_json array = nlohmann::ordered_json::array();
  for (const ListedPipe& p : pipes) {
    nlohmann::ordered_json o;
    o["name"] = p.name;
    o["path"] = p.path;
    o["mode"] = JsonOf(p.mode);
    o["access"] = JsonOf(p.access);
    o["max_instances"] = JsonOf(p.max_instances);
    o["instances"] = JsonOf(p.instances);
    o["pid"] = JsonOf(p.pid);
    o["uid"] = JsonOf(p.uid);
    o["user"] = JsonOf(p.user);
    array.push_back(std::move(o));
  }
  // Names are bytes on POSIX; invalid UTF-8 is replaced, never an
  // exception.
  return array.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int ListCommand(const ListFlags& flags, const Io& io) {
  absl::StatusOr<ListResult> found = FindListeners(flags.dir);
  if (!found.ok()) {
    if (absl::IsInvalidArgument(found.status())) {
      return UsageError(io, "list", found.status().message());
    }
    return Fail(io, found.status());
  }
  *io.out << (flags.json ? FormatJson(found->pipes) + "\n"
                         : FormatTable(found->pipes))
          << std::flush;
  if (found->unreadable > 0) {
    *io.err << "canal list: " << found->unreadable
            << " lock file(s) could not be read (another user's); their "
               "listeners are not shown\n"
            << std::flush;
  }
  return kExitOk;
}

}  // namespace canal_cli
