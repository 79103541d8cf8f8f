// MpscRing (src/shard/local_intake.h), the in-process clients' intake: single-thread
// semantics (capacity, full, empty, wrap-around, move-only items, leftovers destroyed once)
// and a stress run with four producers and one consumer checking that nothing is lost or
// duplicated and that each producer's items come out in the order it pushed them.
#include "shard/local_intake.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace coremq::shard {
namespace {

TEST(MpscRing, FullEmptyAndWrapAround) {
  MpscRing<uint64_t> ring(3);  // rounds up to 4
  EXPECT_EQ(ring.capacity(), 4u);
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.front(), nullptr);
  for (uint64_t lap = 0; lap < 5; ++lap) {
    for (uint64_t i = 0; i < 4; ++i) {
      uint64_t value = lap * 10 + i;
      ASSERT_TRUE(ring.try_push(std::move(value)));
    }
    uint64_t extra = 99;
    EXPECT_FALSE(ring.try_push(std::move(extra))) << "a full ring refuses";
    EXPECT_FALSE(ring.empty());
    for (uint64_t i = 0; i < 4; ++i) {
      uint64_t* front = ring.front();
      ASSERT_NE(front, nullptr);
      EXPECT_EQ(*front, lap * 10 + i);
      ring.pop();
    }
    EXPECT_TRUE(ring.empty());
  }
}

TEST(MpscRing, FrontLeavesTheItemUntilPop) {
  MpscRing<std::unique_ptr<int>> ring(2);
  ASSERT_TRUE(ring.try_push(std::make_unique<int>(7)));
  std::unique_ptr<int>* first = ring.front();
  std::unique_ptr<int>* second = ring.front();  // a second look sees the same item
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first, second);
  EXPECT_NE(first->get(), nullptr);
  ring.pop();
  EXPECT_EQ(ring.front(), nullptr);
}

TEST(MpscRing, LeftoversAreDestroyedWithTheRing) {
  auto counter = std::make_shared<int>(0);
  {
    MpscRing<std::shared_ptr<int>> ring(8);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(ring.try_push(std::shared_ptr<int>(counter)));
    EXPECT_EQ(counter.use_count(), 6);
    ring.pop();
    EXPECT_EQ(counter.use_count(), 5) << "pop releases the item at once";
  }
  EXPECT_EQ(counter.use_count(), 1);
}

// Four producers push (producer << 32 | sequence) into a small ring, retrying when it is full;
// the consumer checks every producer's sequence is contiguous and complete.
TEST(MpscRing, FourProducersLoseNothingAndKeepEachProducersOrder) {
  constexpr uint64_t kProducers = 4;
  constexpr uint64_t kPerProducer = 200000;
  MpscRing<uint64_t> ring(64);
  std::vector<std::thread> producers;
  for (uint64_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&ring, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        uint64_t value = (p << 32) | i;
        while (!ring.try_push(std::move(value))) std::this_thread::yield();
      }
    });
  }
  std::vector<uint64_t> next(kProducers, 0);
  uint64_t received = 0;
  bool in_order = true;
  while (received < kProducers * kPerProducer) {
    uint64_t* front = ring.front();
    if (front == nullptr) {
      std::this_thread::yield();
      continue;
    }
    uint64_t producer = *front >> 32;
    uint64_t sequence = *front & 0xFFFFFFFF;
    ring.pop();
    if (producer >= kProducers || sequence != next[producer]) in_order = false;
    if (producer < kProducers) next[producer] = sequence + 1;
    ++received;
  }
  for (auto& producer : producers) producer.join();
  EXPECT_TRUE(in_order);
  EXPECT_TRUE(ring.empty());
  for (uint64_t p = 0; p < kProducers; ++p) EXPECT_EQ(next[p], kPerProducer);
}

}  // namespace
}  // namespace coremq::shard
