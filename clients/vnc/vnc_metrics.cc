#include "clients/vnc/vnc_metrics.h"

#include <map>
#include <string>
#include <utility>

namespace vgpu::vnc {

std::shared_ptr<ScrapeCollector> MakeVncCollector(
    const std::vector<MeteredScanout>& scanouts) {
  return std::make_shared<ScrapeCollector>([scanouts]() {
    MetricSeries clients, connections, refused, updates, rects, bytes, keys,
        pointers, resizes, feed_connected, feed_updates, subscriptions,
        forwarded, forwarded_bytes, lossless, overflows, forward_feeds,
        refreshes, feed_paused, copy_lagging;
    for (const MeteredScanout& s : scanouts) {
      const std::map<std::string, std::string> label = {
          {"scanout", std::to_string(s.scanout_id)}};
      const VncScreenStats& stats = s.screen->stats();
      auto add = [&label](MetricSeries& series, double value) {
        series.push_back({label, value});
      };
      add(clients, stats.clients.load());
      add(connections, static_cast<double>(stats.connections.load()));
      add(refused, static_cast<double>(stats.refused.load()));
      add(keys, static_cast<double>(stats.key_events.load()));
      add(pointers, static_cast<double>(stats.pointer_events.load()));
      const uint64_t granted = stats.resizes_granted.load();
      const uint64_t asked = stats.resize_requests.load();
      auto with = [&label](const char* key, const std::string& value) {
        std::map<std::string, std::string> labels = label;
        labels[key] = value;
        return labels;
      };
      resizes.push_back({with("result", "granted"), double(granted)});
      resizes.push_back({with("result", "refused"),
                         double(asked > granted ? asked - granted : 0)});
      const VncTraffic traffic = s.screen->Traffic();
      add(updates, static_cast<double>(traffic.updates));
      for (const auto& [encoding, totals] : traffic.by_encoding) {
        rects.push_back({with("encoding", encoding), double(totals.rects)});
        bytes.push_back({with("encoding", encoding), double(totals.bytes)});
      }
      add(feed_connected, s.feed->connected() ? 1 : 0);
      add(feed_paused, s.feed->paused() ? 1 : 0);
      add(copy_lagging, s.feed->copy_lagging() ? 1 : 0);
      add(feed_updates, static_cast<double>(s.feed->updates()));
      add(subscriptions, static_cast<double>(s.feed->subscriptions()));
      forwarded.push_back(
          {with("kind", "jpeg"), double(stats.forwarded_jpeg_rects.load())});
      forwarded.push_back(
          {with("kind", "fill"), double(stats.forwarded_fill_rects.load())});
      add(forwarded_bytes, static_cast<double>(stats.forwarded_bytes.load()));
      add(lossless, static_cast<double>(stats.lossless_rects.load()));
      add(overflows, static_cast<double>(stats.forward_overflows.load()));
      add(refreshes, static_cast<double>(stats.lossless_refreshes.load()));
      add(forward_feeds, s.forward_feeds != nullptr
                             ? static_cast<double>(s.forward_feeds->active())
                             : 0);
    }
    return std::vector<prometheus::MetricFamily>{
        GaugeFamily("vgpu_vnc_clients", "VNC clients connected now.", clients),
        CounterFamily("vgpu_vnc_connections_total", "VNC clients accepted.",
                      connections),
        CounterFamily("vgpu_vnc_refused_clients_total",
                      "VNC clients refused (over --max_clients).", refused),
        CounterFamily("vgpu_vnc_updates_total",
                      "FramebufferUpdate messages sent to VNC clients.",
                      updates),
        CounterFamily("vgpu_vnc_rects_total",
                      "Rects sent to VNC clients, by RFB encoding.", rects),
        CounterFamily("vgpu_vnc_sent_bytes_total",
                      "Bytes of rects sent to VNC clients, by RFB encoding.",
                      bytes),
        CounterFamily("vgpu_vnc_key_events_total",
                      "Key events from VNC clients (RFB and QEMU extended).",
                      keys),
        CounterFamily("vgpu_vnc_pointer_events_total",
                      "Pointer events from VNC clients.", pointers),
        CounterFamily("vgpu_vnc_resize_requests_total",
                      "SetDesktopSize requests from VNC clients: granted "
                      "(the guest was told) or refused.",
                      resizes),
        GaugeFamily("vgpu_vnc_feed_connected",
                    "1 while the daemon's stream feeds the scanout.",
                    feed_connected),
        GaugeFamily("vgpu_vnc_feed_paused",
                    "1 while the feed is paused: no VNC client of the "
                    "scanout for --idle_pause (feed_connected is 0 then).",
                    feed_paused),
        GaugeFamily("vgpu_vnc_copy_lagging",
                    "1 while the bridge's copy of the scanout takes the "
                    "daemon's frames only when something needs it: every "
                    "client forwards the daemon's JPEG.",
                    copy_lagging),
        CounterFamily("vgpu_vnc_feed_updates_total",
                      "Updates received from the daemon.", feed_updates),
        CounterFamily("vgpu_vnc_feed_subscriptions_total",
                      "Times the feed (re)connected to the daemon.",
                      subscriptions),
        CounterFamily("vgpu_vnc_forwarded_rects_total",
                      "Rects sent to Tight JPEG clients as the daemon "
                      "encoded them (encoded once for all such clients), "
                      "by kind.",
                      forwarded),
        CounterFamily("vgpu_vnc_forwarded_bytes_total",
                      "JPEG and fill bytes of the forwarded rects.",
                      forwarded_bytes),
        CounterFamily("vgpu_vnc_forward_lossless_rects_total",
                      "Rects the bridge encoded losslessly for Tight JPEG "
                      "clients (first screens, refreshes, settled regions).",
                      lossless),
        CounterFamily("vgpu_vnc_forward_overflows_total",
                      "Times a Tight JPEG client fell more than its budget "
                      "behind and got one lossless update instead.",
                      overflows),
        CounterFamily("vgpu_vnc_lossless_refreshes_total",
                      "Updates sent with JPEG off to VNC clients encoded "
                      "here, repainting what they had as JPEG once it "
                      "stayed still.",
                      refreshes),
        GaugeFamily("vgpu_vnc_forward_feeds",
                    "The daemon's JPEG streams feeding Tight JPEG clients "
                    "now (one per quality setting in use).",
                    forward_feeds),
    };
  });
}

}  // namespace vgpu::vnc
