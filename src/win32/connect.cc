// SPDX-License-Identifier: Apache-2.0
// Client side of the Win32 backend: Connect (also for Call) and
// WaitForListener over real named pipes.

#include <windows.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/internal/backend.h"
#include "src/internal/deadline.h"
#include "src/internal/errors.h"
#include "src/win32/channel.h"
#include "src/win32/error.h"
#include "src/win32/io.h"
#include "src/win32/meta.h"
#include "src/win32/names.h"
#include "src/win32/security.h"

namespace canal {
namespace internal {
namespace win32 {
namespace {

// WaitNamedPipeW is not cancellable and is not woken when a listener is
// closed: wait in slices, re-reading the listener's section between them,
// so that a wait notices the listener going away.
constexpr DWORD kWaitSliceMs = 250;

bool Vanished(DWORD error) {
  return error == ERROR_FILE_NOT_FOUND || error == win32::kErrorHandlesClosed;
}

// What the listener's section (src/win32/meta.h) says, read only when the
// pipe itself cannot tell: the name is unknown (no listener, or a listener
// between two instances) or every instance is busy (a busy listener, or a
// closed one whose accepted channels still hold the pipe). Only a section
// of a user the client trusts counts; the owners are looked up once.
class LivenessProbe {
 public:
  LivenessProbe(const std::wstring& path, const ExpectedServer& expected)
      : path_(path), expected_(expected) {}

  win32::Liveness Check() {
    if (!looked_up_) {
      owners_ = win32::TrustedListenerOwners(expected_);
      looked_up_ = true;
    }
    return win32::ListenerLiveness(path_, owners_);
  }

 private:
  const std::wstring& path_;
  const ExpectedServer expected_;
  bool looked_up_ = false;
  std::vector<std::wstring> owners_;
};

absl::Status ListenerClosed(absl::string_view op, absl::string_view name) {
  return Win32Status(ERROR_FILE_NOT_FOUND, ErrorContext::kConnect, op, name,
                     "the listener of this name was closed (the channels it "
                     "accepted still hold the pipe)");
}

// How a client may open the pipe. It cannot know the listener's direction:
// try duplex, then read-only (outbound listener), then write-only (inbound).
// FILE_WRITE_ATTRIBUTES lets a reader call SetNamedPipeHandleState;
// FILE_READ_ATTRIBUTES lets a writer call GetNamedPipeInfo. Specific rights
// instead of GENERIC_WRITE, which would also ask for
// FILE_CREATE_PIPE_INSTANCE, which listeners grant only to their own user
// (src/win32/security.h). Both include READ_CONTROL, for CheckServer.
struct AccessTry {
  DWORD access;
  bool can_read;
  bool can_write;
};
constexpr AccessTry kAccessTries[] = {
    {kClientRead | kClientWrite, true, true},
    {kClientRead | FILE_WRITE_ATTRIBUTES, true, false},
    {kClientWrite | FILE_READ_ATTRIBUTES, false, true},
};

// FILE_PIPE_LOCAL_INFORMATION (ntifs.h, not in the SDK's user-mode
// headers): how the pipe was created, as seen from this end.
struct PipeLocalInformation {
  ULONG named_pipe_type;
  ULONG named_pipe_configuration;  // 0 inbound, 1 outbound, 2 duplex.
  ULONG maximum_instances;
  ULONG current_instances;
  ULONG inbound_quota;
  ULONG read_data_available;
  ULONG outbound_quota;
  ULONG write_quota_available;
  ULONG named_pipe_state;
  ULONG named_pipe_end;
};
struct IoStatusBlock {
  union {
    LONG status;
    void* pointer;
  };
  ULONG_PTR information;
};
constexpr int kFilePipeLocalInformation = 24;  // FILE_INFORMATION_CLASS
using NtQueryInformationFileFn = LONG(WINAPI*)(HANDLE, IoStatusBlock*, void*,
                                               ULONG, int);

// Narrows `setup`'s directions to the pipe's own configuration. Windows
// refuses an open that asks for a direction the pipe does not offer, so the
// access tries already found it; Wine only refuses GENERIC_READ /
// GENERIC_WRITE, not the specific rights canal asks for, so ask the pipe.
void ApplyPipeDirection(HANDLE pipe, ChannelSetup* setup) {
  static const NtQueryInformationFileFn query =
      reinterpret_cast<NtQueryInformationFileFn>(
          reinterpret_cast<void*>(GetProcAddress(GetModuleHandleW(L"ntdll.dll"),
                                                 "NtQueryInformationFile")));
  if (query == nullptr) return;
  PipeLocalInformation info = {};
  IoStatusBlock io = {};
  if (query(pipe, &io, &info, sizeof(info), kFilePipeLocalInformation) < 0) {
    return;
  }
  if (info.named_pipe_configuration == 0) setup->can_read = false;
  if (info.named_pipe_configuration == 1) setup->can_write = false;
}

DWORD WaitSlice(const Deadline& deadline) {
  // WaitNamedPipeW(0) would mean "the server's default"; wait at least 1 ms.
  const DWORD ms = win32::WaitMs(deadline, kWaitSliceMs);
  return ms == 0 ? 1 : ms;
}

absl::Status TimedOut(absl::string_view op, absl::string_view name) {
  return Win32Status(ERROR_PIPE_BUSY, ErrorContext::kConnect, op, name);
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> Connect(
    absl::string_view op, absl::string_view name, const Deadline& deadline,
    const ConnectOptions& options) {
  absl::StatusOr<std::wstring> path = win32::PipePath(op, name);
  if (!path.ok()) return path.status();
  // The server may identify this client, and impersonate it only if the
  // caller allowed it.
  const DWORD flags = FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT |
                      (options.allow_impersonation ? SECURITY_IMPERSONATION
                                                   : SECURITY_IDENTIFICATION);
  LivenessProbe liveness(*path, options.expected_server);
  size_t first_try = 0;
  while (true) {
    ScopedHandle pipe;
    DWORD error = ERROR_SUCCESS;
    size_t used = first_try;
    for (; used < sizeof(kAccessTries) / sizeof(kAccessTries[0]); ++used) {
      pipe.reset(CreateFileW(path->c_str(), kAccessTries[used].access, 0,
                             nullptr, OPEN_EXISTING, flags, nullptr));
      if (pipe.valid()) break;
      error = GetLastError();
      if (error != ERROR_ACCESS_DENIED) break;
    }
    if (pipe.valid()) {
      // Anti-squatting: who runs the server, before any byte is sent. A
      // refused server's handle is closed on return.
      absl::StatusOr<std::wstring> server_sid =
          win32::CheckServer(pipe.get(), options.expected_server, op, name);
      if (!server_sid.ok()) return server_sid.status();
      ChannelSetup setup;
      ULONG server_pid = 0;
      const bool has_pid = GetNamedPipeServerProcessId(pipe.get(), &server_pid);
      // The server's own section, if it is a canal listener (src/win32/meta.h).
      // A message is otherwise at most one DWORD-sized WriteFile.
      const win32::ListenerInfo info =
          win32::ReadListenerInfo(*path, *server_sid, has_pid ? server_pid : 0);
      const uint32_t max_message_size = info.max_message_size;
      setup.shared_memory_offered = info.shared_memory;
      if (has_pid) {
        setup.peer.process_id = static_cast<int64_t>(server_pid);
        setup.peer.user_sid = win32::SidToUtf8(*server_sid);
        setup.has_peer = true;
      }
      DWORD pipe_flags = 0;
      if (!GetNamedPipeInfo(pipe.get(), &pipe_flags, nullptr, nullptr,
                            nullptr)) {
        return Win32Status(GetLastError(), ErrorContext::kConnect, op, name);
      }
      setup.mode = (pipe_flags & PIPE_TYPE_MESSAGE) != 0 ? PipeMode::kMessage
                                                         : PipeMode::kByte;
      setup.can_read = kAccessTries[used].can_read;
      setup.can_write = kAccessTries[used].can_write;
      ApplyPipeDirection(pipe.get(), &setup);
      if (setup.mode == PipeMode::kMessage && setup.can_read) {
        DWORD read_mode = PIPE_READMODE_MESSAGE;
        if (!SetNamedPipeHandleState(pipe.get(), &read_mode, nullptr,
                                     nullptr)) {
          return Win32Status(GetLastError(), ErrorContext::kConnect, op, name,
                             "cannot switch to message read mode");
        }
      }
      setup.pipe = std::move(pipe);
      setup.server = false;
      setup.name = std::string(name);
      setup.max_message_size =
          setup.mode == PipeMode::kMessage ? max_message_size : 0xffffffffu;
      setup.max_handles_per_message =
          static_cast<size_t>(options.max_handles_per_message);
      absl::StatusOr<std::unique_ptr<Win32Channel>> channel =
          Win32Channel::Create(std::move(setup));
      if (!channel.ok()) return channel.status();
      return std::unique_ptr<ChannelImpl>(std::move(*channel));
    }
    if (error == ERROR_ACCESS_DENIED) {
      return Win32Status(error, ErrorContext::kConnect, op, name);
    }
    // Remember the access that got past the access check.
    first_try =
        used < sizeof(kAccessTries) / sizeof(kAccessTries[0]) ? used : 0;
    if (error == ERROR_FILE_NOT_FOUND) {
      // Only a live listener of a trusted user is worth waiting for: it is
      // creating its next instance.
      if (liveness.Check() != win32::Liveness::kAlive) {
        return Win32Status(error, ErrorContext::kConnect, op, name);
      }
      if (deadline.expired()) return TimedOut(op, name);
      Sleep(1);
      continue;
    }
    if (error != ERROR_PIPE_BUSY) {
      return Win32Status(error, ErrorContext::kConnect, op, name);
    }
    // Every instance is busy: wait for one, until the deadline, unless the
    // listener was closed and only its accepted channels hold the pipe.
    while (true) {
      if (liveness.Check() == win32::Liveness::kClosed) {
        return ListenerClosed(op, name);
      }
      if (deadline.expired()) return TimedOut(op, name);
      if (WaitNamedPipeW(path->c_str(), WaitSlice(deadline))) break;
      const DWORD wait_error = GetLastError();
      if (wait_error == ERROR_SEM_TIMEOUT || wait_error == ERROR_PIPE_BUSY) {
        continue;
      }
      if (Vanished(wait_error)) break;  // Retry CreateFileW.
      return Win32Status(wait_error, ErrorContext::kConnect, op, name);
    }
    // An instance was free (or the name vanished for a moment); another
    // client may take it first, so loop.
  }
}

absl::Status WaitForListener(absl::string_view name, const Deadline& deadline) {
  constexpr absl::string_view kOp = "WaitForListener";
  absl::StatusOr<std::wstring> path = win32::PipePath(kOp, name);
  if (!path.ok()) return path.status();
  // WaitForListener names no server user: it believes sections of its own
  // user and SYSTEM, as a default Connect does.
  LivenessProbe liveness(*path, ExpectedServer());
  // A free instance answers at once; a closed listener should too, so the
  // first wait is short and the section is read before waiting longer.
  DWORD slice = 1;
  while (true) {
    if (WaitNamedPipeW(path->c_str(), slice)) return absl::OkStatus();
    const DWORD error = GetLastError();
    slice = WaitSlice(deadline);
    if (Vanished(error)) {
      if (liveness.Check() != win32::Liveness::kAlive) {
        return Win32Status(ERROR_FILE_NOT_FOUND, ErrorContext::kConnect, kOp,
                           name);
      }
      if (deadline.expired()) {
        return Win32Status(ERROR_SEM_TIMEOUT, ErrorContext::kConnect, kOp, name,
                           "no instance became free before the timeout");
      }
      Sleep(1);  // The listener is creating its next instance.
      continue;
    }
    if (error == ERROR_SEM_TIMEOUT || error == ERROR_PIPE_BUSY) {
      if (liveness.Check() == win32::Liveness::kClosed) {
        return ListenerClosed(kOp, name);
      }
      if (deadline.expired()) {
        return Win32Status(ERROR_SEM_TIMEOUT, ErrorContext::kConnect, kOp, name,
                           "every instance stayed busy until the timeout");
      }
      continue;
    }
    return Win32Status(error, ErrorContext::kConnect, kOp, name);
  }
}

}  // namespace
}  // namespace win32

absl::StatusOr<std::unique_ptr<ChannelImpl>> BackendConnect(
    absl::string_view op, absl::string_view name,
    const ConnectOptions& options) {
  const Deadline deadline(options.timeout);
  return win32::NoThrow(
      op, name, [&] { return win32::Connect(op, name, deadline, options); });
}

absl::Status BackendWaitForListener(absl::string_view name,
                                    absl::Duration timeout) {
  const Deadline deadline(timeout);
  return win32::NoThrow("WaitForListener", name,
                        [&] { return win32::WaitForListener(name, deadline); });
}

}  // namespace internal
}  // namespace canal
