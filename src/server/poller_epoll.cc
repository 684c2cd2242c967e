// The Linux epoll Poller, level-triggered: EPOLLIN while the loop reads,
// EPOLLOUT only while a connection's outbound queue is not empty.

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "src/server/poller.h"

namespace canal {
namespace internal {
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

  absl::Status Init() override {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      const int err = errno;
      return absl::ResourceExhaustedError(
          absl::StrCat("canal: Server: epoll_create1 failed (", strerror(err),
                       ")"));
    }
    return absl::OkStatus();
  }

  absl::Status Add(int fd, void* tag, bool read, bool write) override {
    epoll_event ev{};
    ev.events = Events(read, write);
    ev.data.ptr = tag;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      const int err = errno;
      return absl::ResourceExhaustedError(absl::StrCat(
          "canal: Server: epoll_ctl(ADD) failed (", strerror(err), ")"));
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
  int epfd_ = -1;
};

}  // namespace

std::unique_ptr<Poller> NewEpollPoller() {
  return std::make_unique<EpollPoller>();
}

}  // namespace internal
}  // namespace canal
