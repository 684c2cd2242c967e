// SPDX-License-Identifier: Apache-2.0
// Helpers of the Win32 attack tests: a second process (win32_attack_child,
// or canal_test_child) that holds or plants kernel objects while a test
// runs.

#ifndef CANAL_TESTS_WIN32_ATTACK_SECOND_PROCESS_H_
#define CANAL_TESTS_WIN32_ATTACK_SECOND_PROCESS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "canal/canal.h"
#include "canal/subprocess.h"

namespace canal_win32_test {

// A child process that has printed its first line. Destroying it kills it.
class Child {
 public:
  // Starts `program` (a path) with `args` and reads its first output line.
  // Fails unless that line is `ready_line`; the line (or the error) is in
  // the message.
  static absl::StatusOr<std::unique_ptr<Child>> Start(
      const std::string& program, const std::vector<std::string>& args,
      absl::string_view ready_line = "ready");

  // Closes the child's standard input (win32_attack_child then releases
  // what it holds and exits) and waits for it to exit.
  absl::Status Release();
  // Ends the child as a crash would (TerminateProcess) and waits for it.
  absl::Status Kill();
  int64_t pid() const { return process_.pid(); }

 private:
  explicit Child(canal::Subprocess process) : process_(std::move(process)) {}
  canal::Subprocess process_;
};

// $CANAL_ATTACK_CHILD (win32_attack_child.exe) and $CANAL_TEST_CHILD
// (tests/helper/canal_test_child.exe), set by meson; "" if unset.
std::string AttackChildPath();
std::string TestChildPath();

}  // namespace canal_win32_test

#endif  // CANAL_TESTS_WIN32_ATTACK_SECOND_PROCESS_H_
