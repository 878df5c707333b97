#include "device/vhost_user/backend.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"

#include "common/checked_math.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "device/virtio/guest_memory.h"
#include "device/virtio/mapping_guard.h"

namespace vgpu::vhost_user {
namespace {

constexpr uint64_t kOfferedProtocolFeatures =
    kProtocolReplyAck | kProtocolConfig | kProtocolResetDevice;

const char* RequestName(uint32_t request) {
  switch (request) {
    case kGetFeatures:
      return "GET_FEATURES";
    case kSetFeatures:
      return "SET_FEATURES";
    case kSetOwner:
      return "SET_OWNER";
    case kResetOwner:
      return "RESET_OWNER";
    case kSetMemTable:
      return "SET_MEM_TABLE";
    case kSetVringNum:
      return "SET_VRING_NUM";
    case kSetVringAddr:
      return "SET_VRING_ADDR";
    case kSetVringBase:
      return "SET_VRING_BASE";
    case kGetVringBase:
      return "GET_VRING_BASE";
    case kSetVringKick:
      return "SET_VRING_KICK";
    case kSetVringCall:
      return "SET_VRING_CALL";
    case kSetVringErr:
      return "SET_VRING_ERR";
    case kGetProtocolFeatures:
      return "GET_PROTOCOL_FEATURES";
    case kSetProtocolFeatures:
      return "SET_PROTOCOL_FEATURES";
    case kGetQueueNum:
      return "GET_QUEUE_NUM";
    case kSetVringEnable:
      return "SET_VRING_ENABLE";
    case kGetConfig:
      return "GET_CONFIG";
    case kSetConfig:
      return "SET_CONFIG";
    case kGpuSetSocket:
      return "GPU_SET_SOCKET";
    case kResetDevice:
      return "RESET_DEVICE";
    default:
      return "unknown request";
  }
}

absl::Status Malformed(const Message& message, absl::string_view why) {
  return absl::DataLossError(
      absl::StrCat("malformed ", RequestName(message.header.request), " (",
                   message.header.request, "): ", why));
}

// Reads a payload that is exactly a T (naming a queue in its `index`
// field, checked by the caller).
template <typename T>
absl::Status ReadQueuePayload(const Message& message, T* out) {
  if (!message.PayloadAs(out)) {
    return Malformed(message,
                     absl::StrCat("payload of ", message.payload.size(),
                                  " bytes, expected ", sizeof(T)));
  }
  return absl::OkStatus();
}

}  // namespace

VhostUserBackend::VhostUserBackend(VhostUserDevice* device, EventLoop* loop,
                                   Fd socket)
    : device_(device),
      num_queues_(std::min(device->num_queues(), kMaxQueues)),
      loop_(loop),
      socket_(std::move(socket)) {
  device_->SetKicker(this);
}

VhostUserBackend::~VhostUserBackend() {
  for (uint32_t i = 0; i < num_queues_; ++i) StopQueue(i);
  if (socket_.valid()) loop_->Unwatch(socket_.get());
  if (!closed_) device_->Disconnected();
  device_->SetKicker(nullptr);
}

absl::Status VhostUserBackend::CheckQueueIndex(const Message& message,
                                               uint32_t index) const {
  if (index >= num_queues_)
    return Malformed(message, "queue index out of range");
  return absl::OkStatus();
}

absl::Status VhostUserBackend::Start(
    std::function<void(const absl::Status&)> on_close) {
  on_close_ = std::move(on_close);
  return loop_->Watch(socket_.get(), EPOLLIN,
                      [this](uint32_t events) { OnSocket(events); });
}

void VhostUserBackend::Close(const absl::Status& reason) {
  if (closed_) return;
  closed_ = true;
  for (uint32_t i = 0; i < num_queues_; ++i) StopQueue(i);
  loop_->Unwatch(socket_.get());
  device_->Disconnected();
  // The guest that owned this state is gone: a new one starts from scratch.
  device_->Reset();
  device_->SetGuestMemory(nullptr);
  ++stats_.device_resets;
  if (on_close_) on_close_(reason);  // may destroy *this: nothing after it
}

void VhostUserBackend::OnSocket(uint32_t events) {
  if (closed_) return;
  if (!(events & EPOLLIN) && (events & (EPOLLHUP | EPOLLERR))) {
    Close(absl::UnavailableError("front-end hung up"));
    return;
  }
  absl::StatusOr<Message> message = ReadMessage(socket_.get());
  if (!message.ok()) {
    Close(message.status());
    return;
  }
  ++stats_.messages;
  absl::Status status = Handle(*message);
  if (status.ok()) status = lost_memory_;
  if (!status.ok()) Close(status);
}

absl::Status VhostUserBackend::Reply(const Message& request,
                                     absl::Span<const uint8_t> payload) {
  Header header{request.header.request, kVersion | kFlagReply,
                static_cast<uint32_t>(payload.size())};
  return WriteMessage(socket_.get(), header, payload);
}

absl::Status VhostUserBackend::Handle(Message& message) {
  const uint32_t request = message.header.request;
  VGPU_LOG(DEBUG) << "vhost-user " << RequestName(request) << " size "
                  << message.header.size;
  bool replied = false;  // a request with its own reply never gets a REPLY_ACK
  absl::Status result = absl::OkStatus();
  switch (request) {
    case kGetFeatures: {
      uint64_t features = kFeatureVersion1 | kFeatureProtocolFeatures |
                          kFeatureIndirectDesc | kFeatureEventIdx |
                          device_->OfferedFeatures();
      VGPU_RETURN_IF_ERROR(ReplyWith(message, features));
      replied = true;
      break;
    }
    case kSetFeatures: {
      if (!message.PayloadAs(&features_))
        return Malformed(message, "payload is not a u64");
      device_->SetDriverFeatures(features_);
      // Without PROTOCOL_FEATURES rings are enabled as soon as they start.
      if (!protocol_negotiated()) {
        for (uint32_t i = 0; i < num_queues_; ++i) {
          queues_[i].enabled = true;
          UpdateRunning(i);
        }
      }
      break;
    }
    case kGetProtocolFeatures:
      VGPU_RETURN_IF_ERROR(ReplyWith(message, kOfferedProtocolFeatures));
      replied = true;
      break;
    case kSetProtocolFeatures: {
      uint64_t features;
      if (!message.PayloadAs(&features))
        return Malformed(message, "payload is not a u64");
      protocol_features_ = features & kOfferedProtocolFeatures;
      break;
    }
    case kSetOwner:
      break;
    case kResetOwner:
    case kResetDevice:
      VGPU_LOG(INFO) << RequestName(request)
                     << ": guest reset, dropping device state";
      for (uint32_t i = 0; i < num_queues_; ++i) StopQueue(i);
      device_->Reset();
      ++stats_.device_resets;
      break;
    case kSetMemTable:
      VGPU_RETURN_IF_ERROR(SetMemTable(message));
      break;
    case kSetVringNum:
    case kSetVringBase:
    case kSetVringEnable: {
      VringState state;
      VGPU_RETURN_IF_ERROR(ReadQueuePayload(message, &state));
      VGPU_RETURN_IF_ERROR(CheckQueueIndex(message, state.index));
      Queue& queue = queues_[state.index];
      if (request == kSetVringNum) {
        if (state.num == 0 || state.num > virtio::kMaxQueueSize ||
            (state.num & (state.num - 1))) {
          return Malformed(message, absl::StrCat("queue size ", state.num));
        }
        queue.size = static_cast<uint16_t>(state.num);
      } else if (request == kSetVringBase) {
        if (state.num > 0xFFFF) return Malformed(message, "base above 65535");
        queue.base = static_cast<uint16_t>(state.num);
      } else {
        queue.enabled = state.num != 0;
        UpdateRunning(state.index);
        if (queue.enabled) ProcessQueue(state.index);
      }
      break;
    }
    case kSetVringAddr: {
      VringAddr addr;
      VGPU_RETURN_IF_ERROR(ReadQueuePayload(message, &addr));
      VGPU_RETURN_IF_ERROR(CheckQueueIndex(message, addr.index));
      queues_[addr.index].addr = addr;
      queues_[addr.index].has_addr = true;
      break;
    }
    case kGetVringBase: {
      VringState state;
      VGPU_RETURN_IF_ERROR(ReadQueuePayload(message, &state));
      VGPU_RETURN_IF_ERROR(CheckQueueIndex(message, state.index));
      Queue& queue = queues_[state.index];
      if (queue.ring) queue.base = queue.ring->last_avail_index();
      StopQueue(state.index);
      state.num = queue.base;
      VGPU_RETURN_IF_ERROR(ReplyWith(message, state));
      replied = true;
      break;
    }
    case kSetVringKick:
    case kSetVringCall:
    case kSetVringErr: {
      uint64_t value;
      if (!message.PayloadAs(&value))
        return Malformed(message, "payload is not a u64");
      uint32_t index = static_cast<uint32_t>(value & kVringIndexMask);
      VGPU_RETURN_IF_ERROR(CheckQueueIndex(message, index));
      bool no_fd = value & kVringNoFd;
      if (!no_fd && message.fds.size() != 1)
        return Malformed(message, "expected one fd");
      Fd fd = no_fd ? Fd() : std::move(message.fds[0]);
      Queue& queue = queues_[index];
      if (request == kSetVringCall) {
        queue.call = std::move(fd);  // replaced several times; use the latest
      } else if (request == kSetVringErr) {
        queue.err = std::move(fd);
      } else {
        StopQueue(index);
        if (no_fd) return Malformed(message, "polling rings are not supported");
        queue.kick = std::move(fd);
        VGPU_RETURN_IF_ERROR(StartQueue(index));
      }
      break;
    }
    case kGetQueueNum: {
      uint64_t queues = num_queues_;
      VGPU_RETURN_IF_ERROR(ReplyWith(message, queues));
      replied = true;
      break;
    }
    case kGetConfig:
    case kSetConfig: {
      ConfigHeader config;
      if (!message.PayloadAs(&config, /*at_least=*/true) ||
          config.size > kMaxConfigSize ||
          message.payload.size() != sizeof(config) + config.size) {
        return Malformed(message, "bad config payload");
      }
      absl::Span<uint8_t> data =
          absl::MakeSpan(message.payload).subspan(sizeof(config));
      if (request == kGetConfig) {
        device_->ReadConfig(config.offset, data);
        VGPU_RETURN_IF_ERROR(Reply(message, message.payload));
        replied = true;
      } else {
        device_->WriteConfig(config.offset, data);
      }
      break;
    }
    case kSetLogBase:
    case kSetLogFd:
    case kSetBackendReqFd:
    default: {
      // The device's own (GPU_SET_SOCKET), or one not offered. That is
      // refused politely: the front-end asked for something we never
      // advertised, which is its bug, not a reason to drop it.
      absl::Status own = device_->HandleRequest(message);
      if (own.ok()) break;
      if (!absl::IsNotFound(own)) return Malformed(message, own.message());
      VGPU_LOG(WARNING) << "vhost-user: ignoring " << RequestName(request)
                        << " (" << request << ")";
      result = absl::UnimplementedError(RequestName(request));
      break;
    }
  }
  if (!replied && (message.header.flags & kFlagNeedReply) &&
      (protocol_features_ & kProtocolReplyAck)) {
    uint64_t ack = result.ok() ? 0 : 1;
    VGPU_RETURN_IF_ERROR(ReplyWith(message, ack));
  }
  return absl::OkStatus();
}

absl::Status VhostUserBackend::SetMemTable(Message& message) {
  MemTableHeader table;
  if (!message.PayloadAs(&table, /*at_least=*/true))
    return Malformed(message, "short payload");
  if (table.nregions == 0 || table.nregions > kMaxMemRegions ||
      message.payload.size() !=
          sizeof(table) + table.nregions * sizeof(MemRegion) ||
      message.fds.size() != table.nregions) {
    return Malformed(
        message, absl::StrCat(table.nregions, " regions, ", message.fds.size(),
                              " fds, ", message.payload.size(), " bytes"));
  }
  std::vector<virtio::GuestRegion> regions;
  for (uint32_t i = 0; i < table.nregions; ++i) {
    MemRegion region;
    std::memcpy(&region,
                message.payload.data() + sizeof(table) + i * sizeof(MemRegion),
                sizeof(region));
    auto length = CheckedAdd64(region.memory_size, region.mmap_offset);
    if (!length || region.memory_size == 0)
      return Malformed(message, "region size overflows");
    absl::StatusOr<std::shared_ptr<virtio::MemoryMapping>> mapping =
        virtio::MemoryMapping::MapFd(message.fds[i].get(), *length);
    if (!mapping.ok()) return Malformed(message, mapping.status().message());
    regions.push_back({.guest_phys_addr = region.guest_phys_addr,
                       .size = region.memory_size,
                       .mapping = *std::move(mapping),
                       .mapping_offset = region.mmap_offset,
                       .user_addr = region.userspace_addr});
    VGPU_LOG(INFO) << "guest RAM region " << i << ": gpa 0x" << std::hex
                   << region.guest_phys_addr << " size 0x" << region.memory_size
                   << " mmap_offset 0x" << region.mmap_offset << std::dec;
  }
  absl::StatusOr<std::shared_ptr<const virtio::GuestMemory>> memory =
      virtio::GuestMemory::Create(std::move(regions));
  if (!memory.ok()) return Malformed(message, memory.status().message());
  device_->SetGuestMemory(*std::move(memory));
  // Running rings point into the old table: map them again in the new one.
  for (uint32_t i = 0; i < num_queues_; ++i) {
    Queue& queue = queues_[i];
    if (!queue.ring) continue;
    queue.base = queue.ring->last_avail_index();
    VGPU_ASSIGN_OR_RETURN(queue.ring, MapRing(queue));
    queue.ring->SetBase(queue.base);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<virtio::SplitVirtqueue>>
VhostUserBackend::MapRing(const Queue& queue) const {
  const std::shared_ptr<const virtio::GuestMemory>& memory =
      device_->guest_memory();
  if (memory == nullptr)
    return absl::FailedPreconditionError("ring started before SET_MEM_TABLE");
  if (!queue.has_addr || queue.size == 0) {
    return absl::FailedPreconditionError(
        "ring started before SET_VRING_NUM/ADDR");
  }
  VGPU_ASSIGN_OR_RETURN(
      auto desc, memory->TranslateUserAddr(queue.addr.desc_user_addr,
                                           virtio::DescTableBytes(queue.size)));
  VGPU_ASSIGN_OR_RETURN(auto avail, memory->TranslateUserAddr(
                                        queue.addr.avail_user_addr,
                                        virtio::AvailRingBytes(queue.size)));
  VGPU_ASSIGN_OR_RETURN(
      auto used, memory->TranslateUserAddr(queue.addr.used_user_addr,
                                           virtio::UsedRingBytes(queue.size)));
  return virtio::SplitVirtqueue::Create(queue.size, desc, avail, used,
                                        features_ & kFeatureEventIdx,
                                        features_ & kFeatureIndirectDesc);
}

absl::Status VhostUserBackend::StartQueue(uint32_t index) {
  Queue& queue = queues_[index];
  absl::StatusOr<std::unique_ptr<virtio::SplitVirtqueue>> ring = MapRing(queue);
  if (!ring.ok()) {
    return absl::DataLossError(absl::StrCat("cannot start queue ", index, ": ",
                                            ring.status().message()));
  }
  // A guest that reset without telling (virtio-gpu: its control queue
  // starts from 0 while the device holds resources): its old state is
  // gone, so is the device's.
  if (device_->ResetsOnQueueStart(index, queue.base)) {
    VGPU_LOG(INFO) << "queue " << index
                   << " restarted from 0: guest reset, dropping device state";
    auto memory = device_->guest_memory();
    uint64_t features = features_;
    device_->Reset();
    device_->SetGuestMemory(memory);
    device_->SetDriverFeatures(features);
    ++stats_.device_resets;
  }
  queue.ring = *std::move(ring);
  queue.ring->SetBase(queue.base);
  int fd = queue.kick.get();
  VGPU_RETURN_IF_ERROR(
      loop_->Watch(fd, EPOLLIN, [this, index](uint32_t) { OnKick(index); }));
  VGPU_LOG(DEBUG) << "queue " << index << " started: size " << queue.size
                  << " base " << queue.base;
  UpdateRunning(index);
  ProcessQueue(index);  // buffers may be waiting already
  return absl::OkStatus();
}

void VhostUserBackend::StopQueue(uint32_t index) {
  Queue& queue = queues_[index];
  if (queue.kick.valid()) loop_->Unwatch(queue.kick.get());
  if (queue.ring) queue.base = queue.ring->last_avail_index();
  queue.ring.reset();
  queue.kick.Reset();
  UpdateRunning(index);
}

void VhostUserBackend::UpdateRunning(uint32_t index) {
  Queue& queue = queues_[index];
  const bool running = queue.ring != nullptr && queue.enabled;
  if (running == queue.running) return;
  queue.running = running;
  device_->QueueRunning(index, running);
}

void VhostUserBackend::OnKick(uint32_t index) {
  uint64_t value;
  while (read(queues_[index].kick.get(), &value, sizeof(value)) < 0 &&
         errno == EINTR) {
  }
  ++stats_.kicks;
  ProcessQueue(index);
  if (!lost_memory_.ok()) Close(lost_memory_);
}

void VhostUserBackend::ProcessQueue(uint32_t index) {
  Queue& queue = queues_[index];
  if (!queue.ring || !queue.enabled || device_->needs_reset() ||
      !lost_memory_.ok()) {
    return;
  }
  const uint64_t faults = virtio::MappingFaultCount();
  absl::StatusOr<bool> notify = device_->ProcessQueue(index, *queue.ring);
  // The count catches a fault in memory this device reads (backings of an
  // older table included); lost() stays set for a fault seen elsewhere.
  const std::shared_ptr<const virtio::GuestMemory>& memory =
      device_->guest_memory();
  if (virtio::MappingFaultCount() != faults ||
      (memory != nullptr && memory->lost())) {
    // What the device read since the fault was zeros, not the guest's: the
    // device must not go on with this memory.
    lost_memory_ = absl::DataLossError(
        "guest RAM became inaccessible while the device read it (the file "
        "behind it shrank?): dropping the connection");
    return;
  }
  if (!notify.ok()) {
    // The guest broke its own queue: the device stays stopped until the
    // guest resets it; tell the VMM through the error eventfd if it gave one.
    VGPU_LOG(ERROR) << "queue " << index
                    << " stopped: " << notify.status().message();
    if (queue.err.valid()) {
      uint64_t one = 1;
      [[maybe_unused]] ssize_t n = write(queue.err.get(), &one, sizeof(one));
    }
    return;
  }
  if (*notify && queue.call.valid()) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(queue.call.get(), &one, sizeof(one));
    ++stats_.calls;
  }
}

}  // namespace vgpu::vhost_user
