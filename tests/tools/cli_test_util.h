// SPDX-License-Identifier: Apache-2.0
// Helpers for the in-process tests of the `canal` tool: captured standard
// streams, scripted standard input, and a `canal serve` running on a
// thread. Public API and the tool's library only, so that every test runs
// on both backends.

#ifndef CANAL_TESTS_TOOLS_CLI_TEST_UTIL_H_
#define CANAL_TESTS_TOOLS_CLI_TEST_UTIL_H_

#include <algorithm>
#include <memory>
#include <ostream>
#include <streambuf>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "test_util.h"
#include "tools/canal/cli.h"

namespace canal_cli_test {

// An output stream that threads may write to while a test waits for text.
class SyncBuf : public std::streambuf {
 public:
  std::string Text() const {
    absl::MutexLock lock(&mu_);
    return text_;
  }

  // Waits until the text contains `what`; false after `timeout` (a hang
  // guard, never a measurement).
  bool WaitFor(absl::string_view what,
               absl::Duration timeout = canal_test::kHangGuard) {
    absl::MutexLock lock(&mu_);
    auto has = [this, what] { return absl::StrContains(text_, what); };
    return mu_.AwaitWithTimeout(absl::Condition(&has), timeout);
  }

 protected:
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) {
      absl::MutexLock lock(&mu_);
      text_.push_back(static_cast<char>(c));
    }
    return traits_type::not_eof(c);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    absl::MutexLock lock(&mu_);
    text_.append(s, static_cast<size_t>(n));
    return n;
  }

 private:
  mutable absl::Mutex mu_;
  std::string text_;
};

// Standard input that a test feeds while the command runs: Push() adds
// bytes, End() ends the input. Reads block in between, like a pipe. Copies
// share one input, and a command's reader holds a copy: a thread that the
// command leaves blocked in a read (see canal_cli::Io) may outlive the test's
// object.
class ScriptedInput {
 public:
  void Push(absl::string_view data) {
    absl::MutexLock lock(&s_->mu);
    s_->data.append(data.data(), data.size());
  }
  void End() {
    absl::MutexLock lock(&s_->mu);
    s_->ended = true;
  }
  absl::StatusOr<size_t> Read(absl::Span<char> buffer) const {
    State* s = s_.get();
    absl::MutexLock lock(&s->mu);
    s->mu.Await(absl::Condition(
        +[](State* st) { return !st->data.empty() || st->ended; }, s));
    const size_t n = std::min(buffer.size(), s->data.size());
    std::copy_n(s->data.data(), n, buffer.data());
    s->data.erase(0, n);
    return n;
  }

 private:
  struct State {
    absl::Mutex mu;
    std::string data;
    bool ended = false;
  };
  std::shared_ptr<State> s_ = std::make_shared<State>();
};

// One command's streams.
struct Capture {
  SyncBuf out_buf;
  SyncBuf err_buf;
  std::ostream out{&out_buf};
  std::ostream err{&err_buf};
  canal_cli::Io io;

  Capture() {
    io.out = &out;
    io.err = &err;
  }
  // Input that is `text`, then end of input.
  void SetInput(std::string text) {
    auto state =
        std::make_shared<std::pair<std::string, size_t>>(std::move(text), 0);
    io.read_input = [state](absl::Span<char> buffer) -> absl::StatusOr<size_t> {
      const size_t n =
          std::min(buffer.size(), state->first.size() - state->second);
      state->first.copy(buffer.data(), n, state->second);
      state->second += n;
      return n;
    };
  }
  // Input fed by `input` (shared, see ScriptedInput).
  void SetInput(ScriptedInput* input) {
    io.read_input = [input = *input](absl::Span<char> buffer) {
      return input.Read(buffer);
    };
  }
  std::string Out() const { return out_buf.Text(); }
  std::string Err() const { return err_buf.Text(); }
};

inline int RunCli(std::vector<std::string> args, Capture& c,
                  canal_cli::StopSource* stop = nullptr) {
  return canal_cli::Run(args, c.io, stop);
}

// A `canal serve` running on a thread until Stop() (Ctrl-C) or until it
// ends by itself. Its input is ended at once unless a test sets one.
class Server {
 public:
  explicit Server(std::vector<std::string> args,
                  ScriptedInput* input = nullptr) {
    if (input != nullptr) {
      capture_.SetInput(input);
    } else {
      capture_.SetInput("");
    }
    thread_ = std::thread(
        [this, args] { code_ = canal_cli::Run(args, capture_.io, &stop_); });
  }
  ~Server() {
    stop_.Stop();
    if (thread_.joinable()) thread_.join();
  }
  // Stops and returns the exit code.
  int Stop() {
    stop_.Stop();
    thread_.join();
    return code_;
  }
  // Waits for the server to end by itself and returns the exit code.
  int Join() {
    thread_.join();
    return code_;
  }
  Capture& capture() { return capture_; }

 private:
  Capture capture_;
  canal_cli::StopSource stop_;
  int code_ = -1;
  std::thread thread_;
};

// Waits (polling, bounded) until `name` has a listener.
inline void AwaitListener(const std::string& name) {
  Capture c;
  ASSERT_EQ(RunCli({"wait", name, "--poll", "--timeout", "10s"}, c), 0)
      << c.Err();
}

inline int LineCount(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// The --exec text that runs tests/helper/canal_test_child with `args`.
inline std::string ChildCommand(absl::string_view args) {
  return "'" + canal_test::ChildPath() + "' " + std::string(args);
}

}  // namespace canal_cli_test

#endif  // CANAL_TESTS_TOOLS_CLI_TEST_UTIL_H_
