// Packet decoders (see decoder.h). Each one walks the body with a detail::Reader, so every read is
// bounds-checked, and ends by requiring that the whole body was consumed: trailing bytes are a
// malformed packet. The place where MQTT 5 reads its property block is marked in each decoder.
#include "mqtt/decoder.h"
#include "topic/topic.h"

#include "base/assert.h"
#include "mqtt/reader.h"

namespace coremq::mqtt {
namespace {

using detail::Reader;

constexpr uint8_t kFlagsPubrelSubscribeUnsubscribe = 0b0010;

// Connect flags (section 3.1.2.3).
constexpr uint8_t kConnectReserved = 0x01;
constexpr uint8_t kConnectCleanSession = 0x02;
constexpr uint8_t kConnectWill = 0x04;
constexpr uint8_t kConnectWillQosMask = 0x18;
constexpr int kConnectWillQosShift = 3;
constexpr uint8_t kConnectWillRetain = 0x20;
constexpr uint8_t kConnectPassword = 0x40;
constexpr uint8_t kConnectUsername = 0x80;

// PUBLISH flags (section 3.3.1).
constexpr uint8_t kPublishRetain = 0x01;
constexpr uint8_t kPublishQosMask = 0x06;
constexpr int kPublishQosShift = 1;
constexpr uint8_t kPublishDup = 0x08;

// SUBSCRIBE requested QoS byte: in 3.1.1 the upper six bits are reserved.
constexpr uint8_t kSubscribeQosMask = 0x03;

bool version_served(ProtocolVersion version) {
  return version == ProtocolVersion::kV31 || version == ProtocolVersion::kV311;
}

[[nodiscard]] DecodeStatus read_utf8(Reader& reader, std::string_view* value) {
  if (!reader.read_length_prefixed(value)) return DecodeStatus::kMalformed;
  if (!is_valid_utf8_string(*value)) return DecodeStatus::kMalformed;
  return DecodeStatus::kOk;
}

[[nodiscard]] DecodeStatus read_binary(Reader& reader, std::string_view* value) {
  return reader.read_length_prefixed(value) ? DecodeStatus::kOk : DecodeStatus::kMalformed;
}

// A packet identifier that must be present and non-zero (section 2.3.1).
[[nodiscard]] DecodeStatus read_packet_id(Reader& reader, uint16_t* packet_id) {
  if (!reader.read_u16(packet_id)) return DecodeStatus::kMalformed;
  if (*packet_id == 0) return DecodeStatus::kProtocolError;
  return DecodeStatus::kOk;
}

#define COREMQ_MQTT_TRY(expression)                           \
  do {                                                        \
    const DecodeStatus try_status_ = (expression);            \
    if (try_status_ != DecodeStatus::kOk) return try_status_; \
  } while (0)

DecodeStatus decode_protocol(Reader& reader, ConnectPacket* out) {
  if (!reader.read_length_prefixed(&out->protocol_name)) return DecodeStatus::kMalformed;
  if (!reader.read_u8(&out->protocol_level)) return DecodeStatus::kMalformed;
  if (out->protocol_name == kProtocolName) {
    if (out->protocol_level != static_cast<uint8_t>(ProtocolVersion::kV311)) {
      return DecodeStatus::kUnsupportedProtocolLevel;
    }
    return DecodeStatus::kOk;
  }
  if (out->protocol_name == kProtocolNameV31) {
    if (out->protocol_level != static_cast<uint8_t>(ProtocolVersion::kV31)) {
      return DecodeStatus::kUnsupportedProtocolLevel;
    }
    return DecodeStatus::kOk;
  }
  return DecodeStatus::kBadProtocolName;
}

DecodeStatus decode_connect_flags(uint8_t connect_flags, uint8_t protocol_level, ConnectPacket* out) {
  if (connect_flags & kConnectReserved) return DecodeStatus::kMalformed;
  out->clean_session = (connect_flags & kConnectCleanSession) != 0;
  out->has_will = (connect_flags & kConnectWill) != 0;
  out->will.qos = static_cast<uint8_t>((connect_flags & kConnectWillQosMask) >> kConnectWillQosShift);
  out->will.retain = (connect_flags & kConnectWillRetain) != 0;
  out->has_username = (connect_flags & kConnectUsername) != 0;
  out->has_password = (connect_flags & kConnectPassword) != 0;
  if (out->will.qos > 2) return DecodeStatus::kMalformed;
  if (!out->has_will && (out->will.qos != 0 || out->will.retain)) return DecodeStatus::kMalformed;
  // 3.1.1 section 3.1.2.9 forbids a password without a username; 3.1 did not say so, and MQTT 5
  // allows it, so only level 4 is held to it.
  const bool level_311 = protocol_level == static_cast<uint8_t>(ProtocolVersion::kV311);
  if (level_311 && out->has_password && !out->has_username) return DecodeStatus::kMalformed;
  return DecodeStatus::kOk;
}

DecodeStatus decode_connect_payload(Reader& reader, ConnectPacket* out) {
  COREMQ_MQTT_TRY(read_utf8(reader, &out->client_id));
  if (out->has_will) {
    // MQTT 5: will properties come here.
    COREMQ_MQTT_TRY(read_utf8(reader, &out->will.topic));
    if (!topic::is_valid_topic_name(out->will.topic)) return DecodeStatus::kProtocolError;
    COREMQ_MQTT_TRY(read_binary(reader, &out->will.payload));
  }
  if (out->has_username) COREMQ_MQTT_TRY(read_utf8(reader, &out->username));
  if (out->has_password) COREMQ_MQTT_TRY(read_binary(reader, &out->password));
  return reader.at_end() ? DecodeStatus::kOk : DecodeStatus::kMalformed;
}

}  // namespace

bool fixed_header_flags_valid(PacketType type, uint8_t flags) {
  switch (type) {
    case PacketType::kPublish: {
      const uint8_t qos = static_cast<uint8_t>((flags & kPublishQosMask) >> kPublishQosShift);
      if (qos > 2) return false;
      if (qos == 0 && (flags & kPublishDup)) return false;
      return flags <= 0x0F;
    }
    case PacketType::kPubrel:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      return flags == kFlagsPubrelSubscribeUnsubscribe;
    default:
      return flags == 0;
  }
}

FrameStatus parse_fixed_header(std::span<const uint8_t> bytes, uint32_t max_packet_size,
                               FixedHeader* header) {
  if (bytes.empty()) return FrameStatus::kNeedMore;
  const uint8_t type_value = bytes[0] >> 4;
  const uint8_t flags = bytes[0] & 0x0F;
  if (type_value == 0) return FrameStatus::kMalformed;  // reserved (section 2.2.1)
  const auto type = static_cast<PacketType>(type_value);
  if (!fixed_header_flags_valid(type, flags)) return FrameStatus::kMalformed;

  uint32_t remaining_length = 0;
  for (size_t index = 0; index < kRemainingLengthBytesMax; index++) {
    if (1 + index >= bytes.size()) return FrameStatus::kNeedMore;
    const uint8_t byte = bytes[1 + index];
    remaining_length |= uint32_t{byte & 0x7Fu} << (7 * index);
    if (byte & 0x80) continue;

    const auto header_length = static_cast<uint32_t>(2 + index);
    COREMQ_ASSERT(remaining_length <= kRemainingLengthMax);
    *header = FixedHeader{type, flags, remaining_length, header_length};
    const uint64_t packet_size = uint64_t{header_length} + remaining_length;
    return packet_size > max_packet_size ? FrameStatus::kTooLarge : FrameStatus::kComplete;
  }
  return FrameStatus::kMalformed;  // a fifth length byte (section 2.2.3)
}

DecodeStatus decode_connect(std::span<const uint8_t> body, uint8_t flags, ConnectPacket* out) {
  COREMQ_ASSERT(out != nullptr);
  if (flags != 0) return DecodeStatus::kMalformed;
  Reader reader(body);
  COREMQ_MQTT_TRY(decode_protocol(reader, out));
  uint8_t connect_flags = 0;
  if (!reader.read_u8(&connect_flags)) return DecodeStatus::kMalformed;
  COREMQ_MQTT_TRY(decode_connect_flags(connect_flags, out->protocol_level, out));
  if (!reader.read_u16(&out->keep_alive_seconds)) return DecodeStatus::kMalformed;
  // MQTT 5: CONNECT properties come here.
  return decode_connect_payload(reader, out);
}

DecodeStatus decode_publish(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version,
                            PublishPacket* out) {
  COREMQ_ASSERT(out != nullptr);
  if (!fixed_header_flags_valid(PacketType::kPublish, flags)) return DecodeStatus::kMalformed;
  if (!version_served(version)) return DecodeStatus::kUnsupportedProtocolLevel;
  out->retain = (flags & kPublishRetain) != 0;
  out->qos = static_cast<uint8_t>((flags & kPublishQosMask) >> kPublishQosShift);
  out->dup = (flags & kPublishDup) != 0;

  Reader reader(body);
  COREMQ_MQTT_TRY(read_utf8(reader, &out->topic));
  // MQTT 5 allows an empty topic when a Topic Alias property names it; 3.1.1 never does.
  if (!topic::is_valid_topic_name(out->topic)) return DecodeStatus::kProtocolError;
  out->packet_id = 0;
  if (out->qos > 0) COREMQ_MQTT_TRY(read_packet_id(reader, &out->packet_id));
  // MQTT 5: PUBLISH properties come here.
  const std::span<const uint8_t> payload = reader.rest();
  out->payload = std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size());
  return DecodeStatus::kOk;
}

DecodeStatus decode_subscribe(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version,
                              std::span<SubscribeTopic> storage, SubscribePacket* out) {
  COREMQ_ASSERT(out != nullptr);
  if (flags != kFlagsPubrelSubscribeUnsubscribe) return DecodeStatus::kMalformed;
  if (!version_served(version)) return DecodeStatus::kUnsupportedProtocolLevel;
  Reader reader(body);
  COREMQ_MQTT_TRY(read_packet_id(reader, &out->packet_id));
  // MQTT 5: SUBSCRIBE properties come here.
  if (reader.at_end()) return DecodeStatus::kProtocolError;  // section 3.8.3: at least one filter

  size_t count = 0;
  while (!reader.at_end()) {
    SubscribeTopic topic;
    COREMQ_MQTT_TRY(read_utf8(reader, &topic.filter));
    uint8_t requested = 0;
    if (!reader.read_u8(&requested)) return DecodeStatus::kMalformed;
    // MQTT 5: bits 2..5 carry the subscription options.
    if ((requested & ~kSubscribeQosMask) != 0) return DecodeStatus::kMalformed;
    topic.qos = requested & kSubscribeQosMask;
    if (topic.qos > 2) return DecodeStatus::kMalformed;
    if (count == storage.size()) return DecodeStatus::kTooManyTopics;
    storage[count++] = topic;
  }
  out->topics = storage.first(count);
  COREMQ_ASSERT(!out->topics.empty());
  return DecodeStatus::kOk;
}

DecodeStatus decode_unsubscribe(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version,
                                std::span<std::string_view> storage, UnsubscribePacket* out) {
  COREMQ_ASSERT(out != nullptr);
  if (flags != kFlagsPubrelSubscribeUnsubscribe) return DecodeStatus::kMalformed;
  if (!version_served(version)) return DecodeStatus::kUnsupportedProtocolLevel;
  Reader reader(body);
  COREMQ_MQTT_TRY(read_packet_id(reader, &out->packet_id));
  // MQTT 5: UNSUBSCRIBE properties come here.
  if (reader.at_end()) return DecodeStatus::kProtocolError;  // section 3.10.3: at least one filter

  size_t count = 0;
  while (!reader.at_end()) {
    std::string_view filter;
    COREMQ_MQTT_TRY(read_utf8(reader, &filter));
    if (count == storage.size()) return DecodeStatus::kTooManyTopics;
    storage[count++] = filter;
  }
  out->filters = storage.first(count);
  COREMQ_ASSERT(!out->filters.empty());
  return DecodeStatus::kOk;
}

DecodeStatus decode_packet_id_only(std::span<const uint8_t> body, uint8_t flags, PacketType type,
                                   uint16_t* packet_id) {
  COREMQ_ASSERT(type == PacketType::kPuback || type == PacketType::kPubrec || type == PacketType::kPubrel ||
                type == PacketType::kPubcomp);
  COREMQ_ASSERT(packet_id != nullptr);
  if (!fixed_header_flags_valid(type, flags)) return DecodeStatus::kMalformed;
  // MQTT 5: a reason code and properties may follow; 3.1.1 has exactly the identifier.
  if (body.size() != 2) return DecodeStatus::kMalformed;
  Reader reader(body);
  return read_packet_id(reader, packet_id);
}

DecodeStatus decode_empty(std::span<const uint8_t> body, uint8_t flags, PacketType type) {
  COREMQ_ASSERT(type == PacketType::kPingreq || type == PacketType::kPingresp ||
                type == PacketType::kDisconnect);
  if (flags != 0) return DecodeStatus::kMalformed;
  return body.empty() ? DecodeStatus::kOk : DecodeStatus::kMalformed;
}

DecodeStatus decode_connack(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version,
                            ConnackPacket* out) {
  COREMQ_ASSERT(out != nullptr);
  if (flags != 0) return DecodeStatus::kMalformed;
  if (!version_served(version)) return DecodeStatus::kUnsupportedProtocolLevel;
  if (body.size() != 2) return DecodeStatus::kMalformed;
  const uint8_t acknowledge_flags = body[0];
  const uint8_t code = body[1];
  if ((acknowledge_flags & 0xFE) != 0) return DecodeStatus::kMalformed;  // section 3.2.2.1: reserved
  if (code > static_cast<uint8_t>(ConnectReturnCode::kNotAuthorized)) return DecodeStatus::kMalformed;
  out->session_present = (acknowledge_flags & 0x01) != 0;
  out->return_code = static_cast<ConnectReturnCode>(code);
  // Section 3.2.2.2: a refusal never claims a session.
  if (out->session_present && out->return_code != ConnectReturnCode::kAccepted) {
    return DecodeStatus::kProtocolError;
  }
  return DecodeStatus::kOk;
}

DecodeStatus decode_suback(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version,
                           SubackPacket* out) {
  COREMQ_ASSERT(out != nullptr);
  if (flags != 0) return DecodeStatus::kMalformed;
  if (!version_served(version)) return DecodeStatus::kUnsupportedProtocolLevel;
  Reader reader(body);
  COREMQ_MQTT_TRY(read_packet_id(reader, &out->packet_id));
  if (reader.at_end()) return DecodeStatus::kProtocolError;  // one code per requested filter, at least one
  out->return_codes = reader.rest();
  for (const uint8_t code : out->return_codes) {
    if (code > 2 && code != kSubackFailure) return DecodeStatus::kMalformed;  // section 3.9.3: reserved
  }
  return DecodeStatus::kOk;
}

DecodeStatus decode_unsuback(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version,
                             UnsubackPacket* out) {
  COREMQ_ASSERT(out != nullptr);
  if (flags != 0) return DecodeStatus::kMalformed;
  if (!version_served(version)) return DecodeStatus::kUnsupportedProtocolLevel;
  if (body.size() != 2) return DecodeStatus::kMalformed;
  Reader reader(body);
  out->reason_codes = {};
  return read_packet_id(reader, &out->packet_id);
}

}  // namespace coremq::mqtt
