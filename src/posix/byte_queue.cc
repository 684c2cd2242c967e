// SPDX-License-Identifier: Apache-2.0
#include "src/posix/byte_queue.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

namespace canal {
namespace internal {
namespace posix {
namespace {

// A receive buffer this large is freed once it runs empty, so one huge
// message does not pin memory for the rest of the connection.
constexpr size_t kKeepCapacity = 1024 * 1024;

}  // namespace

void ByteQueue::Consume(size_t n) {
  begin_ += n;
  if (begin_ == end_) {
    begin_ = end_ = 0;
    if (cap_ > kKeepCapacity) {
      buf_.reset();
      cap_ = 0;
    }
  }
}

char* ByteQueue::PrepareWrite(size_t n) {
  if (cap_ - end_ >= n) return buf_.get() + end_;
  const size_t used = size();
  if (cap_ - used >= n && used <= cap_ / 2) {
    // Enough room if the data moves to the front; cheap when little is left.
    std::memmove(buf_.get(), buf_.get() + begin_, used);
  } else {
    // Doubling, so that a frame straddling the end of the buffer does not
    // reallocate it every time. Callers ask for at most
    // max(kRecvChunk, size()) at a time, so the buffer grows with what is
    // queued (bytes that arrived), never with a length a peer announced.
    const size_t new_cap = std::max({2 * cap_, used + n, kRecvChunk});
    std::unique_ptr<char[]> fresh(new (std::nothrow) char[new_cap]);
    if (!fresh) return nullptr;
    if (used > 0) std::memcpy(fresh.get(), buf_.get() + begin_, used);
    buf_ = std::move(fresh);
    cap_ = new_cap;
  }
  begin_ = 0;
  end_ = used;
  return buf_.get() + end_;
}

}  // namespace posix
}  // namespace internal
}  // namespace canal
