// Leveled logging to stderr. Callable from any shard: each line is formatted on the
// caller's stack and written with one write(2), so lines from different shards never
// interleave and no lock is taken. The level is a process-wide setting chosen at
// start-up; a disabled level costs one relaxed load and a branch.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/str_format.h"

namespace coremq::base {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kNone = 4 };

// Parses "debug", "info", "warning"/"warn", "error", "none". Returns false on anything else.
[[nodiscard]] bool parse_log_level(std::string_view text, LogLevel* level);
std::string_view log_level_name(LogLevel level);

void set_log_level(LogLevel level);
extern std::atomic<int> g_log_level;

inline bool log_enabled(LogLevel level) {
  return static_cast<int>(level) >= g_log_level.load(std::memory_order_relaxed);
}

// Writes one already formatted line; prefixes time, level and the calling shard.
void log_write(LogLevel level, std::string_view message);

// The shard id shown in log lines for the calling thread (-1: not a shard thread).
void set_log_thread_shard(int shard_id);

// At most one line a second from one call site: for lines on a data path (a limit reached
// per message, a misbehaving client per packet), where a flood would otherwise write a line
// per event. The line that goes out says how many were left out since the previous one.
// One per call site and thread (LOG_*_LIMITED make a thread_local one), so no sharing.
class LogRateLimit {
 public:
  static constexpr int64_t kIntervalMs = 1000;
  // True when a line may be written at now_ms; *suppressed is then the count left out before it.
  bool admit(int64_t now_ms, uint64_t* suppressed) {
    if (now_ms < next_ms_) {
      ++suppressed_;
      return false;
    }
    next_ms_ = now_ms + kIntervalMs;
    *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  int64_t next_ms_ = 0;
  uint64_t suppressed_ = 0;
};

// CLOCK_MONOTONIC_COARSE in milliseconds (vDSO, no syscall): only read when a limited line
// is about to be written.
int64_t log_clock_ms();
// log_write, with "(N more like this not logged)" appended when suppressed > 0.
void log_write_limited(LogLevel level, std::string message, uint64_t suppressed);

}  // namespace coremq::base

#define COREMQ_LOG(level, ...)                                                          \
  do {                                                                                  \
    if (::coremq::base::log_enabled(::coremq::base::LogLevel::level))                   \
      ::coremq::base::log_write(::coremq::base::LogLevel::level, absl::StrFormat(__VA_ARGS__)); \
  } while (0)

#define COREMQ_LOG_LIMITED(level, ...)                                                          \
  do {                                                                                          \
    if (::coremq::base::log_enabled(::coremq::base::LogLevel::level)) {                         \
      static thread_local ::coremq::base::LogRateLimit coremq_log_rate_limit;                   \
      uint64_t coremq_log_suppressed = 0;                                                       \
      if (coremq_log_rate_limit.admit(::coremq::base::log_clock_ms(), &coremq_log_suppressed))  \
        ::coremq::base::log_write_limited(::coremq::base::LogLevel::level, absl::StrFormat(__VA_ARGS__), \
                                          coremq_log_suppressed);                               \
    }                                                                                           \
  } while (0)

#define LOG_DEBUG(...) COREMQ_LOG(kDebug, __VA_ARGS__)
#define LOG_INFO(...) COREMQ_LOG(kInfo, __VA_ARGS__)
#define LOG_WARNING(...) COREMQ_LOG(kWarning, __VA_ARGS__)
#define LOG_ERROR(...) COREMQ_LOG(kError, __VA_ARGS__)
// Rate-limited forms, for data paths (see LogRateLimit).
#define LOG_INFO_LIMITED(...) COREMQ_LOG_LIMITED(kInfo, __VA_ARGS__)
#define LOG_WARNING_LIMITED(...) COREMQ_LOG_LIMITED(kWarning, __VA_ARGS__)
