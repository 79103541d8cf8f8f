// libFuzzer target for the pure MQTT codec (src/mqtt/): every decoder on arbitrary bytes, for
// every packet type and protocol level, and an encode -> decode round trip of each packet that
// decoded. Built with ASan + UBSan (tests/fuzz/meson.build); a crash, a sanitizer report or a
// failed COREMQ_ASSERT is a bug in the codec.
//
// Input: byte 0 is the first byte of a fixed header (type and flags) used for the per-type
// decoders; the rest is the packet body. The whole input is also framed by
// parse_fixed_header, and when it holds a complete packet that packet is decoded as the
// broker would decode it.
//
// Oracles beyond "no crash":
//   - a body that decodes is re-encoded by src/mqtt/encoder and must come back byte for byte
//     (MQTT bodies have exactly one encoding; only the length varint of the fixed header can be
//     written in more than one way) and decode to the same fields;
//   - parse_fixed_header's header_length and remaining_length agree with the encoder's
//     variable byte integer;
//   - on well-formed UTF-8 strings, a valid topic name is also a valid filter that matches itself.
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <span>
#include <string_view>

#include "base/assert.h"
#include "base/byte_buffer.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/packet.h"
#include "topic/topic.h"

namespace {

using namespace coremq;
using mqtt::DecodeStatus;
using mqtt::PacketType;
using mqtt::ProtocolVersion;

// Storage bound for SUBSCRIBE / UNSUBSCRIBE entries: small, so kTooManyTopics is reached too.
constexpr size_t kTopicsMax = 8;

constexpr ProtocolVersion kVersions[] = {ProtocolVersion::kV31, ProtocolVersion::kV311, ProtocolVersion::kV5};

// The encoders write the MQTT 3.1.1 forms: round trips are checked for those versions only.
bool round_trips(ProtocolVersion version) { return version != ProtocolVersion::kV5; }

// The body that the encoder wrote into `buffer` after its fixed header; checks the header too.
std::span<const uint8_t> body_of(const base::ByteBuffer& buffer, PacketType type) {
  mqtt::FixedHeader header{};
  mqtt::FrameStatus status = mqtt::parse_fixed_header(buffer.span(), mqtt::kRemainingLengthMax + 5, &header);
  COREMQ_ASSERT_MSG(status == mqtt::FrameStatus::kComplete, "encoder output does not frame");
  COREMQ_ASSERT(header.type == type);
  COREMQ_ASSERT(header.header_length + header.remaining_length == buffer.size());
  return buffer.span().subspan(header.header_length);
}

void expect_same_body(std::span<const uint8_t> original, std::span<const uint8_t> encoded) {
  COREMQ_ASSERT_MSG(original.size() == encoded.size(), "round trip changed the body size");
  COREMQ_ASSERT_MSG(original.empty() || std::memcmp(original.data(), encoded.data(), original.size()) == 0,
                    "round trip changed the body bytes");
}

void fuzz_connect(std::span<const uint8_t> body, uint8_t flags) {
  mqtt::ConnectPacket connect;
  if (mqtt::decode_connect(body, flags, &connect) != DecodeStatus::kOk) return;
  // MQTT 5 CONNECTs carry properties that encode_connect does not write: no round trip for them.
  if (connect.protocol_level == static_cast<uint8_t>(ProtocolVersion::kV5)) return;
  COREMQ_ASSERT(connect.protocol_level == 3 || connect.protocol_level == 4);
  COREMQ_ASSERT(!connect.has_will || topic::is_valid_topic_name(connect.will.topic));
  base::ByteBuffer encoded;
  mqtt::encode_connect(encoded, connect);
  std::span<const uint8_t> again = body_of(encoded, PacketType::kConnect);
  expect_same_body(body, again);
  mqtt::ConnectPacket decoded;
  COREMQ_ASSERT(mqtt::decode_connect(again, 0, &decoded) == DecodeStatus::kOk);
  COREMQ_ASSERT(decoded.client_id == connect.client_id && decoded.keep_alive_seconds == connect.keep_alive_seconds);
  COREMQ_ASSERT(decoded.has_will == connect.has_will && decoded.will.topic == connect.will.topic);
  COREMQ_ASSERT(decoded.will.payload == connect.will.payload && decoded.will.qos == connect.will.qos);
  COREMQ_ASSERT(decoded.username == connect.username && decoded.password == connect.password);
}

void fuzz_publish(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version) {
  mqtt::PublishPacket publish;
  if (mqtt::decode_publish(body, flags, version, &publish) != DecodeStatus::kOk || !round_trips(version)) return;
  COREMQ_ASSERT(publish.qos <= 2 && (publish.qos == 0) == (publish.packet_id == 0));
  COREMQ_ASSERT(topic::is_valid_topic_name(publish.topic));
  COREMQ_ASSERT(mqtt::publish_packet_size(publish.topic, publish.qos, publish.payload.size()) >= body.size() + 2);
  base::ByteBuffer encoded;
  mqtt::encode_publish(encoded, publish);
  COREMQ_ASSERT(encoded.size() == mqtt::publish_packet_size(publish.topic, publish.qos, publish.payload.size()));
  std::span<const uint8_t> again = body_of(encoded, PacketType::kPublish);
  expect_same_body(body, again);
  COREMQ_ASSERT((encoded.data()[0] & 0x0F) == flags);
}

void fuzz_subscribe(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version) {
  mqtt::SubscribeTopic storage[kTopicsMax];
  mqtt::SubscribePacket subscribe;
  if (mqtt::decode_subscribe(body, flags, version, storage, &subscribe) != DecodeStatus::kOk) return;
  if (!round_trips(version)) return;
  COREMQ_ASSERT(!subscribe.topics.empty() && subscribe.topics.size() <= kTopicsMax);
  for (const mqtt::SubscribeTopic& entry : subscribe.topics) {
    COREMQ_ASSERT(entry.qos <= 2);
    COREMQ_ASSERT(mqtt::is_valid_utf8_string(entry.filter));
  }
  base::ByteBuffer encoded;
  mqtt::encode_subscribe(encoded, subscribe.packet_id, subscribe.topics);
  expect_same_body(body, body_of(encoded, PacketType::kSubscribe));
}

void fuzz_unsubscribe(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version) {
  std::string_view storage[kTopicsMax];
  mqtt::UnsubscribePacket unsubscribe;
  if (mqtt::decode_unsubscribe(body, flags, version, storage, &unsubscribe) != DecodeStatus::kOk) return;
  if (!round_trips(version)) return;
  COREMQ_ASSERT(!unsubscribe.filters.empty() && unsubscribe.filters.size() <= kTopicsMax);
  base::ByteBuffer encoded;
  mqtt::encode_unsubscribe(encoded, unsubscribe.packet_id, unsubscribe.filters);
  expect_same_body(body, body_of(encoded, PacketType::kUnsubscribe));
}

void fuzz_packet_id_only(std::span<const uint8_t> body, uint8_t flags, PacketType type) {
  uint16_t packet_id = 0;
  if (mqtt::decode_packet_id_only(body, flags, type, &packet_id) != DecodeStatus::kOk) return;
  COREMQ_ASSERT(packet_id != 0);
  base::ByteBuffer encoded;
  mqtt::encode_ack(encoded, type, packet_id);
  expect_same_body(body, body_of(encoded, type));
  COREMQ_ASSERT((encoded.data()[0] & 0x0F) == flags);
}

void fuzz_empty(std::span<const uint8_t> body, uint8_t flags, PacketType type) {
  if (mqtt::decode_empty(body, flags, type) != DecodeStatus::kOk) return;
  COREMQ_ASSERT(body.empty() && flags == 0);
}

void fuzz_connack(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version) {
  mqtt::ConnackPacket connack;
  if (mqtt::decode_connack(body, flags, version, &connack) != DecodeStatus::kOk || !round_trips(version)) return;
  base::ByteBuffer encoded;
  mqtt::encode_connack(encoded, connack.session_present, connack.return_code);
  expect_same_body(body, body_of(encoded, PacketType::kConnack));
}

void fuzz_suback(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version) {
  mqtt::SubackPacket suback;
  if (mqtt::decode_suback(body, flags, version, &suback) != DecodeStatus::kOk || !round_trips(version)) return;
  base::ByteBuffer encoded;
  mqtt::encode_suback(encoded, suback.packet_id, suback.return_codes);
  expect_same_body(body, body_of(encoded, PacketType::kSuback));
}

void fuzz_unsuback(std::span<const uint8_t> body, uint8_t flags, ProtocolVersion version) {
  mqtt::UnsubackPacket unsuback;
  if (mqtt::decode_unsuback(body, flags, version, &unsuback) != DecodeStatus::kOk || !round_trips(version)) return;
  base::ByteBuffer encoded;
  mqtt::encode_unsuback(encoded, unsuback.packet_id);
  expect_same_body(body, body_of(encoded, PacketType::kUnsuback));
}

// Runs the decoder of `type` (any value 1..15) with every protocol level that it takes.
void fuzz_body(PacketType type, uint8_t flags, std::span<const uint8_t> body) {
  switch (type) {
    case PacketType::kConnect: fuzz_connect(body, flags); return;
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp: fuzz_packet_id_only(body, flags, type); return;
    case PacketType::kPingreq:
    case PacketType::kPingresp:
    case PacketType::kDisconnect: fuzz_empty(body, flags, type); return;
    case PacketType::kAuth: return;  // MQTT 5 only; no decoder yet
    default: break;
  }
  for (ProtocolVersion version : kVersions) {
    switch (type) {
      case PacketType::kPublish: fuzz_publish(body, flags, version); break;
      case PacketType::kSubscribe: fuzz_subscribe(body, flags, version); break;
      case PacketType::kUnsubscribe: fuzz_unsubscribe(body, flags, version); break;
      case PacketType::kConnack: fuzz_connack(body, flags, version); break;
      case PacketType::kSuback: fuzz_suback(body, flags, version); break;
      case PacketType::kUnsuback: fuzz_unsuback(body, flags, version); break;
      default: COREMQ_ASSERT_MSG(false, "unhandled packet type");
    }
  }
}

// Frames the whole input as the broker's packet loop does, with a small and a large limit.
void fuzz_framing(std::span<const uint8_t> bytes) {
  for (uint32_t max_packet_size : {uint32_t{64}, uint32_t{1024 * 1024}}) {
    mqtt::FixedHeader header{};
    mqtt::FrameStatus status = mqtt::parse_fixed_header(bytes, max_packet_size, &header);
    if (status != mqtt::FrameStatus::kComplete && status != mqtt::FrameStatus::kTooLarge) continue;
    COREMQ_ASSERT(header.header_length >= 2 && header.header_length <= mqtt::kFixedHeaderSizeMax);
    COREMQ_ASSERT(header.remaining_length <= mqtt::kRemainingLengthMax);
    COREMQ_ASSERT(mqtt::fixed_header_flags_valid(header.type, header.flags));
    // Non-minimal length encodings are accepted (3.1.1 does not forbid them), so the header is
    // at least as long as the encoder's.
    COREMQ_ASSERT(header.header_length >= 1 + mqtt::remaining_length_size(header.remaining_length));
    COREMQ_ASSERT((status == mqtt::FrameStatus::kTooLarge) ==
                  (uint64_t{header.header_length} + header.remaining_length > max_packet_size));
    if (status != mqtt::FrameStatus::kComplete) continue;
    if (bytes.size() < size_t{header.header_length} + header.remaining_length) continue;
    fuzz_body(header.type, header.flags, bytes.subspan(header.header_length, header.remaining_length));
  }
}

void fuzz_strings(std::span<const uint8_t> bytes) {
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), std::min<size_t>(bytes.size(), 65535));
  if (!mqtt::is_valid_utf8_string(text)) return;
  // A topic name is a filter without wildcards, and matches itself.
  if (topic::is_valid_topic_name(text)) {
    COREMQ_ASSERT(topic::is_valid_topic_filter(text));
    COREMQ_ASSERT(topic::topic_matches(text, text));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> input(data, size);
  fuzz_framing(input);
  if (size >= 1) {
    const uint8_t first = data[0];
    const auto type_value = static_cast<uint8_t>(first >> 4);
    if (type_value != 0) fuzz_body(static_cast<PacketType>(type_value), first & 0x0F, input.subspan(1));
  }
  fuzz_strings(input.subspan(std::min<size_t>(size, 1)));
  return 0;
}
