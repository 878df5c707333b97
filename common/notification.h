// A one-shot event on the project's Mutex, so ThreadSanitizer sees the edge
// from Notify to the waiter (Debian's absl::Notification is not
// instrumented: TSan would report races it cannot see are ordered).
#pragma once

#include <chrono>

#include "absl/time/time.h"

#include "common/mutex.h"

namespace vgpu {

// Thread-safe.
class Notification {
 public:
  // Wakes the waiters with the lock held: a waiter may destroy the
  // Notification as soon as it returns, so nothing of it is touched after
  // the unlock.
  void Notify() {
    MutexLock lock(&mu_);
    notified_ = true;
    mu_.NotifyAll();
  }
  bool HasBeenNotified() const {
    MutexLock lock(&mu_);
    return notified_;
  }
  void WaitForNotification() const {
    MutexLock lock(&mu_);
    mu_.Await([this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return notified_; });
  }
  // True if notified before `timeout` passed.
  bool WaitForNotificationWithTimeout(absl::Duration timeout) const {
    MutexLock lock(&mu_);
    return mu_.AwaitUntil(
        [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return notified_; },
        std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout));
  }

 private:
  mutable Mutex mu_;
  bool notified_ VGPU_GUARDED_BY(mu_) = false;
};

}  // namespace vgpu
