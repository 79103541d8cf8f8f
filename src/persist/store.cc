// The store, its committer thread and the shards' journals (see store.h for who runs what).
#include "persist/store.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/hash/hash.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "base/assert.h"
#include "base/log.h"
#include "persist/store_logger.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "rocksdb/write_buffer_manager.h"

namespace coremq::persist {

namespace {

constexpr int64_t kRetryPauseMs = 100;
// Reopening the database after a failed write: first after this, then at twice the interval
// each time it fails again, up to the maximum (a reopen replays the log, up to the write buffer).
constexpr int64_t kReopenFirstMs = 200;
constexpr int64_t kReopenIntervalMaxMs = 1600;
// Failed passes (kRetryPauseMs apart) after which a stopping committer gives up what it could
// not write.
constexpr int kFailuresWhileStoppingMax = 20;
constexpr int64_t kSizeCheckIntervalMs = 1000;
constexpr size_t kBatchesPerLanePerPass = 64;

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// ShardJournal (shard thread).

ShardJournal::~ShardJournal() = default;

namespace {
// Past this, a reused op's strings give their memory back after the batch leaves (a large
// payload does not stay allocated in a slot that usually holds small ones).
constexpr size_t kOpBytesKeptMax = 64 * 1024;

// The keys RocksDB inserts with a hint (Store::open): the point keys the shards write most, by
// shape. A range delete's begin key must never be one of them: RocksDB 7.8 shares the hints
// between a memtable's point-key list and its range-deletion list (fixed upstream in 9.x,
// facebook/rocksdb#12558), and a range tombstone inserted with a point key's hint corrupts the
// list. Range deletes begin with a session's 9-byte prefix (outgoing_range, incoming_qos2_range)
// or a one-byte type (the load's format-1 ranges), never a 17-, 11- or 9-byte `B` key.
bool in_hint_domain(std::string_view key) {
  if (key.empty()) return false;
  switch (static_cast<RecordType>(key[0])) {
    case RecordType::kOutgoing:
      return key.size() == 17;
    case RecordType::kIncomingQos2:
      return key.size() == 11;
    case RecordType::kBody:
      return key.size() == 9;
    default:
      return false;
  }
}

class RecordTypeHint : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "coremq.RecordTypeHint"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override { return rocksdb::Slice(key.data(), 1); }
  bool InDomain(const rocksdb::Slice& key) const override {
    return in_hint_domain(std::string_view(key.data(), key.size()));
  }
};

// Erases of this many queue entries (or bodies) with consecutive numbers, or more, go to RocksDB
// as one range delete (ShardJournal::submit).
constexpr size_t kEraseRunMin = 3;

// A queue key (type, session number, sequence: 17 bytes) or a body key (type, id: 9 bytes): the
// length of its fixed prefix and its number; false for any other key.
bool numbered_key(std::string_view key, size_t* prefix_size, uint64_t* number) {
  if (key.size() == 17 && key[0] == static_cast<char>(RecordType::kOutgoing)) {
    *prefix_size = 9;
  } else if (key.size() == 9 && key[0] == static_cast<char>(RecordType::kBody)) {
    *prefix_size = 1;
  } else {
    return false;
  }
  uint64_t value = 0;
  for (size_t i = *prefix_size; i < key.size(); ++i) value = (value << 8) | static_cast<uint8_t>(key[i]);
  *number = value;
  return true;
}

// prefix, then number in 8 big-endian bytes, then `tail` if not empty.
std::string numbered_key_with(std::string_view prefix, uint64_t number, std::string_view tail) {
  std::string key(prefix);
  for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(number >> shift));
  key.append(tail);
  return key;
}

uint64_t key_hash(std::string_view key) { return absl::Hash<absl::string_view>{}(absl::string_view(key.data(), key.size())); }

// The database's options (store open and reopen): the memory bounds of the flags, and RocksDB's
// diagnostics into coremq's log.
rocksdb::Options database_options(const PersistenceOptions& options) {
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.paranoid_checks = true;
  // One memory bound for every memtable; the block cache is charged for it too, so the two
  // flags bound RocksDB's memory together.
  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(size_t{options.cache_mb} << 20);
  db_options.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(size_t{options.write_buffer_mb} << 20, cache);
  db_options.write_buffer_size = std::max<size_t>(size_t{options.write_buffer_mb} << 20 >> 2, 1u << 20);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  db_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Each memtable insert is a skip-list search. Without a hint it starts from the splice of the
  // previous insert only when the key lands right next to it, else from the top levels. The
  // journal writes each batch sorted by key (ShardJournal::order_for_write); a hint per record
  // type (the key's first byte) lets each sorted run move its splice forward a few nodes at a
  // time (RocksDB fixes a hinted splice partially) instead of searching from the top for every
  // key: the committer's CPU per message fell by about a third in the saturated 100-pairs run.
  // Only the queue, QoS 2 and body point keys take a hint (in_hint_domain: never a range
  // delete's key).
  db_options.memtable_insert_with_hint_prefix_extractor = std::make_shared<RecordTypeHint>();
  db_options.max_background_jobs = 2;
  // The committer decides when the log is fsynced (--fsync); RocksDB itself never waits for one.
  db_options.manual_wal_flush = false;
  db_options.keep_log_file_num = 4;
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  // RocksDB's diagnostics go to coremq's log, not to a LOG file on the store's disk (store_logger.h).
  db_options.info_log = make_store_logger();
  return db_options;
}
}  // namespace

ShardJournal::Op& ShardJournal::next_op(Op::Kind kind, std::string_view key, std::string_view value) {
  if (op_count_ == ops_.size()) ops_.emplace_back();
  Op& op = ops_[op_count_++];
  op.kind = kind;
  op.live = true;
  op.created = false;
  op.key_is_long = key.size() > Op::kShortKeyMax;
  if (op.key_is_long) {
    op.long_key.assign(key);
  } else {
    op.short_key_size = static_cast<uint8_t>(key.size());
    std::memcpy(op.short_key, key.data(), key.size());
  }
  op.value.assign(value);
  return op;
}

int64_t ShardJournal::created_index(std::string_view key, uint64_t hash) const {
  auto created = created_.find(hash);
  if (created == created_.end() || ops_[created->second].key() != key) return -1;
  return created->second;
}

void ShardJournal::put(std::string_view key, std::string_view value) {
  uint64_t hash = key_hash(key);
  int64_t index = created_.empty() ? -1 : created_index(key, hash);
  if (index >= 0) {
    // Still new to the store: this put replaces the creating one.
    ops_[static_cast<size_t>(index)].live = false;
    created_[hash] = static_cast<uint32_t>(op_count_);
  }
  next_op(Op::Kind::kPut, key, value);
}

void ShardJournal::create(std::string_view key, std::string_view value) {
  uint64_t hash = key_hash(key);
  COREMQ_ASSERT_MSG(created_index(key, hash) < 0, "a key created twice in one batch");
  // A different key with the same hash keeps its entry: this one is then written as a plain put.
  created_.try_emplace(hash, static_cast<uint32_t>(op_count_));
  next_op(Op::Kind::kPut, key, value);
}

void ShardJournal::erase(std::string_view key) {
  uint64_t hash = key_hash(key);
  int64_t index = created_.empty() ? -1 : created_index(key, hash);
  if (index >= 0) {
    // Created in this batch and gone before it leaves: the store never sees it.
    ops_[static_cast<size_t>(index)].live = false;
    created_.erase(hash);
    ++changes_elided_;
    // The batch keeps a (now empty) entry: answers made meanwhile wait for its number.
    return;
  }
  next_op(Op::Kind::kErase, key, {});
}

bool ShardJournal::slot_holds_created(const JournalSlot& slot, std::string_view key) const {
  if (slot.index == JournalSlot::kNone || slot.index < created_floor_ || slot.index >= op_count_) return false;
  const Op& op = ops_[slot.index];
  return op.live && op.created && op.key() == key;
}

void ShardJournal::create_tracked(std::string_view key, std::string_view value, JournalSlot* slot) {
  next_op(Op::Kind::kPut, key, value).created = true;
  if (slot != nullptr) slot->index = static_cast<uint32_t>(op_count_ - 1);
}

void ShardJournal::put_tracked(std::string_view key, std::string_view value, JournalSlot* slot) {
  // Still new to the store: this put replaces the creating one and is new in its turn.
  bool created = slot != nullptr && slot_holds_created(*slot, key);
  if (created) ops_[slot->index].live = false;
  next_op(Op::Kind::kPut, key, value).created = created;
  if (slot != nullptr) slot->index = created ? static_cast<uint32_t>(op_count_ - 1) : JournalSlot::kNone;
}

void ShardJournal::erase_tracked(std::string_view key, JournalSlot* slot) {
  if (slot != nullptr && slot_holds_created(*slot, key)) {
    // Created in this batch and gone before it leaves: the store never sees it.
    ops_[slot->index].live = false;
    slot->index = JournalSlot::kNone;
    ++changes_elided_;
    return;
  }
  if (slot != nullptr) slot->index = JournalSlot::kNone;
  next_op(Op::Kind::kErase, key, {});
}

void ShardJournal::erase_range(std::string_view begin, std::string_view end) {
  COREMQ_ASSERT_MSG(!in_hint_domain(begin),
                    "a range delete that RocksDB would insert with a point key's hint");
  // Applied in order after what came before; keys created earlier in the batch are covered by
  // it, so they are no longer "new" for a later erase (which then writes a harmless delete).
  created_.clear();
  next_op(Op::Kind::kEraseRange, begin, end);
  created_floor_ = op_count_;
}

// The committer's cost is RocksDB's memtable insert, a skip-list search per key from the splice
// the previous insert left (MemTable's seq_splice_): keys in ascending order find their place
// near the last one, where the journal's order (a body, a queue entry of one session, an
// acknowledgement of another's...) starts each search again from the top levels. So each run of
// point ops is written sorted by key. Reordering ops of different keys inside one WriteBatch
// changes nothing the store ends with (the batch is applied whole, and nothing reads it before
// the next load); ops of one key keep their order, and a key's earlier ops are dropped, its
// last one deciding what the store holds (a queue entry sent and acknowledged in one batch
// costs one delete, not a put and a delete). A range delete is a barrier: it must stay after
// the puts it covers and before those it does not.
uint64_t ShardJournal::order_for_write() {
  write_order_.clear();
  uint64_t superseded = 0;
  auto big_endian = [](std::string_view bytes) {
    uint64_t value = 0;
    for (size_t i = 0; i < 8; ++i)
      value = (value << 8) | (i < bytes.size() ? static_cast<uint8_t>(bytes[i]) : 0);
    return value;
  };
  auto sort_run = [this, &superseded, &big_endian](size_t begin) {
    auto first = write_order_.begin() + static_cast<ptrdiff_t>(begin);
    sort_scratch_.clear();
    for (auto it = first; it != write_order_.end(); ++it) {
      std::string_view key = ops_[*it].key();
      SortEntry entry;
      for (size_t word = 0; word < 3 && word * 8 < key.size(); ++word) entry.words[word] = big_endian(key.substr(word * 8));
      entry.index = *it;
      sort_scratch_.push_back(entry);
    }
    std::sort(sort_scratch_.begin(), sort_scratch_.end(), [this](const SortEntry& a, const SortEntry& b) {
      for (size_t word = 0; word < 3; ++word) {
        if (a.words[word] != b.words[word]) return a.words[word] < b.words[word];
      }
      // Equal in their first 24 bytes (zero-padded): the whole keys decide, then journal order.
      int order = ops_[a.index].key().compare(ops_[b.index].key());
      return order != 0 ? order < 0 : a.index < b.index;
    });
    for (size_t i = 0; i < sort_scratch_.size(); ++i)
      first[static_cast<ptrdiff_t>(i)] = sort_scratch_[i].index;
    // Of each key's ops (now adjacent, in journal order) the last one stays.
    auto kept = first;
    for (auto it = first; it != write_order_.end(); ++it) {
      auto next = it + 1;
      if (next != write_order_.end() && ops_[*next].key() == ops_[*it].key()) {
        ++superseded;
        continue;
      }
      *kept++ = *it;
    }
    write_order_.erase(kept, write_order_.end());
  };
  size_t run_begin = 0;
  for (size_t i = 0; i < op_count_; ++i) {
    const Op& op = ops_[i];
    if (!op.live) continue;
    if (op.kind == Op::Kind::kEraseRange) {
      sort_run(run_begin);
      write_order_.push_back(static_cast<uint32_t>(i));
      run_begin = write_order_.size();
      continue;
    }
    write_order_.push_back(static_cast<uint32_t>(i));
  }
  sort_run(run_begin);
  return superseded;
}

bool ShardJournal::ready_to_submit() const {
  return has_changes() && next_number_ - 1 - durable_ < std::max(store_.options_.batches_in_flight, 1u);
}

void ShardJournal::submit() {
  // Grows until the committer answers. A batch whose changes were all elided (or deferred and
  // then not needed) still leaves, empty: answers made meanwhile wait for its number.
  if (!ready_to_submit()) return;
  Store::Lane& lane = *store_.lanes_[shard_];
  uint64_t superseded = order_for_write();
  auto* batch = new rocksdb::WriteBatch();
  uint64_t coalesced = 0;
  for (size_t at = 0; at < write_order_.size(); ++at) {
    const Op& op = ops_[write_order_[at]];
    rocksdb::Status status;
    if (size_t run_end = numbered_erase_run_end(at); run_end - at >= kEraseRunMin) {
      // Erases of consecutive numbers, every one of them in this batch: one range delete covers
      // exactly those keys (queue and body keys have one length per prefix, so no other key
      // sorts between them). Its begin key sorts just before the first (the previous number's
      // key and one more byte): a key of another length, which RocksDB 7.8 must not take as a
      // hinted point key (in_hint_domain).
      size_t prefix_size = 0;
      uint64_t first = 0;
      uint64_t last = 0;
      numbered_key(op.key(), &prefix_size, &first);
      numbered_key(ops_[write_order_[run_end - 1]].key(), &prefix_size, &last);
      std::string_view prefix = op.key().substr(0, prefix_size);
      status = batch->DeleteRange(numbered_key_with(prefix, first - 1, "\xff"), numbered_key_with(prefix, last + 1, ""));
      COREMQ_ASSERT_MSG(status.ok(), "WriteBatch refused a range delete");
      coalesced += run_end - at;
      at = run_end - 1;
      continue;
    }
    switch (op.kind) {
      case Op::Kind::kPut: status = batch->Put(op.key(), op.value); break;
      case Op::Kind::kErase: status = batch->Delete(op.key()); break;
      case Op::Kind::kEraseRange: status = batch->DeleteRange(op.key(), op.value); break;
    }
    COREMQ_ASSERT_MSG(status.ok(), "WriteBatch refused a change");
  }
  if (!lane.requests.try_push(Store::CommitRequest{next_number_, batch})) {
    // The committer is behind (a slow or failing disk): the batch stays open and takes this
    // turn's and later turns' changes too; what waits on it waits longer.
    delete batch;
    ++submits_delayed_;
    LOG_WARNING_LIMITED("store: the committer is behind, %u batches queued; acknowledgements wait",
                        lane.requests.capacity());
    return;
  }
  changes_superseded_ += superseded;
  changes_written_ += batch->Count();
  erases_coalesced_ += coalesced;
  for (size_t i = 0; i < op_count_; ++i) {
    Op& op = ops_[i];
    if (op.value.capacity() > kOpBytesKeptMax) std::string().swap(op.value);
  }
  op_count_ = 0;
  created_floor_ = 0;
  deferred_ = false;
  // absl's clear() gives a large table's memory back; the next batch, about as large, would grow
  // it again through every doubling (a rehash each). One allocation of the size it reached.
  size_t created_count = created_.size();
  created_.clear();
  created_.reserve(created_count);
  ++next_number_;
  store_.notify();
}

size_t ShardJournal::numbered_erase_run_end(size_t at) const {
  const Op& first = ops_[write_order_[at]];
  size_t prefix_size = 0;
  uint64_t number = 0;
  // Number 0 has no previous number to begin the range with (sequences and body ids start at 1).
  if (first.kind != Op::Kind::kErase || !numbered_key(first.key(), &prefix_size, &number) || number == 0) return at;
  std::string_view prefix = first.key().substr(0, prefix_size);
  size_t end = at + 1;
  for (; end < write_order_.size(); ++end) {
    const Op& next = ops_[write_order_[end]];
    size_t next_prefix_size = 0;
    uint64_t next_number = 0;
    if (next.kind != Op::Kind::kErase || !numbered_key(next.key(), &next_prefix_size, &next_number) ||
        next_prefix_size != prefix_size || next.key().substr(0, prefix_size) != prefix || next_number != number + 1) {
      break;
    }
    number = next_number;
  }
  return end;
}

bool ShardJournal::drain_answers() {
  uint64_t before = durable_;
  store_.lanes_[shard_]->answers.drain([this](uint64_t&& number) { durable_ = std::max(durable_, number); }, 4096);
  COREMQ_ASSERT(durable_ < next_number_);
  return durable_ != before;
}

bool ShardJournal::answers_ready() const { return !store_.lanes_[shard_]->answers.empty(); }

// Store.

Store::Store(const PersistenceOptions& options, uint32_t shard_count, std::function<void(uint32_t)> wake_shard)
    : options_(options), wake_shard_(std::move(wake_shard)) {
  for (uint32_t shard = 0; shard < shard_count; ++shard) {
    lanes_.push_back(std::make_unique<Lane>(options.commit_queue_capacity));
    journals_.push_back(std::unique_ptr<ShardJournal>(new ShardJournal(*this, shard)));
  }
}

Store::~Store() {
  stop();
  // Batches never taken (a start that failed) are freed here.
  for (auto& lane : lanes_) {
    lane->requests.drain([](CommitRequest&& request) { delete request.batch; }, lane->requests.capacity());
    delete lane->held.batch;
  }
  if (event_fd_ >= 0) ::close(event_fd_);
}

std::unique_ptr<Store> Store::open(const PersistenceOptions& options, uint32_t shard_count,
                                   std::function<void(uint32_t)> wake_shard, std::string* error) {
  COREMQ_ASSERT(shard_count > 0);
  const std::string& dir = options.data_dir;
  if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    *error = absl::StrFormat("--data-dir %s: cannot create it: %s", dir, std::strerror(errno));
    return nullptr;
  }
  struct stat info {};
  if (::stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    *error = absl::StrFormat("--data-dir %s: not a directory", dir);
    return nullptr;
  }
  // RocksDB's own message for an unwritable directory names a LOCK or LOG file; say it plainly.
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    *error = absl::StrFormat("--data-dir %s: not writable by this user: %s", dir, std::strerror(errno));
    return nullptr;
  }
  std::unique_ptr<Store> store(new Store(options, shard_count, std::move(wake_shard)));
  store->event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (store->event_fd_ < 0) {
    *error = absl::StrFormat("store: eventfd: %s", std::strerror(errno));
    return nullptr;
  }

  rocksdb::Options db_options = database_options(options);
  rocksdb::DB* db = nullptr;
  rocksdb::Status status = rocksdb::DB::Open(db_options, dir, &db);
  if (!status.ok()) {
    std::string why = status.ToString();
    if (status.IsIOError() && why.find("lock") != std::string::npos) {
      *error = absl::StrFormat("--data-dir %s: the store is in use by another process (%s)", dir, why);
    } else if (status.IsCorruption()) {
      *error = absl::StrFormat("--data-dir %s: the store is corrupt (%s); move it aside to start empty", dir, why);
    } else {
      *error = absl::StrFormat("--data-dir %s: cannot open the store: %s", dir, why);
    }
    return nullptr;
  }
  store->db_.reset(db);
  // The format marker: a later build that changes encodings reads it first. An older format
  // (1) is converted by load(), which then writes the marker.
  std::string meta_key = std::string(key_prefix(RecordType::kMeta)) + "format";
  std::string meta_value;
  status = db->Get(rocksdb::ReadOptions(), meta_key, &meta_value);
  if (status.IsNotFound()) {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    status = db->Put(sync, meta_key, std::string(1, static_cast<char>(kStoreFormat)));
    if (!status.ok()) {
      *error = absl::StrFormat("--data-dir %s: cannot write to the store: %s", dir, status.ToString());
      return nullptr;
    }
  } else if (!status.ok() || meta_value.size() != 1 || static_cast<uint8_t>(meta_value[0]) > kStoreFormat) {
    *error = absl::StrFormat("--data-dir %s: the store was written by a newer coremq (format %u) or is damaged",
                             dir, meta_value.empty() ? 0u : static_cast<uint8_t>(meta_value[0]));
    return nullptr;
  }
  return store;
}

void Store::start() {
  COREMQ_ASSERT(!committer_.joinable());
  committer_ = std::thread([this] { run(); });
}

void Store::stop() {
  if (!committer_.joinable()) return;
  stopping_.store(true, std::memory_order_release);
  uint64_t one = 1;
  [[maybe_unused]] ssize_t written = ::write(event_fd_, &one, sizeof(one));
  committer_.join();
}

void Store::notify() {
  // The producer half of the sleep handshake (see run()).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_relaxed) && sleeping_.exchange(false)) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t written = ::write(event_fd_, &one, sizeof(one));
  }
}

bool Store::write_one(rocksdb::WriteBatch& batch) {
  if (failing_writes_for_test_.load(std::memory_order_relaxed) > 0) {
    failing_writes_for_test_.fetch_sub(1);
    return false;
  }
  if (batch.Count() == 0) return true;  // every change elided: only its number is answered
  rocksdb::WriteOptions write;
  rocksdb::Status status = db_->Write(write, &batch);
  if (status.ok()) return true;
  LOG_WARNING_LIMITED("store: a write failed (%s); acknowledgements that depend on it wait, retrying",
                      status.ToString());
  return false;
}

bool Store::sync_log() {
  if (failing_writes_for_test_.load(std::memory_order_relaxed) > 0 || db_ == nullptr) return false;
  rocksdb::Status status = db_->SyncWAL();
  if (status.ok()) {
    syncs_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  LOG_WARNING_LIMITED("store: fsync of the log failed (%s); acknowledgements wait, retrying", status.ToString());
  return false;
}

bool Store::write_pending(bool* failed) {
  bool wrote = false;
  for (uint32_t shard = 0; shard < lanes_.size(); ++shard) {
    Lane& lane = *lanes_[shard];
    for (size_t taken = 0; taken < kBatchesPerLanePerPass; ++taken) {
      CommitRequest request = lane.held;
      lane.held = CommitRequest{};
      if (request.batch == nullptr && !lane.requests.try_pop(request)) break;
      if (!write_one(*request.batch)) {
        // Kept aside: written again after the pause, before anything behind it.
        lane.held = request;
        write_failures_.fetch_add(1, std::memory_order_relaxed);
        *failed = true;
        return wrote;
      }
      COREMQ_ASSERT(request.number > lane.written);
      lane.written = request.number;
      delete request.batch;
      batches_written_.fetch_add(1, std::memory_order_relaxed);
      wrote = true;
    }
  }
  return wrote;
}

void Store::answer(uint32_t shard, uint64_t durable) {
  Lane& lane = *lanes_[shard];
  if (durable <= lane.answered && !lane.answer_pending) return;
  // A full answers ring: the shard has not drained; the number is pushed on a later pass
  // (answers only grow, so the latest covers every earlier one).
  if (!lane.answers.try_push(uint64_t{durable})) {
    lane.answer_pending = true;
    return;
  }
  lane.answer_pending = false;
  lane.answered = durable;
  if (wake_shard_) wake_shard_(shard);
}

void Store::answer_written() {
  for (uint32_t shard = 0; shard < lanes_.size(); ++shard) {
    if (lanes_[shard]->written > lanes_[shard]->answered || lanes_[shard]->answer_pending) {
      answer(shard, lanes_[shard]->written);
    }
  }
}

void Store::check_size() {
  if (options_.max_store_mb == 0 || db_ == nullptr) return;
  uint64_t sst = 0;
  uint64_t memtables = 0;
  db_->GetIntProperty(rocksdb::DB::Properties::kLiveSstFilesSize, &sst);
  db_->GetIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &memtables);
  bool over = sst + memtables > (uint64_t{options_.max_store_mb} << 20);
  if (over != over_size_bound_.load(std::memory_order_relaxed)) {
    if (over) {
      LOG_WARNING("store: %u MiB live, over --persistence-max-mb=%u: new retained topics and persistent sessions "
                  "are refused",
                  (sst + memtables) >> 20, options_.max_store_mb);
    } else {
      LOG_INFO("store: back under --persistence-max-mb=%u", options_.max_store_mb);
    }
    over_size_bound_.store(over, std::memory_order_relaxed);
  }
}

bool Store::reopen_database() {
  COREMQ_ASSERT(db_ == nullptr);
  // Why close and open rather than DB::Resume(): after a write to its log failed (ENOSPC),
  // RocksDB 7.8's recovery clears the error once space returns but may keep writing to the log
  // whose writer failed (when the memtable it flushes is empty it starts no new log), and that
  // writer refuses every later append (Debian's build, with assertions on, aborts the process).
  // Opening the database again replays the log (a record cut short by the failure ends it; it
  // was never acknowledged), flushes what it held and starts a new log. Found by test_37.
  rocksdb::DB* db = nullptr;
  rocksdb::Status status = rocksdb::DB::Open(database_options(options_), options_.data_dir, &db);
  if (!status.ok()) {
    LOG_WARNING_LIMITED("store: cannot open the store again after a failed write (%s); retrying",
                        status.ToString());
    return false;
  }
  db_.reset(db);
  LOG_WARNING("store: %s opened again after a failed write; writing what waited", options_.data_dir);
  return true;
}

void Store::run() {
  pthread_setname_np(pthread_self(), "coremq-store");
  // Below the shards' priority (PersistenceOptions::committer_nice says why). Raising one's own
  // nice value needs no privilege; if it fails anyway the committer runs at the shards' priority.
  if (options_.committer_nice != 0 &&
      ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), static_cast<int>(options_.committer_nice)) != 0) {
    LOG_WARNING("store: cannot set the committer's nice value to %u: %s", options_.committer_nice,
                std::strerror(errno));
  }
  base::set_log_thread_shard(-1);
  int64_t last_sync_ms = steady_ms();
  int64_t next_size_check_ms = 0;
  bool unsynced = false;
  // A write failed and none has worked since: RocksDB refuses writes until it recovered (a new
  // log once space returns). Its log's writer that failed must not be synced meanwhile: Debian's
  // librocksdb 7.8 is built with assertions on, and SyncWAL() on a writer that saw an error
  // aborts the process (WritableFileWriter::SyncWithoutFlush). Found by test_37 (a full disk).
  bool writes_refused = false;
  // After a failed write the database is closed and opened again (reopen_database() says why),
  // first after kReopenFirstMs, then less and less often while the disk stays full.
  int64_t reopen_interval_ms = kReopenFirstMs;
  int64_t next_reopen_ms = 0;
  int failures_while_stopping = 0;
  for (;;) {
    bool failed = false;
    bool wrote = false;
    if (db_ == nullptr) {
      if (steady_ms() >= next_reopen_ms && reopen_database()) {
        reopen_interval_ms = kReopenFirstMs;
      } else {
        failed = true;
        if (steady_ms() >= next_reopen_ms) {
          // Counted as a failed write: nothing can be written until the store opens again.
          write_failures_.fetch_add(1, std::memory_order_relaxed);
          next_reopen_ms = steady_ms() + reopen_interval_ms;
          reopen_interval_ms = std::min(reopen_interval_ms * 2, kReopenIntervalMaxMs);
        }
      }
    }
    if (db_ != nullptr) wrote = write_pending(&failed);
    unsynced = unsynced || wrote;
    if (failed) {
      writes_refused = true;
    } else if (wrote) {
      writes_refused = false;
    }
    int64_t now = steady_ms();
    switch (options_.fsync) {
      case PersistenceOptions::Fsync::kAlways:
        // Group commit: one fsync for everything this pass wrote, then the answers.
        if (unsynced) {
          if (!writes_refused && sync_log()) {
            unsynced = false;
            answer_written();
          } else {
            failed = true;  // paused and retried below, never answered unsynced
          }
        }
        break;
      case PersistenceOptions::Fsync::kBatch:
        // Answered once in the log (the page cache keeps it across kill -9); fsynced on a timer.
        answer_written();
        if (unsynced && !writes_refused && now - last_sync_ms >= options_.fsync_interval_ms) {
          if (sync_log()) unsynced = false;
          last_sync_ms = now;
        }
        break;
      case PersistenceOptions::Fsync::kNever:
        answer_written();
        unsynced = false;
        break;
    }
    if (now >= next_size_check_ms) {
      check_size();
      next_size_check_ms = now + kSizeCheckIntervalMs;
    }
    if (failed) {
      if (stopping_.load(std::memory_order_acquire) &&
          ++failures_while_stopping >= kFailuresWhileStoppingMax) {
        // Every shard has stopped, so no client waits for these answers any more; retrying
        // longer would keep a broker told to stop running for as long as the disk stays full.
        // What was not written was never acknowledged.
        LOG_WARNING(
            "store: stopping with changes not written (%d writes in a row failed); none of them was "
            "acknowledged",
            kFailuresWhileStoppingMax);
        return;
      }
      // A full disk: close the database (it is opened again above once the pause is over) and
      // retry, in order, what failed.
      if (db_ != nullptr) {
        db_.reset();
        next_reopen_ms = steady_ms() + kReopenFirstMs;
      }
      ::poll(nullptr, 0, static_cast<int>(kRetryPauseMs));
      continue;
    }
    if (wrote) continue;
    bool stopping = stopping_.load(std::memory_order_acquire);
    bool lanes_empty = true;
    for (auto& lane : lanes_) lanes_empty = lanes_empty && lane->requests.empty() && lane->held.batch == nullptr;
    if (stopping && lanes_empty) {
      if (unsynced && !writes_refused) sync_log();
      answer_written();
      return;
    }
    // Sleep until a shard pushes, or the next fsync is due. The consumer half of the handshake:
    // flag, fence, look once more.
    sleeping_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    lanes_empty = true;
    for (auto& lane : lanes_) lanes_empty = lanes_empty && lane->requests.empty() && lane->held.batch == nullptr;
    bool answers_owed = false;
    for (auto& lane : lanes_) answers_owed = answers_owed || lane->answer_pending;
    if (lanes_empty && !stopping) {
      int timeout_ms = -1;
      if (unsynced) timeout_ms = static_cast<int>(std::max<int64_t>(0, options_.fsync_interval_ms - (now - last_sync_ms)));
      if (answers_owed) timeout_ms = timeout_ms < 0 ? 1 : std::min(timeout_ms, 1);
      if (options_.max_store_mb != 0) {
        int until_check = static_cast<int>(std::max<int64_t>(0, next_size_check_ms - now));
        timeout_ms = timeout_ms < 0 ? until_check : std::min(timeout_ms, until_check);
      }
      pollfd fd{event_fd_, POLLIN, 0};
      ::poll(&fd, 1, timeout_ms);
      uint64_t count = 0;
      [[maybe_unused]] ssize_t drained = ::read(event_fd_, &count, sizeof(count));
    }
    sleeping_.store(false, std::memory_order_relaxed);
  }
}

}  // namespace coremq::persist
