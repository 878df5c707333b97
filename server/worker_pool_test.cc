#include "server/worker_pool.h"

#include <atomic>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

#include "common/notification.h"

namespace vgpu::server {
namespace {

TEST(WorkerPoolTest, RunsTasksInTimeOrder) {
  WorkerPool pool(1);
  std::vector<int> order;
  Notification done;
  Mutex mu;
  absl::Time now = absl::Now();
  pool.PostAt(now + absl::Milliseconds(60), [&] {
    MutexLock lock(&mu);
    order.push_back(2);
    done.Notify();
  });
  pool.PostAt(now + absl::Milliseconds(20), [&] {
    MutexLock lock(&mu);
    order.push_back(1);
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  MutexLock lock(&mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_GE(absl::Now() - now, absl::Milliseconds(60));
}

// Tasks scheduled far ahead hold objects alive (a viewer's refresh
// wake-up): stopping runs them at once instead of dropping them.
TEST(WorkerPoolTest, StoppingRunsTasksScheduledForLater) {
  std::atomic<int> ran{0};
  absl::Time start = absl::Now();
  {
    WorkerPool pool(2);
    pool.PostAt(start + absl::Hours(1), [&] { ++ran; });
    pool.Post([&] { ++ran; });
  }
  EXPECT_EQ(ran.load(), 2);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

}  // namespace
}  // namespace vgpu::server
