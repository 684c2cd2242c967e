// SPDX-License-Identifier: Apache-2.0
// Two single-producer single-consumer byte rings in one shared memory
// region, the data path of a shared-memory channel. Platform-free: no
// syscalls and no waiting here; the backend maps the region, passes it in as
// a span, and builds its sleeping on the doorbell words described below.
//
// The peer process can write anything into the region at any time. So every
// index and record header is loaded from the region once, into a local, and
// checked before it is used; each side keeps its own copy of the index it
// owns and of the region's geometry (taken once, at attach). A ring that does
// not add up returns DataLoss naming the operation, and keeps returning it:
// never an access outside the region, a loop that does not end or an
// allocation sized by the peer.
//
//   // Creator, after creating and mapping an object of
//   // ShmRingLayout::BytesFor(options.ring_capacity) bytes at `mapping`:
//   ShmRegionOptions options;  // 64 KiB rings of messages
//   absl::StatusOr<ShmRegionView> view = InitializeShmRegion(mapping, options);
//   ShmRingWriter out(view->creator_to_attacher());
//   ShmRingReader in(view->attacher_to_creator());
//   // Peer (told the capacity and mode over the pipe, not by the region):
//   absl::StatusOr<ShmRegionView> peer = AttachShmRegion(mapping, options);
//
// Layout (all offsets from the start of the region, which must be 64-byte
// aligned, as every mapping is):
//   0    ShmRegionHeader: magic "CNSR", version, ring capacity, mode, the
//        region's size and a check word over them (64 bytes)
//   64   control block of ring 0 (creator -> attacher), 128 bytes:
//          a 64-byte line written only by the producer: tail, data_seq,
//          writer_waiting
//          a 64-byte line written only by the consumer: head, space_seq,
//          reader_waiting
//   192  control block of ring 1 (attacher -> creator)
//   320  data of ring 0 (capacity bytes), then data of ring 1
// head and tail are free-running uint64 byte counters (index into the data
// is counter & (capacity - 1)); tail - head is the published, unread part
// and must be <= capacity.
//
// Byte mode (ShmRingMode::kBytes): the data are the raw bytes of the stream;
// writes and reads may be partial.
//
// Message mode (ShmRingMode::kMessages): the data are records, each a
// 16-byte header followed by the payload, padded to a multiple of 16 so that
// every header lies whole before the end of the data area (capacity is a
// power of two >= 64). A payload that does not fit before the end of the
// data area continues at its start (records are split across the wrap; there
// is no wrap marker). Header, native byte order (both ends are one machine):
//   u32 length             payload bytes in this record, <= capacity - 16
//   u32 flags              kShmRecordFirst | kShmRecordLast, nothing else;
//                          or a pipe marker (below)
//   u32 message_remaining  payload bytes of the message from this record
//                          to its end (this record included); on a first
//                          record the message's whole size, which Peek
//                          reports before the rest has been written
//   u32 check              kShmRecordCheck ^ length ^ flags ^
//                          message_remaining (catches a stray write)
// A message that fits in one record is one record with both flags. A larger
// one (up to 4 GiB - 1 bytes, as canal's messages) is streamed through the
// ring as fragments: first, middle..., last, each non-last fragment carrying
// at least one byte, so any message passes through a ring of any capacity.
// The reader checks the sequence (first only between messages, the
// remaining count going down by exactly each fragment's length, last exactly
// at zero) and delivers the message's bytes in order, reporting its end.
// A pipe marker is a record with all three flags kShmRecordFirst |
// kShmRecordLast | kShmRecordOnPipe, length 0 and message_remaining the
// size of a message that travels on the pipe instead (it carries handles,
// which only the pipe can pass): it stands for that message, in its place
// among the ring's messages, and is only ever written after the message
// was sent on the pipe. Only between messages; any other use of the flag
// is corrupt. Records of ordinary messages never have it.
// A record becomes visible only when the producer stores the tail past it
// with release ordering, which the consumer loads with acquire ordering, so a
// torn record is never read; a record that extends beyond the published tail
// is corrupt. A hostile peer can still rewrite a published payload while it
// is copied out: the reader then delivers its bytes, garbage but from
// within the ring (the header was copied once and checked before).
//
// Wake-ups (for a futex / WaitOnAddress waiter built on this later). Each
// ring has two doorbells, 32-bit words a waiter can sleep on:
//   data_seq   bumped by the producer after every publish of the tail;
//              the consumer sleeps on it when the ring is empty;
//   space_seq  bumped by the consumer after every advance of the head;
//              the producer sleeps on it when the ring is full;
// and two flags, reader_waiting (set by the consumer) and writer_waiting
// (set by the producer), telling the other side that a wake is needed.
// The protocol, so that no wake-up is lost (all of it seq_cst):
//   waiter:  seq = PrepareToWait()        // sets its flag, then loads seq
//            if (ready again) { FinishWait(); proceed; }  // re-check
//            sleep on doorbell() while its value == seq, with a timeout
//            FinishWait(); loop
//   other:   publish (store the index), bump the doorbell (fetch_add),
//            then load the flag; if set, wake sleepers on the doorbell:
//            the results' `wake_peer`.
// If the waiter's load of seq missed the bump, then that load came before
// the bump in the single total order, and so did its flag store: the other
// side's flag load, after its bump, sees the flag and wakes. If the load saw
// the bump, the publish before it is visible and the re-check finds it.
// Either way a sleep on an already-changed word returns at once. A hostile
// peer can at most cause spurious wakes or withhold them, so a waiter always
// sleeps with a timeout and re-checks after every wake.
//
// One ShmRingWriter and one ShmRingReader per ring, for the region's whole
// life, both starting at index 0. Neither class is thread-safe; the two ends
// of a ring may run on any two threads or processes.

#ifndef CANAL_SRC_INTERNAL_SHM_RING_H_
#define CANAL_SRC_INTERNAL_SHM_RING_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace canal {
namespace internal {

// The region header's magic ("CNSR" in memory) and layout version.
inline constexpr uint32_t kShmMagic = 0x52534e43;
inline constexpr uint32_t kShmVersion = 1;
// Ring capacities allowed (powers of two in between).
inline constexpr uint32_t kShmMinRingCapacity = 64;
inline constexpr uint32_t kShmMaxRingCapacity = uint32_t{1} << 30;
// Each control block line, and the region's alignment.
inline constexpr size_t kShmCacheLine = 64;
// Message mode: the record header, the records' alignment, the flags.
inline constexpr size_t kShmRecordHeaderSize = 16;
inline constexpr size_t kShmRecordAlign = 16;
inline constexpr uint32_t kShmRecordFirst = 1;
inline constexpr uint32_t kShmRecordLast = 2;
// With both of the above: a pipe marker (see the top of this file).
inline constexpr uint32_t kShmRecordOnPipe = 4;
inline constexpr uint32_t kShmPipeMarkerFlags =
    kShmRecordFirst | kShmRecordLast | kShmRecordOnPipe;
// XORed into every record's check word.
inline constexpr uint32_t kShmRecordCheck = 0x43524543;
// The largest message (as canal's message framing).
inline constexpr uint64_t kShmMaxMessage = 0xffffffffu;

// What a region's rings carry; both ends must agree.
enum class ShmRingMode : uint32_t { kBytes = 1, kMessages = 2 };

// Geometry of a region, as the creator chose it and told the peer.
struct ShmRegionOptions {
  uint32_t ring_capacity = 64 * 1024;  // Power of two, 64 B .. 1 GiB.
  ShmRingMode mode = ShmRingMode::kMessages;
};

// The region header, at offset 0. Read by the attacher once, by copy.
struct ShmRegionHeader {
  uint32_t magic;  // kShmMagic, kShmVersion, the options, BytesFor().
  uint32_t version;
  uint32_t ring_capacity;
  uint32_t mode;
  uint64_t region_size;
  uint32_t check;  // ShmHeaderCheck() of the fields above.
  uint32_t reserved;
  char padding[kShmCacheLine - 32];
};

// A control block line written only by the ring's producer.
struct alignas(kShmCacheLine) ShmProducerLine {
  std::atomic<uint64_t> tail;            // Bytes ever published.
  std::atomic<uint32_t> data_seq;        // Bumped after each publish.
  std::atomic<uint32_t> writer_waiting;  // 1: wake me on space_seq.
  std::atomic<uint32_t> closed;          // 1: the producer's side closed.
  std::atomic<uint32_t> switched;        // 1: writes go to the ring now,
  std::atomic<uint64_t> pipe_units;      // after this many on the pipe.
  // Byte mode: where in the stream a write waiting for room ends (0: no
  // such write), so that Peek counts its bytes as PeekNamedPipe counts a
  // pending WriteFile's. An end, not a count: it stays right while the
  // write publishes part after part.
  std::atomic<uint64_t> blocked_end;
};

// A control block line written only by the ring's consumer.
struct alignas(kShmCacheLine) ShmConsumerLine {
  std::atomic<uint64_t> head;            // Bytes ever consumed.
  std::atomic<uint32_t> space_seq;       // Bumped after each release.
  std::atomic<uint32_t> reader_waiting;  // 1: wake me on data_seq.
  std::atomic<uint32_t> closed;          // 1: the consumer's side closed.
  std::atomic<uint32_t> attached;        // 1: the consumer reads the ring.
};

// One ring's control block: the two lines, so that the producer's and the
// consumer's stores never share a cache line.
struct ShmRingControl {
  ShmProducerLine producer;
  ShmConsumerLine consumer;
};

// The atomics are shared with another process: they must be plain words of
// the right size, with no lock inside, and the structs must be laid out as
// declared.
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<uint64_t>) == 8);
static_assert(sizeof(std::atomic<uint32_t>) == 4);
static_assert(std::is_standard_layout_v<ShmRingControl>);
static_assert(std::is_trivially_destructible_v<ShmRingControl>);
static_assert(std::is_standard_layout_v<ShmRegionHeader>);
static_assert(std::is_trivially_copyable_v<ShmRegionHeader>);
static_assert(sizeof(ShmRegionHeader) == kShmCacheLine);
static_assert(sizeof(ShmProducerLine) == kShmCacheLine);
static_assert(sizeof(ShmConsumerLine) == kShmCacheLine);
static_assert(sizeof(ShmRingControl) == 2 * kShmCacheLine);

// Offsets and sizes of the region's parts.
struct ShmRingLayout {
  static constexpr size_t kHeaderOffset = 0;
  static constexpr size_t kControlOffset = sizeof(ShmRegionHeader);
  static constexpr size_t kDataOffset =
      kControlOffset + 2 * sizeof(ShmRingControl);

  // The bytes a region with rings of `ring_capacity` needs; 0 if the
  // capacity is not a power of two within [kShmMinRingCapacity,
  // kShmMaxRingCapacity].
  static size_t BytesFor(uint32_t ring_capacity);
};

// The check word of a header (over every field before `check`).
uint32_t ShmHeaderCheck(const ShmRegionHeader& header);

// One ring inside a validated region: where its control block and data are,
// and the geometry both sides agreed on (local copies, never re-read).
struct ShmRingView {
  ShmRingControl* control = nullptr;
  char* data = nullptr;
  uint32_t capacity = 0;
  ShmRingMode mode = ShmRingMode::kMessages;
};

// A validated region. Copyable; points into the caller's mapping, which
// must outlive it and every writer and reader made from it.
class ShmRegionView {
 public:
  ShmRegionView() = default;

  // The capacity and mode both sides agreed on.
  uint32_t ring_capacity() const { return capacity_; }
  ShmRingMode mode() const { return mode_; }
  // The ring the creator writes and the attacher reads.
  ShmRingView creator_to_attacher() const { return Ring(0); }
  // The ring the attacher writes and the creator reads.
  ShmRingView attacher_to_creator() const { return Ring(1); }

 private:
  friend absl::StatusOr<ShmRegionView> InitializeShmRegion(
      absl::Span<char> region, const ShmRegionOptions& options);
  friend absl::StatusOr<ShmRegionView> AttachShmRegion(
      absl::Span<char> region, const ShmRegionOptions& expected);
  ShmRingView Ring(int index) const;

  char* base_ = nullptr;
  uint32_t capacity_ = 0;
  ShmRingMode mode_ = ShmRingMode::kMessages;
};

// Creator side: writes the header and empty control blocks into `region`
// (the data areas are left as they are). InvalidArgument if the capacity is
// not a power of two in range, the mode is unknown, `region` is smaller than
// BytesFor(capacity) or not 64-byte aligned. Must run before the peer is
// given the region.
absl::StatusOr<ShmRegionView> InitializeShmRegion(
    absl::Span<char> region, const ShmRegionOptions& options);

// Attacher side: checks the header against what the creator said over the
// pipe (`expected`); only the local mapping's length is taken from the
// mapping itself. InvalidArgument for bad `expected` or a misaligned or
// short mapping; DataLoss if the header's magic, version, capacity, mode,
// size or check word is not what it must be.
absl::StatusOr<ShmRegionView> AttachShmRegion(absl::Span<char> region,
                                              const ShmRegionOptions& expected);

// Result of a write.
struct ShmWriteResult {
  // Bytes of the caller's data taken (and published).
  size_t bytes = 0;
  // Message mode: the message is complete in the ring (for an empty message
  // with bytes == 0). Byte mode: all of the data was taken.
  bool done = false;
  // The reader said it is (about to be) asleep: wake sleepers on the
  // ring's data doorbell.
  bool wake_peer = false;
};

// Result of a read.
struct ShmReadResult {
  // Bytes stored at the front of the caller's buffer.
  size_t bytes = 0;
  // Message mode: those bytes end a message (also for an empty message,
  // bytes == 0). Nothing was there to read if bytes == 0, !message_end and
  // !on_pipe (with a non-empty buffer).
  bool message_end = false;
  // Message mode: a pipe marker was consumed (bytes == 0, !message_end):
  // the next message is the one on the pipe, of `pipe_message_size` bytes
  // as the peer announced it (not trusted).
  bool on_pipe = false;
  uint32_t pipe_message_size = 0;
  // The writer said it is (about to be) asleep: wake sleepers on the ring's
  // space doorbell.
  bool wake_peer = false;
};

// Result of a peek, as Channel::Peek reports it.
struct ShmPeekResult {
  // Bytes copied into the caller's buffer.
  size_t size = 0;
  // Unread bytes queued: byte mode, the published bytes; message mode, the
  // announced remaining size of the current message plus the whole size of
  // every later message whose first record is published (saturating).
  size_t available = 0;
  // Message mode: the announced unread bytes of the current message, or of
  // the next one if none has been begun (0 if nothing is published).
  size_t message_remaining = 0;
  // Message mode: that next message is on the pipe (a pipe marker; its
  // bytes are not in the ring, so none were copied).
  bool on_pipe = false;
  // Message mode: a record is published (a message, maybe empty, can be
  // read from). Byte mode: available > 0.
  bool readable = false;
};

// The producing end of one ring.
class ShmRingWriter {
 public:
  // Writes into `ring` (from a validated ShmRegionView), from index 0.
  explicit ShmRingWriter(const ShmRingView& ring) : ring_(ring) {}

  // Message mode. Writes the next part of a message: `rest` is the whole
  // message on the first call, then what the earlier calls left of it (the
  // same bytes; `bytes` says how many were taken), until `done`. Writes the
  // rest as the message's last record if it fits in the free space, else a
  // fragment filling the free space if at least a quarter of the ring is
  // free, else nothing (bytes == 0, done == false: the ring is full; wait
  // for space). InvalidArgument for a message over kShmMaxMessage or a
  // `rest` whose size is not what is left of the message begun;
  // FailedPrecondition on a byte-mode ring; DataLoss if the peer corrupted
  // the ring's indices.
  absl::StatusOr<ShmWriteResult> TryWriteMessage(absl::string_view rest);

  // Message mode, between messages. Writes a pipe marker for a message of
  // `message_size` bytes that was just sent on the pipe (done), or nothing
  // if the ring has no room for one record header (done == false).
  // FailedPrecondition on a byte-mode ring or inside a message;
  // InvalidArgument for a size over kShmMaxMessage; DataLoss if the peer
  // corrupted the ring's indices.
  absl::StatusOr<ShmWriteResult> TryWritePipeMarker(uint64_t message_size);

  // Byte mode. Writes as much of `data` as fits; bytes == 0 with non-empty
  // data means the ring is full. FailedPrecondition on a message-mode ring;
  // DataLoss if the peer corrupted the ring's indices.
  absl::StatusOr<ShmWriteResult> TryWriteBytes(absl::string_view data);

  // Free bytes in the ring now. DataLoss if the indices are corrupt.
  absl::StatusOr<size_t> FreeBytes();

  // True between the first and the last record of a fragmented message.
  bool message_in_progress() const { return in_message_; }

  // Waiting for space (see the protocol above): sets writer_waiting and
  // returns the space doorbell's value to sleep on, after which the caller
  // retries the write and sleeps only if it still takes nothing.
  uint32_t PrepareToWait();
  // Clears writer_waiting.
  void FinishWait();
  // The word to sleep on while waiting for space.
  const std::atomic<uint32_t>& doorbell() const {
    return ring_.control->consumer.space_seq;
  }
  // The word whose sleepers a publish wakes (the reader's).
  const std::atomic<uint32_t>& peer_doorbell() const {
    return ring_.control->producer.data_seq;
  }

  // Says in the ring that this side has closed (seq_cst, after everything
  // it published), and bumps both doorbells so that a sleeper on either,
  // in either process, finds them changed.
  void MarkClosed();
  // Bumps both doorbells and says nothing: a sleeper finds them changed and
  // looks again (this side's own news, such as the peer found gone).
  void BumpDoorbells();
  // The switch from the pipe (src/internal/shm_channel.h): whether the
  // consumer said it reads the ring; says that this side's writes go to
  // the ring from now on, after `pipe_units` units (bytes, or messages)
  // sent on the pipe.
  bool ReaderAttached() const {
    return ring_.control->consumer.attached.load(std::memory_order_seq_cst) !=
           0;
  }
  void AnnounceSwitch(uint64_t pipe_units);
  // Byte mode: says that `rest` bytes of the current write wait for room
  // (0: the write ended).
  void SetBlocked(uint64_t rest) {
    ring_.control->producer.blocked_end.store(rest == 0 ? 0 : tail_ + rest,
                                              std::memory_order_seq_cst);
  }
  // Whether the consumer said it has closed.
  bool PeerClosed() const {
    return ring_.control->consumer.closed.load(std::memory_order_seq_cst) != 0;
  }

 private:
  absl::StatusOr<uint64_t> LoadFree(absl::string_view op);
  ShmWriteResult Publish(uint64_t advance);
  absl::Status Fail(absl::string_view op, absl::string_view what);

  ShmRingView ring_;
  uint64_t tail_ = 0;       // Our index; the region's copy is checked.
  uint64_t last_head_ = 0;  // The consumer's head as last seen.
  bool in_message_ = false;
  uint64_t message_left_ = 0;  // Bytes of the message begun not yet written.
  absl::Status broken_;
};

// The consuming end of one ring.
class ShmRingReader {
 public:
  // Reads from `ring` (from a validated ShmRegionView), from index 0.
  explicit ShmRingReader(const ShmRingView& ring) : ring_(ring) {}

  // Message mode. Copies the next bytes of the current message into `out`,
  // across its fragments as they are published, and consumes them; stops at
  // the end of the message (message_end) or when `out` is full or nothing
  // more is published. If the next message is a pipe marker, consumes it
  // alone and says so (on_pipe), whatever the size of `out`.
  // FailedPrecondition on a byte-mode ring; DataLoss for a corrupt ring (an
  // index out of bounds, a record longer than the ring or than what was
  // published, bad flags or check word, a fragment out of sequence, a pipe
  // marker with a payload or inside a message).
  absl::StatusOr<ShmReadResult> TryReadMessage(absl::Span<char> out);

  // Byte mode. Copies and consumes up to out.size() published bytes.
  // FailedPrecondition on a message-mode ring; DataLoss for corrupt indices.
  absl::StatusOr<ShmReadResult> TryReadBytes(absl::Span<char> out);

  // Copies into `out` what the next read would return, without consuming;
  // reports what is queued. Errors as the reads.
  absl::StatusOr<ShmPeekResult> Peek(absl::Span<char> out = {});

  // True from the read that took up a message's first record until the one
  // that returned its end.
  bool message_in_progress() const { return pos_.in_message; }
  // True once CurrentMessageRemaining found a pipe marker next (the next
  // TryReadMessage consumes it).
  bool pipe_marker_next() const {
    return pos_.have_record && (pos_.record.flags & kShmRecordOnPipe) != 0;
  }

  // Waiting for data (see the protocol above): sets reader_waiting and
  // returns the data doorbell's value to sleep on, after which the caller
  // re-checks Peek() and sleeps only if nothing is readable.
  uint32_t PrepareToWait();
  // Clears reader_waiting.
  void FinishWait();
  // The word to sleep on while waiting for data.
  const std::atomic<uint32_t>& doorbell() const {
    return ring_.control->producer.data_seq;
  }
  // The word whose sleepers a release wakes (the writer's).
  const std::atomic<uint32_t>& peer_doorbell() const {
    return ring_.control->consumer.space_seq;
  }

  // Whether a read would find something now: part of a record not yet
  // consumed, or a published record (byte mode: a published byte). Loads
  // the tail only. DataLoss for corrupt indices.
  absl::StatusOr<bool> HasUnread();
  // Message mode: the unread bytes of the message being read, else those
  // the next published record announces for its message (for a pipe
  // marker, the pipe message's size); -1 if no message is begun and none
  // is published. Reads one record header at most. Errors as
  // TryReadMessage.
  absl::StatusOr<int64_t> CurrentMessageRemaining();

  // The switch from the pipe: says that this side reads the ring; whether
  // the producer switched its writes to the ring, and after how many pipe
  // units (`*pipe_units`, as the peer wrote it: not trusted).
  void Attach();
  bool PeerSwitched(uint64_t* pipe_units) const;
  // Byte mode: the bytes the producer says wait for room beyond what it
  // published (ShmRingWriter::SetBlocked). Not trusted, only counted: at
  // most 0xffffffff, a pipe's count (a DWORD). Read while the producer
  // publishes, it may count too few, never too many.
  uint64_t PeerBlockedBytes() const {
    const uint64_t end =
        ring_.control->producer.blocked_end.load(std::memory_order_seq_cst);
    const uint64_t tail =
        ring_.control->producer.tail.load(std::memory_order_seq_cst);
    return end > tail ? std::min<uint64_t>(end - tail, 0xffffffffu) : 0;
  }

  // As ShmRingWriter::MarkClosed, for the consumer's side.
  void MarkClosed();
  // As ShmRingWriter::BumpDoorbells.
  void BumpDoorbells();
  // Whether the producer said it has closed. Everything it published
  // before is visible once this is true.
  bool PeerClosed() const {
    return ring_.control->producer.closed.load(std::memory_order_seq_cst) != 0;
  }

 private:
  // A record header, checked against the published bytes.
  struct Record {
    uint32_t length = 0;
    uint32_t flags = 0;
    uint32_t message_remaining = 0;
  };
  // Where the reader stands in the record stream (local only).
  struct Position {
    uint64_t head = 0;         // Start of the current record; the region's
                               // copy must always equal it.
    bool have_record = false;  // `record` is the header at `head`.
    Record record;
    uint32_t offset = 0;  // Payload bytes of `record` consumed.
    bool in_message = false;
    uint32_t message_left = 0;  // Announced bytes left after `record`.
  };

  absl::StatusOr<uint64_t> LoadTail(absl::string_view op);
  // Makes `pos->record` the header at pos->head if one is published (false
  // if none is); DataLoss if it is corrupt.
  // `*began` says whether the record begins a message.
  absl::StatusOr<bool> LoadRecord(absl::string_view op, uint64_t tail,
                                  Position* pos, bool* began);
  void CopyOut(uint64_t index, char* out, size_t n) const;
  void ReleaseHead(ShmReadResult* result);
  absl::Status Fail(absl::string_view op, absl::string_view what);

  ShmRingView ring_;
  Position pos_;
  uint64_t last_tail_ = 0;  // The producer's tail as last seen.
  absl::Status broken_;
};

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_SHM_RING_H_
