// SPDX-License-Identifier: Apache-2.0
// How a running command (`serve`, `connect`, `bench`) is asked to stop: from
// a signal watcher or console control handler (signals.h), or from a test.
//
//   canal_cli::StopSource stop;
//   {
//     canal_cli::StopScope scope(&stop, [&listener] { listener.Close(); });
//     listener.Accept();  // returns Cancelled once someone calls stop.Stop()
//   }

#ifndef CANAL_TOOLS_CANAL_STOP_SOURCE_H_
#define CANAL_TOOLS_CANAL_STOP_SOURCE_H_

#include <functional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace canal_cli {

// Commands register what to close while they run; `Stop` closes it, and
// every later registration is closed at once. Thread-safe.
class StopSource {
 public:
  StopSource() = default;
  StopSource(const StopSource&) = delete;
  StopSource& operator=(const StopSource&) = delete;

  // Requests the stop: runs every registered callback once. Idempotent.
  void Stop();

  // Whether `Stop` has been called.
  bool stopped() const;

  // Registers `on_stop` to run when `Stop` is called (at once, on this
  // thread, if it already was). Returns an id for `Unregister`.
  int Register(std::function<void()> on_stop);

  // Forgets a callback registered by `Register`; after it returns the
  // callback is not running and will not run.
  void Unregister(int id);

 private:
  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  int next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::pair<int, std::function<void()>>> callbacks_
      ABSL_GUARDED_BY(mu_);
};

// Registers a callback with a (possibly null) StopSource for one scope.
class StopScope {
 public:
  StopScope(StopSource* stop, std::function<void()> on_stop);
  ~StopScope();
  StopScope(const StopScope&) = delete;
  StopScope& operator=(const StopScope&) = delete;

 private:
  StopSource* stop_;
  int id_ = -1;
};

}  // namespace canal_cli

#endif  // CANAL_TOOLS_CANAL_STOP_SOURCE_H_
