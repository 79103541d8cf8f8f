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
// (Malformed Packet) and 0x82 (Protocol Error) (reason_code_for in reason_code.h); under 3.1.1 both
// mean "close the connection". kMalformed: the bytes cannot be parsed as the packet (bad flags, bad
// lengths, bad UTF-8, reserved bits, trailing bytes, QoS 3). kProtocolError: it parses but breaks a
// rule of the protocol (packet identifier 0, empty SUBSCRIBE / UNSUBSCRIBE payload, wildcard or
// empty topic name in PUBLISH or in a will). Under MQTT 5 the property block of each packet follows
// the rules of decode_properties (properties.h): an identifier not valid for the packet is
// kMalformed, a property repeated where it may not be or a forbidden value is kProtocolError.
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
// The per-packet decoders take the version the connection negotiated (any value but 3, 4 and 5 is
// kUnsupportedProtocolLevel). Under MQTT 5 they read the property block that follows each variable
// header into the packet's `properties`; under 3.1 / 3.1.1 that field is left empty.

// CONNECT. Reads protocol name and level first and stores them in *out before anything else, so
// that on kUnsupportedProtocolLevel the caller sees protocol_level and can answer with CONNACK
// 0x01 (or 0x84 under MQTT 5). kOk only for "MQIsdp" level 3 and "MQTT" levels 4 and 5. Level 5
// reads the CONNECT properties after the keep alive and, with a will, the will properties before
// the will topic, and allows a password without a username (section 3.1.2.9).
[[nodiscard]] DecodeStatus decode_connect(std::span<const uint8_t> body, uint8_t flags, ConnectPacket* out);

// PUBLISH as a server receives it. MQTT 5 reads the properties after the packet identifier. A
// Subscription Identifier is kProtocolError (only a server sends it, section 3.3.4). An empty
// topic name is kOk only under MQTT 5 with a Topic Alias property: the caller resolves the alias
// and checks its value (0 or above its Topic Alias Maximum is DISCONNECT 0x94).
// Under 3.1 / 3.1.1 out->properties ends empty, but is reset only when it holds a block decoded
// earlier: constructing or clearing a Properties costs more than decoding a small PUBLISH, so the
// hot path should decode into one PublishPacket that it reuses (bench/micro/codec_bench.cc).
[[nodiscard]] DecodeStatus decode_publish(std::span<const uint8_t> body, uint8_t flags,
                                          ProtocolVersion version, PublishPacket* out);
// PUBLISH as a client receives it (load tool, tests): the same, except that Subscription
// Identifiers are allowed.
[[nodiscard]] DecodeStatus decode_publish_from_server(std::span<const uint8_t> body, uint8_t flags,
                                                      ProtocolVersion version, PublishPacket* out);

// Fills storage[0..n) and points out->topics at it; kTooManyTopics when storage is too small.
// Checks each filter for UTF-8 but not its topic syntax: that is answered per filter (SUBACK 0x80 /
// 0x8F), so the caller applies is_valid_topic_filter() to each entry. MQTT 5 reads the properties
// (a Subscription Identifier of 0 is kProtocolError) and each entry's subscription options: QoS 3,
// Retain Handling 3 or a reserved bit 6 / 7 is kMalformed, No Local on a shared subscription
// ("$share/...") kProtocolError. Under 3.1.1 bits 2..7 are reserved.
[[nodiscard]] DecodeStatus decode_subscribe(std::span<const uint8_t> body, uint8_t flags,
                                            ProtocolVersion version, std::span<SubscribeTopic> storage,
                                            SubscribePacket* out);

[[nodiscard]] DecodeStatus decode_unsubscribe(std::span<const uint8_t> body, uint8_t flags,
                                              ProtocolVersion version, std::span<std::string_view> storage,
                                              UnsubscribePacket* out);

// PUBACK, PUBREC, PUBREL, PUBCOMP in the 3.1.1 form (any other type is a bug and asserts).
[[nodiscard]] DecodeStatus decode_packet_id_only(std::span<const uint8_t> body, uint8_t flags,
                                                 PacketType type, uint16_t* packet_id);

// PUBACK, PUBREC, PUBREL, PUBCOMP in either form (any other type is a bug and asserts). 3.1.1:
// exactly the packet identifier. MQTT 5: a remaining length of 2 means reason code 0 without
// properties, 3 a reason code without properties, more a reason code and a property block. A
// reason code that table 2-6 does not list for the packet is kMalformed.
[[nodiscard]] DecodeStatus decode_ack(std::span<const uint8_t> body, uint8_t flags, PacketType type,
                                      ProtocolVersion version, AckPacket* out);

// PINGREQ, PINGRESP, DISCONNECT (3.1.1 form; any other type is a bug and asserts).
[[nodiscard]] DecodeStatus decode_empty(std::span<const uint8_t> body, uint8_t flags, PacketType type);

// DISCONNECT in either form. 3.1.1: an empty body. MQTT 5: an empty body means reason code 0
// without properties, one byte a reason code without properties, more a reason code and a property
// block.
[[nodiscard]] DecodeStatus decode_disconnect(std::span<const uint8_t> body, uint8_t flags,
                                             ProtocolVersion version, DisconnectPacket* out);

// AUTH (MQTT 5 only). An empty body means reason code 0 (Success) without properties; any other
// body is a reason code (0x00, 0x18 or 0x19) and a property block, which must carry an
// Authentication Method (kProtocolError otherwise, section 3.15.2.2.2).
[[nodiscard]] DecodeStatus decode_auth(std::span<const uint8_t> body, uint8_t flags, AuthPacket* out);

// Client side, for the load tool and the tests. MQTT 5 adds the properties after the packet
// identifier (after the reason code in CONNACK) and, in SUBACK and UNSUBACK, reason codes that
// table 2-6 lists for the packet (kMalformed otherwise; none at all is kProtocolError).
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
