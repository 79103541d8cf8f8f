// The records coremq keeps in its store (docs/PERSISTENCE.md "Key layout"): their keys and
// their byte encodings. Pure functions, no RocksDB, no I/O: used by shard threads (encoding
// what changed in a turn), by the controlling thread at start-up (decoding what is loaded) and
// by the fuzzer (tests/fuzz/fuzz_persist_records.cc).
//
// Key: one byte naming the record type, then the record's identity (a topic, a client id, a
// session number), so records of one type sit together and a load reads each type with one
// range scan.
// Value: a version byte (kRecordVersion; a session record kSessionRecordVersion), then the
// fields, little-endian, strings as a u32 length and their bytes. A decoder checks every length
// against what is left and the version against what it knows; a record that fails is reported
// (the loader logs it and skips it), never trusted.
//
// Store formats (the `Mformat` marker): 1 keyed a session's outgoing and incoming QoS 2 records
// by its client id (`Q`/`I` + length + client id + ...); 2 keys them by the session's number
// (`q`/`i` + 8 bytes + ...), so the keys RocksDB sorts on every insert are short and differ
// early. A load converts format-1 records (kept here as the legacy keys) and writes the marker;
// a build that knows only format 1 refuses a format-2 store.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coremq::persist {

inline constexpr uint8_t kRecordVersion = 1;
// Version 2 adds the session number (version 1: none, a format-1 store).
inline constexpr uint8_t kSessionRecordVersion = 2;
// The store's format (the `Mformat` marker).
inline constexpr uint8_t kStoreFormat = 2;

enum class RecordType : char {
  kMeta = 'M',      // the store's own facts (format version)
  kRetained = 'R',  // R + topic -> RetainedRecord
  kSession = 'S',   // S + client id -> SessionRecord (its subscriptions and will included)
  // A message body that persistent sessions of one shard queued or have in flight, shared by
  // all of them: B + body id (8 bytes, big-endian) -> BodyRecord. Deleted with its last entry.
  kBody = 'B',
  // One QoS 1/2 message of a persistent session, queued or in flight, in the session's order:
  // q + session number (8 bytes, big-endian) + sequence (8 bytes, big-endian) -> OutgoingRecord.
  // One session's entries are contiguous and in sequence order, so they are one range (deleted
  // with DeleteRange). The number, not the client id: 17 bytes that differ from the 9th on,
  // where client ids of one fleet share their first tens of bytes, and every key is compared
  // several times per memtable insert.
  kOutgoing = 'q',
  // A QoS 2 packet id received from a persistent session's client whose PUBREL has not come:
  // i + session number (8 bytes) + packet id (2 bytes) -> a version byte.
  kIncomingQos2 = 'i',
  // Format 1 (read at load and converted, never written): the same records keyed by client id,
  // Q/I + client id length (2 bytes, big-endian) + client id + sequence (8) / packet id (2).
  kLegacyOutgoing = 'Q',
  kLegacyIncomingQos2 = 'I',
};

// Times in records are wall-clock Unix milliseconds (monotonic time does not survive a reboot).
struct RetainedRecord {
  std::string topic;
  std::string payload;
  std::string property_bytes;  // MQTT 5 properties forwarded to subscribers, encoded
  uint8_t qos = 0;
  uint64_t stamp = 0;               // RetainedStore's Lamport stamp (orders updates of one topic)
  int64_t expires_at_unix_ms = 0;   // 0: never
};

struct SubscriptionRecord {
  std::string filter;  // "$share/group/filter" for a shared subscription
  uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;
  uint32_t identifier = 0;  // 0: none
};

struct WillRecord {
  std::string topic;
  std::string payload;
  std::string property_bytes;
  uint32_t message_expiry_seconds = 0;  // 0: none
  uint8_t qos = 0;
  bool retain = false;
};

struct SessionRecord {
  std::string client_id;
  // The number its outgoing and incoming QoS 2 keys start with, unique in the store: the shard
  // that first stored the session in the top 16 bits, then a count (ShardJournal). 0 only in a
  // format-1 record (which the load gives a number).
  uint64_t session_number = 0;
  uint32_t expiry_seconds = 0;  // kSessionNeverExpires (0xFFFFFFFF): never
  uint32_t will_delay_seconds = 0;
  // When the client's connection ended; 0 while it was connected when the record was written
  // (after a crash the session counts as disconnected at the restart).
  int64_t disconnected_at_unix_ms = 0;
  std::optional<WillRecord> will;
  std::vector<SubscriptionRecord> subscriptions;
};

// Where an outgoing message of a persistent session stands.
enum class OutgoingState : uint8_t {
  kQueued = 0,       // waiting for the client (offline, or behind a full in-flight window)
  kPublishSent = 1,  // PUBLISH sent with packet_id, no PUBACK/PUBREC yet: resent with DUP
  kPubrelSent = 2,   // QoS 2: PUBREC came, PUBREL sent, no PUBCOMP yet: PUBREL resent; no body
};

struct BodyRecord {
  uint64_t id = 0;  // from the key
  std::string topic;
  std::string payload;
  std::string property_bytes;  // MQTT 5 properties forwarded to subscribers, encoded
  uint8_t qos = 0;
  bool retain = false;
  int64_t expires_at_unix_ms = 0;  // 0: never
};

struct OutgoingRecord {
  uint64_t session_number = 0;  // from the key
  uint64_t sequence = 0;  // from the key; orders one session's entries
  uint64_t body_id = 0;   // 0 exactly in kPubrelSent
  OutgoingState state = OutgoingState::kQueued;
  uint16_t packet_id = 0;  // 0 exactly in kQueued
  uint8_t qos = 1;         // 1 or 2: QoS 0 is never stored
  bool retain_flag = false;
  std::vector<uint32_t> subscription_ids;
  std::string shared_group;  // "group/filter" it came through; empty for ordinary subscriptions
};

// Keys.
std::string retained_key(std::string_view topic);
std::string session_key(std::string_view client_id);
std::string body_key(uint64_t body_id);
std::string outgoing_key(uint64_t session_number, uint64_t sequence);
std::string incoming_qos2_key(uint64_t session_number, uint16_t packet_id);
// The same keys written into *out (replaced), for callers that reuse one buffer.
void body_key_into(uint64_t body_id, std::string* out);
void outgoing_key_into(uint64_t session_number, uint64_t sequence, std::string* out);
void incoming_qos2_key_into(uint64_t session_number, uint16_t packet_id, std::string* out);
// [begin, end) of every key of one session's outgoing (or incoming QoS 2) records.
std::pair<std::string, std::string> outgoing_range(uint64_t session_number);
std::pair<std::string, std::string> incoming_qos2_range(uint64_t session_number);
// Key parsers: false when the key is not of that type's shape (or names session number 0).
[[nodiscard]] bool parse_body_key(std::string_view key, uint64_t* body_id);
[[nodiscard]] bool parse_outgoing_key(std::string_view key, uint64_t* session_number, uint64_t* sequence);
[[nodiscard]] bool parse_incoming_qos2_key(std::string_view key, uint64_t* session_number,
                                           uint16_t* packet_id);
// Format 1's keys (tests and the fuzzer write them; the load reads and converts them).
std::string legacy_outgoing_key(std::string_view client_id, uint64_t sequence);
std::string legacy_incoming_qos2_key(std::string_view client_id, uint16_t packet_id);
[[nodiscard]] bool parse_legacy_outgoing_key(std::string_view key, std::string* client_id,
                                             uint64_t* sequence);
[[nodiscard]] bool parse_legacy_incoming_qos2_key(std::string_view key, std::string* client_id,
                                                  uint16_t* packet_id);
// The one-byte prefix every key of a type starts with (for range scans).
std::string_view key_prefix(RecordType type);

// Encodings: `out` is replaced.
void encode_retained(const RetainedRecord& record, std::string* out);
void encode_session(const SessionRecord& record, std::string* out);
void encode_body(const BodyRecord& record, std::string* out);
void encode_outgoing(const OutgoingRecord& record, std::string* out);
// The same encodings from their fields, for a shard that has them in its own structures (no
// record to fill, so no copy of a payload or a list).
void encode_body_fields(std::string_view topic, std::string_view payload, std::string_view property_bytes, uint8_t qos,
                        bool retain, int64_t expires_at_unix_ms, std::string* out);
void encode_outgoing_fields(OutgoingState state, uint64_t body_id, uint16_t packet_id, uint8_t qos, bool retain_flag,
                            std::span<const uint32_t> subscription_ids, std::string_view shared_group,
                            std::string* out);
// The value of an incoming QoS 2 record (its facts are all in the key).
std::string_view incoming_qos2_value();

// Decoders: false with *error saying what is wrong (a truncated field, an unknown version,
// bytes left over, a value out of range); *record is then unspecified. `key` is the record's
// key, whose identity part must match what the value says.
[[nodiscard]] bool decode_retained(std::string_view key, std::string_view value, RetainedRecord* record,
                                   std::string* error);
[[nodiscard]] bool decode_session(std::string_view key, std::string_view value, SessionRecord* record,
                                  std::string* error);
[[nodiscard]] bool decode_body(std::string_view key, std::string_view value, BodyRecord* record, std::string* error);
[[nodiscard]] bool decode_outgoing(std::string_view key, std::string_view value, OutgoingRecord* record,
                                   std::string* error);
[[nodiscard]] bool decode_incoming_qos2(std::string_view key, std::string_view value,
                                        uint64_t* session_number, uint16_t* packet_id, std::string* error);
// Format 1 (the value encodings are the same; *record's session_number is left 0).
[[nodiscard]] bool decode_legacy_outgoing(std::string_view key, std::string_view value,
                                          OutgoingRecord* record, std::string* client_id, std::string* error);
[[nodiscard]] bool decode_legacy_incoming_qos2(std::string_view key, std::string_view value,
                                               std::string* client_id, uint16_t* packet_id,
                                               std::string* error);

}  // namespace coremq::persist
