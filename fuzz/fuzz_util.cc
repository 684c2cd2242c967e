// SPDX-License-Identifier: Apache-2.0
#include "fuzz/fuzz_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

namespace canal_fuzz {

const std::string& RuntimeDir() {
  static const std::string* dir = [] {
    signal(SIGPIPE, SIG_IGN);
    const char* tmp = getenv("TMPDIR");
    std::string tmpl =
        std::string(tmp && *tmp ? tmp : "/tmp") + "/canal-fuzz-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      perror("mkdtemp");
      abort();
    }
    setenv("CANAL_RUNTIME_DIR", tmpl.c_str(), 1);
    return new std::string(tmpl);
  }();
  return *dir;
}

void Fail(absl::string_view what, const absl::Status& status) {
  fprintf(stderr, "canal fuzz failure: %.*s: %s\n",
          static_cast<int>(what.size()), what.data(),
          status.ToString().c_str());
  abort();
}

void Fail(absl::string_view what) {
  fprintf(stderr, "canal fuzz failure: %.*s\n", static_cast<int>(what.size()),
          what.data());
  abort();
}

int RawConnect(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return -1;
  memcpy(addr.sun_path, path.data(), path.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace canal_fuzz
