// Decoders for MQTT control packets: bytes in, views out. No I/O and no allocation: every decoded
// string_view and span points into the bytes the caller passed, and list-carrying packets are
// decoded into caller-owned fixed storage. Every decoder is bounds-checked against any input
// (the fuzzers run them under ASan); a return of anything but kOk leaves *out partly written.
// Pure functions, callable from any thread.
//
// Use: parse_fixed_header() on the start of the receive buffer; once header_length +
// remaining_length bytes are there, hand the body (exactly remaining_length bytes) and the header
// flags to the decoder for header.type.
//
// Status classes follow MQTT 5 section 4.13 so that they map straight onto reason codes 0x81
// (Malformed Packet) and 0x82 (Protocol Error) once MQTT 5 is wired in; under 3.1.1 both mean
// "close the connection". kMalformed: the bytes cannot be parsed as the packet (bad flags, bad
// lengths, bad UTF-8, reserved bits, trailing bytes, QoS 3). kProtocolError: it parses but breaks a
// rule of the protocol (packet identifier 0, empty SUBSCRIBE / UNSUBSCRIBE payload, wildcard or
// empty topic name in PUBLISH or in a will).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "mqtt/packet.h"

namespace coremq::mqtt {

enum class FrameStatus { kComplete, kNeedMore, kMalformed, kTooLarge };

std::string_view frame_status_name(FrameStatus status);

// Reads the fixed header from the start of `bytes`. kTooLarge when header_length + remaining_length
// exceeds max_packet_size (reported as soon as the length varint is complete, before the body
// arrived). kComplete means the header is parsed (the body may still be incomplete: the caller
// checks sizes). kMalformed for packet type 0, fixed-header flags that break the rule of the packet
// type (section 2.2.2, including PUBLISH QoS 3 and DUP on QoS 0), or a remaining length longer than
// four bytes. *header is written only on kComplete and kTooLarge.
[[nodiscard]] FrameStatus parse_fixed_header(std::span<const uint8_t> bytes, uint32_t max_packet_size,
                                             FixedHeader* header);

// True when `flags` is what section 2.2.2 requires for `type`: 0b0010 for PUBREL, SUBSCRIBE and
// UNSUBSCRIBE, any DUP/QoS/RETAIN for PUBLISH except QoS 3 or DUP with QoS 0, 0 for the rest.
bool fixed_header_flags_valid(PacketType type, uint8_t flags);

enum class DecodeStatus {
  kOk,
  kMalformed,
  kProtocolError,
  kBadProtocolName,           // CONNECT: neither "MQTT" nor "MQIsdp"; close without CONNACK
  kUnsupportedProtocolLevel,  // CONNECT: good name, level not served; answer CONNACK 0x01
  kTooManyTopics,             // SUBSCRIBE / UNSUBSCRIBE: more entries than the caller's storage
};

std::string_view decode_status_name(DecodeStatus status);

// Each decoder takes the packet body (the bytes after the fixed header, exactly remaining_length
// long) and the fixed-header flags; string_views in the result point into `body`.
//
// The per-packet decoders take the version the connection negotiated. MQTT 5 adds a property block
// after each variable header (properties.h); until that is wired in, ProtocolVersion::kV5 returns
// kUnsupportedProtocolLevel.

// CONNECT. Reads protocol name and level first and stores them in *out before anything else, so
// that on kUnsupportedProtocolLevel (for example level 5 today) the caller sees protocol_level and
// can answer with CONNACK 0x01. kOk only for "MQIsdp" level 3 and "MQTT" level 4.
[[nodiscard]] DecodeStatus decode_connect(std::span<const uint8_t> body, uint8_t flags, ConnectPacket* out);

[[nodiscard]] DecodeStatus decode_publish(std::span<const uint8_t> body, uint8_t flags,
                                          ProtocolVersion version, PublishPacket* out);

// Fills storage[0..n) and points out->topics at it; kTooManyTopics when storage is too small.
// Checks each filter for UTF-8 but not its topic syntax: that is answered per filter (SUBACK 0x80 /
// 0x8F), so the caller applies is_valid_topic_filter() to each entry.
[[nodiscard]] DecodeStatus decode_subscribe(std::span<const uint8_t> body, uint8_t flags,
                                            ProtocolVersion version, std::span<SubscribeTopic> storage,
                                            SubscribePacket* out);

[[nodiscard]] DecodeStatus decode_unsubscribe(std::span<const uint8_t> body, uint8_t flags,
                                              ProtocolVersion version, std::span<std::string_view> storage,
                                              UnsubscribePacket* out);

// PUBACK, PUBREC, PUBREL, PUBCOMP (any other type is a bug and asserts).
[[nodiscard]] DecodeStatus decode_packet_id_only(std::span<const uint8_t> body, uint8_t flags,
                                                 PacketType type, uint16_t* packet_id);

// PINGREQ, PINGRESP, DISCONNECT (3.1.1 form; any other type is a bug and asserts).
[[nodiscard]] DecodeStatus decode_empty(std::span<const uint8_t> body, uint8_t flags, PacketType type);

// Client side, for the load tool and the tests.
[[nodiscard]] DecodeStatus decode_connack(std::span<const uint8_t> body, uint8_t flags,
                                          ProtocolVersion version, ConnackPacket* out);
[[nodiscard]] DecodeStatus decode_suback(std::span<const uint8_t> body, uint8_t flags,
                                         ProtocolVersion version, SubackPacket* out);
[[nodiscard]] DecodeStatus decode_unsuback(std::span<const uint8_t> body, uint8_t flags,
                                           ProtocolVersion version, UnsubackPacket* out);

// MQTT 1.5.3: well-formed UTF-8 (no overlong forms, nothing above U+10FFFF, no truncated sequence),
// no U+0000 and no surrogate code points U+D800..U+DFFF. The SHOULD NOT rules (control characters,
// non-characters) are left to the application, as the spec allows.
bool is_valid_utf8_string(std::string_view text);

// Topic syntax (section 4.7) lives in topic/topic.h; decode_publish and decode_connect apply
// topic::is_valid_topic_name, and SUBSCRIBE filters are checked one by one by the broker.

}  // namespace coremq::mqtt
