// Packet encoders (see encoder.h). Each computes the remaining length first, grows the buffer once
// for the whole packet and writes in place, so a warmed-up send buffer never reallocates here.
#include "mqtt/encoder.h"

#include <cstring>

#include "base/assert.h"

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

void encode_publish_header(base::ByteBuffer& out, std::string_view topic, uint8_t qos, bool retain, bool dup,
                           uint16_t packet_id, size_t payload_size) {
  COREMQ_ASSERT(qos <= 2);
  COREMQ_ASSERT((qos == 0) == (packet_id == 0));
  COREMQ_ASSERT(!(dup && qos == 0));
  const size_t variable_header_size = string_size(topic) + (qos > 0 ? 2 : 0);
  const uint32_t remaining_length = checked_remaining_length(variable_header_size + payload_size);
  const size_t header_size = 1 + remaining_length_size(remaining_length) + variable_header_size;
  const auto flags = static_cast<uint8_t>((dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0));

  Writer writer(out.grow(header_size), header_size);
  writer.fixed_header(PacketType::kPublish, flags, remaining_length);
  writer.length_prefixed(topic);
  if (qos > 0) writer.u16(packet_id);
}

void encode_publish(base::ByteBuffer& out, const PublishPacket& publish) {
  encode_publish_header(out, publish.topic, publish.qos, publish.retain, publish.dup, publish.packet_id,
                        publish.payload.size());
  out.append(publish.payload);
}

void encode_ack(base::ByteBuffer& out, PacketType type, uint16_t packet_id) {
  COREMQ_ASSERT(type == PacketType::kPuback || type == PacketType::kPubrec || type == PacketType::kPubrel ||
                type == PacketType::kPubcomp);
  encode_packet_id_packet(out, type, type == PacketType::kPubrel ? 0b0010 : 0, packet_id);
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

  size_t remaining = string_size(name) + 1 + 1 + 2 + string_size(connect.client_id);
  if (connect.has_will) remaining += string_size(connect.will.topic) + string_size(connect.will.payload);
  if (connect.has_username) remaining += string_size(connect.username);
  if (connect.has_password) remaining += string_size(connect.password);
  const uint32_t remaining_length = checked_remaining_length(remaining);

  uint8_t flags = connect.clean_session ? 0x02 : 0;
  if (connect.has_will) {
    flags = static_cast<uint8_t>(flags | 0x04 | (connect.will.qos << 3) | (connect.will.retain ? 0x20 : 0));
  }
  if (connect.has_password) flags |= 0x40;
  if (connect.has_username) flags |= 0x80;

  const size_t size = packet_size(remaining_length);
  Writer writer(out.grow(size), size);
  writer.fixed_header(PacketType::kConnect, 0, remaining_length);
  writer.length_prefixed(name);
  writer.u8(level);
  writer.u8(flags);
  writer.u16(connect.keep_alive_seconds);
  writer.length_prefixed(connect.client_id);
  if (connect.has_will) {
    writer.length_prefixed(connect.will.topic);
    writer.length_prefixed(connect.will.payload);
  }
  if (connect.has_username) writer.length_prefixed(connect.username);
  if (connect.has_password) writer.length_prefixed(connect.password);
}

void encode_subscribe(base::ByteBuffer& out, uint16_t packet_id, std::span<const SubscribeTopic> topics) {
  COREMQ_ASSERT(packet_id != 0);
  COREMQ_ASSERT(!topics.empty());
  size_t remaining = 2;
  for (const SubscribeTopic& topic : topics) remaining += string_size(topic.filter) + 1;
  const uint32_t remaining_length = checked_remaining_length(remaining);
  const size_t size = packet_size(remaining_length);
  Writer writer(out.grow(size), size);
  writer.fixed_header(PacketType::kSubscribe, 0b0010, remaining_length);
  writer.u16(packet_id);
  for (const SubscribeTopic& topic : topics) {
    COREMQ_ASSERT(topic.qos <= 2);
    writer.length_prefixed(topic.filter);
    writer.u8(topic.qos);
  }
}

void encode_unsubscribe(base::ByteBuffer& out, uint16_t packet_id,
                        std::span<const std::string_view> filters) {
  COREMQ_ASSERT(packet_id != 0);
  COREMQ_ASSERT(!filters.empty());
  size_t remaining = 2;
  for (const std::string_view filter : filters) remaining += string_size(filter);
  const uint32_t remaining_length = checked_remaining_length(remaining);
  const size_t size = packet_size(remaining_length);
  Writer writer(out.grow(size), size);
  writer.fixed_header(PacketType::kUnsubscribe, 0b0010, remaining_length);
  writer.u16(packet_id);
  for (const std::string_view filter : filters) writer.length_prefixed(filter);
}

}  // namespace coremq::mqtt
