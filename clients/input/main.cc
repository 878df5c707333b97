// vgpu-input: keyboard and pointer into a VM through vgpu-displayd's Input
// service, for scripts and CI: log in, run a command, click a button.
//
//   vgpu-input --server=unix:/run/vgpu.grpc --type='root\n'
//   vgpu-input --key=ctrl+alt+delete
//   vgpu-input --click=640,400 --wheel=-3
//   vgpu-input --key=capslock --wait_led=caps_lock
//
//   vgpu-input --state
//
// Actions run in this order: --move, --click, --wheel, --key, --type,
// --wait_led, --state. Each is one call; keys and buttons an action presses
// are released when it ends.

#include <sys/types.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "vgpu/input/v1/input.grpc.pb.h"
#include <grpcpp/grpcpp.h>

#include "clients/common/grpc_client.h"
#include "clients/input/key_names.h"
#include "common/cli.h"

ABSL_FLAG(std::string, type, "",
          "Text to type (UTF-8; \\n is Enter, \\t Tab, \\\\ a backslash).");
ABSL_FLAG(std::string, layout, "us",
          "XKB keyboard layout the guest uses, for --type (us, de, fr, ...).");
ABSL_FLAG(std::string, variant, "", "XKB layout variant (e.g. nodeadkeys).");
ABSL_FLAG(std::vector<std::string>, key, {},
          "Keys to press and release, comma-separated; a combo with + "
          "(ctrl+alt+delete,enter). Names: a..z, 0..9, f1..f24, enter, esc, "
          "tab, space, backspace, delete, up, down, ... or evdev codes.");
ABSL_FLAG(std::string, move, "", "X,Y: move the pointer (scanout pixels).");
ABSL_FLAG(std::string, click, "",
          "X,Y: move the pointer there and click --button.");
ABSL_FLAG(std::string, button, "left", "left, right, middle, side or extra.");
ABSL_FLAG(int32_t, wheel, 0, "Wheel notches (positive: up).");
ABSL_FLAG(uint32_t, scanout, 0, "Scanout the pointer positions are on.");
ABSL_FLAG(std::string, wait_led, "",
          "Wait until a keyboard LED is on: num_lock, caps_lock or "
          "scroll_lock; NAME=off waits until it is off.");
ABSL_FLAG(bool, state, false,
          "Print the input devices (served, attached, keys or buttons held "
          "down) and who controls input.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30),
          "How long each action may take, with a unit (30s, 500ms).");
ABSL_FLAG(bool, take, false,
          "Take control of input from another viewer holding it.");
ABSL_FLAG(std::string, token_file, "",
          "File with the daemon's input token (its --input_token_file).");

namespace {

namespace pb = vgpu::input::v1;

constexpr absl::string_view kName = "vgpu-input";

// Exit codes: 0 done, 1 the daemon refused or failed, 2 bad flags.
int Fail(absl::string_view message) {
  return vgpu::cli::Failure(kName, message);
}
int Usage(absl::string_view message) {
  return vgpu::cli::UsageError(kName, message);
}

bool ParsePoint(const std::string& text, int32_t* x, int32_t* y) {
  std::vector<std::string> parts = absl::StrSplit(text, ',');
  return parts.size() == 2 && absl::SimpleAtoi(parts[0], x) &&
         absl::SimpleAtoi(parts[1], y);
}

// --type's escapes (a shell passes them literally): \n Enter, \t Tab, \\ a
// backslash; any other is an error (a typo must not type something else).
absl::StatusOr<std::string> Unescape(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out.push_back(text[i]);
      continue;
    }
    const char next = i + 1 < text.size() ? text[++i] : '\0';
    if (next == 'n') {
      out.push_back('\n');
    } else if (next == 't') {
      out.push_back('\t');
    } else if (next == '\\') {
      out.push_back('\\');
    } else {
      const std::string escape =
          next == '\0' ? "\\" : absl::StrCat("\\", std::string(1, next));
      return absl::InvalidArgumentError(
          absl::StrCat("--type: '", escape,
                       "' is not an escape (\\n Enter, \\t Tab, \\\\ a "
                       "backslash)"));
    }
  }
  return out;
}

class Caller {
 public:
  Caller(vgpu::clients::Connection connection, std::string token,
         absl::Duration timeout)
      : connection_(std::move(connection)),
        stub_(pb::Input::NewStub(connection_.channel)),
        token_(std::move(token)),
        timeout_(timeout) {}

  void Prepare(grpc::ClientContext* context) const {
    context->set_deadline(std::chrono::system_clock::now() +
                          absl::ToChronoMilliseconds(timeout_));
    vgpu::clients::PrepareCall(connection_, context);
    if (!token_.empty())
      context->AddMetadata("authorization", "Bearer " + token_);
  }
  std::string Describe(const grpc::Status& status) const {
    return vgpu::clients::DescribeError(status, connection_);
  }
  pb::Input::Stub& stub() { return *stub_; }

 private:
  vgpu::clients::Connection connection_;
  std::unique_ptr<pb::Input::Stub> stub_;
  std::string token_;
  absl::Duration timeout_;
};

int WaitLed(Caller& caller, const std::string& spec) {
  std::vector<std::string> parts = absl::StrSplit(spec, '=');
  const std::string name = parts[0];
  const bool want_on = parts.size() == 1 || parts[1] == "on";
  if (parts.size() > 2 ||
      (parts.size() == 2 && parts[1] != "on" && parts[1] != "off") ||
      (name != "num_lock" && name != "caps_lock" && name != "scroll_lock")) {
    return Usage(
        "--wait_led is num_lock, caps_lock or scroll_lock, optionally =on or "
        "=off");
  }
  grpc::ClientContext context;
  caller.Prepare(&context);
  pb::WatchLedsRequest request;
  std::unique_ptr<grpc::ClientReader<pb::LedState>> reader =
      caller.stub().WatchLeds(&context, request);
  pb::LedState leds;
  while (reader->Read(&leds)) {
    const bool on = name == "num_lock"    ? leds.num_lock()
                    : name == "caps_lock" ? leds.caps_lock()
                                          : leds.scroll_lock();
    if (on == want_on) {
      std::printf("%s is %s\n", name.c_str(), on ? "on" : "off");
      context.TryCancel();
      reader->Finish();
      return 0;
    }
  }
  grpc::Status status = reader->Finish();
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return Fail(absl::StrCat(name, " did not turn ", want_on ? "on" : "off",
                             " within --timeout"));
  }
  return Fail(caller.Describe(status));
}

// One line a device ("keyboard: attached, 0 pressed"), then who controls.
int PrintState(Caller& caller) {
  grpc::ClientContext context;
  caller.Prepare(&context);
  pb::InputState state;
  grpc::Status status =
      caller.stub().GetInputState(&context, pb::GetInputStateRequest(), &state);
  if (!status.ok()) return Fail(caller.Describe(status));
  for (const pb::Device& device : state.devices()) {
    if (!device.served()) {
      std::printf("%s: not served\n", device.kind().c_str());
      continue;
    }
    std::printf("%s: %s, %u pressed\n", device.kind().c_str(),
                device.attached() ? "attached" : "not attached",
                device.pressed());
  }
  std::printf("controller: %s\n",
              state.controller().empty() ? "none" : state.controller().c_str());
  return 0;
}

int Run() {
  const std::string text = absl::GetFlag(FLAGS_type);
  const std::vector<std::string> keys = absl::GetFlag(FLAGS_key);
  const std::string move = absl::GetFlag(FLAGS_move);
  const std::string click = absl::GetFlag(FLAGS_click);
  const int32_t wheel = absl::GetFlag(FLAGS_wheel);
  const std::string wait_led = absl::GetFlag(FLAGS_wait_led);
  const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  const bool take = absl::GetFlag(FLAGS_take);
  const bool state = absl::GetFlag(FLAGS_state);
  if (text.empty() && keys.empty() && move.empty() && click.empty() &&
      wheel == 0 && wait_led.empty() && !state) {
    return Usage(
        "nothing to do: give --type, --key, --move, --click, --wheel, "
        "--wait_led or --state");
  }
  if (timeout <= absl::ZeroDuration() || timeout > absl::Hours(1)) {
    return Usage("--timeout must be more than 0 and at most 1h");
  }
  // Everything is checked before anything is sent.
  absl::StatusOr<std::string> unescaped = Unescape(text);
  if (!unescaped.ok()) return Usage(unescaped.status().message());
  pb::SendPointerRequest pointer;
  pointer.set_take_control(take);
  int32_t x = 0, y = 0;
  if (!move.empty()) {
    if (!ParsePoint(move, &x, &y)) return Usage("--move is X,Y");
    pb::PointerEvent* event = pointer.add_events();
    event->set_x(x);
    event->set_y(y);
    event->set_scanout_id(absl::GetFlag(FLAGS_scanout));
  }
  if (!click.empty()) {
    if (!ParsePoint(click, &x, &y)) return Usage("--click is X,Y");
    const std::string name = absl::GetFlag(FLAGS_button);
    pb::Button button;
    if (!pb::Button_Parse("BUTTON_" + absl::AsciiStrToUpper(name), &button) ||
        button == pb::BUTTON_UNSPECIFIED) {
      return Usage("--button is left, right, middle, side or extra");
    }
    pb::PointerEvent* at = pointer.add_events();
    at->set_x(x);
    at->set_y(y);
    at->set_scanout_id(absl::GetFlag(FLAGS_scanout));
    for (bool down : {true, false}) {
      pb::PointerEvent* press = pointer.add_events();
      press->set_button(button);
      press->set_button_down(down);
    }
  }
  if (wheel != 0) pointer.add_events()->set_wheel(wheel);
  pb::SendKeysRequest key_request;
  key_request.set_take_control(take);
  for (const std::string& combo : keys) {
    absl::StatusOr<std::vector<uint16_t>> codes =
        vgpu::clients::KeyCombo(combo);
    if (!codes.ok()) return Usage(codes.status().message());
    for (uint16_t code : *codes) {
      pb::KeyEvent* event = key_request.add_keys();
      event->set_code(code);
      event->set_down(true);
    }
    for (auto it = codes->rbegin(); it != codes->rend(); ++it) {
      pb::KeyEvent* event = key_request.add_keys();
      event->set_code(*it);
      event->set_down(false);
    }
  }
  std::string token;
  if (const std::string file = absl::GetFlag(FLAGS_token_file); !file.empty()) {
    absl::StatusOr<std::string> read =
        vgpu::cli::ReadTokenFlag("token_file", file);
    if (!read.ok()) return Usage(read.status().message());
    token = *std::move(read);
  }

  absl::StatusOr<vgpu::clients::Connection> connection =
      vgpu::clients::ConnectFromFlags(4 << 20);
  if (!connection.ok()) return Usage(connection.status().message());
  Caller caller(*std::move(connection), token, timeout);

  if (pointer.events_size() > 0) {
    grpc::ClientContext context;
    caller.Prepare(&context);
    pb::SendPointerResponse response;
    grpc::Status status =
        caller.stub().SendPointer(&context, pointer, &response);
    if (!status.ok()) return Fail(caller.Describe(status));
    std::printf("pointer: %d events sent\n", pointer.events_size());
  }
  if (key_request.keys_size() > 0) {
    grpc::ClientContext context;
    caller.Prepare(&context);
    pb::SendKeysResponse response;
    grpc::Status status =
        caller.stub().SendKeys(&context, key_request, &response);
    if (!status.ok()) return Fail(caller.Describe(status));
    std::printf("keys: %d events sent\n", key_request.keys_size());
  }
  if (!text.empty()) {
    pb::TypeTextRequest request;
    request.set_text(*std::move(unescaped));
    request.set_layout(absl::GetFlag(FLAGS_layout));
    request.set_variant(absl::GetFlag(FLAGS_variant));
    request.set_take_control(take);
    grpc::ClientContext context;
    caller.Prepare(&context);
    pb::TypeTextResponse response;
    grpc::Status status = caller.stub().TypeText(&context, request, &response);
    if (!status.ok()) return Fail(caller.Describe(status));
    // Characters, not bytes: UTF-8 continuation bytes are 10xxxxxx.
    const auto characters = std::count_if(
        request.text().begin(), request.text().end(),
        [](char c) { return (static_cast<uint8_t>(c) & 0xc0) != 0x80; });
    std::printf("typed %zd characters (%u key events, layout %s)\n",
                static_cast<ssize_t>(characters), response.key_events(),
                request.layout().c_str());
  }
  if (!wait_led.empty()) {
    if (const int code = WaitLed(caller, wait_led); code != 0) return code;
  }
  if (state) return PrintState(caller);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  vgpu::cli::ParseOrExit(
      argc, argv,
      {kName,
       "keyboard and pointer into a VM through vgpu-displayd.\n"
       "  vgpu-input --server=unix:/run/vgpu.grpc --type='root\\n'\n"
       "  vgpu-input --key=ctrl+alt+delete\n"
       "  vgpu-input --click=640,400 --wheel=-3\n"
       "  vgpu-input --key=capslock --wait_led=caps_lock\n"
       "  vgpu-input --state\n"
       "Actions run in the order --move, --click, --wheel, --key, --type, "
       "--wait_led, --state.\n"
       "Exit codes: 0 done, 1 the daemon refused or failed, 2 bad flags."});
  vgpu::clients::QuietGrpcLogs();
  return Run();
}
