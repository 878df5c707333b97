// Fakes for driving a ViewerCore step by step: a clock that moves only when
// told, an executor that runs due tasks only when told, and an output that
// drains only when told. For tests and the request fuzzer; not thread-safe.
#pragma once

#include <map>
#include <utility>
#include <vector>

#include "server/viewer/viewer_core.h"

namespace vgpu::server {

class FakeClock : public Clock {
 public:
  absl::Time Now() const override { return now_; }
  void Advance(absl::Duration d) { now_ += d; }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
};

// Holds tasks until RunDue() runs those whose time has come.
class ManualExecutor : public Executor {
 public:
  explicit ManualExecutor(const FakeClock* clock) : clock_(clock) {}
  void PostAt(absl::Time when, std::function<void()> task) override {
    tasks_.emplace(std::make_pair(when, order_++), std::move(task));
  }
  // Runs every due task, including ones they post that are due too.
  int RunDue() {
    int ran = 0;
    while (!tasks_.empty() && tasks_.begin()->first.first <= clock_->Now()) {
      std::function<void()> task = std::move(tasks_.begin()->second);
      tasks_.erase(tasks_.begin());
      task();
      ++ran;
    }
    return ran;
  }
  size_t queued() const { return tasks_.size(); }
  absl::Time next() const { return tasks_.begin()->first.first; }

 private:
  const FakeClock* clock_;
  std::map<std::pair<absl::Time, uint64_t>, std::function<void()>> tasks_;
  uint64_t order_ = 0;
};

// Keeps what was sent; "writes" it when the test drains it.
class FakeOutput : public ViewerOutput {
 public:
  void Send(vgpu::display::v1::StreamFramesResponse message) override {
    queued_.push_back(std::move(message));
  }
  bool Idle() const override { return queued_.empty(); }
  // Everything queued reaches the viewer; the core hears the output drained.
  std::vector<vgpu::display::v1::StreamFramesResponse> Drain(ViewerCore& core) {
    std::vector<vgpu::display::v1::StreamFramesResponse> out =
        std::move(queued_);
    queued_.clear();
    core.OnDrained();
    return out;
  }
  size_t queued() const { return queued_.size(); }

 private:
  std::vector<vgpu::display::v1::StreamFramesResponse> queued_;
};

}  // namespace vgpu::server
