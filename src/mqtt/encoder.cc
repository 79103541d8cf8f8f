// Packet encoders (see encoder.h). Each computes the remaining length first, grows the buffer once
// for the whole packet and writes in place, so a warmed-up send buffer never reallocates here.
#include "mqtt/encoder.h"

#include <cstring>

#include "base/assert.h"
#include "mqtt/reason_code.h"

namespace coremq::mqtt {
namespace {

constexpr uint8_t kFirstByteShift = 4;

uint8_t first_byte(PacketType type, uint8_t flags) {
  COREMQ_ASSERT(flags <= 0x0F);
  return static_cast<uint8_t>((static_cast<uint8_t>(type) << kFirstByteShift) | flags);
}

// In-place writer over memory that ByteBuffer::grow() handed out, sized exactly by the caller.
class Writer {
 public:
  Writer(uint8_t* at, size_t size) : at_(at), end_(at + size) {}
  ~Writer() { COREMQ_ASSERT_MSG(at_ == end_, "encoded size differs from the computed size"); }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void u8(uint8_t value) {
    COREMQ_ASSERT(end_ - at_ >= 1);
    *at_++ = value;
  }
  void u16(uint16_t value) {
    u8(static_cast<uint8_t>(value >> 8));
    u8(static_cast<uint8_t>(value));
  }
  void bytes(std::string_view value) {
    COREMQ_ASSERT(static_cast<size_t>(end_ - at_) >= value.size());
    if (!value.empty()) std::memcpy(at_, value.data(), value.size());
    at_ += value.size();
  }
  void bytes(std::span<const uint8_t> value) {
    COREMQ_ASSERT(static_cast<size_t>(end_ - at_) >= value.size());
    if (!value.empty()) std::memcpy(at_, value.data(), value.size());
    at_ += value.size();
  }
  void varint(uint32_t value) {
    COREMQ_ASSERT(static_cast<size_t>(end_ - at_) >= remaining_length_size(value));
    at_ += encode_remaining_length(value, at_);
  }
  // An MQTT 5 property block: Property Length, then the properties.
  void property_block(std::span<const uint8_t> property_bytes) {
    COREMQ_ASSERT(property_bytes.size() <= kRemainingLengthMax);
    varint(static_cast<uint32_t>(property_bytes.size()));
    bytes(property_bytes);
  }
  void length_prefixed(std::string_view value) {
    COREMQ_ASSERT(value.size() <= kStringLengthMax);
    u16(static_cast<uint16_t>(value.size()));
    bytes(value);
  }
  void fixed_header(PacketType type, uint8_t flags, uint32_t remaining_length) {
    u8(first_byte(type, flags));
    COREMQ_ASSERT(static_cast<size_t>(end_ - at_) >= remaining_length_size(remaining_length));
    at_ += encode_remaining_length(remaining_length, at_);
  }

 private:
  uint8_t* at_;
  uint8_t* end_;
};

size_t string_size(std::string_view value) {
  COREMQ_ASSERT(value.size() <= kStringLengthMax);
  return 2 + value.size();
}

uint32_t checked_remaining_length(size_t length) {
  COREMQ_ASSERT_MSG(length <= kRemainingLengthMax, "packet exceeds the MQTT size limit");
  return static_cast<uint32_t>(length);
}

size_t packet_size(uint32_t remaining_length) {
  return 1 + remaining_length_size(remaining_length) + remaining_length;
}

// Bytes of an MQTT 5 property block whose properties take property_bytes bytes.
size_t property_block_size(size_t property_bytes) {
  COREMQ_ASSERT_MSG(property_bytes <= kRemainingLengthMax, "property block exceeds the MQTT size limit");
  return remaining_length_size(static_cast<uint32_t>(property_bytes)) + property_bytes;
}

bool is_ack(PacketType type) {
  return type == PacketType::kPuback || type == PacketType::kPubrec || type == PacketType::kPubrel ||
         type == PacketType::kPubcomp;
}

void assert_reason_code(PacketType type, uint8_t reason_code) {
  COREMQ_ASSERT_MSG(reason_code_allowed(type, static_cast<ReasonCode>(reason_code)),
                    "reason code not allowed in this packet");
}

uint8_t publish_flags(uint8_t qos, bool retain, bool dup) {
  COREMQ_ASSERT(qos <= 2);
  COREMQ_ASSERT(!(dup && qos == 0));
  return static_cast<uint8_t>((dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0));
}

// SUBSCRIBE options byte (section 3.8.3.1); before MQTT 5 only the QoS exists.
uint8_t subscription_options(const SubscribeTopic& topic, bool v5) {
  COREMQ_ASSERT(topic.qos <= 2);
  if (!v5) {
    COREMQ_ASSERT(!topic.no_local && !topic.retain_as_published && topic.retain_handling == 0);
    return topic.qos;
  }
  COREMQ_ASSERT(topic.retain_handling <= 2);
  return static_cast<uint8_t>(topic.qos | (topic.no_local ? 0x04 : 0) |
                              (topic.retain_as_published ? 0x08 : 0) | (topic.retain_handling << 4));
}

// The body of an MQTT 5 packet that is a reason code and an optional property block, with the
// short forms of DISCONNECT and AUTH (sections 3.14.2.1 and 3.15.2.1).
void encode_reason_packet(base::ByteBuffer& out, PacketType type, uint8_t reason_code,
                          std::span<const uint8_t> property_bytes, bool reason_only_form) {
  assert_reason_code(type, reason_code);
  size_t remaining = 0;
  if (!property_bytes.empty()) {
    remaining = 1 + property_block_size(property_bytes.size());
  } else if (reason_code != 0) {
    remaining = reason_only_form ? 1 : 2;
  }
  const uint32_t remaining_length = checked_remaining_length(remaining);
  const size_t size = packet_size(remaining_length);
  Writer writer(out.grow(size), size);
  writer.fixed_header(type, 0, remaining_length);
  if (remaining == 0) return;
  writer.u8(reason_code);
  if (remaining > 1) writer.property_block(property_bytes);
}

// Writes a packet whose body is just a packet identifier (acks, 3.1.1 UNSUBACK).
void encode_packet_id_packet(base::ByteBuffer& out, PacketType type, uint8_t flags, uint16_t packet_id) {
  COREMQ_ASSERT(packet_id != 0);
  Writer writer(out.grow(4), 4);
  writer.fixed_header(type, flags, 2);
  writer.u16(packet_id);
}

void encode_header_only(base::ByteBuffer& out, PacketType type) {
  Writer writer(out.grow(2), 2);
  writer.fixed_header(type, 0, 0);
}

// SUBACK and UNSUBACK of MQTT 5: identifier, property block, one reason code per filter.
void encode_reason_list_packet(base::ByteBuffer& out, PacketType type, uint16_t packet_id,
                               std::span<const uint8_t> property_bytes,
                               std::span<const uint8_t> reason_codes) {
  COREMQ_ASSERT(packet_id != 0);
  COREMQ_ASSERT(!reason_codes.empty());
  const uint32_t remaining_length =
      checked_remaining_length(2 + property_block_size(property_bytes.size()) + reason_codes.size());
  const size_t size = packet_size(remaining_length);
  Writer writer(out.grow(size), size);
  writer.fixed_header(type, 0, remaining_length);
  writer.u16(packet_id);
  writer.property_block(property_bytes);
  for (const uint8_t code : reason_codes) {
    assert_reason_code(type, code);
    writer.u8(code);
  }
}

}  // namespace

size_t remaining_length_size(uint32_t value) {
  COREMQ_ASSERT(value <= kRemainingLengthMax);
  if (value < 128u) return 1;
  if (value < 16'384u) return 2;
  if (value < 2'097'152u) return 3;
  return 4;
}

size_t encode_remaining_length(uint32_t value, uint8_t* out) {
  COREMQ_ASSERT(value <= kRemainingLengthMax);
  size_t size = 0;
  do {
    uint8_t byte = value & 0x7F;
    value >>= 7;
    if (value > 0) byte |= 0x80;
    out[size++] = byte;
  } while (value > 0);
  COREMQ_ASSERT(size <= kRemainingLengthBytesMax);
  return size;
}

void encode_remaining_length(base::ByteBuffer& out, uint32_t value) {
  uint8_t encoded[kRemainingLengthBytesMax];
  const size_t size = encode_remaining_length(value, encoded);
  out.append(encoded, size);
}

void encode_connack(base::ByteBuffer& out, bool session_present, ConnectReturnCode code) {
  // Section 3.2.2.2: a refused connection never reports a session.
  COREMQ_ASSERT(!session_present || code == ConnectReturnCode::kAccepted);
  Writer writer(out.grow(4), 4);
  writer.fixed_header(PacketType::kConnack, 0, 2);
  writer.u8(session_present ? 1 : 0);
  writer.u8(static_cast<uint8_t>(code));
}

size_t publish_packet_size(std::string_view topic, uint8_t qos, size_t payload_size) {
  COREMQ_ASSERT(qos <= 2);
  const size_t remaining = string_size(topic) + (qos > 0 ? 2 : 0) + payload_size;
  return packet_size(checked_remaining_length(remaining));
}

size_t publish_packet_size_v5(std::string_view topic, uint8_t qos, size_t property_bytes,
                              size_t payload_size) {
  COREMQ_ASSERT(qos <= 2);
  const size_t remaining =
      string_size(topic) + (qos > 0 ? 2 : 0) + property_block_size(property_bytes) + payload_size;
  return packet_size(checked_remaining_length(remaining));
}

void encode_publish_header(base::ByteBuffer& out, std::string_view topic, uint8_t qos, bool retain, bool dup,
                           uint16_t packet_id, size_t payload_size) {
  const uint8_t flags = publish_flags(qos, retain, dup);
  COREMQ_ASSERT((qos == 0) == (packet_id == 0));
  const size_t variable_header_size = string_size(topic) + (qos > 0 ? 2 : 0);
  const uint32_t remaining_length = checked_remaining_length(variable_header_size + payload_size);
  const size_t header_size = 1 + remaining_length_size(remaining_length) + variable_header_size;

  Writer writer(out.grow(header_size), header_size);
  writer.fixed_header(PacketType::kPublish, flags, remaining_length);
  writer.length_prefixed(topic);
  if (qos > 0) writer.u16(packet_id);
}

void encode_publish_header_v5(base::ByteBuffer& out, std::string_view topic, uint8_t qos, bool retain,
                              bool dup, uint16_t packet_id, std::span<const uint8_t> property_bytes,
                              size_t payload_size) {
  const uint8_t flags = publish_flags(qos, retain, dup);
  COREMQ_ASSERT((qos == 0) == (packet_id == 0));
  const size_t variable_header_size =
      string_size(topic) + (qos > 0 ? 2 : 0) + property_block_size(property_bytes.size());
  const uint32_t remaining_length = checked_remaining_length(variable_header_size + payload_size);
  const size_t header_size = 1 + remaining_length_size(remaining_length) + variable_header_size;

  Writer writer(out.grow(header_size), header_size);
  writer.fixed_header(PacketType::kPublish, flags, remaining_length);
  writer.length_prefixed(topic);
  if (qos > 0) writer.u16(packet_id);
  writer.property_block(property_bytes);
}

void encode_publish(base::ByteBuffer& out, const PublishPacket& publish) {
  encode_publish_header(out, publish.topic, publish.qos, publish.retain, publish.dup, publish.packet_id,
                        publish.payload.size());
  out.append(publish.payload);
}

void encode_publish(base::ByteBuffer& out, const PublishPacket& publish, ProtocolVersion version,
                    std::span<const uint8_t> property_bytes) {
  if (version != ProtocolVersion::kV5) {
    COREMQ_ASSERT(property_bytes.empty());
    encode_publish(out, publish);
    return;
  }
  encode_publish_header_v5(out, publish.topic, publish.qos, publish.retain, publish.dup, publish.packet_id,
                           property_bytes, publish.payload.size());
  out.append(publish.payload);
}

void encode_ack(base::ByteBuffer& out, PacketType type, uint16_t packet_id) {
  COREMQ_ASSERT(is_ack(type));
  encode_packet_id_packet(out, type, type == PacketType::kPubrel ? 0b0010 : 0, packet_id);
}

void encode_connack_v5(base::ByteBuffer& out, bool session_present, uint8_t reason_code,
                       std::span<const uint8_t> property_bytes) {
  assert_reason_code(PacketType::kConnack, reason_code);
  // Section 3.2.2.1.1: a refused connection never reports a session.
  COREMQ_ASSERT(!session_present || !is_error(static_cast<ReasonCode>(reason_code)));
  const uint32_t remaining_length = checked_remaining_length(2 + property_block_size(property_bytes.size()));
  const size_t size = packet_size(remaining_length);
  Writer writer(out.grow(size), size);
  writer.fixed_header(PacketType::kConnack, 0, remaining_length);
  writer.u8(session_present ? 1 : 0);
  writer.u8(reason_code);
  writer.property_block(property_bytes);
}

void encode_ack_v5(base::ByteBuffer& out, PacketType type, uint16_t packet_id, uint8_t reason_code,
                   std::span<const uint8_t> property_bytes) {
  COREMQ_ASSERT(is_ack(type));
  COREMQ_ASSERT(packet_id != 0);
  assert_reason_code(type, reason_code);
  const uint8_t flags = type == PacketType::kPubrel ? 0b0010 : 0;
  // Section 3.4.2.1: reason code and Property Length may be left out for Success without
  // properties, and the Property Length alone when there are no properties.
  if (reason_code == 0 && property_bytes.empty()) {
    encode_packet_id_packet(out, type, flags, packet_id);
    return;
  }
  const size_t remaining = 3 + (property_bytes.empty() ? 0 : property_block_size(property_bytes.size()));
  const uint32_t remaining_length = checked_remaining_length(remaining);
  const size_t size = packet_size(remaining_length);
  Writer writer(out.grow(size), size);
  writer.fixed_header(type, flags, remaining_length);
  writer.u16(packet_id);
  writer.u8(reason_code);
  if (!property_bytes.empty()) writer.property_block(property_bytes);
}

void encode_suback_v5(base::ByteBuffer& out, uint16_t packet_id, std::span<const uint8_t> property_bytes,
                      std::span<const uint8_t> reason_codes) {
  encode_reason_list_packet(out, PacketType::kSuback, packet_id, property_bytes, reason_codes);
}

void encode_unsuback_v5(base::ByteBuffer& out, uint16_t packet_id, std::span<const uint8_t> property_bytes,
                        std::span<const uint8_t> reason_codes) {
  encode_reason_list_packet(out, PacketType::kUnsuback, packet_id, property_bytes, reason_codes);
}

void encode_disconnect_v5(base::ByteBuffer& out, uint8_t reason_code,
                          std::span<const uint8_t> property_bytes) {
  encode_reason_packet(out, PacketType::kDisconnect, reason_code, property_bytes, /*reason_only_form=*/true);
}

void encode_auth(base::ByteBuffer& out, uint8_t reason_code, std::span<const uint8_t> property_bytes) {
  encode_reason_packet(out, PacketType::kAuth, reason_code, property_bytes, /*reason_only_form=*/false);
}

void encode_suback(base::ByteBuffer& out, uint16_t packet_id, std::span<const uint8_t> return_codes) {
  COREMQ_ASSERT(packet_id != 0);
  COREMQ_ASSERT(!return_codes.empty());
  const uint32_t remaining_length = checked_remaining_length(2 + return_codes.size());
  const size_t size = packet_size(remaining_length);
  Writer writer(out.grow(size), size);
  writer.fixed_header(PacketType::kSuback, 0, remaining_length);
  writer.u16(packet_id);
  for (const uint8_t code : return_codes) {
    COREMQ_ASSERT(code <= 2 || code == kSubackFailure);
    writer.u8(code);
  }
}

void encode_unsuback(base::ByteBuffer& out, uint16_t packet_id) {
  encode_packet_id_packet(out, PacketType::kUnsuback, 0, packet_id);
}

void encode_pingreq(base::ByteBuffer& out) {
  encode_header_only(out, PacketType::kPingreq);
}
void encode_pingresp(base::ByteBuffer& out) {
  encode_header_only(out, PacketType::kPingresp);
}
void encode_disconnect(base::ByteBuffer& out) {
  encode_header_only(out, PacketType::kDisconnect);
}

void encode_connect(base::ByteBuffer& out, const ConnectPacket& connect) {
  const uint8_t level =
      connect.protocol_level == 0 ? static_cast<uint8_t>(ProtocolVersion::kV311) : connect.protocol_level;
  std::string_view name = connect.protocol_name;
  if (name.empty())
    name = level == static_cast<uint8_t>(ProtocolVersion::kV31) ? kProtocolNameV31 : kProtocolName;
  COREMQ_ASSERT(connect.will.qos <= 2);
  COREMQ_ASSERT(connect.has_will || (connect.will.qos == 0 && !connect.will.retain));
  const bool v5 = level == static_cast<uint8_t>(ProtocolVersion::kV5);
  const size_t connect_properties = v5 ? properties_length(connect.properties) : 0;
  const size_t will_properties = v5 && connect.has_will ? properties_length(connect.will_properties) : 0;

  const size_t header_size = string_size(name) + 1 + 1 + 2;
  size_t remaining = header_size + string_size(connect.client_id);
  if (v5) remaining += property_block_size(connect_properties);
  if (connect.has_will) remaining += string_size(connect.will.topic) + string_size(connect.will.payload);
  if (v5 && connect.has_will) remaining += property_block_size(will_properties);
  if (connect.has_username) remaining += string_size(connect.username);
  if (connect.has_password) remaining += string_size(connect.password);
  const uint32_t remaining_length = checked_remaining_length(remaining);
  const size_t start = out.size();

  uint8_t flags = connect.clean_session ? 0x02 : 0;
  if (connect.has_will) {
    flags = static_cast<uint8_t>(flags | 0x04 | (connect.will.qos << 3) | (connect.will.retain ? 0x20 : 0));
  }
  if (connect.has_password) flags |= 0x40;
  if (connect.has_username) flags |= 0x80;

  // The property blocks are appended by encode_properties, so the packet is written in pieces,
  // each by a Writer sized for exactly that piece.
  {
    const size_t size = 1 + remaining_length_size(remaining_length) + header_size;
    Writer writer(out.grow(size), size);
    writer.fixed_header(PacketType::kConnect, 0, remaining_length);
    writer.length_prefixed(name);
    // A bridge (Mosquitto's try_private) sets the level's top bit; bridge.cc may also have
    // written it into protocol_level itself.
    writer.u8(connect.bridge ? static_cast<uint8_t>(level | 0x80) : level);
    writer.u8(flags);
    writer.u16(connect.keep_alive_seconds);
  }
  if (v5) encode_properties(out, PropertyContext::kConnect, connect.properties);
  {
    Writer writer(out.grow(string_size(connect.client_id)), string_size(connect.client_id));
    writer.length_prefixed(connect.client_id);
  }
  if (v5 && connect.has_will) encode_properties(out, PropertyContext::kWill, connect.will_properties);
  size_t rest = 0;
  if (connect.has_will) rest += string_size(connect.will.topic) + string_size(connect.will.payload);
  if (connect.has_username) rest += string_size(connect.username);
  if (connect.has_password) rest += string_size(connect.password);
  Writer writer(out.grow(rest), rest);
  if (connect.has_will) {
    writer.length_prefixed(connect.will.topic);
    writer.length_prefixed(connect.will.payload);
  }
  if (connect.has_username) writer.length_prefixed(connect.username);
  if (connect.has_password) writer.length_prefixed(connect.password);
  COREMQ_ASSERT(out.size() - start == packet_size(remaining_length));
}

void encode_subscribe(base::ByteBuffer& out, uint16_t packet_id, std::span<const SubscribeTopic> topics) {
  encode_subscribe(out, packet_id, topics, ProtocolVersion::kV311, {});
}

void encode_subscribe(base::ByteBuffer& out, uint16_t packet_id, std::span<const SubscribeTopic> topics,
                      ProtocolVersion version, std::span<const uint8_t> property_bytes) {
  COREMQ_ASSERT(packet_id != 0);
  COREMQ_ASSERT(!topics.empty());
  const bool v5 = version == ProtocolVersion::kV5;
  COREMQ_ASSERT(v5 || property_bytes.empty());
  size_t remaining = 2 + (v5 ? property_block_size(property_bytes.size()) : 0);
  for (const SubscribeTopic& topic : topics) remaining += string_size(topic.filter) + 1;
  const uint32_t remaining_length = checked_remaining_length(remaining);
  const size_t size = packet_size(remaining_length);
  Writer writer(out.grow(size), size);
  writer.fixed_header(PacketType::kSubscribe, 0b0010, remaining_length);
  writer.u16(packet_id);
  if (v5) writer.property_block(property_bytes);
  for (const SubscribeTopic& topic : topics) {
    writer.length_prefixed(topic.filter);
    writer.u8(subscription_options(topic, v5));
  }
}

void encode_unsubscribe(base::ByteBuffer& out, uint16_t packet_id,
                        std::span<const std::string_view> filters) {
  encode_unsubscribe(out, packet_id, filters, ProtocolVersion::kV311, {});
}

void encode_unsubscribe(base::ByteBuffer& out, uint16_t packet_id, std::span<const std::string_view> filters,
                        ProtocolVersion version, std::span<const uint8_t> property_bytes) {
  COREMQ_ASSERT(packet_id != 0);
  COREMQ_ASSERT(!filters.empty());
  const bool v5 = version == ProtocolVersion::kV5;
  COREMQ_ASSERT(v5 || property_bytes.empty());
  size_t remaining = 2 + (v5 ? property_block_size(property_bytes.size()) : 0);
  for (const std::string_view filter : filters) remaining += string_size(filter);
  const uint32_t remaining_length = checked_remaining_length(remaining);
  const size_t size = packet_size(remaining_length);
  Writer writer(out.grow(size), size);
  writer.fixed_header(PacketType::kUnsubscribe, 0b0010, remaining_length);
  writer.u16(packet_id);
  if (v5) writer.property_block(property_bytes);
  for (const std::string_view filter : filters) writer.length_prefixed(filter);
}

}  // namespace coremq::mqtt
