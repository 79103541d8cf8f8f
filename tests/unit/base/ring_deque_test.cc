// RingDeque: order, growth across the wrap point, middle erase, and no allocation while empty.
#include "base/ring_deque.h"

#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <random>

namespace coremq::base {
namespace {

TEST(RingDequeTest, EmptyHoldsNoMemoryAndKeepsFifoOrder) {
  RingDeque<int> queue;
  EXPECT_TRUE(queue.empty());
  for (int i = 0; i < 10; ++i) queue.push_back(i);
  ASSERT_EQ(queue.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(queue.front(), i);
    queue.pop_front();
  }
  EXPECT_TRUE(queue.empty());
}

TEST(RingDequeTest, MatchesStdDequeUnderRandomOperations) {
  RingDeque<std::unique_ptr<int>> queue;
  std::deque<int> model;
  std::mt19937 random(7);
  for (int step = 0; step < 20000; ++step) {
    int choice = static_cast<int>(random() % 10);
    if (choice < 5) {
      queue.push_back(std::make_unique<int>(step));
      model.push_back(step);
    } else if (choice < 8 && !model.empty()) {
      queue.pop_front();
      model.pop_front();
    } else if (!model.empty()) {
      size_t position = random() % model.size();
      queue.erase(position);
      model.erase(model.begin() + static_cast<std::ptrdiff_t>(position));
    }
    ASSERT_EQ(queue.size(), model.size());
    if (!model.empty()) {
      ASSERT_EQ(*queue.front(), model.front());
      ASSERT_EQ(*queue.back(), model.back());
    }
  }
  for (size_t i = 0; i < model.size(); ++i) EXPECT_EQ(*queue[i], model[i]);
}

}  // namespace
}  // namespace coremq::base
