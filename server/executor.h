// Time and task scheduling as interfaces, so code that waits and paces
// (viewer scheduling) runs on real threads in the daemon and step by step,
// on a fake clock, in tests.
#pragma once

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace vgpu::server {

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  static const Clock* Get() {
    static const RealClock clock;
    return &clock;
  }
};

// Runs tasks at or after a time, on another thread. Thread-safe.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void PostAt(absl::Time when, std::function<void()> task) = 0;
  void Post(std::function<void()> task) {
    PostAt(absl::InfinitePast(), std::move(task));
  }
};

}  // namespace vgpu::server
