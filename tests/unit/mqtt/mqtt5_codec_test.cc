// MQTT 5 encoders: exact wire bytes of the small packets against vectors written out by hand from
// the spec's figures, the short forms of the acknowledgements, DISCONNECT and AUTH, and round trips
// of every MQTT 5 packet with properties through the encoders and decoders.
#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "base/byte_buffer.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"
#include "mqtt/reason_code.h"

namespace coremq::mqtt {
namespace {

constexpr auto kV5 = ProtocolVersion::kV5;
constexpr auto kOk = DecodeStatus::kOk;

std::vector<uint8_t> to_vector(const base::ByteBuffer& buffer) {
  return std::vector<uint8_t>(buffer.data(), buffer.data() + buffer.size());
}

// Frames the single packet in `buffer` and returns its body; fails the test if framing fails.
std::span<const uint8_t> frame(const base::ByteBuffer& buffer, PacketType type, FixedHeader* header) {
  EXPECT_EQ(parse_fixed_header(buffer.span(), kRemainingLengthMax + 5, header), FrameStatus::kComplete);
  EXPECT_EQ(header->type, type);
  EXPECT_EQ(header->header_length + header->remaining_length, buffer.size());
  return buffer.span().subspan(header->header_length);
}

// A property block without its length, built by encode_property_bytes.
base::ByteBuffer property_bytes(PropertyContext context, const Properties& properties,
                                std::span<const UserProperty> user_properties = {},
                                std::span<const uint32_t> subscription_identifiers = {}) {
  base::ByteBuffer bytes;
  encode_property_bytes(bytes, context, properties, user_properties, subscription_identifiers);
  return bytes;
}

TEST(Mqtt5Encode, PropertyBytesHaveNoLength) {
  Properties properties;
  properties.message_expiry_interval_seconds = 16;
  const std::array<UserProperty, 1> users = {UserProperty{"k", "v"}};
  const base::ByteBuffer bytes = property_bytes(PropertyContext::kPublish, properties, users);
  const std::vector<uint8_t> expected = {0x02, 0, 0, 0, 16, 0x26, 0, 1, 'k', 0, 1, 'v'};
  EXPECT_EQ(to_vector(bytes), expected);
  EXPECT_EQ(bytes.size(), properties_length(properties, users));
  // Appends: a caller may put its own properties in front.
  base::ByteBuffer appended;
  appended.append_u8(0x23);
  appended.append_u16(7);
  encode_property_bytes(appended, PropertyContext::kPublish, properties);
  EXPECT_EQ(to_vector(appended), (std::vector<uint8_t>{0x23, 0, 7, 0x02, 0, 0, 0, 16}));
}

TEST(Mqtt5Encode, AckForms) {
  base::ByteBuffer buffer;
  encode_ack_v5(buffer, PacketType::kPuback, 5, 0, {});
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0x40, 2, 0, 5}));  // section 3.4.2.1: the 3.1.1 form
  buffer.clear();
  encode_ack_v5(buffer, PacketType::kPubrec, 5, 0x10, {});
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0x50, 3, 0, 5, 0x10}));
  buffer.clear();
  Properties reason;
  reason.reason_string = "x";
  const base::ByteBuffer reason_bytes = property_bytes(PropertyContext::kPubrel, reason);
  encode_ack_v5(buffer, PacketType::kPubrel, 5, 0x92, reason_bytes.span());
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0x62, 8, 0, 5, 0x92, 4, 0x1F, 0, 1, 'x'}));
  buffer.clear();
  encode_ack_v5(buffer, PacketType::kPubcomp, 0x1234, 0, reason_bytes.span());  // Success with properties
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0x70, 8, 0x12, 0x34, 0, 4, 0x1F, 0, 1, 'x'}));
}

TEST(Mqtt5Encode, DisconnectAndAuthForms) {
  base::ByteBuffer buffer;
  encode_disconnect_v5(buffer, 0, {});
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0xE0, 0}));
  buffer.clear();
  encode_disconnect_v5(buffer, 0x04, {});
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0xE0, 1, 0x04}));
  buffer.clear();
  Properties expiry;
  expiry.session_expiry_interval_seconds = 0;
  encode_disconnect_v5(buffer, 0, property_bytes(PropertyContext::kDisconnect, expiry).span());
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0xE0, 7, 0, 5, 0x11, 0, 0, 0, 0}));

  buffer.clear();
  encode_auth(buffer, 0, {});
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0xF0, 0}));
  buffer.clear();
  encode_auth(buffer, 0x18, {});  // no one-byte form for AUTH
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0xF0, 2, 0x18, 0}));
  buffer.clear();
  Properties method;
  method.authentication_method = "M";
  encode_auth(buffer, 0x19, property_bytes(PropertyContext::kAuth, method).span());
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0xF0, 6, 0x19, 4, 0x15, 0, 1, 'M'}));
}

TEST(Mqtt5Encode, ServerPackets) {
  base::ByteBuffer buffer;
  encode_connack_v5(buffer, true, 0, {});
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0x20, 3, 1, 0, 0}));
  buffer.clear();
  Properties connack;
  connack.topic_alias_maximum = 10;
  encode_connack_v5(buffer, false, 0x87, property_bytes(PropertyContext::kConnack, connack).span());
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0x20, 6, 0, 0x87, 3, 0x22, 0, 10}));

  buffer.clear();
  const std::array<uint8_t, 3> alias = {0x23, 0, 1};
  encode_publish_header_v5(buffer, "a", 1, true, false, 1, alias, 2);
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0x33, 11, 0, 1, 'a', 0, 1, 3, 0x23, 0, 1}));
  EXPECT_EQ(publish_packet_size_v5("a", 1, alias.size(), 2), buffer.size() + 2);
  buffer.clear();
  encode_publish_header_v5(buffer, "", 0, false, false, 0, alias, 0);  // the alias alone names the topic
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0x30, 6, 0, 0, 3, 0x23, 0, 1}));
  EXPECT_EQ(publish_packet_size_v5("", 0, alias.size(), 0), buffer.size());

  buffer.clear();
  const std::array<uint8_t, 2> suback_codes = {0x00, 0x87};
  encode_suback_v5(buffer, 1, {}, suback_codes);
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0x90, 5, 0, 1, 0, 0, 0x87}));
  buffer.clear();
  const std::array<uint8_t, 2> unsuback_codes = {0x11, 0x00};
  encode_unsuback_v5(buffer, 2, {}, unsuback_codes);
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0xB0, 5, 0, 2, 0, 0x11, 0x00}));
}

TEST(Mqtt5Encode, ClientPackets) {
  ConnectPacket connect;
  connect.protocol_level = 5;
  connect.keep_alive_seconds = 10;
  connect.client_id = "a";
  base::ByteBuffer buffer;
  encode_connect(buffer, connect);
  EXPECT_EQ(to_vector(buffer),
            (std::vector<uint8_t>{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 10, 0, 0, 1, 'a'}));

  buffer.clear();
  SubscribeTopic topic;
  topic.filter = "a";
  topic.qos = 2;
  topic.no_local = true;
  topic.retain_as_published = true;
  topic.retain_handling = 2;
  encode_subscribe(buffer, 1, std::span<const SubscribeTopic>(&topic, 1), kV5, {});
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0x82, 7, 0, 1, 0, 0, 1, 'a', 0x2E}));

  buffer.clear();
  const std::array<std::string_view, 1> filters = {"a"};
  encode_unsubscribe(buffer, 3, filters, kV5, {});
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0xA2, 6, 0, 3, 0, 0, 1, 'a'}));

  // The version overloads write the 3.1.1 forms for older versions.
  buffer.clear();
  topic.no_local = topic.retain_as_published = false;
  topic.retain_handling = 0;
  encode_subscribe(buffer, 1, std::span<const SubscribeTopic>(&topic, 1), ProtocolVersion::kV311, {});
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0x82, 6, 0, 1, 0, 1, 'a', 2}));
  buffer.clear();
  encode_publish(buffer, PublishPacket{"t", "p", 0, false, false, 0}, ProtocolVersion::kV311, {});
  EXPECT_EQ(to_vector(buffer), (std::vector<uint8_t>{0x30, 4, 0, 1, 't', 'p'}));
}

TEST(Mqtt5RoundTrip, Connect) {
  ConnectPacket connect;
  connect.protocol_level = 5;
  connect.clean_session = false;
  connect.keep_alive_seconds = 60;
  connect.client_id = "client-5";
  connect.has_will = true;
  connect.will = Will{"status/client-5", std::string_view("gone\0", 5), 1, true};
  connect.has_password = true;  // MQTT 5 allows a password without a username
  connect.password = "token";
  connect.properties.session_expiry_interval_seconds = 3600;
  connect.properties.receive_maximum = 100;
  connect.properties.maximum_packet_size = 1 << 20;
  connect.properties.topic_alias_maximum = 16;
  connect.properties.request_response_information = 1;
  connect.properties.request_problem_information = 0;
  connect.properties.authentication_method = "SCRAM-SHA-256";
  connect.properties.authentication_data = std::string_view("\x00\x01", 2);
  connect.will_properties.will_delay_interval_seconds = 30;
  connect.will_properties.payload_format_indicator = 0;
  connect.will_properties.message_expiry_interval_seconds = 600;
  connect.will_properties.content_type = "application/octet-stream";
  connect.will_properties.response_topic = "reply/5";
  connect.will_properties.correlation_data = "c";

  base::ByteBuffer buffer;
  encode_connect(buffer, connect);
  FixedHeader header{};
  const auto body = frame(buffer, PacketType::kConnect, &header);
  ConnectPacket decoded;
  ASSERT_EQ(decode_connect(body, header.flags, &decoded), kOk);
  EXPECT_EQ(decoded.protocol_level, 5);
  EXPECT_FALSE(decoded.clean_session);
  EXPECT_EQ(decoded.keep_alive_seconds, 60);
  EXPECT_EQ(decoded.client_id, "client-5");
  EXPECT_EQ(decoded.will.topic, connect.will.topic);
  EXPECT_EQ(decoded.will.payload, connect.will.payload);
  EXPECT_EQ(decoded.will.qos, 1);
  EXPECT_TRUE(decoded.will.retain);
  EXPECT_FALSE(decoded.has_username);
  EXPECT_EQ(decoded.password, "token");
  const Properties& properties = decoded.properties;
  EXPECT_EQ(properties.session_expiry_interval_seconds, 3600u);
  EXPECT_EQ(properties.receive_maximum, 100);
  EXPECT_EQ(properties.maximum_packet_size, 1u << 20);
  EXPECT_EQ(properties.topic_alias_maximum, 16);
  EXPECT_EQ(properties.request_response_information, 1);
  EXPECT_EQ(properties.request_problem_information, 0);
  EXPECT_EQ(properties.authentication_method, "SCRAM-SHA-256");
  EXPECT_EQ(properties.authentication_data, connect.properties.authentication_data);
  const Properties& will = decoded.will_properties;
  EXPECT_EQ(will.will_delay_interval_seconds, 30u);
  EXPECT_EQ(will.payload_format_indicator, 0);
  EXPECT_EQ(will.message_expiry_interval_seconds, 600u);
  EXPECT_EQ(will.content_type, "application/octet-stream");
  EXPECT_EQ(will.response_topic, "reply/5");
  EXPECT_EQ(will.correlation_data, "c");
}

TEST(Mqtt5RoundTrip, Publish) {
  Properties properties;
  properties.payload_format_indicator = 1;
  properties.message_expiry_interval_seconds = 5;
  properties.topic_alias = 2;
  properties.response_topic = "r/1";
  properties.correlation_data = std::string_view("\xFF\x00", 2);
  properties.content_type = "text/plain";
  const std::array<UserProperty, 2> users = {UserProperty{"a", "1"}, UserProperty{"a", "2"}};
  const std::array<uint32_t, 2> identifiers = {7, 268'435'455};
  const base::ByteBuffer bytes = property_bytes(PropertyContext::kPublish, properties, users, identifiers);

  for (const uint8_t qos : {0, 1, 2}) {
    for (const std::string_view topic : {std::string_view("a/b"), std::string_view()}) {
      const PublishPacket publish{topic,    "payload", qos,
                                  qos == 0, qos == 2,  static_cast<uint16_t>(qos ? 99 : 0)};
      base::ByteBuffer buffer;
      encode_publish(buffer, publish, kV5, bytes.span());
      EXPECT_EQ(buffer.size(), publish_packet_size_v5(topic, qos, bytes.size(), publish.payload.size()));
      FixedHeader header{};
      const auto body = frame(buffer, PacketType::kPublish, &header);
      PublishPacket decoded;
      EXPECT_EQ(decode_publish(body, header.flags, kV5, &decoded),
                DecodeStatus::kProtocolError);  // identifiers
      ASSERT_EQ(decode_publish_from_server(body, header.flags, kV5, &decoded), kOk);
      EXPECT_EQ(decoded.topic, topic);
      EXPECT_EQ(decoded.payload, "payload");
      EXPECT_EQ(decoded.qos, qos);
      EXPECT_EQ(decoded.retain, publish.retain);
      EXPECT_EQ(decoded.dup, publish.dup);
      EXPECT_EQ(decoded.packet_id, publish.packet_id);
      EXPECT_EQ(decoded.properties.payload_format_indicator, 1);
      EXPECT_EQ(decoded.properties.message_expiry_interval_seconds, 5u);
      EXPECT_EQ(decoded.properties.topic_alias, 2);
      EXPECT_EQ(decoded.properties.response_topic, "r/1");
      EXPECT_EQ(decoded.properties.correlation_data, properties.correlation_data);
      EXPECT_EQ(decoded.properties.content_type, "text/plain");
      EXPECT_EQ(decoded.properties.user_property_count, 2u);
      EXPECT_EQ(decoded.properties.subscription_identifier_count, 2u);
      EXPECT_EQ(decoded.properties.subscription_identifier, 7u);
      // The decoded block forwards byte for byte.
      ASSERT_EQ(decoded.properties.encoded.size(), bytes.size());
      EXPECT_TRUE(std::equal(bytes.span().begin(), bytes.span().end(), decoded.properties.encoded.begin()));
      base::ByteBuffer again;
      encode_publish(again, decoded, kV5, decoded.properties.encoded);
      EXPECT_EQ(to_vector(again), to_vector(buffer));
    }
  }
}

// A 3.1.1 decode into a struct that held an MQTT 5 packet leaves no properties behind.
TEST(Mqtt5RoundTrip, ReusedPublishPacketForgetsProperties) {
  const std::array<uint8_t, 3> alias = {0x23, 0, 1};
  base::ByteBuffer v5;
  encode_publish(v5, PublishPacket{"a", "x", 0, false, false, 0}, kV5, alias);
  base::ByteBuffer v311;
  encode_publish(v311, PublishPacket{"b", "y", 0, false, false, 0});
  PublishPacket reused;
  FixedHeader header{};
  ASSERT_EQ(decode_publish(frame(v5, PacketType::kPublish, &header), header.flags, kV5, &reused), kOk);
  EXPECT_EQ(reused.properties.topic_alias, 1);
  ASSERT_EQ(decode_publish(frame(v311, PacketType::kPublish, &header), header.flags, ProtocolVersion::kV311,
                           &reused),
            kOk);
  EXPECT_EQ(reused.topic, "b");
  EXPECT_FALSE(reused.properties.topic_alias);
  EXPECT_TRUE(reused.properties.encoded.empty());
}

TEST(Mqtt5RoundTrip, SubscribeEveryOption) {
  std::vector<SubscribeTopic> topics;
  for (uint8_t qos = 0; qos <= 2; qos++) {
    for (uint8_t handling = 0; handling <= 2; handling++) {
      for (const bool no_local : {false, true}) {
        for (const bool retain_as_published : {false, true}) {
          topics.push_back(SubscribeTopic{"t/+", qos, no_local, retain_as_published, handling});
        }
      }
    }
  }
  Properties properties;
  properties.subscription_identifier = 1000;
  const std::array<UserProperty, 1> users = {UserProperty{"k", "v"}};
  const base::ByteBuffer bytes = property_bytes(PropertyContext::kSubscribe, properties, users);
  base::ByteBuffer buffer;
  encode_subscribe(buffer, 77, topics, kV5, bytes.span());
  FixedHeader header{};
  const auto body = frame(buffer, PacketType::kSubscribe, &header);
  std::vector<SubscribeTopic> storage(topics.size());
  SubscribePacket decoded;
  ASSERT_EQ(decode_subscribe(body, header.flags, kV5, storage, &decoded), kOk);
  EXPECT_EQ(decoded.packet_id, 77);
  EXPECT_EQ(decoded.properties.subscription_identifier, 1000u);
  EXPECT_EQ(decoded.properties.user_property_count, 1u);
  ASSERT_EQ(decoded.topics.size(), topics.size());
  for (size_t index = 0; index < topics.size(); index++) {
    EXPECT_EQ(decoded.topics[index].filter, "t/+");
    EXPECT_EQ(decoded.topics[index].qos, topics[index].qos);
    EXPECT_EQ(decoded.topics[index].no_local, topics[index].no_local);
    EXPECT_EQ(decoded.topics[index].retain_as_published, topics[index].retain_as_published);
    EXPECT_EQ(decoded.topics[index].retain_handling, topics[index].retain_handling);
  }

  const std::array<std::string_view, 2> filters = {"a/#", "b"};
  const base::ByteBuffer user_bytes = property_bytes(PropertyContext::kUnsubscribe, Properties{}, users);
  base::ByteBuffer unsubscribe;
  encode_unsubscribe(unsubscribe, 78, filters, kV5, user_bytes.span());
  const auto unsubscribe_body = frame(unsubscribe, PacketType::kUnsubscribe, &header);
  std::array<std::string_view, 2> filter_storage;
  UnsubscribePacket decoded_unsubscribe;
  ASSERT_EQ(decode_unsubscribe(unsubscribe_body, header.flags, kV5, filter_storage, &decoded_unsubscribe),
            kOk);
  EXPECT_EQ(decoded_unsubscribe.packet_id, 78);
  EXPECT_EQ(decoded_unsubscribe.properties.user_property_count, 1u);
  ASSERT_EQ(decoded_unsubscribe.filters.size(), 2u);
  EXPECT_EQ(decoded_unsubscribe.filters[0], "a/#");
}

TEST(Mqtt5RoundTrip, Connack) {
  Properties properties;
  properties.session_expiry_interval_seconds = 0;
  properties.receive_maximum = 50;
  properties.maximum_qos = 1;
  properties.retain_available = 0;
  properties.maximum_packet_size = 65536;
  properties.assigned_client_identifier = "auto-1";
  properties.topic_alias_maximum = 10;
  properties.reason_string = "welcome";
  properties.wildcard_subscription_available = 1;
  properties.subscription_identifier_available = 1;
  properties.shared_subscription_available = 0;
  properties.server_keep_alive_seconds = 30;
  properties.response_information = "resp/";
  properties.server_reference = "other:1883";
  properties.authentication_method = "M";
  properties.authentication_data = "D";
  const base::ByteBuffer bytes = property_bytes(PropertyContext::kConnack, properties);
  for (const uint8_t reason : {0x00, 0x80, 0x84, 0x9F}) {
    base::ByteBuffer buffer;
    encode_connack_v5(buffer, reason == 0, reason, bytes.span());
    FixedHeader header{};
    ConnackPacket decoded;
    ASSERT_EQ(decode_connack(frame(buffer, PacketType::kConnack, &header), header.flags, kV5, &decoded), kOk);
    EXPECT_EQ(decoded.session_present, reason == 0);
    EXPECT_EQ(decoded.reason_code, reason);
    EXPECT_EQ(decoded.return_code, connect_return_code_for(static_cast<ReasonCode>(reason)));
    EXPECT_EQ(decoded.properties.receive_maximum, 50);
    EXPECT_EQ(decoded.properties.maximum_qos, 1);
    EXPECT_EQ(decoded.properties.retain_available, 0);
    EXPECT_EQ(decoded.properties.assigned_client_identifier, "auto-1");
    EXPECT_EQ(decoded.properties.server_keep_alive_seconds, 30);
    EXPECT_EQ(decoded.properties.server_reference, "other:1883");
    EXPECT_EQ(decoded.properties.authentication_data, "D");
    EXPECT_EQ(decoded.properties.encoded.size(), bytes.size());
  }
}

TEST(Mqtt5RoundTrip, Acks) {
  Properties properties;
  properties.reason_string = "because";
  const std::array<UserProperty, 1> users = {UserProperty{"trace", "42"}};
  for (const PacketType type :
       {PacketType::kPuback, PacketType::kPubrec, PacketType::kPubrel, PacketType::kPubcomp}) {
    const base::ByteBuffer bytes = property_bytes(property_context(type), properties, users);
    const uint8_t failure = type == PacketType::kPubrel || type == PacketType::kPubcomp ? 0x92 : 0x97;
    for (const uint8_t reason : {uint8_t{0}, failure}) {
      for (const bool with_properties : {false, true}) {
        base::ByteBuffer buffer;
        encode_ack_v5(buffer, type, 300, reason, with_properties ? bytes.span() : std::span<const uint8_t>());
        const size_t expected_length = with_properties ? 3 + 1 + bytes.size() : reason == 0 ? 2 : 3;
        FixedHeader header{};
        const auto body = frame(buffer, type, &header);
        EXPECT_EQ(body.size(), expected_length);
        AckPacket decoded;
        ASSERT_EQ(decode_ack(body, header.flags, type, kV5, &decoded), kOk);
        EXPECT_EQ(decoded.type, type);
        EXPECT_EQ(decoded.packet_id, 300);
        EXPECT_EQ(decoded.reason_code, reason);
        EXPECT_EQ(decoded.properties.reason_string.has_value(), with_properties);
        EXPECT_EQ(decoded.properties.user_property_count, with_properties ? 1u : 0u);
      }
    }
  }
}

TEST(Mqtt5RoundTrip, SubackAndUnsuback) {
  Properties properties;
  properties.reason_string = "partly";
  const std::array<uint8_t, 4> suback_codes = {0x00, 0x02, 0x9E, 0xA1};
  base::ByteBuffer buffer;
  encode_suback_v5(buffer, 9, property_bytes(PropertyContext::kSuback, properties).span(), suback_codes);
  FixedHeader header{};
  SubackPacket suback;
  ASSERT_EQ(decode_suback(frame(buffer, PacketType::kSuback, &header), header.flags, kV5, &suback), kOk);
  EXPECT_EQ(suback.packet_id, 9);
  EXPECT_EQ(suback.properties.reason_string, "partly");
  EXPECT_TRUE(std::equal(suback_codes.begin(), suback_codes.end(), suback.return_codes.begin(),
                         suback.return_codes.end()));

  const std::array<uint8_t, 3> unsuback_codes = {0x00, 0x11, 0x87};
  base::ByteBuffer unsuback_buffer;
  encode_unsuback_v5(unsuback_buffer, 10, property_bytes(PropertyContext::kUnsuback, properties).span(),
                     unsuback_codes);
  UnsubackPacket unsuback;
  ASSERT_EQ(
      decode_unsuback(frame(unsuback_buffer, PacketType::kUnsuback, &header), header.flags, kV5, &unsuback),
      kOk);
  EXPECT_EQ(unsuback.packet_id, 10);
  EXPECT_EQ(unsuback.properties.reason_string, "partly");
  EXPECT_TRUE(std::equal(unsuback_codes.begin(), unsuback_codes.end(), unsuback.reason_codes.begin(),
                         unsuback.reason_codes.end()));
}

TEST(Mqtt5RoundTrip, DisconnectAndAuth) {
  Properties disconnect_properties;
  disconnect_properties.session_expiry_interval_seconds = 120;
  disconnect_properties.reason_string = "moving";
  disconnect_properties.server_reference = "b:1883";
  const base::ByteBuffer disconnect_bytes =
      property_bytes(PropertyContext::kDisconnect, disconnect_properties);
  for (const uint8_t reason : {0x00, 0x04, 0x8E, 0x9D}) {
    for (const bool with_properties : {false, true}) {
      base::ByteBuffer buffer;
      encode_disconnect_v5(buffer, reason,
                           with_properties ? disconnect_bytes.span() : std::span<const uint8_t>());
      FixedHeader header{};
      DisconnectPacket decoded;
      ASSERT_EQ(
          decode_disconnect(frame(buffer, PacketType::kDisconnect, &header), header.flags, kV5, &decoded),
          kOk);
      EXPECT_EQ(decoded.reason_code, reason);
      EXPECT_EQ(decoded.properties.session_expiry_interval_seconds.has_value(), with_properties);
      if (with_properties) {
        EXPECT_EQ(decoded.properties.server_reference, "b:1883");
      }
    }
  }

  Properties auth_properties;
  auth_properties.authentication_method = "SCRAM-SHA-1";
  auth_properties.authentication_data = std::string_view("\x00\xFF", 2);
  auth_properties.reason_string = "step";
  const base::ByteBuffer auth_bytes = property_bytes(PropertyContext::kAuth, auth_properties);
  for (const uint8_t reason : {0x00, 0x18, 0x19}) {
    base::ByteBuffer buffer;
    encode_auth(buffer, reason, auth_bytes.span());
    FixedHeader header{};
    AuthPacket decoded;
    ASSERT_EQ(decode_auth(frame(buffer, PacketType::kAuth, &header), header.flags, &decoded), kOk);
    EXPECT_EQ(decoded.reason_code, reason);
    EXPECT_EQ(decoded.properties.authentication_method, "SCRAM-SHA-1");
    EXPECT_EQ(decoded.properties.authentication_data, auth_properties.authentication_data);
    EXPECT_EQ(decoded.properties.reason_string, "step");
  }
}

}  // namespace
}  // namespace coremq::mqtt
