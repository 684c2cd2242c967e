// SPDX-License-Identifier: Apache-2.0
// Fuzzes the shared-memory ring (src/internal/shm_ring.h) with a hostile
// peer: the input is a sequence of operations on one ring of a region in
// ordinary memory, the producer writing, the consumer reading and peeking,
// and the "peer" writing arbitrary bytes anywhere in the region (header,
// control blocks, data) or setting an index to a value near its own.
// Checked:
//   - no crash, no access outside the region (AddressSanitizer), no hang;
//   - every call returns OK or, once the peer has written, DataLoss (and
//     DataLoss again on every later call of that end);
//   - no read or peek stores more than its buffer;
//   - while the peer has written nothing, a reference model predicts every
//     message (or byte) read, in order, and every Peek (bytes copied,
//     available, message_remaining), and AttachShmRegion accepts the region.
//
// Input: one config byte (bits 0-1 capacity 64 << n, bit 2 byte mode, bit
// 3 which of the two rings), then operations, each an opcode byte and its
// arguments (missing bytes read as 0):
//   0 write  [size]       a message of size*5 bytes (byte mode: size bytes),
//                         or the next part of the message begun
//   1 read   [part]       a read with a buffer of part % 97 bytes
//   2 peek   [part]
//   3 poke   [off16 len data...]  the peer writes len % 16 + 1 bytes
//   4 index  [which delta]        the peer moves tail/head by int8 delta*8
//   5 attach                      AttachShmRegion on the region as it is
//   6 wait                        PrepareToWait/FinishWait on both ends
//   7 marker [size]       a pipe marker for a message of size*5 bytes (or
//                         FailedPrecondition inside a message / in byte mode)
// The model treats a marker as a message whose bytes are elsewhere: Peek
// counts its size and copies nothing of it, and a read consumes it alone,
// reporting on_pipe and the size.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "fuzz/fuzz_util.h"
#include "src/internal/shm_ring.h"

namespace {

using canal::internal::AttachShmRegion;
using canal::internal::InitializeShmRegion;
using canal::internal::ShmPeekResult;
using canal::internal::ShmReadResult;
using canal::internal::ShmRegionOptions;
using canal::internal::ShmRegionView;
using canal::internal::ShmRingLayout;
using canal::internal::ShmRingMode;
using canal::internal::ShmRingReader;
using canal::internal::ShmRingView;
using canal::internal::ShmRingWriter;
using canal::internal::ShmWriteResult;

class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

std::string Content(size_t size, uint64_t seed) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    out[i] = static_cast<char>((seed * 131 + i * 7 + (i >> 8)) & 0xff);
  }
  return out;
}

struct Fuzz {
  ShmRegionOptions options;
  std::unique_ptr<char[]> storage;
  absl::Span<char> region;
  ShmRingView ring;
  std::unique_ptr<ShmRingWriter> writer;
  std::unique_ptr<ShmRingReader> reader;
  bool hostile = false;  // The peer has written into the region.
  bool writer_broken = false;
  bool reader_broken = false;

  // The model, while !hostile. Message mode: the messages whose first
  // record is published, oldest first, and what was read of the first.
  std::deque<std::string> messages;
  std::deque<bool> on_pipe;  // Per message: a pipe marker.
  std::string current;
  std::string pending;  // The message being written.
  size_t pending_taken = 0;
  bool writing = false;
  uint64_t counter = 0;
  // Byte mode: everything written, and how much was read.
  std::string stream;
  size_t stream_read = 0;

  // The oldest message begun is wholly in the ring.
  bool FrontComplete() const {
    return !(writing && pending_taken > 0 && messages.size() == 1);
  }

  // A failed call must be DataLoss after a hostile write, and nothing else.
  void CheckStatus(absl::string_view what, const absl::Status& status,
                   bool* broken) {
    if (status.ok()) {
      if (*broken) canal_fuzz::Fail(absl::StrCat(what, " after DataLoss"));
      return;
    }
    if (!hostile) canal_fuzz::Fail(what, status);
    if (status.code() != absl::StatusCode::kDataLoss) {
      canal_fuzz::Fail(what, status);
    }
    *broken = true;
  }

  void Write(uint8_t size) {
    if (options.mode == ShmRingMode::kBytes) {
      std::string piece = Content(size, counter++);
      absl::StatusOr<ShmWriteResult> w = writer->TryWriteBytes(piece);
      CheckStatus("TryWriteBytes", w.status(), &writer_broken);
      if (!w.ok()) return;
      if (w->bytes > piece.size()) canal_fuzz::Fail("TryWriteBytes overran");
      stream.append(piece, 0, w->bytes);
      return;
    }
    if (!writing) {
      pending = Content(size * size_t{5}, counter++);
      pending_taken = 0;
      writing = true;
    }
    absl::StatusOr<ShmWriteResult> w = writer->TryWriteMessage(
        absl::string_view(pending).substr(pending_taken));
    CheckStatus("TryWriteMessage", w.status(), &writer_broken);
    if (!w.ok()) return;
    if (w->bytes > pending.size() - pending_taken) {
      canal_fuzz::Fail("TryWriteMessage took more than it was given");
    }
    if (pending_taken == 0 && (w->bytes > 0 || w->done)) {
      messages.push_back(pending);
      on_pipe.push_back(false);
    }
    pending_taken += w->bytes;
    if (w->done) {
      if (pending_taken != pending.size()) {
        canal_fuzz::Fail("TryWriteMessage done before the end");
      }
      writing = false;
    }
  }

  void Marker(uint8_t size) {
    absl::StatusOr<ShmWriteResult> w =
        writer->TryWritePipeMarker(size * uint64_t{5});
    // The writer is inside a message once a part of it was taken.
    if (options.mode == ShmRingMode::kBytes || (writing && pending_taken > 0)) {
      // Refused before the ring is looked at.
      if (w.status().code() != absl::StatusCode::kFailedPrecondition) {
        canal_fuzz::Fail("TryWritePipeMarker in byte mode / a message",
                         w.status());
      }
      return;
    }
    CheckStatus("TryWritePipeMarker", w.status(), &writer_broken);
    if (!w.ok()) return;
    if (w->bytes != 0) canal_fuzz::Fail("TryWritePipeMarker took bytes");
    if (!w->done) return;  // The ring is full.
    messages.push_back(std::string(size * size_t{5}, '\0'));
    on_pipe.push_back(true);
  }

  void Read(uint8_t part) {
    std::vector<char> buf(part % 97);
    if (options.mode == ShmRingMode::kBytes) {
      absl::StatusOr<ShmReadResult> r =
          reader->TryReadBytes(absl::MakeSpan(buf));
      CheckStatus("TryReadBytes", r.status(), &reader_broken);
      if (!r.ok()) return;
      if (r->bytes > buf.size()) canal_fuzz::Fail("TryReadBytes overran");
      if (hostile) return;
      if (absl::string_view(buf.data(), r->bytes) !=
          absl::string_view(stream).substr(stream_read, r->bytes)) {
        canal_fuzz::Fail("TryReadBytes returned other bytes");
      }
      stream_read += r->bytes;
      if (r->bytes < buf.size() && stream_read != stream.size()) {
        canal_fuzz::Fail("TryReadBytes left published bytes");
      }
      return;
    }
    absl::StatusOr<ShmReadResult> r =
        reader->TryReadMessage(absl::MakeSpan(buf));
    CheckStatus("TryReadMessage", r.status(), &reader_broken);
    if (!r.ok()) return;
    if (r->bytes > buf.size()) canal_fuzz::Fail("TryReadMessage overran");
    if (hostile) return;
    if (messages.empty()) {
      if (r->bytes > 0 || r->message_end || r->on_pipe) {
        canal_fuzz::Fail("TryReadMessage returned a message never written");
      }
      return;
    }
    const std::string& front = messages.front();
    if (r->on_pipe != on_pipe.front()) {
      canal_fuzz::Fail("TryReadMessage on_pipe disagrees with the model");
    }
    if (r->on_pipe) {
      if (r->bytes != 0 || r->message_end || !current.empty() ||
          r->pipe_message_size != front.size()) {
        canal_fuzz::Fail("TryReadMessage reported a pipe marker wrongly");
      }
      messages.pop_front();
      on_pipe.pop_front();
      return;
    }
    current.append(buf.data(), r->bytes);
    if (absl::string_view(front).substr(0, current.size()) != current) {
      canal_fuzz::Fail("TryReadMessage returned other bytes");
    }
    if (r->message_end != (current.size() == front.size())) {
      canal_fuzz::Fail("TryReadMessage message end misplaced");
    }
    if (!r->message_end && FrontComplete() && r->bytes < buf.size()) {
      canal_fuzz::Fail("TryReadMessage left published bytes");
    }
    if (r->message_end) {
      messages.pop_front();
      on_pipe.pop_front();
      current.clear();
    }
  }

  void Peek(uint8_t part) {
    std::vector<char> buf(part % 97);
    absl::StatusOr<ShmPeekResult> p = reader->Peek(absl::MakeSpan(buf));
    CheckStatus("Peek", p.status(), &reader_broken);
    if (!p.ok()) return;
    if (p->size > buf.size()) canal_fuzz::Fail("Peek overran");
    if (hostile) return;
    const absl::string_view got(buf.data(), p->size);
    if (options.mode == ShmRingMode::kBytes) {
      const size_t left = stream.size() - stream_read;
      if (p->available != left || p->readable != (left > 0) ||
          got != absl::string_view(stream).substr(stream_read, p->size) ||
          p->size != std::min(left, buf.size())) {
        canal_fuzz::Fail("Peek (bytes) disagrees with the model");
      }
      return;
    }
    size_t available = 0;
    for (const std::string& m : messages) available += m.size();
    available -= current.size();
    const size_t remaining =
        messages.empty() ? 0 : messages.front().size() - current.size();
    const bool front_on_pipe = !messages.empty() && on_pipe.front();
    const absl::string_view expect =
        messages.empty() || front_on_pipe
            ? absl::string_view()
            : absl::string_view(messages.front()).substr(current.size());
    if (p->on_pipe != front_on_pipe) {
      canal_fuzz::Fail("Peek on_pipe disagrees with the model");
    }
    if (p->available != available || p->message_remaining != remaining ||
        got != expect.substr(0, p->size) || (messages.empty() && p->readable) ||
        (!messages.empty() && FrontComplete() && !p->readable)) {
      canal_fuzz::Fail(absl::StrCat("Peek disagrees with the model: available ",
                                    p->available, " want ", available,
                                    ", remaining ", p->message_remaining,
                                    " want ", remaining));
    }
  }

  void Poke(Input& in) {
    const size_t off = ((size_t{in.Byte()} << 8) | in.Byte()) % region.size();
    const size_t len =
        std::min<size_t>(in.Byte() % 16 + 1, region.size() - off);
    for (size_t i = 0; i < len; ++i)
      region[off + i] = static_cast<char>(in.Byte());
    hostile = true;
  }

  void MoveIndex(Input& in) {
    const uint8_t which = in.Byte();
    const int64_t delta = static_cast<int8_t>(in.Byte()) * int64_t{8};
    std::atomic<uint64_t>& index = (which & 1) != 0
                                       ? ring.control->producer.tail
                                       : ring.control->consumer.head;
    index.store(index.load() + static_cast<uint64_t>(delta));
    hostile = true;
  }

  void Attach() {
    absl::StatusOr<ShmRegionView> view = AttachShmRegion(region, options);
    if (view.ok()) return;
    if (!hostile || view.status().code() != absl::StatusCode::kDataLoss) {
      canal_fuzz::Fail("AttachShmRegion", view.status());
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t config = in.Byte();
  Fuzz f;
  f.options.ring_capacity = uint32_t{64} << (config & 3);
  f.options.mode =
      (config & 4) != 0 ? ShmRingMode::kBytes : ShmRingMode::kMessages;
  const size_t bytes = ShmRingLayout::BytesFor(f.options.ring_capacity);
  f.storage.reset(new char[bytes + 64]());
  char* base = f.storage.get();
  base += (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64;
  f.region = absl::Span<char>(base, bytes);
  absl::StatusOr<ShmRegionView> creator =
      InitializeShmRegion(f.region, f.options);
  if (!creator.ok()) canal_fuzz::Fail("InitializeShmRegion", creator.status());
  absl::StatusOr<ShmRegionView> attacher = AttachShmRegion(f.region, f.options);
  if (!attacher.ok()) canal_fuzz::Fail("AttachShmRegion", attacher.status());
  const bool second = (config & 8) != 0;
  f.ring =
      second ? attacher->attacher_to_creator() : creator->creator_to_attacher();
  f.writer = std::make_unique<ShmRingWriter>(f.ring);
  f.reader =
      std::make_unique<ShmRingReader>(second ? creator->attacher_to_creator()
                                             : attacher->creator_to_attacher());

  while (!in.empty()) {
    switch (in.Byte() % 8) {
      case 0:
        f.Write(in.Byte());
        break;
      case 1:
        f.Read(in.Byte());
        break;
      case 2:
        f.Peek(in.Byte());
        break;
      case 3:
        f.Poke(in);
        break;
      case 4:
        f.MoveIndex(in);
        break;
      case 5:
        f.Attach();
        break;
      case 6:
        f.reader->PrepareToWait();
        f.reader->FinishWait();
        f.writer->PrepareToWait();
        f.writer->FinishWait();
        break;
      case 7:
        f.Marker(in.Byte());
        break;
    }
  }
  return 0;
}
