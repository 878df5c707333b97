#include "device/gpu/gpu_device.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "absl/strings/str_cat.h"

#include "common/checked_math.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "device/gpu/edid.h"
#include "device/gpu/errors.h"
#include "device/gpu/pixel_copy.h"
#include "device/gpu/wire_names.h"

namespace vgpu::gpu {
namespace {

constexpr uint32_t kMinScanoutSize = 16;  // QEMU's rule for scanout rects
constexpr uint64_t kCursorBytes =
    uint64_t{kCursorSize} * kCursorSize * kBytesPerPixel;

// Host bytes a width x height grid can hold: whole tiles. UINT64_MAX when it
// overflows (always over budget).
uint64_t GridBytes(uint32_t width, uint32_t height) {
  uint64_t columns = (uint64_t{width} + kTileSize - 1) / kTileSize;
  uint64_t rows = (uint64_t{height} + kTileSize - 1) / kTileSize;
  std::optional<uint64_t> tiles = CheckedMul64(columns, rows);
  std::optional<uint64_t> bytes =
      tiles ? CheckedMul64(*tiles, kTileBytes) : std::nullopt;
  return bytes.value_or(~uint64_t{0});
}

// QEMU's six-term check, in 64 bits so x + width cannot wrap.
bool RectInside(const wire::Rect& r, uint32_t width, uint32_t height) {
  return uint64_t{r.x} + r.width <= width && uint64_t{r.y} + r.height <= height;
}

PixelRect ToPixelRect(const wire::Rect& r) {
  return {r.x, r.y, r.width, r.height};
}

// Reads the rest of command struct T after its already-read header.
template <typename T>
std::optional<T> ReadBody(const wire::CtrlHdr& hdr,
                          virtio::ChainReader& reader) {
  static_assert(sizeof(T) > sizeof(wire::CtrlHdr));
  T cmd;
  cmd.hdr = hdr;
  auto* body = reinterpret_cast<uint8_t*>(&cmd) + sizeof(wire::CtrlHdr);
  if (!reader.ReadBytes(
          absl::MakeSpan(body, sizeof(T) - sizeof(wire::CtrlHdr)))) {
    return std::nullopt;
  }
  return cmd;
}

}  // namespace

struct GpuDevice::Resource {
  uint32_t id = 0;
  bool blob = false;
  // 2D resources.
  uint32_t format = 0;
  uint32_t width = 0;
  uint32_t height = 0;
  bool shared = false;  // read in place (blobs always are)
  TileGrid grid;        // 2D: host pixels in resource coordinates
  // Blobs.
  uint64_t blob_size = 0;
  std::optional<virtio::GuestBacking> backing;
  uint64_t charged = 0;
  uint32_t scanout_mask = 0;
  std::optional<std::array<uint8_t, 16>> uuid;
};

struct GpuDevice::Scanout {
  DisplayConfig display;     // what GET_DISPLAY_INFO / GET_EDID report
  uint32_t resource_id = 0;  // 0: disabled
  PixelRect rect;            // shown part of the resource (or blob framebuffer)
  // SET_SCANOUT_BLOB geometry and the scanout's own tiles.
  uint32_t blob_format = 0;
  uint64_t blob_offset = 0;  // offsets[0]
  uint64_t blob_stride = 0;  // strides[0]
  TileGrid blob_grid;
  uint64_t blob_grid_charge = 0;
  // Shared sources: capture the whole rect at the next flush.
  bool needs_full_capture = false;
  uint64_t sequence = 0;
  FramePtr last_frame;
};

absl::StatusOr<std::unique_ptr<GpuDevice>> GpuDevice::Create(
    GpuDeviceOptions options, DisplaySink* sink) {
  if (options.displays.empty() ||
      options.displays.size() > wire::kMaxScanouts) {
    return absl::InvalidArgumentError(
        absl::StrCat("need 1 to ", wire::kMaxScanouts, " scanouts, got ",
                     options.displays.size()));
  }
  for (const DisplayConfig& display : options.displays) {
    if (display.width < kMinScanoutSize || display.height < kMinScanoutSize ||
        display.width > kEdidMaxDimension ||
        display.height > kEdidMaxDimension) {
      return absl::InvalidArgumentError(
          absl::StrCat("display mode ", display.width, "x", display.height,
                       " outside 16..4095"));
    }
  }
  if (sink == nullptr)
    return absl::InvalidArgumentError("a display sink is required");
  return std::unique_ptr<GpuDevice>(new GpuDevice(std::move(options), sink));
}

GpuDevice::GpuDevice(GpuDeviceOptions options, DisplaySink* sink)
    : options_(std::move(options)), sink_(sink) {
  for (const DisplayConfig& display : options_.displays) {
    auto scanout = std::make_unique<Scanout>();
    scanout->display = display;
    scanouts_.push_back(std::move(scanout));
  }
}

GpuDevice::~GpuDevice() = default;

uint64_t GpuDevice::OfferedFeatures() const {
  uint64_t features = 0;
  if (options_.offer_edid) features |= 1ull << wire::kFeatureEdid;
  if (options_.offer_resource_uuid)
    features |= 1ull << wire::kFeatureResourceUuid;
  if (options_.offer_blob) features |= 1ull << wire::kFeatureResourceBlob;
  return features;
}

void GpuDevice::SetDriverFeatures(uint64_t features) {
  driver_features_ = features & OfferedFeatures();
}

void GpuDevice::SetGuestMemory(
    std::shared_ptr<const virtio::GuestMemory> memory) {
  memory_ = std::move(memory);
}

size_t GpuDevice::backings_held() const {
  return static_cast<size_t>(std::count_if(
      resources_.begin(), resources_.end(),
      [](const auto& entry) { return entry.second->backing.has_value(); }));
}

FramePtr GpuDevice::LastFrame(uint32_t scanout_id) const {
  if (scanout_id >= scanouts_.size()) return nullptr;
  return scanouts_[scanout_id]->last_frame;
}

absl::StatusOr<bool> GpuDevice::ProcessQueue(uint32_t queue_index,
                                             virtio::SplitVirtqueue& queue) {
  if (needs_reset_) return absl::FailedPreconditionError("device needs reset");
  if (memory_ == nullptr)
    return absl::FailedPreconditionError("no guest memory");
  do {
    queue.DisableNotifications();
    while (true) {
      absl::StatusOr<std::optional<virtio::DescriptorChain>> chain =
          queue.Pop(*memory_);
      if (!chain.ok()) {
        needs_reset_ = true;
        ++stats_.queue_errors;
        VGPU_LOG_GUEST_ERROR()
            << "queue " << queue_index
            << " is corrupt, device needs reset: " << chain.status().message();
        return chain.status();
      }
      if (!chain->has_value()) break;
      virtio::DescriptorChain& c = **chain;
      uint32_t written = 0;
      if (queue_index == kControlQueue) {
        written = HandleControl(c.readable, c.writable, c.bad_buffer);
      } else if (!c.bad_buffer) {
        HandleCursor(c.readable);
      } else {
        ++stats_.cursor_ignored;
      }
      queue.PushUsed(c.head, written);
    }
  } while (queue.EnableNotifications());
  return queue.ShouldNotify();
}

void GpuDevice::SetResponse(uint32_t type, const void* payload, size_t size) {
  response_type_ = type;
  response_size_ = size;
  std::memcpy(response_.data(), payload, size);
}

uint32_t GpuDevice::HandleControl(
    absl::Span<const absl::Span<uint8_t>> readable,
    absl::Span<const absl::Span<uint8_t>> writable, bool bad_buffer) {
  virtio::ChainReader reader(readable);
  virtio::ChainWriter writer(writable);
  wire::CtrlHdr request{};
  absl::Status status;
  response_type_ = wire::kRespOkNodata;
  response_size_ = sizeof(wire::CtrlHdr);
  std::optional<wire::CtrlHdr> hdr = reader.Read<wire::CtrlHdr>();
  if (!hdr) {
    // Released QEMU stalls the queue here; we reply so the guest moves on.
    status =
        InvalidParameter(absl::StrCat("command of ", reader.remaining(),
                                      " bytes is shorter than its header"));
  } else {
    request = *hdr;
    ++stats_.commands[request.type];
    status = bad_buffer ? Unspec("a descriptor buffer is not guest RAM")
                        : Dispatch(request, reader);
  }
  if (!status.ok()) {
    uint32_t code = ToVirtioResp(status);
    ++stats_.errors[code];
    VGPU_LOG_GUEST_ERROR() << wire::CommandName(request.type) << " ("
                           << absl::StrCat("0x", absl::Hex(request.type))
                           << "): " << status.message();
    response_type_ = code;
    response_size_ = sizeof(wire::CtrlHdr);
  }
  wire::CtrlHdr reply{};
  reply.type = response_type_;
  reply.flags = request.flags & (wire::kFlagFence | wire::kFlagInfoRingIdx);
  if (request.flags & wire::kFlagFence) reply.fence_id = request.fence_id;
  reply.ctx_id = request.ctx_id;
  if (request.flags & wire::kFlagInfoRingIdx) reply.ring_idx = request.ring_idx;
  if (response_size_ > sizeof(reply)) {
    std::memcpy(response_.data(), &reply, sizeof(reply));
    return static_cast<uint32_t>(
        writer.Write(absl::MakeConstSpan(response_.data(), response_size_)));
  }
  return static_cast<uint32_t>(writer.WriteObject(reply));
}

absl::Status GpuDevice::Dispatch(const wire::CtrlHdr& hdr,
                                 virtio::ChainReader& reader) {
  auto too_short = [&hdr] {
    return InvalidParameter(absl::StrCat(wire::CommandName(hdr.type),
                                         " is shorter than its struct"));
  };
// `Type` names a wire struct and `var` a new variable: no parentheses.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define VGPU_BODY(Type, var)                                         \
  std::optional<wire::Type> var = ReadBody<wire::Type>(hdr, reader); \
  if (!var) return too_short()
  // NOLINTEND(bugprone-macro-parentheses)

  switch (hdr.type) {
    case wire::kCmdGetDisplayInfo:
      return GetDisplayInfo();
    case wire::kCmdGetEdid: {
      VGPU_BODY(GetEdid, cmd);
      return GetEdid(*cmd);
    }
    case wire::kCmdResourceCreate2d: {
      VGPU_BODY(ResourceCreate2d, cmd);
      return ResourceCreate2d(*cmd);
    }
    case wire::kCmdResourceUnref: {
      VGPU_BODY(ResourceUnref, cmd);
      return ResourceUnref(*cmd);
    }
    case wire::kCmdSetScanout: {
      VGPU_BODY(SetScanout, cmd);
      return SetScanout(*cmd);
    }
    case wire::kCmdResourceFlush: {
      VGPU_BODY(ResourceFlush, cmd);
      return ResourceFlush(*cmd);
    }
    case wire::kCmdTransferToHost2d: {
      VGPU_BODY(TransferToHost2d, cmd);
      return TransferToHost2d(*cmd);
    }
    case wire::kCmdResourceAttachBacking: {
      VGPU_BODY(ResourceAttachBacking, cmd);
      return AttachBacking(*cmd, reader);
    }
    case wire::kCmdResourceDetachBacking: {
      VGPU_BODY(ResourceDetachBacking, cmd);
      return DetachBacking(*cmd);
    }
    case wire::kCmdResourceAssignUuid: {
      VGPU_BODY(ResourceAssignUuid, cmd);
      return AssignUuid(*cmd);
    }
    case wire::kCmdResourceCreateBlob: {
      if (!Negotiated(wire::kFeatureResourceBlob)) {
        return InvalidParameter("RESOURCE_BLOB was not negotiated");
      }
      VGPU_BODY(ResourceCreateBlob, cmd);
      return CreateBlob(*cmd, reader);
    }
    case wire::kCmdSetScanoutBlob: {
      if (!Negotiated(wire::kFeatureResourceBlob)) {
        return InvalidParameter("RESOURCE_BLOB was not negotiated");
      }
      VGPU_BODY(SetScanoutBlob, cmd);
      return SetScanoutBlob(*cmd);
    }
    default:
      // 3D, capsets, MAP/UNMAP_BLOB and unknown codes: a 2D device has none.
      return Unspec(
          absl::StrCat("command 0x", absl::Hex(hdr.type), " is not supported"));
  }
#undef VGPU_BODY
}

absl::Status GpuDevice::GetDisplayInfo() {
  wire::RespDisplayInfo info{};
  for (size_t i = 0; i < scanouts_.size(); ++i) {
    const DisplayConfig& display = scanouts_[i]->display;
    info.pmodes[i].r = {0, 0, display.width, display.height};
    info.pmodes[i].enabled = display.enabled ? 1 : 0;
  }
  SetResponse(wire::kRespOkDisplayInfo, &info, sizeof(info));
  return absl::OkStatus();
}

absl::Status GpuDevice::GetEdid(const wire::GetEdid& cmd) {
  if (cmd.scanout >= scanouts_.size()) {
    return InvalidParameter(absl::StrCat("GET_EDID for scanout ", cmd.scanout));
  }
  const DisplayConfig& display = scanouts_[cmd.scanout]->display;
  std::array<uint8_t, 128> block =
      MakeEdid(display.width, display.height, cmd.scanout + 1);
  wire::RespEdid edid{};
  edid.size = static_cast<uint32_t>(block.size());
  std::memcpy(edid.edid, block.data(), block.size());
  SetResponse(wire::kRespOkEdid, &edid, sizeof(edid));
  return absl::OkStatus();
}

absl::StatusOr<GpuDevice::Resource*> GpuDevice::FindResource(
    uint32_t resource_id) {
  auto it = resources_.find(resource_id);
  if (it == resources_.end()) return InvalidResourceId(resource_id);
  return it->second.get();
}

absl::Status GpuDevice::Charge(uint64_t bytes) {
  // QEMU's rule: the total must stay strictly below the limit.
  auto total = CheckedAdd64(host_memory_used_, bytes);
  if (!total || *total >= options_.max_host_memory) {
    return OutOfMemory(absl::StrCat(
        bytes, " bytes would exceed the host memory budget of ",
        options_.max_host_memory, " (", host_memory_used_, " in use)"));
  }
  host_memory_used_ = *total;
  return absl::OkStatus();
}

void GpuDevice::Credit(uint64_t bytes) { host_memory_used_ -= bytes; }

absl::Status GpuDevice::ResourceCreate2d(const wire::ResourceCreate2d& cmd) {
  if (cmd.resource_id == 0) return InvalidResourceId(0);
  if (resources_.contains(cmd.resource_id))
    return InvalidResourceId(cmd.resource_id);
  if (!IsSupportedFormat(cmd.format)) {
    return InvalidParameter(absl::StrCat("unknown format ", cmd.format));
  }
  if (cmd.width == 0 || cmd.height == 0) {
    return InvalidParameter(
        absl::StrCat("empty resource ", cmd.width, "x", cmd.height));
  }
  if (resources_.size() >= options_.max_resources) {
    return OutOfMemory(
        absl::StrCat("resource limit of ", options_.max_resources, " reached"));
  }
  uint64_t bytes = GridBytes(cmd.width, cmd.height);
  VGPU_RETURN_IF_ERROR(Charge(bytes));
  auto resource = std::make_unique<Resource>();
  resource->id = cmd.resource_id;
  resource->format = cmd.format;
  resource->width = cmd.width;
  resource->height = cmd.height;
  resource->charged = bytes;
  uint64_t image_bytes = uint64_t{cmd.width} * cmd.height * kBytesPerPixel;
  resource->shared = options_.policy == ResourcePolicy::kShared ||
                     (options_.policy == ResourcePolicy::kAuto &&
                      image_bytes >= options_.auto_shared_min_bytes);
  // Tiles are allocated on first write and read as zero until then, so no
  // uninitialised host memory can reach a viewer.
  resource->grid = TileGrid(cmd.width, cmd.height);
  resources_.emplace(cmd.resource_id, std::move(resource));
  return absl::OkStatus();
}

void GpuDevice::ReleaseFromResource(uint32_t scanout_id) {
  uint32_t resource_id = scanouts_[scanout_id]->resource_id;
  if (resource_id == 0) return;
  auto it = resources_.find(resource_id);
  if (it != resources_.end()) it->second->scanout_mask &= ~(1u << scanout_id);
}

void GpuDevice::ShowOnScanout(uint32_t scanout_id, Resource& resource,
                              const PixelRect& rect) {
  Scanout& scanout = *scanouts_[scanout_id];
  bool resized = scanout.resource_id == 0 || scanout.rect.width != rect.width ||
                 scanout.rect.height != rect.height;
  if (scanout.resource_id != resource.id) ReleaseFromResource(scanout_id);
  scanout.resource_id = resource.id;
  scanout.rect = rect;
  resource.scanout_mask |= 1u << scanout_id;
  if (resource.shared) {
    if (!resized) {
      // Same size: the old picture stays a valid frame of this mode until
      // the flush that normally follows captures the new one.
      scanout.needs_full_capture = true;
      return;
    }
    // A new mode is told together with its first frame, so no reader ever
    // pairs it with a frame of the old size (Linux flushes right after,
    // but a guest that only modesets never does).
    stats_.mode_capture_bytes_copied +=
        CaptureShared(resource, scanout_id, rect);
    scanout.needs_full_capture = false;
  }
  // Copied sources hold the whole image already: shown at once.
  if (resized) {
    sink_->OnScanoutMode(ScanoutMode{scanout_id, true, rect.width, rect.height},
                         MakeFrame(scanout_id));
  } else {
    PublishFrame(scanout_id);
  }
}

void GpuDevice::DisableScanout(uint32_t scanout_id) {
  Scanout& scanout = *scanouts_[scanout_id];
  ReleaseFromResource(scanout_id);
  bool was_enabled = scanout.resource_id != 0;
  scanout.resource_id = 0;
  scanout.rect = {};
  scanout.blob_grid = TileGrid();
  Credit(scanout.blob_grid_charge);
  scanout.blob_grid_charge = 0;
  scanout.last_frame = nullptr;
  scanout.needs_full_capture = false;
  if (was_enabled) {
    sink_->OnScanoutMode(ScanoutMode{scanout_id, false, 0, 0}, nullptr);
  }
}

absl::Status GpuDevice::ResourceUnref(const wire::ResourceUnref& cmd) {
  VGPU_ASSIGN_OR_RETURN(Resource * resource, FindResource(cmd.resource_id));
  for (uint32_t i = 0; i < scanouts_.size(); ++i) {
    if (resource->scanout_mask & (1u << i)) DisableScanout(i);
  }
  Credit(resource->charged);
  // Erasing drops the backing, and with it every guest page reference,
  // before the reply is written.
  resources_.erase(cmd.resource_id);
  return absl::OkStatus();
}

absl::Status GpuDevice::SetScanout(const wire::SetScanout& cmd) {
  if (cmd.scanout_id >= scanouts_.size())
    return InvalidScanoutId(cmd.scanout_id);
  if (cmd.resource_id == 0) {
    DisableScanout(cmd.scanout_id);
    return absl::OkStatus();
  }
  VGPU_ASSIGN_OR_RETURN(Resource * resource, FindResource(cmd.resource_id));
  if (resource->blob)
    return InvalidParameter("blob resources are shown with SET_SCANOUT_BLOB");
  if (!resource->backing)
    return Unspec(
        absl::StrCat("resource ", cmd.resource_id, " has no backing"));
  if (cmd.r.width < kMinScanoutSize || cmd.r.height < kMinScanoutSize ||
      !RectInside(cmd.r, resource->width, resource->height)) {
    return InvalidParameter(
        absl::StrCat("scanout rect ", cmd.r.width, "x", cmd.r.height, "+",
                     cmd.r.x, "+", cmd.r.y, " not inside resource ",
                     resource->width, "x", resource->height));
  }
  Scanout& scanout = *scanouts_[cmd.scanout_id];
  PixelRect rect = ToPixelRect(cmd.r);
  if (scanout.resource_id == cmd.resource_id && scanout.rect == rect)
    return absl::OkStatus();
  Credit(scanout.blob_grid_charge);
  scanout.blob_grid_charge = 0;
  scanout.blob_grid = TileGrid();
  ShowOnScanout(cmd.scanout_id, *resource, rect);
  return absl::OkStatus();
}

absl::Status GpuDevice::SetScanoutBlob(const wire::SetScanoutBlob& cmd) {
  if (cmd.scanout_id >= scanouts_.size())
    return InvalidScanoutId(cmd.scanout_id);
  if (cmd.resource_id == 0) {
    DisableScanout(cmd.scanout_id);
    return absl::OkStatus();
  }
  VGPU_ASSIGN_OR_RETURN(Resource * resource, FindResource(cmd.resource_id));
  if (!resource->blob)
    return InvalidParameter("SET_SCANOUT_BLOB needs a blob resource");
  if (!resource->backing)
    return Unspec(absl::StrCat("blob ", cmd.resource_id, " has no backing"));
  if (!IsSupportedFormat(cmd.format)) {
    return InvalidParameter(absl::StrCat("unknown format ", cmd.format));
  }
  if (uint64_t{cmd.strides[0]} < uint64_t{cmd.width} * kBytesPerPixel) {
    return InvalidParameter(
        absl::StrCat("stride ", cmd.strides[0], " below width ", cmd.width));
  }
  if (cmd.r.width < kMinScanoutSize || cmd.r.height < kMinScanoutSize ||
      !RectInside(cmd.r, cmd.width, cmd.height)) {
    return InvalidParameter("scanout rect not inside the blob framebuffer");
  }
  // First shown byte: offsets[0] + r.y * stride + r.x * 4, all in 64 bits.
  virtio::GuestBacking& backing = *resource->backing;
  GuestPixels source{&backing, 0, cmd.strides[0], cmd.format};
  auto first = CheckedAdd64(
      uint64_t{cmd.offsets[0]} + uint64_t{cmd.r.x} * kBytesPerPixel,
      uint64_t{cmd.r.y} * cmd.strides[0]);
  if (!first) return InvalidParameter("framebuffer offset overflows");
  source.offset = *first;
  std::optional<uint64_t> end = SourceEnd(source, cmd.r.width, cmd.r.height);
  if (!end || *end > resource->blob_size || *end > backing.size()) {
    return InvalidParameter(absl::StrCat("framebuffer runs past the blob (",
                                         resource->blob_size, " bytes)"));
  }
  Scanout& scanout = *scanouts_[cmd.scanout_id];
  PixelRect rect = ToPixelRect(cmd.r);
  bool same_geometry = scanout.resource_id == cmd.resource_id &&
                       scanout.rect.width == rect.width &&
                       scanout.rect.height == rect.height &&
                       scanout.blob_grid_charge != 0;
  if (!same_geometry) {
    uint64_t bytes = GridBytes(rect.width, rect.height);
    Credit(scanout.blob_grid_charge);
    scanout.blob_grid_charge = 0;
    if (absl::Status charged = Charge(bytes); !charged.ok()) {
      DisableScanout(cmd.scanout_id);
      return charged;
    }
    scanout.blob_grid_charge = bytes;
    scanout.blob_grid = TileGrid(rect.width, rect.height);
  }
  scanout.blob_format = cmd.format;
  scanout.blob_offset = cmd.offsets[0];
  scanout.blob_stride = cmd.strides[0];
  ShowOnScanout(cmd.scanout_id, *resource, rect);
  return absl::OkStatus();
}

uint64_t GpuDevice::CaptureShared(Resource& resource, uint32_t scanout_id,
                                  const PixelRect& rect) {
  // `rect` is in resource (2D) or blob framebuffer coordinates and lies
  // inside the scanout rect, whose bounds were validated against the backing
  // when the scanout was set (blob) or are checked here (2D).
  if (!resource.backing || rect.empty()) return 0;
  Scanout& scanout = *scanouts_[scanout_id];
  virtio::GuestBacking& backing = *resource.backing;
  uint64_t copied = 0;
  if (resource.blob) {
    GuestPixels source{&backing,
                       scanout.blob_offset + uint64_t{rect.x} * kBytesPerPixel +
                           uint64_t{rect.y} * scanout.blob_stride,
                       scanout.blob_stride, scanout.blob_format};
    std::optional<uint64_t> end = SourceEnd(source, rect.width, rect.height);
    if (!end || *end > backing.size()) return 0;
    PixelRect dest{rect.x - scanout.rect.x, rect.y - scanout.rect.y, rect.width,
                   rect.height};
    copied = CopyIntoGrid(source, dest, scanout.blob_grid, &stats_.grid);
  } else {
    // A 2D resource read in place: the backing has the image layout
    // (what Linux's TRANSFER offsets y * pitch + x * 4 imply).
    uint64_t stride = uint64_t{resource.width} * kBytesPerPixel;
    GuestPixels source{
        &backing, uint64_t{rect.y} * stride + uint64_t{rect.x} * kBytesPerPixel,
        stride, resource.format};
    std::optional<uint64_t> end = SourceEnd(source, rect.width, rect.height);
    if (!end || *end > backing.size()) {
      VGPU_LOG_GUEST_ERROR() << "backing of resource " << resource.id
                             << " is too short to read in place";
      return 0;
    }
    copied = CopyIntoGrid(source, rect, resource.grid, &stats_.grid);
  }
  return copied;
}

FramePtr GpuDevice::MakeFrame(uint32_t scanout_id) {
  Scanout& scanout = *scanouts_[scanout_id];
  Resource& resource = *resources_.at(scanout.resource_id);
  FramePtr frame;
  if (resource.blob) {
    frame = std::make_shared<const Frame>(
        scanout.rect.width, scanout.rect.height, 0, 0,
        scanout.blob_grid.Snapshot(), scanout.blob_grid.columns(),
        ++scanout.sequence);
  } else {
    frame = std::make_shared<const Frame>(
        scanout.rect.width, scanout.rect.height, scanout.rect.x, scanout.rect.y,
        resource.grid.Snapshot(), resource.grid.columns(), ++scanout.sequence);
  }
  scanout.last_frame = frame;
  ++stats_.frames_published;
  return frame;
}

void GpuDevice::PublishFrame(uint32_t scanout_id) {
  FramePtr previous = scanouts_[scanout_id]->last_frame;
  FramePtr frame = MakeFrame(scanout_id);
  // The damage is what the tiles say changed, not the flushed rect: pixels
  // rewritten with the same values are no damage, and transfers not yet
  // flushed are (the frame shows them).
  std::vector<PixelRect> damage =
      previous
          ? frame->ChangedSince(*previous)
          : std::vector<PixelRect>{{0, 0, frame->width(), frame->height()}};
  stats_.damage_rects += damage.size();
  sink_->OnFrame(scanout_id, std::move(frame), damage);
}

absl::Status GpuDevice::ResourceFlush(const wire::ResourceFlush& cmd) {
  VGPU_ASSIGN_OR_RETURN(Resource * resource, FindResource(cmd.resource_id));
  PixelRect flushed = ToPixelRect(cmd.r);
  if (!resource->blob &&
      !RectInside(cmd.r, resource->width, resource->height)) {
    return InvalidParameter("flush rect not inside the resource");
  }
  bool overlapped = false;
  for (uint32_t i = 0; i < scanouts_.size(); ++i) {
    if (!(resource->scanout_mask & (1u << i))) continue;
    Scanout& scanout = *scanouts_[i];
    PixelRect visible = Intersect(flushed, scanout.rect);
    if (!visible.empty()) overlapped = true;
    if (visible.empty() && !scanout.needs_full_capture) continue;
    if (resource->shared) {
      // Capture before replying: a fenced flush completes only after its
      // pixels are in host tiles.
      if (scanout.needs_full_capture) {
        visible = scanout.rect;
        scanout.needs_full_capture = false;
      }
      stats_.flush_bytes_copied += CaptureShared(*resource, i, visible);
    }
    PublishFrame(i);
  }
  if (resource->blob && !overlapped) {
    return InvalidParameter(
        "flush rect does not overlap a scanout showing the blob");
  }
  return absl::OkStatus();
}

absl::Status GpuDevice::TransferToHost2d(const wire::TransferToHost2d& cmd) {
  VGPU_ASSIGN_OR_RETURN(Resource * resource, FindResource(cmd.resource_id));
  if (resource->blob)
    return absl::OkStatus();  // a cache-flush hint for guest blobs
  if (!resource->backing)
    return Unspec(
        absl::StrCat("resource ", cmd.resource_id, " has no backing"));
  if (!RectInside(cmd.r, resource->width, resource->height)) {
    return InvalidParameter("transfer rect not inside the resource");
  }
  if (resource->shared) return absl::OkStatus();  // read in place at flush
  // QEMU's semantics: `offset` is where pixel (r.x, r.y) sits in the
  // backing; rows are one resource stride apart.
  GuestPixels source{&*resource->backing, cmd.offset,
                     uint64_t{resource->width} * kBytesPerPixel,
                     resource->format};
  std::optional<uint64_t> end = SourceEnd(source, cmd.r.width, cmd.r.height);
  if (!end || *end > resource->backing->size()) {
    // QEMU copies what it can and says OK; a short copy would show stale
    // pixels as new, so we copy nothing and say so.
    return InvalidParameter(absl::StrCat("transfer reads past the backing (",
                                         resource->backing->size(), " bytes)"));
  }
  stats_.transfer_bytes_copied +=
      CopyIntoGrid(source, ToPixelRect(cmd.r), resource->grid, &stats_.grid);
  return absl::OkStatus();
}

absl::StatusOr<virtio::GuestBacking> GpuDevice::ReadBacking(
    uint32_t nr_entries, virtio::ChainReader& reader) {
  if (nr_entries > options_.max_backing_entries) {
    return InvalidParameter(
        absl::StrCat(nr_entries, " backing entries exceed the limit of ",
                     options_.max_backing_entries));
  }
  if (reader.remaining() < uint64_t{nr_entries} * sizeof(wire::MemEntry)) {
    return Unspec(
        absl::StrCat("command carries fewer than ", nr_entries, " entries"));
  }
  // Copy the whole entry array out before using any of it.
  std::vector<wire::MemEntry> entries(nr_entries);
  reader.ReadBytes(absl::MakeSpan(reinterpret_cast<uint8_t*>(entries.data()),
                                  entries.size() * sizeof(wire::MemEntry)));
  std::vector<virtio::GuestRange> ranges;
  ranges.reserve(entries.size());
  for (const wire::MemEntry& entry : entries)
    ranges.push_back({entry.addr, entry.length});
  if (memory_ == nullptr) return Unspec("no guest memory");
  absl::StatusOr<virtio::GuestBacking> backing =
      virtio::GuestBacking::Create(*memory_, ranges);
  if (!backing.ok()) return Unspec(backing.status().message());
  return backing;
}

absl::Status GpuDevice::AttachBacking(const wire::ResourceAttachBacking& cmd,
                                      virtio::ChainReader& reader) {
  VGPU_ASSIGN_OR_RETURN(Resource * resource, FindResource(cmd.resource_id));
  if (resource->backing) {
    return Unspec(
        absl::StrCat("resource ", cmd.resource_id, " already has backing"));
  }
  VGPU_ASSIGN_OR_RETURN(virtio::GuestBacking backing,
                        ReadBacking(cmd.nr_entries, reader));
  if (resource->blob && backing.size() < resource->blob_size) {
    return InvalidParameter(absl::StrCat("backing of ", backing.size(),
                                         " bytes is smaller than blob size ",
                                         resource->blob_size));
  }
  resource->backing = std::move(backing);
  return absl::OkStatus();
}

absl::Status GpuDevice::DetachBacking(const wire::ResourceDetachBacking& cmd) {
  VGPU_ASSIGN_OR_RETURN(Resource * resource, FindResource(cmd.resource_id));
  if (!resource->backing) {
    return Unspec(
        absl::StrCat("resource ", cmd.resource_id, " has no backing"));
  }
  // Scanouts showing it keep their last published frame: frames hold host
  // tiles only, never guest pages.
  resource->backing.reset();
  return absl::OkStatus();
}

absl::Status GpuDevice::AssignUuid(const wire::ResourceAssignUuid& cmd) {
  if (!Negotiated(wire::kFeatureResourceUuid)) {
    return InvalidParameter("RESOURCE_UUID was not negotiated");
  }
  VGPU_ASSIGN_OR_RETURN(Resource * resource, FindResource(cmd.resource_id));
  if (!resource->uuid) {
    // A version-4 style UUID: device-random high half, resource id below.
    if (uuid_seed_ == 0) {
      std::random_device random;
      uuid_seed_ = (uint64_t{random()} << 32) | random() | 1;
    }
    std::array<uint8_t, 16> uuid{};
    std::memcpy(uuid.data(), &uuid_seed_, 8);
    std::memcpy(uuid.data() + 12, &cmd.resource_id, 4);
    uuid[6] = static_cast<uint8_t>((uuid[6] & 0x0F) | 0x40);
    uuid[8] = static_cast<uint8_t>((uuid[8] & 0x3F) | 0x80);
    resource->uuid = uuid;
  }
  wire::RespResourceUuid response{};
  std::memcpy(response.uuid, resource->uuid->data(), 16);
  SetResponse(wire::kRespOkResourceUuid, &response, sizeof(response));
  return absl::OkStatus();
}

absl::Status GpuDevice::CreateBlob(const wire::ResourceCreateBlob& cmd,
                                   virtio::ChainReader& reader) {
  if (cmd.resource_id == 0) return InvalidResourceId(0);
  if (cmd.blob_mem != wire::kBlobMemGuest) {
    return InvalidParameter(
        absl::StrCat("blob_mem ", cmd.blob_mem, " needs a 3D renderer"));
  }
  if (resources_.contains(cmd.resource_id))
    return InvalidResourceId(cmd.resource_id);
  if (cmd.size == 0) return InvalidParameter("blob size 0");
  if (resources_.size() >= options_.max_resources) {
    return OutOfMemory(
        absl::StrCat("resource limit of ", options_.max_resources, " reached"));
  }
  std::optional<virtio::GuestBacking> backing;
  if (cmd.nr_entries > 0) {
    VGPU_ASSIGN_OR_RETURN(backing, ReadBacking(cmd.nr_entries, reader));
    // QEMU trusts `size`; we insist the pages are really there.
    if (backing->size() < cmd.size) {
      return InvalidParameter(absl::StrCat("blob size ", cmd.size,
                                           " exceeds its ", backing->size(),
                                           " backing bytes"));
    }
  }
  auto resource = std::make_unique<Resource>();
  resource->id = cmd.resource_id;
  resource->blob = true;
  resource->shared = true;
  resource->blob_size = cmd.size;
  resource->backing = std::move(backing);
  resources_.emplace(cmd.resource_id, std::move(resource));
  return absl::OkStatus();
}

void GpuDevice::HandleCursor(absl::Span<const absl::Span<uint8_t>> readable) {
  virtio::ChainReader reader(readable);
  std::optional<wire::UpdateCursor> cmd = reader.Read<wire::UpdateCursor>();
  if (!cmd) {
    ++stats_.cursor_ignored;
    VGPU_LOG_GUEST_ERROR() << "cursor command shorter than 56 bytes";
    return;
  }
  ++stats_.commands[cmd->hdr.type];
  if (cmd->hdr.type != wire::kCmdUpdateCursor &&
      cmd->hdr.type != wire::kCmdMoveCursor) {
    ++stats_.cursor_ignored;
    VGPU_LOG_GUEST_ERROR() << absl::StrCat("command 0x",
                                           absl::Hex(cmd->hdr.type))
                           << " on the cursor queue";
    return;
  }
  if (cmd->pos.scanout_id >= scanouts_.size()) {
    ++stats_.cursor_ignored;
    VGPU_LOG_GUEST_ERROR() << "cursor on scanout " << cmd->pos.scanout_id;
    return;
  }
  CursorUpdate update;
  update.scanout_id = cmd->pos.scanout_id;
  update.x = cmd->pos.x;
  update.y = cmd->pos.y;
  update.visible = cmd->resource_id != 0;
  if (cmd->hdr.type == wire::kCmdUpdateCursor && cmd->resource_id != 0) {
    auto it = resources_.find(cmd->resource_id);
    auto image = std::make_shared<CursorImage>();
    image->hot_x = std::min(cmd->hot_x, kCursorSize - 1);
    image->hot_y = std::min(cmd->hot_y, kCursorSize - 1);
    bool ok = false;
    if (it != resources_.end()) {
      Resource& resource = *it->second;
      if (!resource.blob && resource.width == kCursorSize &&
          resource.height == kCursorSize) {
        if (resource.shared && resource.backing) {
          ok = resource.backing->CopyOut(0, absl::MakeSpan(image->pixels)) ==
               kCursorBytes;
        } else if (!resource.shared) {
          Frame view(kCursorSize, kCursorSize, 0, 0, resource.grid.Snapshot(),
                     resource.grid.columns(), 0);
          view.ReadPixels(PixelRect{0, 0, kCursorSize, kCursorSize},
                          image->pixels.data(),
                          size_t{kCursorSize} * kBytesPerPixel);
          ok = true;
        }
      } else if (resource.blob && resource.backing &&
                 resource.blob_size >= kCursorBytes) {
        ok = resource.backing->CopyOut(0, absl::MakeSpan(image->pixels)) ==
             kCursorBytes;
      }
    }
    if (ok) {
      stats_.cursor_bytes_copied += kCursorBytes;
      cursor_image_ = image;
      update.image = std::move(image);
    } else {
      // QEMU keeps the previous image; so do we, and say why.
      ++stats_.cursor_ignored;
      VGPU_LOG_GUEST_ERROR() << "cursor resource " << cmd->resource_id
                             << " is not a 64x64 resource with pixels";
    }
  }
  sink_->OnCursor(update);
}

void GpuDevice::ReadConfig(uint32_t offset, absl::Span<uint8_t> out) const {
  wire::Config config{};
  config.events_read = events_read_;
  config.num_scanouts = static_cast<uint32_t>(scanouts_.size());
  config.num_capsets = 0;
  const auto* bytes = reinterpret_cast<const uint8_t*>(&config);
  for (size_t i = 0; i < out.size(); ++i) {
    uint64_t at = uint64_t{offset} + i;
    out[i] = at < sizeof(config) ? bytes[at] : 0;
  }
}

void GpuDevice::WriteConfig(uint32_t offset, absl::Span<const uint8_t> in) {
  // Only events_clear (write 1 to clear) is writable.
  constexpr uint32_t kEventsClear = offsetof(wire::Config, events_clear);
  if (offset != kEventsClear || in.size() != sizeof(uint32_t)) {
    VGPU_LOG_GUEST_ERROR() << "config write of " << in.size() << " bytes at "
                           << offset << " ignored";
    return;
  }
  uint32_t clear;
  std::memcpy(&clear, in.data(), sizeof(clear));
  events_read_ &= ~clear;
}

absl::Status GpuDevice::SetDisplay(uint32_t scanout_id,
                                   const DisplayConfig& display) {
  if (scanout_id >= scanouts_.size()) {
    return absl::OutOfRangeError(absl::StrCat("no scanout ", scanout_id));
  }
  if (display.enabled &&
      (display.width < kMinScanoutSize || display.height < kMinScanoutSize ||
       display.width > kEdidMaxDimension ||
       display.height > kEdidMaxDimension)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mode ", display.width, "x", display.height, " outside 16..4095"));
  }
  scanouts_[scanout_id]->display = display;
  events_read_ |= wire::kEventDisplay;
  if (config_changed_) config_changed_();
  return absl::OkStatus();
}

void GpuDevice::Reset() {
  for (uint32_t i = 0; i < scanouts_.size(); ++i) DisableScanout(i);
  resources_.clear();
  host_memory_used_ = 0;
  events_read_ = 0;
  driver_features_ = 0;
  needs_reset_ = false;
  if (cursor_image_) {
    cursor_image_ = nullptr;
    sink_->OnCursor(CursorUpdate{});
  }
}

}  // namespace vgpu::gpu
