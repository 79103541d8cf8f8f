// Log lines: the JSON format, destinations, the log thread (file, reopen after a rename, a full
// thread ring dropping and counting lines) and the recent lines kept for the dashboard.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "base/log.h"

namespace coremq::base {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++count;
  return count;
}

// A scratch directory removed at the end of the test.
struct ScratchDirectory {
  std::string path;
  ScratchDirectory() {
    char name[] = "/tmp/coremq-log-test-XXXXXX";
    path = mkdtemp(name);
  }
  ~ScratchDirectory() { std::filesystem::remove_all(path); }
};

// Waits (bounded) until the log thread has written a line containing `text`.
bool wait_for_recent(const std::string& text) {
  for (int i = 0; i < 500; ++i) {
    for (const std::string& line : recent_log_lines(16)) {
      if (line.find(text) != std::string::npos) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(LogFormatTest, JsonLineEscapesAndCarriesFields) {
  set_log_level(LogLevel::kInfo);
  set_log_format(LogFormat::kJson);
  LogField fields[] = {LogField::string("client_id", "a\"b\\c\nd\x01"), LogField::integer("keep_alive", 60)};
  log_write_fields(LogLevel::kWarning, "client \"x\" connected", fields);
  set_log_format(LogFormat::kText);
  std::vector<std::string> last = recent_log_lines(1);
  ASSERT_EQ(last.size(), 1u);
  std::string line = last[0];
  EXPECT_TRUE(line.starts_with("{\"time\":\"")) << line;
  EXPECT_NE(line.find("\"level\":\"warning\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"message\":\"client \\\"x\\\" connected\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"client_id\":\"a\\\"b\\\\c\\nd\\u0001\""), std::string::npos) << line;
  EXPECT_TRUE(line.ends_with(",\"keep_alive\":60}")) << line;
  EXPECT_EQ(line.find("\"shard\""), std::string::npos) << "not a shard thread: " << line;

  // A shard thread's line, in text, through the log thread (without it a shard thread's lines
  // are not kept in the recent lines: that would take a lock).
  LogOptions options;
  options.destinations = LogDestinations{};
  std::string error;
  ASSERT_TRUE(log_start(options, &error)) << error;
  std::thread shard([&] {
    set_log_thread_shard(3);
    log_write_fields(LogLevel::kInfo, "client connected", fields);
  });
  shard.join();
  ASSERT_TRUE(wait_for_recent("client connected client_id="));
  log_stop();
  line = recent_log_lines(1)[0];
  EXPECT_NE(line.find(" I [shard 3] client connected client_id=\"a\\\"b\\\\c?d?\" keep_alive=60"),
            std::string::npos)
      << line;
}

TEST(LogDestinationsTest, ParsesStderrFileAndSyslog) {
  LogDestinations destinations;
  std::string error;
  ASSERT_TRUE(parse_log_destinations("stderr,file:/var/log/coremq.log,syslog", &destinations, &error))
      << error;
  EXPECT_TRUE(destinations.to_stderr);
  EXPECT_TRUE(destinations.to_syslog);
  EXPECT_EQ(destinations.file_path, "/var/log/coremq.log");
  ASSERT_TRUE(parse_log_destinations("file:/a b", &destinations, &error));
  EXPECT_FALSE(destinations.to_stderr);
  EXPECT_EQ(destinations.file_path, "/a b");
  for (const char* bad : {"", ",", "file:", "stdout", "file:/a,file:/b", "stderr,pigeon"}) {
    EXPECT_FALSE(parse_log_destinations(bad, &destinations, &error)) << bad;
    EXPECT_FALSE(error.empty());
  }
}

TEST(LogThreadTest, FileGetsEveryLineAndIsReopenedAfterARename) {
  ScratchDirectory directory;
  std::string path = directory.path + "/coremq.log";
  LogOptions options;
  options.destinations = LogDestinations{};
  options.destinations.file_path = path;
  options.recent_lines = 8;
  std::string error;
  ASSERT_TRUE(log_start(options, &error)) << error;
  set_log_level(LogLevel::kInfo);
  std::thread other([] {
    for (int i = 0; i < 100; ++i) LOG_INFO("from the other thread %d", i);
  });
  for (int i = 0; i < 100; ++i) LOG_INFO("from this thread %d", i);
  other.join();
  LOG_INFO("before the rename");
  ASSERT_TRUE(wait_for_recent("before the rename"));
  std::filesystem::rename(path, path + ".1");
  log_reopen();
  LOG_INFO("after the rename");
  log_stop();

  std::string rotated = read_file(path + ".1");
  EXPECT_EQ(count_of(rotated, "from the other thread"), 100u);
  EXPECT_EQ(count_of(rotated, "from this thread"), 100u);
  EXPECT_EQ(count_of(rotated, "before the rename"), 1u);
  EXPECT_EQ(count_of(rotated, "after the rename"), 0u);
  std::string fresh = read_file(path);
  EXPECT_EQ(count_of(fresh, "after the rename"), 1u);
  EXPECT_EQ(count_of(fresh, "before the rename"), 0u);

  // The recent lines: at most recent_lines of them, oldest first.
  std::vector<std::string> recent = recent_log_lines(100);
  ASSERT_EQ(recent.size(), 8u);
  EXPECT_NE(recent.back().find("after the rename"), std::string::npos) << recent.back();
  EXPECT_NE(recent[recent.size() - 2].find("before the rename"), std::string::npos);
  EXPECT_EQ(recent_log_lines(2).size(), 2u);
}

TEST(LogThreadTest, FullThreadRingDropsAndCountsInsteadOfBlocking) {
  ScratchDirectory directory;
  std::string path = directory.path + "/coremq.log";
  LogOptions options;
  options.destinations = LogDestinations{};
  options.destinations.file_path = path;
  options.thread_buffer_bytes = 4096;  // about 30 lines
  std::string error;
  ASSERT_TRUE(log_start(options, &error)) << error;
  set_log_level(LogLevel::kInfo);
  constexpr int kLines = 20000;
  uint64_t dropped_before = log_lines_dropped();
  std::chrono::nanoseconds spent{};
  // A fresh thread, so it gets a ring of this size.
  std::thread writer([&] {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kLines; ++i)
      LOG_INFO("flood line %d of a thread that logs far faster than a disk", i);
    spent = std::chrono::steady_clock::now() - start;
  });
  writer.join();
  uint64_t dropped = log_lines_dropped() - dropped_before;
  log_stop();
  std::string text = read_file(path);
  size_t written = count_of(text, "flood line");
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(written + dropped, static_cast<size_t>(kLines));
  EXPECT_NE(text.find("log lines dropped: a thread's log buffer (--log-buffer-bytes=4096) was full"),
            std::string::npos);
  std::printf("async log line on the calling thread: %.0f ns (%d lines, %zu written, %llu dropped)\n",
              static_cast<double>(spent.count()) / kLines, kLines, written,
              static_cast<unsigned long long>(dropped));
}

TEST(LogThreadTest, BadFileIsAnErrorAndLoggingStaysDirect) {
  LogOptions options;
  options.destinations = LogDestinations{};
  options.destinations.file_path = "/nonexistent-directory/coremq.log";
  std::string error;
  EXPECT_FALSE(log_start(options, &error));
  EXPECT_NE(error.find("/nonexistent-directory/coremq.log"), std::string::npos) << error;
  log_stop();  // nothing to stop
  LOG_WARNING("still written directly");
  EXPECT_NE(recent_log_lines(1)[0].find("still written directly"), std::string::npos);
}

TEST(LogRateLimitTest, BurstLetsThatManyLinesASecond) {
  LogRateLimit limit;
  uint64_t suppressed = 0;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limit.admit(1'000, &suppressed, 3));
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(limit.admit(1'500, &suppressed, 3));
  EXPECT_TRUE(limit.admit(2'000, &suppressed, 3));
  EXPECT_EQ(suppressed, 5u);
  EXPECT_TRUE(limit.admit(2'100, &suppressed, 3));
  EXPECT_EQ(suppressed, 0u);
}

}  // namespace
}  // namespace coremq::base
