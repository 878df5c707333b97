// vhost-user wire format (QEMU docs/interop/vhost-user.rst) and the
// vhost-user-gpu display protocol (docs/interop/vhost-user-gpu.rst): message
// codes, flags, feature bits and payload structs. Native endian (x86: little).
#pragma once

#include <cstdint>

namespace vgpu::vhost_user {

// Header: u32 request, u32 flags, u32 size; then `size` payload bytes.
struct Header {
  uint32_t request;
  uint32_t flags;
  uint32_t size;
};
static_assert(sizeof(Header) == 12);

inline constexpr uint32_t kVersion = 1;  // flags bits 0..1
inline constexpr uint32_t kFlagVersionMask = 3;
inline constexpr uint32_t kFlagReply = 1u << 2;
inline constexpr uint32_t kFlagNeedReply = 1u << 3;
inline constexpr uint32_t kMaxFds = 8;
inline constexpr uint32_t kMaxPayload =
    4096;  // larger messages are malformed here
inline constexpr uint32_t kMaxMemRegions = 8;

// Front-end requests.
enum Request : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSendRarp = 19,
  kNetSetMtu = 20,
  kSetBackendReqFd = 21,
  kGetConfig = 24,
  kSetConfig = 25,
  kGpuSetSocket = 33,
  kResetDevice = 34,
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
};

// Transport feature bits.
inline constexpr uint64_t kFeatureIndirectDesc = 1ull << 28;
inline constexpr uint64_t kFeatureEventIdx = 1ull << 29;
inline constexpr uint64_t kFeatureProtocolFeatures = 1ull << 30;
inline constexpr uint64_t kFeatureVersion1 = 1ull << 32;

// Protocol feature bits.
inline constexpr uint64_t kProtocolMq = 1ull << 0;
inline constexpr uint64_t kProtocolReplyAck = 1ull << 3;
inline constexpr uint64_t kProtocolConfig = 1ull << 9;
inline constexpr uint64_t kProtocolResetDevice = 1ull << 13;

// SET_VRING_KICK / CALL / ERR payload: queue index in bits 0..7, bit 8 = no fd.
inline constexpr uint64_t kVringIndexMask = 0xFF;
inline constexpr uint64_t kVringNoFd = 1ull << 8;

struct VringState {  // SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE,
                     // SET_VRING_ENABLE
  uint32_t index;
  uint32_t num;
};

struct VringAddr {  // SET_VRING_ADDR; addresses in the front-end's address
                    // space
  uint32_t index;
  uint32_t flags;
  uint64_t desc_user_addr;
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);

struct MemRegion {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;
};
static_assert(sizeof(MemRegion) == 32);

struct MemTableHeader {  // SET_MEM_TABLE: then nregions MemRegion
  uint32_t nregions;
  uint32_t padding;
};

struct ConfigHeader {  // GET_CONFIG / SET_CONFIG: then `size` bytes
  uint32_t offset;
  uint32_t size;
  uint32_t flags;
};
inline constexpr uint32_t kMaxConfigSize = 256;

// vhost-user-gpu display protocol (back-end -> QEMU over GPU_SET_SOCKET).
enum GpuRequest : uint32_t {
  kGpuGetProtocolFeatures = 1,
  kGpuSetProtocolFeatures = 2,
  kGpuGetDisplayInfo = 3,
  kGpuCursorPos = 4,
  kGpuCursorPosHide = 5,
  kGpuCursorUpdate = 6,
  kGpuScanout = 7,
  kGpuUpdate = 8,
  kGpuDmabufScanout = 9,
  kGpuDmabufUpdate = 10,
  kGpuGetEdid = 11,
  kGpuDmabufScanout2 = 12,
};

struct GpuCursorPos {
  uint32_t scanout_id;
  uint32_t x;
  uint32_t y;
};

struct GpuCursorUpdate {
  GpuCursorPos pos;
  uint32_t hot_x;
  uint32_t hot_y;
  uint32_t data[64 * 64];
};

struct GpuScanout {
  uint32_t scanout_id;
  uint32_t width;
  uint32_t height;
};

struct GpuUpdate {  // followed by width * height * 4 bytes of x8r8g8b8
  uint32_t scanout_id;
  uint32_t x;
  uint32_t y;
  uint32_t width;
  uint32_t height;
};

}  // namespace vgpu::vhost_user
