// virtio-gpu wire structs (virtio spec 5.7.6), field for field, little-endian.
// Each carries the spec's struct name; wire_check.cc pins size and every
// field offset against <linux/virtio_gpu.h> at compile time.
#pragma once

#include <cstdint>

namespace vgpu::gpu::wire {

// enum virtio_gpu_ctrl_type: commands.
inline constexpr uint32_t kCmdGetDisplayInfo = 0x0100;
inline constexpr uint32_t kCmdResourceCreate2d = 0x0101;
inline constexpr uint32_t kCmdResourceUnref = 0x0102;
inline constexpr uint32_t kCmdSetScanout = 0x0103;
inline constexpr uint32_t kCmdResourceFlush = 0x0104;
inline constexpr uint32_t kCmdTransferToHost2d = 0x0105;
inline constexpr uint32_t kCmdResourceAttachBacking = 0x0106;
inline constexpr uint32_t kCmdResourceDetachBacking = 0x0107;
inline constexpr uint32_t kCmdGetCapsetInfo = 0x0108;
inline constexpr uint32_t kCmdGetCapset = 0x0109;
inline constexpr uint32_t kCmdGetEdid = 0x010a;
inline constexpr uint32_t kCmdResourceAssignUuid = 0x010b;
inline constexpr uint32_t kCmdResourceCreateBlob = 0x010c;
inline constexpr uint32_t kCmdSetScanoutBlob = 0x010d;
inline constexpr uint32_t kCmdCtxCreate = 0x0200;
inline constexpr uint32_t kCmdResourceMapBlob = 0x0208;
inline constexpr uint32_t kCmdResourceUnmapBlob = 0x0209;
inline constexpr uint32_t kCmdUpdateCursor = 0x0300;
inline constexpr uint32_t kCmdMoveCursor = 0x0301;

// enum virtio_gpu_ctrl_type: responses.
inline constexpr uint32_t kRespOkNodata = 0x1100;
inline constexpr uint32_t kRespOkDisplayInfo = 0x1101;
inline constexpr uint32_t kRespOkCapsetInfo = 0x1102;
inline constexpr uint32_t kRespOkCapset = 0x1103;
inline constexpr uint32_t kRespOkEdid = 0x1104;
inline constexpr uint32_t kRespOkResourceUuid = 0x1105;
inline constexpr uint32_t kRespOkMapInfo = 0x1106;
inline constexpr uint32_t kRespErrUnspec = 0x1200;
inline constexpr uint32_t kRespErrOutOfMemory = 0x1201;
inline constexpr uint32_t kRespErrInvalidScanoutId = 0x1202;
inline constexpr uint32_t kRespErrInvalidResourceId = 0x1203;
inline constexpr uint32_t kRespErrInvalidContextId = 0x1204;
inline constexpr uint32_t kRespErrInvalidParameter = 0x1205;

inline constexpr uint32_t kFlagFence = 1u << 0;
inline constexpr uint32_t kFlagInfoRingIdx = 1u << 1;

// Feature bits (device-specific).
inline constexpr uint32_t kFeatureVirgl = 0;
inline constexpr uint32_t kFeatureEdid = 1;
inline constexpr uint32_t kFeatureResourceUuid = 2;
inline constexpr uint32_t kFeatureResourceBlob = 3;
inline constexpr uint32_t kFeatureContextInit = 4;

inline constexpr uint32_t kMaxScanouts = 16;
inline constexpr uint32_t kEventDisplay = 1u << 0;

inline constexpr uint32_t kBlobMemGuest = 1;
inline constexpr uint32_t kBlobFlagUseMappable = 1;
inline constexpr uint32_t kBlobFlagUseShareable = 2;
inline constexpr uint32_t kBlobFlagUseCrossDevice = 4;

// enum virtio_gpu_formats
inline constexpr uint32_t kFormatB8G8R8A8 = 1;
inline constexpr uint32_t kFormatB8G8R8X8 = 2;
inline constexpr uint32_t kFormatA8R8G8B8 = 3;
inline constexpr uint32_t kFormatX8R8G8B8 = 4;
inline constexpr uint32_t kFormatR8G8B8A8 = 67;
inline constexpr uint32_t kFormatX8B8G8R8 = 68;
inline constexpr uint32_t kFormatA8B8G8R8 = 121;
inline constexpr uint32_t kFormatR8G8B8X8 = 134;

// struct virtio_gpu_ctrl_hdr
struct CtrlHdr {
  uint32_t type;
  uint32_t flags;
  uint64_t fence_id;
  uint32_t ctx_id;
  uint8_t ring_idx;
  uint8_t padding[3];
};

// struct virtio_gpu_rect
struct Rect {
  uint32_t x;
  uint32_t y;
  uint32_t width;
  uint32_t height;
};

// struct virtio_gpu_mem_entry
struct MemEntry {
  uint64_t addr;
  uint32_t length;
  uint32_t padding;
};

// struct virtio_gpu_resource_create_2d
struct ResourceCreate2d {
  CtrlHdr hdr;
  uint32_t resource_id;
  uint32_t format;
  uint32_t width;
  uint32_t height;
};

// struct virtio_gpu_resource_unref
struct ResourceUnref {
  CtrlHdr hdr;
  uint32_t resource_id;
  uint32_t padding;
};

// struct virtio_gpu_set_scanout
struct SetScanout {
  CtrlHdr hdr;
  Rect r;
  uint32_t scanout_id;
  uint32_t resource_id;
};

// struct virtio_gpu_resource_flush
struct ResourceFlush {
  CtrlHdr hdr;
  Rect r;
  uint32_t resource_id;
  uint32_t padding;
};

// struct virtio_gpu_transfer_to_host_2d
struct TransferToHost2d {
  CtrlHdr hdr;
  Rect r;
  uint64_t offset;
  uint32_t resource_id;
  uint32_t padding;
};

// struct virtio_gpu_resource_attach_backing (followed by nr_entries MemEntry)
struct ResourceAttachBacking {
  CtrlHdr hdr;
  uint32_t resource_id;
  uint32_t nr_entries;
};

// struct virtio_gpu_resource_detach_backing
struct ResourceDetachBacking {
  CtrlHdr hdr;
  uint32_t resource_id;
  uint32_t padding;
};

// struct virtio_gpu_display_one
struct DisplayOne {
  Rect r;
  uint32_t enabled;
  uint32_t flags;
};

// struct virtio_gpu_resp_display_info
struct RespDisplayInfo {
  CtrlHdr hdr;
  DisplayOne pmodes[kMaxScanouts];
};

// struct virtio_gpu_get_capset_info
struct GetCapsetInfo {
  CtrlHdr hdr;
  uint32_t capset_index;
  uint32_t padding;
};

// struct virtio_gpu_get_capset
struct GetCapset {
  CtrlHdr hdr;
  uint32_t capset_id;
  uint32_t capset_version;
};

// struct virtio_gpu_cmd_get_edid
struct GetEdid {
  CtrlHdr hdr;
  uint32_t scanout;
  uint32_t padding;
};

// struct virtio_gpu_resp_edid
struct RespEdid {
  CtrlHdr hdr;
  uint32_t size;
  uint32_t padding;
  uint8_t edid[1024];
};

// struct virtio_gpu_resource_assign_uuid
struct ResourceAssignUuid {
  CtrlHdr hdr;
  uint32_t resource_id;
  uint32_t padding;
};

// struct virtio_gpu_resp_resource_uuid
struct RespResourceUuid {
  CtrlHdr hdr;
  uint8_t uuid[16];
};

// struct virtio_gpu_resource_create_blob (followed by nr_entries MemEntry)
struct ResourceCreateBlob {
  CtrlHdr hdr;
  uint32_t resource_id;
  uint32_t blob_mem;
  uint32_t blob_flags;
  uint32_t nr_entries;
  uint64_t blob_id;
  uint64_t size;
};

// struct virtio_gpu_set_scanout_blob
struct SetScanoutBlob {
  CtrlHdr hdr;
  Rect r;
  uint32_t scanout_id;
  uint32_t resource_id;
  uint32_t width;
  uint32_t height;
  uint32_t format;
  uint32_t padding;
  uint32_t strides[4];
  uint32_t offsets[4];
};

// struct virtio_gpu_cursor_pos
struct CursorPos {
  uint32_t scanout_id;
  uint32_t x;
  uint32_t y;
  uint32_t padding;
};

// struct virtio_gpu_update_cursor (UPDATE_CURSOR and MOVE_CURSOR)
struct UpdateCursor {
  CtrlHdr hdr;
  CursorPos pos;
  uint32_t resource_id;
  uint32_t hot_x;
  uint32_t hot_y;
  uint32_t padding;
};

// struct virtio_gpu_config (device configuration space)
struct Config {
  uint32_t events_read;
  uint32_t events_clear;
  uint32_t num_scanouts;
  uint32_t num_capsets;
};

}  // namespace vgpu::gpu::wire
