// SPDX-License-Identifier: Apache-2.0
// canal::OwnedHandle: sole owner of a descriptor (POSIX) or HANDLE
// (Windows), and the message type that carries them between processes.
//
//   absl::StatusOr<canal::MessageWithHandles> m =
//       channel.ReadMessageWithHandles(absl::Seconds(1));
//   if (!m.ok()) return m.status();
//   for (canal::OwnedHandle& h : m->handles) Use(h.get());
//   // Every handle still owned is closed when `m` goes away.
//
// See Channel::WriteMessageWithHandles and Channel::ReadMessageWithHandles
// (canal/channel.h) for how handles travel.

#ifndef CANAL_HANDLE_H_
#define CANAL_HANDLE_H_

#include <string>
#include <utility>
#include <vector>

#include "canal/types.h"

namespace canal {

// Move-only owner of a NativeHandle: closes it (close(2) on POSIX,
// CloseHandle on Windows) when destroyed or reset. Closing never fails
// visibly: the handle is gone either way.
class OwnedHandle {
 public:
  // Owns nothing.
  OwnedHandle() = default;
  // Takes ownership of `handle` (kInvalidNativeHandle: owns nothing).
  explicit OwnedHandle(NativeHandle handle) : handle_(handle) {}
  ~OwnedHandle() { reset(); }
  OwnedHandle(OwnedHandle&& other) noexcept : handle_(other.release()) {}
  OwnedHandle& operator=(OwnedHandle&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  OwnedHandle(const OwnedHandle&) = delete;
  OwnedHandle& operator=(const OwnedHandle&) = delete;

  // The handle, still owned (kInvalidNativeHandle if none).
  NativeHandle get() const { return handle_; }
  // Whether a handle is owned.
  bool is_valid() const { return handle_ != kInvalidNativeHandle; }
  // Gives up ownership without closing; returns the handle
  // (kInvalidNativeHandle if none). The caller closes it.
  [[nodiscard]] NativeHandle release() {
    return std::exchange(handle_, kInvalidNativeHandle);
  }
  // Closes the owned handle, if any, and takes `handle` instead.
  void reset(NativeHandle handle = kInvalidNativeHandle);

 private:
  NativeHandle handle_ = kInvalidNativeHandle;
};

// One message and the handles that came with it
// (Channel::ReadMessageWithHandles). The handles are the receiver's own
// (duplicates of the sender's), in the order they were sent.
struct MessageWithHandles {
  std::string data;
  std::vector<OwnedHandle> handles;
};

}  // namespace canal

#endif  // CANAL_HANDLE_H_
