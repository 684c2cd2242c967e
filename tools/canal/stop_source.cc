// SPDX-License-Identifier: Apache-2.0
#include "tools/canal/stop_source.h"

#include <algorithm>
#include <utility>

namespace canal_cli {

void StopSource::Stop() {
  absl::MutexLock lock(&mu_);
  if (stopped_) return;
  stopped_ = true;
  // Callbacks run under the lock, so that Unregister waits for them.
  for (auto& [id, fn] : callbacks_) fn();
  callbacks_.clear();
}

bool StopSource::stopped() const {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

int StopSource::Register(std::function<void()> on_stop) {
  absl::MutexLock lock(&mu_);
  if (stopped_) {
    on_stop();
    return -1;
  }
  const int id = next_id_++;
  callbacks_.emplace_back(id, std::move(on_stop));
  return id;
}

void StopSource::Unregister(int id) {
  absl::MutexLock lock(&mu_);
  callbacks_.erase(
      std::remove_if(callbacks_.begin(), callbacks_.end(),
                     [id](const auto& entry) { return entry.first == id; }),
      callbacks_.end());
}

StopScope::StopScope(StopSource* stop, std::function<void()> on_stop)
    : stop_(stop) {
  if (stop_ != nullptr) id_ = stop_->Register(std::move(on_stop));
}

StopScope::~StopScope() {
  if (stop_ != nullptr) stop_->Unregister(id_);
}

}  // namespace canal_cli
