// A fixed set of worker threads for slow work off the device thread and
// off gRPC's callback threads: screenshot waits, image encoding.
#pragma once

#include <cstddef>
#include <functional>
#include <queue>
#include <thread>
#include <vector>

#include "absl/time/time.h"

#include "common/mutex.h"
#include "server/executor.h"

namespace vgpu::server {

// Thread-safe.
class WorkerPool final : public Executor {
 public:
  explicit WorkerPool(size_t threads);
  // Runs everything still queued, tasks scheduled for later included (at
  // once: they must tolerate running early), then joins.
  ~WorkerPool() override;
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void PostAt(absl::Time when, std::function<void()> task) override;

 private:
  struct Task {
    absl::Time when;
    uint64_t order;
    std::function<void()> run;
    bool operator>(const Task& other) const {
      return when != other.when ? when > other.when : order > other.order;
    }
  };
  void Loop();

  Mutex mu_;
  std::priority_queue<Task, std::vector<Task>, std::greater<Task>> tasks_
      VGPU_GUARDED_BY(mu_);
  uint64_t next_order_ VGPU_GUARDED_BY(mu_) = 0;
  bool stopping_ VGPU_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace vgpu::server
