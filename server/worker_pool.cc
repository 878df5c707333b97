#include "server/worker_pool.h"

#include <chrono>

#include "absl/time/clock.h"

namespace vgpu::server {

WorkerPool::WorkerPool(size_t threads) {
  for (size_t i = 0; i < threads; ++i)
    threads_.emplace_back([this] { Loop(); });
}

WorkerPool::~WorkerPool() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  mu_.NotifyAll();
  for (std::thread& thread : threads_) thread.join();
}

void WorkerPool::PostAt(absl::Time when, std::function<void()> task) {
  {
    MutexLock lock(&mu_);
    tasks_.push(Task{when, next_order_++, std::move(task)});
  }
  mu_.NotifyAll();
}

void WorkerPool::Loop() {
  mu_.Lock();
  while (true) {
    if (tasks_.empty()) {
      if (stopping_) break;
      mu_.WaitOnce();  // an idle pool sleeps until there is work
      continue;
    }
    absl::Time now = absl::Now();
    const Task& next = tasks_.top();
    if (next.when > now && !stopping_) {
      mu_.WaitOnce(std::chrono::steady_clock::now() +
                   absl::ToChronoNanoseconds(next.when - now));
      continue;
    }
    std::function<void()> run = std::move(const_cast<Task&>(next).run);
    tasks_.pop();
    mu_.Unlock();
    run();
    mu_.Lock();
  }
  mu_.Unlock();
}

}  // namespace vgpu::server
