// An annotated std::mutex. Clang's -Wthread-safety checks VGPU_GUARDED_BY
// members, and TSan sees its happens-before edges (unlike an uninstrumented
// distro absl::Mutex).
#pragma once

#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"

namespace vgpu {

// Thread-safe.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    return mu_.try_lock();
  }

  // Blocks until `done()` is true; the lock is held while `done` runs.
  template <typename Predicate>
  void Await(Predicate done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    cv_.wait(lock, done);
    lock.release();
  }
  // As Await, but gives up at `deadline`. Returns done().
  template <typename Predicate, typename TimePoint>
  bool AwaitUntil(Predicate done, TimePoint deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    bool result = cv_.wait_until(lock, deadline, done);
    lock.release();
    return result;
  }
  // Waits once: until NotifyAll() or `deadline` (or a spurious wake-up).
  // Callers re-check their condition in a loop.
  template <typename TimePoint>
  void WaitOnce(TimePoint deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    cv_.wait_until(lock, deadline);
    lock.release();
  }
  // Waits once, with no deadline: until NotifyAll() (or a spurious wake-up).
  void WaitOnce() ABSL_EXCLUSIVE_LOCKS_REQUIRED(this) {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // Wakes every Await whose predicate may have changed. Call with or without
  // the lock held.
  void NotifyAll() { cv_.notify_all(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

#define VGPU_GUARDED_BY(x) ABSL_GUARDED_BY(x)

}  // namespace vgpu
