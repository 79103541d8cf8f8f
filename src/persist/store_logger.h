// RocksDB's own diagnostics (its "info log") routed into coremq's log instead of a LOG file in
// --data-dir. Any thread: RocksDB calls it from the committer, its flush and compaction threads
// and its SstFileManager's recovery thread.
//
// Why not RocksDB's file logger: on a full disk its LOG file's writer fails once and remembers
// it, and Debian's librocksdb 7.8 (built with assertions on) aborts the process on the next line
// written to it (WritableFileWriter::AssertFalseAndGetStatusForPrevError, reached from
// SstFileManagerImpl::ClearError while it waits for space to return). Found by
// tests/integration/test_37_persistence_full_disk.py. A disk that fills up must cost
// back-pressure, never the broker.
#pragma once

#include <memory>

namespace rocksdb {
class Logger;
}  // namespace rocksdb

namespace coremq::persist {

// A logger that writes RocksDB's warnings and errors as coremq warnings ("rocksdb: ..."),
// rate-limited (a failing disk makes RocksDB repeat itself); lower levels are dropped.
std::shared_ptr<rocksdb::Logger> make_store_logger();

}  // namespace coremq::persist
