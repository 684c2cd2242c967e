// POSIX: the live listeners of a directory, from their lock files.
//
// A listener holds flock(LOCK_EX) on "<socket>.canal~lock" for its whole
// life (src/posix/meta.h). A shared lock that succeeds therefore means the
// listener is gone; it is dropped again at once. This is the same test
// canal's own clients make before they connect.

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tools/canal/accounts.h"
#include "tools/canal/list.h"

namespace canal_cli {
namespace {

constexpr absl::string_view kLockSuffix = ".canal~lock";
// Far more than a version-1 line needs; bounds what is read.
constexpr size_t kMaxLine = 4096;

// The runtime directory as canal picks it (include/canal/canal.h).
std::string RuntimeDir() {
  auto env = [](const char* name) -> const char* {
    const char* value = std::getenv(name);
    return value != nullptr && value[0] != '\0' ? value : nullptr;
  };
  if (const char* dir = env("CANAL_RUNTIME_DIR")) return dir;
  if (const char* xdg = env("XDG_RUNTIME_DIR")) {
    std::string base = xdg;
    if (!absl::EndsWith(base, "/")) base += "/";
    return base + "canal";
  }
  return absl::StrCat("/tmp/canal-", static_cast<unsigned long>(::geteuid()));
}

struct Closer {
  void operator()(DIR* d) const { ::closedir(d); }
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

enum class Probe { kLive, kDead, kUnreadable };

// Looks at one lock file; fills `pipe` for a live listener.
Probe ProbeLock(const std::string& lock_path, ListedPipe* pipe) {
  Fd fd(::open(lock_path.c_str(),
               O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (fd.get() < 0) {
    return errno == EACCES ? Probe::kUnreadable : Probe::kDead;
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return Probe::kDead;
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) {
    ::flock(fd.get(), LOCK_UN);
    return Probe::kDead;
  }
  if (errno != EWOULDBLOCK && errno != EAGAIN) return Probe::kDead;
  std::string line(kMaxLine, '\0');
  size_t got = 0;
  while (got < line.size()) {
    const ssize_t n = ::pread(fd.get(), &line[got], line.size() - got,
                              static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  line.resize(got);
  // A listener that is still writing its line is live all the same.
  ParseLockLine(line, pipe);
  pipe->uid = static_cast<int64_t>(st.st_uid);
  pipe->user = UserNameOf(st.st_uid);
  return Probe::kLive;
}

}  // namespace

absl::StatusOr<ListResult> FindListeners(const std::string& dir_flag) {
  const std::string dir = dir_flag.empty() ? RuntimeDir() : dir_flag;
  std::unique_ptr<DIR, Closer> d(::opendir(dir.c_str()));
  ListResult result;
  if (d == nullptr) {
    const int err = errno;
    if (err == ENOENT && dir_flag.empty()) return result;  // nothing yet
    return absl::ErrnoToStatus(
        err, absl::StrCat("canal list: cannot read the directory \"", dir,
                          "\""));
  }
  const std::string prefix = absl::EndsWith(dir, "/") ? dir : dir + "/";
  while (dirent* entry = ::readdir(d.get())) {
    const absl::string_view file = entry->d_name;
    if (!absl::EndsWith(file, kLockSuffix) || file.size() == kLockSuffix.size()) {
      continue;
    }
    ListedPipe pipe;
    pipe.name = std::string(file.substr(0, file.size() - kLockSuffix.size()));
    pipe.path = prefix + pipe.name;
    switch (ProbeLock(prefix + std::string(file), &pipe)) {
      case Probe::kLive:
        result.pipes.push_back(std::move(pipe));
        break;
      case Probe::kUnreadable:
        ++result.unreadable;
        break;
      case Probe::kDead:
        break;
    }
  }
  std::sort(result.pipes.begin(), result.pipes.end(),
            [](const ListedPipe& a, const ListedPipe& b) {
              return a.name < b.name;
            });
  return result;
}

}  // namespace canal_cli
