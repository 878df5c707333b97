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

namespace vgpu::server {

// Thread-safe.
class WorkerPool {
 public:
  explicit WorkerPool(size_t threads);
  // Runs everything still queued, tasks scheduled for later included (at
  // once: they must tolerate running early), then joins.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Post(std::function<void()> task) {
    PostAt(absl::InfinitePast(), std::move(task));
  }
  void PostAt(absl::Time when, std::function<void()> task);

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
