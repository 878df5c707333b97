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
struct StateDeleter {
  void operator()(xkb_state* state) const { xkb_state_unref(state); }
};

// Keysyms of the control characters text may hold (keysymdef.h).
constexpr uint32_t kKeysymBackSpace = 0xff08;
constexpr uint32_t kKeysymTab = 0xff09;
constexpr uint32_t kKeysymReturn = 0xff0d;
constexpr uint32_t kKeysymEscape = 0xff1b;

}  // namespace

static_assert(KEY_MICMUTE < 256, "Keymap::kKeys covers every key");

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
  std::unique_ptr<xkb_state, StateDeleter> state(xkb_state_new(keymap.get()));
  if (state == nullptr) return absl::InternalError("libxkbcommon: no state");
  // Real modifiers: AltGr is Mod5 (LevelThree in xkb-data), NumLock Mod2.
  auto bit = [&keymap](const char* mod) -> xkb_mod_mask_t {
    const xkb_mod_index_t index = xkb_keymap_mod_get_index(keymap.get(), mod);
    return index == XKB_MOD_INVALID || index >= 32 ? 0 : 1u << index;
  };
  const xkb_mod_mask_t shift = bit(XKB_MOD_NAME_SHIFT);
  const xkb_mod_mask_t altgr = bit("Mod5");
  const xkb_mod_mask_t caps = bit(XKB_MOD_NAME_CAPS);
  const xkb_mod_mask_t num = bit(XKB_MOD_NAME_NUM);
  // What each key types under each lock state and each of the modifier
  // combinations we can hold, as the guest's keymap sees it.
  for (size_t locks = 0; locks < 4; ++locks) {
    const xkb_mod_mask_t locked =
        ((locks & 1) ? caps : 0) | ((locks & 2) ? num : 0);
    std::map<uint32_t, KeyStroke>& table = result->by_keysym_[locks];
    std::vector<uint32_t>& keys = result->by_key_[locks];
    keys.assign(4 * kKeys, XKB_KEY_NoSymbol);
    for (int held = 0; held < 4; ++held) {  // none, Shift, AltGr, both
      const xkb_mod_mask_t depressed =
          ((held & 1) ? shift : 0) | ((held & 2) ? altgr : 0);
      xkb_state_update_mask(state.get(), depressed, 0, locked, 0, 0, 0);
      for (xkb_keycode_t keycode = 8 + KEY_ESC; keycode <= 8 + KEY_MICMUTE;
           ++keycode) {
        const xkb_keysym_t sym =
            xkb_state_key_get_one_sym(state.get(), keycode);
        if (sym == XKB_KEY_NoSymbol) continue;
        keys[held * kKeys + keycode - 8] = sym;
        // Fewer modifiers first, then lower codes: the first one stays.
        table.try_emplace(sym,
                          KeyStroke{.code = static_cast<uint16_t>(keycode - 8),
                                    .shift = (held & 1) != 0,
                                    .altgr = (held & 2) != 0});
      }
    }
  }
  return std::unique_ptr<const Keymap>(std::move(result));
}

std::optional<KeyStroke> Keymap::ForKeysym(uint32_t keysym,
                                           LockState locks) const {
  const size_t first = Index(locks);
  for (size_t i = 0; i < 4; ++i) {
    const std::map<uint32_t, KeyStroke>& table = by_keysym_[(first + i) % 4];
    auto it = table.find(keysym);
    if (it != table.end()) return it->second;
  }
  return std::nullopt;
}

uint32_t Keymap::KeysymAt(uint16_t code, bool shift, bool altgr,
                          LockState locks) const {
  if (code >= kKeys) return XKB_KEY_NoSymbol;
  const size_t held = (shift ? 1 : 0) | (altgr ? 2 : 0);
  return by_key_[Index(locks)][held * kKeys + code];
}

std::optional<KeyStroke> Keymap::ForCharacter(char32_t character,
                                              LockState locks) const {
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
  return ForKeysym(keysym, locks);
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
