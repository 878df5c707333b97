#include "clients/vnc/vnc_screen.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include <rfb/rfb.h>

#include "clients/vnc/rfb_extensions.h"
#include "clients/vnc/tight_writer.h"
#include "common/log.h"
#include "common/mutex.h"

namespace vgpu::vnc {
namespace {
// No pointer position known (or sent) yet.
constexpr uint64_t kNoPointer = ~uint64_t{0};

// One of the daemon's frames; instance 0 is none.
struct FrameId {
  uint64_t instance = 0;
  uint64_t sequence = 0;
};
}  // namespace

struct VncScreen::Impl {
  rfbScreenInfoPtr screen = nullptr;
  std::vector<uint8_t> pixels;  // B,G,R,X; libvncserver reads it
  std::string name;
  std::string host6;  // libvncserver wants it writable
  // NULL-terminated, full-control ones first (rfbCheckPasswordByList).
  std::vector<std::string> passwords;
  std::vector<char*> password_list;
  uint32_t max_clients = 0;
  VncInput* input = nullptr;
  std::function<bool(uint32_t, uint32_t)> resize;
  std::function<void(const std::set<ForwardProfile>&)> profiles_changed;
  std::function<void()> clients_changed;
  std::function<void()> copy_wanted;
  // Forwarding clients per profile; profiles_changed is called under it.
  Mutex forward_mu;
  std::map<ForwardProfile, uint32_t> forwarding VGPU_GUARDED_BY(forward_mu);
  // Profiles whose daemon stream is up (SetForwardLive).
  std::set<ForwardProfile> live VGPU_GUARDED_BY(forward_mu);
  // Which of the daemon's frames the copy shows (SetCopyFrame); not valid
  // from SetMode until then (it is black).
  Mutex copy_mu;
  bool copy_valid VGPU_GUARDED_BY(copy_mu) = true;
  FrameId copy_frame VGPU_GUARDED_BY(copy_mu);
  // The copy's feed paused (SetCopyCurrent(false)) and no frame since: no
  // client is sent anything from it.
  bool copy_stale VGPU_GUARDED_BY(copy_mu) = false;
  // The copy's feed takes frames only when asked (SetCopyLagging), and the
  // newest frame forwarded on any profile (Forward): the copy is behind
  // while it shows an older one.
  bool copy_lagging VGPU_GUARDED_BY(copy_mu) = false;
  FrameId newest_forwarded VGPU_GUARDED_BY(copy_mu);
  // The screen's size, for the forward feeds' threads.
  std::atomic<uint32_t> mode_width{0};
  std::atomic<uint32_t> mode_height{0};
  std::atomic<uint8_t> leds{0};
  // The guest's pointer (hotspot), x << 32 | y; kNoPointer until known.
  std::atomic<uint64_t> pointer{kNoPointer};
  VncScreenStats stats;
  // ClientGone notifies it, for the destructor's wait.
  Mutex gone_mu;
  // Input threads of clients that left, to be joined (libvncserver 0.9.14
  // joins them only in rfbShutdownServer, which the destructor does not
  // ask it to do; unjoined, each would keep its stack).
  std::vector<pthread_t> finished VGPU_GUARDED_BY(gone_mu);
  // Traffic of clients that left, and what Traffic() last said (counters
  // never go back, also while a leaving client is in neither place).
  mutable Mutex traffic_mu;
  std::map<uint32_t, VncTraffic::Encoding> retired VGPU_GUARDED_BY(traffic_mu);
  uint64_t retired_updates VGPU_GUARDED_BY(traffic_mu) = 0;
  mutable VncTraffic reported VGPU_GUARDED_BY(traffic_mu);
  // Accepted clients being closed, until ClientGone: WakeClosing keeps
  // waking their output threads (below).
  Mutex closing_mu;
  std::set<rfbClientPtr> closing VGPU_GUARDED_BY(closing_mu);
  bool stop_waker VGPU_GUARDED_BY(closing_mu) = false;
  std::thread waker;
  std::thread refresher;  // RefreshSettled; stops with the waker
};

namespace {

constexpr uint32_t kMaxSide = 16384;
constexpr uint32_t kMaxCursorSide = 256;

// libvncserver "errors" that are the normal course of things: the web
// console's clients come over a socketpair (no TCP_NODELAY there), and a
// client that closes while an update is written breaks the pipe.
bool RoutineVncError(absl::string_view text) {
  for (absl::string_view routine : {"can't set TCP_NODELAY", ": Broken pipe",
                                    ": Connection reset by peer"}) {
    if (absl::StrContains(text, routine)) return true;
  }
  return false;
}

// libvncserver logs every connection step to stderr; its lines go through
// our log at debug level (VGPU_LOG_LEVEL=debug shows them), its errors as
// warnings unless routine.
__attribute__((format(printf, 2, 0))) void LogVnc(LogSeverity severity,
                                                  const char* format,
                                                  va_list args) {
  if (severity < MinLogSeverity()) return;
  char line[512];
  std::vsnprintf(line, sizeof(line), format, args);
  absl::string_view text(line);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (severity == LogSeverity::kWarning && RoutineVncError(text))
    severity = LogSeverity::kDebug;
  if (severity < MinLogSeverity()) return;
  if (severity == LogSeverity::kDebug) {
    VGPU_LOG(DEBUG) << "libvncserver: " << text;
  } else {
    VGPU_LOG(WARNING) << "libvncserver: " << text;
  }
}
__attribute__((format(printf, 1, 2))) void VncLog(const char* format, ...) {
  va_list args;
  va_start(args, format);
  LogVnc(LogSeverity::kDebug, format, args);
  va_end(args);
}
__attribute__((format(printf, 1, 2))) void VncErr(const char* format, ...) {
  va_list args;
  va_start(args, format);
  LogVnc(LogSeverity::kWarning, format, args);
  va_end(args);
}
void RouteVncLogs() {
  static std::once_flag once;
  std::call_once(once, [] {
    rfbLog = VncLog;
    rfbErr = VncErr;
  });
}

// libvncserver's default 32-bit format is R,G,B,X in memory; ours is
// B,G,R,X (little-endian 0xXXRRGGBB).
void UseBgrx(rfbScreenInfoPtr screen) {
  screen->serverFormat.redShift = 16;
  screen->serverFormat.greenShift = 8;
  screen->serverFormat.blueShift = 0;
}

// Where libvncserver would draw the cursor into the framebuffer for clients
// without cursor shapes: nowhere (its drawing saves and restores pixels
// under the cursor, which races with the feed).
// Negative: rfbNewFramebuffer clamps only positions past the new size.
constexpr int kOffScreen = -(1 << 20);

bool Inside(uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint32_t width,
            uint32_t height) {
  return uint64_t{x} + w <= width && uint64_t{y} + h <= height;
}

absl::Status CheckSize(uint32_t width, uint32_t height) {
  if (width == 0 || height == 0 || width > kMaxSide || height > kMaxSide)
    return absl::InvalidArgumentError(
        absl::StrCat("a ", width, "x", height, " screen (1..", kMaxSide, ")"));
  return absl::OkStatus();
}

VncScreen::Impl* ImplOf(rfbClientPtr client) {
  return static_cast<VncScreen::Impl*>(client->screen->screenData);
}

extern rfbProtocolExtension qemu_extension;  // below

// Per accepted client (rfbClientRec::clientData, made by NewClient, freed
// by ClientGone, each called once per client): what it asked for.
struct ClientState {
  std::atomic<bool> led_state{false};  // set on its input thread

  // Encode once. Under the client's updateMutex (libvncserver's): whether
  // it takes forwarded rects and with which profile (`wants`: counted for
  // its profile, decided on its output thread), whether it is served so now
  // (`served`: wants, and the profile's stream is up), and the daemon's
  // updates waiting for it (queued by the profile's feed).
  bool wants = false;
  bool served = false;
  ForwardProfile profile;
  std::vector<std::shared_ptr<const ForwardedUpdate>> queue;
  size_t queued_bytes = 0;
  // The newest frame forwarded to it (queued, sent or dropped), and what it
  // is owed losslessly while the copy shows an older frame (the two
  // streams run apart: painting the copy then would leave an older picture
  // that no forwarded rect repaints).
  FrameId needed;
  sraRegionPtr held = sraRgnCreate();
  // Lossless refresh for a client libvncserver encodes with JPEG (the
  // daemon refreshes the forwarded ones): what it was sent in this and the
  // last refresh period, and a refresh asked for (under updateMutex); the
  // quality level to put back after a lossless update, and the SetEncodings
  // count then (the output thread's).
  sraRegionPtr sent_now = sraRgnCreate();
  sraRegionPtr sent_before = sraRgnCreate();
  // A client's update request, taken out while an update sends nothing
  // (what it is owed waits for the copy; libvncserver would send its own
  // snapshot of the region from the copy); AfterUpdate puts it back. Under
  // updateMutex.
  sraRegionPtr parked = nullptr;
  bool refresh_asked = false;
  bool refreshing = false;
  int saved_quality = -1;
  int saved_encodings = 0;
  // PointerPos: asked for (libvncserver's flag is kept off, or it would
  // send its own, off-screen, position), the SetEncodings count that was
  // seen, the position last sent (the output thread's but `wants_pointer`).
  std::atomic<bool> wants_pointer{false};
  int encodings_seen = 0;
  uint64_t pointer_sent = kNoPointer;
  // The last update was a PointerPos of ours: the next one is
  // libvncserver's (the output thread's).
  bool pointer_update_last = false;

  // libvncserver's per-client counts are 32-bit and owned by the client's
  // output thread: copied from there (before each update, and when the
  // client goes) into 64-bit totals.
  void CopyTraffic(rfbClientPtr client) {
    MutexLock lock(&mu);
    for (rfbStatList* s = client->statEncList; s != nullptr; s = s->Next) {
      Raw& last = last_raw[s->type];
      VncTraffic::Encoding& total = totals[s->type];
      total.rects += s->sentCount - last.rects;  // modulo 2^32
      total.bytes += s->bytesSent - last.bytes;
      last = {s->sentCount, s->bytesSent};
    }
    const auto sent = static_cast<uint32_t>(
        rfbStatGetMessageCountSent(client, rfbFramebufferUpdate));
    updates += sent - last_updates;
    last_updates = sent;
  }

  struct Raw {
    uint32_t rects = 0;
    uint32_t bytes = 0;
  };
  mutable Mutex mu;
  std::map<uint32_t, Raw> last_raw VGPU_GUARDED_BY(mu);
  std::map<uint32_t, VncTraffic::Encoding> totals VGPU_GUARDED_BY(mu);
  uint32_t last_updates VGPU_GUARDED_BY(mu) = 0;
  uint64_t updates VGPU_GUARDED_BY(mu) = 0;

  ClientState() = default;
  ClientState(const ClientState&) = delete;
  ClientState& operator=(const ClientState&) = delete;
  ~ClientState() {
    sraRgnDestroy(held);
    sraRgnDestroy(sent_now);
    sraRgnDestroy(sent_before);
    if (parked != nullptr) sraRgnDestroy(parked);
  }
};

// Different profiles a screen forwards at most (each is a daemon stream and
// its encoding); clients asking for more are encoded here.
constexpr size_t kMaxProfiles = 4;

// A client stopped forwarding with `from` and/or asks to with `to`: false
// when `to` would be a profile over kMaxProfiles.
bool CountForwarding(VncScreen::Impl* impl, const ForwardProfile* from,
                     const ForwardProfile* to) {
  if (!impl->profiles_changed) return false;
  MutexLock lock(&impl->forward_mu);
  bool changed = false;
  bool accepted = to != nullptr;
  if (from != nullptr) {
    auto it = impl->forwarding.find(*from);
    if (it != impl->forwarding.end() && --it->second == 0) {
      impl->forwarding.erase(it);
      changed = true;
    }
  }
  if (to != nullptr && impl->forwarding.count(*to) == 0 &&
      impl->forwarding.size() >= kMaxProfiles) {
    accepted = false;
  }
  if (accepted) changed |= impl->forwarding[*to]++ == 0;
  if (changed) {
    std::set<ForwardProfile> profiles;
    for (const auto& [profile, count] : impl->forwarding)
      profiles.insert(profile);
    impl->profiles_changed(profiles);
  }
  return accepted;
}

// Calls `f(client, state)` for each accepted client, its updateMutex held.
template <typename F>
void ForEachClientLocked(rfbScreenInfoPtr screen, F f) {
  rfbClientIteratorPtr clients = rfbGetClientIterator(screen);
  while (rfbClientPtr client = rfbClientIteratorNext(clients)) {
    auto* state = static_cast<ClientState*>(client->clientData);
    if (state == nullptr) continue;
    LOCK(client->updateMutex);
    f(client, state);
    UNLOCK(client->updateMutex);
  }
  rfbReleaseClientIterator(clients);
}

// `region` &= the rect (x1, y1)-(x2, y2).
void AndRect(sraRegionPtr region, int x1, int y1, int x2, int y2) {
  sraRegionPtr rect = sraRgnCreateRect(x1, y1, x2, y2);
  sraRgnAnd(region, rect);
  sraRgnDestroy(rect);
}

void MarkWholeScreen(rfbClientPtr client) {
  AddRect(client->modifiedRegion, 0, 0, client->screen->width,
          client->screen->height);
}

// Serves a client forwarded rects or not. What it shows came from the other
// path: with `repaint`, all of it comes again; without, the caller knows
// the next forwarded update is the whole screen (a stream that just
// started). Under the client's updateMutex.
void SetServed(rfbClientPtr client, ClientState* state, bool served,
               bool repaint = true) {
  if (served == state->served) return;
  state->served = served;
  state->queue.clear();
  state->queued_bytes = 0;
  state->needed = {};
  if (served && repaint) {
    // Its first picture comes from the copy: not before the copy shows
    // what the streams have forwarded (the copy may lag, SetCopyLagging).
    VncScreen::Impl* impl = ImplOf(client);
    MutexLock lock(&impl->copy_mu);
    state->needed = impl->newest_forwarded;
  }
  sraRgnMakeEmpty(state->held);
  sraRgnMakeEmpty(state->sent_now);
  sraRgnMakeEmpty(state->sent_before);
  state->refresh_asked = false;
  if (repaint) {
    MarkWholeScreen(client);
  } else if (served) {
    // Nothing owed from the copy either (a new client's first screen, say):
    // the stream's whole screen is on its way.
    sraRgnMakeEmpty(client->modifiedRegion);
    sraRgnMakeEmpty(client->copyRegion);
  }
  TSIGNAL(client->updateCond);
}

void ClientGone(rfbClientPtr client) {
  VncScreen::Impl* impl = ImplOf(client);
  if (client->clientData != nullptr) {  // accepted
    auto* state = static_cast<ClientState*>(client->clientData);
    state->CopyTraffic(client);  // its output thread has ended
    if (state->wants) CountForwarding(impl, &state->profile, nullptr);
    {
      MutexLock traffic_lock(&impl->traffic_mu);
      MutexLock state_lock(&state->mu);
      for (const auto& [type, total] : state->totals) {
        impl->retired[type].rects += total.rects;
        impl->retired[type].bytes += total.bytes;
      }
      impl->retired_updates += state->updates;
    }
    delete state;
    client->clientData = nullptr;
    {
      // Before libvncserver destroys the client's condition variable.
      MutexLock closing_lock(&impl->closing_mu);
      impl->closing.erase(client);
    }
    MutexLock lock(&impl->gone_mu);
    // An accepted client leaves on its own input thread, which ends right
    // after this (rfbClientConnectionGone).
    if (pthread_equal(client->client_thread, pthread_self()))
      impl->finished.push_back(pthread_self());
    impl->stats.clients.fetch_sub(1, std::memory_order_relaxed);
    impl->gone_mu.NotifyAll();
    if (impl->clients_changed) impl->clients_changed();
    if (impl->input != nullptr)
      impl->input->OnClients(impl->stats.clients.load(), /*left=*/true);
  }
  // libvncserver 0.9.14 never frees a client's extension records (not even
  // in rfbDisableExtension): ours goes here, with the allocator it came
  // from.
  for (rfbExtensionData** link = &client->extensions; *link != nullptr;
       link = &(*link)->next) {
    if ((*link)->extension == &qemu_extension) {
      rfbExtensionData* record = *link;
      *link = record->next;
      free(record);
      break;
    }
  }
}

// libvncserver 0.9.14's clientOutput checks for a closed client without the
// client's updateMutex and then waits on its updateCond; the two signals a
// close sends (rfbCloseClient's, clientInput's before it joins the output
// thread) can both fall between the check and the wait. The output thread
// then sleeps forever, its input thread joining it too: the client never
// leaves and keeps its place under max_clients (found by
// rfb_client_fuzzer). So from the close on, until the client is gone, its
// updateCond is signalled every 10 ms; a woken output thread sees the close
// and ends.
void ClientClosing(rfbClientPtr client, void*) {
  if (client->clientData == nullptr) return;  // refused: has no threads
  VncScreen::Impl* impl = ImplOf(client);
  MutexLock lock(&impl->closing_mu);
  if (impl->closing.insert(client).second) impl->closing_mu.NotifyAll();
}

void WakeClosing(VncScreen::Impl* impl) {
  MutexLock lock(&impl->closing_mu);
  while (true) {
    impl->closing_mu.Await([impl]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return impl->stop_waker || !impl->closing.empty();
    });
    if (impl->stop_waker) return;
    for (rfbClientPtr client : impl->closing) {
      // Try only: a thread holding updateMutex may be closing the client
      // (and so waiting for closing_mu); the next round gets it.
      if (pthread_mutex_trylock(&client->updateMutex) != 0) continue;
      pthread_cond_signal(&client->updateCond);
      pthread_mutex_unlock(&client->updateMutex);
    }
    impl->closing_mu.WaitOnce(std::chrono::steady_clock::now() +
                              std::chrono::milliseconds(10));
  }
}

// How long a region a client was sent with JPEG must stay unchanged before
// it goes again losslessly (one to two periods), as the daemon's
// lossless_refresh_ms does for its own viewers.
constexpr auto kRefreshPeriod = std::chrono::milliseconds(300);

// For clients libvncserver encodes with Tight JPEG: what one was sent in
// the last period and not since has settled, and goes again with JPEG off
// for that update (libvncserver's Tight is then lossless), so a still
// screen ends up exact for them too.
void RefreshSettled(VncScreen::Impl* impl) {
  while (true) {
    {
      MutexLock lock(&impl->closing_mu);
      impl->closing_mu.AwaitUntil(
          [impl]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return impl->stop_waker; },
          std::chrono::steady_clock::now() + kRefreshPeriod);
      if (impl->stop_waker) return;
    }
    // Not under closing_mu: a client's updateMutex comes first.
    ForEachClientLocked(
        impl->screen, [](rfbClientPtr client, ClientState* state) {
          sraRgnSubtract(state->sent_before, state->sent_now);  // not settled
          if (!state->served && !sraRgnEmpty(state->sent_before)) {
            sraRgnOr(client->modifiedRegion, state->sent_before);
            state->refresh_asked = true;
            TSIGNAL(client->updateCond);
          }
          std::swap(state->sent_before, state->sent_now);
          sraRgnMakeEmpty(state->sent_now);
        });
  }
}

// Joins the input threads of clients that left (never called on one).
void JoinFinished(VncScreen::Impl* impl) {
  std::vector<pthread_t> finished;
  {
    MutexLock lock(&impl->gone_mu);
    finished.swap(impl->finished);
  }
  for (pthread_t thread : finished) pthread_join(thread, nullptr);
}

// A forwarding client's update is written from displayHook, before
// libvncserver works out from the client's requested region what else to
// send. A request the client makes on receiving it must not reach that
// region before libvncserver is done, or it encodes the forwarded pixels
// once more from the screen's copy: the request waits for the update in
// progress, which holds the client's sendMutex. On the client's input
// thread, before libvncserver takes the request.
void AfterUpdateInProgress(rfbClientPtr client,
                           rfbFramebufferUpdateRequestMsg*) {
  LOCK(client->sendMutex);
  UNLOCK(client->sendMutex);
}

enum rfbNewClientAction NewClient(rfbClientPtr client) {
  VncScreen::Impl* impl = ImplOf(client);
  JoinFinished(impl);
  client->clientGoneHook = ClientGone;  // refused ones go through it too
  // libvncserver's own websockets on the RFB port check no Origin: any web
  // page could connect. Browsers come through the web console instead.
  if (client->wsctx != nullptr) {
    VGPU_LOG(WARNING) << "VNC: refused a websocket client from " << client->host
                      << " on the RFB port (use the console)";
    return RFB_CLIENT_REFUSE;
  }
  // The listener and the web console add clients from their own threads.
  uint32_t clients = impl->stats.clients.load(std::memory_order_relaxed);
  do {
    if (clients >= impl->max_clients) {
      impl->stats.refused.fetch_add(1, std::memory_order_relaxed);
      VGPU_LOG(WARNING) << "VNC: refused a client from " << client->host
                        << ": already " << impl->max_clients << " clients";
      return RFB_CLIENT_REFUSE;
    }
  } while (!impl->stats.clients.compare_exchange_weak(
      clients, clients + 1, std::memory_order_relaxed));
  impl->stats.connections.fetch_add(1, std::memory_order_relaxed);
  client->clientData = new ClientState();
  client->clientFramebufferUpdateRequestHook = AfterUpdateInProgress;
  if (impl->clients_changed) impl->clients_changed();
  if (impl->input != nullptr)
    impl->input->OnClients(impl->stats.clients.load(), /*left=*/false);
  return RFB_CLIENT_ACCEPT;
}

void KeyEvent(rfbBool down, rfbKeySym keysym, rfbClientPtr client) {
  VncScreen::Impl* impl = ImplOf(client);
  impl->stats.key_events.fetch_add(1, std::memory_order_relaxed);
  if (impl->input != nullptr) impl->input->OnKey(down != 0, keysym);
}

// Replaces libvncserver's default, which moves the cursor it would draw.
void PointerEvent(int buttons, int x, int y, rfbClientPtr client) {
  VncScreen::Impl* impl = ImplOf(client);
  impl->stats.pointer_events.fetch_add(1, std::memory_order_relaxed);
  if (impl->input == nullptr) return;
  // Clients may send any 16-bit position (also one from before a smaller
  // mode): clamped into the screen.
  const int max_x = client->screen->width - 1,
            max_y = client->screen->height - 1;
  impl->input->OnPointer(static_cast<uint32_t>(buttons) & 0xFF,
                         static_cast<uint32_t>(std::clamp(x, 0, max_x)),
                         static_cast<uint32_t>(std::clamp(y, 0, max_y)));
}

// A client takes the daemon's JPEG as it is: Tight with a JPEG quality
// level, in a format Tight sends 3-byte pixels for.
bool CanForward(rfbClientPtr client) {
  const rfbPixelFormat& f = client->format;
  return client->preferredEncoding == rfbEncodingTight &&
         client->turboQualityLevel >= 1 && client->turboQualityLevel <= 100 &&
         client->turboSubsampLevel >= 0 && client->turboSubsampLevel <= 3 &&
         f.trueColour && f.bitsPerPixel == 32 && f.depth == 24 &&
         f.redMax == 255 && f.greenMax == 255 && f.blueMax == 255;
}

// Takes a client's request out while an update sends nothing from the copy
// (libvncserver would send its own snapshot of the region); AfterUpdate puts
// it back. Under updateMutex.
void ParkRequest(ClientState* state, rfbClientPtr client) {
  if (state->parked != nullptr) return;
  state->parked = sraRgnCreateRgn(client->requestedRegion);
  sraRgnMakeEmpty(client->requestedRegion);
}

// Puts back a request ParkRequest took out. Under updateMutex.
void RestoreRequest(ClientState* state, rfbClientPtr client) {
  if (state->parked == nullptr) return;
  sraRgnOr(client->requestedRegion, state->parked);
  sraRgnDestroy(state->parked);
  state->parked = nullptr;
}

// `frame` becomes `update`'s frame if that is newer, or of another daemon
// (it restarted). Unnumbered updates change nothing.
void Advance(FrameId* frame, const ForwardedUpdate& update) {
  if (update.instance == 0) return;
  if (frame->instance != update.instance) {
    *frame = {update.instance, update.sequence};
  } else {
    frame->sequence = std::max(frame->sequence, update.sequence);
  }
}

// A client is given `update`'s frame. Under its updateMutex.
void NeedFrame(ClientState* state, const ForwardedUpdate& update) {
  Advance(&state->needed, update);
}

// Whether the copy shows frame `frame` or a later one of the same daemon
// (instance 0: no frame asked for). Under copy_mu.
bool ShowsLocked(const VncScreen::Impl* impl, const FrameId& frame)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(impl->copy_mu) {
  return frame.instance == 0 || (impl->copy_frame.instance == frame.instance &&
                                 impl->copy_frame.sequence >= frame.sequence);
}

// Whether the copy may be sent to a client given frame `needed`: it shows
// that frame or a later one of the same daemon.
bool CopyShows(VncScreen::Impl* impl, const FrameId& needed) {
  MutexLock lock(&impl->copy_mu);
  return impl->copy_valid && !impl->copy_stale && ShowsLocked(impl, needed);
}

// Whether clients libvncserver encodes for wait before anything is sent
// them from the copy: its feed paused and no frame came since, or its feed
// lags and a newer frame was forwarded (the copy may be far behind).
bool CopyHeldBack(VncScreen::Impl* impl) {
  MutexLock lock(&impl->copy_mu);
  return impl->copy_stale ||
         (impl->copy_lagging && !ShowsLocked(impl, impl->newest_forwarded));
}

// Asks for the copy to catch up (VncScreenOptions::copy_wanted). No client
// lock may be held: the feed looks at the clients.
void WantCopy(VncScreen::Impl* impl) {
  if (impl->copy_wanted) impl->copy_wanted();
}

// Gives back a client's held regions once the copy shows its frame
// (`copy_shows`: CopyShows of its needed frame). Under the client's
// updateMutex.
void ReleaseHeld(rfbClientPtr client, ClientState* state, bool copy_shows) {
  if (sraRgnEmpty(state->held) || !copy_shows) return;
  sraRgnOr(client->modifiedRegion, state->held);
  sraRgnMakeEmpty(state->held);
  TSIGNAL(client->updateCond);
}

// After the copy changed state: every client's held regions go where the
// copy may be sent to it. Clients libvncserver encodes for take the copy
// as it is (black after a SetMode, as ever); forwarding ones wait for
// their frames.
void ReleaseHeldWhereCopyShows(VncScreen::Impl* impl) {
  ForEachClientLocked(
      impl->screen, [impl](rfbClientPtr client, ClientState* state) {
        ReleaseHeld(client, state,
                    state->served ? CopyShows(impl, state->needed)
                                  : !CopyHeldBack(impl));
      });
}

// Sends a forwarding client what waits for it, as one FramebufferUpdate,
// before libvncserver looks at its regions: the daemon's rects in order,
// and losslessly whatever else it is owed (modified but not forwarded: its
// first screen, a refresh it asked for, updates made for another size).
// Its requested region is then answered, so libvncserver sends no pixels
// (cursor shapes and size changes it still sends itself).
void ForwardToClient(VncScreen::Impl* impl, rfbClientPtr client,
                     ClientState* state) {
  // A new size goes first (libvncserver's NewFBSize/ExtendedDesktopSize).
  if (client->useNewFBSize && client->newFBSizePending) return;
  std::vector<std::shared_ptr<const ForwardedUpdate>> taken;
  std::vector<const ForwardedRect*> plan;
  const auto width = static_cast<uint32_t>(client->screen->width);
  const auto height = static_cast<uint32_t>(client->screen->height);
  sraRegionPtr covered = sraRgnCreate();
  sraRegionPtr lossless = nullptr;
  bool any = false;
  bool waits = false;  // for the copy
  LOCK(client->updateMutex);
  RestoreRequest(state, client);  // should AfterUpdate not have run
  // Whether the copy may be painted now (else what comes from it waits).
  const bool copy_shows = CopyShows(impl, state->needed);
  ReleaseHeld(client, state, copy_shows);
  if (!sraRgnEmpty(client->requestedRegion)) {
    taken.swap(state->queue);
    state->queued_bytes = 0;
    for (const auto& update : taken) {
      if (update->width != width || update->height != height) continue;
      for (const ForwardedRect& rect : update->rects) {
        if (rect.width == 0 || rect.height == 0 ||
            !Inside(rect.x, rect.y, rect.width, rect.height, width, height) ||
            (rect.kind == ForwardedRect::Kind::kLossless && !copy_shows))
          continue;
        if (rect.kind == ForwardedRect::Kind::kJpeg &&
            (rect.width > kMaxTightJpegWidth || rect.jpeg.empty() ||
             rect.jpeg.size() > kMaxTightJpegBytes))
          continue;  // stays modified: goes lossless
        plan.push_back(&rect);
        AddRect(covered, static_cast<int>(rect.x), static_cast<int>(rect.y),
                static_cast<int>(rect.x + rect.width),
                static_cast<int>(rect.y + rect.height));
      }
    }
    sraRgnSubtract(client->modifiedRegion, covered);
    sraRgnSubtract(state->held, covered);
    lossless = sraRgnCreateRgn(client->modifiedRegion);
    sraRgnAnd(lossless, client->requestedRegion);
    sraRgnSubtract(client->modifiedRegion, lossless);
    // Kept out of libvncserver's sight too until the copy catches up.
    if (!sraRgnEmpty(lossless) && !copy_shows) {
      sraRgnOr(state->held, lossless);
      sraRgnMakeEmpty(lossless);
    }
    any = !plan.empty() || !sraRgnEmpty(lossless);
    waits = !copy_shows && !sraRgnEmpty(state->held);
    if (any) {
      sraRgnMakeEmpty(client->requestedRegion);
      sraRgnMakeEmpty(client->copyRegion);
    } else {
      ParkRequest(state, client);
    }
  }
  UNLOCK(client->updateMutex);
  sraRgnDestroy(covered);
  if (waits) WantCopy(impl);
  if (any) {
    ForwardWriteCounts counts;
    // A failed write has closed the client already; anything else left a
    // message half written.
    if (!WriteForwardedUpdate(client, plan, lossless, &counts))
      rfbCloseClient(client);
    VncScreenStats& stats = impl->stats;
    stats.forwarded_jpeg_rects.fetch_add(counts.jpeg_rects,
                                         std::memory_order_relaxed);
    stats.forwarded_fill_rects.fetch_add(counts.fill_rects,
                                         std::memory_order_relaxed);
    stats.forwarded_bytes.fetch_add(counts.forwarded_bytes,
                                    std::memory_order_relaxed);
    stats.lossless_rects.fetch_add(counts.lossless_rects,
                                   std::memory_order_relaxed);
  }
  if (lossless != nullptr) sraRgnDestroy(lossless);
}

// Whether libvncserver sends an update in this round even with no request
// left (rfbSendFramebufferUpdate after displayHook): a new size, a cursor
// shape, a soft cursor that moved, its SupportedMessages/Encodings or
// ServerIdentity rects. On the output thread, sendMutex held.
bool LibVncServerSendsAnyway(rfbClientPtr client) {
  return (client->useNewFBSize && client->newFBSizePending) ||
         (client->enableCursorShapeUpdates && client->cursorWasChanged &&
          client->readyForSetColourMapEntries) ||
         (!client->enableCursorShapeUpdates &&
          (client->cursorX != client->screen->cursorX ||
           client->cursorY != client->screen->cursorY)) ||
         client->enableSupportedMessages || client->enableSupportedEncodings ||
         client->enableServerIdentity;
}

// PointerPos with the guest's pointer, as its own FramebufferUpdate (the
// position libvncserver would send is the off-screen one of its cursor
// drawing); true when it went. On the output thread, sendMutex held.
bool SendPointerPosition(VncScreen::Impl* impl, rfbClientPtr client,
                         ClientState* state) {
  const uint64_t pointer = impl->pointer.load(std::memory_order_relaxed);
  if (pointer == kNoPointer || pointer == state->pointer_sent) return false;
  const auto x = static_cast<uint32_t>(std::min<uint64_t>(
      pointer >> 32, static_cast<uint64_t>(client->screen->width - 1)));
  const auto y = static_cast<uint32_t>(std::min<uint64_t>(
      pointer & 0xFFFFFFFF, static_cast<uint64_t>(client->screen->height - 1)));
  std::string message = {static_cast<char>(rfbFramebufferUpdate), 0, 0, 1};
  message += {static_cast<char>(x >> 8),
              static_cast<char>(x),
              static_cast<char>(y >> 8),
              static_cast<char>(y),
              0,
              0,
              0,
              0};
  AppendBigEndian32(&message, static_cast<uint32_t>(rfbEncodingPointerPos));
  if (rfbWriteExact(client, message.data(), static_cast<int>(message.size())) <=
      0)
    return false;
  state->pointer_sent = pointer;
  rfbStatRecordEncodingSent(client, rfbEncodingPointerPos,
                            sz_rfbFramebufferUpdateRectHeader,
                            sz_rfbFramebufferUpdateRectHeader);
  return true;
}

// A new pointer position takes a round of its own: its FramebufferUpdate
// answers the client's request, which is emptied, so libvncserver sends
// nothing after it and what else is owed goes on the client's next request
// (every viewer asks again after each update). Never two updates in one
// round: libvncclient up to 0.9.14 reads what has arrived into its buffer,
// handles one message and then waits on the socket (WaitForMessage), so an
// update read along with the PointerPos one waited there until more data
// came. Every other round at most (a moving pointer does not starve the
// pixels), and not when libvncserver sends one anyway. On the output
// thread, sendMutex held: a request the client makes meanwhile waits for
// the round's end (AfterUpdateInProgress), so only requests this update
// answers are emptied.
bool PointerRound(VncScreen::Impl* impl, rfbClientPtr client,
                  ClientState* state) {
  if (std::exchange(state->pointer_update_last, false) ||
      !state->wants_pointer || LibVncServerSendsAnyway(client))
    return false;
  LOCK(client->updateMutex);
  RestoreRequest(state, client);  // should AfterUpdate not have run
  const bool requested = !sraRgnEmpty(client->requestedRegion);
  UNLOCK(client->updateMutex);
  if (!requested || !SendPointerPosition(impl, client, state)) return false;
  LOCK(client->updateMutex);
  sraRgnMakeEmpty(client->requestedRegion);
  UNLOCK(client->updateMutex);
  state->pointer_update_last = true;
  return true;
}

// libvncserver's displayHook: on the client's output thread, sendMutex
// held, before it builds an update from the client's regions. No LastRect:
// vncsnapshot 1.2a asks for it and then waits forever after the marker;
// libvncserver counts its rects up front instead.
void BeforeUpdate(rfbClientPtr client) {
  client->enableLastRectEncoding = FALSE;
  auto* state = static_cast<ClientState*>(client->clientData);
  if (state == nullptr) {
    client->cursorWasMoved = FALSE;
    return;
  }
  state->CopyTraffic(client);
  VncScreen::Impl* impl = ImplOf(client);
  // PointerPos is ours: libvncserver's own would carry its cursor drawing's
  // off-screen position. A new SetEncodings says again whether it is asked.
  const int encodings = rfbStatGetMessageCountRcvd(client, rfbSetEncodings);
  if (encodings != state->encodings_seen) {
    state->encodings_seen = encodings;
    state->wants_pointer = false;
  }
  if (client->enableCursorPosUpdates) {
    state->wants_pointer = true;
    client->enableCursorPosUpdates = FALSE;
  }
  client->cursorWasMoved = FALSE;
  // The rest waits for the next round (libvncserver finds no request).
  if (PointerRound(impl, client, state)) return;
  // While libvncserver takes a SetEncodings, preferredEncoding is -1 for a
  // moment: the client keeps what it had.
  if (client->preferredEncoding != -1) {
    const bool wants = impl->profiles_changed && CanForward(client);
    const ForwardProfile profile = {
        .quality = static_cast<uint32_t>(client->turboQualityLevel),
        .subsampling = static_cast<uint32_t>(client->turboSubsampLevel)};
    // `wants` and `profile` change only here (this thread).
    if (wants != state->wants || (wants && profile != state->profile)) {
      const ForwardProfile before = state->profile;
      const bool accepted = CountForwarding(
          impl, state->wants ? &before : nullptr, wants ? &profile : nullptr);
      LOCK(client->updateMutex);
      // Served by another profile's stream until now: what it shows came
      // from that stream (its queue, its lossy regions): repainted.
      if (state->served && profile != before) SetServed(client, state, false);
      state->wants = accepted;
      state->profile = profile;
      UNLOCK(client->updateMutex);
    }
  }
  bool served = false;
  {
    // Under forward_mu, so SetForwardLive sees every client either before
    // or after this.
    MutexLock lock(&impl->forward_mu);
    const bool live = state->wants && impl->live.count(state->profile) != 0;
    LOCK(client->updateMutex);
    SetServed(client, state, live);
    served = state->served;
    UNLOCK(client->updateMutex);
  }
  if (served) {
    ForwardToClient(impl, client, state);
    return;
  }
  // libvncserver encodes this update from the copy. A copy that does not
  // follow the guest now (CopyHeldBack) sends nothing: what is owed waits,
  // and the request is put back after this update (libvncserver intersects
  // it with a snapshot of the modified region taken before this hook).
  // Under updateMutex: SetCopyFrame, SetCopyCurrent and SetCopyLagging
  // release held regions under it, after the copy is no longer held back.
  LOCK(client->updateMutex);
  if (CopyHeldBack(impl)) {
    sraRgnOr(state->held, client->modifiedRegion);
    sraRgnMakeEmpty(client->modifiedRegion);
    sraRgnOr(state->held, client->copyRegion);
    sraRgnMakeEmpty(client->copyRegion);
    ParkRequest(state, client);
    UNLOCK(client->updateMutex);
    WantCopy(impl);
    return;
  }
  UNLOCK(client->updateMutex);
  // With JPEG where its Tight chooses to (what is sent is remembered for
  // the refresh), or losslessly when the refresh asked for it.
  if (client->preferredEncoding != rfbEncodingTight ||
      client->turboQualityLevel == -1) {
    return;
  }
  LOCK(client->updateMutex);
  const bool refresh = state->refresh_asked;
  state->refresh_asked = false;
  if (!refresh) {
    sraRegionPtr sending = sraRgnCreateRgn(client->modifiedRegion);
    sraRgnAnd(sending, client->requestedRegion);
    sraRgnOr(state->sent_now, sending);
    sraRgnDestroy(sending);
  }
  UNLOCK(client->updateMutex);
  if (refresh) {
    impl->stats.lossless_refreshes.fetch_add(1, std::memory_order_relaxed);
    state->refreshing = true;
    state->saved_quality = client->turboQualityLevel;
    state->saved_encodings =
        rfbStatGetMessageCountRcvd(client, rfbSetEncodings);
    client->turboQualityLevel = -1;
  }
}

// One modified pixel: wakes a client's output thread for a PointerPos.
void MarkPixel(rfbClientPtr client) {
  AddRect(client->modifiedRegion, 0, 0, 1, 1);
}

// libvncserver's displayFinishedHook (output thread). A position that came
// while this update was made, after BeforeUpdate read it, or that waited
// for libvncserver's round (PointerRound), goes in a later one: its
// wake-up pixel went out with this one.
void AfterUpdate(rfbClientPtr client, int) {
  auto* state = static_cast<ClientState*>(client->clientData);
  if (state == nullptr) return;
  LOCK(client->updateMutex);
  RestoreRequest(state, client);
  UNLOCK(client->updateMutex);
  if (state->refreshing) {
    state->refreshing = false;
    // Unless a SetEncodings came meanwhile: its level stands. The input
    // thread counts one before it resets the level and sets the new one,
    // so a level other than ours also means one came.
    if (rfbStatGetMessageCountRcvd(client, rfbSetEncodings) ==
            state->saved_encodings &&
        client->turboQualityLevel == -1)
      client->turboQualityLevel = state->saved_quality;
  }
  if (!state->wants_pointer) return;
  const uint64_t pointer = ImplOf(client)->pointer.load();
  if (pointer == kNoPointer || pointer == state->pointer_sent) return;
  LOCK(client->updateMutex);
  MarkPixel(client);
  UNLOCK(client->updateMutex);
}

// Marks a region modified for every client libvncserver encodes for (the
// forwarding ones get the daemon's encoding of the same change instead).
void MarkForEncoding(rfbScreenInfoPtr screen, int x1, int y1, int x2, int y2) {
  sraRegionPtr region = sraRgnCreateRect(x1, y1, x2, y2);
  rfbClientIteratorPtr clients = rfbGetClientIterator(screen);
  while (rfbClientPtr client = rfbClientIteratorNext(clients)) {
    const auto* state = static_cast<const ClientState*>(client->clientData);
    LOCK(client->updateMutex);
    if (state == nullptr || !state->served) {
      sraRgnOr(client->modifiedRegion, region);
      TSIGNAL(client->updateCond);
    }
    UNLOCK(client->updateMutex);
  }
  rfbReleaseClientIterator(clients);
  sraRgnDestroy(region);
}

// --- The QEMU extensions (libvncserver 0.9.14 has their client side only).

// Writes a whole server message, as libvncserver's own senders do.
bool WriteToClient(rfbClientPtr client, const std::string& bytes) {
  LOCK(client->sendMutex);
  const bool ok =
      rfbWriteExact(client, bytes.data(), static_cast<int>(bytes.size())) > 0;
  UNLOCK(client->sendMutex);
  return ok;
}

// Active for every client. No per-client data here: libvncserver calls an
// extension's close on every rfbCloseClient (possibly several times, so
// ClientClosing is idempotent) and frees data with free(); ClientState
// lives in clientData instead.
rfbBool ExtensionNewClient(rfbClientPtr, void** data) {
  *data = nullptr;
  return TRUE;
}

rfbBool EnablePseudoEncoding(rfbClientPtr client, void**, int encoding) {
  auto* state = static_cast<ClientState*>(client->clientData);
  switch (encoding) {
    case kQemuExtendedKeyEncoding:
      // The client sends QEMU key events only after this acknowledgement.
      WriteToClient(client, QemuExtendedKeyAck());
      return TRUE;
    case kQemuLedStateEncoding:
      if (state != nullptr) state->led_state = true;
      WriteToClient(client, QemuLedStateUpdate(ImplOf(client)->leds.load()));
      return TRUE;
    default:
      return FALSE;
  }
}

rfbBool HandleMessage(rfbClientPtr client, void*,
                      const rfbClientToServerMsg* message) {
  if (message->type != kQemuClientMessage) return FALSE;
  uint8_t bytes[kQemuKeyEventBytes];
  if (rfbReadExact(client, reinterpret_cast<char*>(bytes), sizeof(bytes)) <=
      0) {
    rfbCloseClient(client);
    return TRUE;
  }
  absl::StatusOr<QemuKeyEvent> key = ParseQemuKeyEvent(bytes);
  if (!key.ok()) {
    // Its length is unknown, so the stream cannot go on.
    VGPU_LOG(WARNING) << "VNC: dropped client " << client->host << ": "
                      << key.status().message();
    rfbCloseClient(client);
    return TRUE;
  }
  VncScreen::Impl* impl = ImplOf(client);
  if (client->viewOnly) return TRUE;
  impl->stats.key_events.fetch_add(1, std::memory_order_relaxed);
  auto* state = static_cast<ClientState*>(client->clientData);
  if (impl->input != nullptr) {
    impl->input->OnExtendedKey(key->down, key->keysym, key->keycode,
                               state != nullptr && state->led_state);
  }
  return TRUE;
}

// libvncserver wants it writable.
int qemu_pseudo_encodings[] = {kQemuExtendedKeyEncoding, kQemuLedStateEncoding,
                               0};

rfbProtocolExtension qemu_extension = {
    .newClient = ExtensionNewClient,
    .init = nullptr,
    .pseudoEncodings = qemu_pseudo_encodings,
    .enablePseudoEncoding = EnablePseudoEncoding,
    .handleMessage = HandleMessage,
    .close = ClientClosing,
    .usage = nullptr,
    .processArgument = nullptr,
    .next = nullptr,
};

void RegisterExtensions() {
  static std::once_flag once;
  std::call_once(once, [] { rfbRegisterProtocolExtension(&qemu_extension); });
}

int SetDesktopSize(int width, int height, int screens, rfbExtDesktopScreen*,
                   rfbClientPtr client) {
  VncScreen::Impl* impl = ImplOf(client);
  impl->stats.resize_requests.fetch_add(1, std::memory_order_relaxed);
  const int check = CheckSetDesktopSize(
      static_cast<uint32_t>(width), static_cast<uint32_t>(height),
      static_cast<uint32_t>(screens), client->viewOnly != 0);
  if (check != 0) return check;
  if (!impl->resize || !impl->resize(static_cast<uint32_t>(width),
                                     static_cast<uint32_t>(height))) {
    return rfbExtDesktopSize_ResizeProhibited;
  }
  impl->stats.resizes_granted.fetch_add(1, std::memory_order_relaxed);
  return rfbExtDesktopSize_Success;
}

}  // namespace

VncScreen::VncScreen(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

VncScreen::~VncScreen() {
  rfbScreenInfoPtr screen = impl_->screen;
  if (screen == nullptr) return;
  // Not rfbShutdownServer(screen, TRUE): in 0.9.14 it uses a client after
  // dropping its reference (a client leaving meanwhile is freed under it)
  // and joins client threads that may be gone. Instead: the listener stops,
  // every connection is shut down, the clients' own threads end them, and
  // those threads are joined before the screen is freed (they touch it to
  // the end).
  rfbShutdownServer(screen, FALSE);
  rfbClientIteratorPtr clients = rfbGetClientIterator(screen);
  while (rfbClientPtr client = rfbClientIteratorNext(clients)) {
    // The iterator's reference keeps `client` alive meanwhile.
    if (client->sock != RFB_INVALID_SOCKET) shutdown(client->sock, SHUT_RDWR);
  }
  rfbReleaseClientIterator(clients);
  bool gone = false;
  {
    MutexLock lock(&impl_->gone_mu);
    gone = impl_->gone_mu.AwaitUntil(
        [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return impl_->stats.clients.load() == 0;
        },
        std::chrono::steady_clock::now() + std::chrono::seconds(10));
  }
  if (!gone) {
    // Freeing the screen (or what its screenData points to) under a client
    // thread would crash it: leak both.
    VGPU_LOG(ERROR) << "VNC: clients did not end in 10 s; screen left";
    static_cast<void>(impl_.release());
    return;
  }
  {
    MutexLock lock(&impl_->closing_mu);
    impl_->stop_waker = true;
    impl_->closing_mu.NotifyAll();
  }
  if (impl_->waker.joinable()) impl_->waker.join();
  if (impl_->refresher.joinable()) impl_->refresher.join();
  JoinFinished(impl_.get());
  rfbScreenCleanup(screen);
}

absl::StatusOr<std::unique_ptr<VncScreen>> VncScreen::Create(
    const VncScreenOptions& options, uint32_t width, uint32_t height) {
  if (absl::Status size = CheckSize(width, height); !size.ok()) return size;
  in_addr ipv4{};
  in6_addr ipv6{};
  const bool is_ipv4 = inet_pton(AF_INET, options.host.c_str(), &ipv4) == 1;
  if (!is_ipv4 && inet_pton(AF_INET6, options.host.c_str(), &ipv6) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "VNC listen host '", options.host, "' is not an IPv4 or IPv6 address"));
  }
  RouteVncLogs();
  RegisterExtensions();
  auto impl = std::make_unique<Impl>();
  impl->name = options.name;
  impl->host6 = is_ipv4 ? "" : options.host;
  impl->max_clients = options.max_clients;
  impl->input = options.input;
  impl->resize = options.resize;
  impl->profiles_changed = options.profiles_changed;
  impl->clients_changed = options.clients_changed;
  impl->copy_wanted = options.copy_wanted;
  impl->pixels.assign(size_t{width} * height * 4, 0);
  impl->mode_width = width;
  impl->mode_height = height;
  for (const std::string& p : options.passwords) impl->passwords.push_back(p);
  for (const std::string& p : options.view_only_passwords)
    impl->passwords.push_back(p);
  for (std::string& p : impl->passwords)
    impl->password_list.push_back(p.data());
  impl->password_list.push_back(nullptr);

  rfbScreenInfoPtr screen =
      rfbGetScreen(nullptr, nullptr, static_cast<int>(width),
                   static_cast<int>(height), 8, 3, 4);
  if (screen == nullptr) return absl::ResourceExhaustedError("rfbGetScreen");
  impl->screen = screen;
  UseBgrx(screen);
  screen->screenData = impl.get();
  screen->frameBuffer = reinterpret_cast<char*>(impl->pixels.data());
  screen->desktopName = impl->name.c_str();
  screen->alwaysShared = TRUE;
  // libvncserver waits this long (ms) after a change before it sends, to
  // gather more; the daemon's updates come gathered already, and its
  // default 5 ms was most of the bridge's latency for a typed character.
  // Not 0: a client still in its handshake has its output thread poll at
  // this interval.
  screen->deferUpdateTime = 1;
  screen->httpDir = nullptr;
  screen->cursorX = screen->cursorY = kOffScreen;
  screen->newClientHook = NewClient;
  screen->kbdAddEvent = KeyEvent;
  screen->ptrAddEvent = PointerEvent;
  screen->displayHook = BeforeUpdate;
  screen->displayFinishedHook = AfterUpdate;
  screen->setDesktopSizeHook = SetDesktopSize;
  if (!impl->passwords.empty()) {
    screen->authPasswdData = impl->password_list.data();
    screen->passwordCheck = rfbCheckPasswordByList;
    screen->authPasswdFirstViewOnly =
        static_cast<int>(options.passwords.size());
  }
  // One listener, on the address asked for; port 0 probes from 5900.
  screen->autoPort = options.port == 0 ? TRUE : FALSE;
  if (is_ipv4) {
    screen->listenInterface = ipv4.s_addr;
    screen->port = options.port == 0 ? 5900 : options.port;
    screen->ipv6port = 0;
  } else {
    screen->listen6Interface = impl->host6.data();
    screen->port = 0;
    screen->ipv6port = options.port == 0 ? 5900 : options.port;
  }
  rfbInitServer(screen);
  if (screen->listenSock == RFB_INVALID_SOCKET &&
      screen->listen6Sock == RFB_INVALID_SOCKET) {
    rfbScreenCleanup(screen);
    impl->screen = nullptr;
    return absl::UnavailableError(
        options.port == 0
            ? absl::StrCat("no free VNC port from 5900 on ", options.host)
            : absl::StrCat("cannot listen for VNC on ", options.host, " port ",
                           options.port, " (in use?)"));
  }
  if (!is_ipv4) screen->port = screen->ipv6port;
  auto vnc_screen = std::unique_ptr<VncScreen>(new VncScreen(std::move(impl)));
  // No pointer image until the guest defines one (libvncserver's default
  // is an arrow).
  if (absl::Status cursor = vnc_screen->SetCursor(0, 0, 0, 0, "");
      !cursor.ok()) {
    return cursor;
  }
  vnc_screen->impl_->waker = std::thread(WakeClosing, vnc_screen->impl_.get());
  vnc_screen->impl_->refresher =
      std::thread(RefreshSettled, vnc_screen->impl_.get());
  // Threaded: a listener thread, and two threads per client.
  rfbRunEventLoop(screen, -1, TRUE);
  return vnc_screen;
}

uint16_t VncScreen::port() const {
  return static_cast<uint16_t>(impl_->screen->port);
}
uint32_t VncScreen::width() const {
  return static_cast<uint32_t>(impl_->screen->width);
}
uint32_t VncScreen::height() const {
  return static_cast<uint32_t>(impl_->screen->height);
}
const VncScreenStats& VncScreen::stats() const { return impl_->stats; }

VncTraffic VncScreen::Traffic() const {
  MutexLock lock(&impl_->traffic_mu);
  std::map<uint32_t, VncTraffic::Encoding> totals = impl_->retired;
  uint64_t updates = impl_->retired_updates;
  rfbClientIteratorPtr clients = rfbGetClientIterator(impl_->screen);
  while (rfbClientPtr client = rfbClientIteratorNext(clients)) {
    const auto* state = static_cast<const ClientState*>(client->clientData);
    if (state == nullptr) continue;
    MutexLock state_lock(&state->mu);
    for (const auto& [type, total] : state->totals) {
      totals[type].rects += total.rects;
      totals[type].bytes += total.bytes;
    }
    updates += state->updates;
  }
  rfbReleaseClientIterator(clients);
  VncTraffic& reported = impl_->reported;
  reported.updates = std::max(reported.updates, updates);
  for (const auto& [type, total] : totals) {
    char name[64];
    VncTraffic::Encoding& out =
        reported.by_encoding[encodingName(type, name, sizeof(name))];
    out.rects = std::max(out.rects, total.rects);
    out.bytes = std::max(out.bytes, total.bytes);
  }
  return reported;
}

absl::Status VncScreen::SetMode(uint32_t width, uint32_t height) {
  if (absl::Status size = CheckSize(width, height); !size.ok()) return size;
  if (width == this->width() && height == this->height())
    return absl::OkStatus();
  std::vector<uint8_t> pixels(size_t{width} * height * 4, 0);
  {
    // Before any client can be sent the black new screen.
    MutexLock lock(&impl_->copy_mu);
    impl_->copy_valid = false;
  }
  rfbNewFramebuffer(impl_->screen, reinterpret_cast<char*>(pixels.data()),
                    static_cast<int>(width), static_cast<int>(height), 8, 3, 4);
  UseBgrx(impl_->screen);
  // rfbNewFramebuffer clamps the cursor into the new screen.
  impl_->screen->cursorX = impl_->screen->cursorY = kOffScreen;
  impl_->pixels.swap(pixels);  // the old buffer goes only now
  impl_->mode_width = width;
  impl_->mode_height = height;
  // Every client repaints whole (rfbNewFramebuffer); what was held before
  // may lie outside the new size.
  ForEachClientLocked(impl_->screen, [](rfbClientPtr client,
                                        ClientState* state) {
    AndRect(state->held, 0, 0, client->screen->width, client->screen->height);
  });
  return absl::OkStatus();
}

void VncScreen::SetCopyFrame(uint64_t instance, uint64_t sequence) {
  {
    MutexLock lock(&impl_->copy_mu);
    impl_->copy_valid = true;
    impl_->copy_stale = false;
    impl_->copy_frame = {instance, sequence};
  }
  ReleaseHeldWhereCopyShows(impl_.get());
}

void VncScreen::SetCopyCurrent(bool current) {
  {
    MutexLock lock(&impl_->copy_mu);
    impl_->copy_stale = !current;
  }
  if (current) ReleaseHeldWhereCopyShows(impl_.get());
}

bool VncScreen::CopyWanted() const {
  if (impl_->stats.clients.load() == 0) return true;
  bool wanted = false;
  ForEachClientLocked(impl_->screen,
                      [&wanted](rfbClientPtr, ClientState* state) {
                        wanted |= !state->served || !sraRgnEmpty(state->held);
                      });
  return wanted;
}

void VncScreen::SetCopyLagging(bool lagging) {
  {
    MutexLock lock(&impl_->copy_mu);
    if (impl_->copy_lagging == lagging) return;
    impl_->copy_lagging = lagging;
  }
  if (!lagging) ReleaseHeldWhereCopyShows(impl_.get());
}

absl::Status VncScreen::Update(uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                               const uint8_t* pixels, size_t stride) {
  if (!Inside(x, y, w, h, width(), height()))
    return absl::InvalidArgumentError("update outside the screen");
  if (w == 0 || h == 0) return absl::OkStatus();
  const size_t row_bytes = size_t{width()} * 4;
  for (uint32_t row = 0; row < h; ++row) {
    std::memcpy(&impl_->pixels[(size_t{y} + row) * row_bytes + size_t{x} * 4],
                pixels + row * stride, size_t{w} * 4);
  }
  MarkForEncoding(impl_->screen, static_cast<int>(x), static_cast<int>(y),
                  static_cast<int>(x + w), static_cast<int>(y + h));
  return absl::OkStatus();
}

absl::Status VncScreen::Copy(uint32_t x, uint32_t y, uint32_t w, uint32_t h,
                             uint32_t src_x, uint32_t src_y) {
  if (!Inside(x, y, w, h, width(), height()) ||
      !Inside(src_x, src_y, w, h, width(), height()))
    return absl::InvalidArgumentError("copy outside the screen");
  if (w == 0 || h == 0) return absl::OkStatus();
  // The copy's pixels, rows in the order that reads each before it is
  // overwritten (memmove handles a row's own overlap).
  const size_t row_bytes = size_t{width()} * 4;
  uint8_t* base = impl_->pixels.data();
  for (uint32_t i = 0; i < h; ++i) {
    const uint32_t row = src_y < y ? h - 1 - i : i;
    std::memmove(base + (size_t{y} + row) * row_bytes + size_t{x} * 4,
                 base + (size_t{src_y} + row) * row_bytes + size_t{src_x} * 4,
                 size_t{w} * 4);
  }
  // Clients libvncserver encodes for get an RFB CopyRect; forwarding ones
  // get the daemon's pixels of the moved region.
  sraRegionPtr region =
      sraRgnCreateRect(static_cast<int>(x), static_cast<int>(y),
                       static_cast<int>(x + w), static_cast<int>(y + h));
  const int dx = static_cast<int>(x) - static_cast<int>(src_x);
  const int dy = static_cast<int>(y) - static_cast<int>(src_y);
  rfbClientIteratorPtr clients = rfbGetClientIterator(impl_->screen);
  while (rfbClientPtr client = rfbClientIteratorNext(clients)) {
    auto* state = static_cast<ClientState*>(client->clientData);
    LOCK(client->updateMutex);
    const bool forwarding = state != nullptr && state->served;
    // What it was sent with JPEG and the copy moves is JPEG where it lands
    // too: refreshed once it settles there.
    if (state != nullptr && !forwarding) {
      sraRegionPtr lossy = sraRgnCreateRgn(state->sent_now);
      sraRgnOr(lossy, state->sent_before);
      sraRgnOffset(lossy, dx, dy);
      sraRgnAnd(lossy, region);
      sraRgnOr(state->sent_now, lossy);
      sraRgnDestroy(lossy);
    }
    UNLOCK(client->updateMutex);
    // A client turning to forwarding meanwhile repaints everything anyway.
    if (!forwarding) ScheduleCopy(client, region, dx, dy);
  }
  rfbReleaseClientIterator(clients);
  sraRgnDestroy(region);
  return absl::OkStatus();
}

void VncScreen::Forward(const ForwardProfile& profile,
                        const std::shared_ptr<const ForwardedUpdate>& update) {
  // What a client may have waiting: a few frames at 1080p. Over it, the
  // queue goes; its regions stay modified and go losslessly instead.
  constexpr size_t kQueueBudget = size_t{8} << 20;
  // Made for another mode than the screen's (the streams change modes at
  // their own moments): the mode change repaints every client anyway.
  {
    MutexLock lock(&impl_->copy_mu);
    Advance(&impl_->newest_forwarded, *update);
  }
  const uint32_t width = impl_->mode_width.load();
  const uint32_t height = impl_->mode_height.load();
  if (update->width != width || update->height != height) {
    // Its frame still counts: the copy must reach it before it is sent.
    ForEachClientLocked(impl_->screen, [&](rfbClientPtr, ClientState* state) {
      if (state->served && state->profile == profile) NeedFrame(state, *update);
    });
    // The mode change reaches the screen through the copy's stream: a
    // lagging copy hears of it only once it takes frames again.
    WantCopy(impl_.get());
    return;
  }
  // Its bytes, and its rects clipped to the screen (ForwardToClient checks
  // them again), once for every client.
  size_t bytes = 0;
  sraRegionPtr marks = sraRgnCreate();
  for (const ForwardedRect& rect : update->rects) {
    bytes += 64 + rect.jpeg.size();
    const auto x2 = static_cast<int>(
        std::min<uint64_t>(uint64_t{rect.x} + rect.width, width));
    const auto y2 = static_cast<int>(
        std::min<uint64_t>(uint64_t{rect.y} + rect.height, height));
    const auto x1 = static_cast<int>(std::min(rect.x, width));
    const auto y1 = static_cast<int>(std::min(rect.y, height));
    if (x1 < x2 && y1 < y2) AddRect(marks, x1, y1, x2, y2);
  }
  ForEachClientLocked(impl_->screen, [&](rfbClientPtr client,
                                         ClientState* state) {
    if (!state->served || state->profile != profile) return;
    if (!state->queue.empty() && state->queued_bytes + bytes > kQueueBudget) {
      state->queue.clear();
      state->queued_bytes = 0;
      impl_->stats.forward_overflows.fetch_add(1, std::memory_order_relaxed);
    }
    state->queue.push_back(update);
    state->queued_bytes += bytes;
    NeedFrame(state, *update);
    sraRgnOr(client->modifiedRegion, marks);
    TSIGNAL(client->updateCond);
  });
  sraRgnDestroy(marks);
}

absl::Status VncScreen::AddClient(int fd) {
  if (fd < 0) return absl::InvalidArgumentError("no descriptor");
  if (fd >= FD_SETSIZE) {
    close(fd);
    return absl::ResourceExhaustedError(absl::StrCat(
        "descriptor ", fd, " is over libvncserver's limit (", FD_SETSIZE, ")"));
  }
  // As libvncserver's listener does with an accepted socket; on refusal it
  // closes `fd` itself.
  rfbClientPtr client = rfbNewClient(impl_->screen, fd);
  if (client == nullptr) return absl::UnavailableError("VNC client refused");
  if (!client->onHold) rfbStartOnHoldClient(client);
  return absl::OkStatus();
}

void VncScreen::SetForwardLive(const ForwardProfile& profile, bool live) {
  MutexLock lock(&impl_->forward_mu);
  if (live) {
    impl_->live.insert(profile);
  } else {
    impl_->live.erase(profile);
  }
  // Its clients switch now (a still screen would not wake them). A stream
  // that just started sends the whole screen first: no repaint from the
  // copy then (it would go twice, the second time as JPEG).
  ForEachClientLocked(impl_->screen,
                      [&](rfbClientPtr client, ClientState* state) {
                        if (state->wants && state->profile == profile)
                          SetServed(client, state, live, /*repaint=*/!live);
                      });
}

void VncScreen::SetPointerPosition(uint32_t x, uint32_t y) {
  const uint64_t pointer = uint64_t{x} << 32 | y;
  if (impl_->pointer.exchange(pointer) == pointer) return;
  // Wakes the output threads of clients that asked for PointerPos with one
  // modified pixel (libvncserver's own wake-up, cursorWasMoved, is theirs).
  ForEachClientLocked(impl_->screen,
                      [](rfbClientPtr client, ClientState* state) {
                        if (!state->wants_pointer) return;
                        MarkPixel(client);
                        TSIGNAL(client->updateCond);
                      });
}

void VncScreen::SetLedState(uint8_t leds) {
  leds &= 0x07;
  if (impl_->leds.exchange(leds) == leds) return;
  rfbClientIteratorPtr clients = rfbGetClientIterator(impl_->screen);
  while (rfbClientPtr client = rfbClientIteratorNext(clients)) {
    auto* state = static_cast<ClientState*>(client->clientData);
    if (state != nullptr && state->led_state)
      WriteToClient(client, QemuLedStateUpdate(leds));
  }
  rfbReleaseClientIterator(clients);
}

absl::Status VncScreen::SetCursor(uint32_t width, uint32_t height,
                                  uint32_t hot_x, uint32_t hot_y,
                                  const std::string& bgra) {
  if (bgra.empty()) {
    width = height = 1;
    hot_x = hot_y = 0;
  } else if (width == 0 || height == 0 || width > kMaxCursorSide ||
             height > kMaxCursorSide ||
             bgra.size() != size_t{width} * height * 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a ", width, "x", height, " cursor of ", bgra.size(), " bytes"));
  }
  // rfbFreeCursor frees what the cleanup flags say, with free().
  auto* cursor = static_cast<rfbCursor*>(calloc(1, sizeof(rfbCursor)));
  const size_t mask_row = (width + 7) / 8;
  auto* source = static_cast<unsigned char*>(calloc(mask_row * height, 1));
  auto* mask = static_cast<unsigned char*>(calloc(mask_row * height, 1));
  auto* rich = static_cast<unsigned char*>(calloc(size_t{width} * height, 4));
  if (cursor == nullptr || source == nullptr || mask == nullptr ||
      rich == nullptr) {
    free(cursor);
    free(source);
    free(mask);
    free(rich);
    return absl::ResourceExhaustedError("cursor");
  }
  for (uint32_t y = 0; y < height && !bgra.empty(); ++y) {
    for (uint32_t x = 0; x < width; ++x) {
      const size_t i = (size_t{y} * width + x) * 4;
      // Server format B,G,R,X is the same byte order.
      std::memcpy(&rich[i], &bgra[i], 3);
      if (static_cast<uint8_t>(bgra[i + 3]) >= 128) {
        mask[y * mask_row + x / 8] |=
            static_cast<unsigned char>(0x80 >> (x % 8));
        source[y * mask_row + x / 8] |=
            static_cast<unsigned char>(0x80 >> (x % 8));
      }
    }
  }
  cursor->cleanup = cursor->cleanupSource = cursor->cleanupMask =
      cursor->cleanupRichSource = TRUE;
  cursor->source = source;
  cursor->mask = mask;
  cursor->richSource = rich;
  cursor->width = static_cast<unsigned short>(width);
  cursor->height = static_cast<unsigned short>(height);
  cursor->xhot = static_cast<unsigned short>(hot_x < width ? hot_x : 0);
  cursor->yhot = static_cast<unsigned short>(hot_y < height ? hot_y : 0);
  cursor->foreRed = cursor->foreGreen = cursor->foreBlue = 0xFFFF;
  rfbSetCursor(impl_->screen, cursor);  // frees the previous one
  return absl::OkStatus();
}

}  // namespace vgpu::vnc
