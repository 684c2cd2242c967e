// SPDX-License-Identifier: Apache-2.0
#include "tools/canal/relay.h"

#include <algorithm>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace canal_cli {
namespace {

constexpr size_t kChunk = 64 * 1024;

bool IsMessage(const canal::Channel& channel) {
  return channel.mode() == canal::PipeMode::kMessage;
}

}  // namespace

absl::Status ChannelToLocal(canal::Channel& channel, const WriteFn& write,
                            const RelayOptions& options) {
  const bool message = IsMessage(channel);
  std::vector<char> buffer(kChunk);
  while (true) {
    std::string msg;
    absl::string_view data;
    if (message) {
      absl::StatusOr<std::string> m = channel.ReadMessage();
      if (!m.ok()) {
        return absl::IsOutOfRange(m.status()) ? absl::OkStatus() : m.status();
      }
      msg = *std::move(m);
      data = msg;
    } else {
      absl::StatusOr<canal::ReadResult> r =
          channel.Read(absl::MakeSpan(buffer));
      if (!r.ok()) {
        return absl::IsOutOfRange(r.status()) ? absl::OkStatus() : r.status();
      }
      data = absl::string_view(buffer.data(), r->size);
    }
    if (options.dumper != nullptr) {
      options.dumper->Record(
          {Direction::kReceived, options.client, message, data});
    }
    absl::Status status;
    if (!message) {
      status = write(data);
    } else if (options.format == MessageFormat::kFrames &&
               data.size() > UINT32_MAX) {
      return absl::ResourceExhaustedError(
          absl::StrCat("canal: a message of ", data.size(),
                       " bytes does not fit in a frame (at most 4 GiB - 1)"));
    } else {
      status = write(EncodeMessage(options.format, data));
    }
    if (!status.ok()) return status;
  }
}

absl::Status LocalToChannel(const ReadFn& read, canal::Channel& channel,
                            const RelayOptions& options) {
  const bool message = IsMessage(channel);
  auto send = [&](absl::string_view data) {
    if (options.dumper != nullptr) {
      options.dumper->Record({Direction::kSent, options.client, message, data});
    }
    return channel.Write(data);
  };
  MessageReader reader(options.format);
  std::vector<char> buffer(kChunk);
  while (true) {
    absl::StatusOr<size_t> n =
        read ? read(absl::MakeSpan(buffer)) : absl::StatusOr<size_t>(0);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    const absl::string_view data(buffer.data(), *n);
    absl::Status status = message ? reader.Add(data, send) : send(data);
    if (!status.ok()) return status;
  }
  return message ? reader.Finish(send) : absl::OkStatus();
}

ReadFn ChannelReader(canal::Channel* channel) {
  return [channel](absl::Span<char> buffer) -> absl::StatusOr<size_t> {
    absl::StatusOr<canal::ReadResult> r = channel->Read(buffer);
    if (!r.ok()) {
      if (absl::IsOutOfRange(r.status())) return 0;
      return r.status();
    }
    return r->size;
  };
}

// --- InputPump
// ----------------------------------------------------------------

// Shared with the reading thread, which may outlive the pump.
struct InputPump::State {
  explicit State(ReadFn r) : read(std::move(r)) {}
  const ReadFn read;
  absl::Mutex mu;
  std::string chunk ABSL_GUARDED_BY(mu);   // read ahead, not yet taken
  size_t taken ABSL_GUARDED_BY(mu) = 0;    // bytes of `chunk` handed out
  bool ended ABSL_GUARDED_BY(mu) = false;  // no more input after `chunk`
  absl::Status error ABSL_GUARDED_BY(mu);  // why it ended, if not EOF
  bool interrupted ABSL_GUARDED_BY(mu) = false;
  bool draining ABSL_GUARDED_BY(mu) = false;
  bool shutdown ABSL_GUARDED_BY(mu) = false;
  bool reading ABSL_GUARDED_BY(mu) = false;  // the thread is in `read`
  std::thread thread;

  void Run() {
    std::vector<char> buffer(kChunk);
    while (true) {
      {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(
            +[](State* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
              return s->shutdown || s->taken == s->chunk.size();
            },
            this));
        if (shutdown) return;
        reading = true;
      }
      absl::StatusOr<size_t> n =
          read ? read(absl::MakeSpan(buffer)) : absl::StatusOr<size_t>(0);
      absl::MutexLock lock(&mu);
      reading = false;
      if (!n.ok() || *n == 0) {
        ended = true;
        if (!n.ok()) error = n.status();
        return;
      }
      chunk.assign(buffer.data(), *n);
      taken = 0;
    }
  }
};

InputPump::InputPump(ReadFn read)
    : state_(std::make_shared<State>(std::move(read))) {
  state_->thread = std::thread([state = state_] { state->Run(); });
}

InputPump::~InputPump() {
  bool detach;
  {
    absl::MutexLock lock(&state_->mu);
    state_->shutdown = true;
    detach = state_->reading;
  }
  // A thread blocked reading a terminal cannot be woken; it holds `state_`
  // and returns once its read does.
  if (detach) {
    state_->thread.detach();
  } else {
    state_->thread.join();
  }
}

absl::StatusOr<size_t> InputPump::Read(absl::Span<char> buffer) {
  State* s = state_.get();
  absl::MutexLock lock(&s->mu);
  s->mu.Await(absl::Condition(
      +[](State* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) {
        return s->interrupted || s->draining || s->taken < s->chunk.size() ||
               s->ended;
      },
      s));
  if (s->interrupted || (s->draining && s->taken == s->chunk.size())) {
    return absl::CancelledError("canal: reading input was interrupted");
  }
  if (s->taken < s->chunk.size()) {
    const size_t n = std::min(buffer.size(), s->chunk.size() - s->taken);
    std::copy_n(s->chunk.data() + s->taken, n, buffer.data());
    s->taken += n;
    return n;
  }
  if (!s->error.ok()) return s->error;
  return 0;
}

void InputPump::Interrupt() {
  absl::MutexLock lock(&state_->mu);
  state_->interrupted = true;
}

void InputPump::Drain() {
  absl::MutexLock lock(&state_->mu);
  state_->draining = true;
}

void InputPump::Rearm() {
  absl::MutexLock lock(&state_->mu);
  state_->interrupted = false;
  state_->draining = false;
}

ReadFn InputPump::Reader() {
  return [this](absl::Span<char> buffer) { return Read(buffer); };
}

}  // namespace canal_cli
