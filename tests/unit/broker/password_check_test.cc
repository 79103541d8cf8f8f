// A CONNECT on a listener with a password file waits, held, for the password checker's
// verdict (broker/password_check.cc), which a test gives by hand through
// ShardState::on_password_verdict, as the real checker's threads do through the ring.
#include <gtest/gtest.h>

#include <string>

#include "broker/shard_state.h"
#include "mqtt/encoder.h"
#include "shard_harness.h"

namespace coremq::testing {
namespace {

std::string connect_with_credentials(uint8_t protocol_level, std::string_view client_id,
                                     std::optional<std::string_view> username,
                                     std::optional<std::string_view> password) {
  mqtt::ConnectPacket connect;
  connect.protocol_level = protocol_level;
  connect.client_id = client_id;
  connect.clean_session = true;
  connect.has_username = username.has_value();
  connect.username = username.value_or("");
  connect.has_password = password.has_value();
  connect.password = password.value_or("");
  base::ByteBuffer out;
  mqtt::encode_connect(out, connect);
  return std::string(out.view());
}

class ShardPasswordCheck : public ShardHarness {
 protected:
  void SetUp() override {
    ShardHarness::SetUp();
    ListenerOptions with_file;
    with_file.password_file = "/etc/coremq/passwords";
    ListenerOptions without_file;
    without_file.port = 1884;
    options.listeners = {with_file, without_file};
  }
};

TEST_F(ShardPasswordCheck, ConnectWaitsForTheVerdictAndWhatFollowsItWaitsToo) {
  broker::Connection* connection = open();
  // CONNECT and a SUBSCRIBE in one read: the SUBSCRIBE must not be handled before the CONNACK.
  feed(connection, connect_with_credentials(4, "device", "alice", "secret") + subscribe_bytes(1, {{"t", 0}}));
  ASSERT_EQ(io().password_checks.size(), 1u);
  const FakeIo::PasswordCheck& check = io().password_checks[0];
  EXPECT_EQ(check.listener, 0);
  EXPECT_EQ(check.username, "alice");
  EXPECT_TRUE(check.has_password);
  EXPECT_EQ(check.password, "secret");
  EXPECT_EQ(connection->state, broker::ConnectionState::kAuthenticating);
  EXPECT_TRUE(connection->input_held);
  EXPECT_EQ(take_output(connection), "");
  shard().on_password_verdict(check.token, /*accepted=*/true);
  EXPECT_EQ(connection->state, broker::ConnectionState::kConnected);
  EXPECT_FALSE(connection->input_held);
  EXPECT_EQ(take_output(connection),
            connack_bytes(false, mqtt::ConnectReturnCode::kAccepted) + suback_bytes(1, {0}));
  EXPECT_EQ(shard().counters().password_checks, 1u);
}

TEST_F(ShardPasswordCheck, WrongPasswordIsNotAuthorizedInEitherVersion) {
  broker::Connection* v311 = open();
  feed(v311, connect_with_credentials(4, "a", "alice", "wrong"));
  broker::Connection* v5 = open();
  feed(v5, connect_with_credentials(5, "b", "alice", "wrong"));
  ASSERT_EQ(io().password_checks.size(), 2u);
  shard().on_password_verdict(io().password_checks[0].token, false);
  shard().on_password_verdict(io().password_checks[1].token, false);
  // Mosquitto 2 answers 5 (3.1.1) and 0x87 (MQTT 5) for a wrong password or unknown user.
  EXPECT_EQ(take_output(v311), connack_bytes(false, mqtt::ConnectReturnCode::kNotAuthorized));
  std::string refusal = take_output(v5);
  ASSERT_GE(refusal.size(), 4u);
  EXPECT_EQ(uint8_t(refusal[3]), 0x87);
  EXPECT_TRUE(io().was_closed(v311));
  EXPECT_TRUE(io().was_closed(v5));
  EXPECT_EQ(shard().counters().authentication_failures, 2u);
}

TEST_F(ShardPasswordCheck, VerdictForAConnectionThatLeftIsIgnored) {
  broker::Connection* connection = open();
  feed(connection, connect_with_credentials(4, "device", "alice", "secret"));
  ASSERT_EQ(io().password_checks.size(), 1u);
  shard().on_transport_closed(connection);
  EXPECT_EQ(connection->state, broker::ConnectionState::kClosing);
  shard().on_password_verdict(io().password_checks[0].token, true);  // must not touch it
  EXPECT_EQ(shard().counters().connections_current, 0u);
  // The same client id connects again and is checked afresh.
  broker::Connection* again = open();
  feed(again, connect_with_credentials(4, "device", "alice", "secret"));
  ASSERT_EQ(io().password_checks.size(), 2u);
  EXPECT_NE(io().password_checks[1].token, io().password_checks[0].token);
}

TEST_F(ShardPasswordCheck, FullCheckerQueueIsServerBusy) {
  io().password_checker_full = true;
  broker::Connection* v311 = open();
  feed(v311, connect_with_credentials(4, "a", "alice", "secret"));
  EXPECT_EQ(take_output(v311), connack_bytes(false, mqtt::ConnectReturnCode::kServerUnavailable));
  broker::Connection* v5 = open();
  feed(v5, connect_with_credentials(5, "b", "alice", "secret"));
  std::string refusal = take_output(v5);
  ASSERT_GE(refusal.size(), 4u);
  EXPECT_EQ(uint8_t(refusal[3]), 0x89);
  EXPECT_EQ(shard().counters().password_checks_refused_busy, 2u);
}

TEST_F(ShardPasswordCheck, ListenerWithoutAPasswordFileChecksNothing) {
  broker::Connection* connection = open();
  connection->listener = 1;
  feed(connection, connect_with_credentials(4, "device", "alice", "anything"));
  EXPECT_TRUE(io().password_checks.empty());
  EXPECT_EQ(connection->state, broker::ConnectionState::kConnected);
}

TEST_F(ShardPasswordCheck, UsernameWithoutPasswordIsCheckedAsHavingNone) {
  broker::Connection* connection = open();
  feed(connection, connect_with_credentials(4, "device", "alice", std::nullopt));
  ASSERT_EQ(io().password_checks.size(), 1u);
  EXPECT_FALSE(io().password_checks[0].has_password);
}

}  // namespace
}  // namespace coremq::testing

namespace coremq::testing {
namespace {

TEST_F(ShardPasswordCheck, ExpiredCheckIsServerBusy) {
  broker::Connection* connection = open();
  feed(connection, connect_with_credentials(5, "device", "alice", "secret"));
  ASSERT_EQ(io().password_checks.size(), 1u);
  shard().on_password_verdict(io().password_checks[0].token, /*accepted=*/false, /*expired=*/true);
  std::string refusal = take_output(connection);
  ASSERT_GE(refusal.size(), 4u);
  EXPECT_EQ(uint8_t(refusal[3]), 0x89);
  EXPECT_EQ(shard().counters().password_checks_refused_busy, 1u);
  EXPECT_EQ(shard().counters().authentication_failures, 0u);
}

}  // namespace
}  // namespace coremq::testing
