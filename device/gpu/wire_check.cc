// Compile-time proof that wire.h matches the Linux uapi header: every
// struct's size and every field offset. Nothing here runs.
#include <linux/virtio_gpu.h>

#include <cstddef>

#include "device/gpu/wire.h"

namespace vgpu::gpu::wire {

#define VGPU_SAME_OFFSET(ours, theirs, field)                       \
  static_assert(offsetof(ours, field) == offsetof(::theirs, field), \
                #ours "." #field)

static_assert(sizeof(CtrlHdr) == sizeof(::virtio_gpu_ctrl_hdr));
VGPU_SAME_OFFSET(CtrlHdr, virtio_gpu_ctrl_hdr, type);
VGPU_SAME_OFFSET(CtrlHdr, virtio_gpu_ctrl_hdr, flags);
VGPU_SAME_OFFSET(CtrlHdr, virtio_gpu_ctrl_hdr, fence_id);
VGPU_SAME_OFFSET(CtrlHdr, virtio_gpu_ctrl_hdr, ctx_id);
VGPU_SAME_OFFSET(CtrlHdr, virtio_gpu_ctrl_hdr, ring_idx);
VGPU_SAME_OFFSET(CtrlHdr, virtio_gpu_ctrl_hdr, padding);

static_assert(sizeof(Rect) == sizeof(::virtio_gpu_rect));
VGPU_SAME_OFFSET(Rect, virtio_gpu_rect, x);
VGPU_SAME_OFFSET(Rect, virtio_gpu_rect, y);
VGPU_SAME_OFFSET(Rect, virtio_gpu_rect, width);
VGPU_SAME_OFFSET(Rect, virtio_gpu_rect, height);

static_assert(sizeof(MemEntry) == sizeof(::virtio_gpu_mem_entry));
VGPU_SAME_OFFSET(MemEntry, virtio_gpu_mem_entry, addr);
VGPU_SAME_OFFSET(MemEntry, virtio_gpu_mem_entry, length);
VGPU_SAME_OFFSET(MemEntry, virtio_gpu_mem_entry, padding);

static_assert(sizeof(ResourceCreate2d) ==
              sizeof(::virtio_gpu_resource_create_2d));
VGPU_SAME_OFFSET(ResourceCreate2d, virtio_gpu_resource_create_2d, hdr);
VGPU_SAME_OFFSET(ResourceCreate2d, virtio_gpu_resource_create_2d, resource_id);
VGPU_SAME_OFFSET(ResourceCreate2d, virtio_gpu_resource_create_2d, format);
VGPU_SAME_OFFSET(ResourceCreate2d, virtio_gpu_resource_create_2d, width);
VGPU_SAME_OFFSET(ResourceCreate2d, virtio_gpu_resource_create_2d, height);

static_assert(sizeof(ResourceUnref) == sizeof(::virtio_gpu_resource_unref));
VGPU_SAME_OFFSET(ResourceUnref, virtio_gpu_resource_unref, hdr);
VGPU_SAME_OFFSET(ResourceUnref, virtio_gpu_resource_unref, resource_id);
VGPU_SAME_OFFSET(ResourceUnref, virtio_gpu_resource_unref, padding);

static_assert(sizeof(SetScanout) == sizeof(::virtio_gpu_set_scanout));
VGPU_SAME_OFFSET(SetScanout, virtio_gpu_set_scanout, hdr);
VGPU_SAME_OFFSET(SetScanout, virtio_gpu_set_scanout, r);
VGPU_SAME_OFFSET(SetScanout, virtio_gpu_set_scanout, scanout_id);
VGPU_SAME_OFFSET(SetScanout, virtio_gpu_set_scanout, resource_id);

static_assert(sizeof(ResourceFlush) == sizeof(::virtio_gpu_resource_flush));
VGPU_SAME_OFFSET(ResourceFlush, virtio_gpu_resource_flush, hdr);
VGPU_SAME_OFFSET(ResourceFlush, virtio_gpu_resource_flush, r);
VGPU_SAME_OFFSET(ResourceFlush, virtio_gpu_resource_flush, resource_id);
VGPU_SAME_OFFSET(ResourceFlush, virtio_gpu_resource_flush, padding);

static_assert(sizeof(TransferToHost2d) ==
              sizeof(::virtio_gpu_transfer_to_host_2d));
VGPU_SAME_OFFSET(TransferToHost2d, virtio_gpu_transfer_to_host_2d, hdr);
VGPU_SAME_OFFSET(TransferToHost2d, virtio_gpu_transfer_to_host_2d, r);
VGPU_SAME_OFFSET(TransferToHost2d, virtio_gpu_transfer_to_host_2d, offset);
VGPU_SAME_OFFSET(TransferToHost2d, virtio_gpu_transfer_to_host_2d, resource_id);
VGPU_SAME_OFFSET(TransferToHost2d, virtio_gpu_transfer_to_host_2d, padding);

static_assert(sizeof(ResourceAttachBacking) ==
              sizeof(::virtio_gpu_resource_attach_backing));
VGPU_SAME_OFFSET(ResourceAttachBacking, virtio_gpu_resource_attach_backing,
                 hdr);
VGPU_SAME_OFFSET(ResourceAttachBacking, virtio_gpu_resource_attach_backing,
                 resource_id);
VGPU_SAME_OFFSET(ResourceAttachBacking, virtio_gpu_resource_attach_backing,
                 nr_entries);

static_assert(sizeof(ResourceDetachBacking) ==
              sizeof(::virtio_gpu_resource_detach_backing));
VGPU_SAME_OFFSET(ResourceDetachBacking, virtio_gpu_resource_detach_backing,
                 hdr);
VGPU_SAME_OFFSET(ResourceDetachBacking, virtio_gpu_resource_detach_backing,
                 resource_id);
VGPU_SAME_OFFSET(ResourceDetachBacking, virtio_gpu_resource_detach_backing,
                 padding);

static_assert(sizeof(DisplayOne) ==
              sizeof(::virtio_gpu_resp_display_info::virtio_gpu_display_one));
VGPU_SAME_OFFSET(DisplayOne,
                 virtio_gpu_resp_display_info::virtio_gpu_display_one, r);
VGPU_SAME_OFFSET(DisplayOne,
                 virtio_gpu_resp_display_info::virtio_gpu_display_one, enabled);
VGPU_SAME_OFFSET(DisplayOne,
                 virtio_gpu_resp_display_info::virtio_gpu_display_one, flags);

static_assert(sizeof(RespDisplayInfo) ==
              sizeof(::virtio_gpu_resp_display_info));
VGPU_SAME_OFFSET(RespDisplayInfo, virtio_gpu_resp_display_info, hdr);
VGPU_SAME_OFFSET(RespDisplayInfo, virtio_gpu_resp_display_info, pmodes);

static_assert(sizeof(GetCapsetInfo) == sizeof(::virtio_gpu_get_capset_info));
VGPU_SAME_OFFSET(GetCapsetInfo, virtio_gpu_get_capset_info, hdr);
VGPU_SAME_OFFSET(GetCapsetInfo, virtio_gpu_get_capset_info, capset_index);
VGPU_SAME_OFFSET(GetCapsetInfo, virtio_gpu_get_capset_info, padding);

static_assert(sizeof(GetCapset) == sizeof(::virtio_gpu_get_capset));
VGPU_SAME_OFFSET(GetCapset, virtio_gpu_get_capset, hdr);
VGPU_SAME_OFFSET(GetCapset, virtio_gpu_get_capset, capset_id);
VGPU_SAME_OFFSET(GetCapset, virtio_gpu_get_capset, capset_version);

static_assert(sizeof(GetEdid) == sizeof(::virtio_gpu_cmd_get_edid));
VGPU_SAME_OFFSET(GetEdid, virtio_gpu_cmd_get_edid, hdr);
VGPU_SAME_OFFSET(GetEdid, virtio_gpu_cmd_get_edid, scanout);
VGPU_SAME_OFFSET(GetEdid, virtio_gpu_cmd_get_edid, padding);

static_assert(sizeof(RespEdid) == sizeof(::virtio_gpu_resp_edid));
VGPU_SAME_OFFSET(RespEdid, virtio_gpu_resp_edid, hdr);
VGPU_SAME_OFFSET(RespEdid, virtio_gpu_resp_edid, size);
VGPU_SAME_OFFSET(RespEdid, virtio_gpu_resp_edid, padding);
VGPU_SAME_OFFSET(RespEdid, virtio_gpu_resp_edid, edid);

static_assert(sizeof(ResourceAssignUuid) ==
              sizeof(::virtio_gpu_resource_assign_uuid));
VGPU_SAME_OFFSET(ResourceAssignUuid, virtio_gpu_resource_assign_uuid, hdr);
VGPU_SAME_OFFSET(ResourceAssignUuid, virtio_gpu_resource_assign_uuid,
                 resource_id);
VGPU_SAME_OFFSET(ResourceAssignUuid, virtio_gpu_resource_assign_uuid, padding);

static_assert(sizeof(RespResourceUuid) ==
              sizeof(::virtio_gpu_resp_resource_uuid));
VGPU_SAME_OFFSET(RespResourceUuid, virtio_gpu_resp_resource_uuid, hdr);
VGPU_SAME_OFFSET(RespResourceUuid, virtio_gpu_resp_resource_uuid, uuid);

static_assert(sizeof(ResourceCreateBlob) ==
              sizeof(::virtio_gpu_resource_create_blob));
VGPU_SAME_OFFSET(ResourceCreateBlob, virtio_gpu_resource_create_blob, hdr);
VGPU_SAME_OFFSET(ResourceCreateBlob, virtio_gpu_resource_create_blob,
                 resource_id);
VGPU_SAME_OFFSET(ResourceCreateBlob, virtio_gpu_resource_create_blob, blob_mem);
VGPU_SAME_OFFSET(ResourceCreateBlob, virtio_gpu_resource_create_blob,
                 blob_flags);
VGPU_SAME_OFFSET(ResourceCreateBlob, virtio_gpu_resource_create_blob,
                 nr_entries);
VGPU_SAME_OFFSET(ResourceCreateBlob, virtio_gpu_resource_create_blob, blob_id);
VGPU_SAME_OFFSET(ResourceCreateBlob, virtio_gpu_resource_create_blob, size);

static_assert(sizeof(SetScanoutBlob) == sizeof(::virtio_gpu_set_scanout_blob));
VGPU_SAME_OFFSET(SetScanoutBlob, virtio_gpu_set_scanout_blob, hdr);
VGPU_SAME_OFFSET(SetScanoutBlob, virtio_gpu_set_scanout_blob, r);
VGPU_SAME_OFFSET(SetScanoutBlob, virtio_gpu_set_scanout_blob, scanout_id);
VGPU_SAME_OFFSET(SetScanoutBlob, virtio_gpu_set_scanout_blob, resource_id);
VGPU_SAME_OFFSET(SetScanoutBlob, virtio_gpu_set_scanout_blob, width);
VGPU_SAME_OFFSET(SetScanoutBlob, virtio_gpu_set_scanout_blob, height);
VGPU_SAME_OFFSET(SetScanoutBlob, virtio_gpu_set_scanout_blob, format);
VGPU_SAME_OFFSET(SetScanoutBlob, virtio_gpu_set_scanout_blob, padding);
VGPU_SAME_OFFSET(SetScanoutBlob, virtio_gpu_set_scanout_blob, strides);
VGPU_SAME_OFFSET(SetScanoutBlob, virtio_gpu_set_scanout_blob, offsets);

static_assert(sizeof(CursorPos) == sizeof(::virtio_gpu_cursor_pos));
VGPU_SAME_OFFSET(CursorPos, virtio_gpu_cursor_pos, scanout_id);
VGPU_SAME_OFFSET(CursorPos, virtio_gpu_cursor_pos, x);
VGPU_SAME_OFFSET(CursorPos, virtio_gpu_cursor_pos, y);
VGPU_SAME_OFFSET(CursorPos, virtio_gpu_cursor_pos, padding);

static_assert(sizeof(UpdateCursor) == sizeof(::virtio_gpu_update_cursor));
VGPU_SAME_OFFSET(UpdateCursor, virtio_gpu_update_cursor, hdr);
VGPU_SAME_OFFSET(UpdateCursor, virtio_gpu_update_cursor, pos);
VGPU_SAME_OFFSET(UpdateCursor, virtio_gpu_update_cursor, resource_id);
VGPU_SAME_OFFSET(UpdateCursor, virtio_gpu_update_cursor, hot_x);
VGPU_SAME_OFFSET(UpdateCursor, virtio_gpu_update_cursor, hot_y);
VGPU_SAME_OFFSET(UpdateCursor, virtio_gpu_update_cursor, padding);

static_assert(sizeof(Config) == sizeof(::virtio_gpu_config));
VGPU_SAME_OFFSET(Config, virtio_gpu_config, events_read);
VGPU_SAME_OFFSET(Config, virtio_gpu_config, events_clear);
VGPU_SAME_OFFSET(Config, virtio_gpu_config, num_scanouts);
VGPU_SAME_OFFSET(Config, virtio_gpu_config, num_capsets);

static_assert(kCmdGetDisplayInfo == VIRTIO_GPU_CMD_GET_DISPLAY_INFO);
static_assert(kCmdResourceCreate2d == VIRTIO_GPU_CMD_RESOURCE_CREATE_2D);
static_assert(kCmdResourceUnref == VIRTIO_GPU_CMD_RESOURCE_UNREF);
static_assert(kCmdSetScanout == VIRTIO_GPU_CMD_SET_SCANOUT);
static_assert(kCmdResourceFlush == VIRTIO_GPU_CMD_RESOURCE_FLUSH);
static_assert(kCmdTransferToHost2d == VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D);
static_assert(kCmdResourceAttachBacking ==
              VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING);
static_assert(kCmdResourceDetachBacking ==
              VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING);
static_assert(kCmdGetCapsetInfo == VIRTIO_GPU_CMD_GET_CAPSET_INFO);
static_assert(kCmdGetCapset == VIRTIO_GPU_CMD_GET_CAPSET);
static_assert(kCmdGetEdid == VIRTIO_GPU_CMD_GET_EDID);
static_assert(kCmdResourceAssignUuid == VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID);
static_assert(kCmdResourceCreateBlob == VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB);
static_assert(kCmdSetScanoutBlob == VIRTIO_GPU_CMD_SET_SCANOUT_BLOB);
static_assert(kCmdCtxCreate == VIRTIO_GPU_CMD_CTX_CREATE);
static_assert(kCmdResourceMapBlob == VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB);
static_assert(kCmdResourceUnmapBlob == VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB);
static_assert(kCmdUpdateCursor == VIRTIO_GPU_CMD_UPDATE_CURSOR);
static_assert(kCmdMoveCursor == VIRTIO_GPU_CMD_MOVE_CURSOR);
static_assert(kRespOkNodata == VIRTIO_GPU_RESP_OK_NODATA);
static_assert(kRespOkDisplayInfo == VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
static_assert(kRespOkCapsetInfo == VIRTIO_GPU_RESP_OK_CAPSET_INFO);
static_assert(kRespOkCapset == VIRTIO_GPU_RESP_OK_CAPSET);
static_assert(kRespOkEdid == VIRTIO_GPU_RESP_OK_EDID);
static_assert(kRespOkResourceUuid == VIRTIO_GPU_RESP_OK_RESOURCE_UUID);
static_assert(kRespOkMapInfo == VIRTIO_GPU_RESP_OK_MAP_INFO);
static_assert(kRespErrUnspec == VIRTIO_GPU_RESP_ERR_UNSPEC);
static_assert(kRespErrOutOfMemory == VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
static_assert(kRespErrInvalidScanoutId ==
              VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
static_assert(kRespErrInvalidResourceId ==
              VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID);
static_assert(kRespErrInvalidContextId ==
              VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
static_assert(kRespErrInvalidParameter ==
              VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
static_assert(kFlagFence == VIRTIO_GPU_FLAG_FENCE);
static_assert(kFlagInfoRingIdx == VIRTIO_GPU_FLAG_INFO_RING_IDX);
static_assert(kFeatureVirgl == VIRTIO_GPU_F_VIRGL);
static_assert(kFeatureEdid == VIRTIO_GPU_F_EDID);
static_assert(kFeatureResourceUuid == VIRTIO_GPU_F_RESOURCE_UUID);
static_assert(kFeatureResourceBlob == VIRTIO_GPU_F_RESOURCE_BLOB);
static_assert(kFeatureContextInit == VIRTIO_GPU_F_CONTEXT_INIT);
static_assert(kMaxScanouts == VIRTIO_GPU_MAX_SCANOUTS);
static_assert(kEventDisplay == VIRTIO_GPU_EVENT_DISPLAY);
static_assert(kBlobMemGuest == VIRTIO_GPU_BLOB_MEM_GUEST);
static_assert(kBlobFlagUseMappable == VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE);
static_assert(kBlobFlagUseShareable == VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE);
static_assert(kBlobFlagUseCrossDevice == VIRTIO_GPU_BLOB_FLAG_USE_CROSS_DEVICE);
static_assert(kFormatB8G8R8A8 == VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM);
static_assert(kFormatB8G8R8X8 == VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM);
static_assert(kFormatA8R8G8B8 == VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM);
static_assert(kFormatX8R8G8B8 == VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM);
static_assert(kFormatR8G8B8A8 == VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM);
static_assert(kFormatX8B8G8R8 == VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM);
static_assert(kFormatA8B8G8R8 == VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM);
static_assert(kFormatR8G8B8X8 == VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM);

}  // namespace vgpu::gpu::wire
