// RetainedStore: the highest stamp wins per topic whatever the arrival order, a clear
// leaves a tombstone that stops an older update, and the limit counts live messages.
#include "broker/retained_store.h"

#include <gtest/gtest.h>

#include <string>

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

TEST(RetainedStoreTest, LimitCountsLiveMessagesOnly) {
  RetainedStore store(2);
  EXPECT_EQ(store.update(retained("a", "1", 1), 0), RetainedStore::Update::kStored);
  EXPECT_EQ(store.update(retained("b", "1", 2), 0), RetainedStore::Update::kStored);
  EXPECT_EQ(store.update(retained("c", "1", 3), 0), RetainedStore::Update::kLimitReached);
  EXPECT_EQ(store.update(retained("a", "", 4), 0), RetainedStore::Update::kCleared);
  EXPECT_EQ(store.update(retained("c", "1", 5), 0), RetainedStore::Update::kStored);
  EXPECT_EQ(store.size(), 2u);
}

}  // namespace
}  // namespace coremq::broker
