// The one clock of mqtt-bench: CLOCK_MONOTONIC in nanoseconds. It is the clock written into
// every payload, so publisher and subscriber timestamps compare exactly between threads and,
// on the same host, between processes. Callable from any thread.
#pragma once

#include <time.h>

#include <cstdint>

namespace coremq::bench {

inline int64_t monotonic_ns() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

inline constexpr int64_t kNanosPerSecond = 1'000'000'000;

}  // namespace coremq::bench
