// LogRateLimit: one line a second per site, and the count of lines left out in between.
#include <gtest/gtest.h>

#include "base/log.h"

namespace coremq::base {
namespace {

TEST(LogRateLimitTest, OneLineASecondWithTheCountLeftOut) {
  LogRateLimit limit;
  uint64_t suppressed = 99;
  EXPECT_TRUE(limit.admit(5'000, &suppressed));
  EXPECT_EQ(suppressed, 0u);
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(limit.admit(5'000 + i * 100, &suppressed));
  EXPECT_FALSE(limit.admit(5'999, &suppressed));
  EXPECT_TRUE(limit.admit(6'000, &suppressed));
  EXPECT_EQ(suppressed, 8u);
  EXPECT_TRUE(limit.admit(9'000, &suppressed));
  EXPECT_EQ(suppressed, 0u);
}

TEST(LogRateLimitTest, SitesAreLimitedApart) {
  // Each LOG_*_LIMITED use has its own limit: a flood at one site does not hide another.
  set_log_level(LogLevel::kNone);  // nothing written; the macros still compile and run
  for (int i = 0; i < 3; ++i) {
    LOG_WARNING_LIMITED("first site %d", i);
    LOG_INFO_LIMITED("second site %d", i);
  }
  set_log_level(LogLevel::kWarning);
}

}  // namespace
}  // namespace coremq::base
