// Unit tests of protocol rules of broker::ShardState found missing by review and interop testing
// (issue 8): timer identity across sessions of one client id, --max-keepalive, acknowledgements
// of the wrong kind, MQTT 3.1's reserved Session Present, the client's Maximum Packet Size on
// every packet, --max-topic-levels, unguessable assigned client ids and --max-topic-alias-broker.
// Driven through a FakeIo with the harness clock; suites are named Shard* like the others.
#include <gtest/gtest.h>

#include <algorithm>
#include <bitset>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "mqtt/properties.h"
#include "auth_packets.h"
#include "shard_harness.h"

namespace coremq::testing {
namespace {

using broker::ConnectionState;
using mqtt::ConnectReturnCode;
using mqtt::PacketType;
using mqtt::ProtocolVersion;

std::span<const uint8_t> as_span(const std::string& bytes) {
  return std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::string disconnect5_bytes(uint8_t reason, std::optional<uint32_t> session_expiry_seconds = {}) {
  mqtt::Properties properties;
  properties.session_expiry_interval_seconds = session_expiry_seconds;
  base::ByteBuffer property_bytes;
  mqtt::encode_property_bytes(property_bytes, mqtt::PropertyContext::kDisconnect, properties);
  return encoded(
      [&](base::ByteBuffer& out) { mqtt::encode_disconnect_v5(out, reason, property_bytes.span()); });
}

std::string publish5_bytes(std::string_view topic, std::string_view payload, uint8_t qos = 0,
                           uint16_t packet_id = 0) {
  mqtt::PublishPacket publish;
  publish.topic = topic;
  publish.payload = payload;
  publish.qos = qos;
  publish.packet_id = packet_id;
  return encoded([&](base::ByteBuffer& out) { mqtt::encode_publish(out, publish, ProtocolVersion::kV5, {}); });
}

std::string subscribe5_bytes(uint16_t packet_id, const std::vector<std::string>& filters, uint8_t qos) {
  std::vector<mqtt::SubscribeTopic> topics;
  for (const std::string& filter : filters) {
    mqtt::SubscribeTopic topic;
    topic.filter = filter;
    topic.qos = qos;
    topics.push_back(topic);
  }
  return encoded(
      [&](base::ByteBuffer& out) { mqtt::encode_subscribe(out, packet_id, topics, ProtocolVersion::kV5, {}); });
}

std::string ack5_bytes(PacketType type, uint16_t packet_id, uint8_t reason = 0) {
  return encoded([&](base::ByteBuffer& out) { mqtt::encode_ack_v5(out, type, packet_id, reason, {}); });
}

// The CONNACK a v5 client read; its property views point into `packet`.
mqtt::ConnackPacket decode_connack5(const OutputPacket& packet) {
  mqtt::ConnackPacket connack;
  EXPECT_EQ(packet.type, PacketType::kConnack);
  EXPECT_EQ(mqtt::decode_connack(as_span(packet.body), packet.flags, ProtocolVersion::kV5, &connack),
            mqtt::DecodeStatus::kOk);
  return connack;
}

class ShardProtocol : public ShardHarness {
 protected:
  // Opens a connection and sends an MQTT 5 CONNECT; returns what the broker answered, split.
  broker::Connection* connect5(std::string_view client_id, const Connect5Options& connect_options,
                               std::vector<OutputPacket>* answer) {
    broker::Connection* connection = open();
    feed(connection, connect5_bytes(client_id, connect_options));
    answer_bytes_ = take_output(connection);
    *answer = split_packets(answer_bytes_);
    return connection;
  }

  // As connect5, for a connection expected to be accepted; `present` is its Session Present.
  broker::Connection* accepted5(std::string_view client_id, const Connect5Options& connect_options = {},
                                bool* present = nullptr) {
    std::vector<OutputPacket> answer;
    broker::Connection* connection = connect5(client_id, connect_options, &answer);
    EXPECT_EQ(connection->state, ConnectionState::kConnected);
    EXPECT_FALSE(answer.empty());
    if (!answer.empty()) {
      mqtt::ConnackPacket connack = decode_connack5(answer[0]);
      EXPECT_EQ(connack.reason_code, 0);
      if (present != nullptr) *present = connack.session_present;
    }
    return connection;
  }

  // A QoS `qos` message on `topic` from another client, delivered to `subscriber`
  // (subscribed with QoS 2 to `topic`); returns the PUBLISH the subscriber was sent.
  OutputPacket deliver(broker::Connection* publisher, broker::Connection* subscriber, std::string_view topic,
                       uint8_t qos, uint16_t publisher_packet_id) {
    feed(publisher, publish_bytes(topic, "m", qos, publisher_packet_id));
    take_output(publisher);
    std::vector<OutputPacket> packets = split_packets(take_output(subscriber));
    EXPECT_EQ(packets.size(), 1u);
    return packets.empty() ? OutputPacket{} : packets[0];
  }

  std::string answer_bytes_;
};

// ---- Defect 1: timer identity ---------------------------------------------------------------

class ShardSessionTimers : public ShardProtocol {};

// The scenario of issue 8: the first session's expiry timer (due at T+5) must not end the
// second session of the same client id, whose own deadline is T+7.
TEST_F(ShardSessionTimers, AnOlderSessionsTimerDoesNotExpireANewerSession) {
  const int64_t t = 1000;
  tick(t);
  broker::Connection* first = accepted5("x", {.clean_start = true, .session_expiry_seconds = 5});
  feed(first, disconnect5_bytes(0));
  ASSERT_EQ(shard().session_count(), 1u);

  tick(t + 2000);
  broker::Connection* second = accepted5("x", {.clean_start = true, .session_expiry_seconds = 1});
  feed(second, subscribe5_bytes(1, {"t"}, 1));
  take_output(second);
  feed(second, disconnect5_bytes(0, /*session_expiry_seconds=*/5));
  ASSERT_EQ(shard().session_count(), 1u);

  tick(t + 5000);  // the first session's deadline
  tick(t + 5500);
  EXPECT_EQ(shard().session_count(), 1u) << "the second session ended at the first one's deadline";
  bool present = false;
  accepted5("x", {.clean_start = false, .session_expiry_seconds = 5}, &present);
  EXPECT_TRUE(present);
}

TEST_F(ShardSessionTimers, ANewerSessionStillExpiresAtItsOwnDeadline) {
  const int64_t t = 1000;
  tick(t);
  broker::Connection* first = accepted5("x", {.clean_start = true, .session_expiry_seconds = 5});
  feed(first, disconnect5_bytes(0));
  tick(t + 2000);
  broker::Connection* second = accepted5("x", {.clean_start = true, .session_expiry_seconds = 1});
  feed(second, disconnect5_bytes(0, /*session_expiry_seconds=*/5));
  tick(t + 6999);
  EXPECT_EQ(shard().session_count(), 1u);
  tick(t + 7000);
  EXPECT_EQ(shard().session_count(), 0u);
}

// ---- Defect 12: --max-keepalive ---------------------------------------------------------------

class ShardMaxKeepAlive : public ShardProtocol {};

TEST_F(ShardMaxKeepAlive, Mqtt5ClientAskingForMoreGetsTheCapAsServerKeepAliveAndItIsEnforced) {
  options.max_keep_alive_seconds = 30;
  tick(1000);
  std::vector<OutputPacket> answer;
  broker::Connection* client = connect5("c", {.keep_alive_seconds = 100}, &answer);
  ASSERT_EQ(answer.size(), 1u);
  mqtt::ConnackPacket connack = decode_connack5(answer[0]);
  EXPECT_EQ(connack.reason_code, 0);
  EXPECT_EQ(connack.properties.server_keep_alive_seconds, std::optional<uint16_t>(30));
  EXPECT_EQ(shard().counters().keep_alive_capped, 1u);
  tick(1000 + 45000);
  EXPECT_EQ(client->state, ConnectionState::kConnected);
  tick(1000 + 45001);  // one and a half times the cap without a packet
  EXPECT_EQ(client->state, ConnectionState::kClosing);
}

TEST_F(ShardMaxKeepAlive, Mqtt5ClientAskingForNoKeepAliveGetsTheCap) {
  options.max_keep_alive_seconds = 30;
  std::vector<OutputPacket> answer;
  broker::Connection* client = connect5("c", {.keep_alive_seconds = 0}, &answer);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(decode_connack5(answer[0]).properties.server_keep_alive_seconds, std::optional<uint16_t>(30));
  EXPECT_EQ(client->keep_alive_seconds, 30);
}

TEST_F(ShardMaxKeepAlive, Mqtt5ClientWithinTheCapKeepsItsKeepAlive) {
  options.max_keep_alive_seconds = 30;
  std::vector<OutputPacket> answer;
  broker::Connection* client = connect5("c", {.keep_alive_seconds = 30}, &answer);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_FALSE(decode_connack5(answer[0]).properties.server_keep_alive_seconds.has_value());
  EXPECT_EQ(client->keep_alive_seconds, 30);
}

TEST_F(ShardMaxKeepAlive, WithoutACapKeepAliveZeroStaysAllowed) {
  std::vector<OutputPacket> answer;
  broker::Connection* client = connect5("c", {.keep_alive_seconds = 0}, &answer);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_FALSE(decode_connack5(answer[0]).properties.server_keep_alive_seconds.has_value());
  EXPECT_EQ(client->keep_alive_seconds, 0);
  connect("v311", {.keep_alive_seconds = 0});
}

TEST_F(ShardMaxKeepAlive, Mqtt311ClientAskingForMoreOrForNoneIsRefusedWithIdentifierRejected) {
  options.max_keep_alive_seconds = 30;
  for (uint16_t keep_alive : {31, 65535, 0}) {
    broker::Connection* client = open();
    feed(client, connect_bytes("c", {.keep_alive_seconds = keep_alive}));
    EXPECT_EQ(take_output(client), connack_bytes(false, ConnectReturnCode::kIdentifierRejected)) << keep_alive;
    EXPECT_TRUE(io().was_closed(client)) << keep_alive;
  }
  broker::Connection* v31 = open();
  feed(v31, connect_bytes("c31", {.keep_alive_seconds = 31, .protocol_level = 3}));
  EXPECT_EQ(take_output(v31), connack_bytes(false, ConnectReturnCode::kIdentifierRejected));
  EXPECT_EQ(shard().counters().keep_alive_refused, 4u);
  EXPECT_EQ(shard().session_count(), 0u);
  broker::Connection* within = connect("ok", {.keep_alive_seconds = 30});
  EXPECT_EQ(within->keep_alive_seconds, 30);
}

// --server-keep-alive replaces what an MQTT 5 client asked for (and is never above the cap,
// which the flags check); 3.1.1 clients have no Server Keep Alive and meet the cap alone.
TEST_F(ShardMaxKeepAlive, ServerKeepAliveWinsForMqtt5AndTheCapStillBinds311) {
  options.max_keep_alive_seconds = 30;
  options.server_keep_alive_seconds = 20;
  for (uint16_t asked : {0, 10, 100}) {
    std::vector<OutputPacket> answer;
    broker::Connection* client = connect5(absl::StrCat("c", asked), {.keep_alive_seconds = asked}, &answer);
    ASSERT_EQ(answer.size(), 1u);
    EXPECT_EQ(decode_connack5(answer[0]).properties.server_keep_alive_seconds, std::optional<uint16_t>(20));
    EXPECT_EQ(client->keep_alive_seconds, 20);
  }
  broker::Connection* v311 = open();
  feed(v311, connect_bytes("d", {.keep_alive_seconds = 31}));
  EXPECT_EQ(take_output(v311), connack_bytes(false, ConnectReturnCode::kIdentifierRejected));
}

// ---- Defect 13: acknowledgements of the wrong kind --------------------------------------------

class ShardWrongAck : public ShardProtocol {};

TEST_F(ShardWrongAck, Mqtt311PubrecOrPubcompForQos1ClosesWithoutAnswer) {
  for (PacketType wrong : {PacketType::kPubrec, PacketType::kPubcomp}) {
    broker::Connection* subscriber = connect("sub");
    subscribe(subscriber, "t", 2);
    broker::Connection* publisher = connect("pub");
    OutputPacket publish = deliver(publisher, subscriber, "t", 1, 7);
    uint16_t id = decode_publish(publish).packet_id;
    feed(subscriber, ack_bytes(wrong, id));
    EXPECT_TRUE(take_output(subscriber).empty()) << "no PUBREL for a QoS 1 message";
    EXPECT_EQ(subscriber->state, ConnectionState::kClosing);
    EXPECT_TRUE(io().was_closed(subscriber));
    feed(publisher, disconnect_bytes());
  }
  EXPECT_EQ(shard().counters().wrong_acknowledgements, 2u);
}

TEST_F(ShardWrongAck, Mqtt311PubackForQos2Closes) {
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "t", 2);
  broker::Connection* publisher = connect("pub");
  uint16_t id = decode_publish(deliver(publisher, subscriber, "t", 2, 7)).packet_id;
  feed(subscriber, ack_bytes(PacketType::kPuback, id));
  EXPECT_EQ(subscriber->state, ConnectionState::kClosing);
}

TEST_F(ShardWrongAck, PubcompBeforePubrecCloses) {
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "t", 2);
  broker::Connection* publisher = connect("pub");
  uint16_t id = decode_publish(deliver(publisher, subscriber, "t", 2, 7)).packet_id;
  feed(subscriber, ack_bytes(PacketType::kPubcomp, id));
  EXPECT_EQ(subscriber->state, ConnectionState::kClosing);
}

TEST_F(ShardWrongAck, Mqtt5PubrecForQos1GetsDisconnectProtocolError) {
  broker::Connection* subscriber = accepted5("sub");
  feed(subscriber, subscribe5_bytes(1, {"t"}, 2));
  take_output(subscriber);
  broker::Connection* publisher = connect("pub");
  OutputPacket publish = deliver(publisher, subscriber, "t", 1, 7);
  mqtt::PublishPacket decoded;
  ASSERT_EQ(mqtt::decode_publish(as_span(publish.body), publish.flags, ProtocolVersion::kV5, &decoded),
            mqtt::DecodeStatus::kOk);
  feed(subscriber, ack5_bytes(PacketType::kPubrec, decoded.packet_id));
  std::vector<OutputPacket> answer = split_packets(take_output(subscriber));
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].type, PacketType::kDisconnect);
  EXPECT_EQ(static_cast<uint8_t>(answer[0].body[0]), 0x82);
  EXPECT_EQ(subscriber->state, ConnectionState::kClosing);
}

// Unknown packet ids stay tolerated (the ack may cross a resend after a reconnect): a PUBREC
// is answered with PUBREL 0x92 under MQTT 5, PUBACK and PUBCOMP are ignored.
TEST_F(ShardWrongAck, Mqtt5UnknownIdsAreStillTolerated) {
  broker::Connection* client = accepted5("c");
  feed(client, ack5_bytes(PacketType::kPuback, 9) + ack5_bytes(PacketType::kPubcomp, 9));
  EXPECT_TRUE(client->output.empty());
  feed(client, ack5_bytes(PacketType::kPubrec, 9));
  EXPECT_EQ(take_output(client), ack5_bytes(PacketType::kPubrel, 9, 0x92));
  EXPECT_EQ(client->state, ConnectionState::kConnected);
}

// ---- Defect 14: MQTT 3.1 Session Present ---------------------------------------------------------

class ShardMqtt31 : public ShardProtocol {};

TEST_F(ShardMqtt31, SessionPresentIsAlwaysZeroButTheSessionIsResumed) {
  ConnectOptions v31{.clean_session = false, .protocol_level = 3};
  broker::Connection* first = open();
  feed(first, connect_bytes("old", v31));
  EXPECT_EQ(take_output(first), connack_bytes(false, ConnectReturnCode::kAccepted));
  subscribe(first, "t", 1);
  feed(first, disconnect_bytes());
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("t", "queued", 1, 3));

  broker::Connection* again = open();
  feed(again, connect_bytes("old", v31));
  EXPECT_EQ(take_output(again),
            connack_bytes(false, ConnectReturnCode::kAccepted) + publish_bytes("t", "queued", 1, 1));
}

// ---- Defect 15: the client's Maximum Packet Size on every packet --------------------------------

class ShardClientMaximumPacketSize : public ShardProtocol {};

TEST_F(ShardClientMaximumPacketSize, ConnackThatDoesNotFitIsNotSentAndTheConnectionCloses) {
  std::vector<OutputPacket> answer;
  broker::Connection* client = connect5("c", {.maximum_packet_size = 2}, &answer);
  EXPECT_TRUE(answer.empty()) << answer.size();
  EXPECT_EQ(client->state, ConnectionState::kClosing);
  EXPECT_TRUE(io().was_closed(client));
  EXPECT_EQ(shard().counters().packets_over_client_maximum, 1u);
  EXPECT_EQ(shard().session_count(), 0u);
}

TEST_F(ShardClientMaximumPacketSize, RefusalDropsItsReasonStringToFit) {
  options.maximum_qos = 1;
  std::vector<OutputPacket> answer;
  connect5("c", {.maximum_packet_size = 8, .will_topic = "w", .will_qos = 2}, &answer);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_LE(answer[0].bytes.size(), 8u);
  mqtt::ConnackPacket connack = decode_connack5(answer[0]);
  EXPECT_EQ(connack.reason_code, 0x9B);
  EXPECT_FALSE(connack.properties.reason_string.has_value());
}

TEST_F(ShardClientMaximumPacketSize, RefusalKeepsItsReasonStringWhenItFits) {
  options.maximum_qos = 1;
  std::vector<OutputPacket> answer;
  connect5("c", {.maximum_packet_size = 200, .will_topic = "w", .will_qos = 2}, &answer);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_TRUE(decode_connack5(answer[0]).properties.reason_string.has_value());
}

TEST_F(ShardClientMaximumPacketSize, SubackThatDoesNotFitIsNotSentAndTheConnectionCloses) {
  broker::Connection* client = accepted5("c", {.maximum_packet_size = 24});
  std::vector<std::string> filters;
  for (int i = 0; i < 30; ++i) filters.push_back(absl::StrCat("f", i));
  feed(client, subscribe5_bytes(1, filters, 0) + pingreq_bytes());
  EXPECT_TRUE(take_output(client).empty());
  EXPECT_EQ(client->state, ConnectionState::kClosing);
  EXPECT_EQ(shard().counters().packets_over_client_maximum, 1u);
}

TEST_F(ShardClientMaximumPacketSize, PacketsThatFitStillGoOut) {
  broker::Connection* client = accepted5("c", {.maximum_packet_size = 24});
  feed(client, subscribe5_bytes(1, {"a", "b"}, 1) + pingreq_bytes());
  std::vector<OutputPacket> answer = split_packets(take_output(client));
  ASSERT_EQ(answer.size(), 2u);
  EXPECT_EQ(answer[0].type, PacketType::kSuback);
  EXPECT_EQ(answer[1].type, PacketType::kPingresp);
  EXPECT_EQ(client->state, ConnectionState::kConnected);
}

TEST_F(ShardClientMaximumPacketSize, DisconnectDropsItsReasonStringToFit) {
  broker::Connection* client = accepted5("c", {.maximum_packet_size = 24});
  feed(client, publish5_bytes("a/+", "x"));  // a wildcard in a topic name: protocol error
  std::vector<OutputPacket> answer = split_packets(take_output(client));
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].type, PacketType::kDisconnect);
  EXPECT_LE(answer[0].bytes.size(), 24u);
}

// A message in flight is resent on reconnect; if the client now announces a smaller Maximum
// Packet Size, the resend is discarded as if sent (MQTT-3.1.2-25), not sent over the limit.
TEST_F(ShardClientMaximumPacketSize, InflightResendOverANewLimitIsDiscarded) {
  broker::Connection* first = accepted5("sub", {.session_expiry_seconds = 60});
  feed(first, subscribe5_bytes(1, {"t"}, 1));
  take_output(first);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("t", std::string(100, 'x'), 1, 1) + publish_bytes("t", "small", 1, 2));
  EXPECT_EQ(split_packets(take_output(first)).size(), 2u);
  feed(first, disconnect5_bytes(0));

  std::vector<OutputPacket> answer;
  broker::Connection* again =
      connect5("sub", {.clean_start = false, .session_expiry_seconds = 60, .maximum_packet_size = 64}, &answer);
  ASSERT_EQ(answer.size(), 2u);
  EXPECT_EQ(answer[0].type, PacketType::kConnack);
  for (const OutputPacket& packet : answer) EXPECT_LE(packet.bytes.size(), 64u);
  mqtt::PublishPacket resent;
  ASSERT_EQ(mqtt::decode_publish_from_server(as_span(answer[1].body), answer[1].flags, ProtocolVersion::kV5, &resent),
            mqtt::DecodeStatus::kOk);
  EXPECT_EQ(resent.payload, "small");
  EXPECT_TRUE(resent.dup);
  ASSERT_NE(again->session, nullptr);
  EXPECT_EQ(again->session->inflight.size(), 1u);
}

// ---- Defect 16: --max-topic-levels ---------------------------------------------------------------

class ShardTopicLevels : public ShardProtocol {};

TEST_F(ShardTopicLevels, DeepFiltersAreRefusedInSuback) {
  options.max_topic_levels = 3;
  broker::Connection* client = connect("c");
  feed(client, subscribe_bytes(1, {{"a/b/c", 1}, {"a/b/c/d", 1}, {"+/+/+/#", 0}, {"$share/g/a/b/c/d", 0}}));
  EXPECT_EQ(take_output(client), suback_bytes(1, {1, 0x80, 0x80, 0x80}));
  EXPECT_EQ(shard().counters().topic_levels_refused, 3u);

  broker::Connection* client5 = accepted5("c5");
  feed(client5, subscribe5_bytes(1, {"a/b/c/d", "x/y/z"}, 0));
  std::vector<OutputPacket> answer = split_packets(take_output(client5));
  ASSERT_EQ(answer.size(), 1u);
  mqtt::SubackPacket suback;
  ASSERT_EQ(mqtt::decode_suback(as_span(answer[0].body), answer[0].flags, ProtocolVersion::kV5, &suback),
            mqtt::DecodeStatus::kOk);
  EXPECT_EQ(std::vector<uint8_t>(suback.return_codes.begin(), suback.return_codes.end()),
            (std::vector<uint8_t>{0x8F, 0x00}));
}

TEST_F(ShardTopicLevels, DeepPublishTopicClosesOrDisconnectsWith0x90) {
  options.max_topic_levels = 3;
  broker::Connection* client = connect("c");
  feed(client, publish_bytes("a/b/c", "ok"));
  EXPECT_EQ(client->state, ConnectionState::kConnected);
  feed(client, publish_bytes("a/b/c/", "deep"));  // four levels, the last one empty
  EXPECT_EQ(client->state, ConnectionState::kClosing);
  EXPECT_TRUE(take_output(client).empty());

  broker::Connection* client5 = accepted5("c5");
  feed(client5, publish5_bytes("/a/b/c", "deep"));
  std::vector<OutputPacket> answer = split_packets(take_output(client5));
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].type, PacketType::kDisconnect);
  EXPECT_EQ(static_cast<uint8_t>(answer[0].body[0]), 0x90);
  EXPECT_EQ(shard().counters().topic_levels_refused, 2u);
}

TEST_F(ShardTopicLevels, DeepWillTopicIsRefusedAtConnect) {
  options.max_topic_levels = 3;
  std::vector<OutputPacket> answer;
  broker::Connection* client5 = connect5("c5", {.will_topic = "a/b/c/d"}, &answer);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(decode_connack5(answer[0]).reason_code, 0x90);
  EXPECT_TRUE(io().was_closed(client5));

  broker::Connection* client = open();
  ConnectOptions with_will{.has_will = true};
  with_will.will.topic = "a/b/c/d";
  with_will.will.payload = "x";
  feed(client, connect_bytes("c", with_will));
  EXPECT_TRUE(take_output(client).empty());
  EXPECT_TRUE(io().was_closed(client));
  EXPECT_EQ(shard().counters().topic_levels_refused, 2u);
  EXPECT_EQ(shard().session_count(), 0u);
}

TEST_F(ShardTopicLevels, TheDefaultTakesWhatMosquittoTakes) {
  broker::Connection* client = connect("c");
  std::string deepest(200, '/');  // 201 levels: Mosquitto's limit is 200 '/'
  feed(client, publish_bytes(deepest, "ok") + subscribe_bytes(1, {{deepest, 0}, {absl::StrCat(deepest, "/"), 0}}));
  EXPECT_EQ(take_output(client), suback_bytes(1, {0, 0x80}));
  feed(client, publish_bytes(absl::StrCat(deepest, "/"), "deep"));
  EXPECT_EQ(client->state, ConnectionState::kClosing);
}

// ---- Defect 17: assigned client ids ----------------------------------------------------------------

class ShardAssignedIds : public ShardProtocol {};

TEST_F(ShardAssignedIds, AreDistinctStayOnThisShardAndCarry128RandomBits) {
  set_shards(2, 4);
  constexpr int kIds = 64;
  std::set<std::string> ids;
  std::bitset<128> ones, zeros;
  for (int i = 0; i < kIds; ++i) {
    std::vector<OutputPacket> answer;
    broker::Connection* client = connect5("", {}, &answer);
    ASSERT_EQ(client->state, ConnectionState::kConnected);
    ASSERT_EQ(answer.size(), 1u);
    mqtt::ConnackPacket connack = decode_connack5(answer[0]);
    ASSERT_TRUE(connack.properties.assigned_client_identifier.has_value());
    std::string id(*connack.properties.assigned_client_identifier);
    EXPECT_EQ(broker::owner_shard_of(id, 4), 2u) << id;
    ASSERT_TRUE(id.starts_with("coremq-")) << id;
    std::string suffix = id.substr(7);
    ASSERT_EQ(suffix.size(), 32u) << id;
    for (size_t nibble = 0; nibble < 32; ++nibble) {
      char c = suffix[nibble];
      ASSERT_TRUE(std::isxdigit(static_cast<unsigned char>(c)) && !std::isupper(static_cast<unsigned char>(c))) << id;
      int value = c <= '9' ? c - '0' : c - 'a' + 10;
      for (int bit = 0; bit < 4; ++bit) {
        ((value >> bit) & 1 ? ones : zeros).set(nibble * 4 + bit);
      }
    }
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), size_t{kIds});
  // A counter (or any short random part) leaves bits that never change; 64 independent
  // uniform draws leave a given bit constant with probability 2^-63.
  EXPECT_TRUE(ones.all()) << ones;
  EXPECT_TRUE(zeros.all()) << zeros;
}

TEST_F(ShardAssignedIds, Mqtt311AssignedIdsAreRandomToo) {
  broker::Connection* first = connect("");
  broker::Connection* second = connect("");
  ASSERT_NE(first->session, nullptr);
  ASSERT_NE(second->session, nullptr);
  EXPECT_EQ(first->session->client_id.size(), 39u) << first->session->client_id;
  EXPECT_NE(first->session->client_id, second->session->client_id);
}

TEST_F(ShardAssignedIds, AreNotLimitedByMaxClientIdLength) {
  options.max_client_id_length = 23;
  connect("");
  EXPECT_EQ(shard().session_count(), 1u);
}

// ---- Defect 10 (part): --max-topic-alias-broker -----------------------------------------------------

class ShardTopicAliasBroker : public ShardProtocol {};

TEST_F(ShardTopicAliasBroker, TheBrokerUsesAtMostTheCapWhateverTheClientAllows) {
  options.max_topic_alias_broker = 2;
  broker::Connection* subscriber = accepted5("sub", {.topic_alias_maximum = 100});
  feed(subscriber, subscribe5_bytes(1, {"#"}, 0));
  take_output(subscriber);
  broker::Connection* publisher = connect("pub");
  for (std::string topic : {"t1", "t2", "t3", "t1", "t3"}) feed(publisher, publish_bytes(topic, "m"));
  std::vector<OutputPacket> packets = split_packets(take_output(subscriber));
  ASSERT_EQ(packets.size(), 5u);
  std::vector<std::pair<std::string, uint16_t>> seen;  // topic as sent, alias (0: none)
  for (const OutputPacket& packet : packets) {
    mqtt::PublishPacket publish;
    ASSERT_EQ(mqtt::decode_publish_from_server(as_span(packet.body), packet.flags, ProtocolVersion::kV5, &publish),
              mqtt::DecodeStatus::kOk);
    seen.emplace_back(std::string(publish.topic), publish.properties.topic_alias.value_or(0));
  }
  std::vector<std::pair<std::string, uint16_t>> expected{{"t1", 1}, {"t2", 2}, {"t3", 0}, {"", 1}, {"t3", 0}};
  EXPECT_EQ(seen, expected);
  ASSERT_NE(subscriber->topic_aliases, nullptr);
  EXPECT_EQ(subscriber->topic_aliases->outbound.size(), 2u);
}

TEST_F(ShardTopicAliasBroker, ZeroMeansNoAliases) {
  options.max_topic_alias_broker = 0;
  broker::Connection* subscriber = accepted5("sub", {.topic_alias_maximum = 100});
  feed(subscriber, subscribe5_bytes(1, {"#"}, 0));
  take_output(subscriber);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("t1", "m"));
  std::vector<OutputPacket> packets = split_packets(take_output(subscriber));
  ASSERT_EQ(packets.size(), 1u);
  mqtt::PublishPacket publish;
  ASSERT_EQ(mqtt::decode_publish_from_server(as_span(packets[0].body), packets[0].flags, ProtocolVersion::kV5,
                                             &publish),
            mqtt::DecodeStatus::kOk);
  EXPECT_FALSE(publish.properties.topic_alias.has_value());
}

// One message fanned out to 3.1.1 and MQTT 5 subscribers: the header is encoded once per form
// and reused (ShardState's header cache), so each copy must still carry its own subscriber's
// packet id, its own version's layout and, for MQTT 5, its own per-delivery properties.
TEST_F(ShardProtocol, FannedOutHeadersCarryEachSubscribersPacketIdVersionAndProperties) {
  broker::Connection* ahead = connect("ahead");  // 3.1.1; a message of its own first: next id 2
  subscribe(ahead, "t", 1);
  subscribe(ahead, "solo", 1, 2);
  broker::Connection* fresh = connect("fresh");  // 3.1.1, next id 1
  subscribe(fresh, "t", 1);
  broker::Connection* v5 = accepted5("v5");
  feed(v5, subscribe5_bytes(1, {"t"}, 1));
  take_output(v5);
  broker::Connection* aliased = accepted5("aliased", {.topic_alias_maximum = 5});
  feed(aliased, subscribe5_bytes(1, {"t"}, 1));
  take_output(aliased);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("solo", "own", 1, 1));
  EXPECT_EQ(take_output(ahead), publish_bytes("solo", "own", 1, 1));
  feed(publisher, publish_bytes("t", "fanned", 1, 2));
  EXPECT_EQ(take_output(ahead), publish_bytes("t", "fanned", 1, 2));
  EXPECT_EQ(take_output(fresh), publish_bytes("t", "fanned", 1, 1));
  EXPECT_EQ(take_output(v5), publish5_bytes("t", "fanned", 1, 1));
  std::vector<OutputPacket> aliased_packets = split_packets(take_output(aliased));
  ASSERT_EQ(aliased_packets.size(), 1u);
  mqtt::PublishPacket with_alias;
  ASSERT_EQ(mqtt::decode_publish_from_server(as_span(aliased_packets[0].body), aliased_packets[0].flags,
                                             ProtocolVersion::kV5, &with_alias),
            mqtt::DecodeStatus::kOk);
  EXPECT_EQ(with_alias.packet_id, 1);
  EXPECT_EQ(with_alias.payload, "fanned");
  EXPECT_TRUE(with_alias.properties.topic_alias.has_value());
  // QoS 0 and QoS 1 copies of one message are different forms of its header.
  feed(fresh, subscribe_bytes(2, {{"t", 0}}));
  take_output(fresh);
  feed(publisher, publish_bytes("t", "mixed", 1, 3));
  EXPECT_EQ(take_output(ahead), publish_bytes("t", "mixed", 1, 3));
  EXPECT_EQ(take_output(fresh), publish_bytes("t", "mixed", 0, 0));
  EXPECT_EQ(take_output(v5), publish5_bytes("t", "mixed", 1, 2));
}

}  // namespace
}  // namespace coremq::testing
