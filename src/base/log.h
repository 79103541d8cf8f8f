// Leveled logging. Callable from any thread: each line is formatted (text or JSON) on the
// caller's stack. Until log_start() (and after log_stop(), and in embedding programs that
// never call it) the caller writes it to stderr with one write(2), so lines never interleave.
// Once log_start() ran, a line goes into the calling thread's own bounded byte ring and the
// log thread ("coremq-log") writes it to the destinations (stderr, a file, syslog): a shard
// never waits for a disk or for syslog, and a full ring drops the line and counts it
// (log_lines_dropped()). The log thread also keeps the recent lines for recent_log_lines().
// The level is a process-wide setting; a disabled level costs one relaxed load and a branch.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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

// A structured field of a line: in text `name=value` after the message (strings quoted), in
// JSON a member of the line's object.
struct LogField {
  std::string_view name;
  std::string_view text;  // for strings
  int64_t number = 0;     // for numbers (text.data() == nullptr)
  bool is_number = false;
  static LogField string(std::string_view name, std::string_view text) { return {name, text, 0, false}; }
  static LogField integer(std::string_view name, int64_t number) { return {name, {}, number, true}; }
};
void log_write_fields(LogLevel level, std::string_view message, std::span<const LogField> fields);

enum class LogFormat : int { kText = 0, kJson = 1 };
// "text" or "json"; false on anything else.
[[nodiscard]] bool parse_log_format(std::string_view text, LogFormat* format);
void set_log_format(LogFormat format);

// Where lines go. Parsed from --log-dest: "stderr", "file:PATH" or "syslog", comma-separated
// (the flag may be repeated: its values are joined with commas).
struct LogDestinations {
  bool to_stderr = false;
  bool to_syslog = false;
  std::string file_path;  // empty: no file
};
[[nodiscard]] bool parse_log_destinations(std::string_view spec, LogDestinations* destinations, std::string* error);

struct LogOptions {
  LogDestinations destinations{.to_stderr = true};
  // Bytes of each thread's ring of lines waiting for the log thread (--log-buffer-bytes);
  // rounded up to a power of two. A line that does not fit is dropped and counted.
  uint32_t thread_buffer_bytes = 256 * 1024;
  // Lines recent_log_lines() can return (--log-recent-lines).
  uint32_t recent_lines = 256;
};

// Opens the destinations and starts the log thread (the main thread, before the broker starts).
// False with *error when the file cannot be opened; logging then stays on stderr.
[[nodiscard]] bool log_start(const LogOptions& options, std::string* error);
// SIGHUP (logrotate): the log thread closes and reopens the file by its path at its next pass.
void log_reopen();
// Writes what is buffered, stops the log thread and goes back to writing stderr directly.
void log_stop();
// Lines dropped because a thread's ring was full (the log thread also logs that it happened).
uint64_t log_lines_dropped();
// The newest `max` lines written (oldest first), as formatted; at most LogOptions::recent_lines.
// Any thread. Lines of shard threads are kept only while the log thread runs.
std::vector<std::string> recent_log_lines(size_t max);

// The shard id shown in log lines for the calling thread (-1: not a shard thread).
void set_log_thread_shard(int shard_id);

// At most one line a second from one call site: for lines on a data path (a limit reached
// per message, a misbehaving client per packet), where a flood would otherwise write a line
// per event. The line that goes out says how many were left out since the previous one.
// One per call site and thread (LOG_*_LIMITED make a thread_local one), so no sharing.
class LogRateLimit {
 public:
  static constexpr int64_t kIntervalMs = 1000;
  // True when a line may be written at now_ms (at most `burst` lines a second); *suppressed is
  // then the count left out before it.
  bool admit(int64_t now_ms, uint64_t* suppressed, uint32_t burst = 1) {
    if (now_ms >= window_end_ms_) {
      window_end_ms_ = now_ms + kIntervalMs;
      admitted_ = 0;
    }
    if (admitted_ >= burst) {
      ++suppressed_;
      return false;
    }
    ++admitted_;
    *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  int64_t window_end_ms_ = 0;
  uint64_t suppressed_ = 0;
  uint32_t admitted_ = 0;
};

// CLOCK_MONOTONIC_COARSE in milliseconds (vDSO, no syscall): only read when a limited line
// is about to be written.
int64_t log_clock_ms();
// log_write, with "(N similar lines suppressed)" appended when suppressed > 0.
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
