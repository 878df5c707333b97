// For tests: polls state that other threads (or processes) change until a
// condition holds, instead of sleeping for a guessed time.
#pragma once

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace vgpu {

// True as soon as `condition` holds (checked every millisecond); false once
// `timeout` has passed without it.
inline bool Eventually(const std::function<bool()>& condition,
                       absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

}  // namespace vgpu
