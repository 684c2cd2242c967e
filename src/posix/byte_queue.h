// SPDX-License-Identifier: Apache-2.0
// The POSIX channel's receive buffer: a growable FIFO of bytes with cheap
// consumption from the front.

#ifndef CANAL_SRC_POSIX_BYTE_QUEUE_H_
#define CANAL_SRC_POSIX_BYTE_QUEUE_H_

#include <cstddef>
#include <memory>

namespace canal {
namespace internal {
namespace posix {

// How much one recv() asks for when filling the receive buffer.
inline constexpr size_t kRecvChunk = 64 * 1024;

// A growable FIFO of bytes with cheap consumption from the front.
class ByteQueue {
 public:
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  const char* data() const { return buf_.get() + begin_; }
  // Drops `n` bytes from the front.
  void Consume(size_t n);
  // Room for at least `n` more bytes at the back; returns where they go, or
  // nullptr if memory ran out (nothing changed).
  char* PrepareWrite(size_t n);
  size_t writable() const { return cap_ - end_; }
  void Commit(size_t n) { end_ += n; }

 private:
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace posix
}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_POSIX_BYTE_QUEUE_H_
