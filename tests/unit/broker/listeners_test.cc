// Listeners as the broker runs them (src/broker/listeners.h): the anonymous policy's resolution
// (Mosquitto 2's rule), loopback detection, the addresses each listener binds, the listener
// Options make when it lists none; and the policy enforced by ShardState at CONNECT (CONNACK
// 0x05 for 3.1.1, 0x87 for 5.0, counted), per listener.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "broker/listeners.h"
#include "shard_harness.h"

namespace coremq::testing {
namespace {

using Anonymous = ListenerOptions::Anonymous;

ListenerOptions listener_on(std::string address, Anonymous anonymous = Anonymous::kDefault) {
  ListenerOptions listener;
  listener.address = std::move(address);
  listener.allow_anonymous = anonymous;
  return listener;
}

TEST(ShardListenerPolicy, ExplicitSettingsWin) {
  EXPECT_TRUE(broker::anonymous_allowed(listener_on("0.0.0.0", Anonymous::kAllow)));
  EXPECT_FALSE(broker::anonymous_allowed(listener_on("127.0.0.1", Anonymous::kDeny)));
  ListenerOptions with_passwords = listener_on("0.0.0.0", Anonymous::kAllow);
  with_passwords.password_file = "/etc/coremq/passwd";
  EXPECT_TRUE(broker::anonymous_allowed(with_passwords));
}

TEST(ShardListenerPolicy, DefaultAllowsLoopbackOnly) {
  for (const char* address : {"", "localhost", "127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(broker::anonymous_allowed(listener_on(address))) << address;
  }
  for (const char* address : {"*", "0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "::ffff:10.0.0.1", "fe80::1",
                              "128.0.0.1", "not-an-address"}) {
    EXPECT_FALSE(broker::anonymous_allowed(listener_on(address))) << address;
  }
}

TEST(ShardListenerPolicy, DefaultRefusesWithAPasswordFileEvenOnLoopback) {
  ListenerOptions listener = listener_on("127.0.0.1");
  listener.password_file = "/etc/coremq/passwd";
  EXPECT_FALSE(broker::anonymous_allowed(listener));
}

TEST(ShardListenerPolicy, DefaultAllowsTlsWithRequiredCertificateAnywhere) {
  ListenerOptions listener = listener_on("0.0.0.0");
  listener.tls = true;
  EXPECT_FALSE(broker::anonymous_allowed(listener));
  listener.tls_options.require_certificate = true;
  EXPECT_TRUE(broker::anonymous_allowed(listener));
  listener.password_file = "/etc/coremq/passwd";  // the password file still decides
  EXPECT_FALSE(broker::anonymous_allowed(listener));
}

TEST(ShardListenerPolicy, BindAddresses) {
  auto numeric = [](const std::string& address) {
    std::vector<std::string> out;
    for (const broker::BindAddress& bind : broker::bind_addresses(address)) {
      out.push_back(bind.numeric + (bind.optional ? "?" : ""));
    }
    return out;
  };
  EXPECT_EQ(numeric(""), (std::vector<std::string>{"127.0.0.1", "::1?"}));
  EXPECT_EQ(numeric("*"), (std::vector<std::string>{"0.0.0.0", "::?"}));
  EXPECT_EQ(numeric("::1"), (std::vector<std::string>{"::1"}));
  EXPECT_EQ(numeric("[::1]"), (std::vector<std::string>{"::1"}));
  EXPECT_EQ(numeric("10.1.2.3"), (std::vector<std::string>{"10.1.2.3"}));
}

TEST(ShardListenerPolicy, EffectiveListenersAndUrls) {
  Options options;
  options.bind_address = "0.0.0.0";
  options.port = 1999;
  std::vector<ListenerOptions> only = broker::effective_listeners(options);
  ASSERT_EQ(only.size(), 1u);
  EXPECT_EQ(only[0].address, "0.0.0.0");
  EXPECT_EQ(only[0].port, 1999);
  EXPECT_EQ(only[0].allow_anonymous, Anonymous::kDefault);
  options.listeners = {listener_on("::1"), listener_on("")};
  options.listeners[1].transport = ListenerOptions::Transport::kWebSockets;
  options.listeners[1].tls = true;
  ASSERT_EQ(broker::effective_listeners(options).size(), 2u);
  EXPECT_EQ(broker::listener_url(options.listeners[0], "::1", 1883), "mqtt://[::1]:1883");
  EXPECT_EQ(broker::listener_url(options.listeners[1], "127.0.0.1", 8084), "wss://127.0.0.1:8084");
}

// The policy at CONNECT: listener 0 on loopback lets anonymous clients in, listener 1 on every
// interface does not (3.1.1: CONNACK 0x05, 5.0: CONNACK 0x87), a client with a username passes
// (its password is another module's business), and each refusal is counted.
class ShardAnonymousPolicy : public ShardHarness {
 protected:
  void SetUp() override {
    ShardHarness::SetUp();
    options.listeners = {listener_on("127.0.0.1"), listener_on("0.0.0.0")};
  }

  broker::Connection* open_on(uint8_t listener) {
    broker::Connection* connection = open();
    connection->listener = listener;
    return connection;
  }

  static std::string connect_with(std::string_view client_id, uint8_t protocol_level, bool username) {
    mqtt::ConnectPacket connect;
    connect.client_id = client_id;
    connect.clean_session = true;
    connect.protocol_level = protocol_level;
    connect.has_username = username;
    connect.username = username ? "alice" : "";
    return encoded([&](base::ByteBuffer& out) { mqtt::encode_connect(out, connect); });
  }
};

TEST_F(ShardAnonymousPolicy, LoopbackListenerAcceptsAnonymous) {
  broker::Connection* connection = open_on(0);
  feed(connection, connect_with("loop", 4, false));
  EXPECT_EQ(connection->state, broker::ConnectionState::kConnected);
  EXPECT_EQ(take_output(connection), connack_bytes(false, mqtt::ConnectReturnCode::kAccepted));
  EXPECT_EQ(shard().counters().anonymous_refused, 0u);
}

TEST_F(ShardAnonymousPolicy, NetworkListenerRefusesAnonymous311With0x05) {
  broker::Connection* connection = open_on(1);
  feed(connection, connect_with("net", 4, false));
  EXPECT_EQ(connection->state, broker::ConnectionState::kClosing);
  EXPECT_EQ(take_output(connection), connack_bytes(false, mqtt::ConnectReturnCode::kNotAuthorized));
  EXPECT_EQ(shard().counters().anonymous_refused, 1u);
  EXPECT_EQ(shard().session_count(), 0u);
}

TEST_F(ShardAnonymousPolicy, NetworkListenerRefusesAnonymous5With0x87) {
  broker::Connection* connection = open_on(1);
  feed(connection, connect_with("net5", 5, false));
  EXPECT_EQ(connection->state, broker::ConnectionState::kClosing);
  std::string connack = take_output(connection);
  ASSERT_GE(connack.size(), 4u);
  EXPECT_EQ(static_cast<uint8_t>(connack[0]), 0x20);  // CONNACK
  EXPECT_EQ(static_cast<uint8_t>(connack[3]), 0x87);  // Not authorized
  EXPECT_EQ(shard().counters().anonymous_refused, 1u);
}

TEST_F(ShardAnonymousPolicy, UsernamePassesTheAnonymousCheck) {
  broker::Connection* connection = open_on(1);
  feed(connection, connect_with("named", 4, true));
  EXPECT_EQ(connection->state, broker::ConnectionState::kConnected);
  EXPECT_EQ(shard().counters().anonymous_refused, 0u);
}

// Mosquitto reads a zero-length username as none (test_25 compares the two brokers).
TEST_F(ShardAnonymousPolicy, EmptyUsernameIsAnonymous) {
  mqtt::ConnectPacket connect;
  connect.client_id = "empty-name";
  connect.clean_session = true;
  connect.protocol_level = 4;
  connect.has_username = true;
  connect.username = "";
  broker::Connection* connection = open_on(1);
  feed(connection, encoded([&](base::ByteBuffer& out) { mqtt::encode_connect(out, connect); }));
  EXPECT_EQ(connection->state, broker::ConnectionState::kClosing);
  EXPECT_EQ(take_output(connection), connack_bytes(false, mqtt::ConnectReturnCode::kNotAuthorized));
  EXPECT_EQ(shard().counters().anonymous_refused, 1u);
}

TEST_F(ShardAnonymousPolicy, AllowAnonymousOpensTheNetworkListener) {
  options.listeners[1].allow_anonymous = Anonymous::kAllow;
  broker::Connection* connection = open_on(1);
  feed(connection, connect_with("opened", 4, false));
  EXPECT_EQ(connection->state, broker::ConnectionState::kConnected);
}

// A config file's listener with allow_anonymous false and no password file (Mosquitto 2 refuses
// every client there): a username nothing can check is refused too, with 0x05 / 0x87.
TEST_F(ShardAnonymousPolicy, UncheckedUsernameIsRefusedWhereTheFileSaysSo) {
  options.listeners[1].allow_anonymous = Anonymous::kDeny;
  options.listeners[1].refuse_unchecked_usernames = true;
  broker::Connection* refused = open_on(1);
  feed(refused, connect_with("named", 4, true));
  EXPECT_EQ(refused->state, broker::ConnectionState::kClosing);
  EXPECT_EQ(take_output(refused), connack_bytes(false, mqtt::ConnectReturnCode::kNotAuthorized));
  broker::Connection* refused5 = open_on(1);
  feed(refused5, connect_with("named5", 5, true));
  std::vector<OutputPacket> packets = split_packets(take_output(refused5));
  ASSERT_EQ(packets.size(), 1u);
  ASSERT_EQ(packets[0].type, mqtt::PacketType::kConnack);
  ASSERT_GE(packets[0].body.size(), 2u);
  EXPECT_EQ(static_cast<uint8_t>(packets[0].body[1]), 0x87);  // Not authorized, with a Reason String
  EXPECT_EQ(shard().counters().authentication_failures, 2u);
  EXPECT_EQ(shard().counters().anonymous_refused, 0u);
  EXPECT_EQ(shard().session_count(), 0u);
  // The other listener, without the setting, takes the same username as given.
  broker::Connection* accepted = open_on(0);
  feed(accepted, connect_with("named-loop", 4, true));
  EXPECT_EQ(accepted->state, broker::ConnectionState::kConnected);
}

}  // namespace
}  // namespace coremq::testing
