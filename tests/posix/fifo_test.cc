// SPDX-License-Identifier: Apache-2.0
// canal::Fifo on POSIX.

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "canal/fifo.h"
#include "canal/subprocess.h"
#include "gtest/gtest.h"
#include "test_util.h"

namespace {

using canal_test::Background;
using canal_test::kHangGuard;
using canal_test::ReadExactly;

class FifoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/canal-fifo-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/f";
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string dir_;
  std::string path_;
};

absl::StatusOr<std::string> ReadToEnd(canal::Channel& channel) {
  std::string out;
  char buf[256];
  while (true) {
    absl::StatusOr<canal::ReadResult> r =
        channel.Read(absl::MakeSpan(buf), absl::Seconds(10));
    if (!r.ok()) {
      if (r.status().code() == absl::StatusCode::kOutOfRange) return out;
      return r.status();
    }
    out.append(buf, r->size);
  }
}

TEST_F(FifoTest, CreateSetsExactModeBits) {
  const mode_t old = ::umask(077);
  CANAL_ASSERT_OK(canal::Fifo::Create(path_, 0664));
  ::umask(old);
  struct stat st;
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0664u);
}

TEST_F(FifoTest, CreateTwiceIsAlreadyExists) {
  CANAL_ASSERT_OK(canal::Fifo::Create(path_, 0600));
  CANAL_EXPECT_CODE(canal::Fifo::Create(path_, 0600), kAlreadyExists);
  CANAL_EXPECT_CODE(canal::Fifo::Create(path_, 01777), kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Fifo::Create(dir_ + "/no/such/dir", 0600),
                    kNotFound);
}

TEST_F(FifoTest, ALinkOrASocketAtThePathIsNotAFifo) {
  // A link to a real FIFO is not followed: whoever may write the directory
  // could point it anywhere.
  const std::string real = dir_ + "/real";
  CANAL_ASSERT_OK(canal::Fifo::Create(real, 0600));
  ASSERT_EQ(::symlink(real.c_str(), path_.c_str()), 0);
  CANAL_EXPECT_CODE(canal::Fifo::OpenRead(path_), kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Fifo::OpenWrite(path_, absl::Milliseconds(100)),
                    kInvalidArgument);
  ASSERT_EQ(::unlink(path_.c_str()), 0);
  ASSERT_EQ(::unlink(real.c_str()), 0);
  // A socket fails open(2) with ENXIO, which for a FIFO would mean "no
  // reader yet": still InvalidArgument at once, not a wait.
  const int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path_.size(), sizeof(addr.sun_path));
  memcpy(addr.sun_path, path_.data(), path_.size());
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(sock);
  CANAL_EXPECT_CODE(canal::Fifo::OpenRead(path_), kInvalidArgument);
  CANAL_EXPECT_CODE(canal::Fifo::OpenWrite(path_, absl::Seconds(30)),
                    kInvalidArgument);
}

TEST_F(FifoTest, RemoveOnlyRemovesFifos) {
  CANAL_EXPECT_CODE(canal::Fifo::Remove(path_), kNotFound);
  const int fd = ::open(path_.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ::close(fd);
  CANAL_EXPECT_CODE(canal::Fifo::Remove(path_), kFailedPrecondition);
  CANAL_EXPECT_CODE(canal::Fifo::OpenRead(path_), kInvalidArgument);
  ASSERT_EQ(::unlink(path_.c_str()), 0);
  CANAL_ASSERT_OK(canal::Fifo::Create(path_, 0600));
  CANAL_ASSERT_OK(canal::Fifo::Remove(path_));
  struct stat st;
  EXPECT_NE(::lstat(path_.c_str(), &st), 0);
}

TEST_F(FifoTest, OpenWriteWithoutReaderTimesOut) {
  CANAL_ASSERT_OK(canal::Fifo::Create(path_, 0600));
  const absl::Time start = absl::Now();
  CANAL_EXPECT_CODE(canal::Fifo::OpenWrite(path_, absl::Milliseconds(100)),
                    kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
  CANAL_EXPECT_CODE(canal::Fifo::OpenWrite(dir_ + "/missing", absl::Seconds(1)),
                    kNotFound);
}

TEST_F(FifoTest, OpenReadNeverBlocksAndWaitsForAWriter) {
  CANAL_ASSERT_OK(canal::Fifo::Create(path_, 0600));
  absl::StatusOr<canal::Channel> in = canal::Fifo::OpenRead(path_);
  CANAL_ASSERT_OK(in);
  char c;
  // No writer yet: not end of stream, just nothing to read.
  CANAL_EXPECT_CODE(in->Read(absl::MakeSpan(&c, 1), absl::Milliseconds(50)),
                    kDeadlineExceeded);
  CANAL_EXPECT_CODE(in->Write("x"), kFailedPrecondition);
  absl::StatusOr<canal::Channel> out = canal::Fifo::OpenWrite(path_);
  CANAL_ASSERT_OK(out);
  CANAL_EXPECT_CODE(out->Read(absl::MakeSpan(&c, 1)), kFailedPrecondition);
  CANAL_ASSERT_OK(out->Write("hello"));
  out->Close();
  absl::StatusOr<std::string> got = ReadToEnd(*in);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "hello");
}

TEST_F(FifoTest, PlainReaderGetsCanalWrites) {
  CANAL_ASSERT_OK(canal::Fifo::Create(path_, 0600));
  // A plain reader in a thread: open() blocks until the writer comes.
  std::string received;
  Background reader([&] {
    const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) received.append(buf, n);
    ::close(fd);
  });
  absl::StatusOr<canal::Channel> out =
      canal::Fifo::OpenWrite(path_, absl::Seconds(10));
  CANAL_ASSERT_OK(out);
  CANAL_ASSERT_OK(out->Write("line one\nline two\n"));
  out->Close();
  ASSERT_TRUE(reader.Finished(kHangGuard));
  EXPECT_EQ(received, "line one\nline two\n");
}

TEST_F(FifoTest, PlainWriterReachesCanalReader) {
  CANAL_ASSERT_OK(canal::Fifo::Create(path_, 0600));
  absl::StatusOr<canal::Channel> in = canal::Fifo::OpenRead(path_);
  CANAL_ASSERT_OK(in);
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "raw bytes", 9), 9);
  ::close(fd);
  absl::StatusOr<std::string> got = ReadToEnd(*in);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "raw bytes");
}

TEST_F(FifoTest, ShellEchoIntoFifo) {
  CANAL_ASSERT_OK(canal::Fifo::Create(path_, 0600));
  absl::StatusOr<canal::Channel> in = canal::Fifo::OpenRead(path_);
  CANAL_ASSERT_OK(in);
  absl::StatusOr<canal::Subprocess> sh = canal::Subprocess::Start(
      {"/bin/sh", "-c", "echo hello from sh > \"$1\"", "sh", path_});
  CANAL_ASSERT_OK(sh);
  absl::StatusOr<std::string> got = ReadToEnd(*in);
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "hello from sh\n");
  absl::StatusOr<canal::ExitStatus> status = sh->Wait(absl::Seconds(10));
  CANAL_ASSERT_OK(status);
  EXPECT_TRUE(status->success());
}

TEST_F(FifoTest, ShellCatReadsFromFifo) {
  CANAL_ASSERT_OK(canal::Fifo::Create(path_, 0600));
  canal::SubprocessOptions options;
  options.stdout_mode = canal::StdioMode::kPipe;
  absl::StatusOr<canal::Subprocess> sh = canal::Subprocess::Start(
      {"/bin/sh", "-c", "cat < \"$1\"", "sh", path_}, options);
  CANAL_ASSERT_OK(sh);
  absl::StatusOr<canal::Channel> out =
      canal::Fifo::OpenWrite(path_, absl::Seconds(10));
  CANAL_ASSERT_OK(out);
  CANAL_ASSERT_OK(out->Write("via cat\n"));
  out->Close();
  absl::StatusOr<std::string> got = ReadToEnd(sh->stdout_channel());
  CANAL_ASSERT_OK(got);
  EXPECT_EQ(*got, "via cat\n");
  CANAL_ASSERT_OK(sh->Wait(absl::Seconds(10)));
}

TEST_F(FifoTest, WriterGetsUnavailableWhenReaderLeaves) {
  CANAL_ASSERT_OK(canal::Fifo::Create(path_, 0600));
  absl::StatusOr<canal::Channel> in = canal::Fifo::OpenRead(path_);
  CANAL_ASSERT_OK(in);
  absl::StatusOr<canal::Channel> out = canal::Fifo::OpenWrite(path_);
  CANAL_ASSERT_OK(out);
  CANAL_ASSERT_OK(out->Write("x"));
  in->Close();  // Also drops the private write end.
  CANAL_EXPECT_CODE(out->Write("y", absl::Seconds(5)), kUnavailable);
}

TEST_F(FifoTest, CloseWakesABlockedRead) {
  CANAL_ASSERT_OK(canal::Fifo::Create(path_, 0600));
  absl::StatusOr<canal::Channel> in = canal::Fifo::OpenRead(path_);
  CANAL_ASSERT_OK(in);
  absl::Notification started;
  absl::Status status;
  Background reader([&] {
    char buf[8];
    started.Notify();
    status = in->Read(absl::MakeSpan(buf)).status();
  });
  started.WaitForNotification();
  in->Close();
  ASSERT_TRUE(reader.Finished(kHangGuard));
  CANAL_EXPECT_CODE(status, kCancelled);
}

TEST_F(FifoTest, WritersInterleaveWholeSmallWrites) {
  CANAL_ASSERT_OK(canal::Fifo::Create(path_, 0600));
  absl::StatusOr<canal::Channel> in = canal::Fifo::OpenRead(path_);
  CANAL_ASSERT_OK(in);
  absl::StatusOr<canal::Channel> a = canal::Fifo::OpenWrite(path_);
  absl::StatusOr<canal::Channel> b = canal::Fifo::OpenWrite(path_);
  CANAL_ASSERT_OK(a);
  CANAL_ASSERT_OK(b);
  const std::string la(100, 'a');
  const std::string lb(100, 'b');
  std::string got;
  for (int i = 0; i < 50; ++i) {
    CANAL_ASSERT_OK(a->Write(la + "\n"));
    CANAL_ASSERT_OK(b->Write(lb + "\n"));
    absl::StatusOr<std::string> chunk = ReadExactly(*in, 202);
    CANAL_ASSERT_OK(chunk);
    got += *chunk;
  }
  a->Close();
  b->Close();
  for (size_t pos = 0; pos < got.size(); pos += 101) {
    const std::string line = got.substr(pos, 101);
    EXPECT_TRUE(line == la + "\n" || line == lb + "\n");
  }
}

}  // namespace
