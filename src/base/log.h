// Leveled logging to stderr. Callable from any shard: each line is formatted on the
// caller's stack and written with one write(2), so lines from different shards never
// interleave and no lock is taken. The level is a process-wide setting chosen at
// start-up; a disabled level costs one relaxed load and a branch.
#pragma once

#include <atomic>
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

}  // namespace coremq::base

#define COREMQ_LOG(level, ...)                                                          \
  do {                                                                                  \
    if (::coremq::base::log_enabled(::coremq::base::LogLevel::level))                   \
      ::coremq::base::log_write(::coremq::base::LogLevel::level, absl::StrFormat(__VA_ARGS__)); \
  } while (0)

#define LOG_DEBUG(...) COREMQ_LOG(kDebug, __VA_ARGS__)
#define LOG_INFO(...) COREMQ_LOG(kInfo, __VA_ARGS__)
#define LOG_WARNING(...) COREMQ_LOG(kWarning, __VA_ARGS__)
#define LOG_ERROR(...) COREMQ_LOG(kError, __VA_ARGS__)
