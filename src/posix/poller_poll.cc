// SPDX-License-Identifier: Apache-2.0
// The portable poll(2) Poller: a pollfd array rebuilt in place (swap-remove)
// and an fd -> slot index.

#include <poll.h>

#include <cerrno>
#include <new>
#include <unordered_map>

#include "src/posix/poller.h"

namespace canal {
namespace internal {
namespace posix {
namespace {

short Events(bool read, bool write) {
  return static_cast<short>((read ? POLLIN : 0) | (write ? POLLOUT : 0));
}

class PollPoller final : public Poller {
 public:
  absl::Status Init(absl::string_view) override { return absl::OkStatus(); }

  absl::Status Add(int fd, void* tag, bool read, bool write) override {
    try {
      // Room first, so that nothing below fails half-way.
      fds_.reserve(fds_.size() + 1);
      tags_.reserve(fds_.size() + 1);
      index_[fd] = fds_.size();
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(
          "canal: Server: out of memory watching a connection");
    }
    fds_.push_back(pollfd{fd, Events(read, write), 0});
    tags_.push_back(tag);
    return absl::OkStatus();
  }

  void Modify(int fd, void* tag, bool read, bool write) override {
    auto it = index_.find(fd);
    if (it == index_.end()) return;
    fds_[it->second].events = Events(read, write);
    tags_[it->second] = tag;
  }

  void Remove(int fd) override {
    auto it = index_.find(fd);
    if (it == index_.end()) return;
    const size_t slot = it->second;
    index_.erase(it);
    const size_t last = fds_.size() - 1;
    if (slot != last) {
      fds_[slot] = fds_[last];
      tags_[slot] = tags_[last];
      index_[fds_[slot].fd] = slot;
    }
    fds_.pop_back();
    tags_.pop_back();
  }

  void Wait(int timeout_ms, std::vector<PollEvent>* events) override {
    events->clear();
    int n = ::poll(fds_.data(), fds_.size(), timeout_ms);
    if (n <= 0) return;
    for (size_t i = 0; i < fds_.size() && n > 0; ++i) {
      const short re = fds_[i].revents;
      if (re == 0) continue;
      --n;
      PollEvent ev;
      ev.tag = tags_[i];
      ev.readable = (re & POLLIN) != 0;
      ev.writable = (re & POLLOUT) != 0;
      ev.error = (re & (POLLERR | POLLHUP | POLLNVAL)) != 0;
      // Out of memory: report what fits; level-triggered, the rest comes
      // again next time.
      try {
        events->push_back(ev);
      } catch (const std::bad_alloc&) {
        return;
      }
    }
  }

 private:
  std::vector<pollfd> fds_;
  std::vector<void*> tags_;
  std::unordered_map<int, size_t> index_;
};

}  // namespace

std::unique_ptr<Poller> NewPollPoller() {
  return std::make_unique<PollPoller>();
}

}  // namespace posix
}  // namespace internal
}  // namespace canal
