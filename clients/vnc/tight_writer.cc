#include "clients/vnc/tight_writer.h"

#include <cstring>

namespace vgpu::vnc {
namespace {

// Room for `bytes` more in the client's update buffer, flushing it first if
// needed.
bool Reserve(rfbClientPtr client, int bytes) {
  if (client->ublen + bytes <= UPDATE_BUF_SIZE) return true;
  return rfbSendUpdateBuf(client) != 0;
}

// Lossless Tight (palette, gradient or zlib): JPEG off for these rects,
// and no LastRect (the update's rect count is written first).
bool SendLossless(rfbClientPtr client, int x, int y, int w, int h) {
  const int quality = client->turboQualityLevel;
  const int encodings = rfbStatGetMessageCountRcvd(client, rfbSetEncodings);
  client->turboQualityLevel = -1;
  client->enableLastRectEncoding = FALSE;
  const bool ok = rfbSendRectEncodingTight(client, x, y, w, h) != 0;
  // Unless a SetEncodings came meanwhile (it set its own).
  if (rfbStatGetMessageCountRcvd(client, rfbSetEncodings) == encodings)
    client->turboQualityLevel = quality;
  return ok;
}

int LosslessRects(rfbClientPtr client, int x, int y, int w, int h) {
  return rfbNumCodedRectsTight(client, x, y, w, h);
}

}  // namespace

bool WriteForwardedUpdate(rfbClientPtr client,
                          const std::vector<const ForwardedRect*>& plan,
                          sraRegionPtr lossless, ForwardWriteCounts* counts) {
  // The rect count comes first: libvncserver's Tight splits a lossless rect
  // into as many as rfbNumCodedRectsTight says (exact with LastRect off).
  int64_t rects = 0;
  for (const ForwardedRect* rect : plan) {
    rects += rect->kind == ForwardedRect::Kind::kLossless
                 ? LosslessRects(client, static_cast<int>(rect->x),
                                 static_cast<int>(rect->y),
                                 static_cast<int>(rect->width),
                                 static_cast<int>(rect->height))
                 : 1;
  }
  sraRectangleIterator* it = sraRgnGetIterator(lossless);
  sraRect r;
  while (sraRgnIteratorNext(it, &r))
    rects += LosslessRects(client, r.x1, r.y1, r.x2 - r.x1, r.y2 - r.y1);
  sraRgnReleaseIterator(it);
  if (rects == 0) return true;
  if (rects > 0xFFFF) {
    // More than one message holds: everything goes lossless as its
    // bounding box (a rect count of one box is at most a few hundred).
    sraRegionPtr box = sraRgnBBox(lossless);
    for (const ForwardedRect* rect : plan) {
      AddRect(box, static_cast<int>(rect->x), static_cast<int>(rect->y),
              static_cast<int>(rect->x + rect->width),
              static_cast<int>(rect->y + rect->height));
    }
    sraRegionPtr bbox = sraRgnBBox(box);
    sraRgnDestroy(box);
    const bool ok = WriteForwardedUpdate(client, {}, bbox, counts);
    sraRgnDestroy(bbox);
    return ok;
  }

  if (!Reserve(client, sz_rfbFramebufferUpdateMsg)) return false;
  rfbFramebufferUpdateMsg header{};
  header.type = rfbFramebufferUpdate;
  header.nRects = Swap16IfLE(static_cast<uint16_t>(rects));
  std::memcpy(&client->updateBuf[client->ublen], &header,
              sz_rfbFramebufferUpdateMsg);
  client->ublen += sz_rfbFramebufferUpdateMsg;
  rfbStatRecordMessageSent(client, rfbFramebufferUpdate, 0, 0);
  client->tightEncoding = rfbEncodingTight;

  for (const ForwardedRect* rect : plan) {
    const int x = static_cast<int>(rect->x);
    const int y = static_cast<int>(rect->y);
    const int w = static_cast<int>(rect->width);
    const int h = static_cast<int>(rect->height);
    switch (rect->kind) {
      case ForwardedRect::Kind::kJpeg: {
        client->tightEncoding = rfbEncodingTight;
        // The subencoding byte and up to 3 bytes of length, which
        // rfbSendCompressedDataTight writes without looking for room.
        if (!rfbSendTightHeader(client, x, y, w, h) || !Reserve(client, 4))
          return false;
        client->updateBuf[client->ublen++] =
            static_cast<char>(rfbTightJpeg << 4);
        rfbStatRecordEncodingSentAdd(client, rfbEncodingTight, 1);
        // Writes the compact length and the data; it does not change them.
        if (!rfbSendCompressedDataTight(client,
                                        const_cast<char*>(rect->jpeg.data()),
                                        static_cast<int>(rect->jpeg.size())))
          return false;
        ++counts->jpeg_rects;
        counts->forwarded_bytes += rect->jpeg.size();
        break;
      }
      case ForwardedRect::Kind::kFill: {
        client->tightEncoding = rfbEncodingTight;
        if (!rfbSendTightHeader(client, x, y, w, h) || !Reserve(client, 4))
          return false;
        // Tight fill with a 3-byte TPIXEL: red, green, blue.
        char* out = &client->updateBuf[client->ublen];
        out[0] = static_cast<char>(rfbTightFill << 4);
        out[1] = static_cast<char>(rect->bgrx >> 16);
        out[2] = static_cast<char>(rect->bgrx >> 8);
        out[3] = static_cast<char>(rect->bgrx);
        client->ublen += 4;
        rfbStatRecordEncodingSentAdd(client, rfbEncodingTight, 4);
        ++counts->fill_rects;
        counts->forwarded_bytes += 3;
        break;
      }
      case ForwardedRect::Kind::kLossless:
        if (!SendLossless(client, x, y, w, h)) return false;
        ++counts->lossless_rects;
        break;
    }
  }
  it = sraRgnGetIterator(lossless);
  bool ok = true;
  while (ok && sraRgnIteratorNext(it, &r)) {
    ok = SendLossless(client, r.x1, r.y1, r.x2 - r.x1, r.y2 - r.y1);
    ++counts->lossless_rects;
  }
  sraRgnReleaseIterator(it);
  return ok && rfbSendUpdateBuf(client) != 0;
}

void AddRect(sraRegionPtr region, int x1, int y1, int x2, int y2) {
  sraRegionPtr rect = sraRgnCreateRect(x1, y1, x2, y2);
  sraRgnOr(region, rect);
  sraRgnDestroy(rect);
}

void ScheduleCopy(rfbClientPtr client, sraRegionPtr region, int dx, int dy) {
  LOCK(client->updateMutex);
  if (!client->useCopyRect) {
    sraRgnOr(client->modifiedRegion, region);
  } else {
    if (!sraRgnEmpty(client->copyRegion)) {
      if (client->copyDX != dx || client->copyDY != dy) {
        // One offset per update: the older copy is sent as pixels.
        sraRgnOr(client->modifiedRegion, client->copyRegion);
        sraRgnMakeEmpty(client->copyRegion);
      } else {
        // Where the new copy's source was the older copy's destination.
        sraRegionPtr source = sraRgnCreateRgn(region);
        sraRgnOffset(source, -dx, -dy);
        sraRgnAnd(source, client->copyRegion);
        sraRgnOr(client->modifiedRegion, source);
        sraRgnDestroy(source);
      }
    }
    sraRgnOr(client->copyRegion, region);
    client->copyDX = dx;
    client->copyDY = dy;
    // Modified pixels the copy moves stay modified where they land.
    sraRegionPtr moved = sraRgnCreateRgn(client->modifiedRegion);
    sraRgnOffset(moved, dx, dy);
    sraRgnAnd(moved, client->copyRegion);
    sraRgnOr(client->modifiedRegion, moved);
    sraRgnDestroy(moved);
  }
  TSIGNAL(client->updateCond);
  UNLOCK(client->updateMutex);
}

}  // namespace vgpu::vnc
