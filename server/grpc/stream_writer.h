// One write in flight on a gRPC server stream, and exactly one Finish.
//
// Messages queue while a write is in flight; the next starts from
// OnWriteDone. gRPC allows no Finish with a write outstanding, so Finish
// (from a cancel, a failed write or the stream's own end) waits for the
// write in flight and happens once, whoever asks first. Reactor calls
// (StartWrite, Finish) are made without the lock held: gRPC may run the
// next reaction inline.
#pragma once

#include <deque>
#include <functional>
#include <optional>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "common/mutex.h"

namespace vgpu::server {

// Thread-safe. `Reactor` is a ServerWriteReactor<Message> or a
// ServerBidiReactor<?, Message>; it owns the writer.
template <typename Reactor, typename Message>
class StreamWriter {
 public:
  // `before_write` (optional) sees each message as it is handed to gRPC.
  explicit StreamWriter(Reactor* reactor,
                        std::function<void(Message&)> before_write = nullptr)
      : reactor_(reactor), before_write_(std::move(before_write)) {}

  // Queues `message`; false (and dropped) once the stream is finishing.
  bool Write(Message message) {
    mu_.Lock();
    if (finishing_) {
      mu_.Unlock();
      return false;
    }
    queue_.push_back(std::move(message));
    const bool start = !writing_ && TakeNextLocked();
    mu_.Unlock();
    if (start) reactor_->StartWrite(&current_);
    return true;
  }

  // From the reactor's OnWriteDone. A failed write finishes the stream
  // (UNAVAILABLE). True when everything queued has been written.
  bool OnWriteDone(bool ok) {
    mu_.Lock();
    writing_ = false;
    if (finishing_) {  // a Finish waited for this write
      std::optional<grpc::Status> status = std::exchange(deferred_, {});
      mu_.Unlock();
      if (status) reactor_->Finish(*status);
      return false;
    }
    if (!ok) {
      finishing_ = true;
      queue_.clear();
      mu_.Unlock();
      reactor_->Finish(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      return false;
    }
    if (TakeNextLocked()) {
      mu_.Unlock();
      reactor_->StartWrite(&current_);
      return false;
    }
    mu_.Unlock();
    return true;
  }

  // Ends the stream with `status`: now, or when the write in flight
  // completes. Only the first call (or failed write) counts.
  void Finish(grpc::Status status) {
    mu_.Lock();
    if (finishing_) {
      mu_.Unlock();
      return;
    }
    finishing_ = true;
    queue_.clear();
    if (writing_) {
      deferred_ = std::move(status);
      mu_.Unlock();
      return;
    }
    mu_.Unlock();
    reactor_->Finish(std::move(status));
  }

  // Nothing queued and nothing in flight.
  bool Idle() const {
    MutexLock lock(&mu_);
    return !writing_ && queue_.empty();
  }

 private:
  // Moves the next queued message into current_ (the write in flight).
  bool TakeNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (queue_.empty()) return false;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    if (before_write_) before_write_(current_);
    writing_ = true;
    return true;
  }

  Reactor* const reactor_;
  const std::function<void(Message&)> before_write_;
  mutable Mutex mu_;
  std::deque<Message> queue_ VGPU_GUARDED_BY(mu_);
  Message current_;  // owned by gRPC while writing_
  bool writing_ VGPU_GUARDED_BY(mu_) = false;
  bool finishing_ VGPU_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> deferred_ VGPU_GUARDED_BY(mu_);
};

}  // namespace vgpu::server
