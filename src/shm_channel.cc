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
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "canal/handle.h"
#include "src/internal/backend.h"
#include "src/internal/deadline.h"
#include "src/internal/errors.h"
#include "src/internal/little_endian.h"
#include "src/internal/shm_ring.h"
#include "src/internal/status_macros.h"

namespace canal {
namespace internal {
namespace {

constexpr uint32_t kOfferMagic = 0x534c4e43;  // "CNLS"
constexpr uint32_t kOfferVersion = 1;
constexpr size_t kOfferSize = 32;
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
// The least a spin budget shrinks to, so that it can grow back.
constexpr absl::Duration kMinSpin = absl::Microseconds(2);

using Doorbells = std::unique_ptr<DoorbellImpl>[kDoorbells];

// A turn (reading, or writing) that one call holds at a time; waiting for
// it ends at the caller's deadline or when the channel is closed. Taking a
// free turn is one atomic exchange; only a caller that finds it busy takes
// the mutex and sleeps.
class Turn {
 public:
  absl::Status Take(const std::atomic<bool>& closed, const Deadline& deadline,
                    absl::string_view op, absl::string_view name) {
    if (closed.load()) return Cancelled(op, name);
    if (!busy_.exchange(true)) return absl::OkStatus();
    std::unique_lock<std::mutex> lock(mu_);
    // Counted before the next look at busy_ (all seq_cst): a Give that
    // frees the turn after that look sees the count and notifies.
    waiters_.fetch_add(1);
    absl::Status status;
    while (busy_.exchange(true)) {
      if (closed.load()) {
        status = Cancelled(op, name);
        break;
      }
      if (deadline.expired()) {
        status = MakeError(absl::StatusCode::kDeadlineExceeded, op, name,
                           "timed out waiting for another call on the channel");
        break;
      }
      cv_.wait_for(lock, absl::ToChronoMilliseconds(
                             std::min(kWaitSlice, deadline.remaining())));
    }
    waiters_.fetch_sub(1);
    if (status.ok() && closed.load()) {
      busy_.store(false);
      status = Cancelled(op, name);
    }
    return status;
  }
  void Give() {
    busy_.store(false);
    if (waiters_.load() > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_one();
    }
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
  std::atomic<bool> busy_{false};
  std::atomic<int> waiters_{0};
  std::mutex mu_;
  std::condition_variable cv_;
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

ShmRingMode RingModeFor(PipeMode mode) {
  return mode == PipeMode::kMessage ? ShmRingMode::kMessages
                                    : ShmRingMode::kBytes;
}

absl::Status SetupError(absl::string_view op, absl::string_view name,
                        absl::string_view what) {
  return MakeError(absl::StatusCode::kDataLoss, op, name,
                   absl::StrCat("shared-memory set-up: ", what));
}

// The rings of a mapped region, as one side uses them.
struct Rings {
  std::unique_ptr<SharedMemoryImpl> memory;
  uint32_t capacity = 0;
  Doorbells bells;
  DoorbellImpl* out_data = nullptr;   // Rung after a write.
  DoorbellImpl* out_space = nullptr;  // Slept on for space.
  DoorbellImpl* in_data = nullptr;    // Slept on for data.
  DoorbellImpl* in_space = nullptr;   // Rung after a read.
  std::unique_ptr<ShmRingWriter> writer;
  std::unique_ptr<ShmRingReader> reader;
};

std::unique_ptr<Rings> MakeRings(std::unique_ptr<SharedMemoryImpl> memory,
                                 const ShmRegionView& region, bool creator,
                                 Doorbells* bells) {
  auto rings = std::make_unique<Rings>();
  rings->memory = std::move(memory);
  rings->capacity = region.ring_capacity();
  for (int i = 0; i < kDoorbells; ++i) rings->bells[i] = std::move((*bells)[i]);
  rings->out_data = rings->bells[creator ? kCreatorData : kAttacherData].get();
  rings->out_space =
      rings->bells[creator ? kCreatorSpace : kAttacherSpace].get();
  rings->in_data = rings->bells[creator ? kAttacherData : kCreatorData].get();
  rings->in_space =
      rings->bells[creator ? kAttacherSpace : kCreatorSpace].get();
  rings->writer = std::make_unique<ShmRingWriter>(
      creator ? region.creator_to_attacher() : region.attacher_to_creator());
  rings->reader = std::make_unique<ShmRingReader>(
      creator ? region.attacher_to_creator() : region.creator_to_attacher());
  return rings;
}

// A channel of a shared-memory listener, on either side. It starts on the
// pipe, exactly as a pipe channel, and each direction moves to its ring
// once both sides can use it, so that everything a pipe allows before the
// listener accepts (or before the client's first call) still holds:
//  - The listener sends the offer when it accepts. The client reads it on
//    its first call (a read waits for it, as it would wait for data; other
//    calls only look whether it came), maps the region and says so in it
//    (ShmRingReader::Attach); a client that does not take the memory just
//    closes what it received, and both directions stay on the pipe.
//  - A side switches its writes to its ring at the start of a write once
//    the reader of that ring is attached (the listener's reader always is):
//    it writes in the ring how many units (bytes, or messages) it sent on
//    the pipe before (ShmRingWriter::AnnounceSwitch), then one more unit on
//    the pipe, the wake-up: a zero byte, or an empty message, which wakes
//    a reader blocked on the pipe and is never delivered. A side whose
//    count is unsure (a pipe write timed out part-way) stays on the pipe.
//  - A reader reads the pipe until it has read as many units as the peer
//    announced, drops the wake-up, and reads the ring from then on.
//
// Threads: one reader and one writer at a time (the read and write turns;
// Transact takes both). The reader's ring state and the undelivered bytes
// (`pending_`) change under state_mu_, which Peek takes too; nothing waits
// while holding it. Close may come from any thread: it marks the rings
// closed and rings every doorbell (waking this side's sleepers and the
// peer's), then closes the pipe. The memory stays mapped until the channel
// is destroyed.
class ShmChannel final : public ChannelImpl {
 public:
  // Listener side, with the rings of the offer just sent.
  ShmChannel(std::unique_ptr<ChannelImpl> pipe, std::unique_ptr<Rings> rings,
             absl::Duration spin)
      : pipe_(std::move(pipe)),
        mode_(pipe_->mode()),
        creator_(true),
        allow_(true),
        spin_(spin),
        rings_(std::move(rings)) {
    settled_.store(true);
    usable_.store(true);
  }
  // Client side, before the offer is read.
  ShmChannel(std::unique_ptr<ChannelImpl> pipe, bool allow, absl::Duration spin)
      : pipe_(std::move(pipe)),
        mode_(pipe_->mode()),
        creator_(false),
        allow_(allow),
        spin_(spin) {}
  ~ShmChannel() override { Close(); }

  PipeMode mode() const override { return mode_; }
  bool can_read() const override { return pipe_->can_read(); }
  bool can_write() const override { return pipe_->can_write(); }
  absl::string_view name() const override { return pipe_->name(); }
  bool is_open() const override { return !closed_.load(); }
  size_t max_message_size() const override { return pipe_->max_message_size(); }
  size_t max_handles_per_message() const override {
    return pipe_->max_handles_per_message();
  }
  Transport transport() const override {
    ShmChannel* self = const_cast<ShmChannel*>(this);
    self->TrySettle();
    // Both sides use the rings once the client has mapped them.
    const bool both =
        self->usable() && (!creator_ || self->rings_->writer->ReaderAttached());
    return both ? Transport::kSharedMemory : Transport::kPipe;
  }
  NativeHandle native_handle() const override { return pipe_->native_handle(); }
  absl::StatusOr<PeerInfo> Peer() override { return pipe_->Peer(); }
  absl::Status RunAsClient(absl::FunctionRef<void()> fn) override {
    return pipe_->RunAsClient(fn);
  }

  absl::StatusOr<ReadResult> Read(absl::Span<char> buffer,
                                  absl::Duration timeout) override {
    constexpr absl::string_view kOp = "Read";
    const Deadline deadline(timeout);
    TurnHolder turn(&read_turn_, closed_, deadline, kOp, name());
    if (!turn.status().ok()) return turn.status();
    // A stream has nothing to wait for with no room to read into (row 1),
    // not even the listener's offer.
    if (mode_ == PipeMode::kByte && buffer.empty()) return ReadResult{};
    CANAL_RETURN_IF_ERROR(SettleToRead(kOp, deadline));
    while (!in_switched_) {
      absl::StatusOr<ReadResult> got = ReadPipe(buffer, deadline);
      if (!got.ok() || !in_switched_) return got;
    }
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
    constexpr absl::string_view kOp = "ReadMessage";
    const Deadline deadline(timeout);
    TurnHolder turn(&read_turn_, closed_, deadline, kOp, name());
    if (!turn.status().ok()) return turn.status();
    return ReadMessageWithin(kOp, deadline, nullptr);
  }

  absl::Status WriteWithHandles(absl::string_view op, absl::string_view data,
                                absl::Span<const NativeHandle> handles,
                                absl::Duration timeout) override {
    const Deadline deadline(timeout);
    TurnHolder turn(&write_turn_, closed_, deadline, op, name());
    if (!turn.status().ok()) return turn.status();
    TrySettle();
    // Handles need the pipe. Before the switch the message is one more
    // pipe unit; once the peer was told that the writes moved, it goes
    // after the wake-up, with a pipe marker in the ring standing in its
    // place.
    if (announced_) return WriteOnPipeAfterSwitch(op, data, handles, deadline);
    absl::Status written =
        pipe_->WriteWithHandles(op, data, handles, deadline.remaining());
    if (written.ok()) ++written_;
    if (absl::IsDeadlineExceeded(written)) out_unsure_ = true;
    return written;
  }

  absl::StatusOr<MessageWithHandles> ReadMessageWithHandles(
      absl::Duration timeout) override {
    constexpr absl::string_view kOp = "ReadMessageWithHandles";
    const Deadline deadline(timeout);
    TurnHolder turn(&read_turn_, closed_, deadline, kOp, name());
    if (!turn.status().ok()) return turn.status();
    MessageWithHandles message;
    CANAL_ASSIGN_OR_RETURN(message.data,
                           ReadMessageWithin(kOp, deadline, &message.handles));
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
    CANAL_RETURN_IF_ERROR(SettleToRead(op, deadline));
    MaybeSwitchWrites();
    if (!in_switched_ && !out_switched_ && !CanSwitchWrites()) {
      // Both directions on the pipe: the pipe's own transaction.
      absl::StatusOr<std::string> reply =
          pipe_->Transact(op, request, deadline.remaining());
      if (reply.ok()) {
        ++written_;
        ++consumed_;
      }
      return reply;
    }
    // Like TransactNamedPipe, refuse while anything is unread.
    uint64_t left;
    if (!in_switched_ && PipeDrained(&left)) {
      CANAL_RETURN_IF_ERROR(DropWakeUp(deadline));
    }
    bool unread;
    if (in_switched_) {
      std::lock_guard<std::mutex> lock(state_mu_);
      if (!read_fail_.ok()) return read_fail_;
      absl::StatusOr<bool> queued = rings_->reader->HasUnread();
      if (!queued.ok()) return ReadFailedLocked(queued.status());
      unread = *queued || !pending_.empty() || pending_done_ || pipe_next_ ||
               rings_->reader->message_in_progress();
    } else {
      absl::StatusOr<PeekResult> queued = pipe_->Peek({});
      unread = queued.ok() &&
               (queued->available > 0 || queued->message_remaining > 0);
    }
    if (unread) {
      return MakeError(absl::StatusCode::kFailedPrecondition, op, name(),
                       "unread data is queued on the channel (read it "
                       "before a transaction)");
    }
    CANAL_RETURN_IF_ERROR(WriteWithin(op, request, deadline));
    absl::StatusOr<std::string> reply =
        ReadMessageWithin(op, deadline, nullptr);
    if (absl::IsOutOfRange(reply.status())) {
      return MakeError(absl::StatusCode::kUnavailable, op, name(),
                       "the peer closed the channel before replying");
    }
    return reply;
  }

  absl::StatusOr<PeekResult> Peek(absl::Span<char> buffer) override {
    constexpr absl::string_view kOp = "Peek";
    if (closed_.load()) return Turn::Cancelled(kOp, name());
    TrySettle();
    if (!settled_.load()) {
      // No offer yet: the listener has not accepted, so it sent nothing.
      absl::Status connected = pipe_->CheckPeerConnected(kOp);
      if (absl::IsUnavailable(connected)) {
        return MakeError(absl::StatusCode::kOutOfRange, kOp, name(),
                         "the listener closed the channel before accepting "
                         "it");
      }
      CANAL_RETURN_IF_ERROR(connected);
      return PeekResult{};
    }
    std::lock_guard<std::mutex> lock(state_mu_);
    return PeekLocked(kOp, buffer);
  }

  void Close() override {
    if (closed_.exchange(true)) return;
    // No lock: a read may hold settle_mu_ while it waits for the offer,
    // which closing the pipe below ends. rings_ never changes once usable_
    // is set; rings set up meanwhile are not marked, and the peer learns
    // of the close from the pipe instead.
    {
      if (usable()) {
        Rings& r = *rings_;
        r.writer->MarkClosed();
        r.reader->MarkClosed();
        r.out_data->Wake(r.writer->peer_doorbell());
        r.out_space->Wake(r.writer->doorbell());
        r.in_data->Wake(r.reader->doorbell());
        r.in_space->Wake(r.reader->peer_doorbell());
      }
    }
    read_turn_.WakeAll();
    write_turn_.WakeAll();
    // Before the pipe closes: the watch must be gone while its descriptor
    // is still this channel's.
    std::unique_ptr<PeerWatchImpl> watch;
    {
      std::lock_guard<std::mutex> lock(watch_mu_);
      watch = std::move(watch_);
      watching_.store(kUnwatchable);
    }
    watch.reset();
    DropUnreadOffer();
    pipe_->Close();
  }

 private:
  // The rings can be used (the listener's always; the client's once it
  // has mapped them).
  bool usable() const { return usable_.load(); }

  absl::Status Finished(absl::string_view op) const {
    return MakeError(absl::StatusCode::kOutOfRange, op, name(),
                     "the peer closed the channel and everything was read");
  }

  // --- Settling the client's transport --------------------------------

  // On Close: an offer that came and was never read is read and dropped.
  // On Windows its handles were duplicated into this process, where they
  // would otherwise stay (with the region's memory) until it exits. A read
  // waiting for the offer holds settle_mu_; closing the pipe ends it, and
  // the listener then fails to send and closes the duplicates itself.
  void DropUnreadOffer() {
    if (creator_ || settled_.load()) return;
    std::unique_lock<std::mutex> lock(settle_mu_, std::try_to_lock);
    if (!lock.owns_lock() || settled_.load() || !settle_fail_.ok()) return;
    pipe_->ReadSetup(kOfferSize, kMaxOfferHandles, absl::ZeroDuration())
        .IgnoreError();
  }

  // Reads the offer if it is there, without waiting.
  void TrySettle() {
    if (settled_.load()) return;
    std::unique_lock<std::mutex> lock(settle_mu_, std::try_to_lock);
    if (!lock.owns_lock()) return;
    SettleLocked("Connect", absl::ZeroDuration());
  }

  // A read needs the offer first (it is the first thing the listener
  // sends): waits for it within `deadline`.
  absl::Status SettleToRead(absl::string_view op, const Deadline& deadline) {
    if (settled_.load()) return absl::OkStatus();
    std::lock_guard<std::mutex> lock(settle_mu_);
    SettleLocked(op, deadline.remaining());
    if (settled_.load()) return absl::OkStatus();
    if (!settle_fail_.ok()) return settle_fail_;
    return MakeError(absl::StatusCode::kDeadlineExceeded, op, name(),
                     "timed out waiting for data");
  }

  void SettleLocked(absl::string_view op, absl::Duration timeout) {
    if (settled_.load() || !settle_fail_.ok()) return;
    if (closed_.load()) {
      settle_fail_ = Turn::Cancelled(op, name());
      return;
    }
    const std::string name(pipe_->name());
    absl::StatusOr<MessageWithHandles> offer =
        pipe_->ReadSetup(kOfferSize, kMaxOfferHandles, timeout);
    if (absl::IsDeadlineExceeded(offer.status())) return;  // Not yet.
    if (absl::IsPermissionDenied(offer.status())) {
      // Handle values from a listener of another user (Windows): never
      // touched. The pipe it is.
      settled_.store(true);
      return;
    }
    if (!offer.ok()) {
      // A listener that closed before accepting: reads see the end of the
      // stream, as on a pipe.
      settle_fail_ = absl::IsUnavailable(offer.status())
                         ? MakeError(absl::StatusCode::kOutOfRange, op, name,
                                     "the listener closed the channel")
                         : offer.status();
      return;
    }
    absl::Status taken = TakeOffer(op, *std::move(offer));
    if (!taken.ok()) {
      settle_fail_ = taken;
      return;
    }
    settled_.store(true);
  }

  // Maps the offered region if allowed and possible (else closes what came:
  // the pipe it is). DataLoss for a malformed offer.
  absl::Status TakeOffer(absl::string_view op, MessageWithHandles offer) {
    const std::string name(pipe_->name());
    const char* record = offer.data.data();
    const uint64_t capacity = GetLe(record + 8, 4);
    const uint64_t mode = GetLe(record + 12, 4);
    const uint64_t region_size = GetLe(record + 16, 8);
    const uint64_t count = GetLe(record + 24, 4);
    if (GetLe(record, 4) != kOfferMagic ||
        GetLe(record + 4, 4) != kOfferVersion || GetLe(record + 28, 4) != 0) {
      return SetupError(op, name, "the listener's offer is malformed");
    }
    if (count != offer.handles.size()) {
      return SetupError(
          op, name,
          absl::StrCat("the offer names ", count, " handles but came with ",
                       offer.handles.size()));
    }
    if (mode != static_cast<uint32_t>(RingModeFor(mode_))) {
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
        region_size !=
            ShmRingLayout::BytesFor(static_cast<uint32_t>(capacity))) {
      return SetupError(op, name, "the offer's ring geometry is invalid");
    }
    if (!allow_) return absl::OkStatus();  // `offer` closes the handles.
    absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> memory =
        BackendMapSharedMemory(name, offer.handles[0].release(),
                               static_cast<size_t>(region_size));
    if (!memory.ok()) return absl::OkStatus();
    const ShmRegionOptions expected{static_cast<uint32_t>(capacity),
                                    static_cast<ShmRingMode>(mode)};
    absl::StatusOr<ShmRegionView> region =
        AttachShmRegion((*memory)->memory(), expected);
    if (!region.ok()) return SetupError(op, name, region.status().message());
    Doorbells bells;
    for (int i = 0; i < kDoorbells; ++i) {
      const NativeHandle handle =
          count == 1 ? kInvalidNativeHandle
                     : offer.handles[1 + static_cast<size_t>(i)].release();
      absl::StatusOr<std::unique_ptr<DoorbellImpl>> bell =
          BackendOpenDoorbell(name, handle);
      if (!bell.ok()) return absl::OkStatus();
      bells[i] = *std::move(bell);
    }
    rings_ = MakeRings(*std::move(memory), *region, /*creator=*/false, &bells);
    rings_->reader->Attach();
    usable_.store(true);
    return absl::OkStatus();
  }

  // --- The switch ----------------------------------------------------

  // Whether this side's writes may move to the ring now.
  bool CanSwitchWrites() {
    return usable() && !out_unsure_ &&
           (!creator_ || rings_->writer->ReaderAttached());
  }

  // Under the write turn: moves the writes to the ring if they may (see
  // the class comment). A wake-up that could not be sent yet is sent by
  // the next write first.
  void MaybeSwitchWrites() {
    if (out_switched_ || !CanSwitchWrites()) return;
    if (!announced_) {
      rings_->writer->AnnounceSwitch(written_);
      announced_ = true;
    }
  }

  // Sends the wake-up unit after the announcement.
  absl::Status SendWakeUp(absl::string_view op, const Deadline& deadline) {
    if (out_switched_ || !announced_) return absl::OkStatus();
    const char zero = '\0';
    absl::Status sent = pipe_->Write(
        op, mode_ == PipeMode::kByte ? absl::string_view(&zero, 1) : "",
        deadline.remaining());
    if (!sent.ok()) return sent;
    out_switched_ = true;
    return absl::OkStatus();
  }

  // Under the read turn: whether the peer's pipe units are all read, so
  // that the next unit on the pipe is its wake-up; `*left` gets how many
  // units are still to come on the pipe (max if the peer did not switch).
  bool PipeDrained(uint64_t* left) {
    uint64_t units = 0;
    if (!usable() || !rings_->reader->PeerSwitched(&units)) {
      *left = UINT64_MAX;
      return false;
    }
    const uint64_t consumed = consumed_.load();
    *left = units > consumed ? units - consumed : 0;
    return *left == 0;
  }

  // Drops the peer's wake-up unit from the pipe and moves reads to the
  // ring.
  absl::Status DropWakeUp(const Deadline& deadline) {
    if (!wake_seen_) {
      char byte;
      absl::StatusOr<ReadResult> got =
          pipe_->Read(absl::MakeSpan(&byte, mode_ == PipeMode::kByte ? 1 : 0),
                      deadline.remaining());
      // The peer may have closed after switching: its end of the pipe is
      // then gone, which does not matter any more.
      if (!got.ok() && !absl::IsOutOfRange(got.status()) &&
          !absl::IsUnavailable(got.status())) {
        return got.status();
      }
      // A non-empty "wake-up" message (a hostile peer) is dropped whole.
      while (got.ok() && got->more) {
        got = pipe_->Read(absl::Span<char>(), deadline.remaining());
      }
    }
    in_switched_ = true;
    return absl::OkStatus();
  }

  // After a pipe read before the switch failed with `status`: if the pipe
  // ended because the peer switched and then closed, its last data is in
  // the ring, so the reads move there (true).
  bool SwitchedAndClosed(const absl::Status& status) {
    uint64_t left;
    if (!(absl::IsOutOfRange(status) || absl::IsUnavailable(status)) ||
        !PipeDrained(&left)) {
      return false;
    }
    wake_seen_ = true;
    in_switched_ = true;
    return true;
  }

  // Under the read turn, before the switch: one read from the pipe, as a
  // pipe channel does it. Sets in_switched_ (returning an empty result)
  // when the reads move to the ring.
  absl::StatusOr<ReadResult> ReadPipe(absl::Span<char> buffer,
                                      const Deadline& deadline) {
    uint64_t left;
    if (PipeDrained(&left)) {
      CANAL_RETURN_IF_ERROR(DropWakeUp(deadline));
      return ReadResult{};
    }
    absl::Span<char> into = buffer;
    if (mode_ == PipeMode::kByte && left < into.size()) {
      into = into.subspan(0, static_cast<size_t>(left));
    }
    absl::StatusOr<ReadResult> got = pipe_->Read(into, deadline.remaining());
    if (!got.ok()) {
      if (SwitchedAndClosed(got.status())) return ReadResult{};
      return got;
    }
    if (mode_ == PipeMode::kByte) {
      // The peer may have switched while the read was under way: bytes past
      // its count are its wake-up.
      uint64_t after;
      PipeDrained(&after);
      if (after != UINT64_MAX && got->size > after) {
        got->size = static_cast<size_t>(after);
        wake_seen_ = true;
      }
      consumed_ += got->size;
      if (got->size == 0 && wake_seen_) {
        in_switched_ = true;
        return ReadResult{};
      }
      return got;
    }
    if (!got->more) {
      if (WasWakeUp()) {
        in_switched_ = true;
        return ReadResult{};
      }
      ++consumed_;
    } else if (WasWakeUp()) {
      // A non-empty "wake-up" message (a hostile peer) is dropped whole.
      absl::StatusOr<ReadResult> rest = got;
      while (rest.ok() && rest->more) {
        rest = pipe_->Read(absl::Span<char>(), deadline.remaining());
      }
      in_switched_ = true;
      return ReadResult{};
    }
    return got;
  }

  // `status` from a pipe call made for the public call `op`, naming `op`.
  static absl::Status Relabel(absl::string_view op,
                              const absl::Status& status) {
    constexpr absl::string_view kPrefix = "canal: ";
    absl::string_view message = status.message();
    if (status.ok() || !absl::StartsWith(message, kPrefix)) return status;
    const size_t end = message.find(' ', kPrefix.size());
    if (end == absl::string_view::npos) return status;
    return absl::Status(status.code(),
                        absl::StrCat(kPrefix, op, message.substr(end)));
  }

  // One whole message from the pipe, with its handles if `with_handles`
  // (else the pipe closes them).
  absl::StatusOr<MessageWithHandles> ReadOnePipeMessage(
      const Deadline& deadline, bool with_handles) {
    if (with_handles)
      return pipe_->ReadMessageWithHandles(deadline.remaining());
    absl::StatusOr<std::string> data = pipe_->ReadMessage(deadline.remaining());
    if (!data.ok()) return data.status();
    MessageWithHandles got;
    got.data = *std::move(data);
    return got;
  }

  // Message mode, after a message was read from the pipe: whether it was
  // the peer's wake-up (it had announced exactly the messages read before).
  bool WasWakeUp() {
    uint64_t units = 0;
    if (!usable() || !rings_->reader->PeerSwitched(&units)) return false;
    if (units != consumed_) return false;
    wake_seen_ = true;
    return true;
  }

  absl::StatusOr<std::string> ReadMessageWithin(
      absl::string_view op, const Deadline& deadline,
      std::vector<OwnedHandle>* handles) {
    CANAL_RETURN_IF_ERROR(SettleToRead(op, deadline));
    while (!in_switched_) {
      uint64_t left;
      if (PipeDrained(&left)) {
        CANAL_RETURN_IF_ERROR(DropWakeUp(deadline));
        break;
      }
      absl::StatusOr<MessageWithHandles> got =
          ReadOnePipeMessage(deadline, /*with_handles=*/handles != nullptr);
      if (!got.ok()) got = Relabel(op, got.status());
      if (!got.ok()) {
        if (SwitchedAndClosed(got.status())) break;
        return got.status();
      }
      if (WasWakeUp()) {
        in_switched_ = true;
        break;
      }
      ++consumed_;
      if (handles != nullptr) *handles = std::move(got->handles);
      return std::move(got->data);
    }
    return ReadWholeMessage(op, deadline, handles);
  }

  absl::StatusOr<PeekResult> PeekLocked(absl::string_view op,
                                        absl::Span<char> buffer) {
    if (!read_fail_.ok()) return read_fail_;
    PeekResult result;
    size_t copied = 0;
    bool pipe_done = in_switched_;
    if (!in_switched_) {
      uint64_t left;
      const bool drained = PipeDrained(&left);
      if (!drained) {
        // A peer marks the rings closed after its last pipe write and
        // closes the pipe after that, so a close seen before this look at
        // the pipe means the pipe holds all it ever will: empty, the
        // channel has ended (the pipe may still be open for a moment).
        const bool peer_closed = usable() && (rings_->reader->PeerClosed() ||
                                              rings_->writer->PeerClosed());
        absl::StatusOr<PeekResult> pipe = pipe_->Peek(buffer);
        if (!pipe.ok()) {
          // The end of the pipe ends the channel unless the peer switched
          // before it closed (then the ring holds the rest).
          if (!usable() || left == UINT64_MAX ||
              !(absl::IsOutOfRange(pipe.status()) ||
                absl::IsUnavailable(pipe.status()))) {
            return pipe;
          }
          pipe = PeekResult{};
        }
        if (mode_ == PipeMode::kByte && left != UINT64_MAX) {
          pipe->available = std::min<uint64_t>(pipe->available, left);
          pipe->size = std::min<uint64_t>(pipe->size, left);
        }
        result = *pipe;
        copied = pipe->size;
        // What is still on the pipe comes first; the ring's data after it.
        if (!usable() || result.available > 0 || result.message_remaining > 0 ||
            (left == UINT64_MAX && !peer_closed)) {
          return result;
        }
      }
      pipe_done = true;
    }
    if (!pipe_done || !usable()) return result;
    const size_t held = std::min(buffer.size() - copied, pending_.size());
    if (held > 0) std::memcpy(buffer.data() + copied, pending_.data(), held);
    absl::Span<char> rest = buffer.subspan(copied + held);
    // After a whole message held back, or with the next one due on the
    // pipe, only later messages are in the ring: they are counted, not
    // copied.
    const bool ring_later = pending_done_ || pipe_next_;
    absl::StatusOr<ShmPeekResult> ring =
        rings_->reader->Peek(ring_later ? absl::Span<char>() : rest);
    if (!ring.ok()) return ReadFailedLocked(ring.status());
    size_t from_pipe = 0;
    if (!ring_later && pending_.empty() && ring->on_pipe && in_switched_) {
      // The next message is the pipe's next one (its marker is not
      // consumed, so no read is taking it): its bytes are copied from
      // there. Nothing if the pipe fails; the read reports that.
      absl::StatusOr<PeekResult> pipe = pipe_->Peek(rest);
      if (pipe.ok()) {
        from_pipe =
            std::min({pipe->size, rest.size(), ring->message_remaining});
      }
    }
    result.size = copied + held + ring->size + from_pipe;
    result.available +=
        pending_.size() + ring->available + (pipe_next_ ? pipe_size_ : 0);
    if (mode_ == PipeMode::kByte) {
      result.available += rings_->reader->PeerBlockedBytes();
    }
    if (mode_ == PipeMode::kMessage) {
      result.message_remaining =
          pipe_next_      ? pipe_size_
          : pending_done_ ? pending_.size()
                          : pending_.size() + ring->message_remaining;
    }
    const bool queued =
        !pending_.empty() || pending_done_ || pipe_next_ || ring->readable;
    if (!queued) {
      absl::Status gone = PeerGone(op);
      if (absl::IsCancelled(gone)) return gone;
      if (!gone.ok()) {
        // Whatever the peer published before it closed is visible now.
        absl::StatusOr<bool> unread = rings_->reader->HasUnread();
        if (!unread.ok()) return ReadFailedLocked(unread.status());
        if (!*unread) return Finished(op);
      }
    }
    return result;
  }

  // --- The rings --------------------------------------------------------

  // Records a corrupt ring (sticky) and returns the error.
  absl::Status ReadFailedLocked(const absl::Status& status) {
    read_fail_ = status;
    return status;
  }

  // OK while the peer is there; Unavailable once it closed (it said so in
  // the ring, or its end of the pipe is gone); Cancelled after Close.
  // Once the pipe was found gone (a peer that died says nothing in the
  // rings), every later call knows. `check_pipe` false: the rings' flags
  // only.
  absl::Status PeerGone(absl::string_view op, bool check_pipe = true) {
    if (closed_.load()) return Turn::Cancelled(op, name());
    if (peer_gone_.load() || rings_->reader->PeerClosed() ||
        rings_->writer->PeerClosed()) {
      return MakeError(absl::StatusCode::kUnavailable, op, name(),
                       "the peer closed the channel");
    }
    if (!check_pipe) return absl::OkStatus();
    absl::Status connected = pipe_->CheckPeerConnected(op);
    if (absl::IsUnavailable(connected)) peer_gone_.store(true);
    return connected;
  }

  // Waits until `ready` holds: spins for up to spin_, then sleeps on the
  // ring's doorbell in slices, looking at the pipe between them. `reading`
  // says which ring's waiting flag to raise. Returns OK when ready, or
  // PeerGone's error, DeadlineExceeded or Cancelled.
  absl::Status Wait(absl::string_view op, const Deadline& deadline,
                    bool reading,
                    absl::FunctionRef<absl::StatusOr<bool>()> ready,
                    absl::string_view waiting) {
    Rings& r = *rings_;
    // Spinning helps only while the peer runs on another CPU. No yield in
    // the loop: on a busy CPU each yield can give another task a whole
    // time slice, stretching a microsecond spin into milliseconds. The
    // budget adapts: halved after a spin that found nothing (the peer is
    // slow or descheduled, and spinning only burns CPU), back to the full
    // `spin_` after one that did.
    absl::Duration& budget = reading ? read_spin_ : write_spin_;
    if (budget > absl::ZeroDuration() && multi_cpu_) {
      const absl::Time end =
          absl::Now() + std::min(budget, deadline.remaining());
      for (uint32_t i = 0;; ++i) {
        CANAL_ASSIGN_OR_RETURN(bool now, ready());
        if (now) {
          budget = spin_;
          return absl::OkStatus();
        }
        if (closed_.load(std::memory_order_relaxed)) {
          return Turn::Cancelled(op, name());
        }
        if ((i & 15) == 15 && absl::Now() >= end) break;
      }
      budget = std::max(budget / 2, std::min(spin_, kMinSpin));
    }
    bool look_at_pipe = false;
    DoorbellImpl* bell = reading ? r.in_data : r.out_space;
    const std::atomic<uint32_t>& word =
        reading ? r.reader->doorbell() : r.writer->doorbell();
    while (true) {
      // With no deadline and the pipe watched, the sleep needs no timer: the
      // watch wakes it if the peer dies. Set up before the doorbell is read,
      // so that a watch that fires meanwhile changes it.
      const bool untimed = deadline.infinite() && Watched();
      const uint32_t seen =
          reading ? r.reader->PrepareToWait() : r.writer->PrepareToWait();
      auto finish = [&] {
        if (reading) {
          r.reader->FinishWait();
        } else {
          r.writer->FinishWait();
        }
      };
      absl::StatusOr<bool> now = ready();
      if (!now.ok() || *now) {
        finish();
        return now.status();
      }
      // The rings' flags on every turn (loads); the pipe only after a
      // sleep that lasted its whole slice, which is when a peer that died
      // without a word would have woken us.
      absl::Status gone =
          PeerGone(op, /*check_pipe=*/look_at_pipe || watch_fired_.load());
      if (!gone.ok()) {
        finish();
        return gone;
      }
      if (deadline.expired()) {
        finish();
        return MakeError(absl::StatusCode::kDeadlineExceeded, op, name(),
                         absl::StrCat("timed out ", waiting));
      }
      if (untimed) {
        bell->Wait(word, seen, absl::InfiniteDuration());
        finish();
        continue;
      }
      const absl::Duration slice = std::min(kWaitSlice, deadline.remaining());
      const absl::Time before = absl::Now();
      bell->Wait(word, seen, slice);
      look_at_pipe = absl::Now() - before >= slice;
      finish();
    }
  }

  // Whether the pipe is watched for the peer's end closing (see
  // BackendWatchPeer), starting the watch on first use. False once it
  // fired (the sleeper then looks at the pipe itself), after Close, in a
  // forked child, and where the backend cannot watch.
  bool Watched() {
    if (watch_fired_.load()) return false;
    const int state = watching_.load();
    if (state != kNotYet) {
      return state == kWatching && BackendPeerWatchesFire();
    }
    std::lock_guard<std::mutex> lock(watch_mu_);
    if (watching_.load() == kNotYet) {
      watch_ = BackendWatchPeer(pipe_->native_handle(),
                                [this] { PeerWatchFired(); });
      watching_.store(watch_ != nullptr ? kWatching : kUnwatchable);
    }
    return watching_.load() == kWatching && BackendPeerWatchesFire();
  }

  // On the watcher's thread: wakes this side's sleepers, which then look
  // at the pipe. Takes no lock.
  void PeerWatchFired() {
    watch_fired_.store(true);
    Rings& r = *rings_;
    r.reader->BumpDoorbells();
    r.writer->BumpDoorbells();
    r.in_data->Wake(r.reader->doorbell());
    r.out_space->Wake(r.writer->doorbell());
  }

  absl::StatusOr<bool> Unread() {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (!read_fail_.ok()) return read_fail_;
    absl::StatusOr<bool> unread = rings_->reader->HasUnread();
    if (!unread.ok()) return ReadFailedLocked(unread.status());
    return *unread;
  }

  // Waits for data to read. OK when there is some; OutOfRange, or DataLoss
  // inside a message, once the peer is gone and everything was read.
  absl::Status WaitToRead(absl::string_view op, const Deadline& deadline) {
    absl::Status waited = Wait(
        op, deadline, /*reading=*/true, [&] { return Unread(); },
        "waiting for data");
    if (!absl::IsUnavailable(waited)) return waited;
    CANAL_ASSIGN_OR_RETURN(bool unread, Unread());
    if (unread) return absl::OkStatus();
    std::lock_guard<std::mutex> lock(state_mu_);
    if (rings_->reader->message_in_progress() || !pending_.empty()) {
      return ReadFailedLocked(
          MakeError(absl::StatusCode::kDataLoss, op, name(),
                    "the peer closed the channel in the middle of a message"));
    }
    return Finished(op);
  }

  void AfterRead(const ShmReadResult& result) {
    if (result.wake_peer) {
      rings_->in_space->Wake(rings_->reader->peer_doorbell());
    }
  }

  absl::StatusOr<ReadResult> ReadBytes(absl::Span<char> buffer,
                                       const Deadline& deadline) {
    constexpr absl::string_view kOp = "Read";
    if (buffer.empty()) return ReadResult{0, false};
    while (true) {
      {
        std::lock_guard<std::mutex> lock(state_mu_);
        if (!read_fail_.ok()) return read_fail_;
        absl::StatusOr<ShmReadResult> got =
            rings_->reader->TryReadBytes(buffer);
        if (!got.ok()) return ReadFailedLocked(got.status());
        AfterRead(*got);
        if (got->bytes > 0) return ReadResult{got->bytes, false};
      }
      CANAL_RETURN_IF_ERROR(WaitToRead(kOp, deadline));
    }
  }

  // Under state_mu_, after a ring read: a pipe marker it consumed makes the
  // pipe's next message the one to read.
  void NotePipeMarkerLocked(const ShmReadResult& part) {
    if (!part.on_pipe) return;
    pipe_next_ = true;
    pipe_size_ = part.pipe_message_size;
  }

  // Under the read turn, not state_mu_ (it may wait), with pipe_next_ set:
  // reads the message a pipe marker stood for, with its handles if
  // `handles` (else the pipe closes them). A timeout or Cancelled leaves it
  // due; anything else, including a pipe that ended first (the peer never
  // sent it) or a message of another size than announced, is DataLoss (or
  // the pipe's own error) for good.
  absl::StatusOr<std::string> ReadPipeMessage(
      absl::string_view op, const Deadline& deadline,
      std::vector<OwnedHandle>* handles) {
    absl::StatusOr<MessageWithHandles> got =
        ReadOnePipeMessage(deadline, /*with_handles=*/handles != nullptr);
    std::lock_guard<std::mutex> lock(state_mu_);
    if (!got.ok()) {
      const absl::Status status = Relabel(op, got.status());
      if (absl::IsDeadlineExceeded(status) || absl::IsCancelled(status)) {
        return status;
      }
      if (absl::IsOutOfRange(status) || absl::IsUnavailable(status)) {
        return ReadFailedLocked(MakeError(
            absl::StatusCode::kDataLoss, op, name(),
            absl::StrCat("the peer announced a message of ", pipe_size_,
                         " bytes on the pipe and closed the channel "
                         "without sending it")));
      }
      return ReadFailedLocked(status);
    }
    if (got->data.size() != pipe_size_) {
      return ReadFailedLocked(MakeError(
          absl::StatusCode::kDataLoss, op, name(),
          absl::StrCat("a message of ", got->data.size(),
                       " bytes came on the pipe where the peer announced ",
                       pipe_size_, " bytes; its handles were closed")));
    }
    pipe_next_ = false;
    if (handles != nullptr) *handles = std::move(got->handles);
    return std::move(got->data);
  }

  absl::StatusOr<ReadResult> ReadMessagePart(absl::Span<char> buffer,
                                             const Deadline& deadline) {
    constexpr absl::string_view kOp = "Read";
    size_t got = 0;
    while (true) {
      bool from_pipe = false;
      {
        std::lock_guard<std::mutex> lock(state_mu_);
        if (!read_fail_.ok()) return read_fail_;
        from_pipe = pipe_next_;
        if (!from_pipe && got == 0) {
          // Bytes of the message a read gave up on (or of a message that
          // came on the pipe) come first.
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
        if (!from_pipe) {
          absl::StatusOr<ShmReadResult> part =
              rings_->reader->TryReadMessage(buffer.subspan(got));
          if (!part.ok()) return ReadFailedLocked(part.status());
          AfterRead(*part);
          NotePipeMarkerLocked(*part);
          from_pipe = part->on_pipe;
          got += part->bytes;
          if (part->message_end) return ReadResult{got, false};
          if (got == buffer.size() && rings_->reader->message_in_progress()) {
            return ReadResult{got, true};
          }
        }
      }
      if (from_pipe) {
        // A partial read of it is served from pending_, as a ring message
        // a read gave up on. Its handles are closed now, as a pipe read
        // of such a message closes them.
        absl::StatusOr<std::string> message =
            ReadPipeMessage(kOp, deadline, nullptr);
        if (!message.ok()) return message.status();
        std::lock_guard<std::mutex> lock(state_mu_);
        pending_ = *std::move(message);
        pending_done_ = true;
        continue;
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

  absl::StatusOr<std::string> ReadWholeMessage(
      absl::string_view op, const Deadline& deadline,
      std::vector<OwnedHandle>* handles) {
    {
      std::lock_guard<std::mutex> lock(state_mu_);
      if (!read_fail_.ok()) return read_fail_;
      if (pending_done_) {
        pending_done_ = false;
        return std::move(pending_);
      }
    }
    while (true) {
      bool from_pipe = false;
      {
        std::lock_guard<std::mutex> lock(state_mu_);
        if (!read_fail_.ok()) return read_fail_;
        from_pipe = pipe_next_;
        ShmRingReader& reader = *rings_->reader;
        absl::StatusOr<int64_t> left =
            from_pipe ? int64_t{-1} : reader.CurrentMessageRemaining();
        if (!left.ok()) return ReadFailedLocked(left.status());
        if (*left >= 0) {
          const uint64_t total = pending_.size() + static_cast<uint64_t>(*left);
          if (total > max_message_size()) {
            return ReadFailedLocked(
                MakeError(absl::StatusCode::kResourceExhausted, op, name(),
                          absl::StrCat("the peer sent a message of ", total,
                                       " bytes, over the limit of ",
                                       max_message_size(), " bytes")));
          }
          // Memory follows what arrived: at most a ring's worth more.
          const size_t before = pending_.size();
          const size_t step = reader.pipe_marker_next()
                                  ? 0
                                  : static_cast<size_t>(std::min<uint64_t>(
                                        *left, rings_->capacity));
          pending_.resize(before + step);
          absl::StatusOr<ShmReadResult> part = reader.TryReadMessage(
              absl::MakeSpan(&pending_[0] + before, step));
          if (!part.ok()) return ReadFailedLocked(part.status());
          AfterRead(*part);
          NotePipeMarkerLocked(*part);
          from_pipe = part->on_pipe;
          pending_.resize(before + part->bytes);
          if (part->message_end) {
            std::string message = std::move(pending_);
            pending_.clear();
            return message;
          }
          if (part->bytes > 0) continue;
        }
      }
      if (from_pipe) return ReadPipeMessage(op, deadline, handles);
      CANAL_RETURN_IF_ERROR(WaitToRead(op, deadline));
    }
  }

  // Under the write turn, once the peer was told that the writes moved: a
  // message with handles goes on the pipe (after the wake-up), then a pipe
  // marker in the ring says where it belongs among the ring's messages. In
  // that order, so that a reader that finds the marker finds the message
  // on the pipe, and a pipe write that fails leaves no marker without its
  // message. Room for the marker is waited for first, so that it never
  // has to wait after the message went out.
  absl::Status WriteOnPipeAfterSwitch(absl::string_view op,
                                      absl::string_view data,
                                      absl::Span<const NativeHandle> handles,
                                      const Deadline& deadline) {
    if (!write_fail_.ok()) return write_fail_;
    CANAL_RETURN_IF_ERROR(SendWakeUp(op, deadline));
    ShmRingWriter& writer = *rings_->writer;
    if (writer.PeerClosed() || peer_gone_.load()) {
      return MakeError(absl::StatusCode::kUnavailable, op, name(),
                       "the peer closed the channel");
    }
    absl::Status room = Wait(
        op, deadline, /*reading=*/false,
        [&]() -> absl::StatusOr<bool> {
          CANAL_ASSIGN_OR_RETURN(size_t free, writer.FreeBytes());
          return free >= kShmRecordHeaderSize;
        },
        "waiting for the peer to read");
    if (!room.ok()) {
      if (absl::IsDataLoss(room)) write_fail_ = room;
      return room;
    }
    absl::Status sent =
        pipe_->WriteWithHandles(op, data, handles, deadline.remaining());
    if (absl::IsDeadlineExceeded(sent) || absl::IsCancelled(sent)) {
      // Part of it may be on the pipe (which then shuts its write side, as
      // a pipe channel does), so no later message could follow it there.
      // The pipe is also what tells the peer this side is there: ending
      // this direction in the ring makes the peer see the end of the
      // stream after what came before, as on a pipe.
      writer.MarkClosed();
      rings_->out_data->Wake(writer.peer_doorbell());
      write_fail_ = absl::Status(
          sent.code(),
          absl::StrCat(sent.message(),
                       "; a message with handles may have been sent part-way "
                       "on the pipe, so this direction was closed"));
      return write_fail_;
    }
    CANAL_RETURN_IF_ERROR(sent);
    absl::StatusOr<ShmWriteResult> put = writer.TryWritePipeMarker(data.size());
    if (put.ok() && !put->done) {
      // The free space only grows while this side holds the write turn.
      put = MakeError(absl::StatusCode::kDataLoss, op, name(),
                      "the ring's free space shrank (corrupt shared memory "
                      "ring)");
    }
    if (!put.ok()) {
      // The message is on the pipe with nothing in the ring to place it:
      // this direction cannot go on. The peer sees DataLoss.
      writer.MarkClosed();
      rings_->out_data->Wake(writer.peer_doorbell());
      write_fail_ = absl::Status(
          absl::StatusCode::kDataLoss,
          absl::StrCat(put.status().message(),
                       "; a message with handles was sent on the pipe "
                       "without its place in the ring, so this direction "
                       "was closed"));
      return write_fail_;
    }
    if (put->wake_peer) rings_->out_data->Wake(writer.peer_doorbell());
    return absl::OkStatus();
  }

  absl::Status WriteWithin(absl::string_view op, absl::string_view data,
                           const Deadline& deadline) {
    if (!write_fail_.ok()) return write_fail_;
    if (closed_.load()) return Turn::Cancelled(op, name());
    TrySettle();
    MaybeSwitchWrites();
    CANAL_RETURN_IF_ERROR(SendWakeUp(op, deadline));
    if (!out_switched_) {
      absl::Status written = pipe_->Write(op, data, deadline.remaining());
      if (written.ok()) {
        written_ += mode_ == PipeMode::kByte ? data.size() : 1;
      } else if (absl::IsDeadlineExceeded(written) ||
                 absl::IsCancelled(written)) {
        // Part of it may be out: the count is unsure from here.
        out_unsure_ = true;
      }
      return written;
    }
    ShmRingWriter& writer = *rings_->writer;
    if (writer.PeerClosed() || peer_gone_.load()) {
      return MakeError(absl::StatusCode::kUnavailable, op, name(),
                       "the peer closed the channel");
    }
    if (mode_ == PipeMode::kByte && data.empty()) return absl::OkStatus();
    absl::string_view rest = data;
    while (true) {
      absl::StatusOr<ShmWriteResult> put = mode_ == PipeMode::kMessage
                                               ? writer.TryWriteMessage(rest)
                                               : writer.TryWriteBytes(rest);
      if (!put.ok()) {
        if (absl::IsDataLoss(put.status())) write_fail_ = put.status();
        return put.status();
      }
      if (put->wake_peer) rings_->out_data->Wake(writer.peer_doorbell());
      rest.remove_prefix(put->bytes);
      if (put->done) return absl::OkStatus();
      // What TryWriteMessage needs before it writes again: the rest as one
      // record, or a quarter of the ring for a part of it. Bytes wait for
      // as much room (or the rest), so that a writer ahead of its reader
      // moves large pieces instead of waking it for every few bytes freed.
      const uint64_t quarter =
          std::max<uint64_t>(rings_->capacity / 4, 2 * kShmRecordHeaderSize);
      const uint64_t need =
          mode_ == PipeMode::kMessage
              ? std::min<uint64_t>(kShmRecordHeaderSize +
                                       ((rest.size() + kShmRecordAlign - 1) &
                                        ~uint64_t{kShmRecordAlign - 1}),
                                   quarter)
              : std::min<uint64_t>(rest.size(), quarter);
      if (mode_ == PipeMode::kByte) writer.SetBlocked(rest.size());
      absl::Status waited = Wait(
          op, deadline, /*reading=*/false,
          [&]() -> absl::StatusOr<bool> {
            CANAL_ASSIGN_OR_RETURN(size_t free, writer.FreeBytes());
            return free >= need;
          },
          "waiting for the peer to read");
      if (waited.ok()) continue;
      if (mode_ == PipeMode::kByte) writer.SetBlocked(0);
      if (absl::IsDataLoss(waited)) write_fail_ = waited;
      if (writer.message_in_progress() && !absl::IsCancelled(waited)) {
        // Part of the message is in the ring. Going on later would tear it
        // and stopping would leave the reader waiting for the rest; ending
        // this direction makes the reader see DataLoss instead, as a pipe's
        // shut-down write side does.
        writer.MarkClosed();
        rings_->out_data->Wake(writer.peer_doorbell());
        write_fail_ = absl::Status(
            waited.code(),
            absl::StrCat(waited.message(),
                         "; part of a message was sent, so this direction "
                         "was closed"));
        return write_fail_;
      }
      return waited;
    }
  }

  std::unique_ptr<ChannelImpl> pipe_;
  const PipeMode mode_;
  const bool creator_;
  const bool allow_;
  const absl::Duration spin_;
  absl::Duration read_spin_ = spin_;   // The read turn's spin budget.
  absl::Duration write_spin_ = spin_;  // The write turn's.
  std::atomic<bool> closed_{false};
  std::atomic<bool> peer_gone_{false};  // Its end of the pipe is gone.
  // The watch on the pipe (Watched): kNotYet until the first sleep with no
  // deadline; watch_ changes under watch_mu_.
  static constexpr int kNotYet = 0;
  static constexpr int kWatching = 1;
  static constexpr int kUnwatchable = 2;
  std::mutex watch_mu_;
  std::unique_ptr<PeerWatchImpl> watch_;
  std::atomic<int> watching_{kNotYet};
  std::atomic<bool> watch_fired_{false};
  const bool multi_cpu_ = BackendUsableCpus() > 1;
  Turn read_turn_;
  Turn write_turn_;

  // The client's set-up (under settle_mu_ until settled_).
  std::mutex settle_mu_;
  std::atomic<bool> settled_{false};
  absl::Status settle_fail_;
  std::unique_ptr<Rings> rings_;  // Set before usable_.
  std::atomic<bool> usable_{false};

  // The write turn's.
  uint64_t written_ = 0;  // Units sent on the pipe.
  bool out_unsure_ = false;
  bool announced_ = false;
  bool out_switched_ = false;
  absl::Status write_fail_;

  // Changed by the read turn; Peek and Transact read them too.
  std::atomic<uint64_t> consumed_{0};  // Units read from the pipe.
  std::atomic<bool> wake_seen_{false};
  std::atomic<bool> in_switched_{false};

  std::mutex state_mu_;
  // Bytes of the current ring message taken and not delivered yet;
  // `pending_done_`: they end it.
  std::string pending_;
  bool pending_done_ = false;
  // A pipe marker was consumed: the next message is the pipe's next one,
  // of pipe_size_ bytes as announced.
  bool pipe_next_ = false;
  uint32_t pipe_size_ = 0;
  absl::Status read_fail_;
};

}  // namespace

bool OffersSharedMemory(const ListenerOptions& options) {
  return options.transport == Transport::kSharedMemory &&
         options.access == PipeAccess::kDuplex;
}

absl::StatusOr<std::unique_ptr<ChannelImpl>> OfferSharedMemory(
    std::unique_ptr<ChannelImpl> pipe, const ListenerOptions& options,
    absl::Duration timeout) {
  const Deadline deadline(std::min(timeout, kShmSetupTimeout));
  const std::string name(pipe->name());
  const uint32_t capacity = static_cast<uint32_t>(options.ring_size);
  const ShmRingMode mode = RingModeFor(pipe->mode());
  const size_t region_size = ShmRingLayout::BytesFor(capacity);

  // Anything this side cannot create means the pipe, this time.
  absl::StatusOr<std::unique_ptr<SharedMemoryImpl>> memory =
      BackendCreateSharedMemory(name, region_size);
  Doorbells bells;
  absl::StatusOr<ShmRegionView> region;
  bool ready = memory.ok();
  if (ready) {
    region = InitializeShmRegion((*memory)->memory(), {capacity, mode});
    ready = region.ok();
  }
  std::vector<NativeHandle> handles;
  if (ready) handles.push_back((*memory)->handle());
  for (int i = 0; ready && i < kDoorbells; ++i) {
    absl::StatusOr<std::unique_ptr<DoorbellImpl>> bell =
        BackendCreateDoorbell(name);
    if (!bell.ok()) {
      ready = false;
      break;
    }
    bells[i] = *std::move(bell);
    if (bells[i]->handle() != kInvalidNativeHandle) {
      handles.push_back(bells[i]->handle());
    }
  }
  if (!ready) {
    absl::Status offered =
        pipe->WriteSetup(Offer(0, mode, 0, 0), {}, deadline.remaining());
    if (!offered.ok() && !absl::IsUnavailable(offered)) return offered;
    return pipe;
  }
  absl::Status offered =
      pipe->WriteSetup(Offer(capacity, mode, region_size, handles.size()),
                       handles, deadline.remaining());
  if (absl::IsPermissionDenied(offered)) {
    // Windows: the handles cannot go into the client's process (another
    // user's, or one this side may not open). Nothing was sent yet.
    offered = pipe->WriteSetup(Offer(0, mode, 0, 0), {}, deadline.remaining());
    if (!offered.ok() && !absl::IsUnavailable(offered)) return offered;
    return pipe;
  }
  if (absl::IsUnavailable(offered)) {
    // The client left before it was accepted: what it sent is still to be
    // read, from the pipe.
    return pipe;
  }
  CANAL_RETURN_IF_ERROR(offered);
  // The client has its own descriptor now (POSIX); on Windows the section
  // was duplicated into its process.
  (*memory)->CloseHandle();
  return std::unique_ptr<ChannelImpl>(new ShmChannel(
      std::move(pipe),
      MakeRings(*std::move(memory), *region, /*creator=*/true, &bells),
      options.spin));
}

std::unique_ptr<ChannelImpl> ClientChannel(std::unique_ptr<ChannelImpl> pipe,
                                           bool allow, absl::Duration spin) {
  if (!pipe->shared_memory_offered()) return pipe;
  auto channel = std::make_unique<ShmChannel>(std::move(pipe), allow, spin);
  // Most listeners accept at once: settle now if the offer is there.
  channel->transport();
  return channel;
}

}  // namespace internal
}  // namespace canal
