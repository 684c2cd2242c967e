// SPDX-License-Identifier: Apache-2.0
// The shared-memory transport (ListenerOptions::transport): its set-up over
// a freshly connected pipe, and the ChannelImpl that then carries the data
// through the two rings of src/internal/shm_ring.h. Platform-free: the
// backend brings the memory object, the doorbells and the set-up records'
// handle passing (backend.h).
//
// Set-up, before any data crosses the pipe (little-endian):
//   listener -> client  the offer, 32 bytes: "CNLS", version 1, the ring
//                       capacity, the ring mode (ShmRingMode), the region's
//                       size (u64), the number of handles, 0; with the
//                       memory object's handle and, on Windows, the four
//                       doorbell events (creator-to-attacher data and space,
//                       then attacher-to-creator data and space). An offer
//                       with no handles and capacity 0 says "the pipe, this
//                       time" (the listener could not create the memory);
//                       no answer follows it.
//   client -> listener  the answer, 8 bytes: "CNLA" (taken: from now on the
//                       data goes through the rings) or "CNLR" (refused: the
//                       pipe carries the data), then 1 if the client closed
//                       the handles it received or 0 if it never touched
//                       them (Windows: the listener then closes its
//                       duplicates in the client's process).
// A client reads an offer only from a listener whose published metadata
// says it makes one, so a canal client of a kPipe listener never waits for
// one.
//
// After the set-up the pipe carries nothing; it tells each side when the
// other is gone (a crash closes it too). Each side's Close also says so in
// the rings (ShmRingWriter/Reader::MarkClosed) and rings both doorbells, so
// an orderly close is seen at once and a crash within one wait slice.

#ifndef CANAL_SRC_INTERNAL_SHM_CHANNEL_H_
#define CANAL_SRC_INTERNAL_SHM_CHANNEL_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "canal/types.h"
#include "src/internal/backend.h"

namespace canal {
namespace internal {

// How long a listener waits for a client's answer to its offer (at most;
// the Accept's own timeout may be shorter). A canal client answers at
// once; a program that is not canal never does, and is dropped then.
inline constexpr absl::Duration kShmSetupTimeout = absl::Seconds(5);

// Whether a listener with `options` offers shared memory to its clients
// (and so says so in what it publishes): kSharedMemory on a duplex
// listener.
bool OffersSharedMemory(const ListenerOptions& options);

// Listener side, on a channel just accepted by a listener that
// OffersSharedMemory: sends the offer and reads the answer, within
// `timeout`. Returns the channel to hand out: over shared memory if the
// client took it, else `pipe` itself. An error means that this client is
// to be dropped (it sent no valid answer in time, or went away).
absl::StatusOr<std::unique_ptr<ChannelImpl>> OfferSharedMemory(
    std::unique_ptr<ChannelImpl> pipe, const ListenerOptions& options,
    absl::Duration timeout);

// Client side, on a channel just connected to a listener that said it
// makes an offer: reads it and answers, taking the shared memory if
// `allow` and it can be mapped, within `timeout`. On success `*channel`
// is the channel to hand out (over shared memory, or still the pipe). On
// DeadlineExceeded before any of the offer arrived (the listener has not
// accepted yet) `*channel` is left as it was; after any other error it is
// not to be used. DataLoss for a malformed offer or a region whose header
// is not what the offer said. `op` names the public call.
absl::Status AnswerSharedMemory(absl::string_view op,
                                std::unique_ptr<ChannelImpl>* channel,
                                bool allow, absl::Duration spin,
                                absl::Duration timeout);

// What Channel::Connect hands out for `pipe`: `pipe` itself unless the
// listener makes offers; then a channel that answers the offer on its
// first call (reading and writing wait for it, within their timeouts; Peek
// and transport() only look whether it came), so that Connect returns
// before the listener accepts, as it does with a pipe.
std::unique_ptr<ChannelImpl> ClientChannel(std::unique_ptr<ChannelImpl> pipe,
                                           bool allow, absl::Duration spin);

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_SHM_CHANNEL_H_
