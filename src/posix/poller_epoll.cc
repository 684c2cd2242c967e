// SPDX-License-Identifier: Apache-2.0
// The Linux epoll Poller, level-triggered: EPOLLIN while the loop reads,
// EPOLLOUT only while a connection's outbound queue is not empty.

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <new>
#include <string>
#include <vector>

#include "src/posix/error.h"
#include "src/posix/poller.h"

namespace canal {
namespace internal {
namespace posix {
namespace {

constexpr int kMaxEvents = 256;

uint32_t Events(bool read, bool write) {
  return (read ? EPOLLIN : 0u) | (write ? EPOLLOUT : 0u);
}

class EpollPoller final : public Poller {
 public:
  ~EpollPoller() override {
    if (epfd_ >= 0) ::close(epfd_);
  }

  absl::Status Init(absl::string_view server_name) override {
    name_ = std::string(server_name);
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      return ErrnoError(absl::StatusCode::kResourceExhausted, "Server::Start",
                        name_, "epoll_create1 failed", errno);
    }
    try {
      events_.reserve(kMaxEvents);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          "canal: Server::Start: out of memory");
    }
    return absl::OkStatus();
  }

  absl::Status Add(int fd, void* tag, bool read, bool write) override {
    epoll_event ev{};
    ev.events = Events(read, write);
    ev.data.ptr = tag;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      return ErrnoError(absl::StatusCode::kResourceExhausted, "Server", name_,
                        "epoll_ctl(EPOLL_CTL_ADD) failed", errno);
    }
    return absl::OkStatus();
  }

  void Modify(int fd, void* tag, bool read, bool write) override {
    epoll_event ev{};
    ev.events = Events(read, write);
    ev.data.ptr = tag;
    ::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev);
  }

  void Remove(int fd) override {
    epoll_event ev{};
    ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &ev);
  }

  void Wait(int timeout_ms, std::vector<PollEvent>* events) override {
    events->clear();
    // Never allocates: `events` has room for kMaxEvents (from Init, swapped
    // in on the first call).
    if (events->capacity() < static_cast<size_t>(kMaxEvents)) {
      events->swap(events_);
    }
    epoll_event evs[kMaxEvents];
    int n = ::epoll_wait(epfd_, evs, kMaxEvents, timeout_ms);
    for (int i = 0; i < n; ++i) {
      PollEvent ev;
      ev.tag = evs[i].data.ptr;
      ev.readable = (evs[i].events & EPOLLIN) != 0;
      ev.writable = (evs[i].events & EPOLLOUT) != 0;
      ev.error = (evs[i].events & (EPOLLERR | EPOLLHUP)) != 0;
      events->push_back(ev);
    }
  }

 private:
  std::string name_;
  int epfd_ = -1;
  std::vector<PollEvent> events_;
};

}  // namespace

std::unique_ptr<Poller> NewEpollPoller() {
  return std::make_unique<EpollPoller>();
}

}  // namespace posix
}  // namespace internal
}  // namespace canal
