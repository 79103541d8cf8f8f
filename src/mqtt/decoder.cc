// Packet decoders (see decoder.h). Each one walks the body with a detail::Reader, so every read is
// bounds-checked, and ends by requiring that the whole body was consumed: trailing bytes are a
// malformed packet. Under MQTT 5 each reads its property block with decode_properties, which holds
// the per-property rules; the rules here are those of the packets themselves.
#include "mqtt/decoder.h"

#include "base/assert.h"
#include "mqtt/properties.h"
#include "mqtt/reader.h"
#include "mqtt/reason_code.h"
#include "topic/topic.h"

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

// SUBSCRIBE requested QoS byte: in 3.1.1 the upper six bits are reserved. MQTT 5 turns bits 2..5
// into the subscription options (section 3.8.3.1) and keeps bits 6 and 7 reserved.
constexpr uint8_t kSubscribeQosMask = 0x03;
constexpr uint8_t kSubscribeNoLocal = 0x04;
constexpr uint8_t kSubscribeRetainAsPublished = 0x08;
constexpr uint8_t kSubscribeRetainHandlingMask = 0x30;
constexpr int kSubscribeRetainHandlingShift = 4;
constexpr uint8_t kSubscribeReservedV5 = 0xC0;
constexpr std::string_view kSharedSubscriptionPrefix = "$share/";

// CONNACK acknowledge flags: bit 0 is Session Present, the rest reserved (section 3.2.2.1).
constexpr uint8_t kConnackReserved = 0xFE;

bool version_served(ProtocolVersion version) {
  return version == ProtocolVersion::kV31 || version == ProtocolVersion::kV311 ||
         version == ProtocolVersion::kV5;
}

bool is_ack(PacketType type) {
  return type == PacketType::kPuback || type == PacketType::kPubrec || type == PacketType::kPubrel ||
         type == PacketType::kPubcomp;
}

#define COREMQ_MQTT_TRY(expression)                           \
  do {                                                        \
    const DecodeStatus try_status_ = (expression);            \
    if (try_status_ != DecodeStatus::kOk) return try_status_; \
  } while (0)

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

// The MQTT 5 property block at the reader's position: Property Length, then the properties.
[[nodiscard]] DecodeStatus read_properties(Reader& reader, PropertyContext context, Properties* out) {
  size_t consumed = 0;
  COREMQ_MQTT_TRY(decode_properties(reader.rest(), context, out, &consumed));
  std::span<const uint8_t> block;
  const bool skipped = reader.read_bytes(consumed, &block);
  COREMQ_ASSERT(skipped);
  return DecodeStatus::kOk;
}

// A one-byte reason code that table 2-6 allows for `type`; any other value is malformed, as a
// reserved return code is under 3.1.1.
[[nodiscard]] DecodeStatus read_reason_code(Reader& reader, PacketType type, uint8_t* code) {
  if (!reader.read_u8(code)) return DecodeStatus::kMalformed;
  if (!reason_code_allowed(type, static_cast<ReasonCode>(*code))) return DecodeStatus::kMalformed;
  return DecodeStatus::kOk;
}

DecodeStatus decode_protocol(Reader& reader, ConnectPacket* out) {
  if (!reader.read_length_prefixed(&out->protocol_name)) return DecodeStatus::kMalformed;
  if (!reader.read_u8(&out->protocol_level)) return DecodeStatus::kMalformed;
  // Mosquitto's bridges (try_private) set the top bit of a 3.1/3.1.1 level: a bridge, which must
  // not be sent back its own messages (MQTT 5 bridges use No Local instead).
  if ((out->protocol_level & 0x80) != 0 && (out->protocol_level & 0x7F) != static_cast<uint8_t>(ProtocolVersion::kV5)) {
    out->bridge = true;
    out->protocol_level &= 0x7F;
  }
  if (out->protocol_name == kProtocolName) {
    if (out->protocol_level != static_cast<uint8_t>(ProtocolVersion::kV311) &&
        out->protocol_level != static_cast<uint8_t>(ProtocolVersion::kV5)) {
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

DecodeStatus decode_connect_payload(Reader& reader, bool v5, ConnectPacket* out) {
  COREMQ_MQTT_TRY(read_utf8(reader, &out->client_id));
  if (out->has_will) {
    if (v5) COREMQ_MQTT_TRY(read_properties(reader, PropertyContext::kWill, &out->will_properties));
    COREMQ_MQTT_TRY(read_utf8(reader, &out->will.topic));
    if (!topic::is_valid_topic_name(out->will.topic)) return DecodeStatus::kProtocolError;
    COREMQ_MQTT_TRY(read_binary(reader, &out->will.payload));
  }
  if (out->has_username) COREMQ_MQTT_TRY(read_utf8(reader, &out->username));
  if (out->has_password) COREMQ_MQTT_TRY(read_binary(reader, &out->password));
  return reader.at_end() ? DecodeStatus::kOk : DecodeStatus::kMalformed;
}

// The PUBLISH rules that need the properties. Only a server sends Subscription Identifiers
// (section 3.3.4); an empty topic name is allowed only when a Topic Alias names the topic (section
// 3.3.2.1), and whether that alias is known is the receiver's business.
DecodeStatus decode_publish_properties(Reader& reader, bool from_server, PublishPacket* out) {
  COREMQ_MQTT_TRY(read_properties(reader, PropertyContext::kPublish, &out->properties));
  if (!from_server && out->properties.subscription_identifier_count > 0) return DecodeStatus::kProtocolError;
  if (out->topic.empty() && !out->properties.topic_alias) return DecodeStatus::kProtocolError;
  return DecodeStatus::kOk;
}

DecodeStatus decode_publish_from(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version,
                                 bool from_server, PublishPacket* out) {
  COREMQ_ASSERT(out != nullptr);
  if (!fixed_header_flags_valid(PacketType::kPublish, flags)) return DecodeStatus::kMalformed;
  if (!version_served(version)) return DecodeStatus::kUnsupportedProtocolLevel;
  out->retain = (flags & kPublishRetain) != 0;
  out->qos = static_cast<uint8_t>((flags & kPublishQosMask) >> kPublishQosShift);
  out->dup = (flags & kPublishDup) != 0;

  Reader reader(body);
  COREMQ_MQTT_TRY(read_utf8(reader, &out->topic));
  // MQTT 5 allows an empty topic when a Topic Alias property names it, which is known only after
  // the properties; 3.1.1 never does.
  const bool v5 = version == ProtocolVersion::kV5;
  out->topic_levels = 0;
  if (!(v5 && out->topic.empty()) && !topic::is_valid_topic_name(out->topic, &out->topic_levels)) {
    return DecodeStatus::kProtocolError;
  }
  out->packet_id = 0;
  if (out->qos > 0) COREMQ_MQTT_TRY(read_packet_id(reader, &out->packet_id));
  if (v5) {
    COREMQ_MQTT_TRY(decode_publish_properties(reader, from_server, out));
  } else if (out->properties.encoded.data() != nullptr) {
    // Left over from an MQTT 5 packet decoded into the same struct (a decoded block always sets
    // `encoded` before any property). Resetting only then keeps the 3.1.1 path from clearing the
    // whole Properties on every packet.
    out->properties = Properties{};
  }
  const std::span<const uint8_t> payload = reader.rest();
  out->payload = std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size());
  return DecodeStatus::kOk;
}

// One SUBSCRIBE entry's options byte (section 3.8.3.1).
DecodeStatus decode_subscription_options(uint8_t options, bool v5, SubscribeTopic* topic) {
  topic->qos = options & kSubscribeQosMask;
  if (topic->qos > 2) return DecodeStatus::kMalformed;
  if (!v5) return (options & ~kSubscribeQosMask) == 0 ? DecodeStatus::kOk : DecodeStatus::kMalformed;
  if ((options & kSubscribeReservedV5) != 0) return DecodeStatus::kMalformed;
  topic->no_local = (options & kSubscribeNoLocal) != 0;
  topic->retain_as_published = (options & kSubscribeRetainAsPublished) != 0;
  topic->retain_handling =
      static_cast<uint8_t>((options & kSubscribeRetainHandlingMask) >> kSubscribeRetainHandlingShift);
  if (topic->retain_handling > 2) return DecodeStatus::kMalformed;
  // A client never receives its own messages from a shared subscription, so asking for that is an
  // error of the packet, not of the filter (section 3.8.3.1).
  if (topic->no_local && topic->filter.starts_with(kSharedSubscriptionPrefix)) {
    return DecodeStatus::kProtocolError;
  }
  return DecodeStatus::kOk;
}

// CONNACK under MQTT 5 (section 3.2): flags, reason code, properties; there is no short form.
DecodeStatus decode_connack_v5(std::span<const uint8_t> body, ConnackPacket* out) {
  Reader reader(body);
  uint8_t acknowledge_flags = 0;
  if (!reader.read_u8(&acknowledge_flags)) return DecodeStatus::kMalformed;
  if ((acknowledge_flags & kConnackReserved) != 0) return DecodeStatus::kMalformed;
  out->session_present = (acknowledge_flags & 0x01) != 0;
  COREMQ_MQTT_TRY(read_reason_code(reader, PacketType::kConnack, &out->reason_code));
  const auto reason = static_cast<ReasonCode>(out->reason_code);
  out->return_code = connect_return_code_for(reason);
  // Section 3.2.2.1.1: a refusal never claims a session.
  if (out->session_present && is_error(reason)) return DecodeStatus::kProtocolError;
  COREMQ_MQTT_TRY(read_properties(reader, PropertyContext::kConnack, &out->properties));
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
    if (index > 0 && byte == 0) return FrameStatus::kMalformed;  // MQTT-1.5.5-1: not the fewest bytes

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
  out->properties = Properties{};
  out->will_properties = Properties{};
  Reader reader(body);
  COREMQ_MQTT_TRY(decode_protocol(reader, out));
  uint8_t connect_flags = 0;
  if (!reader.read_u8(&connect_flags)) return DecodeStatus::kMalformed;
  COREMQ_MQTT_TRY(decode_connect_flags(connect_flags, out->protocol_level, out));
  if (!reader.read_u16(&out->keep_alive_seconds)) return DecodeStatus::kMalformed;
  const bool v5 = out->protocol_level == static_cast<uint8_t>(ProtocolVersion::kV5);
  if (v5) COREMQ_MQTT_TRY(read_properties(reader, PropertyContext::kConnect, &out->properties));
  return decode_connect_payload(reader, v5, out);
}

DecodeStatus decode_publish(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version,
                            PublishPacket* out) {
  return decode_publish_from(body, flags, version, /*from_server=*/false, out);
}

DecodeStatus decode_publish_from_server(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version,
                                        PublishPacket* out) {
  return decode_publish_from(body, flags, version, /*from_server=*/true, out);
}

DecodeStatus decode_subscribe(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version,
                              std::span<SubscribeTopic> storage, SubscribePacket* out) {
  COREMQ_ASSERT(out != nullptr);
  if (flags != kFlagsPubrelSubscribeUnsubscribe) return DecodeStatus::kMalformed;
  if (!version_served(version)) return DecodeStatus::kUnsupportedProtocolLevel;
  Reader reader(body);
  COREMQ_MQTT_TRY(read_packet_id(reader, &out->packet_id));
  const bool v5 = version == ProtocolVersion::kV5;
  out->properties = Properties{};
  if (v5) COREMQ_MQTT_TRY(read_properties(reader, PropertyContext::kSubscribe, &out->properties));
  if (reader.at_end()) return DecodeStatus::kProtocolError;  // section 3.8.3: at least one filter

  size_t count = 0;
  while (!reader.at_end()) {
    SubscribeTopic topic;
    COREMQ_MQTT_TRY(read_utf8(reader, &topic.filter));
    uint8_t options = 0;
    if (!reader.read_u8(&options)) return DecodeStatus::kMalformed;
    COREMQ_MQTT_TRY(decode_subscription_options(options, v5, &topic));
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
  out->properties = Properties{};
  if (version == ProtocolVersion::kV5) {
    COREMQ_MQTT_TRY(read_properties(reader, PropertyContext::kUnsubscribe, &out->properties));
  }
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
  COREMQ_ASSERT(is_ack(type));
  COREMQ_ASSERT(packet_id != nullptr);
  if (!fixed_header_flags_valid(type, flags)) return DecodeStatus::kMalformed;
  // 3.1.1 has exactly the identifier; decode_ack reads the MQTT 5 forms.
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

DecodeStatus decode_ack(std::span<const uint8_t> body, uint8_t flags, PacketType type,
                        ProtocolVersion version, AckPacket* out) {
  COREMQ_ASSERT(is_ack(type));
  COREMQ_ASSERT(out != nullptr);
  if (!fixed_header_flags_valid(type, flags)) return DecodeStatus::kMalformed;
  if (!version_served(version)) return DecodeStatus::kUnsupportedProtocolLevel;
  out->type = type;
  out->reason_code = 0;
  out->properties = Properties{};
  if (version != ProtocolVersion::kV5) return decode_packet_id_only(body, flags, type, &out->packet_id);

  Reader reader(body);
  COREMQ_MQTT_TRY(read_packet_id(reader, &out->packet_id));
  // Sections 3.4.2.1 and 3.4.2.2.1 (and the same for PUBREC, PUBREL, PUBCOMP): a remaining length of
  // 2 means Success without properties, of 3 a reason code without properties.
  if (reader.at_end()) return DecodeStatus::kOk;
  COREMQ_MQTT_TRY(read_reason_code(reader, type, &out->reason_code));
  if (reader.at_end()) return DecodeStatus::kOk;
  COREMQ_MQTT_TRY(read_properties(reader, property_context(type), &out->properties));
  return reader.at_end() ? DecodeStatus::kOk : DecodeStatus::kMalformed;
}

DecodeStatus decode_disconnect(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version,
                               DisconnectPacket* out) {
  COREMQ_ASSERT(out != nullptr);
  if (flags != 0) return DecodeStatus::kMalformed;
  if (!version_served(version)) return DecodeStatus::kUnsupportedProtocolLevel;
  out->reason_code = 0;
  out->properties = Properties{};
  if (version != ProtocolVersion::kV5) return body.empty() ? DecodeStatus::kOk : DecodeStatus::kMalformed;

  // Section 3.14.2.1: an empty body means Normal disconnection; one byte is the reason code alone.
  Reader reader(body);
  if (reader.at_end()) return DecodeStatus::kOk;
  COREMQ_MQTT_TRY(read_reason_code(reader, PacketType::kDisconnect, &out->reason_code));
  if (reader.at_end()) return DecodeStatus::kOk;
  COREMQ_MQTT_TRY(read_properties(reader, PropertyContext::kDisconnect, &out->properties));
  return reader.at_end() ? DecodeStatus::kOk : DecodeStatus::kMalformed;
}

DecodeStatus decode_auth(std::span<const uint8_t> body, uint8_t flags, AuthPacket* out) {
  COREMQ_ASSERT(out != nullptr);
  if (flags != 0) return DecodeStatus::kMalformed;
  out->reason_code = 0;
  out->properties = Properties{};
  // Section 3.15.2.1: only Success without properties may leave out reason code and Property Length
  // together; any other AUTH carries both, and its Authentication Method (section 3.15.2.2.2).
  Reader reader(body);
  if (reader.at_end()) return DecodeStatus::kOk;
  COREMQ_MQTT_TRY(read_reason_code(reader, PacketType::kAuth, &out->reason_code));
  COREMQ_MQTT_TRY(read_properties(reader, PropertyContext::kAuth, &out->properties));
  if (!reader.at_end()) return DecodeStatus::kMalformed;
  if (!out->properties.authentication_method) return DecodeStatus::kProtocolError;
  return DecodeStatus::kOk;
}

DecodeStatus decode_connack(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version,
                            ConnackPacket* out) {
  COREMQ_ASSERT(out != nullptr);
  if (flags != 0) return DecodeStatus::kMalformed;
  if (!version_served(version)) return DecodeStatus::kUnsupportedProtocolLevel;
  out->properties = Properties{};
  if (version == ProtocolVersion::kV5) return decode_connack_v5(body, out);
  if (body.size() != 2) return DecodeStatus::kMalformed;
  const uint8_t acknowledge_flags = body[0];
  const uint8_t code = body[1];
  if ((acknowledge_flags & kConnackReserved) != 0) return DecodeStatus::kMalformed;  // section 3.2.2.1
  if (code > static_cast<uint8_t>(ConnectReturnCode::kNotAuthorized)) return DecodeStatus::kMalformed;
  out->session_present = (acknowledge_flags & 0x01) != 0;
  out->return_code = static_cast<ConnectReturnCode>(code);
  out->reason_code = static_cast<uint8_t>(reason_code_for(out->return_code));
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
  const bool v5 = version == ProtocolVersion::kV5;
  out->properties = Properties{};
  if (v5) COREMQ_MQTT_TRY(read_properties(reader, PropertyContext::kSuback, &out->properties));
  if (reader.at_end()) return DecodeStatus::kProtocolError;  // one code per requested filter, at least one
  out->return_codes = reader.rest();
  for (const uint8_t code : out->return_codes) {
    const bool valid = v5 ? reason_code_allowed(PacketType::kSuback, static_cast<ReasonCode>(code))
                          : code <= 2 || code == kSubackFailure;  // section 3.9.3: the rest is reserved
    if (!valid) return DecodeStatus::kMalformed;
  }
  return DecodeStatus::kOk;
}

DecodeStatus decode_unsuback(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version,
                             UnsubackPacket* out) {
  COREMQ_ASSERT(out != nullptr);
  if (flags != 0) return DecodeStatus::kMalformed;
  if (!version_served(version)) return DecodeStatus::kUnsupportedProtocolLevel;
  out->reason_codes = {};
  out->properties = Properties{};
  Reader reader(body);
  if (version != ProtocolVersion::kV5) {
    if (body.size() != 2) return DecodeStatus::kMalformed;
    return read_packet_id(reader, &out->packet_id);
  }
  COREMQ_MQTT_TRY(read_packet_id(reader, &out->packet_id));
  COREMQ_MQTT_TRY(read_properties(reader, PropertyContext::kUnsuback, &out->properties));
  if (reader.at_end()) return DecodeStatus::kProtocolError;  // section 3.11.3: one code per filter
  out->reason_codes = reader.rest();
  for (const uint8_t code : out->reason_codes) {
    if (!reason_code_allowed(PacketType::kUnsuback, static_cast<ReasonCode>(code)))
      return DecodeStatus::kMalformed;
  }
  return DecodeStatus::kOk;
}

}  // namespace coremq::mqtt
