#include "device/guest_sim/input_driver.h"

#include <poll.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include <linux/input-event-codes.h>

#include "common/status_macros.h"

namespace vgpu::guest_sim {
namespace {

constexpr uint64_t kRamBytes = 1 << 20;
constexpr uint64_t kUserAddr = 0x7e0000000000;
constexpr uint64_t kWantedProtocol =
    vhost_user::kProtocolReplyAck | vhost_user::kProtocolConfig;
constexpr uint32_t kEventBytes = sizeof(virtio_input_event);

bool TestBit(const input::Bitmap& bitmap, uint16_t bit) {
  return bit / 8 < bitmap.size() && (bitmap[bit / 8] >> (bit % 8)) & 1;
}

}  // namespace

bool ProbedInputDevice::Has(uint16_t type, uint16_t code) const {
  auto it = events.find(static_cast<uint8_t>(type));
  return type <= 0xff && it != events.end() && TestBit(it->second, code);
}

absl::StatusOr<std::unique_ptr<VirtioInputDriver>> VirtioInputDriver::Connect(
    InputDriverOptions options) {
  std::unique_ptr<VirtioInputDriver> driver(
      new VirtioInputDriver(std::move(options)));
  VGPU_ASSIGN_OR_RETURN(driver->link_,
                        VhostUserLink::Connect(driver->options_.socket_path,
                                               driver->options_.cancel));
  VGPU_ASSIGN_OR_RETURN(uint64_t offered,
                        driver->link_->Negotiate(kWantedProtocol));
  if (!(offered & vhost_user::kFeatureVersion1)) {
    return absl::FailedPreconditionError(
        "the device does not offer VIRTIO_F_VERSION_1 (Linux refuses it)");
  }
  // QEMU passes the back-end's features through; Linux takes these.
  driver->features_ = (offered & (vhost_user::kFeatureVersion1 |
                                  vhost_user::kFeatureIndirectDesc |
                                  vhost_user::kFeatureEventIdx)) |
                      vhost_user::kFeatureProtocolFeatures;
  VGPU_RETURN_IF_ERROR(driver->Start());
  return driver;
}

VirtioInputDriver::~VirtioInputDriver() { Disconnect(); }

void VirtioInputDriver::Disconnect() {
  if (link_) link_->Disconnect();
}

absl::StatusOr<virtio_input_config> VirtioInputDriver::Select(uint8_t select,
                                                              uint8_t subsel) {
  // The driver writes select, then subsel; QEMU sends its whole config copy
  // for each byte written, then a GET_CONFIG for the reads.
  auto bytes = [this] {
    return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&config_),
                               sizeof(config_));
  };
  config_.select = select;
  VGPU_RETURN_IF_ERROR(link_->SetConfig(0, bytes()));
  config_.subsel = subsel;
  VGPU_RETURN_IF_ERROR(link_->SetConfig(0, bytes()));
  VGPU_ASSIGN_OR_RETURN(std::vector<uint8_t> read,
                        link_->GetConfig(0, sizeof(config_)));
  device_.config_requests += 3;
  std::memcpy(&config_, read.data(), sizeof(config_));
  if (config_.select != select || config_.subsel != subsel) {
    return absl::DataLossError(absl::StrCat("config space shows select ",
                                            config_.select, "/", config_.subsel,
                                            " after ", select, "/", subsel));
  }
  if (config_.size > sizeof(config_.u)) {
    return absl::DataLossError(
        absl::StrCat("config size ", config_.size, " for select ", select));
  }
  return config_;
}

absl::Status VirtioInputDriver::Probe() {
  device_ = {};
  config_ = {};
  auto copy_bitmap = [](const virtio_input_config& c, input::Bitmap& out) {
    std::memcpy(out.data(), c.u.bitmap, c.size);
  };
  VGPU_ASSIGN_OR_RETURN(virtio_input_config c,
                        Select(VIRTIO_INPUT_CFG_ID_NAME, 0));
  device_.name.assign(c.u.string, c.size);
  VGPU_ASSIGN_OR_RETURN(c, Select(VIRTIO_INPUT_CFG_ID_SERIAL, 0));
  device_.serial.assign(c.u.string, c.size);
  VGPU_ASSIGN_OR_RETURN(c, Select(VIRTIO_INPUT_CFG_ID_DEVIDS, 0));
  if (c.size >= sizeof(device_.ids)) device_.ids = c.u.ids;
  VGPU_ASSIGN_OR_RETURN(c, Select(VIRTIO_INPUT_CFG_PROP_BITS, 0));
  copy_bitmap(c, device_.properties);
  VGPU_ASSIGN_OR_RETURN(c, Select(VIRTIO_INPUT_CFG_EV_BITS, EV_REP));
  device_.repeat = c.size > 0;
  for (uint8_t type : {EV_KEY, EV_REL, EV_ABS, EV_MSC, EV_SW, EV_LED, EV_SND}) {
    VGPU_ASSIGN_OR_RETURN(c, Select(VIRTIO_INPUT_CFG_EV_BITS, type));
    if (c.size > 0) copy_bitmap(c, device_.events[type]);
  }
  if (auto abs = device_.events.find(EV_ABS); abs != device_.events.end()) {
    for (uint16_t axis = 0; axis <= ABS_MAX; ++axis) {
      if (!TestBit(abs->second, axis)) continue;
      VGPU_ASSIGN_OR_RETURN(
          c, Select(VIRTIO_INPUT_CFG_ABS_INFO, static_cast<uint8_t>(axis)));
      if (c.size >= sizeof(virtio_input_absinfo))
        device_.axes[static_cast<uint8_t>(axis)] = c.u.abs;
    }
  }
  return absl::OkStatus();
}

absl::Status VirtioInputDriver::Start() {
  VGPU_RETURN_IF_ERROR(Probe());
  VGPU_ASSIGN_OR_RETURN(auto mapping, virtio::MemoryMapping::CreateMemfd(
                                          kRamBytes, "vgpu-input"));
  std::vector<virtio::GuestRegion> regions;
  regions.push_back({.guest_phys_addr = 0,
                     .size = kRamBytes,
                     .mapping = std::move(mapping),
                     .user_addr = kUserAddr});
  VGPU_ASSIGN_OR_RETURN(memory_, virtio::GuestMemory::Create(regions));
  allocator_ = std::make_unique<virtio::GuestAllocator>(0x1000, kRamBytes);
  const bool event_idx = features_ & vhost_user::kFeatureEventIdx;
  VGPU_ASSIGN_OR_RETURN(
      events_, virtio::DriverQueue::Create(memory_, *allocator_,
                                           options_.queue_size, event_idx));
  VGPU_ASSIGN_OR_RETURN(
      status_, virtio::DriverQueue::Create(memory_, *allocator_,
                                           options_.queue_size, event_idx));
  VGPU_ASSIGN_OR_RETURN(status_buffer_, allocator_->Allocate(256, 8));
  // DRIVER_OK: QEMU starts the vhost device.
  VGPU_RETURN_IF_ERROR(link_->RequestWith(vhost_user::kSetFeatures, features_));
  VGPU_RETURN_IF_ERROR(link_->SetMemTable(*memory_));
  VGPU_RETURN_IF_ERROR(
      link_->SetupRing(input::kEventQueue, *events_, *memory_));
  VGPU_RETURN_IF_ERROR(
      link_->SetupRing(input::kStatusQueue, *status_, *memory_));
  buffer_of_head_.clear();
  partial_.clear();
  packets_.clear();
  // Linux posts min(ring size, 64) buffers once registered.
  return PostEventBuffers();
}

absl::Status VirtioInputDriver::PostEventBuffers() {
  while (events_->free_descriptors() > 0) {
    VGPU_ASSIGN_OR_RETURN(uint64_t gpa, allocator_->Allocate(kEventBytes, 8));
    virtio::GuestBuffer buffer{gpa, kEventBytes};
    VGPU_ASSIGN_OR_RETURN(uint16_t head, events_->Add({}, {&buffer, 1}));
    buffer_of_head_[head] = gpa;
  }
  return link_->Kick(input::kEventQueue, *events_);
}

absl::Status VirtioInputDriver::Reap() {
  bool reposted = false;
  while (std::optional<virtio::UsedEntry> used = events_->PopUsed()) {
    auto it = buffer_of_head_.find(used->head);
    if (it == buffer_of_head_.end())
      return absl::DataLossError("used entry for a buffer never posted");
    const uint64_t gpa = it->second;
    buffer_of_head_.erase(it);
    if (used->written >= kEventBytes) {
      virtio_input_event wire;
      VGPU_RETURN_IF_ERROR(memory_->Read(
          gpa, absl::MakeSpan(reinterpret_cast<uint8_t*>(&wire), kEventBytes)));
      const input::InputEvent event{wire.type, wire.code,
                                    static_cast<int32_t>(wire.value)};
      if (event.type == EV_SYN && event.code == SYN_REPORT) {
        packets_.push_back(std::move(partial_));
        partial_.clear();
      } else {
        partial_.push_back(event);
      }
    }
    if (repost_) {
      virtio::GuestBuffer buffer{gpa, kEventBytes};
      VGPU_ASSIGN_OR_RETURN(uint16_t head, events_->Add({}, {&buffer, 1}));
      buffer_of_head_[head] = gpa;
      reposted = true;
    }
  }
  if (reposted) return link_->Kick(input::kEventQueue, *events_);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<input::InputEvent>> VirtioInputDriver::NextPacket(
    absl::Time deadline) {
  while (true) {
    VGPU_RETURN_IF_ERROR(Reap());
    if (!packets_.empty()) {
      std::vector<input::InputEvent> packet = std::move(packets_.front());
      packets_.pop_front();
      return packet;
    }
    // As Linux re-enables callbacks before it sleeps.
    events_->RequestInterrupt();
    if (events_->HasUsed()) continue;
    VGPU_RETURN_IF_ERROR(link_->WaitUsed(input::kEventQueue, *events_, deadline,
                                         options_.cancel));
  }
}

int VirtioInputDriver::ArmWait() {
  events_->RequestInterrupt();
  return link_->call_fd(input::kEventQueue);
}

absl::StatusOr<uint32_t> VirtioInputDriver::PostEventBuffer(uint32_t length) {
  VGPU_ASSIGN_OR_RETURN(uint64_t gpa,
                        allocator_->Allocate(std::max<uint32_t>(length, 1), 8));
  virtio::GuestBuffer buffer{gpa, length};
  VGPU_ASSIGN_OR_RETURN(uint16_t head, events_->Add({}, {&buffer, 1}));
  events_->RequestInterrupt();
  VGPU_RETURN_IF_ERROR(link_->Kick(input::kEventQueue, *events_));
  VGPU_RETURN_IF_ERROR(link_->WaitUsed(input::kEventQueue, *events_,
                                       absl::Now() + options_.timeout,
                                       options_.cancel));
  std::optional<virtio::UsedEntry> used = events_->PopUsed();
  if (!used || used->head != head)
    return absl::DataLossError("the device used another buffer first");
  return used->written;
}

absl::Status VirtioInputDriver::SendStatusBytes(
    absl::Span<const uint8_t> bytes) {
  if (bytes.size() > 256) return absl::InvalidArgumentError("too long");
  VGPU_RETURN_IF_ERROR(memory_->Write(status_buffer_, bytes));
  virtio::GuestBuffer buffer{status_buffer_,
                             static_cast<uint32_t>(bytes.size())};
  VGPU_RETURN_IF_ERROR(status_->Add({&buffer, 1}, {}).status());
  status_->RequestInterrupt();
  VGPU_RETURN_IF_ERROR(link_->Kick(input::kStatusQueue, *status_));
  VGPU_RETURN_IF_ERROR(link_->WaitUsed(input::kStatusQueue, *status_,
                                       absl::Now() + options_.timeout,
                                       options_.cancel));
  while (status_->PopUsed()) {
  }
  return absl::OkStatus();
}

absl::Status VirtioInputDriver::SendStatus(
    absl::Span<const input::InputEvent> events) {
  for (const input::InputEvent& event : events) {
    const virtio_input_event wire{event.type, event.code,
                                  static_cast<uint32_t>(event.value)};
    VGPU_RETURN_IF_ERROR(SendStatusBytes(absl::MakeConstSpan(
        reinterpret_cast<const uint8_t*>(&wire), sizeof(wire))));
  }
  return absl::OkStatus();
}

absl::Status VirtioInputDriver::Reboot() {
  VGPU_RETURN_IF_ERROR(link_->StopRing(input::kEventQueue).status());
  VGPU_RETURN_IF_ERROR(link_->StopRing(input::kStatusQueue).status());
  return Start();
}

}  // namespace vgpu::guest_sim
