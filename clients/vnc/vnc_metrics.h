// The VNC bridge's Prometheus figures, read from each scanout's screen and
// feed at scrape time (they are owned by libvncserver's and the feed's
// threads):
//   vgpu_vnc_clients{scanout}                     VNC clients connected now
//   vgpu_vnc_connections_total, vgpu_vnc_refused_clients_total{scanout}
//   vgpu_vnc_updates_total{scanout}               FramebufferUpdates sent
//   vgpu_vnc_rects_total, vgpu_vnc_sent_bytes_total{scanout,encoding}
//                                                  libvncserver's encoders
//   vgpu_vnc_key_events_total, vgpu_vnc_pointer_events_total{scanout}
//   vgpu_vnc_resize_requests_total{scanout,result="granted"|"refused"}
//   vgpu_vnc_feed_connected{scanout}              1 while the daemon feeds
//   vgpu_vnc_feed_updates_total, vgpu_vnc_feed_subscriptions_total{scanout}
//   vgpu_vnc_forwarded_rects_total{scanout,kind="jpeg"|"fill"}
//   vgpu_vnc_forwarded_bytes_total, vgpu_vnc_forward_lossless_rects_total,
//   vgpu_vnc_forward_overflows_total, vgpu_vnc_forward_feeds{scanout}
//                                                  encode once
//
// Thread rules: the collector may run on any thread; the screens and feeds
// must outlive it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "clients/vnc/scanout_feed.h"
#include "clients/vnc/vnc_screen.h"
#include "common/scrape_metrics.h"

namespace vgpu::vnc {

struct MeteredScanout {
  uint32_t scanout_id = 0;
  const VncScreen* screen = nullptr;
  const ScanoutFeed* feed = nullptr;
  const ForwardFeeds* forward_feeds = nullptr;  // null: encode once is off
};

std::shared_ptr<ScrapeCollector> MakeVncCollector(
    const std::vector<MeteredScanout>& scanouts);

}  // namespace vgpu::vnc
