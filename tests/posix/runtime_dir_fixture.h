// SPDX-License-Identifier: Apache-2.0
// The POSIX-only tests' fixture: a fresh runtime dir per test (through
// $CANAL_RUNTIME_DIR), and ScopedEnv for other environment variables.

#ifndef CANAL_TESTS_POSIX_RUNTIME_DIR_FIXTURE_H_
#define CANAL_TESTS_POSIX_RUNTIME_DIR_FIXTURE_H_

#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace canal_test {

// Sets (or, with nullopt, unsets) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = getenv(name)) old_ = std::string(old);
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Each test gets base() = a fresh mkdtemp directory (mode 0700) and
// $CANAL_RUNTIME_DIR = runtime_dir() = base()/rt, which does not exist yet.
class RuntimeDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/canal-t-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << strerror(errno);
    base_ = tmpl;
    runtime_dir_ = base_ + "/rt";
    env_.emplace("CANAL_RUNTIME_DIR", runtime_dir_);
  }
  void TearDown() override {
    env_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(base_, ignored);
  }

  // Creates runtime_dir() with `mode` (exactly, whatever the umask).
  void MakeRuntimeDir(mode_t mode) {
    ASSERT_EQ(mkdir(runtime_dir_.c_str(), 0700), 0) << strerror(errno);
    ASSERT_EQ(chmod(runtime_dir_.c_str(), mode), 0) << strerror(errno);
  }

  const std::string& base() const { return base_; }
  const std::string& runtime_dir() const { return runtime_dir_; }
  std::string PathOf(absl::string_view name) const {
    return runtime_dir_ + "/" + std::string(name);
  }

 private:
  std::string base_;
  std::string runtime_dir_;
  std::optional<ScopedEnv> env_;
};

}  // namespace canal_test

#endif  // CANAL_TESTS_POSIX_RUNTIME_DIR_FIXTURE_H_
