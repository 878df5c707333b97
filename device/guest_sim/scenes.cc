#include "device/guest_sim/scenes.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include <linux/input-event-codes.h>

#include "device/guest_sim/keymap_us.h"
#include "device/input/input_config.h"

namespace vgpu::synth {
namespace {

constexpr uint32_t kCellWidth = 8, kCellHeight = 16;  // fbcon's 8x16 font cells
constexpr uint32_t kBackground = 0xFF101820, kForeground = 0xFFC8D0C0;

// Glyphs of a real console font (Terminus 8x16 from console-setup-linux,
// converted at build time by psf_font.py).
#include "console_font.inc"
static_assert(kFontHeight == kCellHeight);

bool GlyphBit(uint32_t ch, uint32_t gx, uint32_t gy) {
  if (ch < 0x20 || ch > 0x7E) ch = '?';
  return (kFontGlyphs[ch - 0x20][gy] >> (7 - gx)) & 1;
}

void DrawCell(uint32_t* pixels, uint32_t width, uint32_t cx, uint32_t cy,
              uint32_t ch, uint32_t foreground = kForeground,
              uint32_t background = kBackground) {
  for (uint32_t gy = 0; gy < kCellHeight; ++gy) {
    uint32_t* row = pixels + size_t{cy * kCellHeight + gy} * width +
                    size_t{cx} * kCellWidth;
    for (uint32_t gx = 0; gx < kCellWidth; ++gx) {
      row[gx] = GlyphBit(ch, gx, gy) ? foreground : background;
    }
  }
}

uint32_t TextAt(uint64_t n) {
  static constexpr char kText[] =
      "vgpu-display demo guest: the quick brown fox jumps over the lazy dog "
      "0123456789 ";
  return static_cast<uint8_t>(kText[n % (sizeof(kText) - 1)]);
}

// A screen of 8x16 text cells.
class TextScene : public Scene {
 public:
  TextScene(uint32_t width, uint32_t height)
      : width_(width),
        height_(height),
        columns_(width / kCellWidth),
        rows_(height / kCellHeight) {}

 protected:
  // The whole screen in the background colour.
  void Clear(uint32_t* pixels, std::vector<Damage>* damage) const {
    std::fill(pixels, pixels + size_t{width_} * height_, kBackground);
    damage->push_back({0, 0, width_, height_});
  }

  uint32_t width_, height_, columns_, rows_;
};

// Types one character per frame, wrapping at the end of the screen.
class ConsoleScene : public TextScene {
 public:
  using TextScene::TextScene;
  void Render(uint64_t index, uint32_t* pixels,
              std::vector<Damage>* damage) override {
    if (index == 0 || columns_ == 0 || rows_ == 0) {
      Clear(pixels, damage);
      return;
    }
    uint64_t cell = (index - 1) % (uint64_t{columns_} * rows_);
    uint32_t cx = static_cast<uint32_t>(cell % columns_),
             cy = static_cast<uint32_t>(cell / columns_);
    DrawCell(pixels, width_, cx, cy, TextAt(index));
    damage->push_back(
        {cx * kCellWidth, cy * kCellHeight, kCellWidth, kCellHeight});
  }
};

// A full line of text per frame; the screen scrolls up one line each time.
class ScrollScene : public Scene {
 public:
  ScrollScene(uint32_t width, uint32_t height)
      : width_(width), height_(height), columns_(width / kCellWidth) {}
  void Render(uint64_t index, uint32_t* pixels,
              std::vector<Damage>* damage) override {
    size_t line_pixels = size_t{width_} * kCellHeight;
    if (height_ > kCellHeight) {
      std::memmove(pixels, pixels + line_pixels,
                   (size_t{width_} * height_ - line_pixels) * 4);
    }
    uint32_t bottom = height_ / kCellHeight - 1;
    for (uint32_t cx = 0; cx < columns_; ++cx)
      DrawCell(pixels, width_, cx, bottom, TextAt(index * 7 + cx));
    damage->push_back({0, 0, width_, height_});
  }

 private:
  uint32_t width_, height_, columns_;
};

// Every pixel changes every frame: moving colour bands over a gradient. The
// scene cycles through kVideoFrames frames drawn once, so presenting a frame
// costs the guest one framebuffer-sized copy, as playing decoded video does.
class VideoScene : public Scene {
 public:
  static constexpr uint32_t kVideoFrames = 8;
  VideoScene(uint32_t width, uint32_t height)
      : width_(width), height_(height) {}
  void Render(uint64_t index, uint32_t* pixels,
              std::vector<Damage>* damage) override {
    std::vector<uint32_t>& frame = frames_[index % kVideoFrames];
    if (frame.empty()) {
      frame.resize(size_t{width_} * height_);
      uint32_t t = static_cast<uint32_t>(index % kVideoFrames * 32);
      for (uint32_t y = 0; y < height_; ++y) {
        uint32_t* row = frame.data() + size_t{y} * width_;
        uint32_t g = (y + t) & 0xFF;
        for (uint32_t x = 0; x < width_; ++x) {
          uint32_t r = (x + t) & 0xFF, b = ((x ^ y) + 2 * t) & 0xFF;
          row[x] = 0xFF000000u | (r << 16) | (g << 8) | b;
        }
      }
    }
    std::memcpy(pixels, frame.data(), frame.size() * sizeof(uint32_t));
    damage->push_back({0, 0, width_, height_});
  }

 private:
  uint32_t width_, height_;
  std::vector<uint32_t> frames_[kVideoFrames];
};

// A still picture (colour bars) with the cursor moving on a circle.
class CursorScene : public Scene {
 public:
  CursorScene(uint32_t width, uint32_t height)
      : width_(width), height_(height) {}
  void Render(uint64_t index, uint32_t* pixels,
              std::vector<Damage>* damage) override {
    if (index != 0) return;
    static constexpr uint32_t kBars[8] = {0xFFFFFFFF, 0xFFFFFF00, 0xFF00FFFF,
                                          0xFF00FF00, 0xFFFF00FF, 0xFFFF0000,
                                          0xFF0000FF, 0xFF000000};
    for (uint32_t y = 0; y < height_; ++y)
      for (uint32_t x = 0; x < width_; ++x)
        pixels[size_t{y} * width_ + x] = kBars[x * 8 / width_];
    damage->push_back({0, 0, width_, height_});
  }
  std::optional<CursorPoint> CursorAt(uint64_t index) const override {
    double angle = static_cast<double>(index) * 0.05;
    double radius = std::min(width_, height_) * 0.35;
    return CursorPoint{
        static_cast<uint32_t>(width_ / 2.0 + radius * std::cos(angle)),
        static_cast<uint32_t>(height_ / 2.0 + radius * std::sin(angle))};
  }

 private:
  uint32_t width_, height_;
};

// What the built-in demo guest shows: a console worth looking at. A title
// bar with a frame counter that changes every frame, colour bars, and a
// boot log typed one character per frame up to a shell prompt. Then it is
// interactive: keys typed on its virtio keyboard echo at the prompt (US
// layout, Shift and CapsLock, Backspace; the lock keys light their LEDs;
// Enter runs `echo` or says the command is not found; Ctrl+C abandons the
// line, Ctrl+U erases it, Ctrl+Alt+Del says what a real guest would do),
// the tablet moves the cursor and a left click leaves a dot. A key before
// the prompt finishes the log at once.
class DemoScene : public TextScene {
 public:
  using TextScene::TextScene;
  void Render(uint64_t index, uint32_t* pixels,
              std::vector<Damage>* damage) override {
    if (index == 0) {
      Clear(pixels, damage);
      DrawTitle(pixels, 0);
      DrawBars(pixels);
      return;
    }
    damage->push_back(DrawTitle(pixels, index));
    if (!at_prompt_) TypeOne(pixels, damage);
  }

  void Input(const input::InputEvent& event, uint32_t* pixels,
             std::vector<Damage>* damage) override {
    if (event.type == EV_ABS && (event.code == ABS_X || event.code == ABS_Y)) {
      const uint32_t size = event.code == ABS_X ? width_ : height_;
      const int64_t value =
          std::clamp<int64_t>(event.value, 0, input::kTabletAxisMax);
      const auto at =
          static_cast<uint32_t>(value * (size - 1) / input::kTabletAxisMax);
      (event.code == ABS_X ? pointer_.x : pointer_.y) = at;
      pointer_moved_ = true;
      return;
    }
    if (event.type != EV_KEY) return;
    const bool down = event.value != 0;
    if (event.code == BTN_LEFT) {
      if (down) DrawDot(pixels, damage);
      return;
    }
    if (event.code == KEY_LEFTSHIFT || event.code == KEY_RIGHTSHIFT) {
      (event.code == KEY_LEFTSHIFT ? left_shift_ : right_shift_) = down;
      return;
    }
    if (event.code == KEY_LEFTCTRL || event.code == KEY_RIGHTCTRL) {
      (event.code == KEY_LEFTCTRL ? left_ctrl_ : right_ctrl_) = down;
      return;
    }
    if (event.code == KEY_LEFTALT || event.code == KEY_RIGHTALT) {
      (event.code == KEY_LEFTALT ? left_alt_ : right_alt_) = down;
      return;
    }
    if (!down) return;  // a held key repeats as value 2
    if (event.code == KEY_CAPSLOCK || event.code == KEY_NUMLOCK ||
        event.code == KEY_SCROLLLOCK) {
      const int led = event.code == KEY_CAPSLOCK  ? LED_CAPSL
                      : event.code == KEY_NUMLOCK ? LED_NUML
                                                  : LED_SCROLLL;
      leds_ ^= 1u << led;
      return;
    }
    while (!at_prompt_ && rows_ > kFirstTextRow) TypeOne(pixels, damage);
    if (rows_ <= kFirstTextRow || columns_ == 0) return;
    const bool ctrl = left_ctrl_ || right_ctrl_;
    if (ctrl) {
      Control(event.code, pixels, damage);
    } else if (event.code == KEY_ENTER || event.code == KEY_KPENTER) {
      RunCommand(pixels, damage);
    } else if (event.code == KEY_BACKSPACE) {
      Erase(1, pixels, damage);
    } else {
      const bool shift = left_shift_ || right_shift_;
      char ch = guest_sim::UsKeyToChar(event.code, shift);
      if (ch == 0) return;
      if ((leds_ & (1u << LED_CAPSL)) &&
          std::isalpha(static_cast<unsigned char>(ch))) {
        ch = static_cast<char>(shift ? std::tolower(ch) : std::toupper(ch));
      }
      if (column_ + 1 >= columns_) return;  // the line is full
      command_.push_back(ch);
      DrawText(pixels, damage, std::string(1, ch), kForeground);
    }
  }

  std::optional<CursorPoint> CursorAt(uint64_t) const override {
    if (!pointer_moved_) return std::nullopt;
    return pointer_;
  }
  uint32_t leds() const override { return leds_; }

 private:
  static constexpr uint32_t kTitleBackground = 0xFF1F3A5F;
  static constexpr uint32_t kTitleForeground = 0xFFF0F0F0;
  static constexpr uint32_t kPromptColour = 0xFF7FD17F;
  static constexpr uint32_t kFirstTextRow = 2;

  // The title, and the counter at its right end; returns what changed.
  Damage DrawTitle(uint32_t* pixels, uint64_t index) {
    std::string counter = absl::StrCat("frame ", index, " ");
    const uint32_t counter_column =
        columns_ > counter.size()
            ? columns_ - static_cast<uint32_t>(counter.size())
            : 0;
    if (index == 0) {  // the bar; later frames change only the counter
      const std::string title = absl::StrCat(
          " vgpu-display demo guest  |  virtio-gpu ", width_, "x", height_);
      for (uint32_t cx = 0; cx < columns_; ++cx) {
        const uint32_t ch =
            cx < title.size() ? static_cast<uint8_t>(title[cx]) : ' ';
        DrawCell(pixels, width_, cx, 0, ch, kTitleForeground, kTitleBackground);
      }
    }
    for (uint32_t i = 0; i < counter.size() && counter_column + i < columns_;
         ++i) {
      DrawCell(pixels, width_, counter_column + i, 0, counter[i],
               kTitleForeground, kTitleBackground);
    }
    return {counter_column * kCellWidth, 0,
            std::min<uint32_t>(static_cast<uint32_t>(counter.size()),
                               columns_ - counter_column) *
                kCellWidth,
            kCellHeight};
  }

  // SMPTE-like bars in the top-right corner, under the title.
  void DrawBars(uint32_t* pixels) {
    static constexpr uint32_t kBars[8] = {0xFFC0C0C0, 0xFFC0C000, 0xFF00C0C0,
                                          0xFF00C000, 0xFFC000C0, 0xFFC00000,
                                          0xFF0000C0, 0xFF000000};
    const uint32_t bar_width = std::max<uint32_t>(width_ / 40, 4);
    const uint32_t bars_height = std::min<uint32_t>(height_ / 4, 160);
    const uint32_t left =
        width_ > 8 * bar_width + 16 ? width_ - 8 * bar_width - 16 : 0;
    for (uint32_t y = kCellHeight + 16;
         y < std::min(height_, kCellHeight + 16 + bars_height); ++y) {
      for (uint32_t x = left; x < std::min(width_, left + 8 * bar_width); ++x) {
        pixels[size_t{y} * width_ + x] = kBars[(x - left) / bar_width];
      }
    }
    bars_left_column_ = left / kCellWidth;
    bars_bottom_row_ = (kCellHeight + 16 + bars_height) / kCellHeight + 1;
  }

  static constexpr const char* kPrompt = "root@demo:~# ";

  // Draws `text` at the cursor, which moves on.
  void DrawText(uint32_t* pixels, std::vector<Damage>* damage,
                const std::string& text, uint32_t colour) {
    const uint32_t first = column_;
    for (char ch : text) {
      if (column_ >= columns_) break;
      DrawCell(pixels, width_, column_++, row_, static_cast<uint8_t>(ch),
               colour);
    }
    if (column_ > first) {
      damage->push_back({first * kCellWidth, row_ * kCellHeight,
                         (column_ - first) * kCellWidth, kCellHeight});
    }
  }

  void NewLine(uint32_t* pixels, std::vector<Damage>* damage) {
    column_ = 0;
    if (row_ + 1 < rows_) {
      ++row_;
    } else {
      ScrollText(pixels, damage);
    }
  }

  // Enter at the prompt: the demo shell's answer, then a new prompt.
  void RunCommand(uint32_t* pixels, std::vector<Damage>* damage) {
    if (command_.empty()) {
      Answer("", pixels, damage);
    } else if (absl::StartsWith(command_, "echo ")) {
      Answer(command_.substr(5), pixels, damage);
    } else {
      Answer(absl::StrCat("-demo: ", command_, ": command not found"), pixels,
             damage);
    }
  }

  // A new line, `answer` on a line of its own (if any), a new prompt.
  void Answer(const std::string& answer, uint32_t* pixels,
              std::vector<Damage>* damage) {
    NewLine(pixels, damage);
    if (!answer.empty()) {
      DrawText(pixels, damage, answer.substr(0, columns_), kForeground);
      NewLine(pixels, damage);
    }
    command_.clear();
    DrawText(pixels, damage, kPrompt, kPromptColour);
  }

  // Erases up to `count` characters typed at the prompt.
  void Erase(size_t count, uint32_t* pixels, std::vector<Damage>* damage) {
    for (; count > 0 && !command_.empty(); --count) {
      command_.pop_back();
      --column_;
      DrawText(pixels, damage, " ", kForeground);
      --column_;
    }
  }

  // A key with Ctrl held, as a shell's line editor takes it.
  void Control(uint16_t code, uint32_t* pixels, std::vector<Damage>* damage) {
    if (code == KEY_C) {  // abandon the line
      if (column_ + 2 < columns_) DrawText(pixels, damage, "^C", kForeground);
      Answer("", pixels, damage);
    } else if (code == KEY_U) {  // erase it
      Erase(command_.size(), pixels, damage);
    } else if (code == KEY_DELETE && (left_alt_ || right_alt_)) {
      Answer("-demo: Ctrl+Alt+Del received (a real guest would reboot now)",
             pixels, damage);
    }
  }

  // A left click: a 5x5 dot where the pointer is.
  void DrawDot(uint32_t* pixels, std::vector<Damage>* damage) {
    const uint32_t x0 = pointer_.x >= 2 ? pointer_.x - 2 : 0;
    const uint32_t y0 = pointer_.y >= 2 ? pointer_.y - 2 : 0;
    const uint32_t x1 = std::min(width_, pointer_.x + 3);
    const uint32_t y1 = std::min(height_, pointer_.y + 3);
    for (uint32_t y = y0; y < y1; ++y)
      for (uint32_t x = x0; x < x1; ++x)
        pixels[size_t{y} * width_ + x] = kPromptColour;
    damage->push_back({x0, y0, x1 - x0, y1 - y0});
  }

  // Types the next character of the log; a new line scrolls the text area
  // when it is full. The log ends at the prompt.
  void TypeOne(uint32_t* pixels, std::vector<Damage>* damage) {
    static constexpr const char* kModeLine = "<mode>";
    static constexpr const char* kLog[] = {
        "[    0.000000] Linux version 6.1.0-vgpu (demo guest)",
        "[    0.412345] virtio-pci 0000:00:02.0: virtio-gpu",
        "[    0.413021] [drm] features: +edid +resource_blob +context_init",
        "[    0.415870] [drm] Initialized virtio_gpu 0.1.0 for 0000:00:02.0",
        "[    0.417002] fbcon: virtio_gpudrmfb (fb0) is primary device",
        "[    0.480113] Console: switching to colour frame buffer device",
        "",
        "Debian GNU/Linux 12 demo tty1",
        "",
        "demo login: root",
        "root@demo:~# uname -a",
        "Linux demo 6.1.0-vgpu #1 SMP x86_64 GNU/Linux",
        "root@demo:~# cat /sys/class/drm/card0-Virtual-1/modes",
        kModeLine,
        "root@demo:~# echo the screen you see travels over gRPC and VNC",
        "the screen you see travels over gRPC and VNC",
        "root@demo:~# ",
    };
    constexpr size_t kLines = sizeof(kLog) / sizeof(kLog[0]);
    if (rows_ <= kFirstTextRow) return;
    // The mode the guest runs at, as the kernel would list it.
    const std::string line = absl::string_view(kLog[line_]) == kModeLine
                                 ? absl::StrCat(width_, "x", height_)
                                 : std::string(kLog[line_]);
    // Text stays left of the bars while beside them.
    const uint32_t limit = row_ < bars_bottom_row_
                               ? std::min(columns_, bars_left_column_ - 1)
                               : columns_;
    if (column_ >= line.size() || column_ >= limit) {
      if (line_ + 1 == kLines) {
        at_prompt_ = true;
        return;
      }
      ++line_;
      column_ = 0;
      if (row_ + 1 < rows_) {
        ++row_;
      } else {
        ScrollText(pixels, damage);
      }
      return;
    }
    const char ch = line[column_];
    const bool prompt = absl::StartsWith(line, "root@demo") && column_ < 12;
    DrawCell(pixels, width_, column_, row_, static_cast<uint8_t>(ch),
             prompt ? kPromptColour : kForeground);
    damage->push_back(
        {column_ * kCellWidth, row_ * kCellHeight, kCellWidth, kCellHeight});
    ++column_;
  }

  // Moves the text below the bars up one line, as fbcon does.
  void ScrollText(uint32_t* pixels, std::vector<Damage>* damage) {
    const uint32_t top =
        std::max(bars_bottom_row_, kFirstTextRow) * kCellHeight;
    const uint32_t bottom = rows_ * kCellHeight;
    if (bottom <= top + kCellHeight) return;
    std::memmove(pixels + size_t{top} * width_,
                 pixels + size_t{top + kCellHeight} * width_,
                 size_t{width_} * (bottom - top - kCellHeight) * 4);
    std::fill(pixels + size_t{bottom - kCellHeight} * width_,
              pixels + size_t{bottom} * width_, kBackground);
    damage->push_back({0, top, width_, bottom - top});
  }

  uint32_t bars_left_column_ = 0, bars_bottom_row_ = 0;
  uint64_t line_ = 0;
  uint32_t row_ = kFirstTextRow, column_ = 0;
  bool at_prompt_ = false;
  std::string command_;  // typed at the prompt
  bool left_shift_ = false, right_shift_ = false;
  bool left_ctrl_ = false, right_ctrl_ = false;
  bool left_alt_ = false, right_alt_ = false;
  uint32_t leds_ = 0;  // CapsLock, NumLock, ScrollLock: LED_* bits
  CursorPoint pointer_;
  bool pointer_moved_ = false;
};
}  // namespace

const std::vector<std::string>& SceneNames() {
  static const std::vector<std::string> names = {"demo", "console", "scroll",
                                                 "video", "cursor"};
  return names;
}

absl::StatusOr<std::unique_ptr<Scene>> MakeScene(const std::string& name,
                                                 uint32_t width,
                                                 uint32_t height) {
  if (width < kCellWidth || height < kCellHeight) {
    return absl::InvalidArgumentError(
        absl::StrCat("screen ", width, "x", height, " too small"));
  }
  if (name == "demo") return std::make_unique<DemoScene>(width, height);
  if (name == "console") return std::make_unique<ConsoleScene>(width, height);
  if (name == "scroll") return std::make_unique<ScrollScene>(width, height);
  if (name == "video") return std::make_unique<VideoScene>(width, height);
  if (name == "cursor") return std::make_unique<CursorScene>(width, height);
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown scene '", name, "' (demo, console, scroll, video, cursor)"));
}

std::vector<uint32_t> CursorArrow() {
  std::vector<uint32_t> image(size_t{64} * 64, 0);
  for (uint32_t y = 0; y < 24; ++y)
    for (uint32_t x = 0; x <= y / 2 + 1 && x < 16; ++x) {
      bool edge = x == 0 || x == y / 2 + 1 || y == 23;
      image[y * 64 + x] = edge ? 0xFF000000u : 0xFFFFFFFFu;
    }
  return image;
}

}  // namespace vgpu::synth
