// SPDX-License-Identifier: Apache-2.0
// Subprocess for Windows: CreateProcessW with STARTUPINFOEXW and
// PROC_THREAD_ATTRIBUTE_HANDLE_LIST, so that exactly the child's standard
// handles and the extra handle are inherited. They are inheritable
// duplicates that exist only for the duration of the call; every other
// handle canal creates is not inheritable.

#include <windows.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "src/internal/backend.h"
#include "src/internal/command_line.h"
#include "src/internal/deadline.h"
#include "src/internal/errors.h"
#include "src/win32/channel.h"
#include "src/win32/error.h"
#include "src/win32/io.h"
#include "src/win32/names.h"
#include "src/win32/pipe.h"

namespace canal {
namespace internal {
namespace win32 {
namespace {

// The exit code a child ended by Kill() reports.
constexpr UINT kKilledExitCode = 1;

class Win32Process final : public ProcessImpl {
 public:
  Win32Process(ScopedHandle process, DWORD pid, bool kill_on_destroy)
      : process_(std::move(process)),
        pid_(pid),
        kill_on_destroy_(kill_on_destroy) {}

  ~Win32Process() override {
    // Windows has no zombies: closing the handle is all the reaping there
    // is. A running child keeps running unless asked otherwise.
    if (kill_on_destroy_ &&
        WaitForSingleObject(process_.get(), 0) == WAIT_TIMEOUT) {
      TerminateProcess(process_.get(), kKilledExitCode);
      WaitForSingleObject(process_.get(), 10000);
    }
  }

  int64_t pid() const override { return pid_; }

  absl::StatusOr<ExitStatus> Wait(absl::Duration timeout) override {
    const Deadline deadline(timeout);
    while (true) {
      const DWORD wait = WaitForSingleObject(process_.get(), WaitMs(deadline));
      if (wait == WAIT_OBJECT_0) break;
      if (wait == WAIT_TIMEOUT) {
        if (!deadline.expired()) continue;
        return MakeError(absl::StatusCode::kDeadlineExceeded, "Wait",
                         absl::StrCat("pid ", pid_),
                         "the child is still running");
      }
      return Win32Status(GetLastError(), ErrorContext::kGeneric, "Wait",
                         absl::StrCat("pid ", pid_));
    }
    DWORD code = 0;
    if (!GetExitCodeProcess(process_.get(), &code)) {
      return Win32Status(GetLastError(), ErrorContext::kGeneric, "Wait",
                         absl::StrCat("pid ", pid_));
    }
    ExitStatus status;
    status.exited = true;
    status.exit_code = static_cast<int>(code);
    return status;
  }

  absl::Status Kill() override {
    if (WaitForSingleObject(process_.get(), 0) == WAIT_OBJECT_0) {
      return absl::OkStatus();
    }
    if (!TerminateProcess(process_.get(), kKilledExitCode)) {
      const DWORD error = GetLastError();
      // ERROR_ACCESS_DENIED also means "already exiting".
      if (WaitForSingleObject(process_.get(), 0) == WAIT_OBJECT_0) {
        return absl::OkStatus();
      }
      return Win32Status(error, ErrorContext::kGeneric, "Kill",
                         absl::StrCat("pid ", pid_));
    }
    return absl::OkStatus();
  }

 private:
  ScopedHandle process_;
  const DWORD pid_;
  const bool kill_on_destroy_;
};

// Windows variable names are case-insensitive.
struct EnvLess {
  bool operator()(const std::wstring& a, const std::wstring& b) const {
    return CompareStringOrdinal(a.c_str(), static_cast<int>(a.size()),
                                b.c_str(), static_cast<int>(b.size()),
                                TRUE) == CSTR_LESS_THAN;
  }
};

absl::Status BadUtf8(absl::string_view program, absl::string_view what) {
  return MakeError(absl::StatusCode::kInvalidArgument, "Start", program,
                   absl::StrCat(what, " is not valid UTF-8"));
}

// An inheritable duplicate of `handle`, or an invalid one on failure.
ScopedHandle InheritableCopy(HANDLE handle) {
  HANDLE copy = nullptr;
  if (handle == nullptr || handle == INVALID_HANDLE_VALUE ||
      !DuplicateHandle(GetCurrentProcess(), handle, GetCurrentProcess(), &copy,
                       0, TRUE, DUPLICATE_SAME_ACCESS)) {
    return ScopedHandle();
  }
  return ScopedHandle(copy);
}

struct AttributeList {
  ~AttributeList() {
    if (list != nullptr) DeleteProcThreadAttributeList(list);
  }
  std::vector<char> storage;
  LPPROC_THREAD_ATTRIBUTE_LIST list = nullptr;
};

}  // namespace
}  // namespace win32

absl::StatusOr<StartedProcess> BackendStartProcess(
    const std::vector<std::string>& argv, const SubprocessOptions& options) {
  using win32::ScopedHandle;
  const std::string& program = argv[0];
  absl::StatusOr<std::string> line = BuildWindowsCommandLine(argv);
  if (!line.ok()) return line.status();
  std::wstring command_line;
  if (!win32::Utf8ToWide(*line, &command_line)) {
    return win32::BadUtf8(program, "an argument");
  }
  std::wstring working_dir;
  if (!win32::Utf8ToWide(options.working_dir, &working_dir)) {
    return win32::BadUtf8(program, "the working directory");
  }

  StartedProcess started;
  // The child's standard handles (not inheritable; owned here or borrowed
  // from GetStdHandle), then inheritable copies of them.
  ScopedHandle owned[3];
  HANDLE child_std[3] = {nullptr, nullptr, nullptr};
  const StdioMode modes[3] = {options.stdin_mode, options.stdout_mode,
                              options.stderr_mode};
  Channel* channels[3] = {&started.stdin_channel, &started.stdout_channel,
                          &started.stderr_channel};
  const DWORD std_ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
                            STD_ERROR_HANDLE};
  const char* names[3] = {"stdin", "stdout", "stderr"};
  for (int i = 0; i < 3; ++i) {
    switch (modes[i]) {
      case StdioMode::kInherit:
        child_std[i] = GetStdHandle(std_ids[i]);
        break;
      case StdioMode::kNull:
        owned[i].reset(CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE,
                                   FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr,
                                   OPEN_EXISTING, 0, nullptr));
        if (!owned[i].valid()) {
          owned[i].release();
          return win32::Win32Status(GetLastError(),
                                    win32::ErrorContext::kGeneric, "Start",
                                    program, "cannot open NUL");
        }
        child_std[i] = owned[i].get();
        break;
      case StdioMode::kPipe: {
        const bool parent_reads = i != 0;
        auto pair = win32::MakeNamedPipePair(parent_reads,
                                             /*client_overlapped=*/false, 0);
        if (!pair.ok()) return pair.status();
        owned[i] = std::move(pair->client);
        child_std[i] = owned[i].get();
        win32::ChannelSetup setup;
        setup.pipe = std::move(pair->server);
        setup.can_read = parent_reads;
        setup.can_write = !parent_reads;
        setup.server = true;
        setup.name = absl::StrCat(names[i], " of ", program);
        auto impl = win32::Win32Channel::Create(std::move(setup));
        if (!impl.ok()) return impl.status();
        *channels[i] = Channel(*std::move(impl));
        break;
      }
      case StdioMode::kStdout:
        child_std[i] = child_std[1];
        break;
    }
  }

  // Inheritable copies, each listed once in the handle list.
  ScopedHandle copies[3];
  HANDLE child_copy[3] = {nullptr, nullptr, nullptr};
  std::vector<HANDLE> inherit;
  for (int i = 0; i < 3; ++i) {
    if (modes[i] == StdioMode::kStdout) {
      child_copy[i] = child_copy[1];
      continue;
    }
    copies[i] = win32::InheritableCopy(child_std[i]);
    if (!copies[i].valid()) {
      copies[i].release();
      // A parent without that standard handle (kInherit): the child gets
      // none either.
      if (modes[i] != StdioMode::kInherit) {
        return win32::Win32Status(GetLastError(), win32::ErrorContext::kGeneric,
                                  "Start", program, "DuplicateHandle failed");
      }
      continue;
    }
    child_copy[i] = copies[i].get();
    inherit.push_back(child_copy[i]);
  }
  ScopedHandle extra_copy;
  if (options.extra.channel != nullptr) {
    extra_copy = win32::InheritableCopy(options.extra.channel->native_handle());
    if (!extra_copy.valid()) {
      extra_copy.release();
      return win32::Win32Status(GetLastError(), win32::ErrorContext::kGeneric,
                                "Start", program,
                                "cannot duplicate the extra channel's handle");
    }
    inherit.push_back(extra_copy.get());
  }

  // The environment block: sorted, case-insensitive names, UTF-16.
  std::map<std::wstring, std::wstring, win32::EnvLess> env;
  if (!options.clear_environment) {
    wchar_t* block = GetEnvironmentStringsW();
    if (block != nullptr) {
      for (const wchar_t* p = block; *p != L'\0'; p += wcslen(p) + 1) {
        const std::wstring entry(p);
        // Entries like "=C:=C:\dir" (per-drive directories) start with '='.
        const size_t eq = entry.find(L'=', 1);
        if (eq == std::wstring::npos) continue;
        env[entry.substr(0, eq)] = entry.substr(eq + 1);
      }
      FreeEnvironmentStringsW(block);
    }
  }
  for (const auto& [name, value] : options.environment) {
    std::wstring wname;
    std::wstring wvalue;
    if (!win32::Utf8ToWide(name, &wname) ||
        !win32::Utf8ToWide(value, &wvalue)) {
      return win32::BadUtf8(program, "an environment variable");
    }
    env.erase(wname);  // Replace it under the caller's spelling.
    env[wname] = wvalue;
  }
  if (extra_copy.valid() && !options.extra.env_var.empty()) {
    std::wstring wname;
    if (!win32::Utf8ToWide(options.extra.env_var, &wname)) {
      return win32::BadUtf8(program, "ExtraChannel::env_var");
    }
    const std::string value = absl::StrCat(
        static_cast<uint64_t>(reinterpret_cast<uintptr_t>(extra_copy.get())));
    env.erase(wname);
    env[wname] = std::wstring(value.begin(), value.end());
  }
  std::wstring env_block;
  for (const auto& [name, value] : env) {
    env_block += name;
    env_block += L'=';
    env_block += value;
    env_block += L'\0';
  }
  if (env.empty()) env_block += L'\0';
  env_block += L'\0';

  STARTUPINFOEXW si;
  ZeroMemory(&si, sizeof(si));
  si.StartupInfo.cb = sizeof(si);
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  si.StartupInfo.hStdInput = child_copy[0];
  si.StartupInfo.hStdOutput = child_copy[1];
  si.StartupInfo.hStdError = child_copy[2];
  win32::AttributeList attributes;
  DWORD flags = CREATE_UNICODE_ENVIRONMENT;
  if (!inherit.empty()) {
    SIZE_T size = 0;
    InitializeProcThreadAttributeList(nullptr, 1, 0, &size);
    attributes.storage.resize(size);
    auto* list = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(
        attributes.storage.data());
    if (!InitializeProcThreadAttributeList(list, 1, 0, &size)) {
      return win32::Win32Status(GetLastError(), win32::ErrorContext::kGeneric,
                                "Start", program,
                                "InitializeProcThreadAttributeList failed");
    }
    attributes.list = list;
    if (!UpdateProcThreadAttribute(
            list, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherit.data(),
            inherit.size() * sizeof(HANDLE), nullptr, nullptr)) {
      return win32::Win32Status(GetLastError(), win32::ErrorContext::kGeneric,
                                "Start", program,
                                "UpdateProcThreadAttribute failed");
    }
    si.lpAttributeList = list;
    flags |= EXTENDED_STARTUPINFO_PRESENT;
  }
  PROCESS_INFORMATION pi;
  ZeroMemory(&pi, sizeof(pi));
  const BOOL ok =
      CreateProcessW(nullptr, &command_line[0], nullptr, nullptr,
                     inherit.empty() ? FALSE : TRUE, flags, &env_block[0],
                     working_dir.empty() ? nullptr : working_dir.c_str(),
                     &si.StartupInfo, &pi);
  if (!ok)
    return win32::Win32Status(GetLastError(), win32::ErrorContext::kStart,
                              "Start", program);
  CloseHandle(pi.hThread);
  // The inheritable copies and the child's pipe ends close when this
  // returns, so the parent's channels see the child's end of stream.
  started.process = std::make_unique<win32::Win32Process>(
      ScopedHandle(pi.hProcess), pi.dwProcessId, options.kill_on_destroy);
  return started;
}

}  // namespace internal
}  // namespace canal
