// RetainedStore: the highest stamp wins per topic whatever the arrival order, a clear
// leaves a tombstone that stops an older update, and the limit counts live messages.
#include "broker/retained_store.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace coremq::broker {
namespace {

MessageRef retained(std::string_view topic, std::string_view payload, uint64_t stamp) {
  Message::Extras extras;
  extras.retain_stamp = stamp;
  return MessageRef::adopt(Message::create(topic, payload, 0, true, Message::Origin{}, extras));
}

std::string held(const RetainedStore& store, std::string_view topic) {
  std::string payload = "<none>";
  store.for_each_match(topic, [&](const MessageRef& message) { payload = std::string(message->payload()); });
  return payload;
}

TEST(RetainedStoreTest, HighestStampWinsInAnyArrivalOrder) {
  RetainedStore first(10), second(10);
  MessageRef older = retained("t", "older", (5 << 8) | 1);
  MessageRef newer = retained("t", "newer", (5 << 8) | 2);  // same clock, higher shard id
  EXPECT_EQ(first.update(older, 0), RetainedStore::Update::kStored);
  EXPECT_EQ(first.update(newer, 0), RetainedStore::Update::kReplaced);
  EXPECT_EQ(second.update(newer, 0), RetainedStore::Update::kStored);
  EXPECT_EQ(second.update(older, 0), RetainedStore::Update::kStale);
  EXPECT_EQ(held(first, "t"), "newer");
  EXPECT_EQ(held(second, "t"), "newer");
}

TEST(RetainedStoreTest, ClearLeavesATombstoneAgainstOlderUpdates) {
  RetainedStore store(10);
  store.update(retained("t", "a", 1 << 8), 0);
  EXPECT_EQ(store.update(retained("t", "", 3 << 8), 0), RetainedStore::Update::kCleared);
  EXPECT_EQ(store.size(), 0u);
  EXPECT_EQ(store.update(retained("t", "late", 2 << 8), 0), RetainedStore::Update::kStale);
  EXPECT_EQ(held(store, "t"), "<none>");
  // Long after, the tombstone is forgotten and the topic takes anything again.
  store.forget_tombstones(120'000);
  EXPECT_EQ(store.update(retained("t", "again", 1 << 8), 120'000), RetainedStore::Update::kStored);
}

TEST(RetainedStoreTest, TheEntryShardDecidesTheLimitAndCopiesFollowUpToTheHardBound) {
  RetainedStore store(2);
  EXPECT_EQ(store.update(retained("a", "1", 1), 0), RetainedStore::Update::kStored);
  EXPECT_EQ(store.update(retained("b", "1", 2), 0), RetainedStore::Update::kStored);
  // At the limit a new topic is refused where it enters; a replacement or a clear is not.
  EXPECT_FALSE(store.admits(*retained("c", "1", 3)));
  EXPECT_TRUE(store.admits(*retained("a", "2", 3)));
  EXPECT_TRUE(store.admits(*retained("c", "", 3)));
  // What another shard admitted is stored here, past the limit, up to twice it.
  EXPECT_EQ(store.update(retained("c", "1", 4), 0), RetainedStore::Update::kStored);
  EXPECT_EQ(store.update(retained("d", "1", 5), 0), RetainedStore::Update::kStored);
  EXPECT_EQ(store.update(retained("e", "1", 6), 0), RetainedStore::Update::kLimitReached);
  EXPECT_EQ(store.size(), 4u);
  EXPECT_EQ(store.update(retained("a", "", 7), 0), RetainedStore::Update::kCleared);
  EXPECT_EQ(store.size(), 3u);
  EXPECT_FALSE(store.admits(*retained("e", "1", 8)));
  EXPECT_EQ(store.update(retained("e", "1", 8), 0), RetainedStore::Update::kStored);
}

// Before: with the tombstones at their bound, a clear of a topic this copy did not hold left
// no tombstone, and an older update still in flight then brought the message back here
// while a copy that held the topic kept it cleared.
TEST(RetainedStoreTest, AClearAlwaysLeavesATombstoneEvictingTheOldest) {
  RetainedStore store(1);
  EXPECT_EQ(store.update(retained("x", "", 1 << 8), 0), RetainedStore::Update::kCleared);
  EXPECT_EQ(store.tombstones(), 1u);
  EXPECT_EQ(store.update(retained("y", "", 3 << 8), 0), RetainedStore::Update::kCleared);
  EXPECT_EQ(store.tombstones(), 1u) << "bounded: the oldest clear (x) was forgotten";
  EXPECT_EQ(store.tombstones_evicted(), 1u);
  EXPECT_EQ(store.update(retained("y", "late", 2 << 8), 0), RetainedStore::Update::kStale);
  EXPECT_EQ(held(store, "y"), "<none>");
  // A clear older than every remembered one is itself the one forgotten.
  EXPECT_EQ(store.update(retained("z", "", 2 << 8), 0), RetainedStore::Update::kCleared);
  EXPECT_EQ(store.update(retained("y", "late", 2 << 8), 0), RetainedStore::Update::kStale);
  EXPECT_EQ(store.update(retained("x", "again", 4 << 8), 0), RetainedStore::Update::kStored);
}

// Copies that receive the same updates in any order end up the same (with the tombstones
// under their bound): every topic holds its highest-stamped update.
TEST(RetainedStoreTest, AnyArrivalOrderGivesTheSameCopy) {
  constexpr std::string_view kTopics[] = {"a", "b", "c", "d", "e"};
  uint64_t random = 88172645463325252ull;
  auto next = [&] {
    random ^= random << 13;
    random ^= random >> 7;
    random ^= random << 17;
    return random;
  };
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<MessageRef> updates;
    for (uint64_t i = 0; i < 12; ++i) {
      std::string_view topic = kTopics[next() % std::size(kTopics)];
      bool clear = next() % 3 == 0;
      updates.push_back(retained(topic, clear ? "" : std::to_string(i), ((next() % 8 + 1) << 8) | i));
    }
    RetainedStore in_order(5), shuffled(5);
    for (const MessageRef& update : updates) in_order.update(update, 0);
    for (size_t i = updates.size(); i > 1; --i) std::swap(updates[i - 1], updates[next() % i]);
    for (const MessageRef& update : updates) shuffled.update(update, 0);
    for (std::string_view topic : kTopics) ASSERT_EQ(held(in_order, topic), held(shuffled, topic)) << trial;
    ASSERT_EQ(in_order.size(), shuffled.size());
    ASSERT_EQ(in_order.tombstones(), shuffled.tombstones());
  }
}

}  // namespace
}  // namespace coremq::broker
