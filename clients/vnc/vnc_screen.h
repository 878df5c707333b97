// One RFB server for one scanout, on libvncserver (Debian's 0.9.14): the
// protocol, security types, client encodings and per-client threads are
// libvncserver's; the screen keeps a private B,G,R,X copy of the scanout
// that only the feeding thread writes.
//
// Thread rules: Create, SetMode, Update, Copy, SetCursor and the destructor
// are called from one feeding thread (libvncserver's framebuffer calls are
// not thread-safe among themselves). libvncserver's own threads (a listener,
// and an input and an output thread per client, so a client that stops
// reading stalls only itself) read the copy and call VncInput. `stats()`
// may be read from any thread.
//
// Encode once: a client that asks for Tight with a JPEG quality level
// (noVNC, TigerVNC, TurboVNC) and takes 32-bit true colour is a forwarding
// client. Its pixels come as JPEG and fill rects the daemon already encoded
// for its quality (Forward, one encoding shared by every client with that
// quality), written from libvncserver's displayHook with libvncserver's
// Tight writers; what has no forwarded encoding (a new client's first
// screen, a refresh it asks for, the daemon's lossless refresh of settled
// regions) is sent losslessly as Tight from the screen's copy. Other clients
// (ZRLE, Hextile, Raw, lossless Tight) get libvncserver's encoders, per
// client, from the copy that Update and Copy keep.
//
// The cursor reaches clients only as a shape (RichCursor/XCursor
// pseudo-encodings), and where the guest puts it as PointerPos to clients
// that ask for that: libvncserver draws it into the shared framebuffer for
// other clients, which races with the feed, so for them there is none.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace vgpu::vnc {

// Where key and pointer events from clients go. Called on libvncserver's
// client threads (several at once when several clients type); never for a
// view-only client.
class VncInput {
 public:
  virtual ~VncInput() = default;
  // An X keysym (RFB KeyEvent).
  virtual void OnKey(bool down, uint32_t keysym) = 0;
  // A QEMU Extended Key Event: the keysym and the XT scancode of the key
  // (noVNC, TigerVNC, gtk-vnc send these once the server acknowledged
  // them). `follows_leds`: the client asked for QEMU's LED state, so it
  // keeps the guest's lock keys in step with its own. By default only the
  // keysym is used.
  virtual void OnExtendedKey(bool down, uint32_t keysym, uint32_t keycode,
                             bool follows_leds) {
    (void)keycode;
    (void)follows_leds;
    OnKey(down, keysym);
  }
  // RFB PointerEvent (clamped into the screen): button mask (bit 0 left, 1
  // middle, 2 right, 3/4 wheel up/down), position in screen pixels.
  virtual void OnPointer(uint32_t buttons, uint32_t x, uint32_t y) = 0;
  // The screen's clients, after one came or `left` (view-only ones count).
  // Calls for a leave and a join at once may come in either order.
  virtual void OnClients(uint32_t clients, bool left) {
    (void)clients;
    (void)left;
  }
};

// A JPEG setting the daemon encodes for: libvncserver's turbo quality
// (1..100) and subsampling level (0 4:4:4, 1 4:2:0, 2 4:2:2, 3 grey), as it
// derives them from a client's Tight quality level (q6 -> 79, 4:4:4).
struct ForwardProfile {
  uint32_t quality = 0;
  uint32_t subsampling = 0;
  bool operator==(const ForwardProfile&) const = default;
  bool operator<(const ForwardProfile& other) const {
    return quality != other.quality ? quality < other.quality
                                    : subsampling < other.subsampling;
  }
};

// One of the daemon's updates for a forwarding profile.
struct ForwardedRect {
  enum class Kind {
    kJpeg,      // `jpeg`: a JPEG of the rect (sent as Tight JPEG)
    kFill,      // `bgrx`: one colour, 0xXXRRGGBB (sent as Tight fill)
    kLossless,  // no payload: sent losslessly from the screen's copy
  };
  uint32_t x = 0;
  uint32_t y = 0;
  uint32_t width = 0;
  uint32_t height = 0;
  Kind kind = Kind::kLossless;
  std::string jpeg = {};
  uint32_t bgrx = 0;
};
struct ForwardedUpdate {
  // The scanout's mode the rects belong to: an update for another size
  // than the screen's is sent as kLossless instead.
  uint32_t width = 0;
  uint32_t height = 0;
  // The daemon's frame this update brings a client to (Started.instance_id
  // and frame_sequence). A client given it gets nothing from the screen's
  // copy until SetCopyFrame says the copy shows that frame or a later one,
  // or the copy would paint an older picture over it. Instance 0: not
  // numbered, no such wait.
  uint64_t instance = 0;
  uint64_t sequence = 0;
  std::vector<ForwardedRect> rects = {};
};

struct VncScreenOptions {
  std::string name = "vgpu";  // the desktop name clients show
  // An IPv4 or IPv6 literal; loopback unless told otherwise.
  std::string host = "127.0.0.1";
  // 0 takes the first free port from 5900 up (as display numbers do).
  uint16_t port = 0;
  // VNC authentication (DES challenge; only the first 8 characters count,
  // as RFB's VNC authentication defines). With none of either, no
  // authentication. A client authenticated with a view-only password has
  // its key and pointer events ignored.
  std::vector<std::string> passwords = {};
  std::vector<std::string> view_only_passwords = {};
  // More clients than this at once are refused.
  uint32_t max_clients = 16;
  VncInput* input = nullptr;  // may be null: events are only counted
  // A client's SetDesktopSize (ExtendedDesktopSize), checked already (one
  // screen, 16..4095, not view-only): asks the guest for that size and
  // returns true when the guest was told. The client hears "success" only
  // then (and its reply comes with the new mode), else "prohibited". Called
  // on the client's input thread, which waits; null: always prohibited.
  std::function<bool(uint32_t width, uint32_t height)> resize = nullptr;
  // The profiles forwarding clients use now (at most 4; clients asking for
  // another are encoded here), each time that set changes: the caller
  // keeps one daemon subscription per profile feeding Forward and telling
  // SetForwardLive.
  // Called on client threads (serialised); must not block. Null: no client
  // forwards, libvncserver encodes for every client.
  std::function<void(const std::set<ForwardProfile>& profiles)>
      profiles_changed = nullptr;
  // Each time a client is accepted or has gone (stats().clients counts
  // them already), so the caller can pause what feeds the copy while nobody
  // watches. Called on client threads; must not block.
  std::function<void()> clients_changed = nullptr;
  // A client waits for the copy (its feed lags, SetCopyLagging): the
  // caller's feed should take the daemon's next frame now. Called on client
  // threads; must not block.
  std::function<void()> copy_wanted = nullptr;
};

struct VncScreenStats {
  std::atomic<uint32_t> clients{0};  // connected now
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> refused{0};  // over max_clients
  std::atomic<uint64_t> key_events{0};
  std::atomic<uint64_t> pointer_events{0};
  std::atomic<uint64_t> resize_requests{0};
  std::atomic<uint64_t> resizes_granted{0};
  // Encode once: rects sent as the daemon encoded them (JPEG, fill), their
  // bytes, and rects the bridge encoded losslessly for forwarding clients.
  std::atomic<uint64_t> forwarded_jpeg_rects{0};
  std::atomic<uint64_t> forwarded_fill_rects{0};
  std::atomic<uint64_t> forwarded_bytes{0};
  std::atomic<uint64_t> lossless_rects{0};
  // A forwarding client had more than its budget of forwarded bytes
  // waiting (it reads slower than the guest draws): its queue was dropped
  // for one lossless update of what changed.
  std::atomic<uint64_t> forward_overflows{0};
  // Updates libvncserver sent with JPEG off to a Tight JPEG client it
  // encodes for: what it had sent it as JPEG, once that stayed still.
  std::atomic<uint64_t> lossless_refreshes{0};
};

// What was sent to a screen's clients, over its life: FramebufferUpdate
// messages, and per RFB encoding (libvncserver's names: "raw", "tight",
// "ZRLE", "copyRect", "RichCursor", ...) the rects and their bytes.
// Counters only grow.
struct VncTraffic {
  struct Encoding {
    uint64_t rects = 0;
    uint64_t bytes = 0;
  };
  uint64_t updates = 0;
  std::map<std::string, Encoding> by_encoding;
};

class VncScreen {
 public:
  // Listens at once; the screen is `width` x `height` black until updated.
  // InvalidArgument for a size outside 1..16384 or a bad host; Unavailable
  // when the port cannot be had.
  static absl::StatusOr<std::unique_ptr<VncScreen>> Create(
      const VncScreenOptions& options, uint32_t width, uint32_t height);
  ~VncScreen();  // disconnects every client

  uint16_t port() const;
  uint32_t width() const;
  uint32_t height() const;
  const VncScreenStats& stats() const;
  // Thread-safe; as of each client's last update.
  VncTraffic Traffic() const;

  // A new size: clients that support DesktopSize follow (the others keep
  // the old size, their requests clipped). The screen is black until
  // updated, and forwarding clients get nothing from it until SetCopyFrame
  // says which frame it shows. Same size: nothing changes.
  absl::Status SetMode(uint32_t width, uint32_t height);
  // The copy now shows the daemon's frame `sequence` of `instance` (called
  // after that frame's last Update or Copy). Forwarding clients' lossless
  // rects that waited for it go now.
  void SetCopyFrame(uint64_t instance, uint64_t sequence);
  // Whether the copy follows the guest. Not (its feed paused while no
  // client watched): no client is sent anything from it, and what they are
  // owed waits, until SetCopyFrame or SetCopyCurrent(true) (say, the feed
  // cannot be had again: the last frame is better than nothing).
  void SetCopyCurrent(bool current);
  // Whether the copy must follow the guest now: a client is encoded from it
  // (libvncserver's encoders), or waits for it, or no client is connected
  // (the next one's first screen comes from it). While not, the copy's
  // feed may take the daemon's frames only when asked (copy_wanted) and
  // say so with SetCopyLagging(true): forwarding clients need the copy only
  // for what the daemon did not send as JPEG or fill. Any thread.
  bool CopyWanted() const;
  // The copy's feed takes frames only when asked (true), or again as they
  // come (false). While it lags and a forwarded frame is newer than the
  // copy, clients libvncserver encodes for are sent nothing from it (what
  // they are owed waits) and copy_wanted is called; forwarding clients
  // wait for their frames as ever, and a client that starts forwarding
  // waits for the newest frame forwarded. Any thread.
  void SetCopyLagging(bool lagging);
  // B,G,R,X pixels for the rect at (x, y), rows `stride` bytes apart.
  // InvalidArgument outside the screen.
  absl::Status Update(uint32_t x, uint32_t y, uint32_t width, uint32_t height,
                      const uint8_t* pixels, size_t stride);
  // RFB CopyRect: the rect at (x, y) takes what (src_x, src_y) shows (as
  // through a buffer when they overlap).
  absl::Status Copy(uint32_t x, uint32_t y, uint32_t width, uint32_t height,
                    uint32_t src_x, uint32_t src_y);
  // The daemon's encoding of an update for forwarding clients of
  // `profile`, in the daemon's order. Thread-safe (each profile's feed
  // thread); the update is shared by those clients, not copied.
  void Forward(const ForwardProfile& profile,
               const std::shared_ptr<const ForwardedUpdate>& update);
  // Whether `profile`'s daemon stream is up: true when it has just started
  // (its next update is the whole screen, which then repaints the clients
  // that switch to it), false when it ended. Clients of a profile whose
  // stream is down are encoded here, repainted whole from the copy; a
  // client that turns to a live stream later is repainted from the copy
  // too. Thread-safe.
  void SetForwardLive(const ForwardProfile& profile, bool live);
  // A client already connected on `fd` (a stream socket: the web console's
  // websocket relay), served as if it came to the listener; the screen owns
  // `fd` from here, also on error. Thread-safe. ResourceExhausted when the
  // descriptor is too high for libvncserver's select() (FD_SETSIZE).
  absl::Status AddClient(int fd);
  // The guest's keyboard LEDs (bit 0 Scroll, 1 Num, 2 Caps Lock), sent to
  // clients that take the QEMU LED State pseudo-encoding (noVNC, TigerVNC)
  // now and whenever they connect. Thread-safe.
  void SetLedState(uint8_t leds);
  // The pointer's image: B,G,R,A, `width` x `height` (at most 256 each),
  // hotspot in image pixels. RichCursor has a 1-bit mask: alpha >= 128
  // shows. Empty `bgra` hides the cursor.
  absl::Status SetCursor(uint32_t width, uint32_t height, uint32_t hot_x,
                         uint32_t hot_y, const std::string& bgra);
  // Where the guest's pointer is (its hotspot, screen pixels; clamped into
  // the screen), sent as RFB PointerPos to clients that asked for that
  // pseudo-encoding, with their next update.
  void SetPointerPosition(uint32_t x, uint32_t y);

  struct Impl;

 private:
  explicit VncScreen(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vgpu::vnc
