// SIGBUS protection for mappings of guest RAM.
//
// Guest RAM is a file the VMM shares with us (a memfd, a hugetlbfs or tmpfs
// file). If that file shrinks after we mapped it (a peer truncates it,
// hugetlbfs runs out of pages), touching a page past its end raises SIGBUS,
// whose default action would kill the daemon and every viewer with it.
//
// A guarded mapping is listed in a fixed, lock-free table that a SIGBUS
// handler reads. When the faulting address lies inside one, the handler maps
// anonymous zero pages over the whole mapping (MAP_FIXED), so the faulting
// access completes (reading zeros, writing into memory nobody else sees),
// marks the mapping lost and counts the fault. Owners check afterwards:
// `GuestMemory::Read` fails, and the vhost-user back-end drops a connection
// whose memory faulted (the device resets; the daemon lives). A SIGBUS
// outside every guarded mapping goes to the handler that was there before
// (or the default action), so real bugs still crash with their report.
//
// Thread-safe; the handler is installed once, on the first GuardMapping.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vgpu::virtio {

// Registers [start, start + length) (page-aligned start). Returns a slot, or
// -1 when the table (64 slots) is full: the mapping is then unguarded.
int GuardMapping(void* start, size_t length);
// Forgets a slot from GuardMapping (no-op for -1). Call before munmap.
void UnguardMapping(int slot);
// Whether the mapping in `slot` faulted and now reads as zeros.
bool MappingLost(int slot);
// Faults absorbed since the process started (any guarded mapping).
uint64_t MappingFaultCount();

}  // namespace vgpu::virtio
