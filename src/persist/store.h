// The durable store (--persistence=rocksdb, docs/PERSISTENCE.md): one RocksDB database, a
// committer thread that writes what the shards changed, and one ShardJournal per shard.
//
// Threads and ownership:
//   - Store: made by BrokerImpl on the controlling thread (open, load), which starts and stops
//     the committer; it outlives every shard thread.
//   - ShardJournal: one per shard, touched only by that shard's thread (after start()). It
//     collects the shard's changes of one loop turn in one rocksdb::WriteBatch and, at the end
//     of the turn, hands it to the committer through a bounded SPSC ring, numbered.
//   - The committer thread writes the batches in order (one write per batch; RocksDB groups
//     them in its log), syncs the log as --fsync says, and answers each shard through a second
//     SPSC ring with the highest batch number now durable, then wakes the shard (as the
//     password checker does). A shard never calls a blocking RocksDB write or an fsync.
//   - A write that fails (disk full) is logged (rate-limited), counted, and retried after a
//     pause, the database closed and opened again (reopen_database()): nothing is answered
//     meanwhile, so what waits on it (PUBACKs, SUBACKs) is not sent and clients see
//     back-pressure; it recovers when space returns.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "base/spsc_ring.h"
#include "coremq/options.h"
#include "persist/journal_slot.h"
#include "persist/records.h"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace coremq::persist {

// A persistent session as stored: its record, its outgoing QoS 1/2 messages in sequence order,
// and the QoS 2 packet ids its client sent that wait for PUBREL.
struct LoadedSession {
  SessionRecord record;
  std::vector<OutgoingRecord> outgoing;
  std::vector<uint16_t> incoming_qos2;
};

// What the store held at start-up, expired records already dropped.
struct LoadedState {
  std::vector<RetainedRecord> retained;
  // By owner shard (owner_shard_of(client_id, shard_count) of the shard count now running).
  std::vector<std::vector<LoadedSession>> sessions_by_shard;
  // Every body an outgoing record names; each is named by sessions of one shard only (load
  // copies a body the shard count now splits between shards, so each key keeps one writer).
  std::vector<BodyRecord> bodies;
  uint64_t sessions = 0;
  uint64_t outgoing_messages = 0;  // queued and in-flight messages of the loaded sessions
  uint64_t expired_dropped = 0;    // sessions, retained and queued messages past their deadline
  uint64_t corrupt_skipped = 0;  // records that failed to decode (each logged)
  // Records of a format-1 store rewritten under format 2 (sessions given a number, outgoing
  // and incoming QoS 2 records keyed by it).
  uint64_t converted = 0;
  int64_t load_ms = 0;
};

// One shard's changes, numbered by batch. Shard thread only.
//
// The open batch keeps its changes as a list until it is submitted, so a key created in it and
// erased before it leaves (a message queued for a persistent session and acknowledged by it
// while the previous batch was being written) costs the store nothing: such a message never
// needed to be durable, its subscriber has it. To give that time, a shard has at most
// PersistenceOptions::batches_in_flight batches with the committer; its open batch grows
// meanwhile (group commit).
class ShardJournal {
 public:
  ~ShardJournal();
  ShardJournal(const ShardJournal&) = delete;
  ShardJournal& operator=(const ShardJournal&) = delete;

  // Changes, in order. create() is put() for a key the store does not hold (a new record).
  void put(std::string_view key, std::string_view value);
  void create(std::string_view key, std::string_view value);
  void erase(std::string_view key);
  void erase_range(std::string_view begin, std::string_view end);
  // The same for the keys the shard writes most (queue entries and bodies), without the hash
  // lookup create() and erase() make to find a record new in the open batch: the caller keeps
  // the JournalSlot create_tracked() fills and passes it to the key's later changes, which
  // update it. Every change of such a key goes through these (a change made by put() or erase()
  // would not be seen by a slot). A null or stale slot writes the change as it comes: a record
  // created and erased in one batch then costs a delete of a key the store never held, as the
  // key-sorted batch keeps only a key's last change.
  void create_tracked(std::string_view key, std::string_view value, JournalSlot* slot);
  void put_tracked(std::string_view key, std::string_view value, JournalSlot* slot);
  void erase_tracked(std::string_view key, JournalSlot* slot);
  // A body id no other body in the store has: this shard's number in the top 16 bits, then a
  // count that starts above every id the store held at load.
  uint64_t next_body_id() { return (uint64_t{shard_} << 48) | ++body_sequence_; }
  // A session number no other session in the store has (SessionRecord::session_number), made
  // the same way: a session keeps it while it is stored, whichever shard owns it later.
  uint64_t next_session_number() { return (uint64_t{shard_} << 48) | ++session_sequence_; }
  bool has_changes() const { return op_count_ > 0 || deferred_; }
  // The shard holds records it writes into the open batch only when the batch leaves (queue
  // entries of persistent sessions: most are acknowledged before, and then never written):
  // the open batch counts as changed, so answers made now wait for it.
  void defer() { deferred_ = true; }
  // A deferred record that was no longer needed when its batch left (counted as elided).
  void note_elided() { ++changes_elided_; }
  // Whether submit() would hand the open batch over now (it has changes and fewer than
  // batches_in_flight of this shard's batches wait): the moment to write deferred records.
  bool ready_to_submit() const;
  // Changes that never reached the store: created and erased in one open batch.
  uint64_t changes_elided() const { return changes_elided_; }
  // Changes dropped as a batch left because a later change of the same key replaced them.
  uint64_t changes_superseded() const { return changes_superseded_; }
  // Changes that reached RocksDB (in batches handed to the committer).
  uint64_t changes_written() const { return changes_written_; }
  // Erases of queue entries and bodies written as part of a range delete (submit()).
  uint64_t erases_coalesced() const { return erases_coalesced_; }

  // The batch number an answer made now depends on: the open batch if it has changes, else the
  // last one submitted. Durable once durable() reaches it.
  uint64_t batch_needed() const { return has_changes() ? next_number_ : next_number_ - 1; }
  uint64_t durable() const { return durable_; }
  bool is_durable(uint64_t batch) const { return batch <= durable_; }

  // End of the shard's turn: hands the open batch to the committer once fewer than
  // batches_in_flight of this shard's batches wait there and its ring has room (a full ring is
  // counted); otherwise it stays open and grows until a later turn.
  void submit();
  // Takes the committer's answers; true when durable() moved.
  bool drain_answers();
  bool answers_ready() const;
  // The open batch waits to be handed over (the shard keeps turning to retry).
  bool submit_pending() const { return has_changes(); }
  uint64_t submits_delayed() const { return submits_delayed_; }

 private:
  friend class Store;
  ShardJournal(class Store& store, uint32_t shard) : store_(store), shard_(shard) {}
  struct Op {
    enum class Kind : uint8_t { kPut, kErase, kEraseRange };
    // Queue, QoS 2 and body keys (17, 11 and 9 bytes) are kept in the op itself, so checking a
    // slot or sorting the batch reads no other memory; longer keys (sessions, retained topics)
    // in long_key.
    static constexpr size_t kShortKeyMax = 24;
    Kind kind = Kind::kPut;
    bool live = true;
    bool created = false;  // create_tracked() (or a put_tracked() that replaced it): new to the store
    uint8_t short_key_size = 0;
    bool key_is_long = false;
    char short_key[kShortKeyMax] = {};
    std::string long_key;
    std::string value;  // kPut: the value; kEraseRange: the range's end
    std::string_view key() const {
      return key_is_long ? std::string_view(long_key) : std::string_view(short_key, short_key_size);
    }
  };
  Store& store_;
  const uint32_t shard_;
  // Appends an op, reusing a slot of an earlier batch (and its strings' capacity), so a turn's
  // changes cost no allocation once the journal has grown to the usual batch.
  Op& next_op(Op::Kind kind, std::string_view key, std::string_view value);
  // The open batch: ops_[0, op_count_).
  std::vector<Op> ops_;
  size_t op_count_ = 0;
  // submit()'s scratch: the live ops' indexes in the order they go into the WriteBatch.
  std::vector<uint32_t> write_order_;
  // The sort's entries: a key's first 24 bytes as three big-endian numbers (zero-padded), so
  // comparisons are integer compares in one array rather than a memcmp through each op (a queue
  // key, 17 bytes, differs from the next one of its session in its last byte).
  struct SortEntry {
    uint64_t words[3] = {};
    uint32_t index = 0;
  };
  std::vector<SortEntry> sort_scratch_;
  // Fills write_order_: each run of ops between range deletes sorted by key (stable), keeping
  // only the last op of each key; returns how many it dropped. See order_for_write().
  uint64_t order_for_write();
  uint64_t changes_superseded_ = 0;
  // Keys created in the open batch (by create(), then maybe put()), by the hash of the key: the
  // index of their last put (whose key is compared, so a hash collision only loses an elision).
  absl::flat_hash_map<uint64_t, uint32_t> created_;
  // The open ops index for a key created in this batch, or -1.
  int64_t created_index(std::string_view key, uint64_t hash) const;
  // Whether slot names an op of the open batch, after its last range delete, that made key as a
  // new record and is still live.
  bool slot_holds_created(const JournalSlot& slot, std::string_view key) const;
  // Ops before this index precede the open batch's last range delete, which covers them: none of
  // them is new to the store any more.
  size_t created_floor_ = 0;
  bool deferred_ = false;
  uint64_t changes_elided_ = 0;
  uint64_t changes_written_ = 0;
  uint64_t erases_coalesced_ = 0;
  // write_order_[at, result): a run of erases of queue (or body) keys of one prefix with
  // consecutive numbers; at itself when write_order_[at] is not such an erase.
  size_t numbered_erase_run_end(size_t at) const;
  uint64_t next_number_ = 1;  // number of the open (or next) batch
  uint64_t durable_ = 0;
  uint64_t submits_delayed_ = 0;
  uint64_t body_sequence_ = 0;     // set by Store::load
  uint64_t session_sequence_ = 0;  // set by Store::load
};

class Store {
 public:
  // Opens (creating) the database under options.data_dir. Null with *error saying why (the
  // directory cannot be made or written, another process holds its lock, the database is
  // corrupt): the broker refuses to start. wake_shard(s) is called by the committer thread
  // after it answered shard s.
  static std::unique_ptr<Store> open(const PersistenceOptions& options, uint32_t shard_count,
                                     std::function<void(uint32_t)> wake_shard, std::string* error);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Controlling thread, before start(): reads every record; drops (and deletes) sessions and
  // retained messages whose deadline passed by now_unix_ms; places sessions by owner shard.
  [[nodiscard]] bool load(int64_t now_unix_ms, LoadedState* state, std::string* error);

  void start();
  // Writes what the shards submitted, then joins the committer (after every shard stopped).
  void stop();

  ShardJournal& journal(uint32_t shard) { return *journals_[shard]; }
  const ShardJournal& journal(uint32_t shard) const { return *journals_[shard]; }
  uint32_t shard_count() const { return static_cast<uint32_t>(journals_.size()); }
  // Any thread: whether live data passed --persistence-max-mb (checked by the committer).
  bool over_size_bound() const { return over_size_bound_.load(std::memory_order_relaxed); }
  uint64_t write_failures() const { return write_failures_.load(std::memory_order_relaxed); }
  uint64_t batches_written() const { return batches_written_.load(std::memory_order_relaxed); }
  uint64_t syncs() const { return syncs_.load(std::memory_order_relaxed); }

  // Tests: a write that fails this many more times (as a full disk would).
  void fail_next_writes_for_test(uint32_t count) { failing_writes_for_test_.store(count); }

 private:
  friend class ShardJournal;
  struct CommitRequest {
    uint64_t number = 0;
    rocksdb::WriteBatch* batch = nullptr;
  };
  struct Lane {
    explicit Lane(size_t capacity) : requests(capacity), answers(capacity) {}
    base::SpscRing<CommitRequest> requests;
    base::SpscRing<uint64_t> answers;  // highest batch number durable
    CommitRequest held;                // committer: taken, its write failed, retried first
    uint64_t written = 0;              // committer: written, maybe not yet synced
    uint64_t answered = 0;             // committer: last answer pushed
    bool answer_pending = false;       // committer: answers ring was full
  };

  Store(const PersistenceOptions& options, uint32_t shard_count, std::function<void(uint32_t)> wake_shard);
  void run();
  // One pass: writes what every lane has; returns whether anything was written.
  bool write_pending(bool* failed);
  bool write_one(rocksdb::WriteBatch& batch);
  bool sync_log();
  void answer(uint32_t shard, uint64_t durable);
  void answer_written();
  void check_size();
  // Committer, after a failed write closed the database: opens it again; false while it cannot.
  bool reopen_database();
  void notify();

  const PersistenceOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::vector<std::unique_ptr<ShardJournal>> journals_;
  std::function<void(uint32_t)> wake_shard_;
  std::thread committer_;
  std::atomic<bool> stopping_{false};
  // The committer sleeps in poll() on this eventfd when every lane is empty; a shard writes it
  // after a push only when sleeping_ says the committer is (about to be) asleep, with the same
  // seq_cst-fence handshake the shards use among themselves.
  int event_fd_ = -1;
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> over_size_bound_{false};
  std::atomic<uint64_t> write_failures_{0};
  std::atomic<uint64_t> batches_written_{0};
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint32_t> failing_writes_for_test_{0};
};

}  // namespace coremq::persist
