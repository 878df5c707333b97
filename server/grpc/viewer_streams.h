// The display service's server streams as thin gRPC adapters: each owns a
// StreamWriter (one write in flight, one Finish) and, for frame streams, a
// ViewerCore that decides what to send. Created by DisplayService's
// handlers after the request was validated.
#pragma once

#include <string>

#include "vgpu/display/v1/display.grpc.pb.h"
#include <grpcpp/grpcpp.h>

#include "server/viewer/viewer_core.h"

namespace vgpu::server {

class DisplayService;

// WatchFrames: updates paced only by the client's reads. The viewer slot
// (DisplayService::AddViewer) is taken already.
grpc::ServerWriteReactor<vgpu::display::v1::FrameEvent>* NewFrameWatcher(
    DisplayService* service, std::string peer, ViewerSettings settings);

// StreamFrames: the first message must be Subscribe; then updates flow
// while the client holds credits, and Acks and RefreshRequests come in. The
// viewer slot is taken already.
grpc::ServerBidiReactor<vgpu::display::v1::StreamFramesRequest,
                        vgpu::display::v1::StreamFramesResponse>*
NewFrameStreamer(DisplayService* service, std::string peer);

// WatchScanouts: every scanout now, then each one whose mode changes (the
// latest state of each, so a stalled client costs at most one pending
// entry per scanout).
grpc::ServerWriteReactor<vgpu::display::v1::Scanout>* NewScanoutWatcher(
    DisplayService* service, std::string peer);

// A stream that fails at once with `status`.
template <typename Reactor>
Reactor* NewRejectedStream(grpc::Status status) {
  class Rejected : public Reactor {
   public:
    explicit Rejected(grpc::Status s) { this->Finish(std::move(s)); }
    void OnDone() override { delete this; }
  };
  return new Rejected(std::move(status));
}

}  // namespace vgpu::server
