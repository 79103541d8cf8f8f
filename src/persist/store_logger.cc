// make_store_logger (see store_logger.h). Any thread.
#include "persist/store_logger.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>

#include "base/log.h"
#include "rocksdb/env.h"

namespace coremq::persist {

namespace {

// Longest RocksDB line kept; longer ones are cut (its warnings are a sentence or two).
constexpr size_t kLineBytesMax = 1024;

class StoreLogger final : public rocksdb::Logger {
 public:
  StoreLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}

  void Logv(const char* format, va_list arguments) override {
    Logv(rocksdb::InfoLogLevel::WARN_LEVEL, format, arguments);
  }

  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list arguments) override {
    if (level < GetInfoLogLevel() || level == rocksdb::InfoLogLevel::HEADER_LEVEL) return;
    char line[kLineBytesMax];
    int length = std::vsnprintf(line, sizeof(line), format, arguments);
    if (length < 0) return;
    // RocksDB ends some lines with a newline of its own.
    size_t end = std::min(static_cast<size_t>(length), sizeof(line) - 1);
    while (end > 0 && (line[end - 1] == '\n' || line[end - 1] == ' ')) line[--end] = '\0';
    LOG_WARNING_LIMITED("rocksdb: %s", line);
  }
};

}  // namespace

std::shared_ptr<rocksdb::Logger> make_store_logger() {
  return std::make_shared<StoreLogger>();
}

}  // namespace coremq::persist
