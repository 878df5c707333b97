#include "device/guest_sim/vhost_user_link.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

#include "common/status_macros.h"

namespace vgpu::guest_sim {

using vhost_user::Fd;
using vhost_user::Header;
using vhost_user::Message;

absl::StatusOr<std::unique_ptr<VhostUserLink>> VhostUserLink::Connect(
    const std::string& socket_path, const std::atomic<bool>* cancel) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(address.sun_path))
    return absl::InvalidArgumentError("path too long");
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size());
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, "socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&address),
              sizeof(address)) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("connect ", socket_path));
  }
  return std::unique_ptr<VhostUserLink>(
      new VhostUserLink(std::move(fd), cancel));
}

absl::StatusOr<Message> VhostUserLink::ReadReply(uint32_t request) {
  while (cancel_ != nullptr) {
    if (cancel_->load()) {
      return absl::CancelledError(
          absl::StrCat("stopped waiting for the reply to request ", request));
    }
    pollfd p{socket_.get(), POLLIN, 0};
    const int n = poll(&p, 1, 100);
    if (n > 0) break;
    if (n < 0 && errno != EINTR) return absl::ErrnoToStatus(errno, "poll");
  }
  return vhost_user::ReadMessage(socket_.get());
}

absl::Status VhostUserLink::Request(uint32_t request,
                                    absl::Span<const uint8_t> payload,
                                    absl::Span<const int> fds,
                                    bool need_reply) {
  if (!socket_.valid()) return absl::FailedPreconditionError("disconnected");
  bool ack = need_reply || (protocol_features_ & vhost_user::kProtocolReplyAck);
  Header header{request,
                vhost_user::kVersion | (ack ? vhost_user::kFlagNeedReply : 0u),
                static_cast<uint32_t>(payload.size())};
  VGPU_RETURN_IF_ERROR(
      vhost_user::WriteMessage(socket_.get(), header, payload, fds));
  if (!ack) return absl::OkStatus();
  VGPU_ASSIGN_OR_RETURN(Message reply, ReadReply(request));
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

absl::StatusOr<Message> VhostUserLink::Call(uint32_t request,
                                            absl::Span<const uint8_t> payload) {
  if (!socket_.valid()) return absl::FailedPreconditionError("disconnected");
  Header header{request, vhost_user::kVersion,
                static_cast<uint32_t>(payload.size())};
  VGPU_RETURN_IF_ERROR(
      vhost_user::WriteMessage(socket_.get(), header, payload));
  VGPU_ASSIGN_OR_RETURN(Message reply, ReadReply(request));
  if (reply.header.request != request ||
      !(reply.header.flags & vhost_user::kFlagReply)) {
    return absl::DataLossError(
        absl::StrCat("unexpected reply to request ", request));
  }
  return reply;
}

absl::StatusOr<uint64_t> VhostUserLink::Negotiate(uint64_t wanted_protocol) {
  // As QEMU does at realize time.
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
  const uint64_t agreed = protocol & wanted_protocol;
  VGPU_RETURN_IF_ERROR(RequestWith(vhost_user::kSetProtocolFeatures, agreed));
  protocol_features_ = agreed;
  VGPU_RETURN_IF_ERROR(Request(vhost_user::kSetOwner, {}));
  return offered;
}

absl::StatusOr<std::vector<uint8_t>> VhostUserLink::GetConfig(uint32_t offset,
                                                              uint32_t size) {
  std::vector<uint8_t> request(sizeof(vhost_user::ConfigHeader) + size);
  const vhost_user::ConfigHeader header{offset, size, 0};
  std::memcpy(request.data(), &header, sizeof(header));
  VGPU_ASSIGN_OR_RETURN(Message reply, Call(vhost_user::kGetConfig, request));
  if (reply.payload.size() != request.size())
    return absl::DataLossError("GET_CONFIG reply");
  reply.payload.erase(reply.payload.begin(),
                      reply.payload.begin() + sizeof(header));
  return std::move(reply.payload);
}

absl::Status VhostUserLink::SetConfig(uint32_t offset,
                                      absl::Span<const uint8_t> bytes) {
  std::vector<uint8_t> request(sizeof(vhost_user::ConfigHeader) + bytes.size());
  const vhost_user::ConfigHeader header{offset,
                                        static_cast<uint32_t>(bytes.size()), 0};
  std::memcpy(request.data(), &header, sizeof(header));
  std::copy(bytes.begin(), bytes.end(), request.begin() + sizeof(header));
  return Request(vhost_user::kSetConfig, request);
}

absl::Status VhostUserLink::SetMemTable(const virtio::GuestMemory& memory) {
  const auto& regions = memory.regions();
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
  return Request(vhost_user::kSetMemTable, table, fds, /*need_reply=*/true);
}

absl::Status VhostUserLink::SetupRing(uint32_t index,
                                      const virtio::DriverQueue& queue,
                                      const virtio::GuestMemory& memory) {
  if (index >= kMaxRings) return absl::InvalidArgumentError("ring index");
  auto user_addr = [&memory](uint64_t gpa) -> uint64_t {
    for (const virtio::GuestRegion& region : memory.regions()) {
      if (gpa >= region.guest_phys_addr &&
          gpa - region.guest_phys_addr < region.size) {
        return region.user_addr + (gpa - region.guest_phys_addr);
      }
    }
    return 0;
  };
  vhost_user::VringState num{index, queue.size()};
  VGPU_RETURN_IF_ERROR(RequestWith(vhost_user::kSetVringNum, num));
  vhost_user::VringState base{index, 0};
  VGPU_RETURN_IF_ERROR(RequestWith(vhost_user::kSetVringBase, base));
  const virtio::DriverQueueLayout& layout = queue.layout();
  vhost_user::VringAddr addr{index,
                             0,
                             user_addr(layout.desc_gpa),
                             user_addr(layout.used_gpa),
                             user_addr(layout.avail_gpa),
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

absl::StatusOr<uint32_t> VhostUserLink::StopRing(uint32_t index) {
  vhost_user::VringState state{index, 0};
  VGPU_ASSIGN_OR_RETURN(
      Message reply,
      Call(vhost_user::kGetVringBase,
           absl::MakeConstSpan(reinterpret_cast<uint8_t*>(&state),
                               sizeof(state))));
  if (!reply.PayloadAs(&state))
    return absl::DataLossError("GET_VRING_BASE reply");
  return state.num;
}

absl::Status VhostUserLink::Kick(uint32_t index, virtio::DriverQueue& queue) {
  if (!socket_.valid()) return absl::FailedPreconditionError("disconnected");
  if (index >= kMaxRings || !kick_[index].valid())
    return absl::FailedPreconditionError("ring not set up");
  if (!queue.NeedsKick()) return absl::OkStatus();
  uint64_t one = 1;
  if (write(kick_[index].get(), &one, sizeof(one)) != sizeof(one)) {
    return absl::ErrnoToStatus(errno, "kick");
  }
  return absl::OkStatus();
}

int VhostUserLink::call_fd(uint32_t index) const {
  return index < kMaxRings ? call_[index].get() : -1;
}

absl::Status VhostUserLink::WaitUsed(uint32_t index, virtio::DriverQueue& queue,
                                     absl::Time deadline,
                                     const std::atomic<bool>* cancel) {
  if (index >= kMaxRings || !call_[index].valid())
    return absl::FailedPreconditionError("ring not set up");
  while (!queue.HasUsed()) {
    int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("queue ", index, ": no reply from the back-end"));
    }
    if (cancel != nullptr && cancel->load()) {
      return absl::CancelledError(
          absl::StrCat("queue ", index, ": stopped while waiting"));
    }
    pollfd p{call_[index].get(), POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 100)));
    if (n > 0) {
      uint64_t value;
      [[maybe_unused]] ssize_t r =
          read(call_[index].get(), &value, sizeof(value));
    }
  }
  return absl::OkStatus();
}

}  // namespace vgpu::guest_sim
