// Unit tests of asynchronous hook decisions in broker::ShardState over a FakeIo
// (include/coremq/async_hooks.h, src/broker/async_hooks.cc): a deferred decision holds the
// client's input (a PINGREQ behind the PUBLISH is answered only after it), the answer handles
// the packet again (the PUBLISH is delivered or refused), a timeout refuses with 0x80 and a late
// answer is ignored, a SUBSCRIBE keeps what its earlier filters got, the bound of pending
// decisions refuses at once, and a client that leaves while waiting leaves nothing behind.
// The test answers through ShardState::on_hook_answer, as the shard loop does with what host
// threads push into its ring. Suites are named Shard* like the other broker tests.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "shard/hook_channel.h"
#include "shard_harness.h"

namespace coremq::testing {
namespace {

using mqtt::PacketType;

// Defers every PUBLISH to wait/... and every SUBSCRIBE filter wait/...; keeps the handles (they
// answer nothing: their channel has no shard).
class DeferringHook : public AuthorizationHook {
 public:
  bool allow_publish(const ClientIdentity&, std::string_view, uint8_t, bool) override { return true; }
  bool allow_subscribe(const ClientIdentity&, std::string_view, uint8_t) override { return true; }
  bool allow_receive(const ClientIdentity&, std::string_view) override { return true; }
  Decision decide_publish(const ClientIdentity&, std::string_view topic, uint8_t, bool,
                          HookDeferral& deferral) override {
    if (!topic.starts_with("wait/")) return Decision::kAllow;
    handles.push_back(deferral.defer());
    return Decision::kDefer;
  }
  Decision decide_subscribe(const ClientIdentity&, std::string_view filter, uint8_t, HookDeferral& deferral) override {
    if (!filter.starts_with("wait/")) return Decision::kAllow;
    handles.push_back(deferral.defer());
    return Decision::kDefer;
  }
  std::vector<HookCompletion> handles;
};

class ShardAsyncHooks : public ShardHarness {
 protected:
  void SetUp() override {
    ShardHarness::SetUp();
    hook = std::make_shared<DeferringHook>();
    options.authorization_hook = hook;
    options.hook_timeout_ms = 1000;
    io().make_completion = [this](uint64_t token, uint32_t index) {
      return internal::HookChannelAccess::make(channel, token, index);
    };
  }
  void TearDown() override {
    hook->handles.clear();
    ShardHarness::TearDown();
  }
  const broker::ShardCounters& counters() { return shard().counters(); }
  void answer(uint64_t token, broker::HookAnswer::Kind kind) {
    broker::HookAnswer answer;
    answer.token = token;
    answer.kind = kind;
    shard().on_hook_answer(std::move(answer));
  }
  std::shared_ptr<internal::HookChannel> channel = std::make_shared<internal::HookChannel>(16);
  std::shared_ptr<DeferringHook> hook;
};

TEST_F(ShardAsyncHooks, ADeferredPublishHoldsTheClientsInputUntilTheAnswer) {
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "#", 0);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("wait/a", "x", 1, 5) + pingreq_bytes() + publish_bytes("free/b", "y", 0));
  EXPECT_TRUE(publisher->input_held);
  EXPECT_EQ(take_output(publisher), "");  // no PUBACK, and the PINGREQ waits behind it
  EXPECT_TRUE(split_packets(take_output(subscriber)).empty());
  ASSERT_EQ(io().deferred_tokens.size(), 1u);
  // Another client is not held meanwhile.
  broker::Connection* other = connect("other");
  feed(other, pingreq_bytes());
  EXPECT_EQ(take_output(other), pingresp_bytes());

  answer(io().deferred_tokens[0], broker::HookAnswer::Kind::kAllow);
  EXPECT_FALSE(publisher->input_held);
  EXPECT_EQ(take_output(publisher), ack_bytes(PacketType::kPuback, 5) + pingresp_bytes());
  std::vector<OutputPacket> delivered = split_packets(take_output(subscriber));
  ASSERT_EQ(delivered.size(), 2u);
  EXPECT_EQ(decode_publish(delivered[0]).topic, "wait/a");
  EXPECT_EQ(decode_publish(delivered[1]).topic, "free/b");
  EXPECT_EQ(counters().hook_decisions_deferred, 1u);
  EXPECT_EQ(counters().messages_received, 2u);  // handled twice, counted once
}

TEST_F(ShardAsyncHooks, ATimeoutRefusesAndTheLateAnswerIsIgnored) {
  broker::Connection* subscriber = connect("sub");
  subscribe(subscriber, "#", 0);
  broker::Connection* publisher = connect("pub");
  feed(publisher, publish_bytes("wait/a", "x", 1, 5));
  tick(500);
  EXPECT_TRUE(publisher->input_held);
  tick(1002);
  EXPECT_FALSE(publisher->input_held);
  EXPECT_EQ(take_output(publisher), ack_bytes(PacketType::kPuback, 5));  // 3.1.1: no reason code
  EXPECT_TRUE(split_packets(take_output(subscriber)).empty());
  EXPECT_EQ(counters().hook_decisions_timed_out, 1u);
  answer(io().deferred_tokens[0], broker::HookAnswer::Kind::kAllow);
  EXPECT_TRUE(split_packets(take_output(subscriber)).empty());
}

TEST_F(ShardAsyncHooks, ASubscribeKeepsWhatItsEarlierFiltersGot) {
  broker::Connection* client = connect("client");
  feed(client, subscribe_bytes(3, {{"free/a", 1}, {"wait/b", 1}, {"free/c", 0}}));
  EXPECT_TRUE(client->input_held);
  EXPECT_EQ(take_output(client), "");
  answer(io().deferred_tokens[0], broker::HookAnswer::Kind::kDeny);
  EXPECT_EQ(take_output(client), suback_bytes(3, {1, 0x80, 0}));
  EXPECT_EQ(shard().subscription_count(), 2u);
}

TEST_F(ShardAsyncHooks, PastTheBoundADecisionIsRefusedAtOnce) {
  options.max_pending_hook_decisions = 1;
  broker::Connection* first = connect("first");
  broker::Connection* second = connect("second");
  feed(first, publish_bytes("wait/a", "x", 1, 1));
  feed(second, publish_bytes("wait/b", "x", 1, 2));
  EXPECT_TRUE(first->input_held);
  EXPECT_FALSE(second->input_held);
  EXPECT_EQ(take_output(second), ack_bytes(PacketType::kPuback, 2));
  EXPECT_EQ(counters().hook_decisions_refused_busy, 1u);
}

TEST_F(ShardAsyncHooks, AClientThatLeavesWhileWaitingLeavesNothingBehind) {
  broker::Connection* client = connect("client");
  feed(client, publish_bytes("wait/a", "x", 1, 1));
  ASSERT_TRUE(client->input_held);
  feed(client, disconnect_bytes());  // parked behind the decision
  shard().on_transport_closed(client);
  EXPECT_EQ(client->pending_decision, nullptr);
  answer(io().deferred_tokens[0], broker::HookAnswer::Kind::kAllow);  // ignored
  EXPECT_EQ(client->state, broker::ConnectionState::kClosing);
}

}  // namespace
}  // namespace coremq::testing
