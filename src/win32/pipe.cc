// SPDX-License-Identifier: Apache-2.0
// CreatePipe and AdoptPipeEnd for Windows (see pipe.h).

#include "src/win32/pipe.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "canal/pipe.h"
#include "src/internal/backend.h"
#include "src/internal/errors.h"
#include "src/win32/channel.h"
#include "src/win32/error.h"
#include "src/win32/io.h"
#include "src/win32/names.h"

namespace canal {
namespace internal {
namespace win32 {
namespace {

uint64_t RandomBits() {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen();
  absl::MutexLock lock(&mu);
  return absl::Uniform<uint64_t>(*gen);
}

}  // namespace

absl::StatusOr<NamedPipePair> MakeNamedPipePair(bool server_reads,
                                                bool client_overlapped,
                                                DWORD buffer_size) {
  static std::atomic<uint32_t> counter{0};
  if (buffer_size == 0) buffer_size = kDefaultPipeBufferSize;
  NamedPipePair pair;
  std::wstring wide;
  // A name collision (ERROR_ACCESS_DENIED / ERROR_PIPE_BUSY with
  // FILE_FLAG_FIRST_PIPE_INSTANCE) means someone holds the name, perhaps on
  // purpose: try fresh random names a few times.
  for (int attempt = 0;; ++attempt) {
    pair.name = absl::StrFormat("\\\\.\\pipe\\canal-anon-%u-%u-%016x",
                                GetCurrentProcessId(), counter.fetch_add(1) + 1,
                                RandomBits());
    Utf8ToWide(pair.name, &wide);
    const DWORD open_mode =
        (server_reads ? PIPE_ACCESS_INBOUND : PIPE_ACCESS_OUTBOUND) |
        FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE;
    const DWORD pipe_mode = PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                            PIPE_REJECT_REMOTE_CLIENTS;
    pair.server.reset(CreateNamedPipeW(wide.c_str(), open_mode, pipe_mode, 1,
                                       buffer_size, buffer_size, 0, nullptr));
    if (pair.server.valid()) break;
    const DWORD error = GetLastError();
    if ((error == ERROR_ACCESS_DENIED || error == ERROR_PIPE_BUSY) &&
        attempt < 8) {
      continue;
    }
    pair.server.release();
    return Win32Status(error, ErrorContext::kListen, "CreatePipe", pair.name);
  }
  // The client's access is the opposite direction, plus the attribute right
  // that lets it query and set the pipe's state.
  const DWORD access = server_reads ? (GENERIC_WRITE | FILE_READ_ATTRIBUTES)
                                    : (GENERIC_READ | FILE_WRITE_ATTRIBUTES);
  const DWORD flags = (client_overlapped ? FILE_FLAG_OVERLAPPED : 0) |
                      SECURITY_SQOS_PRESENT | SECURITY_ANONYMOUS;
  pair.client.reset(CreateFileW(wide.c_str(), access, 0, nullptr, OPEN_EXISTING,
                                flags, nullptr));
  if (!pair.client.valid()) {
    const DWORD error = GetLastError();
    pair.client.release();
    return Win32Status(error, ErrorContext::kConnect, "CreatePipe", pair.name);
  }
  // Complete the server side's connection as CPython's multiprocessing
  // does: with the client already there, ConnectNamedPipe reports
  // ERROR_PIPE_CONNECTED at once.
  {
    OVERLAPPED ov;
    ZeroMemory(&ov, sizeof(ov));
    ScopedHandle event(NewEvent(true));
    ov.hEvent = event.get();
    if (!ConnectNamedPipe(pair.server.get(), &ov)) {
      const DWORD error = GetLastError();
      if (error == ERROR_IO_PENDING) {
        DWORD ignored = 0;
        if (!GetOverlappedResult(pair.server.get(), &ov, &ignored, TRUE)) {
          return Win32Status(GetLastError(), ErrorContext::kAccept,
                             "CreatePipe", pair.name);
        }
      } else if (error != ERROR_PIPE_CONNECTED) {
        return Win32Status(error, ErrorContext::kAccept, "CreatePipe",
                           pair.name);
      }
    }
  }
  // With one instance, nobody else can be connected now; check anyway that
  // the client end is ours (no other process slipped in first).
  ULONG client_pid = 0;
  if (GetNamedPipeClientProcessId(pair.server.get(), &client_pid) &&
      client_pid != GetCurrentProcessId()) {
    return MakeError(absl::StatusCode::kPermissionDenied, "CreatePipe",
                     pair.name, "another process connected to the new pipe");
  }
  return pair;
}

absl::StatusOr<PipeEnds> CreatePipe(const PipeOptions& options) {
  const DWORD buffer = static_cast<DWORD>(
      options.buffer_size > 0x7fffffff ? 0x7fffffff : options.buffer_size);
  auto pair = MakeNamedPipePair(/*server_reads=*/true,
                                /*client_overlapped=*/true, buffer);
  if (!pair.ok()) return pair.status();
  ChannelSetup read_setup;
  read_setup.pipe = std::move(pair->server);
  read_setup.can_write = false;
  read_setup.server = true;
  read_setup.name = pair->name;
  ChannelSetup write_setup;
  write_setup.pipe = std::move(pair->client);
  write_setup.can_read = false;
  write_setup.name = pair->name;
  auto reader = Win32Channel::Create(std::move(read_setup));
  if (!reader.ok()) return reader.status();
  auto writer = Win32Channel::Create(std::move(write_setup));
  if (!writer.ok()) return writer.status();
  PipeEnds result;
  result.read_end = *std::move(reader);
  result.write_end = *std::move(writer);
  return result;
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> AdoptPipeEnd(NativeHandle handle,
                                                          PipeEnd end) {
  DWORD info = 0;
  const std::string name = absl::StrCat(
      "handle ", static_cast<uint64_t>(reinterpret_cast<uintptr_t>(handle)));
  if (handle == nullptr || handle == INVALID_HANDLE_VALUE ||
      !GetHandleInformation(handle, &info)) {
    return MakeError(absl::StatusCode::kInvalidArgument, "AdoptPipeEnd", name,
                     "not an open handle");
  }
  DWORD flags = 0;
  ChannelSetup setup;
  setup.server = GetNamedPipeInfo(handle, &flags, nullptr, nullptr, nullptr) &&
                 (flags & PIPE_SERVER_END) != 0;
  setup.pipe = ScopedHandle(handle);
  setup.can_read = end == PipeEnd::kRead;
  setup.can_write = end == PipeEnd::kWrite;
  setup.name = name;
  auto impl = Win32Channel::Create(std::move(setup));
  if (!impl.ok()) return impl.status();
  return std::unique_ptr<ChannelImpl>(*std::move(impl));
}

}  // namespace win32

absl::StatusOr<PipeEnds> BackendCreatePipe(const PipeOptions& options) {
  return win32::CreatePipe(options);
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> BackendAdoptPipeEnd(
    NativeHandle handle, PipeEnd end) {
  return win32::AdoptPipeEnd(handle, end);
}

}  // namespace internal
}  // namespace canal
