// vnc-probe: a libvncclient viewer for tests and benchmarks. Connects,
// waits for a still picture, optionally for the picture to change and
// settle again (a daemon restart, a new scene), and writes it as PPM.
//
//   vnc-probe --port=5900 --encodings="copyrect zrle" --out=screen.ppm
//   vnc-probe --port=5900 --until_changes=1 --out=after.ppm
// Prints "first picture WxH" once the first still picture is in.
// Exit codes: 0 written, 1 connection refused or ended, or no picture in
// --timeout, 2 bad flags.
#include <xkbcommon/xkbcommon.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#include "clients/vnc/test_viewer.h"
#include "common/cli.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "VNC server host.");
ABSL_FLAG(uint32_t, port, 5900, "VNC server port.");
ABSL_FLAG(std::string, encodings, "copyrect zrle",
          "Encodings to ask for, preferred first (libvncclient names).");
ABSL_FLAG(int32_t, quality, -1,
          "Tight JPEG quality level 0..9; -1 asks for no JPEG.");
ABSL_FLAG(std::string, password, "", "VNC authentication password.");
ABSL_FLAG(std::string, out, "", "Write the last picture here (PPM).");
ABSL_FLAG(uint32_t, until_changes, 0,
          "After the first still picture, wait for this many changed still "
          "pictures.");
ABSL_FLAG(uint32_t, stable_ms, 300,
          "A picture is still after this long without an update.");
ABSL_FLAG(uint32_t, timeout, 20, "Seconds to wait for each picture.");
ABSL_FLAG(std::string, type, "",
          "After the first still picture, type this as keysyms (\\n is "
          "Return).");
ABSL_FLAG(std::vector<std::string>, key, {},
          "After the first still picture, press and release these keys, "
          "named as X keysyms (Caps_Lock, F2, Return, ...).");
ABSL_FLAG(std::vector<std::string>, hold, {},
          "After --key, press these keys (X keysyms) and never release "
          "them: a viewer that leaves with keys down.");
ABSL_FLAG(std::string, click, "", "X,Y: click there after the first picture.");

namespace {

constexpr absl::string_view kName = "vnc-probe";

int Fail(const std::string& message) {
  std::fprintf(stderr, "vnc-probe: %s\n", message.c_str());
  return 1;
}

// Waits until pixels came and then no update for `stable`. An update with
// only a cursor shape or position is no picture: the screen may still be
// the client's empty buffer.
bool WaitStill(vgpu::vnc::TestViewer& viewer, absl::Duration stable,
               absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  uint64_t seen = viewer.updates();
  absl::Time last_change = absl::Now();
  return viewer.Until(
      [&] {
        if (viewer.updates() != seen) {
          seen = viewer.updates();
          last_change = absl::Now();
        }
        return viewer.pixel_rects() > 0 && absl::Now() - last_change >= stable;
      },
      deadline - absl::Now());
}

// One key down and up, as an RFB KeyEvent.
bool Press(vgpu::vnc::TestViewer& viewer, uint32_t keysym) {
  return viewer.SendKey(keysym, true) && viewer.SendKey(keysym, false);
}

// --type, --key and --click.
absl::Status SendInput(vgpu::vnc::TestViewer& viewer) {
  const std::string text = absl::GetFlag(FLAGS_type);
  int keys = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    uint32_t keysym = static_cast<uint8_t>(text[i]);
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'n') {
      keysym = XKB_KEY_Return;
      ++i;
    }
    if (!Press(viewer, keysym))
      return absl::UnavailableError("the server went away");
    ++keys;
  }
  for (bool hold : {false, true}) {
    for (const std::string& name :
         absl::GetFlag(hold ? FLAGS_hold : FLAGS_key)) {
      const xkb_keysym_t keysym =
          xkb_keysym_from_name(name.c_str(), XKB_KEYSYM_CASE_INSENSITIVE);
      if (keysym == XKB_KEY_NoSymbol) {
        return absl::InvalidArgumentError(absl::StrCat(
            hold ? "--hold" : "--key", ": no keysym named ", name));
      }
      if (!(hold ? viewer.SendKey(keysym, true) : Press(viewer, keysym)))
        return absl::UnavailableError("the server went away");
      ++keys;
    }
  }
  if (const std::string click = absl::GetFlag(FLAGS_click); !click.empty()) {
    int x = 0, y = 0;
    std::vector<std::string> parts = absl::StrSplit(click, ',');
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &x) ||
        !absl::SimpleAtoi(parts[1], &y)) {
      return absl::InvalidArgumentError("--click is X,Y");
    }
    if (!viewer.SendPointer(x, y, 0) || !viewer.SendPointer(x, y, 1) ||
        !viewer.SendPointer(x, y, 0)) {
      return absl::UnavailableError("the server went away");
    }
  }
  if (keys > 0) std::printf("sent %d keys\n", keys);
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  vgpu::cli::ParseOrExit(
      argc, argv,
      {kName,
       "a VNC viewer for tests: waits for a still picture and writes it.\n"
       "  vnc-probe --port=5900 --encodings=\"copyrect zrle\" --out=a.ppm"});
  if (absl::Status range =
          vgpu::cli::CheckRange("port", absl::GetFlag(FLAGS_port), 1, 65535);
      !range.ok()) {
    return vgpu::cli::UsageError(kName, range.message());
  }
  if (absl::Status range =
          vgpu::cli::CheckRange("quality", absl::GetFlag(FLAGS_quality), -1, 9);
      !range.ok()) {
    return vgpu::cli::UsageError(kName, range.message());
  }
  auto viewer = vgpu::vnc::TestViewer::Connect(
      {.host = absl::GetFlag(FLAGS_host),
       .port = static_cast<uint16_t>(absl::GetFlag(FLAGS_port)),
       .encodings = absl::GetFlag(FLAGS_encodings),
       .quality_level = absl::GetFlag(FLAGS_quality),
       .password = absl::GetFlag(FLAGS_password)});
  if (viewer == nullptr)
    return Fail("cannot connect (or authentication failed)");
  const absl::Duration stable =
      absl::Milliseconds(absl::GetFlag(FLAGS_stable_ms));
  const absl::Duration timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout));
  if (!WaitStill(*viewer, stable, timeout)) return Fail("no still picture");
  std::printf("first picture %dx%d\n", viewer->width(), viewer->height());
  std::fflush(stdout);
  if (absl::Status sent = SendInput(*viewer); !sent.ok()) {
    return vgpu::cli::UsageError(kName, sent.message());
  }
  for (uint32_t i = 0; i < absl::GetFlag(FLAGS_until_changes); ++i) {
    const std::string before = viewer->ToPpm();
    if (!viewer->Until([&] { return viewer->ToPpm() != before; }, timeout) ||
        !WaitStill(*viewer, stable, timeout)) {
      return Fail("the picture did not change");
    }
    std::printf("changed picture %dx%d\n", viewer->width(), viewer->height());
  }
  if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) {
    std::ofstream file(out, std::ios::binary);
    file << viewer->ToPpm();
    if (!file) return Fail("cannot write " + out);
  }
  return 0;
}
