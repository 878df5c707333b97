#include "device/guest_sim/frontend.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

#include "common/log.h"
#include "common/status_macros.h"
#include "device/gpu/edid.h"
#include "device/gpu/wire.h"

namespace vgpu::synth {

using vhost_user::Fd;
using vhost_user::Header;
using vhost_user::Message;

namespace {

constexpr uint64_t kWantedProtocol =
    vhost_user::kProtocolReplyAck | vhost_user::kProtocolConfig;

}  // namespace

absl::StatusOr<std::unique_ptr<VhostUserFrontend>> VhostUserFrontend::Connect(
    FrontendOptions options) {
  std::unique_ptr<VhostUserFrontend> frontend(
      new VhostUserFrontend(std::move(options)));
  VGPU_ASSIGN_OR_RETURN(frontend->link_, guest_sim::VhostUserLink::Connect(
                                             frontend->options_.socket_path,
                                             frontend->options_.cancel));
  VGPU_RETURN_IF_ERROR(frontend->Handshake());
  return frontend;
}

VhostUserFrontend::~VhostUserFrontend() { Disconnect(); }

void VhostUserFrontend::CloseDisplayChannel() {
  stopping_ = true;
  if (display_peer_.valid()) shutdown(display_peer_.get(), SHUT_RDWR);
  if (display_thread_.joinable()) display_thread_.join();
  display_peer_.Reset();
  stopping_ = false;
}

void VhostUserFrontend::Disconnect() {
  stopping_ = true;
  if (display_peer_.valid()) shutdown(display_peer_.get(), SHUT_RDWR);
  if (display_thread_.joinable()) display_thread_.join();
  if (link_) link_->Disconnect();
  display_peer_.Reset();
}

absl::Status VhostUserFrontend::Handshake() {
  VGPU_ASSIGN_OR_RETURN(uint64_t offered, link_->Negotiate(kWantedProtocol));
  // Config space: num_scanouts.
  VGPU_ASSIGN_OR_RETURN(std::vector<uint8_t> config,
                        link_->GetConfig(0, sizeof(gpu::wire::Config)));
  gpu::wire::Config gpu_config;
  std::memcpy(&gpu_config, config.data(), sizeof(gpu_config));
  num_scanouts_ = gpu_config.num_scanouts;

  // What the guest acks: the transport bits the VMM exposes plus EDID (and
  // blob if asked for).
  uint64_t wanted =
      vhost_user::kFeatureVersion1 | vhost_user::kFeatureIndirectDesc |
      vhost_user::kFeatureEventIdx | (1ull << gpu::wire::kFeatureEdid);
  if (options_.use_blob) wanted |= 1ull << gpu::wire::kFeatureResourceBlob;
  features_ = (offered & wanted) | vhost_user::kFeatureProtocolFeatures;
  options_.guest.event_idx = features_ & vhost_user::kFeatureEventIdx;
  options_.guest.indirect = features_ & vhost_user::kFeatureIndirectDesc;
  return StartDevice();
}

absl::Status VhostUserFrontend::StartDevice() {
  VGPU_ASSIGN_OR_RETURN(
      guest_, guest_sim::SimulatedGuest::CreateDriverOnly(options_.guest));
  // DRIVER_OK: QEMU starts the vhost device.
  VGPU_RETURN_IF_ERROR(link_->RequestWith(vhost_user::kSetFeatures, features_));
  const virtio::GuestMemory& memory = *guest_->memory_ptr();
  VGPU_RETURN_IF_ERROR(link_->SetMemTable(memory));
  VGPU_RETURN_IF_ERROR(link_->SetupRing(0, guest_->control(), memory));
  VGPU_RETURN_IF_ERROR(link_->SetupRing(1, guest_->cursor(), memory));

  // The display channel: we keep one end and play QEMU's part on it.
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return absl::ErrnoToStatus(errno, "socketpair");
  }
  display_peer_ = Fd(pair[0]);
  Fd theirs(pair[1]);
  int their_fd = theirs.get();
  VGPU_RETURN_IF_ERROR(
      link_->Request(vhost_user::kGpuSetSocket, {}, {&their_fd, 1}));
  if (options_.serve_display)
    display_thread_ = std::thread([this] { ServeDisplay(); });

  guest_->set_link([this](uint32_t queue, virtio::DriverQueue& driver) {
    VGPU_RETURN_IF_ERROR(link_->Kick(queue, driver));
    return link_->WaitUsed(queue, driver, absl::Now() + options_.timeout,
                           options_.cancel);
  });
  return absl::OkStatus();
}

absl::Status VhostUserFrontend::Reboot() {
  VGPU_RETURN_IF_ERROR(StopRings().status());
  // QEMU closes the display socket on reset and makes a new one at DRIVER_OK.
  CloseDisplayChannel();
  return StartDevice();
}

absl::StatusOr<uint32_t> VhostUserFrontend::StopRings() {
  VGPU_ASSIGN_OR_RETURN(uint32_t control_base, link_->StopRing(0));
  VGPU_RETURN_IF_ERROR(link_->StopRing(1).status());
  return control_base;
}

void VhostUserFrontend::ServeDisplay() {
  // QEMU's side of the display protocol: answer the queries a back-end may
  // make, count the rest.
  const int fd = display_peer_.get();
  while (!stopping_) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    // The display protocol has no version bits, and UPDATE carries pixels.
    absl::StatusOr<Message> message = vhost_user::ReadMessage(
        fd, {.require_version = false, .max_payload = 256u << 20});
    if (!message.ok()) return;
    ++display_stats_.messages;
    Header reply{message->header.request, vhost_user::kFlagReply, 0};
    switch (message->header.request) {
      case vhost_user::kGpuGetProtocolFeatures: {
        uint64_t features =
            1;  // VHOST_USER_GPU_PROTOCOL_F_EDID, as QEMU (no dmabuf)
        reply.size = sizeof(features);
        (void)vhost_user::WriteMessage(
            fd, reply,
            absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&features), 8));
        break;
      }
      case vhost_user::kGpuGetDisplayInfo: {
        gpu::wire::RespDisplayInfo info{};
        info.hdr.type = gpu::wire::kRespOkDisplayInfo;
        info.pmodes[0].r = {0, 0, options_.display_width,
                            options_.display_height};
        info.pmodes[0].enabled = 1;
        reply.size = sizeof(info);
        (void)vhost_user::WriteMessage(
            fd, reply,
            absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&info),
                                sizeof(info)));
        break;
      }
      case vhost_user::kGpuGetEdid: {
        gpu::wire::RespEdid edid{};
        edid.hdr.type = gpu::wire::kRespOkEdid;
        auto block =
            gpu::MakeEdid(options_.display_width, options_.display_height, 1);
        edid.size = 128;
        std::memcpy(edid.edid, block.data(), block.size());
        reply.size = sizeof(edid);
        (void)vhost_user::WriteMessage(
            fd, reply,
            absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&edid),
                                sizeof(edid)));
        break;
      }
      case vhost_user::kGpuDmabufUpdate:
        (void)vhost_user::WriteMessage(fd, reply, {});
        break;
      case vhost_user::kGpuScanout:
        ++display_stats_.scanouts;
        break;
      case vhost_user::kGpuUpdate:
        ++display_stats_.updates;
        display_stats_.update_bytes += message->payload.size();
        break;
      case vhost_user::kGpuCursorPos:
      case vhost_user::kGpuCursorPosHide:
      case vhost_user::kGpuCursorUpdate:
        ++display_stats_.cursor_messages;
        break;
      default:
        break;
    }
  }
}

}  // namespace vgpu::synth
