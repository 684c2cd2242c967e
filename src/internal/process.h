// The contract between the shared half of canal::Subprocess
// (src/subprocess.cc: argument checks, Run) and a backend
// (src/posix/subprocess.cc, src/win32/subprocess.cc).

#ifndef CANAL_SRC_INTERNAL_PROCESS_H_
#define CANAL_SRC_INTERNAL_PROCESS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "canal/channel.h"
#include "canal/subprocess.h"

namespace canal {
namespace internal {

// A started child. The destructor applies `kill_on_destroy` and never
// leaves a zombie (see Subprocess::~Subprocess).
class ProcessImpl {
 public:
  virtual ~ProcessImpl() = default;
  virtual int64_t pid() const = 0;
  virtual absl::StatusOr<ExitStatus> Wait(absl::Duration timeout) = 0;
  virtual absl::Status Kill() = 0;
};

struct StartedProcess {
  std::unique_ptr<ProcessImpl> process;
  Channel stdin_channel;   // Valid for StdioMode::kPipe only.
  Channel stdout_channel;
  Channel stderr_channel;
};

// Starts the child. `argv` and `options` have been checked by the front end
// (non-empty argv without NUL bytes, valid stdio modes, extra channel open,
// posix_fd >= 3).
absl::StatusOr<StartedProcess> BackendStartProcess(
    const std::vector<std::string>& argv, const SubprocessOptions& options);

}  // namespace internal
}  // namespace canal

#endif  // CANAL_SRC_INTERNAL_PROCESS_H_
