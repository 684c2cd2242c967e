// SPDX-License-Identifier: Apache-2.0
// canal_test_child: the child process of canal's process tests. The first
// argument selects what it does:
//   echo                 copy stdin to stdout until end of file
//   write N              write N pattern bytes to stdout and, at the same
//                        time, N other pattern bytes to stderr
//   exit CODE            exit with CODE
//   argv ARGS...         print each argument after "argv" as hex, one a line
//                        (Windows: as split by CommandLineToArgvW)
//   fds                  POSIX: print the open descriptors, space-separated
//   handles H...         Windows: for each decimal handle value, print
//                        "<value>:valid" or "<value>:invalid"
//   extra-write VAR TEXT write TEXT to the pipe end named by $VAR, close it
//   extra-read VAR       copy the pipe end named by $VAR to stdout
//   wait-eof             read stdin until end of file, print "eof <bytes>"
//   env NAME             print $NAME, or "<unset>"
//   cwd                  print the working directory
//   both                 print "out" to stdout, then "err" to stderr
//   hang                 sleep until killed
//   msg-write NAME N     connect to the message-mode listener NAME, print
//                        "writing", then send one N-byte message
//                        (tests/reliability/faults/: killed mid-write)
//   listen NAME          create a message-mode listener on NAME, print
//                        "ready" (or the error), then sleep until killed
//   handles-use NAME     connect to the message-mode listener NAME, read
//                        one message with three handles (a file, a pipe's
//                        write end, a message-mode channel), write
//                        "pipe:<file's contents>" to the pipe end, send
//                        "channel:hello" through the channel handle with
//                        native I/O, then reply "done" on NAME
//   handles-hold NAME    connect to NAME, print "ready", sleep until killed
// Exit code 100 for a usage error, 101 for an I/O error.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "canal/canal.h"
#include "canal/pipe.h"

#ifdef _WIN32
#include <windows.h>
#include <shellapi.h>
#else
#include <fcntl.h>
#include <unistd.h>
#endif

namespace {

#ifdef _WIN32
HANDLE StdHandle(int which) {
  return GetStdHandle(which == 0   ? STD_INPUT_HANDLE
                      : which == 1 ? STD_OUTPUT_HANDLE
                                   : STD_ERROR_HANDLE);
}
#endif

// Reads from stdin; 0 at end of file, -1 on error.
long ReadStdin(char* buf, size_t size) {
#ifdef _WIN32
  DWORD got = 0;
  if (!ReadFile(StdHandle(0), buf, static_cast<DWORD>(size), &got, nullptr)) {
    const DWORD error = GetLastError();
    return error == ERROR_BROKEN_PIPE || error == ERROR_HANDLE_EOF ? 0 : -1;
  }
  return static_cast<long>(got);
#else
  while (true) {
    const ssize_t n = ::read(0, buf, size);
    if (n >= 0 || errno != EINTR) return static_cast<long>(n);
  }
#endif
}

// Writes everything to stdout (1) or stderr (2).
bool WriteAll(int which, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
#ifdef _WIN32
    DWORD n = 0;
    if (!WriteFile(StdHandle(which), data.data() + done,
                   static_cast<DWORD>(data.size() - done), &n, nullptr)) {
      return false;
    }
#else
    const ssize_t n = ::write(which, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
#endif
    done += static_cast<size_t>(n);
  }
  return true;
}

// The same pattern as StreamPattern in tests/test_util.h.
std::string StreamPattern(size_t size, int stream) {
  std::string out(size, '\0');
  for (size_t i = 0; i < size; ++i) {
    out[i] = static_cast<char>((i * 131 + i / 251 + stream * 17) & 0xff);
  }
  return out;
}

std::string Hex(const std::string& s) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::vector<std::string> Arguments(int argc, char** argv) {
  std::vector<std::string> args;
#ifdef _WIN32
  // The C runtime's argv is in the ANSI code page; take the UTF-16 command
  // line as CommandLineToArgvW splits it.
  (void)argc;
  (void)argv;
  int count = 0;
  wchar_t** wide = CommandLineToArgvW(GetCommandLineW(), &count);
  for (int i = 0; i < count; ++i) {
    const int len = WideCharToMultiByte(CP_UTF8, 0, wide[i], -1, nullptr, 0,
                                        nullptr, nullptr);
    std::string s(len > 0 ? len - 1 : 0, '\0');
    if (len > 1) {
      WideCharToMultiByte(CP_UTF8, 0, wide[i], -1, &s[0], len, nullptr,
                          nullptr);
    }
    args.push_back(s);
  }
  LocalFree(wide);
#else
  for (int i = 0; i < argc; ++i) args.emplace_back(argv[i]);
#endif
  return args;
}

absl::StatusOr<canal::Channel> ExtraChannel(const std::string& var,
                                            canal::PipeEnd end) {
  const char* value = std::getenv(var.c_str());
  uint64_t number = 0;
  if (value == nullptr || !absl::SimpleAtoi(value, &number)) {
    return absl::NotFoundError(absl::StrCat("$", var, " is not set"));
  }
#ifdef _WIN32
  return canal::AdoptPipeEnd(
      reinterpret_cast<HANDLE>(static_cast<uintptr_t>(number)), end);
#else
  return canal::AdoptPipeEnd(static_cast<int>(number), end);
#endif
}

int Usage() {
  WriteAll(2, "canal_test_child: bad arguments\n");
  return 100;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args = Arguments(argc, argv);
  if (args.size() < 2) return Usage();
  const std::string& mode = args[1];
  char buf[65536];

  if (mode == "echo") {
    while (true) {
      const long n = ReadStdin(buf, sizeof(buf));
      if (n < 0) return 101;
      if (n == 0) return 0;
      if (!WriteAll(1, std::string(buf, static_cast<size_t>(n)))) return 101;
    }
  }
  if (mode == "write" && args.size() == 3) {
    size_t n = 0;
    if (!absl::SimpleAtoi(args[2], &n)) return Usage();
    bool err_ok = true;
    std::thread err([&] { err_ok = WriteAll(2, StreamPattern(n, 2)); });
    const bool out_ok = WriteAll(1, StreamPattern(n, 1));
    err.join();
    return out_ok && err_ok ? 0 : 101;
  }
  if (mode == "exit" && args.size() == 3) {
    int code = 0;
    if (!absl::SimpleAtoi(args[2], &code)) return Usage();
    return code;
  }
  if (mode == "argv") {
    std::string out;
    for (size_t i = 2; i < args.size(); ++i) {
      absl::StrAppend(&out, Hex(args[i]), "\n");
    }
    return WriteAll(1, out) ? 0 : 101;
  }
#ifndef _WIN32
  if (mode == "fds") {
    std::string out;
    for (int fd = 0; fd < 4096; ++fd) {
      if (::fcntl(fd, F_GETFD) >= 0) {
        absl::StrAppend(&out, out.empty() ? "" : " ", fd);
      }
    }
    return WriteAll(1, out + "\n") ? 0 : 101;
  }
#else
  if (mode == "handles") {
    std::string out;
    for (size_t i = 2; i < args.size(); ++i) {
      uint64_t value = 0;
      if (!absl::SimpleAtoi(args[i], &value)) return Usage();
      DWORD flags = 0;
      const bool valid = GetHandleInformation(
          reinterpret_cast<HANDLE>(static_cast<uintptr_t>(value)), &flags);
      absl::StrAppend(&out, args[i], valid ? ":valid\n" : ":invalid\n");
    }
    return WriteAll(1, out) ? 0 : 101;
  }
#endif
  if (mode == "extra-write" && args.size() == 4) {
    absl::StatusOr<canal::Channel> ch =
        ExtraChannel(args[2], canal::PipeEnd::kWrite);
    if (!ch.ok()) {
      WriteAll(2, ch.status().ToString() + "\n");
      return 101;
    }
    return ch->Write(args[3]).ok() ? 0 : 101;
  }
  if (mode == "extra-read" && args.size() == 3) {
    absl::StatusOr<canal::Channel> ch =
        ExtraChannel(args[2], canal::PipeEnd::kRead);
    if (!ch.ok()) {
      WriteAll(2, ch.status().ToString() + "\n");
      return 101;
    }
    while (true) {
      absl::StatusOr<canal::ReadResult> r = ch->Read(absl::MakeSpan(buf));
      if (!r.ok()) {
        return r.status().code() == absl::StatusCode::kOutOfRange ? 0 : 101;
      }
      if (!WriteAll(1, std::string(buf, r->size))) return 101;
    }
  }
  if (mode == "wait-eof") {
    size_t total = 0;
    while (true) {
      const long n = ReadStdin(buf, sizeof(buf));
      if (n < 0) return 101;
      if (n == 0) break;
      total += static_cast<size_t>(n);
    }
    return WriteAll(1, absl::StrCat("eof ", total, "\n")) ? 0 : 101;
  }
  if (mode == "env" && args.size() == 3) {
    const char* value = std::getenv(args[2].c_str());
    return WriteAll(1, value != nullptr ? std::string(value) : "<unset>") ? 0
                                                                          : 101;
  }
  if (mode == "cwd") {
#ifdef _WIN32
    wchar_t wbuf[MAX_PATH * 4];
    const DWORD n = GetCurrentDirectoryW(MAX_PATH * 4, wbuf);
    const int len = WideCharToMultiByte(CP_UTF8, 0, wbuf, static_cast<int>(n),
                                        buf, sizeof(buf), nullptr, nullptr);
    return WriteAll(1, std::string(buf, len > 0 ? len : 0)) ? 0 : 101;
#else
    if (::getcwd(buf, sizeof(buf)) == nullptr) return 101;
    return WriteAll(1, buf) ? 0 : 101;
#endif
  }
  if (mode == "both") {
    return WriteAll(1, "out\n") && WriteAll(2, "err\n") ? 0 : 101;
  }
  if (mode == "msg-write" && args.size() == 4) {
    size_t n = 0;
    if (!absl::SimpleAtoi(args[3], &n)) return Usage();
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(args[2]);
    if (!ch.ok()) {
      WriteAll(1, "error " + ch.status().ToString() + "\n");
      return 101;
    }
    const std::string message = StreamPattern(n, 1);
    if (!WriteAll(1, "writing\n")) return 101;
    return ch->WriteMessage(message).ok() ? 0 : 101;
  }
  if (mode == "listen" && args.size() == 3) {
    canal::ListenerOptions options;
    options.mode = canal::PipeMode::kMessage;
    absl::StatusOr<canal::Listener> listener =
        canal::Listener::Create(args[2], options);
    if (!listener.ok()) {
      WriteAll(1, "error " + listener.status().ToString() + "\n");
      return 101;
    }
    if (!WriteAll(1, "ready\n")) return 101;
    while (true) absl::SleepFor(absl::Seconds(1));
  }
  if (mode == "handles-use" && args.size() == 3) {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(args[2]);
    if (!ch.ok()) {
      WriteAll(1, "error " + ch.status().ToString() + "\n");
      return 101;
    }
    absl::StatusOr<canal::MessageWithHandles> m = ch->ReadMessageWithHandles();
    if (!m.ok() || m->handles.size() != 3) {
      WriteAll(1, "error " +
                      (m.ok() ? std::string("handle count")
                              : m.status().ToString()) +
                      "\n");
      return 101;
    }
    std::string contents;
    char buf[4096];
    while (true) {
#ifdef _WIN32
      DWORD got = 0;
      if (!ReadFile(m->handles[0].get(), buf, sizeof(buf), &got, nullptr)) {
        return 101;
      }
      const long n = static_cast<long>(got);
#else
      const long n =
          static_cast<long>(::read(m->handles[0].get(), buf, sizeof(buf)));
#endif
      if (n < 0) return 101;
      if (n == 0) break;
      contents.append(buf, static_cast<size_t>(n));
    }
    absl::StatusOr<canal::Channel> pipe_end =
        canal::AdoptPipeEnd(m->handles[1].release(), canal::PipeEnd::kWrite);
    if (!pipe_end.ok() || !pipe_end->Write("pipe:" + contents).ok()) {
      return 101;
    }
    pipe_end->Close();
    const std::string hello = "channel:hello";
#ifdef _WIN32
    DWORD wrote = 0;
    if (!WriteFile(m->handles[2].get(), hello.data(),
                   static_cast<DWORD>(hello.size()), &wrote, nullptr) ||
        wrote != hello.size()) {
      return 101;
    }
#else
    std::string frame = "CNL1";
    for (int i = 0; i < 4; ++i) {
      frame.push_back(static_cast<char>((hello.size() >> (8 * i)) & 0xff));
    }
    frame += hello;
    if (::write(m->handles[2].get(), frame.data(), frame.size()) !=
        static_cast<ssize_t>(frame.size())) {
      return 101;
    }
#endif
    return ch->WriteMessage("done").ok() ? 0 : 101;
  }
  if (mode == "handles-hold" && args.size() == 3) {
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(args[2]);
    if (!ch.ok()) {
      WriteAll(1, "error " + ch.status().ToString() + "\n");
      return 101;
    }
    if (!WriteAll(1, "ready\n")) return 101;
    while (true) absl::SleepFor(absl::Seconds(1));
  }
  if (mode == "shm-hold" && args.size() == 3) {
    // Takes the listener's shared memory (its first read finds the offer),
    // answers over it, then waits to be killed.
    absl::StatusOr<canal::Channel> ch = canal::Channel::Connect(args[2]);
    if (!ch.ok()) {
      WriteAll(1, "error " + ch.status().ToString() + "\n");
      return 101;
    }
    absl::StatusOr<std::string> go = ch->ReadMessage();
    if (!go.ok() || !ch->WriteMessage(*go).ok()) return 101;
    if (!WriteAll(1, "ready\n")) return 101;
    while (true) absl::SleepFor(absl::Seconds(1));
  }
  if (mode == "hang") {
    while (true) absl::SleepFor(absl::Seconds(1));
  }
  return Usage();
}
