// SPDX-License-Identifier: Apache-2.0
#include "src/internal/shm_channel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "canal/handle.h"
#include "src/internal/backend.h"
#include "src/internal/deadline.h"
#include "src/internal/errors.h"
#include "src/internal/shm_ring.h"
#include "src/internal/status_macros.h"

namespace canal {
namespace internal {
namespace {

constexpr uint32_t kOfferMagic = 0x534c4e43;    // "CNLS"
constexpr uint32_t kTakenMagic = 0x414c4e43;    // "CNLA"
constexpr uint32_t kRefusedMagic = 0x524c4e43;  // "CNLR"
constexpr uint32_t kOfferVersion = 1;
constexpr size_t kOfferSize = 32;
constexpr size_t kAnswerSize = 8;
// The memory object, and on Windows four events.
constexpr size_t kMaxOfferHandles = 5;
constexpr int kDoorbells = 4;
// The doorbells, in the order of the offer.
constexpr int kCreatorData = 0;    // Creator-to-attacher ring: data.
constexpr int kCreatorSpace = 1;   // Creator-to-attacher ring: space.
constexpr int kAttacherData = 2;   // Attacher-to-creator ring: data.
constexpr int kAttacherSpace = 3;  // Attacher-to-creator ring: space.
// The longest sleep between two looks at the pipe: a peer that died is
// noticed within about this long.
constexpr absl::Duration kWaitSlice = absl::Milliseconds(100);

void PutLe(char* at, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    at[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  }
}

uint64_t GetLe(const char* at, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    value |= uint64_t{static_cast<unsigned char>(at[i])} << (8 * i);
  }
  return value;
}

using Doorbells = std::unique_ptr<DoorbellImpl>[kDoorbells];

// A turn (reading, or writing) that one call holds at a time; waiting for
// it ends at the caller's deadline or when the channel is closed.
class Turn {
 public:
  absl::Status Take(const std::atomic<bool>& closed, const Deadline& deadline,
                    absl::string_view op, absl::string_view name) {
    std::unique_lock<std::mutex> lock(mu_);
    while (busy_) {
      if (closed.load()) return Cancelled(op, name);
      if (deadline.expired()) {
        return MakeError(absl::StatusCode::kDeadlineExceeded, op, name,
                         "timed out waiting for another call on the channel");
      }
      cv_.wait_for(lock, absl::ToChronoMilliseconds(std::min(
                             kWaitSlice, deadline.remaining())));
    }
    if (closed.load()) return Cancelled(op, name);
    busy_ = true;
    return absl::OkStatus();
  }
  void Give() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_ = false;
    }
    cv_.notify_one();
  }
  void WakeAll() {
    { std::lock_guard<std::mutex> lock(mu_); }
    cv_.notify_all();
  }
  static absl::Status Cancelled(absl::string_view op, absl::string_view name) {
    return MakeError(absl::StatusCode::kCancelled, op, name,
                     "the channel was closed");
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool busy_ = false;
};

// Holds a Turn for one call.
class TurnHolder {
 public:
  TurnHolder(Turn* turn, const std::atomic<bool>& closed,
             const Deadline& deadline, absl::string_view op,
             absl::string_view name)
      : turn_(turn), status_(turn->Take(closed, deadline, op, name)) {}
  ~TurnHolder() {
    if (status_.ok()) turn_->Give();
  }
  TurnHolder(const TurnHolder&) = delete;
  TurnHolder& operator=(const TurnHolder&) = delete;
  const absl::Status& status() const { return status_; }

 private:
  Turn* turn_;
  absl::Status status_;
};

// A channel whose data goes through the two rings of one shared region;
// `pipe_` is the connection that set it up.
//
// Threads: one reader and one writer at a time (the read and write turns;
// Transact takes both). The reader's ring state and the undelivered bytes
// (`pending_`) change under state_mu_, which Peek takes too; nothing
// waits while holding it. Close may come from any thread: it marks the
// rings closed and rings every doorbell (waking this side's sleepers and
// the peer's), then closes the pipe. The memory stays mapped until the
// channel is destroyed.
class ShmChannel final : public ChannelImpl {
 public:
  ShmChannel(std::unique_ptr<ChannelImpl> pipe,
             std::unique_ptr<SharedMemoryImpl> memory,
             const ShmRegionView& region, bool creator, Doorbells* bells,
             absl::Duration spin)
      : pipe_(std::move(pipe)),
        memory_(std::move(memory)),
        mode_(pipe_->mode()),
        capacity_(region.ring_capacity()),
        spin_(spin),
        writer_(creator ? region.creator_to_attacher()
                        : region.attacher_to_creator()),
        reader_(creator ? region.attacher_to_creator()
                        : region.creator_to_attacher()) {
    for (int i = 0; i < kDoorbells; ++i) bells_[i] = std::move((*bells)[i]);
    out_data_ = bells_[creator ? kCreatorData : kAttacherData].get();
    out_space_ = bells_[creator ? kCreatorSpace : kAttacherSpace].get();
    in_data_ = bells_[creator ? kAttacherData : kCreatorData].get();
    in_space_ = bells_[creator ? kAttacherSpace : kCreatorSpace].get();
  }
  ~ShmChannel() override { Close(); }

  PipeMode mode() const override { return mode_; }
  bool can_read() const override { return pipe_->can_read(); }
  bool can_write() const override { return pipe_->can_write(); }
  absl::string_view name() const override { return pipe_->name(); }
  bool is_open() const override { return !closed_.load(); }
  size_t max_message_size() const override {
    return pipe_->max_message_size();
  }
  size_t max_handles_per_message() const override {
    return pipe_->max_handles_per_message();
  }
  Transport transport() const override { return Transport::kSharedMemory; }
  NativeHandle native_handle() const override {
    return pipe_->native_handle();
  }
  absl::StatusOr<PeerInfo> Peer() override { return pipe_->Peer(); }
  absl::Status RunAsClient(absl::FunctionRef<void()> fn) override {
    return pipe_->RunAsClient(fn);
  }

  absl::StatusOr<ReadResult> Read(absl::Span<char> buffer,
                                  absl::Duration timeout) override {
    const Deadline deadline(timeout);
    TurnHolder turn(&read_turn_, closed_, deadline, "Read", name());
    if (!turn.status().ok()) return turn.status();
    if (mode_ == PipeMode::kByte) return ReadBytes(buffer, deadline);
    return ReadMessagePart(buffer, deadline);
  }

  absl::Status Write(absl::string_view op, absl::string_view data,
                     absl::Duration timeout) override {
    const Deadline deadline(timeout);
    TurnHolder turn(&write_turn_, closed_, deadline, op, name());
    if (!turn.status().ok()) return turn.status();
    return WriteWithin(op, data, deadline);
  }

  absl::StatusOr<std::string> ReadMessage(absl::Duration timeout) override {
    const Deadline deadline(timeout);
    TurnHolder turn(&read_turn_, closed_, deadline, "ReadMessage", name());
    if (!turn.status().ok()) return turn.status();
    return ReadWholeMessage("ReadMessage", deadline);
  }

  absl::Status WriteWithHandles(absl::string_view op,
                                absl::string_view /*data*/,
                                absl::Span<const NativeHandle> /*handles*/,
                                absl::Duration /*timeout*/) override {
    return MakeError(absl::StatusCode::kUnimplemented, op, name(),
                     "handles cannot be sent over the shared-memory "
                     "transport (connect with allow_shared_memory = false, "
                     "or listen with Transport::kPipe)");
  }

  absl::StatusOr<MessageWithHandles> ReadMessageWithHandles(
      absl::Duration timeout) override {
    // The peer cannot send handles over this transport: every message
    // comes without.
    const Deadline deadline(timeout);
    TurnHolder turn(&read_turn_, closed_, deadline, "ReadMessageWithHandles",
                    name());
    if (!turn.status().ok()) return turn.status();
    CANAL_ASSIGN_OR_RETURN(
        std::string data,
        ReadWholeMessage("ReadMessageWithHandles", deadline));
    MessageWithHandles message;
    message.data = std::move(data);
    return message;
  }

  absl::StatusOr<std::string> Transact(absl::string_view op,
                                       absl::string_view request,
                                       absl::Duration timeout) override {
    const Deadline deadline(timeout);
    TurnHolder read(&read_turn_, closed_, deadline, op, name());
    if (!read.status().ok()) return read.status();
    TurnHolder write(&write_turn_, closed_, deadline, op, name());
    if (!write.status().ok()) return write.status();
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      if (!read_fail_.ok()) return read_fail_;
      absl::StatusOr<bool> unread = reader_.HasUnread();
      if (!unread.ok()) return ReadFailedLocked(unread.status());
      if (*unread || !pending_.empty() || pending_done_ ||
          reader_.message_in_progress()) {
        return MakeError(absl::StatusCode::kFailedPrecondition, op, name(),
                         "unread data is queued on the channel (read it "
                         "before a transaction)");
      }
    }
    CANAL_RETURN_IF_ERROR(WriteWithin(op, request, deadline));
    absl::StatusOr<std::string> reply = ReadWholeMessage(op, deadline);
    if (absl::IsOutOfRange(reply.status())) {
      return MakeError(absl::StatusCode::kUnavailable, op, name(),
                       "the peer closed the channel before replying");
    }
    return reply;
  }

  absl::StatusOr<PeekResult> Peek(absl::Span<char> buffer) override {
    constexpr absl::string_view kOp = "Peek";
    if (closed_.load()) return Turn::Cancelled(kOp, name());
    std::lock_guard<std::mutex> lock(state_mu_);
    if (!read_fail_.ok()) return read_fail_;
    PeekResult result;
    const size_t held = std::min(buffer.size(), pending_.size());
    if (held > 0) std::memcpy(buffer.data(), pending_.data(), held);
    absl::Span<char> rest = buffer.subspan(held);
    // After a whole message held back, only later messages are in the
    // ring: they are counted, not copied.
    absl::StatusOr<ShmPeekResult> ring =
        reader_.Peek(pending_done_ ? absl::Span<char>() : rest);
    if (!ring.ok()) return ReadFailedLocked(ring.status());
    result.size = held + ring->size;
    result.available = pending_.size() + ring->available;
    if (mode_ == PipeMode::kMessage) {
      result.message_remaining =
          pending_.size() + (pending_done_ ? 0 : ring->message_remaining);
    }
    const bool queued = !pending_.empty() || pending_done_ || ring->readable;
    if (!queued) {
      absl::Status gone = PeerGone(kOp);
      if (absl::IsCancelled(gone)) return gone;
      if (!gone.ok()) {
        // Whatever the peer published before it closed is visible now.
        absl::StatusOr<bool> unread = reader_.HasUnread();
        if (!unread.ok()) return ReadFailedLocked(unread.status());
        if (!*unread) return Finished(kOp);
      }
    }
    return result;
  }

  void Close() override {
    if (closed_.exchange(true)) return;
    writer_.MarkClosed();
    reader_.MarkClosed();
    out_data_->Wake(writer_.peer_doorbell());
    out_space_->Wake(writer_.doorbell());
    in_data_->Wake(reader_.doorbell());
    in_space_->Wake(reader_.peer_doorbell());
    read_turn_.WakeAll();
    write_turn_.WakeAll();
    pipe_->Close();
  }

 private:
  absl::Status Finished(absl::string_view op) const {
    return MakeError(absl::StatusCode::kOutOfRange, op, name(),
                     "the peer closed the channel and everything was read");
  }

  // Records a corrupt ring (sticky) and returns the error.
  absl::Status ReadFailedLocked(const absl::Status& status) {
    read_fail_ = status;
    return status;
  }

  // OK while the peer is there; Unavailable once it closed (it said so in
  // the ring, or its end of the pipe is gone); Cancelled after Close.
  absl::Status PeerGone(absl::string_view op) {
    if (closed_.load()) return Turn::Cancelled(op, name());
    if (reader_.PeerClosed() || writer_.PeerClosed()) {
      return MakeError(absl::StatusCode::kUnavailable, op, name(),
                       "the peer closed the channel");
    }
    return pipe_->CheckPeerConnected(op);
  }

  // Waits until `ready` holds: spins for up to spin_, then sleeps on
  // `bell` (the word `word`) in slices, looking at the pipe between them.
  // `reading` says which ring's waiting flag to raise. Returns OK when
  // ready, or PeerGone's error, DeadlineExceeded or Cancelled.
  absl::Status Wait(absl::string_view op, const Deadline& deadline,
                    bool reading, absl::FunctionRef<absl::StatusOr<bool>()> ready,
                    absl::string_view waiting) {
    if (spin_ > absl::ZeroDuration()) {
      const absl::Time end = absl::Now() + std::min(spin_, deadline.remaining());
      for (uint32_t i = 0;; ++i) {
        CANAL_ASSIGN_OR_RETURN(bool now, ready());
        if (now) return absl::OkStatus();
        if (closed_.load(std::memory_order_relaxed)) {
          return Turn::Cancelled(op, name());
        }
        // Busy for a moment (the peer is probably on another core), then
        // give the core away between looks, in case the peer is waiting
        // for this very core.
        if (i >= 64) std::this_thread::yield();
        if ((i & 7) == 7 && absl::Now() >= end) break;
      }
    }
    DoorbellImpl* bell = reading ? in_data_ : out_space_;
    const std::atomic<uint32_t>& word =
        reading ? reader_.doorbell() : writer_.doorbell();
    while (true) {
      const uint32_t seen =
          reading ? reader_.PrepareToWait() : writer_.PrepareToWait();
      auto finish = [&] {
        if (reading) {
          reader_.FinishWait();
        } else {
          writer_.FinishWait();
        }
      };
      absl::StatusOr<bool> now = ready();
      if (!now.ok() || *now) {
        finish();
        return now.status();
      }
      absl::Status gone = PeerGone(op);
      if (!gone.ok()) {
        finish();
        return gone;
      }
      if (deadline.expired()) {
        finish();
        return MakeError(absl::StatusCode::kDeadlineExceeded, op, name(),
                         absl::StrCat("timed out ", waiting));
      }
      bell->Wait(word, seen, std::min(kWaitSlice, deadline.remaining()));
      finish();
    }
  }

  absl::StatusOr<bool> Unread() {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (!read_fail_.ok()) return read_fail_;
    absl::StatusOr<bool> unread = reader_.HasUnread();
    if (!unread.ok()) return ReadFailedLocked(unread.status());
    return *unread;
  }

  // Waits for data to read. OK when there is some; OutOfRange, or DataLoss
  // inside a message, once the peer is gone and everything was read.
  absl::Status WaitToRead(absl::string_view op, const Deadline& deadline) {
    absl::Status waited =
        Wait(op, deadline, /*reading=*/true, [&] { return Unread(); },
             "waiting for data");
    if (!absl::IsUnavailable(waited)) return waited;
    CANAL_ASSIGN_OR_RETURN(bool unread, Unread());
    if (unread) return absl::OkStatus();
    std::lock_guard<std::mutex> lock(state_mu_);
    if (reader_.message_in_progress() || !pending_.empty()) {
      return ReadFailedLocked(MakeError(
          absl::StatusCode::kDataLoss, op, name(),
          "the peer closed the channel in the middle of a message"));
    }
    return Finished(op);
  }

  void AfterRead(const ShmReadResult& result) {
    if (result.wake_peer) in_space_->Wake(reader_.peer_doorbell());
  }

  absl::StatusOr<ReadResult> ReadBytes(absl::Span<char> buffer,
                                       const Deadline& deadline) {
    constexpr absl::string_view kOp = "Read";
    if (buffer.empty()) return ReadResult{0, false};
    while (true) {
      {
        std::lock_guard<std::mutex> lock(state_mu_);
        if (!read_fail_.ok()) return read_fail_;
        absl::StatusOr<ShmReadResult> got = reader_.TryReadBytes(buffer);
        if (!got.ok()) return ReadFailedLocked(got.status());
        AfterRead(*got);
        if (got->bytes > 0) return ReadResult{got->bytes, false};
      }
      CANAL_RETURN_IF_ERROR(WaitToRead(kOp, deadline));
    }
  }

  absl::StatusOr<ReadResult> ReadMessagePart(absl::Span<char> buffer,
                                             const Deadline& deadline) {
    constexpr absl::string_view kOp = "Read";
    size_t got = 0;
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      if (!read_fail_.ok()) return read_fail_;
      // Bytes of the message a read gave up on come first.
      got = std::min(buffer.size(), pending_.size());
      if (got > 0) {
        std::memcpy(buffer.data(), pending_.data(), got);
        pending_.erase(0, got);
      }
      if (pending_done_) {
        if (pending_.empty()) {
          pending_done_ = false;
          return ReadResult{got, false};
        }
        return ReadResult{got, true};
      }
      if (!pending_.empty()) return ReadResult{got, true};
    }
    while (true) {
      {
        std::lock_guard<std::mutex> lock(state_mu_);
        if (!read_fail_.ok()) return read_fail_;
        absl::StatusOr<ShmReadResult> part =
            reader_.TryReadMessage(buffer.subspan(got));
        if (!part.ok()) return ReadFailedLocked(part.status());
        AfterRead(*part);
        got += part->bytes;
        if (part->message_end) return ReadResult{got, false};
        if (got == buffer.size() && reader_.message_in_progress()) {
          return ReadResult{got, true};
        }
      }
      absl::Status waited = WaitToRead(kOp, deadline);
      if (!waited.ok()) {
        // Nothing a failed read took is lost: the next read starts with it.
        std::lock_guard<std::mutex> lock(state_mu_);
        pending_.assign(buffer.data(), got);
        return waited;
      }
    }
  }

  absl::StatusOr<std::string> ReadWholeMessage(absl::string_view op,
                                               const Deadline& deadline) {
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      if (!read_fail_.ok()) return read_fail_;
      if (pending_done_) {
        pending_done_ = false;
        return std::move(pending_);
      }
    }
    while (true) {
      {
        std::lock_guard<std::mutex> lock(state_mu_);
        if (!read_fail_.ok()) return read_fail_;
        absl::StatusOr<int64_t> left = reader_.CurrentMessageRemaining();
        if (!left.ok()) return ReadFailedLocked(left.status());
        if (*left >= 0) {
          const uint64_t total = pending_.size() + static_cast<uint64_t>(*left);
          if (total > max_message_size()) {
            return ReadFailedLocked(MakeError(
                absl::StatusCode::kResourceExhausted, op, name(),
                absl::StrCat("the peer sent a message of ", total,
                             " bytes, over the limit of ", max_message_size(),
                             " bytes")));
          }
          // Memory follows what arrived: at most a ring's worth more.
          const size_t before = pending_.size();
          const size_t step =
              static_cast<size_t>(std::min<uint64_t>(*left, capacity_));
          pending_.resize(before + step);
          absl::StatusOr<ShmReadResult> part = reader_.TryReadMessage(
              absl::MakeSpan(&pending_[0] + before, step));
          if (!part.ok()) return ReadFailedLocked(part.status());
          AfterRead(*part);
          pending_.resize(before + part->bytes);
          if (part->message_end) {
            std::string message = std::move(pending_);
            pending_.clear();
            return message;
          }
          if (part->bytes > 0) continue;
        }
      }
      CANAL_RETURN_IF_ERROR(WaitToRead(op, deadline));
    }
  }

  absl::Status WriteWithin(absl::string_view op, absl::string_view data,
                           const Deadline& deadline) {
    if (!write_fail_.ok()) return write_fail_;
    if (closed_.load()) return Turn::Cancelled(op, name());
    if (writer_.PeerClosed()) {
      return MakeError(absl::StatusCode::kUnavailable, op, name(),
                       "the peer closed the channel");
    }
    if (mode_ == PipeMode::kByte && data.empty()) return absl::OkStatus();
    absl::string_view rest = data;
    while (true) {
      absl::StatusOr<ShmWriteResult> put =
          mode_ == PipeMode::kMessage ? writer_.TryWriteMessage(rest)
                                      : writer_.TryWriteBytes(rest);
      if (!put.ok()) {
        if (absl::IsDataLoss(put.status())) write_fail_ = put.status();
        return put.status();
      }
      if (put->wake_peer) out_data_->Wake(writer_.peer_doorbell());
      rest.remove_prefix(put->bytes);
      if (put->done) return absl::OkStatus();
      // What TryWriteMessage needs before it writes again: the rest as one
      // record, or a quarter of the ring for a part of it.
      const uint64_t need =
          mode_ == PipeMode::kMessage
              ? std::min<uint64_t>(
                    kShmRecordHeaderSize +
                        ((rest.size() + kShmRecordAlign - 1) &
                         ~uint64_t{kShmRecordAlign - 1}),
                    std::max<uint64_t>(capacity_ / 4,
                                       2 * kShmRecordHeaderSize))
              : 1;
      absl::Status waited = Wait(
          op, deadline, /*reading=*/false,
          [&]() -> absl::StatusOr<bool> {
            CANAL_ASSIGN_OR_RETURN(size_t free, writer_.FreeBytes());
            return free >= need;
          },
          "waiting for the peer to read");
      if (waited.ok()) continue;
      if (writer_.message_in_progress() && !absl::IsCancelled(waited)) {
        // Part of the message is in the ring. Going on later would tear it
        // and stopping would leave the reader waiting for the rest; ending
        // this direction makes the reader see DataLoss instead, as a pipe's
        // shut-down write side does.
        writer_.MarkClosed();
        out_data_->Wake(writer_.peer_doorbell());
        write_fail_ = MakeError(
            waited.code(), op, name(),
            absl::StrCat(waited.message(), "; part of a message was sent, "
                                           "so this direction was closed"));
        return write_fail_;
      }
      return waited;
    }
  }

  std::unique_ptr<ChannelImpl> pipe_;
  std::unique_ptr<SharedMemoryImpl> memory_;
  const PipeMode mode_;
  const uint32_t capacity_;
  const absl::Duration spin_;
  std::unique_ptr<DoorbellImpl> bells_[kDoorbells];
  DoorbellImpl* out_data_ = nullptr;   // Rung after a write.
  DoorbellImpl* out_space_ = nullptr;  // Slept on for space.
  DoorbellImpl* in_data_ = nullptr;    // Slept on for data.
  DoorbellImpl* in_space_ = nullptr;   // Rung after a read.
  std::atomic<bool> closed_{false};
  Turn read_turn_;
  Turn write_turn_;

  ShmRingWriter writer_;  // The write turn's.
  absl::Status write_fail_;

  std::mutex state_mu_;
  ShmRingReader reader_;  // Under state_mu_.
  // Bytes of the current message taken from the ring and not delivered
  // yet; `pending_done_`: they end it.
  std::string pending_;
  bool pending_done_ = false;
  absl::Status read_fail_;
};

std::string Offer(uint32_t capacity, ShmRingMode mode, uint64_t region_size,
                  size_t handles) {
  std::string record(kOfferSize, '\0');
  PutLe(&record[0], kOfferMagic, 4);
  PutLe(&record[4], kOfferVersion, 4);
  PutLe(&record[8], capacity, 4);
  PutLe(&record[12], static_cast<uint32_t>(mode), 4);
  PutLe(&record[16], region_size, 8);
  PutLe(&record[24], handles, 4);
  return record;
}

std::string Answer(uint32_t magic, bool closed_handles) {
  std::string record(kAnswerSize, '\0');
  PutLe(&record[0], magic, 4);
  PutLe(&record[4], closed_handles ? 1 : 0, 4);
  return record;
}

ShmRingMode RingModeFor(PipeMode mode) {
  return mode == PipeMode::kMessage ? ShmRingMode::kMessages
                                    : ShmRingMode::kBytes;
}

absl::Status SetupError(absl::string_view op, absl::string_view name,
                        absl::string_view what) {
  return MakeError(absl::StatusCode::kDataLoss, op, name,
                   absl::StrCat("shared-memory set-up: ", what));
}

}  // namespace

bool OffersSharedMemory(const ListenerOptions& options) {
  return options.transport == Transport::kSharedMemory &&
         options.access == PipeAccess::kDuplex;
}

namespace {

// What a listener keeps of its offer until the client answers.
struct OfferState {
  std::unique_ptr<SharedMemoryImpl> memory;
  ShmRegionView region;
  Doorbells bells;
  absl::Duration spin;
};

// Listener side: reads the client's answer to `*offer` within `timeout`.
// OK with `*channel` the channel to use; DeadlineExceeded before any of
// the answer came, with `*offer` given back to try again.
absl::Status TakeAnswer(absl::string_view op,
                        std::unique_ptr<ChannelImpl>* channel,
                        std::unique_ptr<OfferState>&& offer_in,
                        absl::Duration timeout,
                        std::unique_ptr<OfferState>* give_back) {
  std::unique_ptr<OfferState> offer = std::move(offer_in);
  ChannelImpl* pipe = channel->get();
  absl::StatusOr<MessageWithHandles> answer =
      pipe->ReadSetup(kAnswerSize, 0, timeout);
  if (absl::IsDeadlineExceeded(answer.status())) {
    *give_back = std::move(offer);
    return answer.status();
  }
  if (!answer.ok()) {
    pipe->AbandonSetup();
    return answer.status();
  }
  const uint64_t magic = GetLe(answer->data.data(), 4);
  const uint64_t closed_handles = GetLe(answer->data.data() + 4, 4);
  if (closed_handles > 1 || (magic != kTakenMagic && magic != kRefusedMagic)) {
    pipe->AbandonSetup();
    return SetupError(op, pipe->name(), "the client's answer is malformed");
  }
  if (magic == kRefusedMagic) {
    if (closed_handles == 0) pipe->AbandonSetup();
    return absl::OkStatus();
  }
  offer->memory->CloseHandle();
  *channel = std::unique_ptr<ChannelImpl>(new ShmChannel(
      std::move(*channel), std::move(offer->memory), offer->region,
      /*creator=*/true, &offer->bells, offer->spin));
  return absl::OkStatus();
}

// A channel until its transport is settled: on the client side until it
// has answered the listener's offer (ClientChannel), on the listener side
// until it has read the answer (OfferSharedMemory). Neither waits for the
// other in Connect or Accept, so that clients connect before anyone
// accepts, as with a pipe. Every call first settles the transport
// (waiting, within its timeout, for what the peer sends when it accepted
// or made its own first call), then goes to the channel chosen.
class PendingChannel final : public ChannelImpl {
 public:
  // Client side.
  PendingChannel(std::unique_ptr<ChannelImpl> pipe, bool allow,
                 absl::Duration spin)
      : pipe_(pipe.get()), owned_(std::move(pipe)), allow_(allow), spin_(spin) {}
  // Listener side, after the offer went out.
  PendingChannel(std::unique_ptr<ChannelImpl> pipe,
                 std::unique_ptr<OfferState> offer)
      : pipe_(pipe.get()),
        owned_(std::move(pipe)),
        offer_(std::move(offer)),
        allow_(true),
        spin_(offer_->spin) {}
  ~PendingChannel() override {
    // An offer never answered: its duplicates in the peer are ours to
    // close (Windows).
    if (offer_ != nullptr && settled_.load() == nullptr) pipe_->AbandonSetup();
  }

  PipeMode mode() const override { return pipe_->mode(); }
  bool can_read() const override { return pipe_->can_read(); }
  bool can_write() const override { return pipe_->can_write(); }
  absl::string_view name() const override { return pipe_->name(); }
  bool is_open() const override {
    ChannelImpl* settled = settled_.load();
    return settled != nullptr ? settled->is_open() : pipe_->is_open();
  }
  size_t max_message_size() const override {
    return pipe_->max_message_size();
  }
  size_t max_handles_per_message() const override {
    return pipe_->max_handles_per_message();
  }
  NativeHandle native_handle() const override {
    return pipe_->native_handle();
  }
  absl::StatusOr<PeerInfo> Peer() override { return pipe_->Peer(); }
  absl::Status RunAsClient(absl::FunctionRef<void()> fn) override {
    return pipe_->RunAsClient(fn);
  }
  Transport transport() const override {
    ChannelImpl* settled = const_cast<PendingChannel*>(this)->TrySettle();
    return settled != nullptr ? settled->transport() : Transport::kPipe;
  }

  absl::StatusOr<ReadResult> Read(absl::Span<char> buffer,
                                  absl::Duration timeout) override {
    const Deadline deadline(timeout);
    CANAL_ASSIGN_OR_RETURN(ChannelImpl * ch, Settle("Read", deadline));
    return ch->Read(buffer, deadline.remaining());
  }
  absl::Status Write(absl::string_view op, absl::string_view data,
                     absl::Duration timeout) override {
    const Deadline deadline(timeout);
    CANAL_ASSIGN_OR_RETURN(ChannelImpl * ch, Settle(op, deadline));
    return ch->Write(op, data, deadline.remaining());
  }
  absl::StatusOr<std::string> ReadMessage(absl::Duration timeout) override {
    const Deadline deadline(timeout);
    CANAL_ASSIGN_OR_RETURN(ChannelImpl * ch, Settle("ReadMessage", deadline));
    return ch->ReadMessage(deadline.remaining());
  }
  absl::Status WriteWithHandles(absl::string_view op, absl::string_view data,
                                absl::Span<const NativeHandle> handles,
                                absl::Duration timeout) override {
    const Deadline deadline(timeout);
    CANAL_ASSIGN_OR_RETURN(ChannelImpl * ch, Settle(op, deadline));
    return ch->WriteWithHandles(op, data, handles, deadline.remaining());
  }
  absl::StatusOr<MessageWithHandles> ReadMessageWithHandles(
      absl::Duration timeout) override {
    const Deadline deadline(timeout);
    CANAL_ASSIGN_OR_RETURN(ChannelImpl * ch,
                           Settle("ReadMessageWithHandles", deadline));
    return ch->ReadMessageWithHandles(deadline.remaining());
  }
  absl::StatusOr<std::string> Transact(absl::string_view op,
                                       absl::string_view request,
                                       absl::Duration timeout) override {
    const Deadline deadline(timeout);
    CANAL_ASSIGN_OR_RETURN(ChannelImpl * ch, Settle(op, deadline));
    return ch->Transact(op, request, deadline.remaining());
  }
  absl::StatusOr<PeekResult> Peek(absl::Span<char> buffer) override {
    ChannelImpl* settled = TrySettle();
    if (settled != nullptr) return settled->Peek(buffer);
    if (!failed_ok()) return failed();
    // No offer yet: the listener has not accepted, so nothing was sent.
    // Peek on the pipe would show the offer's bytes; ask it only whether
    // the channel is still usable.
    absl::Status connected = pipe_->CheckPeerConnected("Peek");
    if (absl::IsUnavailable(connected)) {
      return MakeError(absl::StatusCode::kOutOfRange, "Peek", name(),
                       "the listener closed the channel before accepting it");
    }
    CANAL_RETURN_IF_ERROR(connected);
    return PeekResult{};
  }
  void Close() override {
    ChannelImpl* settled = settled_.load();
    if (settled != nullptr) {
      settled->Close();
    } else {
      pipe_->Close();  // Wakes a Settle waiting for the offer.
    }
    closing_.store(true);
    std::lock_guard<std::mutex> lock(mu_);
    if (owned_ != nullptr) owned_->Close();
  }

 private:
  bool failed_ok() {
    std::lock_guard<std::mutex> lock(mu_);
    return failed_.ok();
  }
  absl::Status failed() {
    std::lock_guard<std::mutex> lock(mu_);
    return failed_;
  }

  // Answers the offer if it is there, without waiting; the channel chosen,
  // or nullptr if the offer has not come (or the set-up failed).
  ChannelImpl* TrySettle() {
    ChannelImpl* settled = settled_.load();
    if (settled != nullptr) return settled;
    std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
    if (!lock.owns_lock()) return nullptr;
    SettleLocked("Peek", absl::ZeroDuration());
    return settled_.load();
  }

  absl::StatusOr<ChannelImpl*> Settle(absl::string_view op,
                                      const Deadline& deadline) {
    ChannelImpl* settled = settled_.load();
    if (settled != nullptr) return settled;
    std::lock_guard<std::mutex> lock(mu_);
    SettleLocked(op, deadline.remaining());
    settled = settled_.load();
    if (settled != nullptr) return settled;
    return failed_.ok() ? waited_ : failed_;
  }

  void SettleLocked(absl::string_view op, absl::Duration timeout) {
    if (settled_.load() != nullptr || !failed_.ok()) return;
    absl::Status answered =
        offer_ != nullptr
            ? TakeAnswer(op, &owned_, std::move(offer_), timeout, &offer_)
            : AnswerSharedMemory(op, &owned_, allow_, spin_, timeout);
    if (answered.ok()) {
      settled_.store(owned_.get());
      if (closing_.load()) owned_->Close();
      return;
    }
    if (absl::IsDeadlineExceeded(answered)) {
      waited_ = MakeError(absl::StatusCode::kDeadlineExceeded, op, name(),
                          "timed out waiting for the listener to accept the "
                          "channel (its shared-memory offer)");
      return;
    }
    failed_ = answered;
  }

  ChannelImpl* const pipe_;  // Owned by owned_ (maybe through a ShmChannel).
  std::mutex mu_;
  std::unique_ptr<ChannelImpl> owned_;  // Under mu_ until settled.
  std::unique_ptr<OfferState> offer_;   // Listener side, until answered.
  std::atomic<ChannelImpl*> settled_{nullptr};
  std::atomic<bool> closing_{false};
  absl::Status failed_;  // Under mu_: the set-up failed for good.
  absl::Status waited_;  // Under mu_: the last wait's timeout.
  const bool allow_;
  const absl::Duration spin_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ChannelImpl>> OfferSharedMemory(
    std::unique_ptr<ChannelImpl> pipe, const ListenerOptions& options,
    absl::Duration timeout) {
  const Deadline deadline(std::min(timeout, kShmSetupTimeout));
  const std::string name(pipe->name());
  const uint32_t capacity = static_cast<uint32_t>(options.ring_size);
  const ShmRingMode mode = RingModeFor(pipe->mode());
  const size_t region_size = ShmRingLayout::BytesFor(capacity);

  // Anything this side cannot create means the pipe, this time.
  auto offer = std::make_unique<OfferState>();
  absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> memory =
      BackendCreateSharedMemory(name, region_size);
  bool ready = memory.ok();
  if (ready) {
    offer->memory = *std::move(memory);
    absl::StatusOr<ShmRegionView> region =
        InitializeShmRegion(offer->memory->memory(), {capacity, mode});
    ready = region.ok();
    if (ready) offer->region = *region;
  }
  std::vector<NativeHandle> handles;
  if (ready) handles.push_back(offer->memory->handle());
  for (int i = 0; ready && i < kDoorbells; ++i) {
    absl::StatusOr<std::unique_ptr<DoorbellImpl>> bell =
        BackendCreateDoorbell(name);
    if (!bell.ok()) {
      ready = false;
      break;
    }
    offer->bells[i] = *std::move(bell);
    if (offer->bells[i]->handle() != kInvalidNativeHandle) {
      handles.push_back(offer->bells[i]->handle());
    }
  }
  if (!ready) {
    CANAL_RETURN_IF_ERROR(pipe->WriteSetup(Offer(0, mode, 0, 0), {},
                                           deadline.remaining()));
    return pipe;
  }
  CANAL_RETURN_IF_ERROR(
      pipe->WriteSetup(Offer(capacity, mode, region_size, handles.size()),
                       handles, deadline.remaining()));
  offer->spin = options.spin;
  return std::unique_ptr<ChannelImpl>(
      new PendingChannel(std::move(pipe), std::move(offer)));
}

absl::Status AnswerSharedMemory(absl::string_view op,
                                std::unique_ptr<ChannelImpl>* channel,
                                bool allow, absl::Duration spin,
                                absl::Duration timeout) {
  ChannelImpl* pipe = channel->get();
  const Deadline deadline(timeout);
  const std::string name(pipe->name());
  absl::StatusOr<MessageWithHandles> offer =
      pipe->ReadSetup(kOfferSize, kMaxOfferHandles, deadline.remaining());
  if (absl::IsPermissionDenied(offer.status())) {
    // Handle values from a listener of another user (Windows): never
    // touched, so the listener closes them.
    return pipe->WriteSetup(Answer(kRefusedMagic, false), {},
                            deadline.remaining());
  }
  if (!offer.ok()) return offer.status();
  const char* record = offer->data.data();
  const uint64_t capacity = GetLe(record + 8, 4);
  const uint64_t mode = GetLe(record + 12, 4);
  const uint64_t region_size = GetLe(record + 16, 8);
  const uint64_t count = GetLe(record + 24, 4);
  if (GetLe(record, 4) != kOfferMagic || GetLe(record + 4, 4) != kOfferVersion ||
      GetLe(record + 28, 4) != 0) {
    return SetupError(op, name, "the listener's offer is malformed");
  }
  if (count != offer->handles.size()) {
    return SetupError(op, name,
                      absl::StrCat("the offer names ", count,
                                   " handles but came with ",
                                   offer->handles.size()));
  }
  if (mode != static_cast<uint32_t>(RingModeFor(pipe->mode()))) {
    return SetupError(op, name, "the offer's mode is not the pipe's");
  }
  if (count == 0) {
    if (capacity != 0 || region_size != 0) {
      return SetupError(op, name, "the offer has rings but no memory");
    }
    return absl::OkStatus();  // The listener could not create the memory.
  }
  if (count != 1 && count != 1 + kDoorbells) {
    return SetupError(op, name, "the offer has a wrong number of handles");
  }
  if (capacity > kShmMaxRingCapacity ||
      ShmRingLayout::BytesFor(static_cast<uint32_t>(capacity)) == 0 ||
      region_size != ShmRingLayout::BytesFor(static_cast<uint32_t>(capacity))) {
    return SetupError(op, name, "the offer's ring geometry is invalid");
  }
  auto refuse = [&]() -> absl::Status {
    offer->handles.clear();  // Closes them: the listener need not.
    return pipe->WriteSetup(Answer(kRefusedMagic, true), {},
                            deadline.remaining());
  };
  if (!allow) return refuse();
  absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> memory =
      BackendMapSharedMemory(name, offer->handles[0].release(),
                             static_cast<size_t>(region_size));
  if (!memory.ok()) return refuse();
  const ShmRegionOptions expected{static_cast<uint32_t>(capacity),
                                  static_cast<ShmRingMode>(mode)};
  absl::StatusOr<ShmRegionView> region =
      AttachShmRegion((*memory)->memory(), expected);
  if (!region.ok()) return SetupError(op, name, region.status().message());
  Doorbells bells;
  for (int i = 0; i < kDoorbells; ++i) {
    const NativeHandle handle =
        count == 1 ? kInvalidNativeHandle
                   : offer->handles[1 + static_cast<size_t>(i)].release();
    absl::StatusOr<std::unique_ptr<DoorbellImpl>> bell =
        BackendOpenDoorbell(name, handle);
    if (!bell.ok()) return refuse();
    bells[i] = *std::move(bell);
  }
  CANAL_RETURN_IF_ERROR(pipe->WriteSetup(Answer(kTakenMagic, true), {},
                                         deadline.remaining()));
  *channel = std::unique_ptr<ChannelImpl>(
      new ShmChannel(std::move(*channel), *std::move(memory), *region,
                     /*creator=*/false, &bells, spin));
  return absl::OkStatus();
}

std::unique_ptr<ChannelImpl> ClientChannel(std::unique_ptr<ChannelImpl> pipe,
                                           bool allow, absl::Duration spin) {
  if (!pipe->shared_memory_offered()) return pipe;
  auto pending = std::make_unique<PendingChannel>(std::move(pipe), allow, spin);
  // Most listeners accept at once: settle now if the offer is there.
  pending->transport();
  return pending;
}

}  // namespace internal
}  // namespace canal
