// SPDX-License-Identifier: Apache-2.0
#include "test_util.h"

#include <algorithm>
#include <cstdlib>
#include <string>
#include <atomic>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

#ifdef _WIN32
#include <windows.h>
#else
#include <dirent.h>
#include <unistd.h>
#endif

namespace canal_test {

int64_t CurrentProcessId() {
#ifdef _WIN32
  return static_cast<int64_t>(GetCurrentProcessId());
#else
  return static_cast<int64_t>(getpid());
#endif
}

bool RunningUnderWine() {
#ifdef _WIN32
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  return ntdll != nullptr &&
         GetProcAddress(ntdll, "wine_get_version") != nullptr;
#else
  return false;
#endif
}

int64_t OpenHandleCount() {
#ifdef _WIN32
  DWORD count = 0;
  if (GetProcessHandleCount(GetCurrentProcess(), &count) && count > 0) {
    return static_cast<int64_t>(count);
  }
  int64_t found = 0;
  for (uintptr_t value = 4; value < 0x40000; value += 4) {
    DWORD flags = 0;
    if (GetHandleInformation(reinterpret_cast<HANDLE>(value), &flags)) {
      ++found;
    }
  }
  return found;
#else
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) dir = opendir("/dev/fd");
  if (dir == nullptr) return -1;
  int64_t count = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // The directory's own descriptor.
#endif
}

std::string UniqueName(absl::string_view label) {
  static std::atomic<uint32_t> counter{0};
  static const uint32_t random = [] {
    std::random_device device;
    return static_cast<uint32_t>(device());
  }();
  std::string clean;
  for (char c : label.substr(0, 24)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    clean.push_back(ok ? c : '_');
  }
  return absl::StrFormat("ct-%s-%d-%u-%08x", clean, CurrentProcessId(),
                         counter.fetch_add(1) + 1, random);
}

std::string Pattern(size_t size, uint32_t seed) {
  std::string out(size, '\0');
  uint32_t x = seed * 2654435761u + 12345u;
  for (size_t i = 0; i < size; ++i) {
    x = x * 1103515245u + 12345u;
    out[i] = static_cast<char>((x >> 16) ^ i);
  }
  return out;
}

absl::StatusOr<std::string> ReadExactly(canal::Channel& channel, size_t size,
                                        absl::Duration timeout) {
  std::string out(size, '\0');
  size_t got = 0;
  while (got < size) {
    absl::StatusOr<canal::ReadResult> r =
        channel.Read(absl::MakeSpan(&out[got], size - got), timeout);
    if (!r.ok()) return r.status();
    if (r->size == 0 && !r->more && channel.mode() == canal::PipeMode::kByte) {
      return absl::InternalError("byte-mode Read returned 0 bytes");
    }
    got += r->size;
  }
  return out;
}

bool PollUntil(const std::function<bool()>& condition, absl::Duration bound) {
  const absl::Time give_up = absl::Now() + bound;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= give_up) return false;
    std::this_thread::yield();
  }
}

canal::ServerHandlers ConnectionCounter::Wrap(canal::ServerHandlers handlers) {
  handlers.on_open = [this, on_open = std::move(handlers.on_open)](
                         canal::Connection& connection) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++opened_;
    }
    if (on_open) on_open(connection);
  };
  handlers.on_close = [this, on_close = std::move(handlers.on_close)](
                          canal::Connection& connection,
                          const absl::Status& status) {
    struct Count {
      ConnectionCounter* counter;
      ~Count() {
        std::lock_guard<std::mutex> lock(counter->mu_);
        ++counter->closed_;
        counter->cv_.notify_all();
      }
    } count{this};
    if (on_close) on_close(connection, status);
  };
  return handlers;
}

bool ConnectionCounter::WaitUntilAllClosed(absl::Duration bound) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, absl::ToChronoNanoseconds(bound),
                      [this] { return closed_ == opened_; });
}

int ConnectionCounter::open() {
  std::lock_guard<std::mutex> lock(mu_);
  return opened_ - closed_;
}

canal::Transport TestTransport() {
  const char* env = std::getenv("CANAL_TEST_TRANSPORT");
  return env != nullptr && std::string(env) == "shm"
             ? canal::Transport::kSharedMemory
             : canal::Transport::kPipe;
}

absl::StatusOr<canal::Listener> CreateListener(
    absl::string_view name, const canal::ListenerOptions& options) {
  canal::ListenerOptions with = options;
  if (with.transport == canal::Transport::kPipe) {
    with.transport = TestTransport();
  }
  return canal::Listener::Create(name, with);
}

canal::Transport ExpectedTransport(const canal::ListenerOptions& options) {
  const bool shm = options.transport == canal::Transport::kSharedMemory ||
                   TestTransport() == canal::Transport::kSharedMemory;
  return shm && options.access == canal::PipeAccess::kDuplex
             ? canal::Transport::kSharedMemory
             : canal::Transport::kPipe;
}

absl::StatusOr<ConnectedPair> MakePair(absl::string_view name,
                                       const canal::ListenerOptions& options) {
  ConnectedPair pair;
  absl::StatusOr<canal::Listener> listener = CreateListener(name, options);
  if (!listener.ok()) return listener.status();
  pair.listener = std::move(*listener);
  absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
  if (!client.ok()) return client.status();
  pair.client = std::move(*client);
  absl::StatusOr<canal::Channel> server =
      pair.listener.Accept(absl::Seconds(10));
  if (!server.ok()) return server.status();
  pair.server = std::move(*server);
  const canal::Transport want = ExpectedTransport(options);
  // The client first: the listener's end settles once the client answered.
  if (pair.client.transport() != want || pair.server.transport() != want) {
    return absl::InternalError(
        absl::StrCat("MakePair: the channels use transports ",
                     static_cast<int>(pair.server.transport()), " and ",
                     static_cast<int>(pair.client.transport()), ", expected ",
                     static_cast<int>(want)));
  }
  return pair;
}

}  // namespace canal_test
