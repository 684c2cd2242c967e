// SPDX-License-Identifier: Apache-2.0
// The raw Windows primitives: a pair of overlapped named-pipe handles and a
// raw named-pipe request/reply server used with CallNamedPipe.

#include <windows.h>

#include <atomic>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "bench/raw/raw.h"

namespace canal_raw {
namespace {

absl::Status Win32Error(absl::string_view what, DWORD error) {
  return absl::UnknownError(absl::StrCat("raw ", what, ": Windows error ",
                                         static_cast<unsigned long>(error)));
}

std::wstring UniquePipeName() {
  static std::atomic<int> counter{0};
  const std::string name =
      absl::StrCat("\\\\.\\pipe\\canal-raw-", GetCurrentProcessId(), "-",
                   counter.fetch_add(1), "-", GetTickCount64());
  return std::wstring(name.begin(), name.end());
}

// Runs one overlapped ReadFile or WriteFile to completion. Returns the
// number of bytes moved or the Windows error.
struct IoResult {
  DWORD bytes = 0;
  DWORD error = ERROR_SUCCESS;
};

IoResult Complete(HANDLE handle, HANDLE event, bool write, char* data,
                  DWORD size) {
  OVERLAPPED ov{};
  ov.hEvent = event;
  IoResult result;
  const BOOL ok = write ? WriteFile(handle, data, size, nullptr, &ov)
                        : ReadFile(handle, data, size, nullptr, &ov);
  if (!ok) {
    const DWORD error = GetLastError();
    if (error != ERROR_IO_PENDING) {
      result.error = error;
      return result;
    }
  }
  if (!GetOverlappedResult(handle, &ov, &result.bytes, TRUE)) {
    result.error = GetLastError();
  }
  return result;
}

class PipeEnd : public StreamEnd {
 public:
  PipeEnd(HANDLE handle, bool message_mode)
      : handle_(handle),
        event_(CreateEventW(nullptr, TRUE, FALSE, nullptr)),
        message_mode_(message_mode) {}
  ~PipeEnd() override {
    Close();
    if (event_ != nullptr) CloseHandle(event_);
  }

  absl::Status Send(absl::string_view data) override {
    size_t done = 0;
    do {
      IoResult r =
          Complete(handle_, event_, true, const_cast<char*>(data.data()) + done,
                   static_cast<DWORD>(data.size() - done));
      if (r.error != ERROR_SUCCESS) return Win32Error("WriteFile", r.error);
      done += r.bytes;
    } while (done < data.size());
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> Receive(absl::Span<char> buffer) override {
    IoResult r = Complete(handle_, event_, false, buffer.data(),
                          static_cast<DWORD>(buffer.size()));
    if (r.error == ERROR_BROKEN_PIPE || r.error == ERROR_PIPE_NOT_CONNECTED) {
      return 0;
    }
    if (r.error != ERROR_SUCCESS) return Win32Error("ReadFile", r.error);
    if (message_mode_ && r.bytes != buffer.size()) {
      return absl::DataLossError("raw ReadFile: unexpected message size");
    }
    return static_cast<size_t>(r.bytes);
  }

  void Close() override {
    if (handle_ != INVALID_HANDLE_VALUE) CloseHandle(handle_);
    handle_ = INVALID_HANDLE_VALUE;
  }

  std::string TransportName() const override { return RawPrimitiveName(); }

 private:
  HANDLE handle_;
  HANDLE event_;
  bool message_mode_;
};

DWORD PipeType(bool message_mode) {
  return message_mode ? PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT
                      : PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT;
}

// Waits for a client on `pipe` (overlapped ConnectNamedPipe). Returns false
// if `stop` was signalled first or the connect failed.
bool AwaitClient(HANDLE pipe, HANDLE event, HANDLE stop) {
  OVERLAPPED ov{};
  ov.hEvent = event;
  if (ConnectNamedPipe(pipe, &ov)) return true;
  const DWORD error = GetLastError();
  if (error == ERROR_PIPE_CONNECTED) return true;
  if (error != ERROR_IO_PENDING) return false;
  HANDLE handles[2] = {event, stop};
  const DWORD which = WaitForMultipleObjects(2, handles, FALSE, INFINITE);
  if (which != WAIT_OBJECT_0) {
    CancelIoEx(pipe, &ov);
    DWORD ignored = 0;
    GetOverlappedResult(pipe, &ov, &ignored, TRUE);
    return false;
  }
  DWORD ignored = 0;
  return GetOverlappedResult(pipe, &ov, &ignored, FALSE) != 0;
}

class Win32CallServer : public RawCallServer {
 public:
  Win32CallServer(std::wstring name, HANDLE first, size_t request_size)
      : name_(std::move(name)),
        request_size_(request_size),
        stop_(CreateEventW(nullptr, TRUE, FALSE, nullptr)),
        thread_([this, first] { Serve(first); }) {}

  ~Win32CallServer() override {
    SetEvent(stop_);
    thread_.join();
    CloseHandle(stop_);
  }

  absl::Status Call(absl::string_view request, std::string* reply) override {
    reply->resize(request.size());
    DWORD read = 0;
    if (!CallNamedPipeW(name_.c_str(), const_cast<char*>(request.data()),
                        static_cast<DWORD>(request.size()), &(*reply)[0],
                        static_cast<DWORD>(reply->size()), &read,
                        NMPWAIT_WAIT_FOREVER)) {
      return Win32Error("CallNamedPipe", GetLastError());
    }
    if (read != request.size()) {
      return absl::DataLossError("raw CallNamedPipe: short reply");
    }
    return absl::OkStatus();
  }

 private:
  void Serve(HANDLE pipe) {
    HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    std::string buffer(request_size_, '\0');
    while (pipe != INVALID_HANDLE_VALUE && AwaitClient(pipe, event, stop_)) {
      // The next instance exists before this client is served, so that a
      // following client never finds the name missing.
      HANDLE next = NewInstance(name_);
      PipeEnd end(pipe, true);
      absl::StatusOr<size_t> n =
          end.Receive(absl::MakeSpan(&buffer[0], buffer.size()));
      if (n.ok() && *n == buffer.size() && end.Send(buffer).ok()) {
        // Wait for the client to close, so the reply is never discarded.
        (void)end.Receive(absl::MakeSpan(&buffer[0], buffer.size()));
      }
      pipe = next;
    }
    if (pipe != INVALID_HANDLE_VALUE) CloseHandle(pipe);
    CloseHandle(event);
  }

 public:
  // Creates one more instance of the message-mode pipe `name`.
  static HANDLE NewInstance(const std::wstring& name) {
    return CreateNamedPipeW(
        name.c_str(), PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED, PipeType(true),
        PIPE_UNLIMITED_INSTANCES, 64 * 1024, 64 * 1024, 0, nullptr);
  }

 private:
  std::wstring name_;
  size_t request_size_;
  HANDLE stop_;
  std::thread thread_;
};

}  // namespace

const char* RawPrimitiveName() { return "named pipe"; }

absl::StatusOr<StreamPair> MakeRawPair(const PairOptions& options) {
  const bool message_mode = options.message_mode;
  const size_t buffer_size = options.buffer_size;
  const std::wstring name = UniquePipeName();
  // CreateNamedPipe has no default size: a zero quota makes every write wait
  // for the reader. 0 therefore means 64 KiB, what canal picks for 0 too.
  const DWORD buffers =
      static_cast<DWORD>(buffer_size == 0 ? 64 * 1024 : buffer_size);
  HANDLE server = CreateNamedPipeW(
      name.c_str(),
      PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
      PipeType(message_mode), 1, buffers, buffers, 0, nullptr);
  if (server == INVALID_HANDLE_VALUE) {
    return Win32Error("CreateNamedPipe", GetLastError());
  }
  HANDLE client =
      CreateFileW(name.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr,
                  OPEN_EXISTING, FILE_FLAG_OVERLAPPED, nullptr);
  if (client == INVALID_HANDLE_VALUE) {
    const DWORD error = GetLastError();
    CloseHandle(server);
    return Win32Error("CreateFile", error);
  }
  if (message_mode) {
    DWORD read_mode = PIPE_READMODE_MESSAGE;
    SetNamedPipeHandleState(client, &read_mode, nullptr, nullptr);
  }
  // The client already opened the instance: ConnectNamedPipe reports
  // ERROR_PIPE_CONNECTED at once.
  HANDLE event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  OVERLAPPED ov{};
  ov.hEvent = event;
  if (!ConnectNamedPipe(server, &ov)) {
    const DWORD error = GetLastError();
    DWORD ignored = 0;
    if (error == ERROR_IO_PENDING) {
      GetOverlappedResult(server, &ov, &ignored, TRUE);
    } else if (error != ERROR_PIPE_CONNECTED) {
      CloseHandle(event);
      CloseHandle(server);
      CloseHandle(client);
      return Win32Error("ConnectNamedPipe", error);
    }
  }
  CloseHandle(event);
  StreamPair pair;
  pair.server = std::make_unique<PipeEnd>(server, message_mode);
  pair.client = std::make_unique<PipeEnd>(client, message_mode);
  return pair;
}

absl::StatusOr<std::unique_ptr<RawCallServer>> RawCallServer::Start(
    size_t request_size) {
  std::wstring name = UniquePipeName();
  HANDLE first = Win32CallServer::NewInstance(name);
  if (first == INVALID_HANDLE_VALUE) {
    return Win32Error("CreateNamedPipe", GetLastError());
  }
  return std::unique_ptr<RawCallServer>(
      new Win32CallServer(std::move(name), first, request_size));
}

}  // namespace canal_raw
