#include "common/log.h"

#include "gtest/gtest.h"

namespace vgpu {
namespace {

TEST(LogTest, GuestErrorsAreRateLimitedButAllCounted) {
  uint64_t errors_before = GuestErrorCount();
  uint64_t suppressed_before = SuppressedGuestErrorLines();
  constexpr int kLines = 1000;
  for (int i = 0; i < kLines; ++i) VGPU_LOG_GUEST_ERROR() << "bad input " << i;
  EXPECT_EQ(GuestErrorCount() - errors_before, static_cast<uint64_t>(kLines));
  // At most two one-second buckets can be drawn from during the loop.
  EXPECT_GE(SuppressedGuestErrorLines() - suppressed_before,
            static_cast<uint64_t>(kLines - 2 * log_internal::kGuestErrorBurst));
}

TEST(LogTest, LinesBelowMinimumSeverityAreNotEvaluated) {
  SetMinLogSeverity(LogSeverity::kWarning);
  int evaluated = 0;
  auto touch = [&evaluated] { return ++evaluated; };
  VGPU_LOG(INFO) << touch();
  VGPU_LOG(ERROR) << touch();
  SetMinLogSeverity(LogSeverity::kInfo);
  EXPECT_EQ(evaluated, 1);
}

TEST(LogDeathTest, CheckFailureAborts) {
  EXPECT_DEATH(VGPU_CHECK(1 + 1 == 3) << "math",
               "Check failed: 1 \\+ 1 == 3 math");
}

}  // namespace
}  // namespace vgpu
