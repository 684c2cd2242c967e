// SPDX-License-Identifier: Apache-2.0
// The POSIX doorbells of the shared-memory transport (src/posix/
// doorbell.cc): a wait on a word in memory shared with another process ends
// when that process wakes it, whichever runs first.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <new>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "src/internal/backend.h"
#include "test_util.h"

namespace canal {
namespace internal {
namespace {

constexpr absl::string_view kName = "doorbell-test-pipe";

TEST(PosixDoorbellTest, WaitOnAChangedWordReturnsAtOnce) {
  auto doorbell = BackendCreateDoorbell(kName);
  ASSERT_TRUE(doorbell.ok()) << doorbell.status();
  std::atomic<uint32_t> word{5};
  // Were the value compared wrongly, this would sleep a day.
  (*doorbell)->Wait(word, 4, absl::Hours(24));
  EXPECT_EQ((*doorbell)->handle(), -1);
}

TEST(PosixDoorbellTest, WaitEndsByItsTimeoutWithoutAWake) {
  auto doorbell = BackendCreateDoorbell(kName);
  ASSERT_TRUE(doorbell.ok()) << doorbell.status();
  std::atomic<uint32_t> word{0};
  (*doorbell)->Wait(word, 0, absl::Milliseconds(1));
  (*doorbell)->Wait(word, 0, absl::ZeroDuration());
  (*doorbell)->Wait(word, 0, -absl::Seconds(1));
  EXPECT_EQ(word.load(), 0u);
}

// A child process sleeps on a word in a shared mapping with a day's
// timeout; the parent changes the word and rings. Only a shared futex (not
// a private one) reaches the child, so a lost wake shows as the hang guard
// killing the child.
TEST(PosixDoorbellTest, WakeReachesAWaiterInAnotherProcess) {
  auto memory = BackendCreateSharedMemory(kName, 4096);
  ASSERT_TRUE(memory.ok()) << memory.status();
  auto* word = new ((*memory)->memory().data()) std::atomic<uint32_t>(0);
  auto* child_ready =
      new ((*memory)->memory().data() + 64) std::atomic<uint32_t>(0);
  auto doorbell = BackendCreateDoorbell(kName);
  ASSERT_TRUE(doorbell.ok()) << doorbell.status();

  for (int round = 0; round < 20; ++round) {
    word->store(0);
    child_ready->store(0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      child_ready->store(1);
      (*doorbell)->Wake(*child_ready);
      while (word->load() == 0) (*doorbell)->Wait(*word, 0, absl::Hours(24));
      _exit(word->load() == 7 ? 0 : 1);
    }
    while (child_ready->load() == 0) {
      (*doorbell)->Wait(*child_ready, 0, canal_test::kHangGuard);
    }
    word->store(7);
    (*doorbell)->Wake(*word);
    int status = 0;
    const absl::Time give_up = absl::Now() + canal_test::kHangGuard;
    pid_t done = 0;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 &&
           absl::Now() < give_up) {
      // The child either has its wake or never will: give it the guard's
      // time, then kill it so that the test fails instead of hanging.
      (*doorbell)->Wait(*child_ready, 1, absl::Milliseconds(10));
    }
    if (done == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      FAIL() << "round " << round << ": the child never saw the wake";
    }
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "round " << round;
  }
}

TEST(PosixDoorbellTest, OpenTakesNoHandleOnPosix) {
  EXPECT_TRUE(BackendOpenDoorbell(kName, -1).ok());
  absl::Status status = BackendOpenDoorbell(kName, 0).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find(kName), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace internal
}  // namespace canal
