// SPDX-License-Identifier: Apache-2.0
// Subprocess: exit codes, Kill, redirection modes, EOF on stdin, argv round
// trips, environment, working directory, the extra channel, and no leaked
// descriptors/handles. Runs on both backends with tests/helper's child.

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "canal/pipe.h"
#include "canal/subprocess.h"
#include "gtest/gtest.h"
#include "test_util.h"

#ifdef _WIN32
#include <windows.h>
#else
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#endif

namespace {

using canal_test::ChildArgv;
using canal_test::ChildPath;

canal::SubprocessOptions Piped() {
  canal::SubprocessOptions options;
  options.stdin_mode = canal::StdioMode::kPipe;
  options.stdout_mode = canal::StdioMode::kPipe;
  options.stderr_mode = canal::StdioMode::kPipe;
  return options;
}

// Reads `channel` until end of stream.
absl::StatusOr<std::string> ReadAll(canal::Channel& channel) {
  std::string out;
  char buf[4096];
  while (true) {
    absl::StatusOr<canal::ReadResult> r =
        channel.Read(absl::MakeSpan(buf), absl::Seconds(30));
    if (!r.ok()) {
      if (r.status().code() == absl::StatusCode::kOutOfRange) return out;
      return r.status();
    }
    out.append(buf, r->size);
  }
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

class SubprocessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(ChildPath().empty()) << "CANAL_TEST_CHILD is not set";
  }
};

TEST_F(SubprocessTest, ExitCodes) {
  for (int code : {0, 1, 3, 42, 255}) {
    absl::StatusOr<canal::Subprocess> child =
        canal::Subprocess::Start(ChildArgv({"exit", absl::StrCat(code)}));
    CANAL_ASSERT_OK(child);
    EXPECT_GT(child->pid(), 0);
    absl::StatusOr<canal::ExitStatus> status = child->Wait(absl::Seconds(30));
    CANAL_ASSERT_OK(status);
    EXPECT_TRUE(status->exited);
    EXPECT_EQ(status->exit_code, code);
    EXPECT_EQ(status->success(), code == 0);
    // Again: the same answer.
    absl::StatusOr<canal::ExitStatus> again = child->Wait(absl::ZeroDuration());
    CANAL_ASSERT_OK(again);
    EXPECT_EQ(again->exit_code, code);
  }
}

TEST_F(SubprocessTest, WaitTimesOutThenKillEndsIt) {
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start(ChildArgv({"hang"}));
  CANAL_ASSERT_OK(child);
  CANAL_EXPECT_CODE(child->Wait(absl::Milliseconds(50)), kDeadlineExceeded);
  CANAL_ASSERT_OK(child->Kill());
  absl::StatusOr<canal::ExitStatus> status = child->Wait(absl::Seconds(30));
  CANAL_ASSERT_OK(status);
  EXPECT_FALSE(status->success());
#ifdef _WIN32
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->exit_code, 1);
#else
  EXPECT_FALSE(status->exited);
  EXPECT_EQ(status->signal, SIGKILL);
#endif
  CANAL_EXPECT_OK(child->Kill());  // Already ended: OK.
}

TEST_F(SubprocessTest, InvalidObject) {
  canal::Subprocess none;
  EXPECT_EQ(none.pid(), 0);
  CANAL_EXPECT_CODE(none.Wait(), kFailedPrecondition);
  CANAL_EXPECT_CODE(none.Kill(), kFailedPrecondition);
  CANAL_EXPECT_CODE(none.stdin_channel().Write("x"), kFailedPrecondition);
}

TEST_F(SubprocessTest, BadArguments) {
  CANAL_EXPECT_CODE(canal::Subprocess::Start({}), kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Subprocess::Start({""}), kInvalidArgument);
  CANAL_EXPECT_CODE(
      canal::Subprocess::Start(ChildArgv({std::string("a\0b", 3)})),
      kInvalidArgument);
  canal::SubprocessOptions options;
  options.stdout_mode = canal::StdioMode::kStdout;
  CANAL_EXPECT_CODE(canal::Subprocess::Start(ChildArgv({"exit", "0"}), options),
                    kInvalidArgument);
}

TEST_F(SubprocessTest, MissingProgramIsNotFound) {
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start({ChildPath() + "-does-not-exist", "exit", "0"});
  CANAL_EXPECT_CODE(child, kNotFound);
}

TEST_F(SubprocessTest, EchoThroughPipes) {
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start(ChildArgv({"echo"}), Piped());
  CANAL_ASSERT_OK(child);
  CANAL_ASSERT_OK(child->stdin_channel().Write("ping\n"));
  absl::StatusOr<std::string> got =
      canal_test::ReadExactly(child->stdout_channel(), 5, absl::Seconds(30));
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "ping\n");
  child->stdin_channel().Close();
  absl::StatusOr<std::string> rest = ReadAll(child->stdout_channel());
  CANAL_ASSERT_OK(rest);
  EXPECT_EQ(*rest, "");
  absl::StatusOr<canal::ExitStatus> status = child->Wait(absl::Seconds(30));
  CANAL_ASSERT_OK(status);
  EXPECT_TRUE(status->success());
}

TEST_F(SubprocessTest, ClosingStdinGivesTheChildEndOfFile) {
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start(ChildArgv({"wait-eof"}), Piped());
  CANAL_ASSERT_OK(child);
  CANAL_ASSERT_OK(child->stdin_channel().Write(std::string(100000, 'z')));
  canal::Channel in = child->TakeStdin();
  EXPECT_FALSE(child->stdin_channel().is_open());
  in.Close();
  absl::StatusOr<std::string> out = ReadAll(child->stdout_channel());
  CANAL_ASSERT_OK(out);
  EXPECT_EQ(*out, "eof 100000\n");
  absl::StatusOr<canal::ExitStatus> status = child->Wait(absl::Seconds(30));
  CANAL_ASSERT_OK(status);
  EXPECT_TRUE(status->success());
}

TEST_F(SubprocessTest, NullStdinIsEndOfFile) {
  canal::SubprocessOptions options;
  options.stdin_mode = canal::StdioMode::kNull;
  options.stdout_mode = canal::StdioMode::kPipe;
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start(ChildArgv({"wait-eof"}), options);
  CANAL_ASSERT_OK(child);
  EXPECT_FALSE(child->stdin_channel().is_open());
  EXPECT_FALSE(child->stderr_channel().is_open());
  absl::StatusOr<std::string> out = ReadAll(child->stdout_channel());
  CANAL_ASSERT_OK(out);
  EXPECT_EQ(*out, "eof 0\n");
  CANAL_ASSERT_OK(child->Wait(absl::Seconds(30)));
}

TEST_F(SubprocessTest, StderrIntoStdout) {
  canal::SubprocessOptions options;
  options.stdout_mode = canal::StdioMode::kPipe;
  options.stderr_mode = canal::StdioMode::kStdout;
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start(ChildArgv({"both"}), options);
  CANAL_ASSERT_OK(child);
  EXPECT_FALSE(child->stderr_channel().is_open());
  absl::StatusOr<std::string> out = ReadAll(child->stdout_channel());
  CANAL_ASSERT_OK(out);
  EXPECT_EQ(*out, "out\nerr\n");
  CANAL_ASSERT_OK(child->Wait(absl::Seconds(30)));
}

TEST_F(SubprocessTest, StderrToNull) {
  canal::SubprocessOptions options;
  options.stdout_mode = canal::StdioMode::kPipe;
  options.stderr_mode = canal::StdioMode::kNull;
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start(ChildArgv({"both"}), options);
  CANAL_ASSERT_OK(child);
  absl::StatusOr<std::string> out = ReadAll(child->stdout_channel());
  CANAL_ASSERT_OK(out);
  EXPECT_EQ(*out, "out\n");
  absl::StatusOr<canal::ExitStatus> status = child->Wait(absl::Seconds(30));
  CANAL_ASSERT_OK(status);
  EXPECT_TRUE(status->success());
}

TEST_F(SubprocessTest, ArgvRoundTrip) {
  const std::vector<std::string> args = {
      "plain",
      "with space",
      "",
      "tab\there",
      "\"quoted\"",
      "a\"b",
      "back\\slash",
      "trailing\\",
      "trailing two\\\\",
      "\\\"",
      "\\\\\"x\\\\",
      "  ",
      "\"",
      "\\",
      "ends with quote\"",
      "new\nline",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
      "*?<>|&^%PATH%",
  };
  std::vector<std::string> argv = {"argv"};
  argv.insert(argv.end(), args.begin(), args.end());
  canal::SubprocessOptions options;
  options.stdout_mode = canal::StdioMode::kPipe;
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start(ChildArgv(argv), options);
  CANAL_ASSERT_OK(child);
  absl::StatusOr<std::string> out = ReadAll(child->stdout_channel());
  CANAL_ASSERT_OK(out);
  std::string want;
  for (const std::string& a : args) absl::StrAppend(&want, Hex(a), "\n");
  EXPECT_EQ(*out, want);
  CANAL_ASSERT_OK(child->Wait(absl::Seconds(30)));
}

TEST_F(SubprocessTest, EnvironmentAdditionsAndReplacement) {
  canal::SubprocessOptions options;
  options.stdout_mode = canal::StdioMode::kPipe;
  options.environment["CANAL_TEST_VALUE"] = "some value = 1";
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start(ChildArgv({"env", "CANAL_TEST_VALUE"}), options);
  CANAL_ASSERT_OK(child);
  absl::StatusOr<std::string> out = ReadAll(child->stdout_channel());
  CANAL_ASSERT_OK(out);
  EXPECT_EQ(*out, "some value = 1");
  CANAL_ASSERT_OK(child->Wait(absl::Seconds(30)));

  // The parent's environment is passed on unless cleared.
  canal::SubprocessOptions inherit;
  inherit.stdout_mode = canal::StdioMode::kPipe;
  child =
      canal::Subprocess::Start(ChildArgv({"env", "CANAL_TEST_CHILD"}), inherit);
  CANAL_ASSERT_OK(child);
  out = ReadAll(child->stdout_channel());
  CANAL_ASSERT_OK(out);
  EXPECT_NE(*out, "<unset>");
  CANAL_ASSERT_OK(child->Wait(absl::Seconds(30)));

  canal::SubprocessOptions cleared = inherit;
  cleared.clear_environment = true;
  cleared.environment["ONLY_THIS"] = "1";
#ifdef _WIN32
  // Windows programs need SystemRoot to start; keep it.
  cleared.environment["SystemRoot"] = "C:\\windows";
#endif
  child =
      canal::Subprocess::Start(ChildArgv({"env", "CANAL_TEST_CHILD"}), cleared);
  CANAL_ASSERT_OK(child);
  out = ReadAll(child->stdout_channel());
  CANAL_ASSERT_OK(out);
  EXPECT_EQ(*out, "<unset>");
  CANAL_ASSERT_OK(child->Wait(absl::Seconds(30)));
}

TEST_F(SubprocessTest, WorkingDirectory) {
#ifdef _WIN32
  const std::string dir = "C:\\windows";
#else
  char tmpl[] = "/tmp/canal-cwd-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  char resolved[PATH_MAX];
  ASSERT_NE(::realpath(tmpl, resolved), nullptr);
  const std::string dir = resolved;
#endif
  canal::SubprocessOptions options;
  options.stdout_mode = canal::StdioMode::kPipe;
  options.working_dir = dir;
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start(ChildArgv({"cwd"}), options);
  CANAL_ASSERT_OK(child);
  absl::StatusOr<std::string> out = ReadAll(child->stdout_channel());
  CANAL_ASSERT_OK(out);
#ifdef _WIN32
  EXPECT_TRUE(absl::EqualsIgnoreCase(*out, dir)) << *out;
#else
  EXPECT_EQ(*out, dir);
#endif
  CANAL_ASSERT_OK(child->Wait(absl::Seconds(30)));
  options.working_dir = dir + "-missing";
  CANAL_EXPECT_CODE(canal::Subprocess::Start(ChildArgv({"cwd"}), options),
                    kNotFound);
#ifndef _WIN32
  ::rmdir(dir.c_str());
#endif
}

TEST_F(SubprocessTest, ExtraChannelChildWrites) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  canal::SubprocessOptions options;
  options.extra.channel = &pipe->write_end;
  options.extra.posix_fd = 7;
  options.extra.env_var = "CANAL_TEST_EXTRA";
  absl::StatusOr<canal::Subprocess> child = canal::Subprocess::Start(
      ChildArgv({"extra-write", "CANAL_TEST_EXTRA", "through the side door"}),
      options);
  CANAL_ASSERT_OK(child);
  pipe->write_end.Close();  // Only the child holds the write end now.
  absl::StatusOr<std::string> got = ReadAll(pipe->read_end);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "through the side door");
  absl::StatusOr<canal::ExitStatus> status = child->Wait(absl::Seconds(30));
  CANAL_ASSERT_OK(status);
  EXPECT_TRUE(status->success());
}

TEST_F(SubprocessTest, ExtraChannelChildReads) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  canal::SubprocessOptions options;
  options.stdout_mode = canal::StdioMode::kPipe;
  options.extra.channel = &pipe->read_end;
  absl::StatusOr<canal::Subprocess> child = canal::Subprocess::Start(
      ChildArgv({"extra-read", "CANAL_EXTRA_HANDLE"}), options);
  CANAL_ASSERT_OK(child);
  pipe->read_end.Close();
  CANAL_ASSERT_OK(pipe->write_end.Write("to the child"));
  pipe->write_end.Close();
  absl::StatusOr<std::string> out = ReadAll(child->stdout_channel());
  CANAL_ASSERT_OK(out);
  EXPECT_EQ(*out, "to the child");
  absl::StatusOr<canal::ExitStatus> status = child->Wait(absl::Seconds(30));
  CANAL_ASSERT_OK(status);
  EXPECT_TRUE(status->success());
}

#ifndef _WIN32
TEST_F(SubprocessTest, NoDescriptorLeaksWhileOtherThreadsCreatePipes) {
  // Another thread keeps creating pipes and starting children; a descriptor
  // of this process that is not close-on-exec must not leak either.
  int leaky[2];
  ASSERT_EQ(::pipe(leaky), 0);  // Deliberately without O_CLOEXEC.
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop.load()) {
      absl::StatusOr<canal::PipePair> p = canal::CreatePipe();
      ASSERT_TRUE(p.ok());
    }
  });
  for (int i = 0; i < 20; ++i) {
    canal::SubprocessOptions options = Piped();
    absl::StatusOr<canal::Subprocess> child =
        canal::Subprocess::Start(ChildArgv({"fds"}), options);
    CANAL_ASSERT_OK(child);
    absl::StatusOr<std::string> out = ReadAll(child->stdout_channel());
    CANAL_ASSERT_OK(out);
    EXPECT_EQ(*out, "0 1 2\n") << "iteration " << i;
    CANAL_ASSERT_OK(child->Wait(absl::Seconds(30)));
  }
  stop.store(true);
  churn.join();
  ::close(leaky[0]);
  ::close(leaky[1]);
}

TEST_F(SubprocessTest, ExtraDescriptorIsTheOnlyExtraOne) {
  absl::StatusOr<canal::PipePair> pipe = canal::CreatePipe();
  CANAL_ASSERT_OK(pipe);
  canal::SubprocessOptions options;
  options.stdin_mode = canal::StdioMode::kNull;
  options.stdout_mode = canal::StdioMode::kPipe;
  options.extra.channel = &pipe->write_end;
  options.extra.posix_fd = 9;
  absl::StatusOr<canal::Subprocess> child =
      canal::Subprocess::Start(ChildArgv({"fds"}), options);
  CANAL_ASSERT_OK(child);
  absl::StatusOr<std::string> out = ReadAll(child->stdout_channel());
  CANAL_ASSERT_OK(out);
  EXPECT_EQ(*out, "0 1 2 9\n");
  CANAL_ASSERT_OK(child->Wait(absl::Seconds(30)));
}

TEST_F(SubprocessTest, DestructorReapsAChildThatExited) {
  int64_t pid = 0;
  {
    absl::StatusOr<canal::Subprocess> child =
        canal::Subprocess::Start(ChildArgv({"wait-eof"}), Piped());
    CANAL_ASSERT_OK(child);
    pid = child->pid();
    child->stdin_channel().Close();
    // Wait for it to finish writing and exit (its stdout reaches EOF).
    CANAL_ASSERT_OK(ReadAll(child->stdout_channel()));
  }
  // Reaped (now, or by the background reaper once it exits): no zombie
  // remains for long. waitpid from here must not find it.
  for (int i = 0; i < 1000; ++i) {
    if (::kill(static_cast<pid_t>(pid), 0) != 0) break;
    absl::SleepFor(absl::Milliseconds(10));  // Bounded poll of another
                                             // thread's progress.
  }
  EXPECT_NE(::kill(static_cast<pid_t>(pid), 0), 0);
}

TEST_F(SubprocessTest, KillOnDestroy) {
  int64_t pid = 0;
  {
    canal::SubprocessOptions options;
    options.kill_on_destroy = true;
    absl::StatusOr<canal::Subprocess> child =
        canal::Subprocess::Start(ChildArgv({"hang"}), options);
    CANAL_ASSERT_OK(child);
    pid = child->pid();
  }
  // Killed and reaped synchronously by the destructor.
  EXPECT_NE(::kill(static_cast<pid_t>(pid), 0), 0);
}
#else
TEST_F(SubprocessTest, OnlyListedHandlesAreInherited) {
  // An inheritable event created by this process is not in the child's
  // handle list and must not reach it; neither must a non-inheritable one.
  SECURITY_ATTRIBUTES sa = {sizeof(sa), nullptr, TRUE};
  HANDLE inheritable = CreateEventW(&sa, TRUE, FALSE, nullptr);
  HANDLE private_handle = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  ASSERT_NE(inheritable, nullptr);
  ASSERT_NE(private_handle, nullptr);
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop.load()) {
      absl::StatusOr<canal::PipePair> p = canal::CreatePipe();
      ASSERT_TRUE(p.ok());
    }
  });
  const std::string inh =
      absl::StrCat(reinterpret_cast<uintptr_t>(inheritable));
  const std::string prv =
      absl::StrCat(reinterpret_cast<uintptr_t>(private_handle));
  std::string result;
  for (int i = 0; i < 5; ++i) {
    canal::SubprocessOptions options = Piped();
    absl::StatusOr<canal::Subprocess> child =
        canal::Subprocess::Start(ChildArgv({"handles", inh, prv}), options);
    CANAL_ASSERT_OK(child);
    absl::StatusOr<std::string> out = ReadAll(child->stdout_channel());
    CANAL_ASSERT_OK(out);
    result = *out;
    CANAL_ASSERT_OK(child->Wait(absl::Seconds(30)));
    EXPECT_EQ(*out, absl::StrCat(inh, ":invalid\n", prv, ":invalid\n"));
  }
  stop.store(true);
  churn.join();
  CloseHandle(inheritable);
  CloseHandle(private_handle);
}
#endif

}  // namespace
