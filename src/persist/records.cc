// Record keys and encodings (see records.h). The identity (topic, client id) is in the key
// only; the value holds the rest. Any thread.
#include "persist/records.h"

#include <cstring>

#include "absl/strings/str_format.h"
#include "base/assert.h"

namespace coremq::persist {

namespace {

// Bounds that no honest record passes (MQTT's own limits), so a corrupt length cannot make
// the loader allocate gigabytes.
constexpr uint32_t kStringBytesMax = 256u * 1024 * 1024;  // an MQTT packet's largest size
constexpr uint32_t kSubscriptionsMax = 1u << 20;
constexpr uint8_t kSessionHasWill = 1;
constexpr uint32_t kSubscriptionIdsMax = 1u << 16;
constexpr uint32_t kSubscriptionIdentifierMax = 268'435'455;

// One append of the bytes (a push_back each would check the capacity each time: keys are made
// twice per message a persistent session takes).
void append_big_endian(std::string* key, uint64_t value, int bytes) {
  char buffer[8];
  for (int i = 0; i < bytes; ++i) buffer[i] = static_cast<char>(value >> (8 * (bytes - 1 - i)));
  key->append(buffer, static_cast<size_t>(bytes));
}

uint64_t read_big_endian(std::string_view bytes) {
  uint64_t value = 0;
  for (char c : bytes) value = (value << 8) | static_cast<uint8_t>(c);
  return value;
}

// Type byte, client id length (2 bytes), client id: the start of one client's keys of a type.
void client_prefix_into(RecordType type, std::string_view client_id, std::string* key) {
  COREMQ_ASSERT(client_id.size() <= 0xFFFF);
  key->clear();
  key->push_back(static_cast<char>(type));
  append_big_endian(key, client_id.size(), 2);
  key->append(client_id);
}

// Type byte, session number (8 bytes): the start of one session's keys of a type.
void number_prefix_into(RecordType type, uint64_t session_number, std::string* key) {
  COREMQ_ASSERT(session_number != 0);
  key->clear();
  key->push_back(static_cast<char>(type));
  append_big_endian(key, session_number, 8);
}

// Splits a number-keyed key into its session number and its suffix of `suffix_bytes`.
bool parse_number_key(std::string_view key, RecordType type, size_t suffix_bytes, uint64_t* session_number,
                      uint64_t* suffix) {
  if (key.size() != 9 + suffix_bytes || key[0] != static_cast<char>(type)) return false;
  *session_number = read_big_endian(key.substr(1, 8));
  *suffix = read_big_endian(key.substr(9));
  return *session_number != 0;
}

// Splits a client-keyed (format 1) key into its client id and its suffix of `suffix_bytes`.
bool parse_client_key(std::string_view key, RecordType type, size_t suffix_bytes, std::string* client_id,
                      uint64_t* suffix) {
  if (key.size() < 3 || key[0] != static_cast<char>(type)) return false;
  size_t length = read_big_endian(key.substr(1, 2));
  if (length == 0 || key.size() != 3 + length + suffix_bytes) return false;
  client_id->assign(key.substr(3, length));
  *suffix = read_big_endian(key.substr(3 + length));
  return true;
}

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) { out_->clear(); }
  void u8(uint8_t value) { out_->push_back(static_cast<char>(value)); }
  void u32(uint32_t value) { little_endian(value, 4); }
  void u64(uint64_t value) { little_endian(value, 8); }
  void bytes(std::string_view value) {
    u32(static_cast<uint32_t>(value.size()));
    out_->append(value);
  }

 private:
  void little_endian(uint64_t value, int bytes) {
    char buffer[8];
    for (int i = 0; i < bytes; ++i) buffer[i] = static_cast<char>(value >> (8 * i));
    out_->append(buffer, static_cast<size_t>(bytes));
  }
  std::string* out_;
};

// Every read checks what is left; the first failure sticks and names the field.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u8(const char* field, uint8_t* value) {
    if (!take(field, 1)) return false;
    *value = static_cast<uint8_t>(in_[position_ - 1]);
    return true;
  }
  bool u32(const char* field, uint32_t* value) {
    if (!take(field, 4)) return false;
    uint32_t result = 0;
    for (int i = 3; i >= 0; --i) result = (result << 8) | static_cast<uint8_t>(in_[position_ - 4 + i]);
    *value = result;
    return true;
  }
  bool u64(const char* field, uint64_t* value) {
    if (!take(field, 8)) return false;
    uint64_t result = 0;
    for (int i = 7; i >= 0; --i) result = (result << 8) | static_cast<uint8_t>(in_[position_ - 8 + i]);
    *value = result;
    return true;
  }
  bool i64(const char* field, int64_t* value) {
    uint64_t raw = 0;
    if (!u64(field, &raw)) return false;
    *value = static_cast<int64_t>(raw);
    return true;
  }
  bool bytes(const char* field, std::string* value) {
    uint32_t size = 0;
    if (!u32(field, &size)) return false;
    if (size > kStringBytesMax) return fail(field, "length over the bound");
    if (!take(field, size)) return false;
    value->assign(in_.substr(position_ - size, size));
    return true;
  }
  bool version() {
    uint8_t version = 0;
    return versions(kRecordVersion, kRecordVersion, &version);
  }
  // A version byte in [oldest, newest], into *version.
  bool versions(uint8_t oldest, uint8_t newest, uint8_t* version) {
    if (!u8("version", version)) return false;
    if (*version < oldest || *version > newest) {
      error_ =
          absl::StrFormat("unknown record version %u (this build reads %u to %u)", *version, oldest, newest);
      return false;
    }
    return true;
  }
  bool finish() {
    if (position_ != in_.size()) {
      error_ = absl::StrFormat("%u bytes after the last field", in_.size() - position_);
      return false;
    }
    return true;
  }
  bool fail(const char* field, const char* why) {
    if (error_.empty()) error_ = absl::StrFormat("%s: %s", field, why);
    return false;
  }
  const std::string& error() const { return error_; }

 private:
  bool take(const char* field, size_t count) {
    if (in_.size() - position_ < count) return fail(field, "truncated");
    position_ += count;
    return true;
  }
  std::string_view in_;
  size_t position_ = 0;
  std::string error_;
};

bool identity_from_key(std::string_view key, RecordType type, std::string* identity, std::string* error) {
  if (key.empty() || key[0] != static_cast<char>(type)) {
    *error = "key of another record type";
    return false;
  }
  identity->assign(key.substr(1));
  return true;
}

bool reader_error(const Reader& reader, std::string* error) {
  *error = reader.error().empty() ? "invalid record" : reader.error();
  return false;
}

}  // namespace

std::string_view key_prefix(RecordType type) {
  switch (type) {
    case RecordType::kMeta:
      return "M";
    case RecordType::kRetained:
      return "R";
    case RecordType::kSession:
      return "S";
    case RecordType::kBody:
      return "B";
    case RecordType::kOutgoing:
      return "q";
    case RecordType::kIncomingQos2:
      return "i";
    case RecordType::kLegacyOutgoing:
      return "Q";
    case RecordType::kLegacyIncomingQos2:
      return "I";
  }
  return "?";
}

std::string retained_key(std::string_view topic) {
  std::string key(key_prefix(RecordType::kRetained));
  key.append(topic);
  return key;
}

std::string session_key(std::string_view client_id) {
  std::string key(key_prefix(RecordType::kSession));
  key.append(client_id);
  return key;
}

void body_key_into(uint64_t body_id, std::string* out) {
  out->clear();
  out->push_back(static_cast<char>(RecordType::kBody));
  append_big_endian(out, body_id, 8);
}

void outgoing_key_into(uint64_t session_number, uint64_t sequence, std::string* out) {
  number_prefix_into(RecordType::kOutgoing, session_number, out);
  append_big_endian(out, sequence, 8);
}

void incoming_qos2_key_into(uint64_t session_number, uint16_t packet_id, std::string* out) {
  number_prefix_into(RecordType::kIncomingQos2, session_number, out);
  append_big_endian(out, packet_id, 2);
}

std::string body_key(uint64_t body_id) {
  std::string key;
  body_key_into(body_id, &key);
  return key;
}

std::string outgoing_key(uint64_t session_number, uint64_t sequence) {
  std::string key;
  outgoing_key_into(session_number, sequence, &key);
  return key;
}

std::string incoming_qos2_key(uint64_t session_number, uint16_t packet_id) {
  std::string key;
  incoming_qos2_key_into(session_number, packet_id, &key);
  return key;
}

std::string legacy_outgoing_key(std::string_view client_id, uint64_t sequence) {
  std::string key;
  client_prefix_into(RecordType::kLegacyOutgoing, client_id, &key);
  append_big_endian(&key, sequence, 8);
  return key;
}

std::string legacy_incoming_qos2_key(std::string_view client_id, uint16_t packet_id) {
  std::string key;
  client_prefix_into(RecordType::kLegacyIncomingQos2, client_id, &key);
  append_big_endian(&key, packet_id, 2);
  return key;
}

namespace {
// Every key of the session sorts before prefix + 0xFF repeated one byte longer than its suffix.
std::pair<std::string, std::string> number_range(RecordType type, uint64_t session_number,
                                                 size_t suffix_bytes) {
  std::string begin;
  number_prefix_into(type, session_number, &begin);
  std::string end = begin;
  end.append(suffix_bytes + 1, '\xff');
  return {std::move(begin), std::move(end)};
}
}  // namespace

std::pair<std::string, std::string> outgoing_range(uint64_t session_number) {
  return number_range(RecordType::kOutgoing, session_number, 8);
}

std::pair<std::string, std::string> incoming_qos2_range(uint64_t session_number) {
  return number_range(RecordType::kIncomingQos2, session_number, 2);
}

bool parse_body_key(std::string_view key, uint64_t* body_id) {
  if (key.size() != 9 || key[0] != static_cast<char>(RecordType::kBody)) return false;
  *body_id = read_big_endian(key.substr(1));
  return *body_id != 0;
}

bool parse_outgoing_key(std::string_view key, uint64_t* session_number, uint64_t* sequence) {
  return parse_number_key(key, RecordType::kOutgoing, 8, session_number, sequence) && *sequence != 0;
}

bool parse_incoming_qos2_key(std::string_view key, uint64_t* session_number, uint16_t* packet_id) {
  uint64_t id = 0;
  if (!parse_number_key(key, RecordType::kIncomingQos2, 2, session_number, &id) || id == 0) return false;
  *packet_id = static_cast<uint16_t>(id);
  return true;
}

bool parse_legacy_outgoing_key(std::string_view key, std::string* client_id, uint64_t* sequence) {
  return parse_client_key(key, RecordType::kLegacyOutgoing, 8, client_id, sequence) && *sequence != 0;
}

bool parse_legacy_incoming_qos2_key(std::string_view key, std::string* client_id, uint16_t* packet_id) {
  uint64_t id = 0;
  if (!parse_client_key(key, RecordType::kLegacyIncomingQos2, 2, client_id, &id) || id == 0) return false;
  *packet_id = static_cast<uint16_t>(id);
  return true;
}

void encode_retained(const RetainedRecord& record, std::string* out) {
  Writer writer(out);
  writer.u8(kRecordVersion);
  writer.u8(record.qos);
  writer.u64(record.stamp);
  writer.u64(static_cast<uint64_t>(record.expires_at_unix_ms));
  writer.bytes(record.payload);
  writer.bytes(record.property_bytes);
}

bool decode_retained(std::string_view key, std::string_view value, RetainedRecord* record, std::string* error) {
  if (!identity_from_key(key, RecordType::kRetained, &record->topic, error)) return false;
  if (record->topic.empty() || record->topic.size() > 0xFFFF) {
    *error = "topic empty or over 65535 bytes";
    return false;
  }
  Reader reader(value);
  bool ok = reader.version() && reader.u8("qos", &record->qos) && reader.u64("stamp", &record->stamp) &&
            reader.i64("expires_at", &record->expires_at_unix_ms) && reader.bytes("payload", &record->payload) &&
            reader.bytes("properties", &record->property_bytes) && reader.finish();
  if (!ok) return reader_error(reader, error);
  if (record->qos > 2) {
    *error = absl::StrFormat("qos %u", record->qos);
    return false;
  }
  if (record->payload.empty()) {
    *error = "empty payload (a clear is a deleted key, never a record)";
    return false;
  }
  return true;
}

void encode_session(const SessionRecord& record, std::string* out) {
  Writer writer(out);
  // A record without a number is a format-1 one (only a test or the fuzzer writes it): one
  // encoding per record, so what decodes encodes back to the same bytes.
  if (record.session_number == 0) {
    writer.u8(1);
  } else {
    writer.u8(kSessionRecordVersion);
    writer.u64(record.session_number);
  }
  writer.u32(record.expiry_seconds);
  writer.u32(record.will_delay_seconds);
  writer.u64(static_cast<uint64_t>(record.disconnected_at_unix_ms));
  writer.u8(record.will ? kSessionHasWill : 0);
  if (record.will) {
    const WillRecord& will = *record.will;
    writer.bytes(will.topic);
    writer.bytes(will.payload);
    writer.bytes(will.property_bytes);
    writer.u32(will.message_expiry_seconds);
    writer.u8(will.qos);
    writer.u8(will.retain ? 1 : 0);
  }
  writer.u32(static_cast<uint32_t>(record.subscriptions.size()));
  for (const SubscriptionRecord& subscription : record.subscriptions) {
    writer.bytes(subscription.filter);
    writer.u8(subscription.qos);
    writer.u8(static_cast<uint8_t>((subscription.no_local ? 1 : 0) | (subscription.retain_as_published ? 2 : 0)));
    writer.u8(subscription.retain_handling);
    writer.u32(subscription.identifier);
  }
}

bool decode_session(std::string_view key, std::string_view value, SessionRecord* record, std::string* error) {
  if (!identity_from_key(key, RecordType::kSession, &record->client_id, error)) return false;
  if (record->client_id.empty() || record->client_id.size() > 0xFFFF) {
    *error = "client id empty or over 65535 bytes";
    return false;
  }
  Reader reader(value);
  uint8_t flags = 0;
  uint8_t version = 0;
  record->session_number = 0;
  if (!reader.versions(1, kSessionRecordVersion, &version)) return reader_error(reader, error);
  if (version >= 2) {
    if (!reader.u64("session_number", &record->session_number)) return reader_error(reader, error);
    if (record->session_number == 0) {
      *error = "session number 0";
      return false;
    }
  }
  bool ok = reader.u32("expiry", &record->expiry_seconds) &&
            reader.u32("will_delay", &record->will_delay_seconds) &&
            reader.i64("disconnected_at", &record->disconnected_at_unix_ms) && reader.u8("flags", &flags);
  if (!ok) return reader_error(reader, error);
  if ((flags & ~kSessionHasWill) != 0) {
    *error = absl::StrFormat("unknown session flags 0x%02x", flags);
    return false;
  }
  record->will.reset();
  if (flags & kSessionHasWill) {
    WillRecord& will = record->will.emplace();
    uint8_t retain = 0;
    ok = reader.bytes("will_topic", &will.topic) && reader.bytes("will_payload", &will.payload) &&
         reader.bytes("will_properties", &will.property_bytes) &&
         reader.u32("will_expiry", &will.message_expiry_seconds) && reader.u8("will_qos", &will.qos) &&
         reader.u8("will_retain", &retain);
    if (!ok) return reader_error(reader, error);
    if (will.qos > 2 || retain > 1 || will.topic.empty() || will.topic.size() > 0xFFFF) {
      *error = "will with a qos, retain flag or topic out of range";
      return false;
    }
    will.retain = retain == 1;
  }
  uint32_t count = 0;
  if (!reader.u32("subscription_count", &count)) return reader_error(reader, error);
  if (count > kSubscriptionsMax) {
    *error = absl::StrFormat("%u subscriptions", count);
    return false;
  }
  record->subscriptions.clear();
  for (uint32_t i = 0; i < count; ++i) {
    SubscriptionRecord& subscription = record->subscriptions.emplace_back();
    uint8_t options = 0;
    ok = reader.bytes("filter", &subscription.filter) && reader.u8("subscription_qos", &subscription.qos) &&
         reader.u8("subscription_options", &options) && reader.u8("retain_handling", &subscription.retain_handling) &&
         reader.u32("identifier", &subscription.identifier);
    if (!ok) return reader_error(reader, error);
    if (subscription.qos > 2 || (options & ~3) != 0 || subscription.retain_handling > 2 ||
        subscription.filter.empty() || subscription.filter.size() > 0xFFFF ||
        subscription.identifier > 268'435'455) {
      *error = absl::StrFormat("subscription %u out of range", i);
      return false;
    }
    subscription.no_local = (options & 1) != 0;
    subscription.retain_as_published = (options & 2) != 0;
  }
  if (!reader.finish()) return reader_error(reader, error);
  return true;
}

void encode_body_fields(std::string_view topic, std::string_view payload, std::string_view property_bytes, uint8_t qos,
                        bool retain, int64_t expires_at_unix_ms, std::string* out) {
  Writer writer(out);
  writer.u8(kRecordVersion);
  writer.u8(qos);
  writer.u8(retain ? 1 : 0);
  writer.u64(static_cast<uint64_t>(expires_at_unix_ms));
  writer.bytes(topic);
  writer.bytes(payload);
  writer.bytes(property_bytes);
}

void encode_body(const BodyRecord& record, std::string* out) {
  encode_body_fields(record.topic, record.payload, record.property_bytes, record.qos, record.retain,
                     record.expires_at_unix_ms, out);
}

bool decode_body(std::string_view key, std::string_view value, BodyRecord* record, std::string* error) {
  if (!parse_body_key(key, &record->id)) {
    *error = "not a body key";
    return false;
  }
  Reader reader(value);
  uint8_t retain = 0;
  bool ok = reader.version() && reader.u8("qos", &record->qos) && reader.u8("retain", &retain) &&
            reader.i64("expires_at", &record->expires_at_unix_ms) && reader.bytes("topic", &record->topic) &&
            reader.bytes("payload", &record->payload) && reader.bytes("properties", &record->property_bytes) &&
            reader.finish();
  if (!ok) return reader_error(reader, error);
  if (record->qos == 0 || record->qos > 2 || retain > 1 || record->topic.empty() || record->topic.size() > 0xFFFF) {
    *error = "qos, retain flag or topic out of range";
    return false;
  }
  record->retain = retain == 1;
  return true;
}

void encode_outgoing_fields(OutgoingState state, uint64_t body_id, uint16_t packet_id, uint8_t qos, bool retain_flag,
                            std::span<const uint32_t> subscription_ids, std::string_view shared_group,
                            std::string* out) {
  Writer writer(out);
  writer.u8(kRecordVersion);
  writer.u8(static_cast<uint8_t>(state));
  writer.u64(body_id);
  writer.u8(static_cast<uint8_t>(packet_id >> 8));
  writer.u8(static_cast<uint8_t>(packet_id));
  writer.u8(qos);
  writer.u8(retain_flag ? 1 : 0);
  writer.u32(static_cast<uint32_t>(subscription_ids.size()));
  for (uint32_t id : subscription_ids) writer.u32(id);
  writer.bytes(shared_group);
}

void encode_outgoing(const OutgoingRecord& record, std::string* out) {
  encode_outgoing_fields(record.state, record.body_id, record.packet_id, record.qos, record.retain_flag,
                         record.subscription_ids, record.shared_group, out);
}

namespace {
bool decode_outgoing_value(std::string_view value, OutgoingRecord* record, std::string* error);
}  // namespace

bool decode_outgoing(std::string_view key, std::string_view value, OutgoingRecord* record, std::string* error) {
  if (!parse_outgoing_key(key, &record->session_number, &record->sequence)) {
    *error = "not an outgoing message key";
    return false;
  }
  return decode_outgoing_value(value, record, error);
}

bool decode_legacy_outgoing(std::string_view key, std::string_view value, OutgoingRecord* record,
                            std::string* client_id, std::string* error) {
  record->session_number = 0;
  if (!parse_legacy_outgoing_key(key, client_id, &record->sequence)) {
    *error = "not a format-1 outgoing message key";
    return false;
  }
  return decode_outgoing_value(value, record, error);
}

namespace {
bool decode_outgoing_value(std::string_view value, OutgoingRecord* record, std::string* error) {
  Reader reader(value);
  uint8_t state = 0, id_high = 0, id_low = 0, retain = 0;
  uint32_t count = 0;
  bool ok = reader.version() && reader.u8("state", &state) && reader.u64("body", &record->body_id) &&
            reader.u8("packet_id", &id_high) && reader.u8("packet_id", &id_low) && reader.u8("qos", &record->qos) &&
            reader.u8("retain", &retain) && reader.u32("subscription_id_count", &count);
  if (!ok) return reader_error(reader, error);
  if (count > kSubscriptionIdsMax) {
    *error = absl::StrFormat("%u subscription identifiers", count);
    return false;
  }
  record->subscription_ids.clear();
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t id = 0;
    if (!reader.u32("subscription_id", &id)) return reader_error(reader, error);
    if (id == 0 || id > kSubscriptionIdentifierMax) {
      *error = absl::StrFormat("subscription identifier %u", id);
      return false;
    }
    record->subscription_ids.push_back(id);
  }
  if (!reader.bytes("shared_group", &record->shared_group) || !reader.finish()) return reader_error(reader, error);
  record->packet_id = static_cast<uint16_t>((id_high << 8) | id_low);
  if (state > static_cast<uint8_t>(OutgoingState::kPubrelSent) || record->qos == 0 || record->qos > 2 || retain > 1) {
    *error = "state, qos or retain flag out of range";
    return false;
  }
  record->state = static_cast<OutgoingState>(state);
  record->retain_flag = retain == 1;
  bool queued = record->state == OutgoingState::kQueued;
  bool pubrel = record->state == OutgoingState::kPubrelSent;
  if ((record->packet_id == 0) != queued || (record->body_id == 0) != pubrel || (pubrel && record->qos != 2)) {
    *error = "packet id or body does not fit the state";
    return false;
  }
  return true;
}
}  // namespace

std::string_view incoming_qos2_value() {
  static constexpr char kValue[] = {static_cast<char>(kRecordVersion)};
  return {kValue, 1};
}

bool decode_incoming_qos2(std::string_view key, std::string_view value, uint64_t* session_number,
                          uint16_t* packet_id, std::string* error) {
  if (!parse_incoming_qos2_key(key, session_number, packet_id)) {
    *error = "not an incoming QoS 2 key";
    return false;
  }
  if (value != incoming_qos2_value()) {
    *error = "value is not one version byte";
    return false;
  }
  return true;
}

bool decode_legacy_incoming_qos2(std::string_view key, std::string_view value, std::string* client_id,
                                 uint16_t* packet_id, std::string* error) {
  if (!parse_legacy_incoming_qos2_key(key, client_id, packet_id)) {
    *error = "not a format-1 incoming QoS 2 key";
    return false;
  }
  if (value != incoming_qos2_value()) {
    *error = "value is not one version byte";
    return false;
  }
  return true;
}

}  // namespace coremq::persist
