// SPDX-License-Identifier: Apache-2.0
// Windows: a raw client (plain CreateFileW / WriteFile, not bound by canal's
// client-side limit) writes a 2 MiB message to a listener whose
// max_message_size is 1 MiB. ReadMessage refuses it with ResourceExhausted
// at once (it does not wait for the rest of the message), and the listener
// keeps serving other clients.

#include <windows.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "canal/canal.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace canal_test {
namespace {

std::wstring Wide(const std::string& s) {
  return std::wstring(s.begin(), s.end());
}

TEST(FaultsOversizedWindows, RawWriterOfOversizedMessageIsRefused) {
  const std::string name = UniqueName("oversized-win");
  canal::ListenerOptions options = MessageOptions();
  options.max_message_size = 1024 * 1024;
  absl::StatusOr<canal::Listener> listener =
      canal::Listener::Create(name, options);
  CANAL_ASSERT_OK(listener);

  const std::wstring path = Wide("\\\\.\\pipe\\" + name);
  HANDLE raw = CreateFileW(path.c_str(), GENERIC_READ | GENERIC_WRITE, 0,
                           nullptr, OPEN_EXISTING, 0, nullptr);
  ASSERT_NE(raw, INVALID_HANDLE_VALUE) << GetLastError();
  DWORD mode = PIPE_READMODE_MESSAGE;
  ASSERT_TRUE(SetNamedPipeHandleState(raw, &mode, nullptr, nullptr))
      << GetLastError();
  absl::StatusOr<canal::Channel> ch = listener->Accept(absl::Seconds(10));
  CANAL_ASSERT_OK(ch);

  const std::string big = Pattern(2 * 1024 * 1024, 3);
  {
    // The write blocks until the message is read or the pipe breaks.
    Background writer([&] {
      DWORD written = 0;
      (void)WriteFile(raw, big.data(), static_cast<DWORD>(big.size()), &written,
                      nullptr);
    });
    absl::StatusOr<std::string> m = ch->ReadMessage(absl::Seconds(10));
    CANAL_EXPECT_CODE(m, kResourceExhausted);
    ch->Close();  // breaks the pipe: the raw writer returns
    EXPECT_TRUE(writer.Finished(kHangGuard));
  }
  CloseHandle(raw);

  // Another client is served.
  Background serve([&] {
    absl::StatusOr<canal::Channel> c = listener->Accept(absl::Seconds(10));
    if (!c.ok()) return;
    absl::StatusOr<std::string> req = c->ReadMessage(absl::Seconds(10));
    if (req.ok()) (void)c->WriteMessage("re:" + *req, absl::Seconds(10));
  });
  absl::StatusOr<std::string> reply =
      canal::Call(name, "still there?", absl::Seconds(10));
  CANAL_ASSERT_OK(reply);
  EXPECT_EQ(*reply, "re:still there?");
  EXPECT_TRUE(serve.Finished(kHangGuard));
}

}  // namespace
}  // namespace canal_test
