#include "device/virtio/mapping_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>

namespace vgpu::virtio {
namespace {

struct Slot {
  std::atomic<uintptr_t> start{0};  // 0: free
  std::atomic<size_t> length{0};
  std::atomic<bool> lost{false};
};

constexpr int kSlots = 64;
constexpr uintptr_t kClaimed = 1;  // a slot being filled in
Slot slots[kSlots];
std::atomic<uint64_t> fault_count{0};
struct sigaction previous_action;
std::once_flag install_once;

void Chain(int signal, siginfo_t* info, void* context) {
  if (previous_action.sa_flags & SA_SIGINFO) {
    if (previous_action.sa_sigaction != nullptr) {
      previous_action.sa_sigaction(signal, info, context);
      return;
    }
  } else if (previous_action.sa_handler != SIG_DFL &&
             previous_action.sa_handler != SIG_IGN) {
    previous_action.sa_handler(signal);
    return;
  }
  // Default action: for a fault, returning re-runs the access, which faults
  // again and takes the process down with the original fault; a signal
  // sent by someone is raised again to the same end.
  struct sigaction fallback = {};
  fallback.sa_handler = SIG_DFL;
  sigaction(SIGBUS, &fallback, nullptr);
  if (info == nullptr ||
      (info->si_code != BUS_ADRERR && info->si_code != BUS_OBJERR)) {
    raise(SIGBUS);
  }
}

// Only async-signal-safe work: atomics and raw system calls (mmap through
// syscall() so no sanitizer interceptor runs inside the handler).
void OnSigbus(int signal, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  // Only a fault of our own access (not a kill -BUS) is absorbed.
  const bool fault = info != nullptr && (info->si_code == BUS_ADRERR ||
                                         info->si_code == BUS_OBJERR);
  const uintptr_t address =
      fault ? reinterpret_cast<uintptr_t>(info->si_addr) : 0;
  for (Slot& slot : slots) {
    if (!fault) break;
    uintptr_t start = slot.start.load(std::memory_order_acquire);
    if (start <= kClaimed || address < start) continue;
    size_t length = slot.length.load(std::memory_order_relaxed);
    if (address - start >= length) continue;
    long mapped =
        syscall(SYS_mmap, start, length, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    if (mapped == static_cast<long>(start)) {
      slot.lost.store(true, std::memory_order_release);
      fault_count.fetch_add(1, std::memory_order_relaxed);
      errno = saved_errno;
      return;
    }
    break;
  }
  Chain(signal, info, context);
  errno = saved_errno;
}

void InstallHandler() {
  struct sigaction action = {};
  action.sa_sigaction = OnSigbus;
  // SA_NODEFER: a second fault in another guarded mapping while this one is
  // handled is handled too.
  action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  sigaction(SIGBUS, &action, &previous_action);
}

}  // namespace

int GuardMapping(void* start, size_t length) {
  std::call_once(install_once, InstallHandler);
  for (int i = 0; i < kSlots; ++i) {
    uintptr_t expected = 0;
    Slot& slot = slots[i];
    // Claim with a marker first so the handler never sees a half-set slot.
    if (!slot.start.compare_exchange_strong(expected, kClaimed,
                                            std::memory_order_acq_rel)) {
      continue;
    }
    slot.lost.store(false, std::memory_order_relaxed);
    slot.length.store(length, std::memory_order_relaxed);
    slot.start.store(reinterpret_cast<uintptr_t>(start),
                     std::memory_order_release);
    return i;
  }
  return -1;
}

void UnguardMapping(int slot) {
  if (slot < 0 || slot >= kSlots) return;
  slots[slot].start.store(0, std::memory_order_release);
}

bool MappingLost(int slot) {
  if (slot < 0 || slot >= kSlots) return false;
  return slots[slot].lost.load(std::memory_order_acquire);
}

uint64_t MappingFaultCount() {
  return fault_count.load(std::memory_order_relaxed);
}

}  // namespace vgpu::virtio
