// The records coremq keeps in its store (docs/PERSISTENCE.md "Key layout"): their keys and
// their byte encodings. Pure functions, no RocksDB, no I/O: used by shard threads (encoding
// what changed in a turn), by the controlling thread at start-up (decoding what is loaded) and
// by the fuzzer (tests/fuzz/fuzz_persist_records.cc).
//
// Key: one byte naming the record type, then the record's identity (a topic, a client id), so
// records of one type sit together and a load reads each type with one range scan.
// Value: a version byte (kRecordVersion), then the fields, little-endian, strings as a u32
// length and their bytes. A decoder checks every length against what is left and the version
// against what it knows; a record that fails is reported (the loader logs it and skips it),
// never trusted.
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

enum class RecordType : char {
  kMeta = 'M',      // the store's own facts (format version)
  kRetained = 'R',  // R + topic -> RetainedRecord
  kSession = 'S',   // S + client id -> SessionRecord (its subscriptions and will included)
  // A message body that persistent sessions of one shard queued or have in flight, shared by
  // all of them: B + body id (8 bytes, big-endian) -> BodyRecord. Deleted with its last entry.
  kBody = 'B',
  // One QoS 1/2 message of a persistent session, queued or in flight, in the session's order:
  // Q + client id length (2 bytes, big-endian) + client id + sequence (8 bytes, big-endian)
  // -> OutgoingRecord. The length prefix keeps one client's entries contiguous and in
  // sequence order, so a session's entries are one range (deleted with DeleteRange).
  kOutgoing = 'Q',
  // A QoS 2 packet id received from a persistent session's client whose PUBREL has not come:
  // I + client id length (2 bytes) + client id + packet id (2 bytes) -> a version byte.
  kIncomingQos2 = 'I',
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
  std::string client_id;  // from the key
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
std::string outgoing_key(std::string_view client_id, uint64_t sequence);
std::string incoming_qos2_key(std::string_view client_id, uint16_t packet_id);
// The same keys written into *out (replaced), for callers that reuse one buffer.
void body_key_into(uint64_t body_id, std::string* out);
void outgoing_key_into(std::string_view client_id, uint64_t sequence, std::string* out);
void incoming_qos2_key_into(std::string_view client_id, uint16_t packet_id, std::string* out);
// [begin, end) of every key of one client's outgoing (or incoming QoS 2) records.
std::pair<std::string, std::string> outgoing_range(std::string_view client_id);
std::pair<std::string, std::string> incoming_qos2_range(std::string_view client_id);
// Key parsers: false when the key is not of that type's shape.
[[nodiscard]] bool parse_body_key(std::string_view key, uint64_t* body_id);
[[nodiscard]] bool parse_outgoing_key(std::string_view key, std::string* client_id, uint64_t* sequence);
[[nodiscard]] bool parse_incoming_qos2_key(std::string_view key, std::string* client_id, uint16_t* packet_id);
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
[[nodiscard]] bool decode_incoming_qos2(std::string_view key, std::string_view value, std::string* client_id,
                                        uint16_t* packet_id, std::string* error);

}  // namespace coremq::persist
