#include "server/input/keymap.h"

#include <xkbcommon/xkbcommon.h>

#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include <linux/input-event-codes.h>

namespace vgpu::server {
namespace {

struct ContextDeleter {
  void operator()(xkb_context* context) const { xkb_context_unref(context); }
};
struct KeymapDeleter {
  void operator()(xkb_keymap* keymap) const { xkb_keymap_unref(keymap); }
};

// Keysyms of the control characters text may hold (keysymdef.h).
constexpr uint32_t kKeysymBackSpace = 0xff08;
constexpr uint32_t kKeysymTab = 0xff09;
constexpr uint32_t kKeysymReturn = 0xff0d;
constexpr uint32_t kKeysymEscape = 0xff1b;

}  // namespace

absl::StatusOr<std::unique_ptr<const Keymap>> Keymap::Create(
    const std::string& layout, const std::string& variant) {
  const std::string name =
      variant.empty() ? layout : absl::StrCat(layout, "(", variant, ")");
  if (layout.empty() || layout.find_first_of(",()") != std::string::npos ||
      variant.find_first_of(",()") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", name, "' is not one XKB layout"));
  }
  std::unique_ptr<xkb_context, ContextDeleter> context(
      xkb_context_new(XKB_CONTEXT_NO_ENVIRONMENT_NAMES));
  if (context == nullptr)
    return absl::InternalError("libxkbcommon: no context");
  // An unknown layout is our caller's error, said once by us.
  xkb_context_set_log_level(context.get(), XKB_LOG_LEVEL_CRITICAL);
  const xkb_rule_names names{.rules = "evdev",
                             .model = "pc105",
                             .layout = layout.c_str(),
                             .variant = variant.c_str(),
                             .options = nullptr};
  std::unique_ptr<xkb_keymap, KeymapDeleter> keymap(xkb_keymap_new_from_names(
      context.get(), &names, XKB_KEYMAP_COMPILE_NO_FLAGS));
  if (keymap == nullptr) {
    std::error_code error;
    if (!std::filesystem::exists("/usr/share/X11/xkb/rules/evdev", error)) {
      return absl::FailedPreconditionError(
          "no XKB data (/usr/share/X11/xkb): install xkb-data");
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unknown keyboard layout '", name,
                     "' (see /usr/share/X11/xkb/rules/evdev.lst)"));
  }
  std::unique_ptr<Keymap> result(new Keymap());
  result->name_ = name;
  const xkb_mod_index_t shift =
      xkb_keymap_mod_get_index(keymap.get(), XKB_MOD_NAME_SHIFT);
  // AltGr selects level 3: Mod5 in xkb-data, or the virtual LevelThree.
  const xkb_mod_index_t mod5 = xkb_keymap_mod_get_index(keymap.get(), "Mod5");
  const xkb_mod_index_t level3 =
      xkb_keymap_mod_get_index(keymap.get(), "LevelThree");
  auto bit = [](xkb_mod_index_t index) -> xkb_mod_mask_t {
    return index == XKB_MOD_INVALID || index >= 32 ? 0 : 1u << index;
  };
  const xkb_mod_mask_t shift_mask = bit(shift);
  const xkb_mod_mask_t altgr_mask = bit(mod5) | bit(level3);
  std::map<uint32_t, std::pair<xkb_level_index_t, KeyStroke>> best;
  for (xkb_keycode_t keycode = xkb_keymap_min_keycode(keymap.get());
       keycode <= xkb_keymap_max_keycode(keymap.get()); ++keycode) {
    if (keycode < 8 + KEY_ESC || keycode > 8 + KEY_MICMUTE) continue;
    const auto code = static_cast<uint16_t>(keycode - 8);
    const xkb_level_index_t levels =
        xkb_keymap_num_levels_for_key(keymap.get(), keycode, 0);
    for (xkb_level_index_t level = 0; level < levels; ++level) {
      // A modifier combination that reaches this level with Shift and
      // AltGr only (not Lock or NumLock).
      xkb_mod_mask_t masks[8];
      const size_t count = xkb_keymap_key_get_mods_for_level(
          keymap.get(), keycode, 0, level, masks, 8);
      std::optional<KeyStroke> stroke;
      for (size_t m = 0; m < count && !stroke; ++m) {
        if (masks[m] & ~(shift_mask | altgr_mask)) continue;
        stroke = KeyStroke{.code = code,
                           .shift = (masks[m] & shift_mask) != 0,
                           .altgr = (masks[m] & altgr_mask) != 0};
      }
      if (!stroke) continue;
      const xkb_keysym_t* syms = nullptr;
      const int n = xkb_keymap_key_get_syms_by_level(keymap.get(), keycode, 0,
                                                     level, &syms);
      for (int i = 0; i < n; ++i) {
        auto [it, added] = best.try_emplace(syms[i], level, *stroke);
        if (!added &&
            (level < it->second.first ||
             (level == it->second.first && code < it->second.second.code))) {
          it->second = {level, *stroke};
        }
      }
    }
  }
  for (const auto& [keysym, entry] : best)
    result->by_keysym_[keysym] = entry.second;
  return std::unique_ptr<const Keymap>(std::move(result));
}

std::optional<KeyStroke> Keymap::ForKeysym(uint32_t keysym) const {
  auto it = by_keysym_.find(keysym);
  if (it == by_keysym_.end()) return std::nullopt;
  return it->second;
}

std::optional<KeyStroke> Keymap::ForCharacter(char32_t character) const {
  uint32_t keysym = 0;
  switch (character) {
    case U'\n':
    case U'\r':
      keysym = kKeysymReturn;
      break;
    case U'\t':
      keysym = kKeysymTab;
      break;
    case U'\b':
      keysym = kKeysymBackSpace;
      break;
    case 0x1b:
      keysym = kKeysymEscape;
      break;
    default:
      keysym = xkb_utf32_to_keysym(static_cast<uint32_t>(character));
      break;
  }
  if (keysym == XKB_KEY_NoSymbol) return std::nullopt;
  return ForKeysym(keysym);
}

absl::StatusOr<std::shared_ptr<const Keymap>> KeymapCache::Get(
    const std::string& layout, const std::string& variant) {
  {
    MutexLock lock(&mu_);
    auto it = keymaps_.find({layout, variant});
    if (it != keymaps_.end()) return it->second;
  }
  absl::StatusOr<std::unique_ptr<const Keymap>> made =
      Keymap::Create(layout, variant);
  if (!made.ok()) return made.status();
  std::shared_ptr<const Keymap> keymap = *std::move(made);
  MutexLock lock(&mu_);
  keymaps_.try_emplace({layout, variant}, keymap);
  return keymap;
}

}  // namespace vgpu::server
