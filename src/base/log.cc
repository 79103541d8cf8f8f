// Logging implementation; see log.h. Callers (any thread, shards included) format on their
// stack and either write stderr themselves (no log thread) or push into their own SPSC byte
// ring, which only the log thread drains: no lock on a shard thread in either case (the
// recent-lines mutex is taken by the log thread, readers, and non-shard threads without it).
#include "base/log.h"

#include <fcntl.h>
#include <pthread.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "base/assert.h"

namespace coremq::base {

std::atomic<int> g_log_level{static_cast<int>(LogLevel::kInfo)};

namespace {

thread_local int t_shard_id = -1;
std::atomic<int> g_log_format{static_cast<int>(LogFormat::kText)};

constexpr size_t kLineBytesMax = 4096;

// ---- formatting --------------------------------------------------------------

// Appends into a fixed buffer; what does not fit is cut (one line is never split).
class LineWriter {
 public:
  LineWriter(char* data, size_t capacity) : data_(data), capacity_(capacity) {}
  void add(std::string_view text) {
    size_t room = capacity_ - size_;
    size_t length = text.size() < room ? text.size() : room;
    std::memcpy(data_ + size_, text.data(), length);
    size_ += length;
  }
  void add(char c) {
    if (size_ < capacity_) data_[size_++] = c;
  }
  void add_number(int64_t value) {
    char digits[24];
    int length = std::snprintf(digits, sizeof(digits), "%lld", static_cast<long long>(value));
    add(std::string_view(digits, static_cast<size_t>(length)));
  }
  // A JSON string's contents: quotes, backslashes and control characters escaped (bytes of
  // 0x80 and up pass as they are: MQTT strings are validated UTF-8).
  void add_json_escaped(std::string_view text) {
    for (char c : text) {
      auto byte = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        add('\\');
        add(c);
      } else if (c == '\n') {
        add("\\n");
      } else if (byte < 0x20) {
        char escaped[8];
        std::snprintf(escaped, sizeof(escaped), "\\u%04x", byte);
        add(escaped);
      } else {
        add(c);
      }
    }
  }
  // A text-format value: quoted (with \" and \\) so that spaces and '=' stay readable.
  void add_quoted(std::string_view text) {
    add('"');
    for (char c : text) {
      if (c == '"' || c == '\\') add('\\');
      if (static_cast<unsigned char>(c) < 0x20) c = '?';
      add(c);
    }
    add('"');
  }
  size_t size() const { return size_; }

 private:
  char* data_;
  size_t capacity_;
  size_t size_ = 0;
};

constexpr std::string_view kLevelNames[] = {"debug", "info", "warning", "error", "none"};

// Formats one line (without its newline) into `buffer`; returns its length.
size_t format_line(char* buffer, size_t capacity, LogLevel level, std::string_view message,
                   std::span<const LogField> fields) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  gmtime_r(&now.tv_sec, &utc);
  char time_text[40];
  int time_length = std::snprintf(time_text, sizeof(time_text), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
                                  utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                                  utc.tm_sec, now.tv_nsec / 1000000);
  std::string_view time_view(time_text, static_cast<size_t>(time_length));
  LineWriter out(buffer, capacity);
  if (static_cast<LogFormat>(g_log_format.load(std::memory_order_relaxed)) == LogFormat::kJson) {
    out.add("{\"time\":\"");
    out.add(time_view);
    out.add("\",\"level\":\"");
    out.add(kLevelNames[static_cast<int>(level)]);
    out.add('"');
    if (t_shard_id >= 0) {
      out.add(",\"shard\":");
      out.add_number(t_shard_id);
    }
    out.add(",\"message\":\"");
    out.add_json_escaped(message);
    out.add('"');
    for (const LogField& field : fields) {
      out.add(",\"");
      out.add_json_escaped(field.name);
      out.add("\":");
      if (field.is_number) {
        out.add_number(field.number);
      } else {
        out.add('"');
        out.add_json_escaped(field.text);
        out.add('"');
      }
    }
    // A cut line must still parse: the closing brace is always written.
    size_t length = out.size();
    if (length >= capacity) length = capacity - 1;
    buffer[length] = '}';
    return length + 1;
  }
  static constexpr char kLevelLetter[] = {'D', 'I', 'W', 'E', 'N'};
  out.add(time_view);
  out.add(' ');
  out.add(kLevelLetter[static_cast<int>(level)]);
  out.add(' ');
  if (t_shard_id >= 0) {
    out.add("[shard ");
    out.add_number(t_shard_id);
    out.add("] ");
  }
  out.add(message);
  for (const LogField& field : fields) {
    out.add(' ');
    out.add(field.name);
    out.add('=');
    if (field.is_number) {
      out.add_number(field.number);
    } else {
      out.add_quoted(field.text);
    }
  }
  return out.size();
}

// ---- recent lines ------------------------------------------------------------

struct RecentLines {
  std::mutex mutex;
  std::vector<std::string> lines;  // a ring of `capacity` lines
  size_t next = 0;                 // where the next line goes
  size_t count = 0;
  size_t capacity = 256;

  void add(std::string_view line) {
    std::lock_guard lock(mutex);
    if (capacity == 0) return;
    if (lines.size() != capacity) lines.resize(capacity);
    lines[next].assign(line);
    next = (next + 1) % capacity;
    if (count < capacity) ++count;
  }
};
RecentLines& recent() {
  static RecentLines* lines = new RecentLines();  // never destroyed: threads may log at exit
  return *lines;
}

// ---- per-thread rings --------------------------------------------------------

// One thread's lines for the log thread: a single-producer (the thread), single-consumer (the
// log thread) byte ring of records [u32 length << 3 | level][u64 monotonic ns][line bytes]. The
// log thread merges every ring's records by their time, so lines of different threads come out
// in the order they were written.
struct ThreadRing {
  explicit ThreadRing(size_t capacity) : data(new char[capacity]), mask(capacity - 1) {}
  std::unique_ptr<char[]> data;
  const size_t mask;
  alignas(64) std::atomic<uint64_t> head{0};  // consumer
  alignas(64) std::atomic<uint64_t> tail{0};  // producer
  // Lines dropped because the ring was full, over every thread that has used the ring.
  std::atomic<uint64_t> dropped{0};
  // kInUse by its thread; kAbandoned once the thread exited (it pushes nothing more); kFree once
  // the log thread drained it after that, for the next new thread to take. Rings are never
  // freed, so any thread may read `dropped` (at most one ring per thread alive at once).
  enum State : int { kInUse, kAbandoned, kFree };
  std::atomic<int> state{kInUse};

  void copy_in(uint64_t at, const void* from, size_t length) {
    size_t offset = at & mask;
    size_t first = std::min(length, mask + 1 - offset);
    std::memcpy(data.get() + offset, from, first);
    std::memcpy(data.get(), static_cast<const char*>(from) + first, length - first);
  }
  void copy_out(uint64_t at, void* to, size_t length) const {
    size_t offset = at & mask;
    size_t first = std::min(length, mask + 1 - offset);
    std::memcpy(to, data.get() + offset, first);
    std::memcpy(static_cast<char*>(to) + first, data.get(), length - first);
  }
  static constexpr size_t kRecordHeader = sizeof(uint32_t) + sizeof(uint64_t);
  bool push(LogLevel level, uint64_t monotonic_ns, std::string_view line) {
    uint64_t at = tail.load(std::memory_order_relaxed);
    uint64_t free = mask + 1 - (at - head.load(std::memory_order_acquire));
    if (free < kRecordHeader + line.size()) {
      dropped.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    uint32_t header = static_cast<uint32_t>(line.size() << 3) | static_cast<uint32_t>(level);
    copy_in(at, &header, sizeof(header));
    copy_in(at + sizeof(header), &monotonic_ns, sizeof(monotonic_ns));
    copy_in(at + kRecordHeader, line.data(), line.size());
    tail.store(at + kRecordHeader + line.size(), std::memory_order_release);
    return true;
  }
};

constexpr size_t kThreadSlots = 512;
std::array<std::atomic<ThreadRing*>, kThreadSlots> g_slots{};
std::atomic<bool> g_async{false};
std::atomic<uint32_t> g_ring_bytes{256 * 1024};

struct ThreadHandle {
  ThreadRing* ring = nullptr;
  bool no_slot = false;  // every slot taken: this thread writes directly
  ~ThreadHandle() {
    if (ring != nullptr) ring->state.store(ThreadRing::kAbandoned, std::memory_order_release);
  }
};
thread_local ThreadHandle t_handle;

ThreadRing* thread_ring() {
  if (t_handle.ring != nullptr || t_handle.no_slot) return t_handle.ring;
  // A ring some exited thread left (drained) first, then a new one in an empty slot.
  for (auto& slot : g_slots) {
    ThreadRing* ring = slot.load(std::memory_order_acquire);
    int free = ThreadRing::kFree;
    if (ring != nullptr && ring->state.compare_exchange_strong(free, ThreadRing::kInUse, std::memory_order_acq_rel)) {
      t_handle.ring = ring;
      return ring;
    }
  }
  auto ring = std::make_unique<ThreadRing>(g_ring_bytes.load(std::memory_order_relaxed));
  for (auto& slot : g_slots) {
    ThreadRing* expected = nullptr;
    if (slot.compare_exchange_strong(expected, ring.get(), std::memory_order_acq_rel)) {
      t_handle.ring = ring.release();
      return t_handle.ring;
    }
  }
  t_handle.no_slot = true;
  return nullptr;
}

void write_all(int fd, const char* data, size_t length) {
  while (length > 0) {
    ssize_t written = ::write(fd, data, length);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;  // nowhere to report it: the line is lost
    data += written;
    length -= static_cast<size_t>(written);
  }
}

// syslog keeps the time and the priority itself: a text line goes without its own "TIME L "
// prefix (as Mosquitto's syslog lines carry no time stamp of their own), keeping "[shard N]";
// a JSON line goes whole, so that it still parses.
std::string_view syslog_text(std::string_view line) {
  constexpr size_t kTextPrefixBytes = sizeof("2026-01-01T00:00:00.000Z I ") - 1;
  bool text_prefix = line.size() >= kTextPrefixBytes && line.front() != '{' &&
                     line[kTextPrefixBytes - 4] == 'Z' && line[kTextPrefixBytes - 3] == ' ' &&
                     line[kTextPrefixBytes - 1] == ' ';
  if (text_prefix) line.remove_prefix(kTextPrefixBytes);
  return line;
}

int syslog_priority(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return LOG_DEBUG;
    case LogLevel::kInfo: return LOG_INFO;
    case LogLevel::kWarning: return LOG_WARNING;
    default: return LOG_ERR;
  }
}

// ---- the log thread ----------------------------------------------------------

class LogThread {
 public:
  explicit LogThread(const LogOptions& options) : options_(options) {}

  bool open(std::string* error) {
    if (!options_.destinations.file_path.empty() && !open_file(error)) return false;
    if (options_.destinations.to_syslog) openlog("coremq", LOG_PID | LOG_NDELAY, LOG_DAEMON);
    return true;
  }
  void start() {
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "coremq-log");
      run();
    });
  }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    if (file_fd_ >= 0) ::close(file_fd_);
    if (options_.destinations.to_syslog) closelog();
  }
  void request_reopen() { reopen_.store(true, std::memory_order_release); }

 private:
  bool open_file(std::string* error) {
    int fd = ::open(options_.destinations.file_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
      *error = "cannot open log file " + options_.destinations.file_path + ": " + std::strerror(errno);
      return false;
    }
    if (file_fd_ >= 0) ::close(file_fd_);
    file_fd_ = fd;
    return true;
  }

  void run() {
    for (;;) {
      bool stopping = false;
      {
        std::unique_lock lock(mutex_);
        stopping = stopping_;
      }
      if (reopen_.exchange(false, std::memory_order_acq_rel)) {
        std::string error;
        // A file that cannot be opened again keeps the old descriptor (the renamed file).
        if (!open_file(&error)) write_own(LogLevel::kError, error);
      }
      bool any = drain();
      report_dropped();
      if (stopping) {
        while (drain()) {
        }
        return;
      }
      if (!any) {
        std::unique_lock lock(mutex_);
        // Polled, not woken: a wake-up would cost the logging thread a syscall per line.
        wake_.wait_for(lock, std::chrono::milliseconds(10), [this] { return stopping_; });
      }
    }
  }

  // Moves every thread's lines to the destinations, merged by time; true if there were any.
  bool drain() {
    batch_.clear();
    pending_.clear();
    for (auto& slot : g_slots) {
      ThreadRing* ring = slot.load(std::memory_order_acquire);
      if (ring == nullptr) continue;
      bool abandoned = ring->state.load(std::memory_order_acquire) == ThreadRing::kAbandoned;
      uint64_t head = ring->head.load(std::memory_order_relaxed);
      uint64_t tail = ring->tail.load(std::memory_order_acquire);
      while (head != tail) {
        uint32_t header = 0;
        Pending line;
        ring->copy_out(head, &header, sizeof(header));
        ring->copy_out(head + sizeof(header), &line.monotonic_ns, sizeof(line.monotonic_ns));
        size_t length = header >> 3;
        COREMQ_ASSERT(length <= kLineBytesMax);
        line.level = static_cast<LogLevel>(header & 7);
        line.text.resize(length);
        ring->copy_out(head + ThreadRing::kRecordHeader, line.text.data(), length);
        head += ThreadRing::kRecordHeader + length;
        pending_.push_back(std::move(line));
      }
      ring->head.store(head, std::memory_order_release);
      // Its thread is gone and pushed everything before saying so: the next thread may take it.
      if (abandoned) ring->state.store(ThreadRing::kFree, std::memory_order_release);
    }
    // Each ring is in order already; stable, so equal times keep their thread's order.
    std::stable_sort(pending_.begin(), pending_.end(),
                     [](const Pending& a, const Pending& b) { return a.monotonic_ns < b.monotonic_ns; });
    for (const Pending& line : pending_) emit(line.level, line.text);
    flush();
    return !pending_.empty();
  }

  void emit(LogLevel level, std::string_view line) {
    recent().add(line);
    if (options_.destinations.to_syslog) {
      std::string_view text = syslog_text(line);
      syslog(syslog_priority(level), "%.*s", static_cast<int>(text.size()), text.data());
    }
    batch_.append(line);
    batch_.push_back('\n');
    if (batch_.size() > 64 * 1024) flush();
  }
  void flush() {
    if (batch_.empty()) return;
    if (options_.destinations.to_stderr) write_all(STDERR_FILENO, batch_.data(), batch_.size());
    if (file_fd_ >= 0) write_all(file_fd_, batch_.data(), batch_.size());
    batch_.clear();
  }
  // A line of the log thread's own, straight to the destinations.
  void write_own(LogLevel level, std::string_view message) {
    size_t length = format_line(line_, sizeof(line_), level, message, {});
    emit(level, std::string_view(line_, length));
    flush();
  }
  void report_dropped() {
    uint64_t total = log_lines_dropped();
    if (total == reported_dropped_) return;
    auto now = std::chrono::steady_clock::now();
    if (now < next_drop_report_) return;
    next_drop_report_ = now + std::chrono::seconds(1);
    char message[200];
    std::snprintf(message, sizeof(message),
                  "%llu log lines dropped: a thread's log buffer (--log-buffer-bytes=%u) was full (%llu in all)",
                  static_cast<unsigned long long>(total - reported_dropped_), options_.thread_buffer_bytes,
                  static_cast<unsigned long long>(total));
    reported_dropped_ = total;
    write_own(LogLevel::kWarning, message);
  }

  struct Pending {
    uint64_t monotonic_ns = 0;
    LogLevel level = LogLevel::kInfo;
    std::string text;
  };

  const LogOptions options_;
  std::vector<Pending> pending_;  // one pass's lines, merged by time
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // under mutex_
  std::atomic<bool> reopen_{false};
  int file_fd_ = -1;
  std::string batch_;
  char line_[kLineBytesMax];
  uint64_t reported_dropped_ = 0;
  std::chrono::steady_clock::time_point next_drop_report_{};
};

std::mutex g_control_mutex;  // log_start / log_stop / log_reopen (main thread)
std::unique_ptr<LogThread> g_thread;

void emit_line(LogLevel level, std::string_view line) {
  if (g_async.load(std::memory_order_acquire)) {
    if (ThreadRing* ring = thread_ring(); ring != nullptr) {
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      uint64_t monotonic_ns = static_cast<uint64_t>(now.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(now.tv_nsec);
      (void)ring->push(level, monotonic_ns, line);  // a full ring counts the drop
      return;
    }
  }
  // Without a log thread the recent lines take a mutex: not on a shard thread, whose lines are
  // kept only once the log thread runs (the binary starts it before any shard).
  if (t_shard_id < 0) recent().add(line);
  char with_newline[kLineBytesMax + 1];
  std::memcpy(with_newline, line.data(), line.size());
  with_newline[line.size()] = '\n';
  write_all(STDERR_FILENO, with_newline, line.size() + 1);
}

}  // namespace

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

bool parse_log_format(std::string_view text, LogFormat* format) {
  if (text == "text") *format = LogFormat::kText;
  else if (text == "json") *format = LogFormat::kJson;
  else return false;
  return true;
}

void set_log_format(LogFormat format) { g_log_format.store(static_cast<int>(format), std::memory_order_relaxed); }

bool parse_log_destinations(std::string_view spec, LogDestinations* destinations, std::string* error) {
  *destinations = LogDestinations{};
  size_t start = 0;
  bool any = false;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    std::string_view item = spec.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    start = comma == std::string_view::npos ? spec.size() + 1 : comma + 1;
    if (item.empty()) continue;
    any = true;
    if (item == "stderr") {
      destinations->to_stderr = true;
    } else if (item == "syslog") {
      destinations->to_syslog = true;
    } else if (item.starts_with("file:") && item.size() > 5) {
      if (!destinations->file_path.empty()) {
        *error = "only one log file may be given (file:PATH)";
        return false;
      }
      destinations->file_path = std::string(item.substr(5));
    } else {
      *error = "unknown log destination '" + std::string(item) + "' (stderr, file:PATH, syslog)";
      return false;
    }
  }
  if (!any) {
    *error = "no log destination given (stderr, file:PATH, syslog)";
    return false;
  }
  return true;
}

bool log_start(const LogOptions& options, std::string* error) {
  std::lock_guard lock(g_control_mutex);
  COREMQ_ASSERT_MSG(g_thread == nullptr, "log_start called twice");
  uint32_t bytes = 4096;
  while (bytes < options.thread_buffer_bytes && bytes < (1u << 30)) bytes <<= 1;
  {
    std::lock_guard recent_lock(recent().mutex);
    recent().capacity = options.recent_lines;
    recent().lines.clear();
    recent().next = 0;
    recent().count = 0;
  }
  auto thread = std::make_unique<LogThread>(options);
  if (!thread->open(error)) return false;
  g_ring_bytes.store(bytes, std::memory_order_relaxed);
  thread->start();
  g_thread = std::move(thread);
  g_async.store(true, std::memory_order_release);
  return true;
}

void log_reopen() {
  std::lock_guard lock(g_control_mutex);
  if (g_thread != nullptr) g_thread->request_reopen();
}

void log_stop() {
  std::lock_guard lock(g_control_mutex);
  if (g_thread == nullptr) return;
  g_async.store(false, std::memory_order_release);
  g_thread->stop();  // drains every ring first
  g_thread.reset();
}

uint64_t log_lines_dropped() {
  uint64_t total = 0;
  for (auto& slot : g_slots) {
    if (ThreadRing* ring = slot.load(std::memory_order_acquire); ring != nullptr) {
      total += ring->dropped.load(std::memory_order_relaxed);
    }
  }
  return total;
}

std::vector<std::string> recent_log_lines(size_t max) {
  RecentLines& lines = recent();
  std::lock_guard lock(lines.mutex);
  size_t take = std::min(max, lines.count);
  std::vector<std::string> out;
  out.reserve(take);
  for (size_t i = 0; i < take; ++i) {
    size_t index = (lines.next + lines.capacity - take + i) % lines.capacity;
    out.push_back(lines.lines[index]);
  }
  return out;
}

void set_log_level(LogLevel level) { g_log_level.store(static_cast<int>(level), std::memory_order_relaxed); }
void set_log_thread_shard(int shard_id) { t_shard_id = shard_id; }

void log_write(LogLevel level, std::string_view message) { log_write_fields(level, message, {}); }

void log_write_fields(LogLevel level, std::string_view message, std::span<const LogField> fields) {
  char line[kLineBytesMax];
  size_t length = format_line(line, sizeof(line), level, message, fields);
  emit_line(level, std::string_view(line, length));
}

int64_t log_clock_ms() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return int64_t{now.tv_sec} * 1000 + now.tv_nsec / 1'000'000;
}

void log_write_limited(LogLevel level, std::string message, uint64_t suppressed) {
  if (suppressed > 0) absl::StrAppendFormat(&message, " (%u similar lines suppressed)", suppressed);
  log_write(level, message);
}

[[noreturn]] void assert_failed(const char* expression, const char* file, int line, const char* message) {
  std::fprintf(stderr, "coremq: assertion failed: %s at %s:%d%s%s\n", expression, file, line,
               message ? ": " : "", message ? message : "");
  std::fflush(stderr);
  std::abort();
}

}  // namespace coremq::base
