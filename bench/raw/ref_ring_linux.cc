// SPDX-License-Identifier: Apache-2.0
// The reference rings of ref_ring.h: memfd + mmap, futex wake-ups.

#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "bench/raw/ref_ring.h"

namespace canal_raw {

// The shared layout of one direction. Each side's position is on its own
// cache line, so that polling one side's line does not take the other's.
struct RefRing {
  // Writer's line.
  alignas(64) std::atomic<uint64_t> write_pos;  // bytes written so far
  std::atomic<uint32_t> data_seq;         // futex: bumped to wake the reader
  std::atomic<uint32_t> closed;           // the writer has finished
  std::atomic<uint32_t> reader_sleeping;  // set by the reader
  // Reader's line.
  alignas(64) std::atomic<uint64_t> read_pos;  // bytes read so far
  std::atomic<uint32_t> space_seq;        // futex: bumped to wake the writer
  std::atomic<uint32_t> writer_sleeping;  // set by the writer
  alignas(64) char data[kRefRingCapacity];
};

namespace {

static_assert(std::atomic<uint32_t>::is_always_lock_free &&
                  std::atomic<uint64_t>::is_always_lock_free,
              "the rings need lock-free atomics across processes");
static_assert((kRefRingCapacity & (kRefRingCapacity - 1)) == 0,
              "positions wrap with a mask");

constexpr size_t kMemorySize = 2 * sizeof(RefRing);

absl::Status Errno(absl::string_view what) {
  const int err = errno;
  return absl::ErrnoToStatus(err, absl::StrCat("reference ring: ", what));
}

// Shared (not FUTEX_PRIVATE_FLAG) futexes: the word is in a mapping of two
// processes.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected,
            nullptr, nullptr, 0);
}

void FutexWake(std::atomic<uint32_t>* word) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, 1,
            nullptr, nullptr, 0);
}

int64_t NowNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Waits until `ready()`: polls for up to `*budget_ns` (busy, looking at
// the clock every few looks so that the bound holds in wall time), then
// sleeps on `seq` with `sleeping` set.
//
// The poll never yields the core: a yield on a loaded core hands it to
// whatever else is runnable there for a whole time slice (milliseconds),
// while a sleeper woken by the futex is run soon. The budget adapts between
// `min_ns` and `max_ns` (the configured spin): a poll that timed out halves
// it (the peer is probably not running meanwhile, e.g. on this very core),
// one that succeeded doubles it.
//
// The waker bumps `seq` and wakes only when it sees `sleeping` (after its
// own update, behind a full fence); this side sets `sleeping` and re-checks
// `ready()` behind a full fence before it sleeps, so one of the two always
// sees the other.
template <typename Ready>
void WaitFor(Ready ready, std::atomic<uint32_t>* seq,
             std::atomic<uint32_t>* sleeping, int64_t* budget_ns,
             int64_t max_ns) {
  constexpr int64_t kMinBudgetNs = 1000;
  if (ready()) return;
  if (max_ns > 0) {
    const int64_t end = NowNs() + *budget_ns;
    for (int i = 0;; ++i) {
      CpuRelax();
      if (ready()) {
        *budget_ns = std::min(max_ns, 2 * *budget_ns);
        return;
      }
      if ((i & 7) == 7 && NowNs() >= end) break;
    }
    *budget_ns = std::max(std::min(kMinBudgetNs, max_ns), *budget_ns / 2);
  }
  while (true) {
    const uint32_t seen = seq->load(std::memory_order_acquire);
    sleeping->store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (ready()) break;
    FutexWait(seq, seen);
    if (ready()) break;
  }
  sleeping->store(0, std::memory_order_relaxed);
}

// The waker's half of WaitFor, after it has published its update.
void WakeIfSleeping(std::atomic<uint32_t>* seq,
                    std::atomic<uint32_t>* sleeping) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sleeping->load(std::memory_order_relaxed) == 0) return;
  seq->fetch_add(1, std::memory_order_release);
  FutexWake(seq);
}

}  // namespace

absl::StatusOr<RefRingMemory> RefRingMemory::Create() {
  const int fd = ::memfd_create("canal-reference-ring", MFD_CLOEXEC);
  if (fd < 0) return Errno("memfd_create");
  if (::ftruncate(fd, static_cast<off_t>(kMemorySize)) != 0) {
    absl::Status status = Errno("ftruncate");
    ::close(fd);
    return status;
  }
  void* base =
      ::mmap(nullptr, kMemorySize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    absl::Status status = Errno("mmap");
    ::close(fd);
    return status;
  }
  // The object is zeroed: every position, word and flag starts at 0. The
  // atomics are trivially constructible, so the objects exist once placed.
  new (base) RefRing[2];
  return RefRingMemory(fd, base, kMemorySize);
}

absl::StatusOr<RefRingMemory> RefRingMemory::Map(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status status = Errno("fstat");
    ::close(fd);
    return status;
  }
  if (static_cast<size_t>(st.st_size) != kMemorySize) {
    ::close(fd);
    return absl::InvalidArgumentError("reference ring: wrong object size");
  }
  void* base =
      ::mmap(nullptr, kMemorySize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    absl::Status status = Errno("mmap");
    ::close(fd);
    return status;
  }
  return RefRingMemory(fd, base, kMemorySize);
}

RefRingMemory::RefRingMemory(RefRingMemory&& other) noexcept
    : fd_(other.fd_), base_(other.base_), size_(other.size_) {
  other.fd_ = -1;
  other.base_ = nullptr;
  other.size_ = 0;
}

RefRingMemory& RefRingMemory::operator=(RefRingMemory&& other) noexcept {
  if (this != &other) {
    this->~RefRingMemory();
    new (this) RefRingMemory(std::move(other));
  }
  return *this;
}

RefRingMemory::~RefRingMemory() {
  if (base_ != nullptr) ::munmap(base_, size_);
  if (fd_ >= 0) ::close(fd_);
}

RefRing* RefRingMemory::ring(int direction) const {
  return static_cast<RefRing*>(base_) + direction;
}

RefRingEnd::RefRingEnd(const RefRingMemory* memory, RefRingSide side,
                       absl::Duration spin)
    : out_(memory->ring(side == RefRingSide::kFirst ? 0 : 1)),
      in_(memory->ring(side == RefRingSide::kFirst ? 1 : 0)),
      spin_ns_(absl::ToInt64Nanoseconds(spin)) {
  // Polling only helps when the peer can run meanwhile: with one allowed
  // core it would only delay the peer by the whole spin.
  cpu_set_t allowed;
  if (::sched_getaffinity(0, sizeof(allowed), &allowed) == 0 &&
      CPU_COUNT(&allowed) < 2) {
    spin_ns_ = 0;
  }
  budget_ns_ = spin_ns_;
}

void RefRingEnd::Write(absl::string_view data) {
  RefRing* r = out_;
  uint64_t pos = r->write_pos.load(std::memory_order_relaxed);
  while (!data.empty()) {
    if (pos - cached_read_pos_ == kRefRingCapacity) {
      cached_read_pos_ = r->read_pos.load(std::memory_order_acquire);
      if (pos - cached_read_pos_ == kRefRingCapacity) {
        WaitFor(
            [&] {
              cached_read_pos_ = r->read_pos.load(std::memory_order_acquire);
              return pos - cached_read_pos_ < kRefRingCapacity;
            },
            &r->space_seq, &r->writer_sleeping, &budget_ns_, spin_ns_);
      }
    }
    const size_t room =
        kRefRingCapacity - static_cast<size_t>(pos - cached_read_pos_);
    const size_t offset = static_cast<size_t>(pos) & (kRefRingCapacity - 1);
    const size_t n = std::min({room, data.size(), kRefRingCapacity - offset});
    std::memcpy(r->data + offset, data.data(), n);
    data.remove_prefix(n);
    pos += n;
    r->write_pos.store(pos, std::memory_order_release);
    WakeIfSleeping(&r->data_seq, &r->reader_sleeping);
  }
}

size_t RefRingEnd::Read(absl::Span<char> buffer) {
  RefRing* r = in_;
  const uint64_t pos = r->read_pos.load(std::memory_order_relaxed);
  if (cached_write_pos_ == pos) {
    cached_write_pos_ = r->write_pos.load(std::memory_order_acquire);
    if (cached_write_pos_ == pos) {
      WaitFor(
          [&] {
            cached_write_pos_ = r->write_pos.load(std::memory_order_acquire);
            return cached_write_pos_ != pos ||
                   r->closed.load(std::memory_order_acquire) != 0;
          },
          &r->data_seq, &r->reader_sleeping, &budget_ns_, spin_ns_);
      // `closed` is set after the last byte: look again for bytes.
      cached_write_pos_ = r->write_pos.load(std::memory_order_acquire);
      if (cached_write_pos_ == pos) return 0;
    }
  }
  const size_t offset = static_cast<size_t>(pos) & (kRefRingCapacity - 1);
  const size_t n = std::min({static_cast<size_t>(cached_write_pos_ - pos),
                             buffer.size(), kRefRingCapacity - offset});
  std::memcpy(buffer.data(), r->data + offset, n);
  r->read_pos.store(pos + n, std::memory_order_release);
  WakeIfSleeping(&r->space_seq, &r->writer_sleeping);
  return n;
}

bool RefRingEnd::ReadExactly(absl::Span<char> buffer) {
  size_t got = 0;
  while (got < buffer.size()) {
    const size_t n = Read(buffer.subspan(got));
    if (n == 0) return false;
    got += n;
  }
  return true;
}

void RefRingEnd::CloseWrite() {
  out_->closed.store(1, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  out_->data_seq.fetch_add(1, std::memory_order_release);
  FutexWake(&out_->data_seq);
}

}  // namespace canal_raw
