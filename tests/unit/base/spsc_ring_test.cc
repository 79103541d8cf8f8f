// SpscRing: single-thread semantics (full, empty, wrap-around, batches, move-only items,
// destruction of leftovers) and a two-thread stress run checking order and loss.
#include "base/spsc_ring.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace coremq::base {
namespace {

TEST(SpscRing, CapacityRoundsUpToPowerOfTwo) {
  EXPECT_EQ(SpscRing<int>(1).capacity(), 1u);
  EXPECT_EQ(SpscRing<int>(3).capacity(), 4u);
  EXPECT_EQ(SpscRing<int>(64).capacity(), 64u);
  EXPECT_EQ(SpscRing<int>(65).capacity(), 128u);
}

TEST(SpscRing, FullEmptyAndWrapAround) {
  SpscRing<int> ring(4);
  int out = -1;
  EXPECT_TRUE(ring.empty());
  EXPECT_FALSE(ring.try_pop(out));
  // Many laps around the four slots, with the ring filled to the brim on each.
  int next_push = 0;
  int next_pop = 0;
  for (int lap = 0; lap < 10; lap++) {
    for (int i = 0; i < 4; i++) ASSERT_TRUE(ring.try_push(int{next_push++}));
    EXPECT_EQ(ring.size_approx(), 4u);
    int rejected = 999;
    EXPECT_FALSE(ring.try_push(std::move(rejected)));
    EXPECT_EQ(rejected, 999);
    for (int i = 0; i < 3; i++) {
      ASSERT_TRUE(ring.try_pop(out));
      EXPECT_EQ(out, next_pop++);
    }
    ASSERT_TRUE(ring.try_push(int{next_push++}));  // lands in a slot freed this lap
    for (int i = 0; i < 2; i++) {
      ASSERT_TRUE(ring.try_pop(out));
      EXPECT_EQ(out, next_pop++);
    }
  }
  EXPECT_EQ(ring.size_approx(), static_cast<size_t>(next_push - next_pop));
  while (ring.try_pop(out)) EXPECT_EQ(out, next_pop++);
  EXPECT_EQ(next_pop, next_push);
  EXPECT_TRUE(ring.empty());
}

TEST(SpscRing, BatchPushTakesWhatFits) {
  SpscRing<int> ring(8);
  std::vector<int> items = {0, 1, 2, 3, 4, 5};
  EXPECT_EQ(ring.try_push_batch(items.begin(), items.end()), 6u);
  std::vector<int> more = {6, 7, 8, 9};
  EXPECT_EQ(ring.try_push_batch(more.begin(), more.end()), 2u);  // only two slots left
  EXPECT_EQ(ring.try_push_batch(more.begin() + 2, more.end()), 0u);

  std::vector<int> seen;
  EXPECT_EQ(ring.drain([&seen](int&& item) { seen.push_back(item); }, 3), 3u);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2}));
  // The freed slots are reused by the next batch, across the wrap point.
  EXPECT_EQ(ring.try_push_batch(more.begin() + 2, more.end()), 2u);
  EXPECT_EQ(ring.drain([&seen](int&& item) { seen.push_back(item); }, 100), 7u);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(ring.drain([](int&&) {}, 100), 0u);
}

TEST(SpscRing, MoveOnlyItems) {
  SpscRing<std::unique_ptr<int>> ring(2);
  ASSERT_TRUE(ring.try_push(std::make_unique<int>(1)));
  std::vector<std::unique_ptr<int>> batch;
  batch.push_back(std::make_unique<int>(2));
  batch.push_back(std::make_unique<int>(3));
  EXPECT_EQ(ring.try_push_batch(batch.begin(), batch.end()), 1u);
  EXPECT_EQ(batch[0], nullptr);  // moved into the ring
  ASSERT_NE(batch[1], nullptr);  // did not fit, still the caller's
  std::unique_ptr<int> out;
  ASSERT_TRUE(ring.try_pop(out));
  EXPECT_EQ(*out, 1);
  EXPECT_EQ(ring.drain([](std::unique_ptr<int>&& item) { EXPECT_EQ(*item, 2); }, 10), 1u);
}

// Counts live instances, to check that the ring destroys what it pops and what it is left
// holding, exactly once each.
struct Counted {
  static inline int live = 0;
  Counted() { live++; }
  Counted(Counted&&) noexcept { live++; }
  Counted& operator=(Counted&&) noexcept = default;
  ~Counted() { live--; }
};

TEST(SpscRing, DestroysItemsExactlyOnce) {
  {
    SpscRing<Counted> ring(4);
    for (int i = 0; i < 3; i++) ASSERT_TRUE(ring.try_push(Counted()));
    EXPECT_EQ(Counted::live, 3);
    Counted out;
    ASSERT_TRUE(ring.try_pop(out));
    EXPECT_EQ(Counted::live, 3);  // two in the ring, one in `out`
    EXPECT_EQ(ring.drain([](Counted&&) {}, 1), 1u);
    EXPECT_EQ(Counted::live, 2);
  }  // one item left in the ring when it is destroyed
  EXPECT_EQ(Counted::live, 0);
}

// Two threads, ~10 million sequenced items; the producer alternates single pushes with
// batches, the consumer alternates try_pop with drain, so every path crosses threads. A
// deadline bounds the run: a lost item shows up as a failure, not as a hung test.
TEST(SpscRing, TwoThreadStressKeepsOrderAndLosesNothing) {
  constexpr uint64_t kItems = 10'000'000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  SpscRing<uint64_t> ring(1024);
  std::atomic<bool> timed_out{false};

  std::thread producer([&] {
    uint64_t next = 0;
    std::vector<uint64_t> batch;
    uint32_t spins = 0;
    while (next < kItems) {
      bool progressed;
      if ((next / 1000) % 2 == 0) {
        uint64_t value = next;
        progressed = ring.try_push(std::move(value));
        if (progressed) next++;
      } else {
        batch.clear();
        for (uint64_t i = next; i < kItems && i < next + 37; i++) batch.push_back(i);
        size_t pushed = ring.try_push_batch(batch.begin(), batch.end());
        next += pushed;
        progressed = pushed > 0;
      }
      if (!progressed && ++spins % 4096 == 0) {
        if (timed_out.load(std::memory_order_relaxed) || std::chrono::steady_clock::now() > deadline) return;
        std::this_thread::yield();
      }
    }
  });

  uint64_t expected = 0;
  uint64_t out_of_order = 0;
  uint32_t spins = 0;
  while (expected < kItems) {
    size_t taken;
    if ((expected / 777) % 2 == 0) {
      uint64_t value = 0;
      taken = ring.try_pop(value) ? 1 : 0;
      if (taken == 1 && value != expected) out_of_order++;
      expected += taken;
    } else {
      taken = ring.drain(
          [&](uint64_t&& value) {
            if (value != expected) out_of_order++;
            expected++;
          },
          64);
    }
    if (taken == 0 && ++spins % 4096 == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        timed_out.store(true);
        break;
      }
      std::this_thread::yield();
    }
  }
  producer.join();
  EXPECT_FALSE(timed_out.load()) << "only " << expected << " items arrived in time";
  EXPECT_EQ(expected, kItems);
  EXPECT_EQ(out_of_order, 0u);
  EXPECT_TRUE(ring.empty());
}

}  // namespace
}  // namespace coremq::base
