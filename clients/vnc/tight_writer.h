// libvncserver-level writers the screen uses for forwarding clients and for
// copies, on libvncserver 0.9.14's exported Tight writers and region calls
// (public but internal: re-check on another libvncserver version).
#pragma once

#include <cstdint>
#include <vector>

#include <rfb/rfb.h>
// Its region calls are C, without the extern "C" its other headers have.
extern "C" {
#include <rfb/rfbregion.h>
}

#include "clients/vnc/vnc_screen.h"

namespace vgpu::vnc {

// Tight's limits a forwarded JPEG rect must keep (rfbproto: the compact
// length holds 22 bits; TigerVNC's TightDecoder refuses wider rects).
inline constexpr uint32_t kMaxTightJpegWidth = 2048;
inline constexpr size_t kMaxTightJpegBytes = 4194303;

struct ForwardWriteCounts {
  uint64_t jpeg_rects = 0;
  uint64_t fill_rects = 0;
  uint64_t forwarded_bytes = 0;  // JPEG data and fill colours
  uint64_t lossless_rects = 0;
};

// Writes one FramebufferUpdate to `client`: `plan` in order (JPEG as Tight
// JPEG, fills as Tight fill, kLossless rects and every rect of `lossless`
// as lossless Tight from the screen's framebuffer). Rects must lie inside
// the screen and JPEG ones within the limits above; the client's format
// must be 32 bpp, depth 24, 8 bits per channel (Tight's 3-byte TPIXEL) and
// LastRect off. On the client's output thread with its sendMutex held
// (libvncserver's displayHook). False when the write failed (libvncserver
// then closes the client).
bool WriteForwardedUpdate(rfbClientPtr client,
                          const std::vector<const ForwardedRect*>& plan,
                          sraRegionPtr lossless, ForwardWriteCounts* counts);

// Adds the rect from (x1, y1) to (x2, y2), exclusive, to `region`.
void AddRect(sraRegionPtr region, int x1, int y1, int x2, int y2);

// Schedules an RFB CopyRect for one client, as libvncserver's
// rfbScheduleCopyRegion does for all: `region` (destination) takes what lies
// at (-dx, -dy) from it. A pending copy with another offset, and modified
// parts that the copy moves, become modified. Takes the client's
// updateMutex. The screen draws no cursor into the picture, so there is no
// cursor to keep out of the copy.
void ScheduleCopy(rfbClientPtr client, sraRegionPtr region, int dx, int dy);

}  // namespace vgpu::vnc
