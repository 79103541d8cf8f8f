// Unit tests of ACL enforcement in broker::ShardState over a FakeIo: a listener's ACL file
// (ListenerSecurity) compiled at CONNECT for the CONNECT's username and client id, then refused
// PUBLISHes (dropped; acknowledged as mosquitto 2.0 does: plain PUBACK/PUBREC for 3.1.1, 0x87
// for MQTT 5), SUBSCRIBE filters nothing readable matches (0x80 / 0x87, per filter), deliveries
// and retained messages the subscriber may not read, wills, shared groups (a member that may not
// read is passed over), and the counters. Suites are named Shard* like the other broker tests.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "auth/acl_file.h"
#include "broker/listener_security.h"
#include "shard_harness.h"

namespace coremq::testing {
namespace {

using mqtt::PacketType;

constexpr std::string_view kAcl =
    "topic read pub/#\n"
    "user alice\n"
    "topic readwrite a/#\n"
    "topic deny a/secret/#\n"
    "topic readwrite will/#\n"
    "user reader\n"
    "topic read #\n"
    "user writer\n"
    "topic write #\n"
    "pattern readwrite dev/%c/#\n";

struct Login {
  std::optional<std::string_view> username;
  uint8_t protocol_level = 4;
  std::optional<std::string_view> will_topic;
  bool clean_session = true;
};

std::string connect_as(std::string_view client_id, const Login& login) {
  mqtt::ConnectPacket connect;
  connect.protocol_level = login.protocol_level;
  connect.client_id = client_id;
  connect.clean_session = login.clean_session;
  if (login.username) {
    connect.has_username = true;
    connect.username = *login.username;
  }
  if (login.will_topic) {
    connect.has_will = true;
    connect.will.topic = *login.will_topic;
    connect.will.payload = "gone";
  }
  return encoded([&](base::ByteBuffer& out) { mqtt::encode_connect(out, connect); });
}

std::string publish5_bytes(std::string_view topic, uint8_t qos, uint16_t packet_id) {
  mqtt::PublishPacket publish;
  publish.topic = topic;
  publish.payload = "x";
  publish.qos = qos;
  publish.packet_id = packet_id;
  return encoded([&](base::ByteBuffer& out) { mqtt::encode_publish(out, publish, mqtt::ProtocolVersion::kV5, {}); });
}

class ShardAcl : public ShardHarness {
 protected:
  void use_acl(std::string_view text) {
    std::string error;
    auto file = auth::AclFile::parse(text, "acl", &error);
    ASSERT_NE(file, nullptr) << error;
    shard().set_listener_security({broker::ListenerSecurity{file}});
  }

  broker::Connection* login(std::string_view client_id, const Login& login = {}) {
    broker::Connection* connection = open();
    feed(connection, connect_as(client_id, login));
    EXPECT_EQ(connection->state, broker::ConnectionState::kConnected);
    std::vector<OutputPacket> packets = split_packets(take_output(connection));
    EXPECT_EQ(packets.size(), 1u);
    if (!packets.empty()) {
      EXPECT_EQ(packets[0].type, PacketType::kConnack);
    }
    return connection;
  }

  // The SUBACK codes for one SUBSCRIBE of these filters (QoS 1 each).
  std::vector<uint8_t> suback_codes(broker::Connection* connection, std::vector<std::string> filters) {
    std::vector<mqtt::SubscribeTopic> topics;
    for (const std::string& filter : filters) {
      mqtt::SubscribeTopic topic;
      topic.filter = filter;
      topic.qos = 1;
      topics.push_back(topic);
    }
    bool v5 = connection->version == mqtt::ProtocolVersion::kV5;
    feed(connection, encoded([&](base::ByteBuffer& out) {
           mqtt::encode_subscribe(out, 9, topics, connection->version, {});
         }));
    std::vector<OutputPacket> packets = split_packets(take_output(connection));
    EXPECT_FALSE(packets.empty());
    if (packets.empty()) return {};
    EXPECT_EQ(packets[0].type, PacketType::kSuback);
    // What followed the SUBACK (retained messages) stays for received_topics.
    for (size_t i = 1; i < packets.size(); ++i) connection->output.append(std::string_view(packets[i].bytes));
    size_t codes_at = v5 ? 3 : 2;  // packet id, then (MQTT 5) a zero property length
    return std::vector<uint8_t>(packets[0].body.begin() + static_cast<ptrdiff_t>(codes_at), packets[0].body.end());
  }

  std::vector<std::string> received_topics(broker::Connection* connection) {
    std::vector<std::string> topics;
    for (const OutputPacket& packet : split_packets(take_output(connection))) {
      if (packet.type == PacketType::kPublish) topics.emplace_back(decode_publish(packet).topic);
    }
    return topics;
  }

  const broker::ShardCounters& counters() { return shard().counters(); }
};

TEST_F(ShardAcl, RefusedPublishIsDroppedAndAcknowledgedLikeMosquittoFor311) {
  use_acl(kAcl);
  broker::Connection* reader = login("r", {.username = "reader"});
  EXPECT_EQ(suback_codes(reader, {"#"}), std::vector<uint8_t>{1});
  broker::Connection* alice = login("alice-1", {.username = "alice"});
  feed(alice, publish_bytes("zzz/1", "x", 0));
  feed(alice, publish_bytes("zzz/1", "x", 1, 7));
  feed(alice, publish_bytes("a/secret/1", "x", 2, 8));
  EXPECT_EQ(take_output(alice), ack_bytes(PacketType::kPuback, 7) + ack_bytes(PacketType::kPubrec, 8));
  feed(alice, ack_bytes(PacketType::kPubrel, 8));  // the 3.1.1 client goes on with PUBREL
  EXPECT_EQ(take_output(alice), ack_bytes(PacketType::kPubcomp, 8));
  EXPECT_TRUE(received_topics(reader).empty());
  EXPECT_EQ(counters().acl_publishes_denied, 3u);
  feed(alice, publish_bytes("a/1", "x", 1, 9));
  EXPECT_EQ(take_output(alice), ack_bytes(PacketType::kPuback, 9));
  EXPECT_EQ(received_topics(reader), std::vector<std::string>{"a/1"});
}

TEST_F(ShardAcl, RefusedPublishGetsNotAuthorizedInMqtt5) {
  use_acl(kAcl);
  broker::Connection* alice = login("alice-1", {.username = "alice", .protocol_level = 5});
  feed(alice, publish5_bytes("zzz/1", 1, 7));
  feed(alice, publish5_bytes("zzz/1", 2, 8));
  feed(alice, publish5_bytes("a/1", 1, 9));
  std::vector<OutputPacket> packets = split_packets(take_output(alice));
  ASSERT_EQ(packets.size(), 3u);
  EXPECT_EQ(packets[0].type, PacketType::kPuback);
  EXPECT_EQ(packets[0].body, std::string("\x00\x07\x87", 3));
  EXPECT_EQ(packets[1].type, PacketType::kPubrec);
  EXPECT_EQ(packets[1].body, std::string("\x00\x08\x87", 3));
  EXPECT_EQ(packets[2].type, PacketType::kPuback);
  EXPECT_EQ(packets[2].body.substr(0, 2), std::string("\x00\x09", 2));
  EXPECT_TRUE(packets[2].body.size() == 2 || static_cast<uint8_t>(packets[2].body[2]) < 0x80);
}

TEST_F(ShardAcl, SubscribeRefusesPerFilter) {
  use_acl(kAcl);
  broker::Connection* alice = login("alice-1", {.username = "alice"});
  EXPECT_EQ(suback_codes(alice, {"a/#", "zzz/#", "#", "a/secret/#", "$share/g/zzz", "$share/g/a/+"}),
            (std::vector<uint8_t>{1, 0x80, 1, 0x80, 0x80, 1}));
  broker::Connection* alice5 = login("alice-5", {.username = "alice", .protocol_level = 5});
  EXPECT_EQ(suback_codes(alice5, {"zzz/#", "dev/alice-5/x"}), (std::vector<uint8_t>{0x87, 1}));
  EXPECT_EQ(counters().acl_subscriptions_denied, 4u);
}

TEST_F(ShardAcl, DeliveryAndRetainedOnlyWhatTheSubscriberMayRead) {
  use_acl(kAcl);
  broker::Connection* writer = login("w", {.username = "writer"});
  feed(writer, publish_bytes("a/retained", "r", 0, 0, /*retain=*/true));
  feed(writer, publish_bytes("pub/retained", "r", 0, 0, /*retain=*/true));
  broker::Connection* alice = login("alice-1", {.username = "alice"});
  EXPECT_EQ(suback_codes(alice, {"#"}), std::vector<uint8_t>{1});
  EXPECT_EQ(received_topics(alice), std::vector<std::string>{"a/retained"});
  broker::Connection* anonymous = login("anon");
  EXPECT_EQ(suback_codes(anonymous, {"#"}), std::vector<uint8_t>{1});
  EXPECT_EQ(received_topics(anonymous), std::vector<std::string>{"pub/retained"});
  for (std::string_view topic : {"a/1", "a/secret/1", "pub/1", "zzz", "dev/alice-1/x", "dev/anon/x"}) {
    feed(writer, publish_bytes(topic, "x"));
  }
  EXPECT_EQ(received_topics(alice), (std::vector<std::string>{"a/1", "dev/alice-1/x"}));
  EXPECT_EQ(received_topics(anonymous), (std::vector<std::string>{"pub/1", "dev/anon/x"}));
  EXPECT_GT(counters().acl_deliveries_denied, 0u);
}

TEST_F(ShardAcl, WillIsCheckedWhenPublished) {
  use_acl(kAcl);
  broker::Connection* reader = login("r", {.username = "reader"});
  EXPECT_EQ(suback_codes(reader, {"#"}), std::vector<uint8_t>{1});
  broker::Connection* allowed = login("alice-1", {.username = "alice", .will_topic = "will/ok"});
  broker::Connection* refused = login("alice-2", {.username = "alice", .will_topic = "zzz/will"});
  shard().on_transport_closed(allowed);
  shard().on_transport_closed(refused);
  EXPECT_EQ(received_topics(reader), std::vector<std::string>{"will/ok"});
  EXPECT_EQ(counters().acl_publishes_denied, 1u);
}

TEST_F(ShardAcl, SharedGroupPassesOverAMemberThatMayNotRead) {
  use_acl(kAcl);
  broker::Connection* alice = login("alice-1", {.username = "alice"});
  broker::Connection* reader = login("r", {.username = "reader"});
  EXPECT_EQ(suback_codes(alice, {"$share/g/#"}), std::vector<uint8_t>{1});
  EXPECT_EQ(suback_codes(reader, {"$share/g/#"}), std::vector<uint8_t>{1});
  broker::Connection* writer = login("w", {.username = "writer"});
  for (int i = 0; i < 4; ++i) feed(writer, publish_bytes("pub/x", "x"));
  EXPECT_TRUE(received_topics(alice).empty());
  EXPECT_EQ(received_topics(reader).size(), 4u);
  for (int i = 0; i < 4; ++i) feed(writer, publish_bytes("a/x", "x"));
  EXPECT_EQ(received_topics(alice).size() + received_topics(reader).size(), 4u);
}

TEST_F(ShardAcl, ReconnectCompilesForTheNewUsername) {
  use_acl(kAcl);
  broker::Connection* first = login("same", {.username = "alice", .clean_session = false});
  feed(first, publish_bytes("a/1", "x", 1, 1));
  EXPECT_EQ(take_output(first), ack_bytes(PacketType::kPuback, 1));
  EXPECT_EQ(counters().acl_publishes_denied, 0u);
  feed(first, disconnect_bytes());
  broker::Connection* second = open();
  feed(second, connect_as("same", {.username = "reader", .clean_session = false}));
  take_output(second);
  feed(second, publish_bytes("a/1", "x", 1, 2));
  EXPECT_EQ(counters().acl_publishes_denied, 1u);
}

TEST_F(ShardAcl, ListenerWithoutAnAclAllowsEverything) {
  shard().set_listener_security({broker::ListenerSecurity{}});
  broker::Connection* client = login("c", {.username = "nobody"});
  EXPECT_EQ(suback_codes(client, {"#"}), std::vector<uint8_t>{1});
  feed(client, publish_bytes("zzz", "x"));
  EXPECT_EQ(received_topics(client), std::vector<std::string>{"zzz"});
  EXPECT_EQ(counters().acl_publishes_denied + counters().acl_deliveries_denied, 0u);
}

// The embedding program's AuthorizationHook (include/coremq/authorization.h) decides next to the
// ACL file: both must allow. Here without an ACL file: the hook alone.
class DenyingHook final : public AuthorizationHook {
 public:
  bool allow_publish(const ClientIdentity& client, std::string_view topic, uint8_t, bool) override {
    seen_username = client.username ? std::string(*client.username) : "(none)";
    return !topic.starts_with("secret/");
  }
  bool allow_subscribe(const ClientIdentity&, std::string_view filter, uint8_t) override {
    return !filter.starts_with("private/");
  }
  bool allow_receive(const ClientIdentity& client, std::string_view topic) override {
    return !(client.client_id == "guest" && topic.starts_with("hidden/"));
  }
  std::string seen_username;
};

class ShardAuthorizationHook : public ShardAcl {
 protected:
  void SetUp() override {
    ShardAcl::SetUp();
    hook = std::make_shared<DenyingHook>();
    options.authorization_hook = hook;
  }
  std::shared_ptr<DenyingHook> hook;
};

TEST_F(ShardAuthorizationHook, DecidesPublishSubscribeAndDelivery) {
  broker::Connection* guest = login("guest");
  broker::Connection* member = login("member", {.username = "mia"});
  EXPECT_EQ(suback_codes(guest, {"#", "private/x"}), (std::vector<uint8_t>{1, 0x80}));
  EXPECT_EQ(suback_codes(member, {"#"}), std::vector<uint8_t>{1});
  feed(member, publish_bytes("secret/1", "x", 1, 7));  // dropped, acknowledged (3.1.1)
  EXPECT_EQ(take_output(member), ack_bytes(PacketType::kPuback, 7));
  EXPECT_EQ(hook->seen_username, "mia");
  feed(member, publish_bytes("hidden/1", "x", 0));
  feed(member, publish_bytes("open/1", "x", 0));
  EXPECT_EQ(received_topics(guest), std::vector<std::string>{"open/1"});
  EXPECT_EQ(received_topics(member), (std::vector<std::string>{"hidden/1", "open/1"}));
  EXPECT_EQ(counters().acl_publishes_denied, 1u);
  EXPECT_EQ(counters().acl_subscriptions_denied, 1u);
  EXPECT_EQ(counters().acl_deliveries_denied, 1u);
}

}  // namespace
}  // namespace coremq::testing
