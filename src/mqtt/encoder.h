// Encoders for MQTT control packets: each appends one complete packet (or, for PUBLISH, its header)
// to a base::ByteBuffer. Arguments that break the protocol (QoS 3, packet identifier 0 where one is
// required, a string longer than 65535 bytes, a packet over the 268435455-byte limit) are bugs in
// the caller and assert; nothing here validates UTF-8, since what we send was validated on the way
// in or written by us. Callable from any thread on a buffer that thread owns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "base/byte_buffer.h"
#include "mqtt/packet.h"

namespace coremq::mqtt {

// Variable byte integer helpers (section 2.2.3). value <= kRemainingLengthMax.
size_t remaining_length_size(uint32_t value);
// Writes the encoding to `out` (room for kRemainingLengthBytesMax bytes) and returns its size.
size_t encode_remaining_length(uint32_t value, uint8_t* out);
void encode_remaining_length(base::ByteBuffer& out, uint32_t value);

// Server side.
void encode_connack(base::ByteBuffer& out, bool session_present, ConnectReturnCode code);
// Fixed header and variable header only; the caller appends payload_size bytes of payload. This lets
// the publish path build a header once and send it in front of a shared payload.
void encode_publish_header(base::ByteBuffer& out, std::string_view topic, uint8_t qos, bool retain, bool dup,
                           uint16_t packet_id, size_t payload_size);
void encode_publish(base::ByteBuffer& out, const PublishPacket& publish);
// Total bytes on the wire of a PUBLISH (fixed header included), for flow control and size limits.
size_t publish_packet_size(std::string_view topic, uint8_t qos, size_t payload_size);
// PUBACK, PUBREC, PUBREL (flags 0b0010), PUBCOMP.
void encode_ack(base::ByteBuffer& out, PacketType type, uint16_t packet_id);
void encode_suback(base::ByteBuffer& out, uint16_t packet_id, std::span<const uint8_t> return_codes);
void encode_unsuback(base::ByteBuffer& out, uint16_t packet_id);
void encode_pingreq(base::ByteBuffer& out);
void encode_pingresp(base::ByteBuffer& out);
void encode_disconnect(base::ByteBuffer& out);

// Client side (load tool, tests). encode_connect derives protocol name and level from each other:
// level 0 means 4 (3.1.1) and an empty name means "MQIsdp" for level 3, "MQTT" otherwise.
void encode_connect(base::ByteBuffer& out, const ConnectPacket& connect);
void encode_subscribe(base::ByteBuffer& out, uint16_t packet_id, std::span<const SubscribeTopic> topics);
void encode_unsubscribe(base::ByteBuffer& out, uint16_t packet_id, std::span<const std::string_view> filters);

}  // namespace coremq::mqtt
