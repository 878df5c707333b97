#include "device/gpu/wire_names.h"

#include "device/gpu/wire.h"

namespace vgpu::gpu::wire {

const char* CommandName(uint32_t type) {
  switch (type) {
    case kCmdGetDisplayInfo:
      return "GET_DISPLAY_INFO";
    case kCmdResourceCreate2d:
      return "RESOURCE_CREATE_2D";
    case kCmdResourceUnref:
      return "RESOURCE_UNREF";
    case kCmdSetScanout:
      return "SET_SCANOUT";
    case kCmdResourceFlush:
      return "RESOURCE_FLUSH";
    case kCmdTransferToHost2d:
      return "TRANSFER_TO_HOST_2D";
    case kCmdResourceAttachBacking:
      return "RESOURCE_ATTACH_BACKING";
    case kCmdResourceDetachBacking:
      return "RESOURCE_DETACH_BACKING";
    case kCmdGetCapsetInfo:
      return "GET_CAPSET_INFO";
    case kCmdGetCapset:
      return "GET_CAPSET";
    case kCmdGetEdid:
      return "GET_EDID";
    case kCmdResourceAssignUuid:
      return "RESOURCE_ASSIGN_UUID";
    case kCmdResourceCreateBlob:
      return "RESOURCE_CREATE_BLOB";
    case kCmdSetScanoutBlob:
      return "SET_SCANOUT_BLOB";
    case kCmdCtxCreate:
      return "CTX_CREATE";
    case kCmdResourceMapBlob:
      return "RESOURCE_MAP_BLOB";
    case kCmdResourceUnmapBlob:
      return "RESOURCE_UNMAP_BLOB";
    case kCmdUpdateCursor:
      return "UPDATE_CURSOR";
    case kCmdMoveCursor:
      return "MOVE_CURSOR";
    default:
      return "unknown";
  }
}

const char* ResponseName(uint32_t code) {
  switch (code) {
    case kRespOkNodata:
      return "OK_NODATA";
    case kRespOkDisplayInfo:
      return "OK_DISPLAY_INFO";
    case kRespOkCapsetInfo:
      return "OK_CAPSET_INFO";
    case kRespOkCapset:
      return "OK_CAPSET";
    case kRespOkEdid:
      return "OK_EDID";
    case kRespOkResourceUuid:
      return "OK_RESOURCE_UUID";
    case kRespOkMapInfo:
      return "OK_MAP_INFO";
    case kRespErrUnspec:
      return "ERR_UNSPEC";
    case kRespErrOutOfMemory:
      return "ERR_OUT_OF_MEMORY";
    case kRespErrInvalidScanoutId:
      return "ERR_INVALID_SCANOUT_ID";
    case kRespErrInvalidResourceId:
      return "ERR_INVALID_RESOURCE_ID";
    case kRespErrInvalidContextId:
      return "ERR_INVALID_CONTEXT_ID";
    case kRespErrInvalidParameter:
      return "ERR_INVALID_PARAMETER";
    default:
      return "unknown";
  }
}

}  // namespace vgpu::gpu::wire
