// SPDX-License-Identifier: Apache-2.0
// Doorbells of the shared-memory transport on POSIX: a shared futex on
// Linux; elsewhere short sleeps that re-check the word (see backend.h).
// On Linux also the watcher of the channels' pipes, so that a sleeper with
// no deadline sleeps without a timer.
#include <time.h>

#ifdef __linux__
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "src/internal/backend.h"
#include "src/internal/errors.h"

namespace canal {
namespace internal {
namespace posix {
namespace {

timespec BoundedTimespec(absl::Duration timeout) {
  if (timeout < absl::ZeroDuration()) timeout = absl::ZeroDuration();
  // Long enough for any caller, short enough for every time_t.
  if (timeout > absl::Hours(24)) timeout = absl::Hours(24);
  return absl::ToTimespec(timeout);
}

class PosixDoorbell final : public DoorbellImpl {
 public:
  void Wait(const std::atomic<uint32_t>& word, uint32_t seen,
            absl::Duration timeout) override {
    if (word.load(std::memory_order_seq_cst) != seen) return;
#ifdef __linux__
    // FUTEX_WAIT, not FUTEX_WAIT_PRIVATE: the word is in memory mapped by
    // two processes. The kernel compares the word with `seen` under its
    // lock, so a Wake between our load and the sleep is never lost.
    // No timeout, no timer: arming and cancelling one costs about a tenth
    // of a one-core round trip.
    timespec limit = BoundedTimespec(timeout);
    syscall(SYS_futex, const_cast<std::atomic<uint32_t>*>(&word), FUTEX_WAIT,
            seen, timeout == absl::InfiniteDuration() ? nullptr : &limit,
            nullptr, 0);
#else
    // No wait on a shared address here: sleep a slice and let the caller
    // re-check.
    timespec slice =
        BoundedTimespec(std::min(timeout, absl::Microseconds(200)));
    nanosleep(&slice, nullptr);
#endif
  }

  void Wake(const std::atomic<uint32_t>& word) override {
#ifdef __linux__
    syscall(SYS_futex, const_cast<std::atomic<uint32_t>*>(&word), FUTEX_WAKE,
            INT_MAX, nullptr, nullptr, 0);
#else
    (void)word;
#endif
  }

  NativeHandle handle() const override { return kInvalidNativeHandle; }
};

#ifdef __linux__
// One thread per process watches the pipe of every shared-memory channel
// that sleeps with no deadline: an epoll set, each pipe in it once
// (EPOLLRDHUP, one-shot), and each watch's on_gone run under the lock that
// Remove takes, so that once Remove returns it is not running.
class PeerWatcher {
 public:
  // The process's watcher, started on first use. Null if it could not
  // start, or in a forked child of the process that started it (a child
  // has no copy of the thread).
  static PeerWatcher* Get() {
    static PeerWatcher* const watcher = Start();
    if (watcher == nullptr || forked_child_.load()) return nullptr;
    return watcher;
  }
  static bool InForkedChild() { return forked_child_.load(); }

  // Returns 0 if `fd` cannot be watched (no memory, epoll refused it).
  uint64_t Add(int fd, std::function<void()> on_gone) {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t token = next_++;
    try {
      watches_.emplace(token, std::move(on_gone));
    } catch (const std::bad_alloc&) {
      return 0;
    }
    epoll_event event{};
    event.events = EPOLLRDHUP | EPOLLONESHOT;
    event.data.u64 = token;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &event) != 0) {
      watches_.erase(token);
      return 0;
    }
    return token;
  }

  void Remove(uint64_t token, int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    watches_.erase(token);
  }

 private:
  explicit PeerWatcher(int epoll) : epoll_(epoll) {}

  static PeerWatcher* Start() {
    const int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (epoll < 0) return nullptr;
    PeerWatcher* watcher = new (std::nothrow) PeerWatcher(epoll);
    if (watcher == nullptr || pthread_atfork(nullptr, nullptr, [] {
                                forked_child_.store(true);
                              }) != 0) {
      delete watcher;
      close(epoll);
      return nullptr;
    }
    try {
      // Never joined: it lives as long as the process, as does the watcher
      // (reachable from Get's static, so no leak is reported).
      std::thread([watcher] { watcher->Run(); }).detach();
    } catch (const std::exception&) {
      delete watcher;
      close(epoll);
      return nullptr;
    }
    return watcher;
  }

  void Run() {
    epoll_event events[16];
    while (true) {
      const int n = epoll_wait(epoll_, events, 16, -1);
      if (n < 0) {
        // Only EINTR can happen on a valid set; never spin on anything else.
        if (errno != EINTR) {
          timespec pause{0, 10 * 1000 * 1000};
          nanosleep(&pause, nullptr);
        }
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      for (int i = 0; i < n; ++i) {
        auto it = watches_.find(events[i].data.u64);
        if (it == watches_.end()) continue;
        std::function<void()> on_gone = std::move(it->second);
        watches_.erase(it);
        on_gone();
      }
    }
  }

  static std::atomic<bool> forked_child_;
  const int epoll_;
  std::mutex mu_;
  uint64_t next_ = 1;  // Guarded by mu_.
  std::unordered_map<uint64_t, std::function<void()>> watches_;  // mu_.
};

std::atomic<bool> PeerWatcher::forked_child_{false};

class PosixPeerWatch final : public PeerWatchImpl {
 public:
  PosixPeerWatch(PeerWatcher* watcher, uint64_t token, int fd)
      : watcher_(watcher), token_(token), fd_(fd) {}
  ~PosixPeerWatch() override { watcher_->Remove(token_, fd_); }

 private:
  PeerWatcher* const watcher_;
  const uint64_t token_;
  const int fd_;
};
#endif

}  // namespace
}  // namespace posix

std::unique_ptr<PeerWatchImpl> BackendWatchPeer(NativeHandle pipe,
                                                std::function<void()> on_gone) {
#ifdef __linux__
  posix::PeerWatcher* watcher = posix::PeerWatcher::Get();
  if (watcher == nullptr || pipe < 0) return nullptr;
  const uint64_t token = watcher->Add(pipe, std::move(on_gone));
  if (token == 0) return nullptr;
  std::unique_ptr<PeerWatchImpl> watch(
      new (std::nothrow) posix::PosixPeerWatch(watcher, token, pipe));
  if (watch == nullptr) watcher->Remove(token, pipe);
  return watch;
#else
  // No epoll: sleepers wake in slices (see the doorbell above).
  (void)pipe;
  (void)on_gone;
  return nullptr;
#endif
}

bool BackendPeerWatchesFire() {
#ifdef __linux__
  return !posix::PeerWatcher::InForkedChild();
#else
  return false;  // There are none.
#endif
}

size_t BackendUsableCpus() {
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return static_cast<size_t>(count);
  }
#endif
  const unsigned count = std::thread::hardware_concurrency();
  return count > 0 ? count : 1;
}

absl::StatusOr<std::unique_ptr<DoorbellImpl>> BackendCreateDoorbell(
    absl::string_view name) {
  std::unique_ptr<DoorbellImpl> doorbell(new (std::nothrow)
                                             posix::PosixDoorbell());
  if (!doorbell) return OutOfMemoryError("CreateDoorbell", name);
  return doorbell;
}

absl::StatusOr<std::unique_ptr<DoorbellImpl>> BackendOpenDoorbell(
    absl::string_view name, NativeHandle handle) {
  if (handle != kInvalidNativeHandle) {
    return MakeError(absl::StatusCode::kInvalidArgument, "OpenDoorbell", name,
                     "a POSIX doorbell has no handle");
  }
  return BackendCreateDoorbell(name);
}

}  // namespace internal
}  // namespace canal
