#include "device/guest_sim/guest_input.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include <linux/input-event-codes.h>

#include "common/status_macros.h"

namespace vgpu::synth {

absl::StatusOr<std::unique_ptr<GuestInput>> GuestInput::Connect(
    const GuestInputOptions& options) {
  std::unique_ptr<GuestInput> input(new GuestInput());
  input->cancel_ = options.cancel;
  auto connect = [&options](const std::string& socket, const char* what)
      -> absl::StatusOr<std::unique_ptr<guest_sim::VirtioInputDriver>> {
    if (socket.empty()) return nullptr;
    auto driver = guest_sim::VirtioInputDriver::Connect(
        {.socket_path = socket, .cancel = options.cancel});
    if (!driver.ok()) {
      return absl::Status(driver.status().code(),
                          absl::StrCat("the ", what, " on ", socket, ": ",
                                       driver.status().message()));
    }
    return driver;
  };
  VGPU_ASSIGN_OR_RETURN(input->keyboard_,
                        connect(options.keyboard_socket, "keyboard"));
  VGPU_ASSIGN_OR_RETURN(input->tablet_,
                        connect(options.tablet_socket, "tablet"));
  VGPU_ASSIGN_OR_RETURN(input->mouse_, connect(options.mouse_socket, "mouse"));
  return input;
}

absl::StatusOr<uint64_t> GuestInput::TakePackets(ScenePlayer* player) {
  uint64_t handled = 0;
  for (guest_sim::VirtioInputDriver* driver :
       {keyboard_.get(), tablet_.get(), mouse_.get()}) {
    if (driver == nullptr) continue;
    while (true) {
      absl::StatusOr<std::vector<input::InputEvent>> packet =
          driver->NextPacket(absl::InfinitePast());
      if (absl::IsDeadlineExceeded(packet.status())) break;
      if (!packet.ok()) return packet.status();
      VGPU_RETURN_IF_ERROR(player->Input(*packet));
      ++handled;
    }
  }
  // The console's LEDs, as the guest's input core reports them.
  const uint32_t leds = player->leds();
  if (keyboard_ != nullptr && leds != leds_) {
    std::vector<input::InputEvent> changes;
    for (uint16_t led = 0; led <= LED_MAX; ++led) {
      const uint32_t bit = 1u << led;
      if ((leds ^ leds_) & bit)
        changes.push_back({EV_LED, led, (leds & bit) ? 1 : 0});
    }
    leds_ = leds;
    VGPU_RETURN_IF_ERROR(keyboard_->SendStatus(changes));
  }
  return handled;
}

absl::StatusOr<uint64_t> GuestInput::Serve(absl::Time until,
                                           ScenePlayer* player) {
  uint64_t handled = 0;
  while (true) {
    VGPU_ASSIGN_OR_RETURN(uint64_t taken, TakePackets(player));
    handled += taken;
    const absl::Time now = absl::Now();
    if (now >= until || (cancel_ != nullptr && cancel_->load())) break;
    std::vector<pollfd> fds;
    bool ready = false;
    for (guest_sim::VirtioInputDriver* driver :
         {keyboard_.get(), tablet_.get(), mouse_.get()}) {
      if (driver == nullptr) continue;
      fds.push_back({driver->ArmWait(), POLLIN, 0});
      ready = ready || driver->has_used();
    }
    if (ready) continue;
    // At most 100 ms at a time, so `cancel` is seen.
    const int timeout = static_cast<int>(
        std::clamp<int64_t>(absl::ToInt64Milliseconds(until - now), 0, 100));
    if (fds.empty()) {
      absl::SleepFor(std::min(until - now, absl::Milliseconds(100)));
      continue;
    }
    if (poll(fds.data(), fds.size(), timeout) > 0) {
      for (const pollfd& p : fds) {
        uint64_t value;
        if (p.revents & POLLIN) {
          [[maybe_unused]] ssize_t n = read(p.fd, &value, sizeof(value));
        }
      }
    }
  }
  return handled;
}

}  // namespace vgpu::synth
