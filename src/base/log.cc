// Logging implementation; see log.h. Thread-safe without locks.
#include "base/log.h"

#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "base/assert.h"

namespace coremq::base {

std::atomic<int> g_log_level{static_cast<int>(LogLevel::kInfo)};
namespace {
thread_local int t_shard_id = -1;
}

bool parse_log_level(std::string_view text, LogLevel* level) {
  if (text == "debug") *level = LogLevel::kDebug;
  else if (text == "info") *level = LogLevel::kInfo;
  else if (text == "warning" || text == "warn") *level = LogLevel::kWarning;
  else if (text == "error") *level = LogLevel::kError;
  else if (text == "none") *level = LogLevel::kNone;
  else return false;
  return true;
}

std::string_view log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
    case LogLevel::kNone: return "none";
  }
  return "?";
}

void set_log_level(LogLevel level) { g_log_level.store(static_cast<int>(level), std::memory_order_relaxed); }
void set_log_thread_shard(int shard_id) { t_shard_id = shard_id; }

void log_write(LogLevel level, std::string_view message) {
  static constexpr char kLevelLetter[] = {'D', 'I', 'W', 'E', 'N'};
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  gmtime_r(&now.tv_sec, &utc);
  char line[2048];
  int prefix = std::snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %c ",
                             utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                             utc.tm_sec, now.tv_nsec / 1000000, kLevelLetter[static_cast<int>(level)]);
  if (t_shard_id >= 0) prefix += std::snprintf(line + prefix, sizeof(line) - prefix, "[shard %d] ", t_shard_id);
  // Leave room for the newline; an over-long message is cut, never split across writes.
  size_t room = sizeof(line) - static_cast<size_t>(prefix) - 1;
  size_t length = message.size() < room ? message.size() : room;
  __builtin_memcpy(line + prefix, message.data(), length);
  line[prefix + length] = '\n';
  ssize_t ignored = ::write(STDERR_FILENO, line, static_cast<size_t>(prefix) + length + 1);
  (void)ignored;
}

int64_t log_clock_ms() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return int64_t{now.tv_sec} * 1000 + now.tv_nsec / 1'000'000;
}

void log_write_limited(LogLevel level, std::string message, uint64_t suppressed) {
  if (suppressed > 0) absl::StrAppendFormat(&message, " (%u more like this not logged)", suppressed);
  log_write(level, message);
}

[[noreturn]] void assert_failed(const char* expression, const char* file, int line, const char* message) {
  std::fprintf(stderr, "coremq: assertion failed: %s at %s:%d%s%s\n", expression, file, line,
               message ? ": " : "", message ? message : "");
  std::fflush(stderr);
  std::abort();
}

}  // namespace coremq::base
