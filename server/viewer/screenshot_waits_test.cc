#include "server/viewer/screenshot_waits.h"

#include <atomic>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "common/notification.h"

namespace vgpu::server {
namespace {

gpu::FramePtr Frame(uint64_t sequence) {
  gpu::TileGrid grid(64, 64);
  return std::make_shared<gpu::Frame>(64, 64, 0, 0, grid.Snapshot(),
                                      grid.columns(), sequence);
}

// What one wait ended with, and how often `done` ran.
struct Outcome {
  Notification ended;
  std::atomic<int> calls{0};
  absl::StatusCode code = absl::StatusCode::kUnknown;
  uint64_t sequence = 0;
  absl::Time at;

  ScreenshotWaits::Done Callback() {
    return [this](absl::StatusOr<ScanoutState> state) {
      code = state.status().code();
      if (state.ok()) sequence = state->sequence;
      at = absl::Now();
      if (calls.fetch_add(1) == 0) ended.Notify();
    };
  }
};

class ScreenshotWaitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_.OnScanoutMode({0, true, 64, 64}, Frame(++sequence_));
  }
  void Flush() { store_.OnFrame(0, Frame(++sequence_), {{0, 0, 64, 64}}); }
  WaitCondition After(uint64_t sequence) {
    return {.kind = WaitKind::kSequence, .sequence = sequence};
  }

  FrameStore store_;
  WorkerPool pool_{1};
  uint64_t sequence_ = 0;
};

TEST_F(ScreenshotWaitsTest, AHundredWaitsHoldNoWorker) {
  ScreenshotWaits waits(&store_, &pool_, 1024);
  std::vector<Outcome> outcomes(100);
  for (Outcome& outcome : outcomes) {
    ASSERT_TRUE(waits
                    .Start(0, After(3), absl::Now() + absl::Seconds(60),
                           outcome.Callback())
                    .ok());
  }
  EXPECT_EQ(waits.pending(), 100u);
  // The pool's one thread is free for other work while they wait.
  Notification ran;
  pool_.Post([&] { ran.Notify(); });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(waits.pending(), 100u);

  Flush();  // sequence 2: not yet
  EXPECT_EQ(waits.pending(), 100u);
  Flush();  // sequence 3: not yet ("greater than")
  Flush();  // sequence 4 meets every wait
  for (Outcome& outcome : outcomes) {
    ASSERT_TRUE(
        outcome.ended.WaitForNotificationWithTimeout(absl::Seconds(30)));
    EXPECT_EQ(outcome.code, absl::StatusCode::kOk);
    EXPECT_EQ(outcome.sequence, 4u);
  }
  EXPECT_EQ(waits.pending(), 0u);
  Flush();
  pool_.Post([] {});
  for (Outcome& outcome : outcomes) EXPECT_EQ(outcome.calls.load(), 1);
}

TEST_F(ScreenshotWaitsTest, AMetConditionEndsAtOnce) {
  ScreenshotWaits waits(&store_, &pool_, 1024);
  Outcome outcome;
  ASSERT_TRUE(waits
                  .Start(0, After(0), absl::Now() + absl::Seconds(60),
                         outcome.Callback())
                  .ok());
  ASSERT_TRUE(outcome.ended.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(outcome.code, absl::StatusCode::kOk);
  EXPECT_EQ(outcome.sequence, 1u);
}

TEST_F(ScreenshotWaitsTest, EachWaitEndsAtItsOwnDeadline) {
  ScreenshotWaits waits(&store_, &pool_, 1024);
  Outcome soon, later;
  const absl::Time start = absl::Now();
  ASSERT_TRUE(waits
                  .Start(0, After(100), start + absl::Milliseconds(200),
                         later.Callback())
                  .ok());
  ASSERT_TRUE(
      waits
          .Start(0, After(100), start + absl::Milliseconds(50), soon.Callback())
          .ok());
  ASSERT_TRUE(soon.ended.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_TRUE(later.ended.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(soon.code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(later.code, absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(soon.at, start + absl::Milliseconds(50));
  EXPECT_GE(later.at, start + absl::Milliseconds(200));
  EXPECT_LT(soon.at, later.at);
}

TEST_F(ScreenshotWaitsTest, AStableWaitEndsOnceFlushesStop) {
  ScreenshotWaits waits(&store_, &pool_, 1024);
  Outcome outcome;
  const absl::Duration quiet = absl::Milliseconds(40);
  ASSERT_TRUE(waits
                  .Start(0, {.kind = WaitKind::kStable, .quiet = quiet},
                         absl::Now() + absl::Seconds(60), outcome.Callback())
                  .ok());
  // Flushes keep coming until the wait could have ended several times over
  // had they not moved its moment.
  const absl::Time until = absl::Now() + 3 * quiet;
  while (absl::Now() < until) {
    Flush();
    ASSERT_FALSE(outcome.ended.HasBeenNotified());
    absl::SleepFor(quiet / 4);  // the guest's pace, not a synchronisation
  }
  const absl::Time last_flush = store_.State(0).last_flush;
  ASSERT_TRUE(outcome.ended.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(outcome.code, absl::StatusCode::kOk);
  EXPECT_EQ(outcome.sequence, sequence_);
  EXPECT_GE(outcome.at, last_flush + quiet);
}

TEST_F(ScreenshotWaitsTest, WaitsPastTheBoundAreRefused) {
  ScreenshotWaits waits(&store_, &pool_, 2);
  Outcome a, b, c;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  ASSERT_TRUE(waits.Start(0, After(10), deadline, a.Callback()).ok());
  auto second = waits.Start(0, After(10), deadline, b.Callback());
  ASSERT_TRUE(second.ok());
  auto third = waits.Start(0, After(10), deadline, c.Callback());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  // An ended wait makes room again.
  waits.Cancel(*second);
  ASSERT_TRUE(b.ended.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(b.code, absl::StatusCode::kCancelled);
  EXPECT_TRUE(waits.Start(0, After(10), deadline, c.Callback()).ok());
  for (uint64_t i = 0; i < 10; ++i) Flush();
  ASSERT_TRUE(a.ended.WaitForNotificationWithTimeout(absl::Seconds(30)));
  ASSERT_TRUE(c.ended.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(b.calls.load(), 1);  // cancelled once, never met afterwards
}

TEST_F(ScreenshotWaitsTest, WaitsLeftAtShutdownEndUnavailable) {
  Outcome outcome;
  {
    ScreenshotWaits waits(&store_, &pool_, 8);
    ASSERT_TRUE(waits
                    .Start(0, After(10), absl::Now() + absl::Seconds(60),
                           outcome.Callback())
                    .ok());
  }
  ASSERT_TRUE(outcome.ended.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(outcome.code, absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace vgpu::server

namespace vgpu::server {
namespace {

// A stable wait asked for before the scanout shows anything counts its
// quiet time from the first frame, not from its deadline.
TEST(ScreenshotWaitsNoFrameTest, AStableWaitStartsCountingAtTheFirstFrame) {
  FrameStore store;
  WorkerPool pool(1);
  ScreenshotWaits waits(&store, &pool, 8);
  Outcome outcome;
  const absl::Time start = absl::Now();
  ASSERT_TRUE(
      waits
          .Start(0,
                 {.kind = WaitKind::kStable, .quiet = absl::Milliseconds(20)},
                 start + absl::Seconds(60), outcome.Callback())
          .ok());
  store.OnScanoutMode({0, true, 64, 64}, Frame(1));
  ASSERT_TRUE(outcome.ended.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(outcome.code, absl::StatusCode::kOk);
  EXPECT_LT(outcome.at, start + absl::Seconds(30));  // long before 60 s
}

}  // namespace
}  // namespace vgpu::server
