// Fuzzes canal's message framing (src/internal/framing.h) as a peer would
// exercise it: the input (after one config byte) is written from a raw Unix
// socket client into a message-mode listener, and the accepted channel reads
// it with ReadMessage / Read / Peek until an error. A reference parser of
// the wire format predicts every message and the final status:
//   - each complete frame within max_message_size arrives intact, in order;
//   - a bad magic            -> DataLoss
//   - a frame over the limit -> ResourceExhausted (before any allocation)
//   - a stream ending inside a header or payload -> DataLoss
//   - a clean end between frames -> OutOfRange
// Never a crash, a hang, another status or a torn message.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "canal/canal.h"
#include "fuzz/fuzz_util.h"
#include "src/internal/framing.h"

namespace {

constexpr size_t kMaxMessage = 256;

struct Expected {
  std::vector<std::string> messages;
  absl::StatusCode end = absl::StatusCode::kOutOfRange;
};

Expected Reference(const uint8_t* data, size_t size) {
  Expected e;
  size_t pos = 0;
  while (true) {
    if (pos == size) return e;
    if (size - pos < canal::internal::kFrameHeaderSize) {
      e.end = absl::StatusCode::kDataLoss;
      return e;
    }
    if (memcmp(data + pos, "CNL1", 4) != 0) {
      e.end = absl::StatusCode::kDataLoss;
      return e;
    }
    const uint32_t len = static_cast<uint32_t>(data[pos + 4]) |
                         (static_cast<uint32_t>(data[pos + 5]) << 8) |
                         (static_cast<uint32_t>(data[pos + 6]) << 16) |
                         (static_cast<uint32_t>(data[pos + 7]) << 24);
    if (len > kMaxMessage) {
      e.end = absl::StatusCode::kResourceExhausted;
      return e;
    }
    pos += canal::internal::kFrameHeaderSize;
    if (size - pos < len) {
      e.end = absl::StatusCode::kDataLoss;
      return e;
    }
    e.messages.emplace_back(reinterpret_cast<const char*>(data + pos), len);
    pos += len;
  }
}

canal::Listener& TheListener() {
  static canal::Listener* listener = [] {
    canal_fuzz::RuntimeDir();
    canal::ListenerOptions options;
    options.mode = canal::PipeMode::kMessage;
    options.max_message_size = kMaxMessage;
    auto l = canal::Listener::Create("fuzz-framing", options);
    if (!l.ok()) canal_fuzz::Fail("Listener::Create", l.status());
    return new canal::Listener(*std::move(l));
  }();
  return *listener;
}

void CheckHeaderCodec(const uint8_t* data, size_t size) {
  using canal::internal::kFrameHeaderSize;
  if (size < kFrameHeaderSize) return;
  uint32_t len = 0;
  const auto r = canal::internal::DecodeFrameHeader(data, &len);
  const bool magic = memcmp(data, "CNL1", 4) == 0;
  if ((r == canal::internal::FrameHeaderError::kOk) != magic) {
    canal_fuzz::Fail("DecodeFrameHeader disagrees about the magic");
  }
  if (!magic) return;
  unsigned char again[kFrameHeaderSize];
  canal::internal::EncodeFrameHeader(len, again);
  if (memcmp(again, data, kFrameHeaderSize) != 0) {
    canal_fuzz::Fail("EncodeFrameHeader(DecodeFrameHeader(x)) != x");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t config = data[0];
  ++data;
  --size;
  CheckHeaderCodec(data, size);
  const Expected expected = Reference(data, size);

  canal::Listener& listener = TheListener();
  const int fd = canal_fuzz::RawConnect(canal_fuzz::RuntimeDir() +
                                        "/fuzz-framing");
  if (fd < 0) canal_fuzz::Fail("raw connect");
  // The whole input fits into the socket buffer (libFuzzer's default
  // -max_len is 4096), so write it all, then end the stream.
  if (!canal_fuzz::WriteAll(
          fd, absl::string_view(reinterpret_cast<const char*>(data), size))) {
    canal_fuzz::Fail("raw write");
  }
  shutdown(fd, SHUT_WR);
  auto ch = listener.Accept(absl::Seconds(5));
  if (!ch.ok()) canal_fuzz::Fail("Accept", ch.status());

  const int style = config & 3;
  const size_t chunk = 1 + ((config >> 2) & 15);
  std::vector<std::string> got;
  std::string partial;
  absl::Status end;
  std::vector<char> buf(style == 3 ? kMaxMessage + 8 : chunk);
  for (int i = 0; i < 100000; ++i) {
    if (style == 0) {
      auto m = ch->ReadMessage(absl::Seconds(5));
      if (!m.ok()) {
        end = m.status();
        break;
      }
      got.push_back(*std::move(m));
      continue;
    }
    if (style == 2) {
      auto p = ch->Peek(absl::MakeSpan(buf));
      if (p.ok()) {
        if (p->size > buf.size() || p->size > p->available ||
            p->size > p->message_remaining) {
          canal_fuzz::Fail(absl::StrCat("Peek sizes: ", p->size, " ",
                                        p->available, " ",
                                        p->message_remaining));
        }
      } else if (p.status().code() != absl::StatusCode::kOutOfRange &&
                 p.status().code() != absl::StatusCode::kDataLoss &&
                 p.status().code() != absl::StatusCode::kResourceExhausted) {
        canal_fuzz::Fail("Peek", p.status());
      }
    }
    auto r = ch->Read(absl::MakeSpan(buf), absl::Seconds(5));
    if (!r.ok()) {
      end = r.status();
      break;
    }
    if (r->size > buf.size()) canal_fuzz::Fail("Read size > buffer");
    partial.append(buf.data(), r->size);
    if (!r->more) {
      got.push_back(std::move(partial));
      partial.clear();
    }
  }
  close(fd);
  if (end.ok()) canal_fuzz::Fail("no end of stream after 100000 reads");
  if (end.code() != expected.end) {
    canal_fuzz::Fail(absl::StrCat("end status, expected ",
                                  absl::StatusCodeToString(expected.end)),
                     end);
  }
  if (got != expected.messages) {
    canal_fuzz::Fail(absl::StrCat("messages differ: got ", got.size(),
                                  " expected ", expected.messages.size()));
  }
  // The failure is sticky and the channel stays usable for Close().
  auto again = ch->Read(absl::MakeSpan(buf), absl::ZeroDuration());
  if (again.ok()) canal_fuzz::Fail("Read after the end succeeded");
  ch->Close();
  return 0;
}
