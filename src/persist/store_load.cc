// Store::load: reads every record once at start-up (controlling thread, before any shard runs),
// drops what expired while the broker was down, and groups what is left by the shard that owns
// it under the shard count now running. Also repairs what a crash or an older run can leave:
// records that fail to decode, outgoing messages of sessions that no longer exist, bodies no
// message names, and bodies that sessions of two shards now share (after --threads changed).
// And converts a format-1 store (records.h): sessions get a number, their outgoing and incoming
// QoS 2 records move from client-id keys to number keys, all in the one synced repair write.
#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "base/assert.h"
#include "base/log.h"
#include "persist/store.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"

namespace coremq::persist {

namespace {

// Same definition as broker::owner_shard_of (FNV-1a over the client id), repeated here so the
// store does not depend on the broker module; tests/unit/persist checks they agree.
uint32_t owner_of(std::string_view client_id, uint32_t shard_count) {
  uint32_t hash = 2166136261u;
  for (char c : client_id) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 16777619u;
  }
  return hash % shard_count;
}

constexpr uint64_t kSequenceMask = (uint64_t{1} << 48) - 1;
// Body ids (copies) and session numbers (format-1 sessions) made at load carry this in place
// of a shard number.
constexpr uint64_t kLoadCopyPrefix = uint64_t{0xFFFF} << 48;

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string printable_key(std::string_view key) {
  return absl::CHexEscape(absl::string_view(key.data(), std::min<size_t>(key.size(), 80)));
}

// What one scan of the database found, before it is grouped by shard.
struct Scan {
  absl::flat_hash_map<std::string, LoadedSession> sessions;  // by client id
  absl::flat_hash_map<uint64_t, std::string> client_by_number;
  absl::flat_hash_map<uint64_t, BodyRecord> bodies;
  absl::flat_hash_set<uint64_t> expired_bodies;
  // By session number, each in key (= sequence) order.
  absl::flat_hash_map<uint64_t, std::vector<OutgoingRecord>> outgoing;
  absl::flat_hash_map<uint64_t, std::vector<uint16_t>> incoming_qos2;
  // Format 1: by client id, each in key order.
  absl::flat_hash_map<std::string, std::vector<OutgoingRecord>> legacy_outgoing;
  absl::flat_hash_map<std::string, std::vector<uint16_t>> legacy_incoming_qos2;
  bool legacy_seen = false;
  uint8_t format = 0;  // the marker's value (0: none)
  uint64_t max_body_sequence = 0;
  uint64_t max_session_sequence = 0;
};

}  // namespace

bool Store::load(int64_t now_unix_ms, LoadedState* state, std::string* error) {
  COREMQ_ASSERT(!committer_.joinable());
  int64_t started = steady_ms();
  state->sessions_by_shard.assign(shard_count(), {});
  // Deletions of what expired or cannot be used, and the copies of shared bodies: written
  // (synced) before any shard starts, so every key has one writer from then on.
  rocksdb::WriteBatch repairs;
  Scan scan;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  std::string decode_error;
  auto skip_corrupt = [&](const char* what, std::string_view key) {
    ++state->corrupt_skipped;
    LOG_WARNING_LIMITED("store: %s record '%s' skipped: %s", what, printable_key(key), decode_error);
    repairs.Delete(rocksdb::Slice(key.data(), key.size()));
  };
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    std::string_view value(it->value().data(), it->value().size());
    if (key.empty()) continue;
    switch (static_cast<RecordType>(key[0])) {
      case RecordType::kMeta:
        if (key == "Mformat" && value.size() == 1) scan.format = static_cast<uint8_t>(value[0]);
        break;
      case RecordType::kRetained: {
        RetainedRecord record;
        if (!decode_retained(key, value, &record, &decode_error)) {
          skip_corrupt("retained", key);
          break;
        }
        if (record.expires_at_unix_ms != 0 && record.expires_at_unix_ms <= now_unix_ms) {
          ++state->expired_dropped;
          repairs.Delete(it->key());
          break;
        }
        state->retained.push_back(std::move(record));
        break;
      }
      case RecordType::kSession: {
        LoadedSession session;
        SessionRecord& record = session.record;
        if (!decode_session(key, value, &record, &decode_error)) {
          skip_corrupt("session", key);
          break;
        }
        scan.max_session_sequence =
            std::max(scan.max_session_sequence, record.session_number & kSequenceMask);
        // A session whose client was connected at the crash counts as disconnected now.
        if (record.disconnected_at_unix_ms != 0 && record.expiry_seconds != 0xFFFFFFFF &&
            record.disconnected_at_unix_ms + int64_t{record.expiry_seconds} * 1000 <= now_unix_ms) {
          ++state->expired_dropped;
          repairs.Delete(it->key());  // its outgoing records go as orphans below
          break;
        }
        if (record.session_number != 0 &&
            !scan.client_by_number.try_emplace(record.session_number, record.client_id).second) {
          // Two sessions with one number (a damaged store): the records under it go to the
          // first; this one gets a new number below and loses them.
          ++state->corrupt_skipped;
          LOG_WARNING_LIMITED("store: session '%s' has the number of another session; given a new one",
                              record.client_id);
          record.session_number = 0;
        }
        std::string client_id = record.client_id;
        scan.sessions.emplace(std::move(client_id), std::move(session));
        break;
      }
      case RecordType::kBody: {
        BodyRecord record;
        if (!decode_body(key, value, &record, &decode_error)) {
          skip_corrupt("message body", key);
          break;
        }
        scan.max_body_sequence = std::max(scan.max_body_sequence, record.id & kSequenceMask);
        if (record.expires_at_unix_ms != 0 && record.expires_at_unix_ms <= now_unix_ms) {
          scan.expired_bodies.insert(record.id);
          repairs.Delete(it->key());
          break;
        }
        uint64_t id = record.id;
        scan.bodies.emplace(id, std::move(record));
        break;
      }
      case RecordType::kOutgoing: {
        OutgoingRecord record;
        if (!decode_outgoing(key, value, &record, &decode_error)) {
          skip_corrupt("outgoing message", key);
          break;
        }
        scan.max_session_sequence =
            std::max(scan.max_session_sequence, record.session_number & kSequenceMask);
        uint64_t number = record.session_number;
        scan.outgoing[number].push_back(std::move(record));
        break;
      }
      case RecordType::kIncomingQos2: {
        uint64_t number = 0;
        uint16_t packet_id = 0;
        if (!decode_incoming_qos2(key, value, &number, &packet_id, &decode_error)) {
          skip_corrupt("incoming QoS 2", key);
          break;
        }
        scan.max_session_sequence = std::max(scan.max_session_sequence, number & kSequenceMask);
        scan.incoming_qos2[number].push_back(packet_id);
        break;
      }
      case RecordType::kLegacyOutgoing: {
        OutgoingRecord record;
        std::string client_id;
        scan.legacy_seen = true;
        if (!decode_legacy_outgoing(key, value, &record, &client_id, &decode_error)) {
          skip_corrupt("format-1 outgoing message", key);
          break;
        }
        scan.legacy_outgoing[client_id].push_back(std::move(record));
        break;
      }
      case RecordType::kLegacyIncomingQos2: {
        std::string client_id;
        uint16_t packet_id = 0;
        scan.legacy_seen = true;
        if (!decode_legacy_incoming_qos2(key, value, &client_id, &packet_id, &decode_error)) {
          skip_corrupt("format-1 incoming QoS 2", key);
          break;
        }
        scan.legacy_incoming_qos2[client_id].push_back(packet_id);
        break;
      }
      default:
        decode_error = "unknown record type";
        skip_corrupt("unknown", key);
        break;
    }
  }
  if (!it->status().ok()) {
    *error = absl::StrFormat("--data-dir %s: reading the store failed: %s", options_.data_dir,
                             it->status().ToString());
    return false;
  }
  it.reset();

  // Format-1 sessions (no number yet) get one, and their record is rewritten with it.
  uint64_t session_sequence = scan.max_session_sequence;
  std::string encoded;
  for (auto& [client_id, session] : scan.sessions) {
    SessionRecord& record = session.record;
    if (record.session_number != 0) continue;
    record.session_number = kLoadCopyPrefix | ++session_sequence;
    scan.client_by_number.emplace(record.session_number, client_id);
    encode_session(record, &encoded);
    repairs.Put(session_key(client_id), encoded);
    ++state->converted;
  }

  // Outgoing messages, attached to their sessions. A body is kept under its id for the first
  // shard that names it; any other shard gets its own copy (a new id), so each body key keeps
  // one writer and one shard's reference count decides when it is deleted.
  absl::flat_hash_map<uint64_t, uint32_t> body_owner;
  absl::flat_hash_map<std::pair<uint64_t, uint32_t>, uint64_t> copy_for_shard;  // (old id, shard) -> new id
  uint64_t body_sequence = scan.max_body_sequence;
  // rekey: format-1 entries, written again under the session's number (their old keys go with
  // the format-1 ranges below).
  auto attach = [&](const std::string& client_id, LoadedSession& session,
                    std::vector<OutgoingRecord>& entries, bool rekey) {
    uint64_t number = session.record.session_number;
    uint32_t shard = owner_of(client_id, shard_count());
    for (OutgoingRecord& entry : entries) {
      entry.session_number = number;
      bool rewrite = rekey;
      if (entry.state != OutgoingState::kPubrelSent) {
        auto body = scan.bodies.find(entry.body_id);
        if (body == scan.bodies.end()) {
          if (scan.expired_bodies.contains(entry.body_id)) {
            ++state->expired_dropped;
          } else {
            ++state->corrupt_skipped;
            LOG_WARNING_LIMITED("store: queued message %u of client '%s' names a missing body: skipped",
                                entry.sequence, client_id);
          }
          if (!rekey) repairs.Delete(outgoing_key(number, entry.sequence));
          continue;
        }
        auto [owner, first] = body_owner.emplace(entry.body_id, shard);
        if (!first && owner->second != shard) {
          auto [copy, made] = copy_for_shard.emplace(std::make_pair(entry.body_id, shard), 0);
          if (made) {
            BodyRecord copied = body->second;
            copied.id = kLoadCopyPrefix | ++body_sequence;
            copy->second = copied.id;
            encode_body(copied, &encoded);
            repairs.Put(body_key(copied.id), encoded);
            body_owner.emplace(copied.id, shard);
            scan.bodies.emplace(copied.id, std::move(copied));
          }
          entry.body_id = copy->second;
          rewrite = true;
        }
      }
      if (rewrite) {
        encode_outgoing(entry, &encoded);
        repairs.Put(outgoing_key(number, entry.sequence), encoded);
        if (rekey) ++state->converted;
      }
      session.outgoing.push_back(std::move(entry));
      ++state->outgoing_messages;
    }
  };
  for (auto& [number, entries] : scan.outgoing) {
    auto client = scan.client_by_number.find(number);
    if (client == scan.client_by_number.end()) {
      // The session expired, or ended without its range delete reaching the disk.
      auto [begin, end] = outgoing_range(number);
      repairs.DeleteRange(begin, end);
      continue;
    }
    attach(client->second, scan.sessions.at(client->second), entries, /*rekey=*/false);
  }
  for (auto& [client_id, entries] : scan.legacy_outgoing) {
    auto session = scan.sessions.find(client_id);
    if (session == scan.sessions.end()) continue;  // an orphan: its range goes below
    attach(client_id, session->second, entries, /*rekey=*/true);
  }
  for (auto& [number, packet_ids] : scan.incoming_qos2) {
    auto client = scan.client_by_number.find(number);
    if (client == scan.client_by_number.end()) {
      auto [begin, end] = incoming_qos2_range(number);
      repairs.DeleteRange(begin, end);
      continue;
    }
    std::vector<uint16_t>& ids = scan.sessions.at(client->second).incoming_qos2;
    ids.insert(ids.end(), packet_ids.begin(), packet_ids.end());
  }
  for (auto& [client_id, packet_ids] : scan.legacy_incoming_qos2) {
    auto session = scan.sessions.find(client_id);
    if (session == scan.sessions.end()) continue;
    for (uint16_t packet_id : packet_ids) {
      repairs.Put(incoming_qos2_key(session->second.record.session_number, packet_id), incoming_qos2_value());
      session->second.incoming_qos2.push_back(packet_id);
      ++state->converted;
    }
  }
  if (scan.legacy_seen) {
    // Every format-1 key (converted above, or an orphan): Q... and I... up to the next letter.
    repairs.DeleteRange(key_prefix(RecordType::kLegacyOutgoing), "R");
    repairs.DeleteRange(key_prefix(RecordType::kLegacyIncomingQos2), "J");
    // A session with records under both layouts (not written by any build): one order.
    for (auto& [client_id, session] : scan.sessions) {
      std::stable_sort(
          session.outgoing.begin(), session.outgoing.end(),
          [](const OutgoingRecord& a, const OutgoingRecord& b) { return a.sequence < b.sequence; });
    }
  }
  if (scan.format < kStoreFormat) {
    repairs.Put("Mformat", std::string(1, static_cast<char>(kStoreFormat)));
  }
  // Bodies no message names any more (their last entry's delete reached the disk first).
  for (auto& [id, body] : scan.bodies) {
    if (!body_owner.contains(id)) {
      repairs.Delete(body_key(id));
      continue;
    }
    state->bodies.push_back(std::move(body));
  }
  for (auto& [client_id, session] : scan.sessions) {
    ++state->sessions;
    state->sessions_by_shard[owner_of(client_id, shard_count())].push_back(std::move(session));
  }
  for (auto& journal : journals_) {
    journal->body_sequence_ = body_sequence;
    journal->session_sequence_ = session_sequence;
  }

  if (repairs.Count() > 0) {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    rocksdb::Status status = db_->Write(sync, &repairs);
    if (!status.ok()) {
      *error = absl::StrFormat("--data-dir %s: cannot write to the store: %s", options_.data_dir, status.ToString());
      return false;
    }
  }
  if (state->converted > 0) {
    LOG_INFO(
        "store: converted %u records of a format-1 store (outgoing and incoming QoS 2 records keyed by "
        "client id) to format %u",
        state->converted, kStoreFormat);
  }
  state->load_ms = steady_ms() - started;
  return true;
}

}  // namespace coremq::persist
