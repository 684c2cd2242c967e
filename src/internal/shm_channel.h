// SPDX-License-Identifier: Apache-2.0
// The shared-memory transport (ListenerOptions::transport): its set-up over
// a freshly connected pipe, and the ChannelImpl that then carries the data
// through the two rings of src/internal/shm_ring.h. Platform-free: the
// backend brings the memory object, the doorbells and the set-up records'
// handle passing (backend.h).
//
// The listener sends the offer when it accepts (32 bytes, little-endian:
// "CNLS", version 1, the ring capacity, the ring mode (ShmRingMode), the
// region's size (u64), the number of handles, 0), with the memory object's
// handle and, on Windows, the four doorbell events (creator-to-attacher
// data and space, then attacher-to-creator data and space). An offer with
// no handles and capacity 0 says "the pipe, this time" (the listener could
// not create the memory). The client gives no answer on the pipe: it says
// in the region that it reads its ring, and each side then moves its
// writes from the pipe to its ring at a point both can find (see
// ShmChannel in shm_channel.cc). A client reads the offer only from a
// listener whose published metadata says it makes one, so a canal client
// of a kPipe listener never waits for one.
//
// Once a direction has moved, the pipe carries only messages with handles
// (which only it can pass): each goes on the pipe first, then a pipe marker
// in the ring (shm_ring.h) stands in its place, so that the reader, finding
// the marker, reads exactly one message from the pipe there and the order
// among the ring's messages holds (a pipe write that timed out ends that
// direction, as a torn ring message does). Otherwise the pipe tells each
// side when the other is gone (a crash closes it too). Each side's Close also
// says so in the rings (ShmRingWriter/Reader::MarkClosed) and rings both
// doorbells, so an orderly close is seen at once and a crash within one wait
// slice.

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

// How long a listener's Accept waits to send its offer (the pipe is empty
// then, so this only matters for a client that vanished meanwhile).
inline constexpr absl::Duration kShmSetupTimeout = absl::Seconds(5);

// Whether a listener with `options` offers shared memory to its clients
// (and so says so in what it publishes): kSharedMemory on a duplex
// listener.
bool OffersSharedMemory(const ListenerOptions& options);

// Listener side, on a channel just accepted by a listener that
// OffersSharedMemory: sends the offer within `timeout`. Returns the
// channel to hand out (which starts on the pipe and moves to the rings
// once the client took them); `pipe` itself if the memory could not be
// created. An error means that this client is to be dropped (it went
// away).
absl::StatusOr<std::unique_ptr<ChannelImpl>> OfferSharedMemory(
    std::unique_ptr<ChannelImpl> pipe, const ListenerOptions& options,
    absl::Duration timeout);

// What Channel::Connect hands out for `pipe`: `pipe` itself unless the
// listener makes offers; then a channel that takes the offer (if `allow`)
// on the first call that finds it (a read waits for it, as it would for
// data; other calls only look whether it came), so that everything works
// before the listener accepts as it does on a pipe.
std::unique_ptr<ChannelImpl> ClientChannel(std::unique_ptr<ChannelImpl> pipe,
                                           bool allow, absl::Duration spin);

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_SHM_CHANNEL_H_
