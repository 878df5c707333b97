#include "device/guest_sim/frontend.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
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

absl::StatusOr<Fd> ConnectUnix(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path))
    return absl::InvalidArgumentError("path too long");
  std::memcpy(address.sun_path, path.c_str(), path.size());
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, "socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&address),
              sizeof(address)) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("connect ", path));
  }
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<VhostUserFrontend>> VhostUserFrontend::Connect(
    FrontendOptions options) {
  std::unique_ptr<VhostUserFrontend> frontend(
      new VhostUserFrontend(std::move(options)));
  VGPU_ASSIGN_OR_RETURN(frontend->socket_,
                        ConnectUnix(frontend->options_.socket_path));
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
  socket_.Reset();
  display_peer_.Reset();
}

uint64_t VhostUserFrontend::UserAddr(uint64_t gpa) const {
  for (const virtio::GuestRegion& region : guest_->memory_ptr()->regions()) {
    if (gpa >= region.guest_phys_addr &&
        gpa - region.guest_phys_addr < region.size) {
      return region.user_addr + (gpa - region.guest_phys_addr);
    }
  }
  return 0;
}

absl::Status VhostUserFrontend::Request(uint32_t request,
                                        absl::Span<const uint8_t> payload,
                                        absl::Span<const int> fds,
                                        bool need_reply) {
  bool ack = need_reply || (protocol_features_ & vhost_user::kProtocolReplyAck);
  Header header{request,
                vhost_user::kVersion | (ack ? vhost_user::kFlagNeedReply : 0u),
                static_cast<uint32_t>(payload.size())};
  VGPU_RETURN_IF_ERROR(
      vhost_user::WriteMessage(socket_.get(), header, payload, fds));
  if (!ack) return absl::OkStatus();
  VGPU_ASSIGN_OR_RETURN(Message reply, vhost_user::ReadMessage(socket_.get()));
  uint64_t result = 1;
  if (reply.header.request != request || !reply.PayloadAs(&result)) {
    return absl::DataLossError(
        absl::StrCat("bad REPLY_ACK for request ", request));
  }
  if (result != 0)
    return absl::InternalError(
        absl::StrCat("back-end refused request ", request));
  return absl::OkStatus();
}

absl::StatusOr<Message> VhostUserFrontend::Call(
    uint32_t request, absl::Span<const uint8_t> payload) {
  Header header{request, vhost_user::kVersion,
                static_cast<uint32_t>(payload.size())};
  VGPU_RETURN_IF_ERROR(
      vhost_user::WriteMessage(socket_.get(), header, payload));
  VGPU_ASSIGN_OR_RETURN(Message reply, vhost_user::ReadMessage(socket_.get()));
  if (reply.header.request != request ||
      !(reply.header.flags & vhost_user::kFlagReply)) {
    return absl::DataLossError(
        absl::StrCat("unexpected reply to request ", request));
  }
  return reply;
}

absl::Status VhostUserFrontend::Handshake() {
  // Feature negotiation, as QEMU does at realize time.
  VGPU_ASSIGN_OR_RETURN(Message reply, Call(vhost_user::kGetFeatures, {}));
  uint64_t offered = 0;
  if (!reply.PayloadAs(&offered))
    return absl::DataLossError("GET_FEATURES reply");
  if (!(offered & vhost_user::kFeatureProtocolFeatures)) {
    return absl::FailedPreconditionError(
        "back-end lacks VHOST_USER_F_PROTOCOL_FEATURES");
  }
  VGPU_ASSIGN_OR_RETURN(reply, Call(vhost_user::kGetProtocolFeatures, {}));
  uint64_t protocol = 0;
  if (!reply.PayloadAs(&protocol))
    return absl::DataLossError("GET_PROTOCOL_FEATURES reply");
  if (!(protocol & vhost_user::kProtocolConfig)) {
    return absl::FailedPreconditionError(
        "back-end lacks VHOST_USER_PROTOCOL_F_CONFIG");
  }
  uint64_t wanted_protocol = protocol & kWantedProtocol;
  VGPU_RETURN_IF_ERROR(
      RequestWith(vhost_user::kSetProtocolFeatures, wanted_protocol));
  protocol_features_ = wanted_protocol;
  VGPU_RETURN_IF_ERROR(Request(vhost_user::kSetOwner, {}));

  // Config space: num_scanouts.
  struct {
    vhost_user::ConfigHeader header;
    gpu::wire::Config config;
  } config_request{{0, sizeof(gpu::wire::Config), 0}, {}};
  VGPU_ASSIGN_OR_RETURN(
      reply,
      Call(vhost_user::kGetConfig,
           absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&config_request),
                               sizeof(config_request))));
  if (!reply.PayloadAs(&config_request))
    return absl::DataLossError("GET_CONFIG reply");
  num_scanouts_ = config_request.config.num_scanouts;

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
  VGPU_RETURN_IF_ERROR(RequestWith(vhost_user::kSetFeatures, features_));
  const auto& regions = guest_->memory_ptr()->regions();
  std::vector<uint8_t> table(sizeof(vhost_user::MemTableHeader) +
                             regions.size() * sizeof(vhost_user::MemRegion));
  vhost_user::MemTableHeader table_header{static_cast<uint32_t>(regions.size()),
                                          0};
  std::memcpy(table.data(), &table_header, sizeof(table_header));
  std::vector<int> fds;
  for (size_t i = 0; i < regions.size(); ++i) {
    vhost_user::MemRegion region{regions[i].guest_phys_addr, regions[i].size,
                                 regions[i].user_addr,
                                 regions[i].mapping_offset};
    std::memcpy(table.data() + sizeof(table_header) + i * sizeof(region),
                &region, sizeof(region));
    fds.push_back(regions[i].mapping->fd());
  }
  VGPU_RETURN_IF_ERROR(
      Request(vhost_user::kSetMemTable, table, fds, /*need_reply=*/true));
  VGPU_RETURN_IF_ERROR(SetupRing(0, guest_->control()));
  VGPU_RETURN_IF_ERROR(SetupRing(1, guest_->cursor()));

  // The display channel: we keep one end and play QEMU's part on it.
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return absl::ErrnoToStatus(errno, "socketpair");
  }
  display_peer_ = Fd(pair[0]);
  Fd theirs(pair[1]);
  int their_fd = theirs.get();
  VGPU_RETURN_IF_ERROR(Request(vhost_user::kGpuSetSocket, {}, {&their_fd, 1}));
  if (options_.serve_display)
    display_thread_ = std::thread([this] { ServeDisplay(); });

  guest_->set_link([this](uint32_t queue, virtio::DriverQueue& driver) {
    return KickAndWait(queue, driver);
  });
  return absl::OkStatus();
}

absl::Status VhostUserFrontend::SetupRing(uint32_t index,
                                          virtio::DriverQueue& queue) {
  vhost_user::VringState num{index, queue.size()};
  VGPU_RETURN_IF_ERROR(RequestWith(vhost_user::kSetVringNum, num));
  vhost_user::VringState base{index, 0};
  VGPU_RETURN_IF_ERROR(RequestWith(vhost_user::kSetVringBase, base));
  const virtio::DriverQueueLayout& layout = queue.layout();
  vhost_user::VringAddr addr{index,
                             0,
                             UserAddr(layout.desc_gpa),
                             UserAddr(layout.used_gpa),
                             UserAddr(layout.avail_gpa),
                             0};
  VGPU_RETURN_IF_ERROR(RequestWith(vhost_user::kSetVringAddr, addr));
  kick_[index] = Fd(eventfd(0, EFD_CLOEXEC));
  call_[index] = Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!kick_[index].valid() || !call_[index].valid())
    return absl::ErrnoToStatus(errno, "eventfd");
  uint64_t kick = index, call = index;
  int kick_fd = kick_[index].get(), call_fd = call_[index].get();
  VGPU_RETURN_IF_ERROR(
      RequestWith(vhost_user::kSetVringKick, kick, {&kick_fd, 1}));
  VGPU_RETURN_IF_ERROR(
      RequestWith(vhost_user::kSetVringCall, call, {&call_fd, 1}));
  vhost_user::VringState enable{index, 1};
  return RequestWith(vhost_user::kSetVringEnable, enable);
}

absl::Status VhostUserFrontend::KickAndWait(uint32_t queue,
                                            virtio::DriverQueue& driver) {
  if (!socket_.valid()) return absl::FailedPreconditionError("disconnected");
  if (driver.NeedsKick()) {
    uint64_t one = 1;
    if (write(kick_[queue].get(), &one, sizeof(one)) != sizeof(one)) {
      return absl::ErrnoToStatus(errno, "kick");
    }
  }
  absl::Time deadline = absl::Now() + options_.timeout;
  while (!driver.HasUsed()) {
    int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("queue ", queue, ": no reply from the back-end"));
    }
    if (options_.cancel != nullptr && options_.cancel->load()) {
      return absl::CancelledError(
          absl::StrCat("queue ", queue, ": stopped while waiting"));
    }
    pollfd p{call_[queue].get(), POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 100)));
    if (n > 0) {
      uint64_t value;
      [[maybe_unused]] ssize_t r =
          read(call_[queue].get(), &value, sizeof(value));
    }
  }
  return absl::OkStatus();
}

absl::Status VhostUserFrontend::Reboot() {
  VGPU_RETURN_IF_ERROR(StopRings().status());
  // QEMU closes the display socket on reset and makes a new one at DRIVER_OK.
  CloseDisplayChannel();
  return StartDevice();
}

absl::StatusOr<uint32_t> VhostUserFrontend::StopRings() {
  uint32_t control_base = 0;
  for (uint32_t index = 0; index < 2; ++index) {
    vhost_user::VringState state{index, 0};
    VGPU_ASSIGN_OR_RETURN(
        Message reply,
        Call(vhost_user::kGetVringBase,
             absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&state),
                                 sizeof(state))));
    if (!reply.PayloadAs(&state))
      return absl::DataLossError("GET_VRING_BASE reply");
    if (index == 0) control_base = state.num;
  }
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
