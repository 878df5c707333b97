// Helpers for the real-guest end-to-end test (tests/e2e/run.sh).
//
// e2e_tool pattern A|B WIDTH HEIGHT OUT.raw OUT.ppm
//     The test pattern as the guest writes it to /dev/fb0 (XRGB8888) and as
//     vgpu-displayd's snapshot must show it (PPM).
// e2e_tool diff EXPECTED.ppm ACTUAL.ppm
//     Prints the differing pixels; exit 0 if none.
// e2e_tool text ACTUAL.ppm ROWS
//     Exit 0 if the top ROWS rows hold console text.
// e2e_tool monitor SOCKET COMMAND...
//     One HMP command to QEMU's monitor.
// e2e_tool kmap LAYOUT OUT.kmap
//     The XKB layout as a Linux console keymap, in busybox loadkmap's binary
//     form (maps: plain, Shift, AltGr, Shift+AltGr).
// e2e_tool events SERIAL.log
//     The guest's "EV <24 hex bytes>" lines (struct input_event on x86-64)
//     as "type code value" lines, EV_SYN left out.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <xkbcommon/xkbcommon.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <linux/input-event-codes.h>

namespace {

struct Image {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

bool ReadPpm(const std::string& path, Image* image) {
  std::ifstream in(path, std::ios::binary);
  std::string magic;
  uint32_t max = 0;
  if (!(in >> magic >> image->width >> image->height >> max) || magic != "P6" ||
      max != 255) {
    return false;
  }
  in.get();
  image->rgb.resize(size_t{image->width} * image->height * 3);
  in.read(reinterpret_cast<char*>(image->rgb.data()),
          static_cast<std::streamsize>(image->rgb.size()));
  return static_cast<size_t>(in.gcount()) == image->rgb.size();
}

// 0xRRGGBB of pattern `name` at (x, y).
uint32_t PatternPixel(char name, uint32_t x, uint32_t y, uint32_t width,
                      uint32_t height) {
  if (name == 'A') {
    // Eight colour bars on the top half, a grey ramp below, a 64 px grid.
    static const uint32_t kBars[8] = {0xFFFFFF, 0xFFFF00, 0x00FFFF, 0x00FF00,
                                      0xFF00FF, 0xFF0000, 0x0000FF, 0x000000};
    if (x % 64 == 0 || y % 64 == 0) return 0x808080;
    if (y < height / 2) return kBars[x * 8 / width];
    uint32_t grey = x * 255 / (width - 1);
    return grey << 16 | grey << 8 | grey;
  }
  if (name >= '0' && name <= '3') {
    const double t = (name - '0') * 0.8, fx = x, fy = y;
    auto channel = [](double v) {
      return static_cast<uint32_t>(127.5 + 127.5 * std::sin(v));
    };
    return channel(fx / 97 + t) << 16 |
           channel(fy / 61 - fx / 173 + 1.7 * t) << 8 |
           channel((fx + fy) / 131 + std::sin(fy / 41 + t) + 2.3 * t);
  }
  if (name == 'M') return 0xFF8000;
  if (name == 'N') return 0x0080FF;
  // B: red/blue 32 px checkerboard with an 8 px green border.
  if (x < 8 || y < 8 || x >= width - 8 || y >= height - 8) return 0x00FF00;
  return ((x / 32) + (y / 32)) % 2 ? 0xFF0000 : 0x0000FF;
}

int Pattern(int argc, char** argv) {
  if (argc != 7) return 2;
  char name = argv[2][0];
  uint32_t width = static_cast<uint32_t>(std::atoi(argv[3]));
  uint32_t height = static_cast<uint32_t>(std::atoi(argv[4]));
  std::vector<uint8_t> raw(size_t{width} * height * 4),
      rgb(size_t{width} * height * 3);
  for (uint32_t y = 0; y < height; ++y) {
    for (uint32_t x = 0; x < width; ++x) {
      uint32_t p = PatternPixel(name, x, y, width, height);
      size_t i = size_t{y} * width + x;
      raw[i * 4] = static_cast<uint8_t>(p);  // B,G,R,X in memory
      raw[i * 4 + 1] = static_cast<uint8_t>(p >> 8);
      raw[i * 4 + 2] = static_cast<uint8_t>(p >> 16);
      raw[i * 4 + 3] = 0;
      rgb[i * 3] = static_cast<uint8_t>(p >> 16);
      rgb[i * 3 + 1] = static_cast<uint8_t>(p >> 8);
      rgb[i * 3 + 2] = static_cast<uint8_t>(p);
    }
  }
  std::ofstream(argv[5], std::ios::binary)
      .write(reinterpret_cast<char*>(raw.data()), raw.size());
  std::ofstream ppm(argv[6], std::ios::binary);
  ppm << "P6\n" << width << " " << height << "\n255\n";
  ppm.write(reinterpret_cast<char*>(rgb.data()),
            static_cast<std::streamsize>(rgb.size()));
  return 0;
}

int Diff(int argc, char** argv) {
  if (argc != 4) return 2;
  Image expected, actual;
  if (!ReadPpm(argv[2], &expected) || !ReadPpm(argv[3], &actual)) {
    std::printf("unreadable image\n");
    return 1;
  }
  if (expected.width != actual.width || expected.height != actual.height) {
    std::printf("size %ux%u, expected %ux%u\n", actual.width, actual.height,
                expected.width, expected.height);
    return 1;
  }
  size_t differing = 0, first = 0;
  for (size_t i = 0; i < expected.rgb.size(); i += 3) {
    if (std::memcmp(&expected.rgb[i], &actual.rgb[i], 3) != 0) {
      if (differing++ == 0) first = i / 3;
    }
  }
  std::printf("%zu differing pixels", differing);
  if (differing)
    std::printf(" (first at %zu,%zu)", first % expected.width,
                first / expected.width);
  std::printf("\n");
  return differing == 0 ? 0 : 1;
}

int Text(int argc, char** argv) {
  if (argc != 4) return 2;
  Image image;
  if (!ReadPpm(argv[2], &image)) return 1;
  uint32_t rows = std::min<uint32_t>(static_cast<uint32_t>(std::atoi(argv[3])),
                                     image.height);
  // Console text: some bright glyph pixels on a dark background, in the top
  // rows, and the rest of the screen dark.
  size_t bright = 0, dark = 0, below_bright = 0;
  for (uint32_t y = 0; y < image.height; ++y) {
    for (uint32_t x = 0; x < image.width; ++x) {
      const uint8_t* p = &image.rgb[(size_t{y} * image.width + x) * 3];
      bool is_bright = p[0] + p[1] + p[2] > 300;
      if (y < rows) {
        (is_bright ? bright : dark)++;
      } else if (is_bright) {
        ++below_bright;
      }
    }
  }
  std::printf("top %u rows: %zu bright, %zu dark pixels; %zu bright below\n",
              rows, bright, dark, below_bright);
  size_t below_total = size_t{image.width} * (image.height - rows);
  return bright >= 200 && dark > bright && below_bright < below_total / 20 ? 0
                                                                           : 1;
}

// Writes argv[3..] as one line to unix socket argv[2], after reading a
// greeting if `greeting`; stays connected a while after writing: QEMU's
// socket chardev reads only what its device can take and drops the rest
// when the peer hangs up (the monitor answers meanwhile).
int SendLine(int argc, char** argv, bool greeting) {
  if (argc < 4) return 2;
  std::string line;
  for (int i = 3; i < argc; ++i)
    line += std::string(i > 3 ? " " : "") + argv[i];
  line += "\n";
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, argv[2], sizeof(address.sun_path) - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    std::perror("connect");
    return 1;
  }
  if (greeting) {
    char buffer[4096];
    usleep(200000);  // let the greeting arrive
    [[maybe_unused]] ssize_t read_bytes = read(fd, buffer, sizeof(buffer));
  }
  bool ok =
      write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  usleep(500000);
  close(fd);
  return ok ? 0 : 1;
}

// A console keymap value (linux/keyboard.h K(type, value)) for a keysym.
uint16_t ConsoleValue(xkb_keysym_t keysym) {
  constexpr uint16_t kLatin = 0, kSpec = 2, kShift = 7, kLetter = 11;
  auto k = [](uint16_t type, uint16_t value) -> uint16_t {
    return static_cast<uint16_t>(type << 8 | value);
  };
  switch (keysym) {
    case XKB_KEY_Return:
      return k(kSpec, 1);
    case XKB_KEY_BackSpace:
      return k(kLatin, 127);
    case XKB_KEY_Tab:
      return k(kLatin, 9);
    case XKB_KEY_Escape:
      return k(kLatin, 27);
    case XKB_KEY_Caps_Lock:
      return k(kSpec, 7);
    case XKB_KEY_Shift_L:
    case XKB_KEY_Shift_R:
      return k(kShift, 0);
    case XKB_KEY_ISO_Level3_Shift:
      return k(kShift, 1);
    case XKB_KEY_Control_L:
    case XKB_KEY_Control_R:
      return k(kShift, 2);
    case XKB_KEY_Alt_L:
      return k(kShift, 3);
    default:
      break;
  }
  const uint32_t c = xkb_keysym_to_utf32(keysym);
  if (c >= 0x20 && c < 0x100) {
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    return k(letter ? kLetter : kLatin, static_cast<uint16_t>(c));
  }
  return k(kSpec, 0);  // K_HOLE: types nothing
}

int Kmap(int argc, char** argv) {
  if (argc != 4) return 2;
  xkb_context* context = xkb_context_new(XKB_CONTEXT_NO_ENVIRONMENT_NAMES);
  const xkb_rule_names names{"evdev", "pc105", argv[2], "", nullptr};
  xkb_keymap* keymap =
      xkb_keymap_new_from_names(context, &names, XKB_KEYMAP_COMPILE_NO_FLAGS);
  if (keymap == nullptr) {
    std::fprintf(stderr, "no XKB layout %s\n", argv[2]);
    return 1;
  }
  const xkb_mod_index_t shift = xkb_keymap_mod_get_index(keymap, "Shift");
  const xkb_mod_index_t altgr = xkb_keymap_mod_get_index(keymap, "Mod5");
  std::string out = "bkeymap";
  std::string flags(256, '\0');
  for (int map = 0; map < 4; ++map) flags[map] = 1;
  out += flags;
  for (int map = 0; map < 4; ++map) {
    xkb_state* state = xkb_state_new(keymap);
    const xkb_mod_mask_t mods =
        ((map & 1) ? 1u << shift : 0) | ((map & 2) ? 1u << altgr : 0);
    xkb_state_update_mask(state, mods, 0, 0, 0, 0, 0);
    for (uint32_t code = 0; code < 128; ++code) {
      const uint16_t value =
          code == 0 ? 0x200
                    : ConsoleValue(xkb_state_key_get_one_sym(state, code + 8));
      out.push_back(static_cast<char>(value & 0xff));
      out.push_back(static_cast<char>(value >> 8));
    }
    xkb_state_unref(state);
  }
  xkb_keymap_unref(keymap);
  xkb_context_unref(context);
  std::ofstream file(argv[3], std::ios::binary);
  file.write(out.data(), static_cast<std::streamsize>(out.size()));
  return file ? 0 : 1;
}

int Events(int argc, char** argv) {
  if (argc != 3) return 2;
  std::ifstream in(argv[2]);
  std::string line;
  while (std::getline(in, line)) {
    const size_t at = line.find("EV ");
    if (at == std::string::npos || line.size() < at + 3 + 48) continue;
    uint8_t bytes[24];
    for (int i = 0; i < 24; ++i)
      bytes[i] = static_cast<uint8_t>(
          std::stoul(line.substr(at + 3 + 2 * i, 2), nullptr, 16));
    uint16_t type, code;
    int32_t value;
    std::memcpy(&type, bytes + 16, 2);
    std::memcpy(&code, bytes + 18, 2);
    std::memcpy(&value, bytes + 20, 4);
    if (type != EV_SYN) std::printf("%u %u %d\n", type, code, value);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string verb = argc > 1 ? argv[1] : "";
  int result = 2;
  if (verb == "pattern") result = Pattern(argc, argv);
  if (verb == "diff") result = Diff(argc, argv);
  if (verb == "text") result = Text(argc, argv);
  if (verb == "monitor") result = SendLine(argc, argv, /*greeting=*/true);
  if (verb == "send") result = SendLine(argc, argv, /*greeting=*/false);
  if (verb == "kmap") result = Kmap(argc, argv);
  if (verb == "events") result = Events(argc, argv);
  if (result == 2)
    std::fprintf(stderr, "usage: see the comment at the top of e2e_tool.cc\n");
  return result;
}
