// Unit tests of broker::ShardState through a FakeIo: packets go in through on_bytes, and the
// assertions are on the exact bytes the broker stages in each connection's output buffer and on
// what it asks of the I/O side (closes, hand-offs, cross-shard posts). Suites are named Shard*
// so that --gtest_filter='Shard*' runs them.
#include <gtest/gtest.h>

#include <string>

#include "broker/message.h"
#include "shard_harness.h"

namespace coremq::testing {
namespace {

using broker::ConnectionState;
using broker::CrossShardItem;
using mqtt::ConnectReturnCode;
using mqtt::PacketType;

constexpr ConnectOptions kPersistent{.clean_session = false};

// ---- CONNECT ------------------------------------------------------------------------------

class ShardConnect : public ShardHarness {};

TEST_F(ShardConnect, AnswersConnackAccepted) {
  broker::Connection* client = open();
  feed(client, connect_bytes("c"));
  EXPECT_EQ(take_output(client), std::string("\x20\x02\x00\x00", 4));
  EXPECT_EQ(client->state, ConnectionState::kConnected);
  EXPECT_EQ(shard().session_count(), 1u);
  EXPECT_EQ(shard().connection_count(), 1u);
}

TEST_F(ShardConnect, ConnectArrivingByteByByte) {
  broker::Connection* client = open();
  const std::string packet = connect_bytes("slow");
  for (size_t i = 0; i + 1 < packet.size(); ++i) {
    feed(client, packet.substr(i, 1));
    ASSERT_TRUE(client->output.empty()) << "answered before byte " << i;
  }
  feed(client, packet.substr(packet.size() - 1) + pingreq_bytes().substr(0, 1));
  EXPECT_EQ(take_output(client), connack_bytes(false, ConnectReturnCode::kAccepted));
  feed(client, pingreq_bytes().substr(1));
  EXPECT_EQ(take_output(client), pingresp_bytes());
}

TEST_F(ShardConnect, UnsupportedProtocolLevelGetsCode1AndClose) {
  broker::Connection* client = open();
  feed(client, connect_bytes("c", {.protocol_level = 6}));  // no MQTT version has level 6
  EXPECT_EQ(take_output(client), connack_bytes(false, ConnectReturnCode::kUnacceptableProtocolVersion));
  ASSERT_EQ(io().closes.size(), 1u);
  EXPECT_EQ(io().closes[0].connection, client);
  EXPECT_TRUE(io().closes[0].flush_first);
  EXPECT_EQ(client->state, ConnectionState::kClosing);
  EXPECT_EQ(shard().connection_count(), 0u);
}

TEST_F(ShardConnect, PacketBeforeConnectClosesWithoutAnswer) {
  broker::Connection* client = open();
  feed(client, pingreq_bytes());
  EXPECT_TRUE(client->output.empty());
  EXPECT_TRUE(io().was_closed(client));
  EXPECT_EQ(shard().counters().protocol_errors, 1u);
}

TEST_F(ShardConnect, SecondConnectCloses) {
  broker::Connection* client = connect("c");
  feed(client, connect_bytes("c"));
  EXPECT_TRUE(io().was_closed(client));
  EXPECT_FALSE(io().closes[0].flush_first);
}

TEST_F(ShardConnect, EmptyClientIdNeedsCleanSession) {
  broker::Connection* assigned = open();
  feed(assigned, connect_bytes(""));
  EXPECT_EQ(take_output(assigned), connack_bytes(false, ConnectReturnCode::kAccepted));
  broker::Connection* refused = open();
  feed(refused, connect_bytes("", kPersistent));
  EXPECT_EQ(take_output(refused), connack_bytes(false, ConnectReturnCode::kIdentifierRejected));
  EXPECT_TRUE(io().was_closed(refused));
}

TEST_F(ShardConnect, ClientIdLongerThanTheLimitIsRejected) {
  options.max_client_id_length = 23;
  broker::Connection* client = open();
  feed(client, connect_bytes(std::string(24, 'x')));
  EXPECT_EQ(take_output(client), connack_bytes(false, ConnectReturnCode::kIdentifierRejected));
}

TEST_F(ShardConnect, SessionsBeyondTheLimitAreRefused) {
  options.max_sessions = 1;
  connect("first", kPersistent);
  broker::Connection* second = open();
  feed(second, connect_bytes("second"));
  EXPECT_EQ(take_output(second), connack_bytes(false, ConnectReturnCode::kServerUnavailable));
  EXPECT_EQ(shard().counters().sessions_refused_limit, 1u);
}

TEST_F(ShardConnect, PersistentSessionIsPresentOnReturn) {
  broker::Connection* first = connect("p", kPersistent);
  shard().on_transport_closed(first);
  EXPECT_EQ(shard().session_count(), 1u);
  connect("p", kPersistent, /*session_present=*/true);
  // A clean session discards it.
  broker::Connection* clean = connect("q");
  shard().on_transport_closed(clean);
  EXPECT_EQ(shard().session_count(), 1u);
}

TEST_F(ShardConnect, TakeoverClosesTheOldConnectionAndPublishesItsWill) {
  broker::Connection* watcher = connect("watcher");
  subscribe(watcher, "will/#", 0);
  ConnectOptions with_will{.clean_session = false, .has_will = true};
  with_will.will.topic = "will/t";
  with_will.will.payload = "gone";
  broker::Connection* old_connection = connect("same", with_will);
  broker::Connection* new_connection = connect("same", kPersistent, /*session_present=*/true);
  EXPECT_TRUE(io().was_closed(old_connection));
  EXPECT_EQ(new_connection->state, ConnectionState::kConnected);
  EXPECT_EQ(take_output(watcher), publish_bytes("will/t", "gone"));
}

TEST_F(ShardConnect, PingreqGetsPingresp) {
  broker::Connection* client = connect("c");
  feed(client, pingreq_bytes() + pingreq_bytes());
  EXPECT_EQ(take_output(client), pingresp_bytes() + pingresp_bytes());
}

TEST_F(ShardConnect, PacketOverMaxPacketSizeCloses) {
  options.max_packet_size = 128;
  broker::Connection* client = connect("c");
  feed(client, publish_bytes("t", std::string(200, 'x')).substr(0, 3));  // the header is enough
  EXPECT_TRUE(io().was_closed(client));
  EXPECT_EQ(shard().counters().protocol_errors, 1u);
}

// ---- QoS flows ----------------------------------------------------------------------------

class ShardQos : public ShardHarness {};

TEST_F(ShardQos, Qos0IsDeliveredAsIs) {
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "t", 0);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("t", "hello"));
  EXPECT_TRUE(publisher->output.empty());
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "hello"));
  EXPECT_EQ(shard().counters().messages_received, 1u);
  EXPECT_EQ(shard().counters().messages_delivered, 1u);
}

TEST_F(ShardQos, Qos1IsAcknowledgedAndNumbered) {
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "t", 1);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("t", "one", 1, 77));
  EXPECT_EQ(take_output(publisher), ack_bytes(PacketType::kPuback, 77));
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "one", 1, 1));
  feed(subscriber, ack_bytes(PacketType::kPuback, 1));
  feed(publisher, publish_bytes("t", "two", 1, 78));
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "two", 1, 2));
}

TEST_F(ShardQos, Qos2InboundIsDeliveredOnceUntilPubrel) {
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "t", 2);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("t", "x", 2, 7));
  EXPECT_EQ(take_output(publisher), ack_bytes(PacketType::kPubrec, 7));
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "x", 2, 1));
  // A resend before PUBREL is acknowledged again but not delivered again.
  feed(publisher, publish_bytes("t", "x", 2, 7, false, /*dup=*/true));
  EXPECT_EQ(take_output(publisher), ack_bytes(PacketType::kPubrec, 7));
  EXPECT_TRUE(subscriber->output.empty());
  feed(publisher, ack_bytes(PacketType::kPubrel, 7));
  EXPECT_EQ(take_output(publisher), ack_bytes(PacketType::kPubcomp, 7));
  // After PUBREL the id is free: the same id carries a new message.
  feed(publisher, publish_bytes("t", "y", 2, 7));
  EXPECT_EQ(take_output(publisher), ack_bytes(PacketType::kPubrec, 7));
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "y", 2, 2));
}

TEST_F(ShardQos, Qos2OutboundRunsPubrecPubrelPubcomp) {
  options.max_inflight = 1;
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "t", 2);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("t", "a", 2, 1) + publish_bytes("t", "b", 2, 2));
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "a", 2, 1));
  feed(subscriber, ack_bytes(PacketType::kPubrec, 1));
  EXPECT_EQ(take_output(subscriber), ack_bytes(PacketType::kPubrel, 1));
  // The window is still full until PUBCOMP.
  feed(subscriber, ack_bytes(PacketType::kPubcomp, 1));
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "b", 2, 2));
}

TEST_F(ShardQos, DeliveryQosIsTheLowerOfSubscriptionAndMessage) {
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "t", 0);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("t", "x", 2, 5));
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "x"));
}

TEST_F(ShardQos, OverlappingSubscriptionsDeliverOnceAtTheHighestQos) {
  broker::Connection* subscriber = connect("sub");
  feed(subscriber, subscribe_bytes(3, {{"a/+", 1}, {"a/#", 2}, {"a/b", 0}, {"#", 1}}));
  EXPECT_EQ(take_output(subscriber), suback_bytes(3, {1, 2, 0, 1}));
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("a/b", "m", 2, 9));
  EXPECT_EQ(take_output(subscriber), publish_bytes("a/b", "m", 2, 1));
  feed(publisher, publish_bytes("a/b", "n", 1, 10));
  EXPECT_EQ(take_output(subscriber), publish_bytes("a/b", "n", 1, 2));
}

TEST_F(ShardQos, InvalidFilterIsRefusedAloneAndUnsubscribeStopsDelivery) {
  broker::Connection* subscriber = connect("sub");
  feed(subscriber, subscribe_bytes(4, {{"a/#/b", 1}, {"a", 1}}));
  EXPECT_EQ(take_output(subscriber), suback_bytes(4, {0x80, 1}));
  feed(subscriber, unsubscribe_bytes(5, {"a", "never-subscribed"}));
  EXPECT_EQ(take_output(subscriber), unsuback_bytes(5));
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("a", "x"));
  EXPECT_TRUE(subscriber->output.empty());
}

TEST_F(ShardQos, PersistentSessionResendsUnacknowledgedWithDup) {
  broker::Connection* subscriber = connect("sub", kPersistent);
  subscribe(subscriber, "t", 2);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("t", "q1", 1, 1) + publish_bytes("t", "q2", 2, 2));
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "q1", 1, 1) + publish_bytes("t", "q2", 2, 2));
  feed(subscriber, ack_bytes(PacketType::kPubrec, 2));
  EXPECT_EQ(take_output(subscriber), ack_bytes(PacketType::kPubrel, 2));
  shard().on_transport_closed(subscriber);
  // Offline: QoS 1 waits in the session, QoS 0 is dropped.
  feed(publisher, publish_bytes("t", "q3", 1, 3) + publish_bytes("t", "q0", 0));
  EXPECT_EQ(shard().counters().qos0_dropped_offline, 1u);
  broker::Connection* back = open();
  feed(back, connect_bytes("sub", kPersistent));
  EXPECT_EQ(take_output(back), connack_bytes(true, ConnectReturnCode::kAccepted) + publish_bytes("t", "q1", 1, 1, false, /*dup=*/true) + ack_bytes(PacketType::kPubrel, 2) +
                                   publish_bytes("t", "q3", 1, 3));
}

TEST_F(ShardQos, AcknowledgementsForUnknownIdsAreHarmless) {
  broker::Connection* client = connect("c");
  feed(client, ack_bytes(PacketType::kPuback, 9) + ack_bytes(PacketType::kPubcomp, 9));
  EXPECT_TRUE(client->output.empty());
  feed(client, ack_bytes(PacketType::kPubrec, 9));  // answered, as the spec requires
  EXPECT_EQ(take_output(client), ack_bytes(PacketType::kPubrel, 9));
  EXPECT_EQ(client->state, ConnectionState::kConnected);
}

// ---- Retained messages --------------------------------------------------------------------

class ShardRetained : public ShardHarness {};

TEST_F(ShardRetained, SentOnSubscribeAfterTheSuback) {
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("r/1", "kept", 1, 1, /*retain=*/true));
  take_output(publisher);
  broker::Connection* subscriber = connect("sub");
  feed(subscriber, subscribe_bytes(2, {{"r/#", 2}}));
  EXPECT_EQ(take_output(subscriber), suback_bytes(2, {2}) + publish_bytes("r/1", "kept", 1, 1, /*retain=*/true));
}

TEST_F(ShardRetained, LiveDeliveryClearsTheRetainFlag) {
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "r", 0);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("r", "v", 0, 0, /*retain=*/true));
  EXPECT_EQ(take_output(subscriber), publish_bytes("r", "v"));
}

TEST_F(ShardRetained, EmptyPayloadClears) {
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("r", "v", 0, 0, true) + publish_bytes("r", "", 0, 0, true));
  broker::Connection* subscriber = connect("sub");
  feed(subscriber, subscribe_bytes(1, {{"r", 0}}));
  EXPECT_EQ(take_output(subscriber), suback_bytes(1, {0}));
}

TEST_F(ShardRetained, NewTopicsPastTheLimitAreNotStored) {
  options.max_retained_messages = 1;
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("r/1", "a", 0, 0, true) + publish_bytes("r/2", "b", 0, 0, true));
  EXPECT_EQ(shard().counters().retained_dropped_limit, 1u);
  broker::Connection* subscriber = connect("sub");
  feed(subscriber, subscribe_bytes(1, {{"r/+", 0}}));
  EXPECT_EQ(take_output(subscriber), suback_bytes(1, {0}) + publish_bytes("r/1", "a", 0, 0, true));
}

// ---- Will ---------------------------------------------------------------------------------

class ShardWill : public ShardHarness {
 protected:
  ConnectOptions will_options(uint8_t qos = 0, bool retain = false) {
    ConnectOptions connect_options{.has_will = true};
    connect_options.will.topic = "will/c";
    connect_options.will.payload = "offline";
    connect_options.will.qos = qos;
    connect_options.will.retain = retain;
    return connect_options;
  }
};

TEST_F(ShardWill, PublishedWhenTheTransportCloses) {
  broker::Connection* watcher = connect("watcher");
  subscribe(watcher, "will/#", 1);
  broker::Connection* client = connect("c", will_options(1));
  shard().on_transport_closed(client);
  EXPECT_EQ(take_output(watcher), publish_bytes("will/c", "offline", 1, 1));
}

TEST_F(ShardWill, PublishedOnAProtocolError) {
  broker::Connection* watcher = connect("watcher");
  subscribe(watcher, "will/#", 0);
  broker::Connection* client = connect("c", will_options());
  feed(client, std::string("\x30\x02\x00\x00", 4));  // PUBLISH with an empty topic
  EXPECT_TRUE(io().was_closed(client));
  EXPECT_EQ(take_output(watcher), publish_bytes("will/c", "offline"));
}

TEST_F(ShardWill, NotPublishedAfterDisconnect) {
  broker::Connection* watcher = connect("watcher");
  subscribe(watcher, "will/#", 0);
  broker::Connection* client = connect("c", will_options());
  feed(client, disconnect_bytes());
  EXPECT_TRUE(io().was_closed(client));
  shard().on_transport_closed(client);
  EXPECT_TRUE(watcher->output.empty());
}

TEST_F(ShardWill, RetainedWillIsStored) {
  broker::Connection* client = connect("c", will_options(0, /*retain=*/true));
  shard().on_transport_closed(client);
  broker::Connection* late = connect("late");
  feed(late, subscribe_bytes(1, {{"will/c", 0}}));
  EXPECT_EQ(take_output(late), suback_bytes(1, {0}) + publish_bytes("will/c", "offline", 0, 0, true));
}

// ---- Timers -------------------------------------------------------------------------------

class ShardTimers : public ShardHarness {};

TEST_F(ShardTimers, KeepAliveExpiresAfterOneAndAHalfPeriods) {
  broker::Connection* watcher = connect("watcher");
  subscribe(watcher, "will/#", 0);
  ConnectOptions connect_options{.keep_alive_seconds = 10, .has_will = true};
  connect_options.will.topic = "will/k";
  connect_options.will.payload = "expired";
  broker::Connection* client = connect("k", connect_options);  // last packet at t=1
  tick(1 + 15'000);
  EXPECT_FALSE(io().was_closed(client));
  tick(1 + 15'001);
  EXPECT_TRUE(io().was_closed(client));
  EXPECT_EQ(shard().counters().keep_alive_expiries, 1u);
  EXPECT_EQ(take_output(watcher), publish_bytes("will/k", "expired"));
  EXPECT_FALSE(io().was_closed(watcher)) << "keep-alive 0 never expires";
}

TEST_F(ShardTimers, AnyPacketRestartsKeepAlive) {
  broker::Connection* client = connect("k", {.keep_alive_seconds = 10});
  io().now = 10'000;
  feed(client, pingreq_bytes());
  tick(20'000);
  EXPECT_FALSE(io().was_closed(client));
  tick(25'001);
  EXPECT_TRUE(io().was_closed(client));
}

TEST_F(ShardTimers, ConnectTimeout) {
  options.connect_timeout_seconds = 10;
  io().now = 1'000;
  broker::Connection* silent = open();
  feed(silent, connect_bytes("c").substr(0, 5));  // bytes, but no whole CONNECT
  tick(11'000);
  EXPECT_FALSE(io().was_closed(silent));
  tick(11'001);
  EXPECT_TRUE(io().was_closed(silent));
  EXPECT_TRUE(silent->output.empty());
  EXPECT_EQ(shard().counters().connect_timeouts, 1u);
  EXPECT_EQ(shard().connection_count(), 0u);
}

// ---- Shards: hand-off, interest, forwarding -----------------------------------------------

// The skip-th client id (counting from 0) that owner_shard_of places on `shard`.
std::string id_owned_by(uint32_t shard, uint32_t shard_count, int skip = 0) {
  for (int i = 0;; ++i) {
    std::string id = "client-" + std::to_string(i);
    if (broker::owner_shard_of(id, shard_count) == shard && skip-- == 0) return id;
  }
}

class ShardCrossShard : public ShardHarness {};

TEST_F(ShardCrossShard, ConnectForAnotherShardIsHandedOffWithEveryByte) {
  set_shards(0, 2);
  std::string id = id_owned_by(1, 2);
  broker::Connection* client = open();
  std::string bytes = connect_bytes(id) + pingreq_bytes();
  feed(client, bytes.substr(0, 4));
  feed(client, bytes.substr(4));
  EXPECT_TRUE(client->output.empty());
  ASSERT_EQ(io().handoffs.size(), 1u);
  EXPECT_EQ(io().handoffs[0].target_shard, 1u);
  EXPECT_EQ(std::string(io().handoffs[0].input.begin(), io().handoffs[0].input.end()), bytes);
  EXPECT_EQ(client->state, ConnectionState::kHandingOff);
  EXPECT_EQ(shard().connection_count(), 0u);
  EXPECT_EQ(shard().counters().connections_current, 0u);
  EXPECT_EQ(shard().session_count(), 0u);
}

TEST_F(ShardCrossShard, OwnClientIdsAndAssignedIdsStay) {
  set_shards(3, 4);
  connect(id_owned_by(3, 4));
  connect("");
  EXPECT_TRUE(io().handoffs.empty());
  EXPECT_EQ(shard().session_count(), 2u);
}

TEST_F(ShardCrossShard, FirstAndLastSubscriberOfAFilterAreAnnounced) {
  set_shards(0, 3);
  broker::Connection* first = connect(id_owned_by(0, 3));
  subscribe(first, "a/#", 1);
  std::vector<FakeIo::Post> posts = io().take_posts();
  ASSERT_EQ(posts.size(), 2u);
  for (FakeIo::Post& post : posts) {
    EXPECT_EQ(post.item.kind, CrossShardItem::Kind::kInterestAdd);
    EXPECT_EQ(static_cast<broker::InterestChange*>(post.item.pointer)->filter, "a/#");
    release_cross_shard_item(post.item);
  }
  broker::Connection* second = connect(id_owned_by(0, 3, 1));
  subscribe(second, "a/#", 0);
  EXPECT_TRUE(io().posts.empty());
  feed(first, unsubscribe_bytes(2, {"a/#"}));
  EXPECT_TRUE(io().posts.empty());
  shard().on_transport_closed(second);  // a clean session ends with its subscriptions
  posts = io().take_posts();
  ASSERT_EQ(posts.size(), 2u);
  for (FakeIo::Post& post : posts) {
    EXPECT_EQ(post.item.kind, CrossShardItem::Kind::kInterestRemove);
    release_cross_shard_item(post.item);
  }
}

TEST_F(ShardCrossShard, PublishIsForwardedOnlyToInterestedShards) {
  set_shards(0, 3);
  shard().on_cross_shard(CrossShardItem{CrossShardItem::Kind::kInterestAdd, 2, new broker::InterestChange{"a/+"}});
  broker::Connection* publisher = connect(id_owned_by(0, 3));
  feed(publisher, publish_bytes("a/b", "x", 1, 1) + publish_bytes("c", "y"));
  std::vector<FakeIo::Post> posts = io().take_posts();
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].target_shard, 2u);
  ASSERT_EQ(posts[0].item.kind, CrossShardItem::Kind::kPublish);
  EXPECT_EQ(static_cast<broker::Message*>(posts[0].item.pointer)->topic(), "a/b");
  release_cross_shard_item(posts[0].item);
  // A retained message also updates every other shard's copy of the store.
  feed(publisher, publish_bytes("c", "z", 0, 0, /*retain=*/true));
  posts = io().take_posts();
  EXPECT_EQ(posts.size(), 2u);
  for (FakeIo::Post& post : posts) {
    EXPECT_EQ(post.item.kind, CrossShardItem::Kind::kRetainUpdate);
    release_cross_shard_item(post.item);
  }
  EXPECT_EQ(shard().counters().messages_forwarded_to_shards, 1u);
}

TEST_F(ShardCrossShard, PublishFromAnotherShardIsDeliveredHere) {
  set_shards(1, 2);
  broker::Connection* subscriber = connect(id_owned_by(1, 2));
  subscribe(subscriber, "t", 1);
  io().drop_posts();
  broker::Message* message = make_message("t", "remote", 1, /*retain=*/true, /*origin_shard=*/0);
  shard().on_cross_shard(CrossShardItem{CrossShardItem::Kind::kPublish, 0, message});
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "remote", 1, 1));
  EXPECT_TRUE(io().posts.empty()) << "a forwarded message is not forwarded again";
  // Its retained-store update comes as an item of its own; this shard's copy of the store
  // then answers a later subscriber, and the update is not sent on again.
  broker::Message* update = make_message("t", "remote", 1, /*retain=*/true, /*origin_shard=*/0);
  shard().on_cross_shard(CrossShardItem{CrossShardItem::Kind::kRetainUpdate, 0, update});
  EXPECT_TRUE(io().posts.empty());
  broker::Connection* late = connect(id_owned_by(1, 2, 1));
  feed(late, subscribe_bytes(1, {{"t", 1}}));
  EXPECT_EQ(take_output(late), suback_bytes(1, {1}) + publish_bytes("t", "remote", 1, 1, true));
  io().drop_posts();
}

// Two shards that each take a retained PUBLISH on the same topic in the same loop turn store
// their own message first and the other's second, so each keeps a different "last" message and
// subscribers on the two shards get different retained messages, for good. (Found while writing
// the fuzzer's cluster model; disabled until retained updates get an order all shards agree on,
// for example by routing each topic's retained updates through one owner shard.)
TEST(ShardCrossShardRetained, ShardsAgreeOnTheLastRetainedMessage) {
  Options options;
  FakeIo io0(0, 2);
  FakeIo io1(1, 2);
  broker::ShardState shard0(0, 2, options, io0);
  broker::ShardState shard1(1, 2, options, io1);
  broker::Connection publisher0;
  broker::Connection publisher1;
  auto feed = [](broker::ShardState& shard, broker::Connection* connection, std::string_view bytes) {
    shard.on_bytes(connection, std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  };
  const std::string id0 = id_owned_by(0, 2);
  const std::string id1 = id_owned_by(1, 2);
  shard0.on_connection_opened(&publisher0);
  shard1.on_connection_opened(&publisher1);
  feed(shard0, &publisher0, connect_bytes(id0) + publish_bytes("r", "from-0", 0, 0, true));
  feed(shard1, &publisher1, connect_bytes(id1) + publish_bytes("r", "from-1", 0, 0, true));
  // Turns go by until nothing more crosses: each shard's posts reach the other.
  for (int turn = 0; turn < 8 && !(io0.posts.empty() && io1.posts.empty()); ++turn) {
    std::vector<FakeIo::Post> from0 = io0.take_posts();
    std::vector<FakeIo::Post> from1 = io1.take_posts();
    for (FakeIo::Post& post : from0) shard1.on_cross_shard(post.item);
    for (FakeIo::Post& post : from1) shard0.on_cross_shard(post.item);
  }
  // A subscriber on each shard.
  std::string retained[2];
  broker::ShardState* shards[2] = {&shard0, &shard1};
  broker::Connection subscribers[2];
  for (uint32_t shard = 0; shard < 2; ++shard) {
    const std::string id = id_owned_by(shard, 2, /*skip=*/1);
    shards[shard]->on_connection_opened(&subscribers[shard]);
    feed(*shards[shard], &subscribers[shard], connect_bytes(id) + subscribe_bytes(1, {{"r", 0}}));
    retained[shard] = std::string(subscribers[shard].output.view());
  }
  EXPECT_EQ(retained[0], retained[1]);
  io0.drop_posts();
  io1.drop_posts();
}

// ---- Limits: queue, in-flight window, slow consumers ----------------------------------------

class ShardLimits : public ShardHarness {};

TEST_F(ShardLimits, InflightWindowHoldsTheRest) {
  options.max_inflight = 2;
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "t", 1);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("t", "1", 1, 1) + publish_bytes("t", "2", 1, 2) + publish_bytes("t", "3", 1, 3));
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "1", 1, 1) + publish_bytes("t", "2", 1, 2));
  feed(subscriber, ack_bytes(PacketType::kPuback, 2));  // out of order is fine
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "3", 1, 3));
}

TEST_F(ShardLimits, FullQueueDropsTheOldestQos0FirstThenNewMessages) {
  options.max_inflight = 1;
  options.max_queued_messages = 2;
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "t", 1);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("t", "m1", 1, 1));  // in flight
  feed(publisher, publish_bytes("t", "m2", 1, 2));  // queued
  feed(publisher, publish_bytes("t", "m3", 0));     // queued behind m2, to keep order
  feed(publisher, publish_bytes("t", "m4", 1, 4));  // full: m3 makes room
  feed(publisher, publish_bytes("t", "m5", 1, 5));  // full, no QoS 0 left: m5 is dropped
  EXPECT_EQ(shard().counters().messages_dropped_queue_full, 2u);
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "m1", 1, 1));
  feed(subscriber, ack_bytes(PacketType::kPuback, 1));
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "m2", 1, 2));
  feed(subscriber, ack_bytes(PacketType::kPuback, 2));
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "m4", 1, 3));
  feed(subscriber, ack_bytes(PacketType::kPuback, 3));
  EXPECT_TRUE(subscriber->output.empty());
}

TEST_F(ShardLimits, SlowConsumerLosesQos0PastTheOutputBound) {
  options.max_client_output_bytes = 1024;
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "t", 1);
  broker::Connection* publisher = connect("pub");
  const std::string payload(300, 'p');
  const size_t packet_size = publish_bytes("t", payload).size();
  for (int i = 0; i < 5; ++i) feed(publisher, publish_bytes("t", payload));
  // Four packets fit under 1024 bytes before the check; the fifth finds the bound reached.
  EXPECT_EQ(subscriber->output.size(), 4 * packet_size);
  EXPECT_EQ(shard().counters().qos0_dropped_slow_consumer, 1u);
  // QoS 1 is bounded by the in-flight window instead, and still sent.
  feed(publisher, publish_bytes("t", "q1", 1, 1));
  EXPECT_EQ(subscriber->output.size(), 4 * packet_size + publish_bytes("t", "q1", 1, 1).size());
  // Bytes the kernel is still sending count too.
  subscriber->sending.swap(subscriber->output);
  feed(publisher, publish_bytes("t", payload));
  EXPECT_EQ(shard().counters().qos0_dropped_slow_consumer, 2u);
  drain(subscriber);
  feed(publisher, publish_bytes("t", payload));
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", payload));
}

TEST_F(ShardLimits, QueuedQos0WaitsForTheOutputToDrain) {
  options.max_client_output_bytes = 1024;
  options.max_inflight = 1;
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "t", 1);
  broker::Connection* publisher = connect("pub");
  const std::string payload(600, 'p');
  feed(publisher, publish_bytes("t", payload, 1, 1));  // in flight
  feed(publisher, publish_bytes("t", "q", 1, 2));      // queued
  feed(publisher, publish_bytes("t", payload));        // queued behind it
  feed(publisher, publish_bytes("t", payload));
  take_output(subscriber);
  subscriber->output.append(std::string(2000, '\0'));  // a large send staged: over the bound
  feed(subscriber, ack_bytes(PacketType::kPuback, 1));
  // The QoS 1 message goes out (the window bounds it); the QoS 0 ones wait for the drain.
  EXPECT_EQ(take_output(subscriber).substr(2000), publish_bytes("t", "q", 1, 2));
  drain(subscriber);
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", payload) + publish_bytes("t", payload));
}

TEST_F(ShardLimits, SubscriptionsPastTheLimitAreRefused) {
  options.max_subscriptions_per_session = 2;
  broker::Connection* client = connect("c");
  feed(client, subscribe_bytes(1, {{"a", 0}, {"b", 1}, {"c", 2}, {"a", 1}}));
  // A repeated filter replaces its subscription and does not count twice.
  EXPECT_EQ(take_output(client), suback_bytes(1, {0, 1, 0x80, 1}));
}

// The Options comment says a connection past twice max_client_output_bytes "is closed as a slow
// consumer" and ShardCounters has slow_consumers_disconnected, but nothing closes it: a client
// that never reads while it keeps publishing QoS 1 grows its output by a PUBACK per message
// without bound. Disabled until the broker does what the comment says.
TEST_F(ShardLimits, SlowConsumerIsClosedPastTwiceTheOutputBound) {
  options.max_client_output_bytes = 1024;
  broker::Connection* client = connect("c");
  for (int i = 1; i <= 1000; ++i) feed(client, publish_bytes("t", "x", 1, static_cast<uint16_t>(i)));
  EXPECT_LE(client->output.size(), 2u * 1024 + 4);
  EXPECT_TRUE(io().was_closed(client));
  EXPECT_EQ(shard().counters().slow_consumers_disconnected, 1u);
}

// ---- Packet identifiers -------------------------------------------------------------------

class ShardPacketId : public ShardHarness {};

TEST_F(ShardPacketId, WrapsPast65535SkippingZeroAndIdsInFlight) {
  options.max_inflight = 2;
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "t", 1);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("t", "held", 1, 1));
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "held", 1, 1));  // id 1 stays in flight
  const std::string message = publish_bytes("t", "m", 1, 1);
  for (uint32_t expected = 2; expected <= 65535; ++expected) {
    feed(publisher, message);
    std::vector<OutputPacket> packets = split_packets(take_output(subscriber));
    ASSERT_EQ(packets.size(), 1u);
    mqtt::PublishPacket publish = decode_publish(packets[0]);
    ASSERT_EQ(publish.packet_id, expected);
    feed(subscriber, ack_bytes(PacketType::kPuback, publish.packet_id));
  }
  publisher->output.clear();
  // 0 is never used and 1 is still in flight.
  feed(publisher, message);
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "m", 1, 2));
  feed(subscriber, ack_bytes(PacketType::kPuback, 1));
  feed(publisher, message);
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", "m", 1, 3));
}

}  // namespace
}  // namespace coremq::testing
