// SPDX-License-Identifier: Apache-2.0
// A reference shared-memory transport for bench/shm_benchmark.cc, written
// without any canal code: what two processes get from the least a shared
// ring needs, to judge canal's shared-memory transport against. Linux only.
//
// One memfd holds two single-producer single-consumer byte rings, one per
// direction. Each ring has a write position (advanced by its writer) and a
// read position (advanced by its reader), on separate cache lines, and a
// futex word per waiting side. A side that finds nothing to do polls the
// ring for up to `spin` (canal's default: 50 us; less after polls that
// found nothing, and no poll at all when the process may run on one core
// only, where the peer could not run meanwhile), then announces that it sleeps
// and sleeps on the futex; the other side makes the wake-up system call only
// when it sees that announcement. No framing: records have a size both sides
// know, as with the raw socket baseline.
//
//   absl::StatusOr<canal_raw::RefRingMemory> memory =
//       canal_raw::RefRingMemory::Create();
//   // fork; the child maps memory->fd() with RefRingMemory::Map.
//   canal_raw::RefRingEnd client(&*memory, canal_raw::RefRingSide::kFirst,
//                                absl::Microseconds(50));
//   client.Write("ping");

#ifndef CANAL_BENCH_RAW_REF_RING_H_
#define CANAL_BENCH_RAW_REF_RING_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace canal_raw {

// The bytes of each direction's ring: canal's kDefaultRingSize.
inline constexpr size_t kRefRingCapacity = 256 * 1024;

struct RefRing;  // The shared layout of one direction, in ref_ring_linux.cc.

// The shared memory of both rings, mapped into this process. Move-only;
// unmaps (and closes its descriptor) when destroyed.
class RefRingMemory {
 public:
  // A new zeroed memfd (close-on-exec) with both rings, mapped. Returns the
  // errno of memfd_create, ftruncate or mmap.
  static absl::StatusOr<RefRingMemory> Create();
  // Maps the rings of a memfd made by Create in another process, taking
  // `fd`. Returns the errno of fstat or mmap, or InvalidArgument for an
  // object of the wrong size.
  static absl::StatusOr<RefRingMemory> Map(int fd);

  RefRingMemory(RefRingMemory&& other) noexcept;
  RefRingMemory& operator=(RefRingMemory&& other) noexcept;
  RefRingMemory(const RefRingMemory&) = delete;
  RefRingMemory& operator=(const RefRingMemory&) = delete;
  ~RefRingMemory();

  // The memfd, for the peer process (it has to be made inheritable there).
  int fd() const { return fd_; }
  // Direction 0 (first side to second) or 1.
  RefRing* ring(int direction) const;

 private:
  RefRingMemory(int fd, void* base, size_t size)
      : fd_(fd), base_(base), size_(size) {}
  int fd_ = -1;
  void* base_ = nullptr;
  size_t size_ = 0;
};

// Which end of the rings a process is: the first writes direction 0 and
// reads direction 1, the second the other way round.
enum class RefRingSide { kFirst, kSecond };

// One process's end: writes one ring, reads the other. Not thread-safe; one
// reader and one writer per ring, across the two processes.
class RefRingEnd {
 public:
  // `memory` must outlive this end. `spin`: how long a wait polls before it
  // sleeps on the futex (0: at once); taken as 0 when this process's
  // affinity allows one core only (when the end is made).
  RefRingEnd(const RefRingMemory* memory, RefRingSide side,
             absl::Duration spin);

  // Writes all of `data`, waiting for room as needed.
  void Write(absl::string_view data);
  // Waits for at least one byte and takes up to `buffer.size()`; 0 once the
  // peer has closed and everything was read.
  size_t Read(absl::Span<char> buffer);
  // Reads exactly `buffer.size()` bytes; false at end of stream first.
  bool ReadExactly(absl::Span<char> buffer);
  // Tells the reader of our ring that no more bytes come.
  void CloseWrite();

 private:
  RefRing* out_;
  RefRing* in_;
  int64_t spin_ns_;                // the longest poll
  int64_t budget_ns_;              // the next poll's, adapted (see WaitFor)
  uint64_t cached_read_pos_ = 0;   // out_: the peer's read position, last seen
  uint64_t cached_write_pos_ = 0;  // in_: the peer's write position, last seen
};

}  // namespace canal_raw

#endif  // CANAL_BENCH_RAW_REF_RING_H_
