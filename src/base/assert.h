// Always-on assertions: a failed COREMQ_ASSERT is a bug in coremq, never bad input.
// They stay on in release builds (TigerBeetle's rule): a broker that keeps running
// with a broken invariant loses data silently, which is worse than a crash with a
// clear message. Usable from any thread.
#pragma once

namespace coremq::base {
[[noreturn]] void assert_failed(const char* expression, const char* file, int line, const char* message);
}  // namespace coremq::base

#define COREMQ_ASSERT(condition)                                                       \
  do {                                                                                 \
    if (__builtin_expect(!(condition), 0))                                             \
      ::coremq::base::assert_failed(#condition, __FILE__, __LINE__, nullptr);          \
  } while (0)

#define COREMQ_ASSERT_MSG(condition, message)                                          \
  do {                                                                                 \
    if (__builtin_expect(!(condition), 0))                                             \
      ::coremq::base::assert_failed(#condition, __FILE__, __LINE__, (message));        \
  } while (0)
