// Encoders for MQTT control packets: each appends one complete packet (or, for PUBLISH, its header)
// to a base::ByteBuffer. Arguments that break the protocol (QoS 3, packet identifier 0 where one is
// required, a string longer than 65535 bytes, a packet over the 268435455-byte limit) are bugs in
// the caller and assert; nothing here validates UTF-8, since what we send was validated on the way
// in or written by us. Callable from any thread on a buffer that thread owns.
//
// The MQTT 5 encoders (the *_v5 functions, encode_auth, and the overloads that take a
// ProtocolVersion) take each property block as raw bytes WITHOUT the Property Length: they write
// the length (a variable byte integer) and then those bytes; an empty span writes length 0. Build a
// block with encode_property_bytes (properties.h), or forward the `encoded` view of a decoded one.
// Property bytes are not checked here: they were validated on the way in or written by us.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "base/byte_buffer.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"

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

// Server side, MQTT 5. Reason codes must be ones that table 2-6 allows for the packet (asserts).
void encode_connack_v5(base::ByteBuffer& out, bool session_present, uint8_t reason_code,
                       std::span<const uint8_t> property_bytes);
// As encode_publish_header, with the property block after the packet identifier. The topic may be
// empty when property_bytes carry a Topic Alias.
void encode_publish_header_v5(base::ByteBuffer& out, std::string_view topic, uint8_t qos, bool retain,
                              bool dup, uint16_t packet_id, std::span<const uint8_t> property_bytes,
                              size_t payload_size);
// Total bytes on the wire of an MQTT 5 PUBLISH whose property block (without its length) is
// property_bytes long.
size_t publish_packet_size_v5(std::string_view topic, uint8_t qos, size_t property_bytes,
                              size_t payload_size);
// PUBACK, PUBREC, PUBREL, PUBCOMP in the shortest form the spec allows: the packet identifier
// alone for reason 0 without properties, identifier and reason code without properties, or all.
void encode_ack_v5(base::ByteBuffer& out, PacketType type, uint16_t packet_id, uint8_t reason_code,
                   std::span<const uint8_t> property_bytes);
void encode_suback_v5(base::ByteBuffer& out, uint16_t packet_id, std::span<const uint8_t> property_bytes,
                      std::span<const uint8_t> reason_codes);
void encode_unsuback_v5(base::ByteBuffer& out, uint16_t packet_id, std::span<const uint8_t> property_bytes,
                        std::span<const uint8_t> reason_codes);

// Either side, MQTT 5. DISCONNECT uses the short forms: an empty body for reason 0 without
// properties, the reason code alone without properties. AUTH is empty for reason 0 without
// properties and carries reason code and property block otherwise.
void encode_disconnect_v5(base::ByteBuffer& out, uint8_t reason_code,
                          std::span<const uint8_t> property_bytes);
void encode_auth(base::ByteBuffer& out, uint8_t reason_code, std::span<const uint8_t> property_bytes);

// Client side (load tool, tests). encode_connect derives protocol name and level from each other:
// level 0 means 4 (3.1.1) and an empty name means "MQIsdp" for level 3, "MQTT" otherwise. At level
// 5 it writes connect.properties and, with a will, connect.will_properties with encode_properties:
// the optionals only, in identifier order (their user_property_count and `encoded` are ignored).
void encode_connect(base::ByteBuffer& out, const ConnectPacket& connect);
void encode_subscribe(base::ByteBuffer& out, uint16_t packet_id, std::span<const SubscribeTopic> topics);
void encode_unsubscribe(base::ByteBuffer& out, uint16_t packet_id, std::span<const std::string_view> filters);
// The same for any version: under MQTT 5 with the property block and, for SUBSCRIBE, every
// subscription option of each entry; before MQTT 5 property_bytes must be empty and the options
// other than QoS at their defaults (asserts).
void encode_publish(base::ByteBuffer& out, const PublishPacket& publish, ProtocolVersion version,
                    std::span<const uint8_t> property_bytes);
void encode_subscribe(base::ByteBuffer& out, uint16_t packet_id, std::span<const SubscribeTopic> topics,
                      ProtocolVersion version, std::span<const uint8_t> property_bytes);
void encode_unsubscribe(base::ByteBuffer& out, uint16_t packet_id, std::span<const std::string_view> filters,
                        ProtocolVersion version, std::span<const uint8_t> property_bytes);

}  // namespace coremq::mqtt
