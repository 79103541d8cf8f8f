// The cross-shard barrier of ShardState (src/broker/barrier.cc) over several shards, each a
// ShardState on a FakeIo, with the test carrying items between them by hand (per pair, in
// order, as the FIFO rings do) so that it decides when each peer sees what: a SUBACK, and the
// PUBACK of a retained PUBLISH, leave only after every peer has confirmed the changes made
// before them; the client's later packets wait behind them; a connection that ends while
// held drops its answer. Suites are named Shard* like shard_state_test.cc.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "broker/message.h"
#include "shard_harness.h"

namespace coremq::testing {
namespace {

using broker::Connection;
using broker::ConnectionState;
using broker::CrossShardItem;
using mqtt::PacketType;

std::string id_on(uint32_t shard, uint32_t shard_count, int skip = 0) {
  for (int i = 0;; ++i) {
    std::string id = "promise-" + std::to_string(i);
    if (broker::owner_shard_of(id, shard_count) == shard && skip-- == 0) return id;
  }
}

class Cluster {
 public:
  explicit Cluster(uint32_t shard_count, const Options& cluster_options = {}) : options(cluster_options) {
    base::set_log_level(base::LogLevel::kWarning);
    for (uint32_t shard = 0; shard < shard_count; ++shard) {
      ios_.push_back(std::make_unique<FakeIo>(shard, shard_count));
      ios_.back()->now = 1;
      shards_.push_back(std::make_unique<broker::ShardState>(shard, shard_count, options, *ios_.back()));
    }
  }
  ~Cluster() {
    shards_.clear();  // first: sessions point at connections and hold message references
    ios_.clear();
  }

  broker::ShardState& shard(uint32_t index) { return *shards_[index]; }
  FakeIo& io(uint32_t index) { return *ios_[index]; }

  Connection* connect(uint32_t shard, std::string_view client_id) {
    connections_.push_back(std::make_unique<Connection>());
    Connection* connection = connections_.back().get();
    connection->fd = static_cast<int>(connections_.size());
    shards_[shard]->on_connection_opened(connection);
    feed(shard, connection, connect_bytes(client_id));
    EXPECT_EQ(connection->state, ConnectionState::kConnected);
    EXPECT_EQ(take(connection), connack_bytes(false, mqtt::ConnectReturnCode::kAccepted));
    return connection;
  }

  void feed(uint32_t shard, Connection* connection, std::string_view bytes) {
    shards_[shard]->on_bytes(connection, std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  }

  static std::string take(Connection* connection) {
    std::string bytes(connection->output.view());
    connection->output.clear();
    return bytes;
  }

  // Delivers, in order, what `from` posted to `to` so far; returns how many items.
  size_t deliver(uint32_t from, uint32_t to) {
    std::vector<FakeIo::Post> posts = ios_[from]->take_posts();
    std::vector<CrossShardItem> for_target;
    for (FakeIo::Post& post : posts) {
      if (post.target_shard == to) {
        for_target.push_back(post.item);
      } else {
        ios_[from]->posts.push_back(post);
      }
    }
    for (const CrossShardItem& item : for_target) shards_[to]->on_cross_shard(item);
    return for_target.size();
  }

  // Turns until nothing crosses any more.
  void settle() {
    for (int round = 0; round < 16; ++round) {
      size_t moved = 0;
      for (uint32_t from = 0; from < shards_.size(); ++from) {
        for (uint32_t to = 0; to < shards_.size(); ++to) {
          if (from != to) moved += deliver(from, to);
        }
      }
      if (moved == 0) return;
    }
    ADD_FAILURE() << "cross-shard traffic did not settle";
  }

  size_t posts_of_kind(uint32_t from, CrossShardItem::Kind kind) const {
    size_t count = 0;
    for (const FakeIo::Post& post : ios_[from]->posts) count += post.item.kind == kind;
    return count;
  }

  const Options options;  // the shards keep a reference

 private:
  std::vector<std::unique_ptr<FakeIo>> ios_;
  std::vector<std::unique_ptr<broker::ShardState>> shards_;
  std::vector<std::unique_ptr<Connection>> connections_;
};

TEST(ShardPromises, SubackWaitsForEveryPeerThenGoesBeforeLaterAnswers) {
  Cluster cluster(3);
  Connection* subscriber = cluster.connect(0, id_on(0, 3));
  cluster.feed(0, subscriber, subscribe_bytes(1, {{"t", 1}}) + pingreq_bytes());
  EXPECT_EQ(Cluster::take(subscriber), "") << "SUBACK before any peer knows the filter";
  EXPECT_TRUE(subscriber->input_held);
  EXPECT_EQ(cluster.posts_of_kind(0, CrossShardItem::Kind::kBarrierRequest), 2u);
  // More input while held waits too.
  cluster.feed(0, subscriber, pingreq_bytes());
  EXPECT_EQ(Cluster::take(subscriber), "");

  // Peer 1 applies the interest-add and confirms; peer 2 has not seen anything yet.
  EXPECT_EQ(cluster.deliver(0, 1), 2u);
  EXPECT_EQ(cluster.deliver(1, 0), 1u);
  EXPECT_EQ(Cluster::take(subscriber), "") << "SUBACK before peer 2 confirmed";
  EXPECT_TRUE(subscriber->input_held);

  cluster.deliver(0, 2);
  cluster.deliver(2, 0);
  EXPECT_EQ(Cluster::take(subscriber), suback_bytes(1, {1}) + pingresp_bytes() + pingresp_bytes());
  EXPECT_FALSE(subscriber->input_held);
  ASSERT_EQ(cluster.io(0).resumes.size(), 1u);
  EXPECT_EQ(cluster.io(0).resumes[0], subscriber);
  EXPECT_EQ(cluster.shard(0).counters().answers_held_for_peers, 1u);

  // The promise: a message published on a peer now reaches the subscriber.
  Connection* publisher = cluster.connect(2, id_on(2, 3));
  cluster.feed(2, publisher, publish_bytes("t", "after", 1, 7));
  EXPECT_EQ(Cluster::take(publisher), ack_bytes(PacketType::kPuback, 7));
  cluster.settle();
  EXPECT_EQ(Cluster::take(subscriber), publish_bytes("t", "after", 1, 1));
}

TEST(ShardPromises, OneShardAndConfirmedChangesAnswerAtOnce) {
  Cluster single(1);
  Connection* alone = single.connect(0, "alone");
  single.feed(0, alone, subscribe_bytes(1, {{"t", 0}}));
  EXPECT_EQ(Cluster::take(alone), suback_bytes(1, {0}));
  EXPECT_TRUE(single.io(0).posts.empty());

  Cluster cluster(2);
  Connection* first = cluster.connect(0, id_on(0, 2));
  cluster.feed(0, first, subscribe_bytes(1, {{"t", 0}}));
  cluster.settle();
  EXPECT_EQ(Cluster::take(first), suback_bytes(1, {0}));
  // Nothing of shard 0's is unconfirmed now: a second subscriber of the filter is answered at once.
  Connection* second = cluster.connect(0, id_on(0, 2, 1));
  cluster.feed(0, second, subscribe_bytes(1, {{"t", 0}}));
  EXPECT_EQ(Cluster::take(second), suback_bytes(1, {0}));
  EXPECT_TRUE(cluster.io(0).posts.empty());
}

TEST(ShardPromises, LaterSubscriberOfTheSameFilterWaitsForTheFirstOnesChange) {
  Cluster cluster(2);
  Connection* first = cluster.connect(0, id_on(0, 2));
  Connection* second = cluster.connect(0, id_on(0, 2, 1));
  cluster.feed(0, first, subscribe_bytes(1, {{"t", 0}}));
  // Not the first subscriber here, so no change of its own; but the peer may not know "t" yet.
  cluster.feed(0, second, subscribe_bytes(2, {{"t", 0}}));
  EXPECT_EQ(Cluster::take(second), "");
  EXPECT_EQ(cluster.posts_of_kind(0, CrossShardItem::Kind::kBarrierRequest), 1u) << "one request serves both";
  cluster.settle();
  EXPECT_EQ(Cluster::take(first), suback_bytes(1, {0}));
  EXPECT_EQ(Cluster::take(second), suback_bytes(2, {0}));
}

TEST(ShardPromises, RetainedMessagesFollowTheWaitingSuback) {
  Cluster cluster(2);
  Connection* publisher = cluster.connect(0, id_on(0, 2, 1));
  cluster.feed(0, publisher, publish_bytes("r", "kept", 0, 0, /*retain=*/true));
  Connection* subscriber = cluster.connect(0, id_on(0, 2));
  cluster.feed(0, subscriber, subscribe_bytes(1, {{"r", 1}}));
  EXPECT_EQ(Cluster::take(subscriber), "");
  cluster.settle();
  EXPECT_EQ(Cluster::take(subscriber), suback_bytes(1, {1}) + publish_bytes("r", "kept", 0, 0, true));
}

TEST(ShardPromises, RetainedPubackWaitsAndLaterPubacksKeepTheirOrder) {
  Cluster cluster(2);
  Connection* publisher = cluster.connect(0, id_on(0, 2));
  cluster.feed(0, publisher,
               publish_bytes("r", "kept", 1, 1, /*retain=*/true) + publish_bytes("other", "x", 1, 2));
  EXPECT_EQ(Cluster::take(publisher), "") << "PUBACK before the peer's copy has the message";
  cluster.deliver(0, 1);
  // The peer's copy has it before the PUBACK leaves: a SUBSCRIBE there gets it.
  Connection* subscriber = cluster.connect(1, id_on(1, 2));
  cluster.feed(1, subscriber, subscribe_bytes(1, {{"r", 1}}));
  std::string answer = Cluster::take(subscriber);
  cluster.deliver(1, 0);
  EXPECT_EQ(Cluster::take(publisher), ack_bytes(PacketType::kPuback, 1) + ack_bytes(PacketType::kPuback, 2));
  cluster.settle();
  answer += Cluster::take(subscriber);
  EXPECT_EQ(answer, suback_bytes(1, {1}) + publish_bytes("r", "kept", 1, 1, true));
  // QoS 2: the PUBREC waits the same way.
  cluster.feed(0, publisher, publish_bytes("r", "two", 2, 3, /*retain=*/true));
  EXPECT_EQ(Cluster::take(publisher), "");
  cluster.settle();
  EXPECT_EQ(Cluster::take(publisher), ack_bytes(PacketType::kPubrec, 3));
}

TEST(ShardPromises, ConnectionEndingWhileHeldDropsItsAnswer) {
  Cluster cluster(2);
  Connection* closed = cluster.connect(0, id_on(0, 2));
  Connection* taken_over = cluster.connect(0, id_on(0, 2, 1));
  Connection* stays = cluster.connect(0, id_on(0, 2, 2));
  cluster.feed(0, closed, subscribe_bytes(1, {{"a", 0}}));
  cluster.feed(0, taken_over, subscribe_bytes(1, {{"b", 0}}));
  cluster.feed(0, stays, subscribe_bytes(1, {{"c", 0}}));
  cluster.shard(0).on_transport_closed(closed);
  EXPECT_FALSE(closed->input_held);
  cluster.connect(0, id_on(0, 2, 1));  // takes the session over: the held connection ends
  EXPECT_EQ(taken_over->state, ConnectionState::kClosing);
  EXPECT_FALSE(taken_over->input_held);
  cluster.settle();
  EXPECT_EQ(Cluster::take(closed), "");
  EXPECT_EQ(Cluster::take(taken_over), "");
  EXPECT_EQ(Cluster::take(stays), suback_bytes(1, {0}));
  ASSERT_EQ(cluster.io(0).resumes.size(), 1u);
  EXPECT_EQ(cluster.io(0).resumes[0], stays);
}

TEST(ShardPromises, ShutdownWhileHeldDropsTheAnswer) {
  Cluster cluster(2);
  Connection* subscriber = cluster.connect(0, id_on(0, 2));
  cluster.feed(0, subscriber, subscribe_bytes(1, {{"a", 0}}) + disconnect_bytes());
  cluster.shard(0).on_shutdown();
  EXPECT_EQ(subscriber->state, ConnectionState::kClosing);
  EXPECT_FALSE(subscriber->input_held);
  cluster.settle();  // the late ack finds nothing waiting
  EXPECT_EQ(Cluster::take(subscriber), "");
}

TEST(ShardPromises, DisconnectHeldBehindSubackIsHandledAfterIt) {
  Cluster cluster(2);
  Connection* subscriber = cluster.connect(0, id_on(0, 2));
  cluster.feed(0, subscriber, subscribe_bytes(1, {{"a", 0}}) + disconnect_bytes());
  EXPECT_EQ(subscriber->state, ConnectionState::kConnected);
  cluster.settle();
  EXPECT_EQ(Cluster::take(subscriber), suback_bytes(1, {0}));
  EXPECT_EQ(subscriber->state, ConnectionState::kClosing);
  EXPECT_TRUE(cluster.io(0).resumes.empty()) << "closed: nothing parked to replay";
}

// A shared subscription's first member on a shard is announced by the same interest items,
// so its SUBACK waits the same way; after it, a message published on the peer reaches it.
TEST(ShardPromises, SharedSubscriptionSubackWaitsToo) {
  Cluster cluster(2);
  Connection* member = cluster.connect(0, id_on(0, 2));
  cluster.feed(0, member, subscribe_bytes(1, {{"$share/g/t", 0}}));
  EXPECT_EQ(Cluster::take(member), "");
  cluster.deliver(0, 1);
  cluster.deliver(1, 0);
  EXPECT_EQ(Cluster::take(member), suback_bytes(1, {0}));
  Connection* publisher = cluster.connect(1, id_on(1, 2));
  cluster.feed(1, publisher, publish_bytes("t", "shared"));
  cluster.settle();
  EXPECT_EQ(Cluster::take(member), publish_bytes("t", "shared"));
}

// UNSUBSCRIBE does not wait: the local subscription goes at once, and a message a peer
// forwarded before it applied the interest-remove finds no subscriber here (MQTT-3.10.4-2).
TEST(ShardPromises, UnsubackIsAtOnceAndLateForwardsAreNotDelivered) {
  Cluster cluster(2);
  Connection* subscriber = cluster.connect(0, id_on(0, 2));
  cluster.feed(0, subscriber, subscribe_bytes(1, {{"t", 0}}));
  cluster.settle();
  EXPECT_EQ(Cluster::take(subscriber), suback_bytes(1, {0}));
  Connection* publisher = cluster.connect(1, id_on(1, 2));
  cluster.feed(1, publisher, publish_bytes("t", "in flight"));
  cluster.feed(0, subscriber, unsubscribe_bytes(2, {"t"}));
  EXPECT_EQ(Cluster::take(subscriber), unsuback_bytes(2));
  cluster.settle();
  EXPECT_EQ(Cluster::take(subscriber), "");
}

// ---- Retained copies at the limit (defect 9) -------------------------------------------------

// What a new subscriber to `filter` on each shard is sent, as a set of payloads.
std::vector<std::string> retained_seen(Cluster& cluster, uint32_t shard, uint32_t shard_count, int skip) {
  Connection* subscriber = cluster.connect(shard, id_on(shard, shard_count, skip));
  cluster.feed(shard, subscriber, subscribe_bytes(1, {{"#", 0}}));
  cluster.settle();
  std::vector<std::string> payloads;
  for (const OutputPacket& packet : split_packets(Cluster::take(subscriber))) {
    if (packet.type == PacketType::kPublish) payloads.emplace_back(decode_publish(packet).payload);
  }
  std::sort(payloads.begin(), payloads.end());
  return payloads;
}

// Two shards, each one below --max-retained-messages, take a new retained topic each at
// once, and each copy receives the other's update after its own (opposite orders). Before,
// each copy kept its own topic and refused the other's: different sets for good.
TEST(ShardRetainedCopies, NewTopicsTakenAtOnceOnTwoShardsAtTheLimitAgree) {
  Cluster cluster(2, Options{.max_retained_messages = 2});
  Connection* publisher0 = cluster.connect(0, id_on(0, 2));
  Connection* publisher1 = cluster.connect(1, id_on(1, 2));
  cluster.feed(0, publisher0, publish_bytes("old", "old", 0, 0, true));
  cluster.settle();
  cluster.feed(0, publisher0, publish_bytes("from0", "from0", 0, 0, true));
  cluster.feed(1, publisher1, publish_bytes("from1", "from1", 0, 0, true));
  cluster.deliver(0, 1);
  cluster.deliver(1, 0);
  std::vector<std::string> on0 = retained_seen(cluster, 0, 2, 1);
  std::vector<std::string> on1 = retained_seen(cluster, 1, 2, 1);
  EXPECT_EQ(on0, on1);
  EXPECT_EQ(on0, (std::vector<std::string>{"from0", "from1", "old"}));
  // Now at the limit on both: a new topic is refused where it enters, so by every copy.
  cluster.feed(1, publisher1, publish_bytes("refused", "refused", 0, 0, true));
  EXPECT_EQ(cluster.shard(1).counters().retained_dropped_limit, 1u);
  cluster.settle();
  EXPECT_EQ(retained_seen(cluster, 0, 2, 2), on0);
  EXPECT_EQ(retained_seen(cluster, 1, 2, 2), on0);
}

// With the tombstones at their bound, shard 0 takes a retained message on "y" while shard 1
// clears "y" (stamped later, so the clear wins). Before, shard 1's copy, which did not hold
// "y", left no tombstone and then stored shard 0's older message: copies disagreed.
TEST(ShardRetainedCopies, AClearWithTheTombstonesFullStillWinsEverywhere) {
  Cluster cluster(2, Options{.max_retained_messages = 1});
  Connection* publisher0 = cluster.connect(0, id_on(0, 2));
  Connection* publisher1 = cluster.connect(1, id_on(1, 2));
  cluster.feed(0, publisher0, publish_bytes("t", "t", 0, 0, true) + publish_bytes("t", "", 0, 0, true));
  cluster.settle();
  cluster.feed(0, publisher0, publish_bytes("y", "older", 0, 0, true));
  cluster.feed(1, publisher1, publish_bytes("y", "", 0, 0, true));
  cluster.deliver(0, 1);
  cluster.deliver(1, 0);
  EXPECT_EQ(retained_seen(cluster, 0, 2, 1), std::vector<std::string>{});
  EXPECT_EQ(retained_seen(cluster, 1, 2, 1), std::vector<std::string>{});
}

}  // namespace
}  // namespace coremq::testing
