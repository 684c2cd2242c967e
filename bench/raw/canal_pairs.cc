// SPDX-License-Identifier: Apache-2.0
#include "bench/raw/canal_pairs.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "canal/canal.h"

namespace canal_raw {
namespace {

// canal::Channel as a StreamEnd.
class ChannelEnd : public StreamEnd {
 public:
  explicit ChannelEnd(canal::Channel channel) : channel_(std::move(channel)) {}

  absl::Status Send(absl::string_view data) override {
    return channel_.Write(data);
  }

  absl::StatusOr<size_t> Receive(absl::Span<char> buffer) override {
    absl::StatusOr<canal::ReadResult> r = channel_.Read(buffer);
    if (!r.ok()) {
      if (absl::IsOutOfRange(r.status())) return 0;
      return r.status();
    }
    if (channel_.mode() == canal::PipeMode::kMessage &&
        (r->more || r->size != buffer.size())) {
      return absl::DataLossError("bench: unexpected message size");
    }
    return r->size;
  }

  void Close() override { channel_.Close(); }

  std::string TransportName() const override {
    return channel_.transport() == canal::Transport::kSharedMemory
               ? "shared memory"
               : "pipe";
  }

  // One exchange each way between this end (the client) and `server`: a
  // shared-memory channel moves each direction to its ring during its
  // first calls, and the benchmarks time only what comes after.
  absl::Status WarmUp(ChannelEnd& server) {
    char byte = 'w';
    absl::Status status = Send(absl::string_view(&byte, 1));
    if (status.ok()) status = ReceiveOne(server, &byte);
    if (status.ok()) status = server.Send(absl::string_view(&byte, 1));
    if (status.ok()) status = ReceiveOne(*this, &byte);
    return status;
  }

 private:
  static absl::Status ReceiveOne(ChannelEnd& end, char* byte) {
    absl::StatusOr<size_t> n = end.Receive(absl::MakeSpan(byte, 1));
    if (!n.ok()) return n.status();
    if (*n != 1) return absl::DataLossError("bench: warm-up message lost");
    return absl::OkStatus();
  }

  canal::Channel channel_;
};

}  // namespace

absl::StatusOr<std::vector<StreamPair>> MakeCanalPairs(
    const PairOptions& options, int count) {
  static std::atomic<int> counter{0};
  absl::BitGen gen;
  const std::string name =
      absl::StrCat("canal-bench-", counter.fetch_add(1), "-",
                   absl::Hex(absl::Uniform<uint64_t>(gen)));
  canal::ListenerOptions listener_options;
  listener_options.mode =
      options.message_mode ? canal::PipeMode::kMessage : canal::PipeMode::kByte;
  listener_options.buffer_size = options.buffer_size;
  listener_options.max_message_size =
      std::max<size_t>(options.max_message_size, 1);
  if (options.shared_memory) {
    listener_options.transport = canal::Transport::kSharedMemory;
  }
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, listener_options);
  if (!listener.ok()) return listener.status();
  std::vector<StreamPair> pairs;
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<canal::Channel> client = canal::Channel::Connect(name);
    if (!client.ok()) return client.status();
    absl::StatusOr<canal::Channel> server = listener->Accept(absl::Seconds(10));
    if (!server.ok()) return server.status();
    auto server_end = std::make_unique<ChannelEnd>(std::move(*server));
    auto client_end = std::make_unique<ChannelEnd>(std::move(*client));
    if (options.shared_memory) {
      absl::Status warm = client_end->WarmUp(*server_end);
      if (!warm.ok()) return warm;
    }
    StreamPair pair;
    pair.server = std::move(server_end);
    pair.client = std::move(client_end);
    pairs.push_back(std::move(pair));
  }
  return pairs;  // Accepted channels outlive the listener.
}

}  // namespace canal_raw
