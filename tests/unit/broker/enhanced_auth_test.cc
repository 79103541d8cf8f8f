// MQTT 5 enhanced authentication in ShardState (src/broker/handle_connect.cc) over FakeIo:
// multi-step exchanges while connecting (AUTH Continue authentication until CONNACK), the
// refusals (wrong method, wrong reason code, the hook's failure and its reason code, a step
// over the client's Maximum Packet Size), the connect timeout during an exchange, the
// hand-off before any hook call, and re-authentication of a connected client (AUTH
// Re-authenticate ... AUTH Success, or DISCONNECT). Deterministic: a scripted hook answers.
#include <gtest/gtest.h>

#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth_packets.h"
#include "coremq/authentication.h"
#include "shard_harness.h"

namespace coremq::testing {
namespace {

using broker::ConnectionState;
using mqtt::PacketType;
using Step = AuthenticationHook::Step;

constexpr uint8_t kSuccess = 0x00;
constexpr uint8_t kContinue = 0x18;
constexpr uint8_t kReauthenticate = 0x19;

Step step(Step::Result result, std::string data = {}, uint8_t failure_reason_code = 0x87) {
  Step answer;
  answer.result = result;
  answer.data = std::move(data);
  answer.failure_reason_code = failure_reason_code;
  return answer;
}
Step continue_with(std::string data) { return step(Step::Result::kContinue, std::move(data)); }
Step success_with(std::string data = {}) { return step(Step::Result::kSuccess, std::move(data)); }
Step failure(uint8_t reason = 0x87) { return step(Step::Result::kFailure, {}, reason); }

// Answers from a script and records every call. Supports the methods "TEST" and "OTHER".
class ScriptedHook final : public AuthenticationHook {
 public:
  struct Call {
    std::string kind;  // begin, next, reauth
    std::string client_id;
    std::string method;
    std::string data;
  };
  std::deque<Step> answers;
  std::vector<Call> calls;

  bool supports_method(std::string_view method) const override { return method == "TEST" || method == "OTHER"; }
  Step begin(std::string_view client_id, std::string_view method, std::string_view data) override {
    return answer("begin", client_id, method, data);
  }
  Step next(std::string_view client_id, std::string_view method, std::string_view data) override {
    return answer("next", client_id, method, data);
  }
  Step begin_reauthentication(std::string_view client_id, std::string_view method, std::string_view data) override {
    return answer("reauth", client_id, method, data);
  }

 private:
  Step answer(std::string kind, std::string_view client_id, std::string_view method, std::string_view data) {
    calls.push_back(Call{std::move(kind), std::string(client_id), std::string(method), std::string(data)});
    if (answers.empty()) return failure();
    Step next = answers.front();
    answers.pop_front();
    return next;
  }
};

class ShardEnhancedAuth : public ShardHarness {
 protected:
  std::shared_ptr<ScriptedHook> hook = std::make_shared<ScriptedHook>();

  void SetUp() override {
    ShardHarness::SetUp();
    options.authentication_hook = hook;
  }

  // Every packet staged for the connection since the last call, decoded.
  std::vector<ServerPacket> replies(broker::Connection* connection) {
    std::vector<ServerPacket> packets;
    for (const OutputPacket& packet : split_packets(take_output(connection))) {
      auto body = std::span(reinterpret_cast<const uint8_t*>(packet.body.data()), packet.body.size());
      packets.push_back(decode_server_packet(static_cast<uint8_t>(packet.bytes[0]), body));
      EXPECT_TRUE(packets.back().ok) << "a packet of type " << static_cast<int>(packet.type) << " does not decode";
    }
    return packets;
  }

  // The one packet staged for the connection, which must be of `type`.
  ServerPacket reply(broker::Connection* connection, PacketType type) {
    std::vector<ServerPacket> packets = replies(connection);
    EXPECT_EQ(packets.size(), 1u);
    if (packets.size() != 1) return {};
    EXPECT_EQ(packets[0].type, type);
    return packets[0];
  }

  // A client connected with method TEST in one step (begin answers Success).
  broker::Connection* connect_with_method(std::string_view client_id) {
    hook->answers.push_back(success_with());
    broker::Connection* connection = open();
    feed(connection, connect5_bytes(client_id, {.method = "TEST"}));
    ServerPacket connack = reply(connection, PacketType::kConnack);
    EXPECT_EQ(connack.reason_code, 0);
    EXPECT_EQ(connection->state, ConnectionState::kConnected);
    hook->calls.clear();
    return connection;
  }

  void expect_closed(broker::Connection* connection) {
    EXPECT_EQ(connection->state, ConnectionState::kClosing);
    EXPECT_TRUE(io().was_closed(connection));
  }
};

TEST_F(ShardEnhancedAuth, MultiStepExchangeEndsInConnackWithMethodAndData) {
  hook->answers = {continue_with("challenge-1"), continue_with("challenge-2"), success_with("server-final")};
  broker::Connection* connection = open();
  feed(connection, connect5_bytes("c1", {.method = "TEST", .data = "client-first"}));
  ServerPacket auth = reply(connection, PacketType::kAuth);
  EXPECT_EQ(auth.reason_code, kContinue);
  EXPECT_EQ(auth.method, "TEST");  // MQTT-4.12.0-5
  EXPECT_EQ(auth.data, "challenge-1");
  EXPECT_EQ(connection->state, ConnectionState::kAuthenticating);

  feed(connection, auth_bytes(kContinue, "TEST", "response-1"));
  auth = reply(connection, PacketType::kAuth);
  EXPECT_EQ(auth.reason_code, kContinue);
  EXPECT_EQ(auth.data, "challenge-2");

  feed(connection, auth_bytes(kContinue, "TEST", "response-2"));
  ServerPacket connack = reply(connection, PacketType::kConnack);
  EXPECT_EQ(connack.reason_code, 0);
  EXPECT_EQ(connack.method, "TEST");
  EXPECT_EQ(connack.data, "server-final");
  EXPECT_EQ(connection->state, ConnectionState::kConnected);
  EXPECT_EQ(shard().session_count(), 1u);

  ASSERT_EQ(hook->calls.size(), 3u);
  EXPECT_EQ(hook->calls[0].kind, "begin");
  EXPECT_EQ(hook->calls[0].client_id, "c1");
  EXPECT_EQ(hook->calls[0].data, "client-first");
  EXPECT_EQ(hook->calls[1].kind, "next");
  EXPECT_EQ(hook->calls[1].data, "response-1");
  EXPECT_EQ(hook->calls[2].kind, "next");
  EXPECT_EQ(hook->calls[2].data, "response-2");

  feed(connection, pingreq_bytes());
  EXPECT_EQ(take_output(connection), pingresp_bytes());
}

TEST_F(ShardEnhancedAuth, AssignedClientIdIsTheSameInEveryStepAndInConnack) {
  hook->answers = {continue_with("challenge"), success_with()};
  broker::Connection* connection = open();
  feed(connection, connect5_bytes("", {.method = "TEST"}));
  reply(connection, PacketType::kAuth);
  feed(connection, auth_bytes(kContinue, "TEST", "response"));
  ServerPacket connack = reply(connection, PacketType::kConnack);
  EXPECT_EQ(connack.reason_code, 0);
  ASSERT_TRUE(connack.assigned_client_id.has_value());
  ASSERT_EQ(hook->calls.size(), 2u);
  EXPECT_EQ(hook->calls[0].client_id, *connack.assigned_client_id);
  EXPECT_EQ(hook->calls[1].client_id, *connack.assigned_client_id);
}

TEST_F(ShardEnhancedAuth, AuthWithAnotherMethodWhileConnectingIsRefusedInConnack) {
  hook->answers = {continue_with("challenge")};
  broker::Connection* connection = open();
  feed(connection, connect5_bytes("c1", {.method = "TEST"}));
  reply(connection, PacketType::kAuth);
  feed(connection, auth_bytes(kContinue, "OTHER", "response"));
  // No DISCONNECT before a successful CONNACK (MQTT-3.14.0-1): the refusal is a CONNACK.
  EXPECT_EQ(reply(connection, PacketType::kConnack).reason_code, 0x82);
  expect_closed(connection);
  EXPECT_EQ(hook->calls.size(), 1u);
  EXPECT_EQ(shard().session_count(), 0u);
}

TEST_F(ShardEnhancedAuth, AuthWithAnotherReasonWhileConnectingIsRefusedInConnack) {
  hook->answers = {continue_with("challenge")};
  broker::Connection* connection = open();
  feed(connection, connect5_bytes("c1", {.method = "TEST"}));
  reply(connection, PacketType::kAuth);
  feed(connection, auth_bytes(kReauthenticate, "TEST", "response"));
  EXPECT_EQ(reply(connection, PacketType::kConnack).reason_code, 0x82);
  expect_closed(connection);
}

TEST_F(ShardEnhancedAuth, OtherPacketWhileAuthenticatingIsRefusedInConnack) {
  hook->answers = {continue_with("challenge")};
  broker::Connection* connection = open();
  feed(connection, connect5_bytes("c1", {.method = "TEST"}));
  reply(connection, PacketType::kAuth);
  feed(connection, pingreq_bytes());  // MQTT-3.1.2-30: only AUTH or DISCONNECT until CONNACK
  EXPECT_EQ(reply(connection, PacketType::kConnack).reason_code, 0x82);
  expect_closed(connection);
}

TEST_F(ShardEnhancedAuth, HookFailureRefusesWithNotAuthorized) {
  hook->answers = {continue_with("challenge"), failure()};
  broker::Connection* connection = open();
  feed(connection, connect5_bytes("c1", {.method = "TEST"}));
  reply(connection, PacketType::kAuth);
  feed(connection, auth_bytes(kContinue, "TEST", "wrong"));
  ServerPacket connack = reply(connection, PacketType::kConnack);
  EXPECT_EQ(connack.reason_code, 0x87);
  EXPECT_FALSE(connack.method.has_value());  // only a successful CONNACK repeats it
  expect_closed(connection);
  EXPECT_EQ(shard().counters().authentication_failures, 1u);
  EXPECT_EQ(shard().session_count(), 0u);
}

TEST_F(ShardEnhancedAuth, HookFailureReasonCodeReachesTheClient) {
  hook->answers = {failure(0x86)};
  broker::Connection* first = open();
  feed(first, connect5_bytes("c1", {.method = "TEST"}));
  EXPECT_EQ(reply(first, PacketType::kConnack).reason_code, 0x86);  // Bad User Name or Password
  expect_closed(first);

  hook->answers = {continue_with("challenge"), failure(0x8A)};
  broker::Connection* second = open();
  feed(second, connect5_bytes("c2", {.method = "TEST"}));
  reply(second, PacketType::kAuth);
  feed(second, auth_bytes(kContinue, "TEST", "response"));
  EXPECT_EQ(reply(second, PacketType::kConnack).reason_code, 0x8A);  // Banned

  // Not a failure code, or not one CONNACK carries: Not authorized.
  hook->answers = {failure(0x05)};
  broker::Connection* third = open();
  feed(third, connect5_bytes("c3", {.method = "TEST"}));
  EXPECT_EQ(reply(third, PacketType::kConnack).reason_code, 0x87);
  hook->answers = {failure(0x8E)};
  broker::Connection* fourth = open();
  feed(fourth, connect5_bytes("c4", {.method = "TEST"}));
  EXPECT_EQ(reply(fourth, PacketType::kConnack).reason_code, 0x87);
  EXPECT_EQ(shard().counters().authentication_failures, 4u);
}

TEST_F(ShardEnhancedAuth, StepOverTheClientsMaximumPacketSizeEndsTheExchange) {
  // MQTT-3.1.2-24: the limit holds for AUTH while connecting, before CONNACK set it.
  hook->answers = {continue_with(std::string(64, 'x'))};
  broker::Connection* connection = open();
  feed(connection, connect5_bytes("c1", {.method = "TEST", .maximum_packet_size = 64}));
  std::vector<ServerPacket> packets = replies(connection);
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(packets[0].type, PacketType::kConnack);
  EXPECT_EQ(packets[0].reason_code, 0x95);
  expect_closed(connection);
}

TEST_F(ShardEnhancedAuth, HookDataOverTheBinaryDataLimitFailsTheExchange) {
  // Authentication Data holds at most 65535 bytes: more is the hook's error, answered with
  // 0x83 (Implementation specific error), not a broken packet or a crash.
  hook->answers = {continue_with(std::string(65536, 'x'))};
  broker::Connection* first = open();
  feed(first, connect5_bytes("c1", {.method = "TEST"}));
  EXPECT_EQ(reply(first, PacketType::kConnack).reason_code, 0x83);
  expect_closed(first);

  broker::Connection* second = connect_with_method("c2");
  hook->answers = {success_with(std::string(70000, 'x'))};
  feed(second, auth_bytes(kReauthenticate, "TEST", "re-first"));
  EXPECT_EQ(reply(second, PacketType::kDisconnect).reason_code, 0x83);
  expect_closed(second);
}

TEST_F(ShardEnhancedAuth, ConnectTimeoutEndsAnExchangeThatStalls) {
  options.connect_timeout_seconds = 5;
  hook->answers = {continue_with("challenge")};
  broker::Connection* connection = open();
  feed(connection, connect5_bytes("c1", {.method = "TEST"}));
  reply(connection, PacketType::kAuth);
  tick(io().now + 4000);
  EXPECT_EQ(connection->state, ConnectionState::kAuthenticating);
  tick(io().now + 2000);
  expect_closed(connection);
  EXPECT_EQ(shard().counters().connect_timeouts, 1u);
  EXPECT_EQ(shard().connection_count(), 0u);
  EXPECT_EQ(shard().session_count(), 0u);
}

TEST_F(ShardEnhancedAuth, HandOffHappensBeforeTheHookIsAsked) {
  // The exchange runs on the owner shard, where the session will live: the accepting shard
  // only checks that the method is supported.
  set_shards(0, 2);
  std::string client_id;
  for (int i = 0; client_id.empty() || broker::owner_shard_of(client_id, 2) == 0; ++i) {
    char candidate[16];
    std::snprintf(candidate, sizeof(candidate), "c%d", i);
    client_id = candidate;
  }
  broker::Connection* connection = open();
  feed(connection, connect5_bytes(client_id, {.method = "TEST"}));
  EXPECT_TRUE(io().was_handed_off(connection));
  EXPECT_TRUE(hook->calls.empty());
  EXPECT_TRUE(connection->output.empty());
}

TEST_F(ShardEnhancedAuth, ReauthenticationInStepsEndsInAuthSuccess) {
  broker::Connection* connection = connect_with_method("c1");
  hook->answers = {continue_with("re-challenge"), success_with("re-final")};
  feed(connection, auth_bytes(kReauthenticate, "TEST", "re-first"));
  ServerPacket auth = reply(connection, PacketType::kAuth);
  EXPECT_EQ(auth.reason_code, kContinue);
  EXPECT_EQ(auth.method, "TEST");
  EXPECT_EQ(auth.data, "re-challenge");

  // Other packets flow during the exchange, under the previous authentication (4.12.1).
  feed(connection, pingreq_bytes());
  EXPECT_EQ(take_output(connection), pingresp_bytes());

  feed(connection, auth_bytes(kContinue, "TEST", "re-response"));
  auth = reply(connection, PacketType::kAuth);
  EXPECT_EQ(auth.reason_code, kSuccess);
  EXPECT_EQ(auth.method, "TEST");
  EXPECT_EQ(auth.data, "re-final");
  EXPECT_EQ(connection->state, ConnectionState::kConnected);

  ASSERT_EQ(hook->calls.size(), 2u);
  EXPECT_EQ(hook->calls[0].kind, "reauth");
  EXPECT_EQ(hook->calls[0].client_id, "c1");
  EXPECT_EQ(hook->calls[0].data, "re-first");
  EXPECT_EQ(hook->calls[1].kind, "next");
  EXPECT_EQ(hook->calls[1].data, "re-response");

  // And again, in one step.
  hook->answers = {success_with()};
  feed(connection, auth_bytes(kReauthenticate, "TEST", "again"));
  auth = reply(connection, PacketType::kAuth);
  EXPECT_EQ(auth.reason_code, kSuccess);
  EXPECT_FALSE(auth.data.has_value());
}

TEST_F(ShardEnhancedAuth, FailedReauthenticationDisconnectsWithNotAuthorizedAndPublishesTheWill) {
  broker::Connection* watcher = connect("watcher");
  subscribe(watcher, "will/#", 0);
  hook->answers = {success_with()};
  broker::Connection* connection = open();
  mqtt::ConnectPacket connect;
  connect.protocol_level = 5;
  connect.client_id = "c1";
  connect.properties.authentication_method = "TEST";
  connect.has_will = true;
  connect.will.topic = "will/c1";
  connect.will.payload = "gone";
  feed(connection, encoded([&](base::ByteBuffer& out) { mqtt::encode_connect(out, connect); }));
  EXPECT_EQ(reply(connection, PacketType::kConnack).reason_code, 0);

  hook->answers = {continue_with("re-challenge"), failure(0x86)};
  feed(connection, auth_bytes(kReauthenticate, "TEST", "re-first"));
  reply(connection, PacketType::kAuth);
  feed(connection, auth_bytes(kContinue, "TEST", "wrong"));
  // 0x86 is no DISCONNECT reason (table 2-6): Not authorized (MQTT-4.12.1-2).
  EXPECT_EQ(reply(connection, PacketType::kDisconnect).reason_code, 0x87);
  expect_closed(connection);
  EXPECT_EQ(shard().counters().authentication_failures, 1u);
  std::vector<OutputPacket> delivered = split_packets(take_output(watcher));
  ASSERT_EQ(delivered.size(), 1u);
  EXPECT_EQ(decode_publish(delivered[0]).topic, "will/c1");
}

TEST_F(ShardEnhancedAuth, ReauthenticationWithAnotherMethodIsAProtocolError) {
  broker::Connection* connection = connect_with_method("c1");
  feed(connection, auth_bytes(kReauthenticate, "OTHER", "re-first"));
  EXPECT_EQ(reply(connection, PacketType::kDisconnect).reason_code, 0x82);
  expect_closed(connection);
  EXPECT_TRUE(hook->calls.empty());
}

TEST_F(ShardEnhancedAuth, AuthFromAClientThatNamedNoMethodIsAProtocolError) {
  broker::Connection* connection = open();
  feed(connection, connect5_bytes("c1"));
  ServerPacket connack = reply(connection, PacketType::kConnack);
  EXPECT_EQ(connack.reason_code, 0);
  EXPECT_FALSE(connack.method.has_value());  // MQTT-4.12.0-6
  feed(connection, auth_bytes(kReauthenticate, "TEST", "re-first"));  // MQTT-4.12.0-7
  EXPECT_EQ(reply(connection, PacketType::kDisconnect).reason_code, 0x82);
  expect_closed(connection);
  EXPECT_TRUE(hook->calls.empty());
}

TEST_F(ShardEnhancedAuth, AuthInItsShortFormWithoutMethodIsAProtocolError) {
  // An empty AUTH body means Success with no properties, so no method: a client never sends it.
  const std::string empty_auth("\xF0\x00", 2);
  broker::Connection* connected = connect_with_method("c1");
  feed(connected, empty_auth);
  EXPECT_EQ(reply(connected, PacketType::kDisconnect).reason_code, 0x82);
  expect_closed(connected);

  hook->answers = {continue_with("challenge")};
  broker::Connection* connecting = open();
  feed(connecting, connect5_bytes("c2", {.method = "TEST"}));
  reply(connecting, PacketType::kAuth);
  feed(connecting, empty_auth);
  EXPECT_EQ(reply(connecting, PacketType::kConnack).reason_code, 0x82);
  expect_closed(connecting);
  EXPECT_TRUE(hook->calls.size() == 1);
}

TEST_F(ShardEnhancedAuth, ContinueWithoutReauthenticationAndReauthenticateTwiceAreProtocolErrors) {
  broker::Connection* first = connect_with_method("c1");
  feed(first, auth_bytes(kContinue, "TEST", "unasked"));
  EXPECT_EQ(reply(first, PacketType::kDisconnect).reason_code, 0x82);
  expect_closed(first);

  broker::Connection* second = connect_with_method("c2");
  hook->answers = {continue_with("re-challenge")};
  feed(second, auth_bytes(kReauthenticate, "TEST", "re-first"));
  reply(second, PacketType::kAuth);
  feed(second, auth_bytes(kReauthenticate, "TEST", "re-first-again"));
  EXPECT_EQ(reply(second, PacketType::kDisconnect).reason_code, 0x82);
  expect_closed(second);
  EXPECT_EQ(hook->calls.size(), 1u);
}

TEST_F(ShardEnhancedAuth, ReauthenticationStepOverTheClientsMaximumPacketSizeDisconnects) {
  hook->answers = {success_with()};
  broker::Connection* connection = open();
  feed(connection, connect5_bytes("c1", {.method = "TEST", .maximum_packet_size = 64}));
  EXPECT_EQ(reply(connection, PacketType::kConnack).reason_code, 0);
  hook->answers = {continue_with(std::string(64, 'x'))};
  feed(connection, auth_bytes(kReauthenticate, "TEST", "re-first"));
  ServerPacket disconnect = reply(connection, PacketType::kDisconnect);
  EXPECT_EQ(disconnect.reason_code, 0x95);
  expect_closed(connection);
}

TEST_F(ShardEnhancedAuth, AuthStepsRespectRequestProblemInformation) {
  // MQTT-3.1.2-29: with Request Problem Information 0 no Reason String on AUTH (nor any
  // other packet but PUBLISH, CONNACK and DISCONNECT).
  hook->answers = {continue_with("challenge"), success_with()};
  broker::Connection* connection = open();
  feed(connection, connect5_bytes("c1", {.method = "TEST", .request_problem_information = 0}));
  ServerPacket auth = reply(connection, PacketType::kAuth);
  EXPECT_FALSE(auth.reason_string.has_value());
  feed(connection, auth_bytes(kContinue, "TEST", "response"));
  EXPECT_EQ(reply(connection, PacketType::kConnack).reason_code, 0);
  hook->answers = {continue_with("re-challenge")};
  feed(connection, auth_bytes(kReauthenticate, "TEST", "re-first"));
  EXPECT_FALSE(reply(connection, PacketType::kAuth).reason_string.has_value());
}

}  // namespace
}  // namespace coremq::testing
