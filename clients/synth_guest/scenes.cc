#include "clients/synth_guest/scenes.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vgpu::synth {
namespace {

constexpr uint32_t kCellWidth = 8, kCellHeight = 16;  // fbcon's 8x16 font cells
constexpr uint32_t kBackground = 0xFF101820, kForeground = 0xFFC8D0C0;

// A glyph-like 8x16 pattern per character: not a real font, but the same
// size, density and damage as console text.
bool GlyphBit(uint32_t ch, uint32_t gx, uint32_t gy) {
  if (ch == ' ' || gy < 3 || gy > 13 || gx == 7) return false;
  uint32_t h = (ch * 2654435761u) ^ (gy * 40503u);
  h ^= h >> 13;
  return ((h >> (gx * 3 % 29)) & 3) == 0 || (gx == 1 && (ch & 1)) ||
         (gy == 12 && (ch & 2));
}

void DrawCell(uint32_t* pixels, uint32_t width, uint32_t cx, uint32_t cy,
              uint32_t ch) {
  for (uint32_t gy = 0; gy < kCellHeight; ++gy) {
    uint32_t* row = pixels + size_t{cy * kCellHeight + gy} * width +
                    size_t{cx} * kCellWidth;
    for (uint32_t gx = 0; gx < kCellWidth; ++gx) {
      row[gx] = GlyphBit(ch, gx, gy) ? kForeground : kBackground;
    }
  }
}

uint32_t TextAt(uint64_t n) {
  static constexpr char kText[] =
      "vgpu-display demo guest: the quick brown fox jumps over the lazy dog "
      "0123456789 ";
  return static_cast<uint8_t>(kText[n % (sizeof(kText) - 1)]);
}

// Types one character per frame, wrapping at the end of the screen.
class ConsoleScene : public Scene {
 public:
  ConsoleScene(uint32_t width, uint32_t height)
      : width_(width),
        height_(height),
        columns_(width / kCellWidth),
        rows_(height / kCellHeight) {}
  void Render(uint64_t index, uint32_t* pixels,
              std::vector<Damage>* damage) override {
    if (index == 0 || columns_ == 0 || rows_ == 0) {
      std::fill(pixels, pixels + size_t{width_} * height_, kBackground);
      damage->push_back({0, 0, width_, height_});
      return;
    }
    uint64_t cell = (index - 1) % (uint64_t{columns_} * rows_);
    uint32_t cx = static_cast<uint32_t>(cell % columns_),
             cy = static_cast<uint32_t>(cell / columns_);
    DrawCell(pixels, width_, cx, cy, TextAt(index));
    damage->push_back(
        {cx * kCellWidth, cy * kCellHeight, kCellWidth, kCellHeight});
  }

 private:
  uint32_t width_, height_, columns_, rows_;
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

}  // namespace

const std::vector<std::string>& SceneNames() {
  static const std::vector<std::string> names = {"console", "scroll", "video",
                                                 "cursor"};
  return names;
}

absl::StatusOr<std::unique_ptr<Scene>> MakeScene(const std::string& name,
                                                 uint32_t width,
                                                 uint32_t height) {
  if (width < kCellWidth || height < kCellHeight) {
    return absl::InvalidArgumentError(
        absl::StrCat("screen ", width, "x", height, " too small"));
  }
  if (name == "console") return std::make_unique<ConsoleScene>(width, height);
  if (name == "scroll") return std::make_unique<ScrollScene>(width, height);
  if (name == "video") return std::make_unique<VideoScene>(width, height);
  if (name == "cursor") return std::make_unique<CursorScene>(width, height);
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown scene '", name, "' (console, scroll, video, cursor)"));
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
