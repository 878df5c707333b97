// The signals that stop a vgpu-display program, for a thread that waits for
// them with sigwait while every other thread has them blocked.
//
// SIGINT and SIGTERM stop the program. SIGUSR1 is the program's own
// wake-up: sent with pthread_kill to release the waiting thread at a
// normal exit (a stray SIGUSR1 from outside is ignored by the waiters).
// Block the set in main before any thread starts: threads inherit the mask.
#pragma once

#include <signal.h>

namespace vgpu {

inline constexpr int kWakeSignal = SIGUSR1;

inline sigset_t StopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, kWakeSignal);
  return signals;
}

inline void BlockStopSignals() {
  sigset_t signals = StopSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

}  // namespace vgpu
