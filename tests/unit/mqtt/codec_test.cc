// Round trips of every packet type through the encoders and decoders, exact wire bytes for the
// small packets, fixed-header framing (kNeedMore, kTooLarge, flag rules) and the remaining-length
// boundaries of section 2.2.3.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "base/byte_buffer.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/packet.h"

namespace coremq::mqtt {
namespace {

std::vector<uint8_t> to_vector(const base::ByteBuffer& buffer) {
  return std::vector<uint8_t>(buffer.data(), buffer.data() + buffer.size());
}

// Frames the single packet in `buffer` and returns its body; fails the test if framing fails.
std::span<const uint8_t> frame(const base::ByteBuffer& buffer, FixedHeader* header) {
  const FrameStatus status = parse_fixed_header(buffer.span(), kRemainingLengthMax + 5, header);
  EXPECT_EQ(status, FrameStatus::kComplete);
  EXPECT_EQ(header->header_length + header->remaining_length, buffer.size());
  return buffer.span().subspan(header->header_length);
}

// The decoded views point into `buffer`, which therefore belongs to the caller.
ConnectPacket round_trip_connect(const ConnectPacket& connect, base::ByteBuffer& buffer,
                                 DecodeStatus expected = DecodeStatus::kOk) {
  encode_connect(buffer, connect);
  FixedHeader header{};
  const auto body = frame(buffer, &header);
  EXPECT_EQ(header.type, PacketType::kConnect);
  ConnectPacket decoded;
  EXPECT_EQ(decode_connect(body, header.flags, &decoded), expected);
  return decoded;
}

TEST(MqttCodecRoundTrip, ConnectWithEverything) {
  ConnectPacket connect;
  connect.clean_session = false;
  connect.keep_alive_seconds = 60;
  connect.client_id = "client-1";
  connect.has_will = true;
  connect.will = Will{"status/client-1", std::string_view("gone\0\xff", 6), 2, true};
  connect.has_username = true;
  connect.username = "user";
  connect.has_password = true;
  connect.password = std::string_view("\xff\x00pw", 4);

  base::ByteBuffer buffer;
  const ConnectPacket decoded = round_trip_connect(connect, buffer);
  EXPECT_EQ(decoded.protocol_name, "MQTT");
  EXPECT_EQ(decoded.protocol_level, 4);
  EXPECT_FALSE(decoded.clean_session);
  EXPECT_EQ(decoded.keep_alive_seconds, 60);
  EXPECT_EQ(decoded.client_id, "client-1");
  EXPECT_TRUE(decoded.has_will);
  EXPECT_EQ(decoded.will.topic, "status/client-1");
  EXPECT_EQ(decoded.will.payload, connect.will.payload);
  EXPECT_EQ(decoded.will.qos, 2);
  EXPECT_TRUE(decoded.will.retain);
  EXPECT_TRUE(decoded.has_username);
  EXPECT_EQ(decoded.username, "user");
  EXPECT_TRUE(decoded.has_password);
  EXPECT_EQ(decoded.password, connect.password);
}

TEST(MqttCodecRoundTrip, ConnectMinimalWireBytes) {
  ConnectPacket connect;
  connect.keep_alive_seconds = 10;
  connect.client_id = "a";
  base::ByteBuffer buffer;
  encode_connect(buffer, connect);
  const std::vector<uint8_t> expected = {0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 10, 0, 1, 'a'};
  EXPECT_EQ(to_vector(buffer), expected);

  base::ByteBuffer round_trip_buffer;
  const ConnectPacket decoded = round_trip_connect(connect, round_trip_buffer);
  EXPECT_TRUE(decoded.clean_session);
  EXPECT_FALSE(decoded.has_will);
  EXPECT_FALSE(decoded.has_username);
  EXPECT_FALSE(decoded.has_password);
}

TEST(MqttCodecRoundTrip, ConnectEmptyClientId) {
  ConnectPacket connect;
  base::ByteBuffer buffer;
  const ConnectPacket decoded = round_trip_connect(connect, buffer);
  EXPECT_TRUE(decoded.client_id.empty());
}

TEST(MqttCodecRoundTrip, ConnectV31) {
  ConnectPacket connect;
  connect.protocol_level = 3;
  connect.client_id = "old-client";
  // 3.1 did not forbid a password without a username.
  connect.has_password = true;
  connect.password = "secret";
  base::ByteBuffer buffer;
  const ConnectPacket decoded = round_trip_connect(connect, buffer);
  EXPECT_EQ(decoded.protocol_name, "MQIsdp");
  EXPECT_EQ(decoded.protocol_level, 3);
  EXPECT_EQ(decoded.password, "secret");
}

// A Mosquitto bridge's CONNECT (try_private: level 0x84) decodes as level 4 with `bridge` set and
// encodes back to the same bytes (fuzz_decoder's round trip found the bit dropped).
TEST(MqttCodecRoundTrip, ConnectBridgeBitRoundTrips) {
  ConnectPacket connect;
  connect.protocol_level = 4;
  connect.bridge = true;
  connect.client_id = "edge.bridge";
  base::ByteBuffer buffer;
  const ConnectPacket decoded = round_trip_connect(connect, buffer);
  EXPECT_TRUE(decoded.bridge);
  EXPECT_EQ(decoded.protocol_level, 4);
  FixedHeader header{};
  const auto body = frame(buffer, &header);
  EXPECT_EQ(body[6], 0x84);  // after the length-prefixed "MQTT"
  base::ByteBuffer again;
  encode_connect(again, decoded);
  EXPECT_EQ(to_vector(again), to_vector(buffer));
}

TEST(MqttCodecRoundTrip, ConnectUnknownLevelReportsLevel) {
  ConnectPacket connect;
  connect.protocol_level = 6;
  connect.client_id = "new-client";
  base::ByteBuffer buffer;
  const ConnectPacket decoded = round_trip_connect(connect, buffer, DecodeStatus::kUnsupportedProtocolLevel);
  EXPECT_EQ(decoded.protocol_name, "MQTT");
  EXPECT_EQ(decoded.protocol_level, 6);
}

TEST(MqttCodecRoundTrip, Connack) {
  for (uint8_t code = 0; code <= 5; code++) {
    for (const bool session_present : {false, true}) {
      if (session_present && code != 0) continue;
      base::ByteBuffer buffer;
      encode_connack(buffer, session_present, static_cast<ConnectReturnCode>(code));
      const std::vector<uint8_t> expected = {0x20, 2, static_cast<uint8_t>(session_present ? 1 : 0), code};
      EXPECT_EQ(to_vector(buffer), expected);
      FixedHeader header{};
      const auto body = frame(buffer, &header);
      ConnackPacket decoded;
      ASSERT_EQ(decode_connack(body, header.flags, ProtocolVersion::kV311, &decoded), DecodeStatus::kOk);
      EXPECT_EQ(decoded.session_present, session_present);
      EXPECT_EQ(static_cast<uint8_t>(decoded.return_code), code);
    }
  }
}

struct PublishCase {
  uint8_t qos;
  bool retain;
  bool dup;
  uint16_t packet_id;
  size_t payload_size;
};

TEST(MqttCodecRoundTrip, Publish) {
  const PublishCase cases[] = {
      {0, false, false, 0, 0},     {0, true, false, 0, 5},      {1, false, false, 1, 64},
      {1, true, true, 65535, 200}, {2, false, true, 42, 16380}, {2, true, false, 7, 70000},
  };
  for (const PublishCase& test_case : cases) {
    SCOPED_TRACE(testing::Message() << "qos " << int{test_case.qos} << " payload " << test_case.payload_size);
    std::string payload(test_case.payload_size, '\0');
    for (size_t index = 0; index < payload.size(); index++) payload[index] = static_cast<char>(index * 7);
    PublishPacket publish{
        "sensors/room-1/temperature", payload, test_case.qos, test_case.retain, test_case.dup,
        test_case.packet_id};
    base::ByteBuffer buffer;
    encode_publish(buffer, publish);
    EXPECT_EQ(buffer.size(), publish_packet_size(publish.topic, publish.qos, payload.size()));

    base::ByteBuffer split;
    encode_publish_header(split, publish.topic, publish.qos, publish.retain, publish.dup, publish.packet_id,
                          payload.size());
    split.append(std::string_view(payload));
    EXPECT_EQ(to_vector(split), to_vector(buffer));

    FixedHeader header{};
    const auto body = frame(buffer, &header);
    EXPECT_EQ(header.type, PacketType::kPublish);
    PublishPacket decoded;
    ASSERT_EQ(decode_publish(body, header.flags, ProtocolVersion::kV311, &decoded), DecodeStatus::kOk);
    EXPECT_EQ(decoded.topic, publish.topic);
    EXPECT_EQ(decoded.payload, publish.payload);
    EXPECT_EQ(decoded.qos, publish.qos);
    EXPECT_EQ(decoded.retain, publish.retain);
    EXPECT_EQ(decoded.dup, publish.dup);
    EXPECT_EQ(decoded.packet_id, publish.packet_id);
  }
}

TEST(MqttCodecRoundTrip, PublishWireBytes) {
  base::ByteBuffer buffer;
  encode_publish(buffer, PublishPacket{"a/b", "hi", 1, true, false, 0x0102});
  const std::vector<uint8_t> expected = {0x33, 9, 0, 3, 'a', '/', 'b', 1, 2, 'h', 'i'};
  EXPECT_EQ(to_vector(buffer), expected);
}

TEST(MqttCodecRoundTrip, PublishV31) {
  base::ByteBuffer buffer;
  encode_publish(buffer, PublishPacket{"t", "x", 0, false, false, 0});
  FixedHeader header{};
  const auto body = frame(buffer, &header);
  PublishPacket decoded;
  EXPECT_EQ(decode_publish(body, header.flags, ProtocolVersion::kV31, &decoded), DecodeStatus::kOk);
}

TEST(MqttCodecRoundTrip, Acks) {
  const std::pair<PacketType, uint8_t> types[] = {{PacketType::kPuback, 0x40},
                                                  {PacketType::kPubrec, 0x50},
                                                  {PacketType::kPubrel, 0x62},
                                                  {PacketType::kPubcomp, 0x70}};
  for (const auto& [type, first_byte] : types) {
    SCOPED_TRACE(packet_type_name(type));
    base::ByteBuffer buffer;
    encode_ack(buffer, type, 0xBEEF);
    const std::vector<uint8_t> expected = {first_byte, 2, 0xBE, 0xEF};
    EXPECT_EQ(to_vector(buffer), expected);
    FixedHeader header{};
    const auto body = frame(buffer, &header);
    EXPECT_EQ(header.type, type);
    uint16_t packet_id = 0;
    ASSERT_EQ(decode_packet_id_only(body, header.flags, type, &packet_id), DecodeStatus::kOk);
    EXPECT_EQ(packet_id, 0xBEEF);
  }
}

TEST(MqttCodecRoundTrip, SubscribeAndSuback) {
  const std::array<SubscribeTopic, 3> topics = {SubscribeTopic{"a/+/c", 0}, SubscribeTopic{"#", 1},
                                                SubscribeTopic{"sport/tennis/player1/#", 2}};
  base::ByteBuffer buffer;
  encode_subscribe(buffer, 10, topics);
  FixedHeader header{};
  const auto body = frame(buffer, &header);
  EXPECT_EQ(header.type, PacketType::kSubscribe);
  EXPECT_EQ(header.flags, 0b0010);
  std::array<SubscribeTopic, 8> storage;
  SubscribePacket decoded;
  ASSERT_EQ(decode_subscribe(body, header.flags, ProtocolVersion::kV311, storage, &decoded),
            DecodeStatus::kOk);
  EXPECT_EQ(decoded.packet_id, 10);
  ASSERT_EQ(decoded.topics.size(), 3u);
  for (size_t index = 0; index < topics.size(); index++) {
    EXPECT_EQ(decoded.topics[index].filter, topics[index].filter);
    EXPECT_EQ(decoded.topics[index].qos, topics[index].qos);
  }
  EXPECT_EQ(decoded.topics.data(), storage.data());

  const std::array<uint8_t, 3> codes = {0, kSubackFailure, 2};
  base::ByteBuffer suback;
  encode_suback(suback, 10, codes);
  const std::vector<uint8_t> expected = {0x90, 5, 0, 10, 0, 0x80, 2};
  EXPECT_EQ(to_vector(suback), expected);
  const auto suback_body = frame(suback, &header);
  SubackPacket decoded_suback;
  ASSERT_EQ(decode_suback(suback_body, header.flags, ProtocolVersion::kV311, &decoded_suback),
            DecodeStatus::kOk);
  EXPECT_EQ(decoded_suback.packet_id, 10);
  EXPECT_EQ(std::vector<uint8_t>(decoded_suback.return_codes.begin(), decoded_suback.return_codes.end()),
            std::vector<uint8_t>(codes.begin(), codes.end()));
}

TEST(MqttCodecRoundTrip, SubscribeExactlyFillsStorage) {
  const std::array<SubscribeTopic, 2> topics = {SubscribeTopic{"a", 0}, SubscribeTopic{"b", 1}};
  base::ByteBuffer buffer;
  encode_subscribe(buffer, 1, topics);
  FixedHeader header{};
  const auto body = frame(buffer, &header);
  std::array<SubscribeTopic, 2> storage;
  SubscribePacket decoded;
  EXPECT_EQ(decode_subscribe(body, header.flags, ProtocolVersion::kV311, storage, &decoded),
            DecodeStatus::kOk);
  std::array<SubscribeTopic, 1> small;
  EXPECT_EQ(decode_subscribe(body, header.flags, ProtocolVersion::kV311, small, &decoded),
            DecodeStatus::kTooManyTopics);
}

TEST(MqttCodecRoundTrip, UnsubscribeAndUnsuback) {
  const std::array<std::string_view, 2> filters = {"a/b", "c/#"};
  base::ByteBuffer buffer;
  encode_unsubscribe(buffer, 0x1234, filters);
  const std::vector<uint8_t> expected = {0xA2, 12, 0x12, 0x34, 0, 3, 'a', '/', 'b', 0, 3, 'c', '/', '#'};
  EXPECT_EQ(to_vector(buffer), expected);
  FixedHeader header{};
  const auto body = frame(buffer, &header);
  std::array<std::string_view, 4> storage;
  UnsubscribePacket decoded;
  ASSERT_EQ(decode_unsubscribe(body, header.flags, ProtocolVersion::kV311, storage, &decoded),
            DecodeStatus::kOk);
  EXPECT_EQ(decoded.packet_id, 0x1234);
  ASSERT_EQ(decoded.filters.size(), 2u);
  EXPECT_EQ(decoded.filters[0], "a/b");
  EXPECT_EQ(decoded.filters[1], "c/#");

  base::ByteBuffer unsuback;
  encode_unsuback(unsuback, 0x1234);
  const std::vector<uint8_t> expected_unsuback = {0xB0, 2, 0x12, 0x34};
  EXPECT_EQ(to_vector(unsuback), expected_unsuback);
  const auto unsuback_body = frame(unsuback, &header);
  UnsubackPacket decoded_unsuback;
  ASSERT_EQ(decode_unsuback(unsuback_body, header.flags, ProtocolVersion::kV311, &decoded_unsuback),
            DecodeStatus::kOk);
  EXPECT_EQ(decoded_unsuback.packet_id, 0x1234);
  EXPECT_TRUE(decoded_unsuback.reason_codes.empty());
}

TEST(MqttCodecRoundTrip, EmptyPackets) {
  struct Case {
    void (*encode)(base::ByteBuffer&);
    PacketType type;
    uint8_t first_byte;
  };
  const Case cases[] = {{encode_pingreq, PacketType::kPingreq, 0xC0},
                        {encode_pingresp, PacketType::kPingresp, 0xD0},
                        {encode_disconnect, PacketType::kDisconnect, 0xE0}};
  for (const Case& test_case : cases) {
    base::ByteBuffer buffer;
    test_case.encode(buffer);
    const std::vector<uint8_t> expected = {test_case.first_byte, 0};
    EXPECT_EQ(to_vector(buffer), expected);
    FixedHeader header{};
    const auto body = frame(buffer, &header);
    EXPECT_EQ(header.type, test_case.type);
    EXPECT_EQ(decode_empty(body, header.flags, test_case.type), DecodeStatus::kOk);
  }
}

TEST(MqttCodecRoundTrip, SeveralPacketsInOneBuffer) {
  base::ByteBuffer buffer;
  encode_pingreq(buffer);
  encode_publish(buffer, PublishPacket{"t", "payload", 1, false, false, 9});
  encode_ack(buffer, PacketType::kPuback, 9);
  std::vector<PacketType> types;
  std::span<const uint8_t> rest = buffer.span();
  while (!rest.empty()) {
    FixedHeader header{};
    ASSERT_EQ(parse_fixed_header(rest, 1024, &header), FrameStatus::kComplete);
    types.push_back(header.type);
    rest = rest.subspan(header.header_length + header.remaining_length);
  }
  EXPECT_EQ(types,
            (std::vector<PacketType>{PacketType::kPingreq, PacketType::kPublish, PacketType::kPuback}));
}

TEST(MqttCodecRemainingLength, Boundaries) {
  const std::pair<uint32_t, size_t> cases[] = {
      {0, 1}, {127, 1}, {128, 2}, {16'383, 2}, {16'384, 3}, {2'097'151, 3}, {2'097'152, 4}, {268'435'455, 4},
  };
  for (const auto& [value, size] : cases) {
    SCOPED_TRACE(value);
    EXPECT_EQ(remaining_length_size(value), size);
    std::array<uint8_t, 1 + kRemainingLengthBytesMax> bytes{};
    bytes[0] = 0x30;
    ASSERT_EQ(encode_remaining_length(value, bytes.data() + 1), size);
    base::ByteBuffer buffer;
    encode_remaining_length(buffer, value);
    EXPECT_EQ(std::vector<uint8_t>(bytes.begin() + 1, bytes.begin() + 1 + static_cast<long>(size)),
              to_vector(buffer));

    FixedHeader header{};
    ASSERT_EQ(parse_fixed_header(std::span(bytes.data(), 1 + size), kRemainingLengthMax + 5, &header),
              FrameStatus::kComplete);
    EXPECT_EQ(header.remaining_length, value);
    EXPECT_EQ(header.header_length, 1 + size);
    // Every shorter prefix is incomplete.
    for (size_t prefix = 0; prefix < 1 + size; prefix++) {
      EXPECT_EQ(parse_fixed_header(std::span(bytes.data(), prefix), kRemainingLengthMax + 5, &header),
                FrameStatus::kNeedMore);
    }
  }
}

TEST(MqttCodecRemainingLength, KnownEncodings) {
  const std::pair<uint32_t, std::vector<uint8_t>> cases[] = {
      {127, {0x7F}},
      {128, {0x80, 0x01}},
      {16'383, {0xFF, 0x7F}},
      {16'384, {0x80, 0x80, 0x01}},
      {2'097'151, {0xFF, 0xFF, 0x7F}},
      {2'097'152, {0x80, 0x80, 0x80, 0x01}},
      {268'435'455, {0xFF, 0xFF, 0xFF, 0x7F}},
  };
  for (const auto& [value, encoding] : cases) {
    base::ByteBuffer buffer;
    encode_remaining_length(buffer, value);
    EXPECT_EQ(to_vector(buffer), encoding) << value;
  }
}

TEST(MqttCodecFixedHeader, FiveByteLengthIsMalformed) {
  FixedHeader header{};
  const std::vector<uint8_t> five = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
  EXPECT_EQ(parse_fixed_header(five, kRemainingLengthMax + 5, &header), FrameStatus::kMalformed);
  // Four length bytes that all continue are enough to know: no fifth byte is needed.
  const std::vector<uint8_t> continued = {0x30, 0x80, 0x80, 0x80, 0x80};
  EXPECT_EQ(parse_fixed_header(continued, kRemainingLengthMax + 5, &header), FrameStatus::kMalformed);
}

TEST(MqttCodecFixedHeader, NeedMore) {
  FixedHeader header{};
  EXPECT_EQ(parse_fixed_header({}, 1024, &header), FrameStatus::kNeedMore);
  const std::vector<uint8_t> one = {0x30};
  EXPECT_EQ(parse_fixed_header(one, 1024, &header), FrameStatus::kNeedMore);
  const std::vector<uint8_t> partial = {0x30, 0x80, 0x80};
  EXPECT_EQ(parse_fixed_header(partial, 1u << 30, &header), FrameStatus::kNeedMore);
  // A complete header whose body has not arrived is complete: the caller checks the size.
  const std::vector<uint8_t> header_only = {0x30, 0x10};
  ASSERT_EQ(parse_fixed_header(header_only, 1024, &header), FrameStatus::kComplete);
  EXPECT_EQ(header.remaining_length, 0x10u);
  EXPECT_EQ(header.header_length, 2u);
}

TEST(MqttCodecFixedHeader, TooLargeBeforeBodyArrives) {
  FixedHeader header{};
  // 1000 bytes of body announced, only the header present.
  const std::vector<uint8_t> bytes = {0x30, 0xE8, 0x07};
  ASSERT_EQ(parse_fixed_header(bytes, 100, &header), FrameStatus::kTooLarge);
  EXPECT_EQ(header.remaining_length, 1000u);
  EXPECT_EQ(header.header_length, 3u);
  // The limit counts the whole packet: 1003 fits exactly, 1002 does not.
  EXPECT_EQ(parse_fixed_header(bytes, 1003, &header), FrameStatus::kComplete);
  EXPECT_EQ(parse_fixed_header(bytes, 1002, &header), FrameStatus::kTooLarge);
  const std::vector<uint8_t> largest = {0x30, 0xFF, 0xFF, 0xFF, 0x7F};
  EXPECT_EQ(parse_fixed_header(largest, 0xFFFF'FFFFu, &header), FrameStatus::kComplete);
  EXPECT_EQ(parse_fixed_header(largest, kRemainingLengthMax, &header), FrameStatus::kTooLarge);
}

// Section 2.2.2, written out as a table independent of the implementation.
uint16_t allowed_flag_mask(uint8_t type) {
  switch (type) {
    case 3:  // PUBLISH: any flags except QoS 3 (6, 7, 14, 15) and DUP with QoS 0 (8, 9).
      return static_cast<uint16_t>(
          0xFFFF & ~((1u << 6) | (1u << 7) | (1u << 14) | (1u << 15) | (1u << 8) | (1u << 9)));
    case 6:
    case 8:
    case 10:
      return 1u << 2;
    default:
      return 1u << 0;
  }
}

TEST(MqttCodecFixedHeader, FlagRulesForEveryType) {
  for (uint8_t type = 0; type < 16; type++) {
    for (uint8_t flags = 0; flags < 16; flags++) {
      const std::vector<uint8_t> bytes = {static_cast<uint8_t>(type << 4 | flags), 0};
      FixedHeader header{};
      const FrameStatus status = parse_fixed_header(bytes, 1024, &header);
      const bool allowed = type != 0 && (allowed_flag_mask(type) & (1u << flags)) != 0;
      EXPECT_EQ(status, allowed ? FrameStatus::kComplete : FrameStatus::kMalformed)
          << "type " << int{type} << " flags " << int{flags};
      if (type != 0) {
        EXPECT_EQ(fixed_header_flags_valid(static_cast<PacketType>(type), flags), allowed);
      }
      if (allowed) {
        EXPECT_EQ(static_cast<uint8_t>(header.type), type);
        EXPECT_EQ(header.flags, flags);
      }
    }
  }
}

TEST(MqttCodecNames, EveryTypeAndStatusHasAName) {
  for (uint8_t type = 1; type <= 15; type++) {
    EXPECT_NE(packet_type_name(static_cast<PacketType>(type)), "RESERVED");
  }
  EXPECT_EQ(packet_type_name(PacketType::kPubrel), "PUBREL");
  EXPECT_EQ(decode_status_name(DecodeStatus::kTooManyTopics), "too many topics");
  EXPECT_EQ(frame_status_name(FrameStatus::kTooLarge), "too large");
}

}  // namespace
}  // namespace coremq::mqtt
