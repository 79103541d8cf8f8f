// TopicTree: insert/replace/remove/prune, large fan-out on one filter, very deep filters, and
// the model test that checks match() against topic_matches() on random filters and topics.
#include "topic/topic_tree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace coremq::topic {
namespace {

using Tree = TopicTree<uint32_t, int>;

std::vector<std::pair<uint32_t, int>> matches_of(const Tree& tree, std::string_view topic) {
  std::vector<std::pair<uint32_t, int>> found;
  tree.match(topic, [&found](uint32_t subscriber, int data) { found.emplace_back(subscriber, data); });
  std::sort(found.begin(), found.end());
  return found;
}

std::set<std::string> filters_of(const Tree& tree) {
  std::set<std::string> filters;
  tree.for_each_filter([&filters](std::string_view filter) {
    bool inserted = filters.emplace(filter).second;
    EXPECT_TRUE(inserted) << "filter visited twice: " << filter;
  });
  return filters;
}

TEST(TopicTree, InsertReplaceRemove) {
  Tree tree;
  Tree::InsertResult inserted = tree.insert("a/b", 1, 10);
  EXPECT_TRUE(inserted.added_subscriber);
  EXPECT_TRUE(inserted.first_for_filter);
  inserted = tree.insert("a/b", 2, 20);
  EXPECT_TRUE(inserted.added_subscriber);
  EXPECT_FALSE(inserted.first_for_filter);
  inserted = tree.insert("a/b", 1, 11);  // re-SUBSCRIBE: data replaced
  EXPECT_FALSE(inserted.added_subscriber);
  EXPECT_FALSE(inserted.first_for_filter);
  EXPECT_EQ(tree.filter_count(), 1u);
  EXPECT_EQ(tree.subscription_count(), 2u);
  EXPECT_EQ(matches_of(tree, "a/b"), (std::vector<std::pair<uint32_t, int>>{{1, 11}, {2, 20}}));

  Tree::RemoveResult removed = tree.remove("a/b", 3);
  EXPECT_FALSE(removed.removed);
  removed = tree.remove("a/c", 1);
  EXPECT_FALSE(removed.removed);
  removed = tree.remove("a/b", 1);
  EXPECT_TRUE(removed.removed);
  EXPECT_FALSE(removed.last_for_filter);
  removed = tree.remove("a/b", 2);
  EXPECT_TRUE(removed.removed);
  EXPECT_TRUE(removed.last_for_filter);
  EXPECT_EQ(tree.filter_count(), 0u);
  EXPECT_EQ(tree.subscription_count(), 0u);
  EXPECT_EQ(tree.node_count(), 0u);
  EXPECT_TRUE(matches_of(tree, "a/b").empty());
}

TEST(TopicTree, RemovePrunesOnlyEmptyNodes) {
  Tree tree;
  tree.insert("a/b/c", 1, 0);
  tree.insert("a", 1, 0);
  tree.insert("a/+/#", 2, 0);
  tree.insert("//", 3, 0);
  EXPECT_EQ(tree.node_count(), 3u + 2u + 3u);  // a,b,c + '+','#' + "", "", ""
  EXPECT_TRUE(tree.remove("a/b/c", 1).last_for_filter);
  EXPECT_EQ(tree.node_count(), 1u + 2u + 3u);  // b and c pruned, a kept for its own subscriber
  EXPECT_TRUE(tree.remove("a", 1).removed);
  EXPECT_EQ(tree.node_count(), 1u + 2u + 3u);  // a kept: it still has the '+' child
  EXPECT_EQ(filters_of(tree), (std::set<std::string>{"a/+/#", "//"}));
  EXPECT_TRUE(tree.remove("a/+/#", 2).removed);
  EXPECT_EQ(tree.node_count(), 3u);
  EXPECT_TRUE(tree.remove("//", 3).removed);
  EXPECT_EQ(tree.node_count(), 0u);
  EXPECT_TRUE(filters_of(tree).empty());
}

TEST(TopicTree, ForEachFilterRebuildsEveryFilter) {
  Tree tree;
  const std::set<std::string> filters = {"#", "+", "/", "a", "a/b", "a/+/c", "a/#", "$SYS/#", "//x//", "+/+"};
  uint32_t subscriber = 0;
  for (const std::string& filter : filters) tree.insert(filter, subscriber++, 0);
  tree.insert("a/b", 99, 0);  // two subscribers, still one filter
  EXPECT_EQ(filters_of(tree), filters);
  EXPECT_EQ(tree.filter_count(), filters.size());
}

// 100k subscribers on one filter: insert and remove use the index, so this stays fast; the
// swap-and-pop removal must keep the index pointing at the right positions throughout.
TEST(TopicTree, LargeFanOutOnOneFilter) {
  constexpr uint32_t kSubscribers = 100000;
  Tree tree;
  for (uint32_t s = 0; s < kSubscribers; s++) ASSERT_TRUE(tree.insert("fan/out", s, static_cast<int>(s)).added_subscriber);
  EXPECT_FALSE(tree.insert("fan/out", 777, -1).added_subscriber);
  EXPECT_EQ(tree.subscription_count(), kSubscribers);

  std::vector<uint32_t> order(kSubscribers);
  for (uint32_t s = 0; s < kSubscribers; s++) order[s] = s;
  std::mt19937 rng(7);
  std::shuffle(order.begin(), order.end(), rng);
  // Remove all but the last 10, then check exactly those remain with their own data.
  for (uint32_t i = 0; i + 10 < kSubscribers; i++) {
    Tree::RemoveResult removed = tree.remove("fan/out", order[i]);
    ASSERT_TRUE(removed.removed);
    ASSERT_FALSE(removed.last_for_filter);
    ASSERT_FALSE(tree.remove("fan/out", order[i]).removed);
  }
  std::vector<std::pair<uint32_t, int>> expected;
  for (uint32_t i = kSubscribers - 10; i < kSubscribers; i++) {
    expected.emplace_back(order[i], order[i] == 777 ? -1 : static_cast<int>(order[i]));
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(matches_of(tree, "fan/out"), expected);
  // Below the threshold again, with the index dropped, the linear path must agree.
  for (uint32_t i = kSubscribers - 10; i < kSubscribers; i++) ASSERT_TRUE(tree.remove("fan/out", order[i]).removed);
  EXPECT_EQ(tree.node_count(), 0u);
}

// A 65535-byte string of slashes has 65536 empty levels, and "+/+/.../+" fits 32768 '+'
// levels in 65535 bytes. insert, match, for_each_filter, remove and destruction must all get
// through such filters without spending a stack frame per level.
TEST(TopicTree, DeepestFiltersDoNotOverflowTheStack) {
  const std::string slashes(kTopicBytesMax, '/');
  std::string plus_levels;   // 32768 levels, each of them a '+'
  std::string exact_levels;  // the same 32768 levels spelled "x"
  for (size_t level = 0; level < kTopicBytesMax / 2 + 1; level++) {
    if (level > 0) {
      plus_levels.push_back('/');
      exact_levels.push_back('/');
    }
    plus_levels.push_back('+');
    exact_levels.push_back('x');
  }
  ASSERT_EQ(plus_levels.size(), kTopicBytesMax);
  ASSERT_TRUE(is_valid_topic_filter(plus_levels));
  {
    Tree tree;
    tree.insert(slashes, 1, 0);
    std::string slashes_then_hash = slashes;  // 65535 levels, the last one '#'
    slashes_then_hash.back() = '#';
    tree.insert(slashes_then_hash, 2, 0);
    tree.insert(plus_levels, 3, 0);
    tree.insert(exact_levels, 4, 0);  // with plus_levels, every level of the walk branches
    EXPECT_EQ(matches_of(tree, slashes), (std::vector<std::pair<uint32_t, int>>{{1, 0}, {2, 0}}));
    EXPECT_EQ(matches_of(tree, exact_levels), (std::vector<std::pair<uint32_t, int>>{{3, 0}, {4, 0}}));
    EXPECT_TRUE(matches_of(tree, exact_levels + "/x").empty());
    EXPECT_EQ(filters_of(tree).size(), 4u);
    EXPECT_TRUE(tree.remove(slashes, 1).removed);
    EXPECT_EQ(matches_of(tree, slashes), (std::vector<std::pair<uint32_t, int>>{{2, 0}}));
  }  // destroyed with three deep chains still in it
  Tree tree;
  tree.insert(slashes, 1, 0);
  EXPECT_TRUE(tree.remove(slashes, 1).last_for_filter);
  EXPECT_EQ(tree.node_count(), 0u);
}

// The model: a map filter -> (subscriber -> data) with the reference matcher over it.
class TopicTreeModel {
 public:
  void insert(const std::string& filter, uint32_t subscriber, int data) {
    Tree::InsertResult result = tree_.insert(filter, subscriber, data);
    auto& subscribers = model_[filter];
    EXPECT_EQ(result.first_for_filter, subscribers.empty());
    EXPECT_EQ(result.added_subscriber, subscribers.count(subscriber) == 0);
    subscribers[subscriber] = data;
  }

  void remove(const std::string& filter, uint32_t subscriber) {
    Tree::RemoveResult result = tree_.remove(filter, subscriber);
    auto found = model_.find(filter);
    bool present = found != model_.end() && found->second.count(subscriber) == 1;
    EXPECT_EQ(result.removed, present) << filter;
    if (!present) return;
    found->second.erase(subscriber);
    EXPECT_EQ(result.last_for_filter, found->second.empty());
    if (found->second.empty()) model_.erase(found);
  }

  void check_topic(const std::string& topic) const {
    // Data is unique per (filter, subscriber), so comparing the sorted pairs compares the
    // matched (filter, subscriber) sets, duplicates included.
    std::vector<std::pair<uint32_t, int>> expected;
    for (const auto& [filter, subscribers] : model_) {
      if (!topic_matches(filter, topic)) continue;
      for (const auto& [subscriber, data] : subscribers) expected.emplace_back(subscriber, data);
    }
    std::sort(expected.begin(), expected.end());
    ASSERT_EQ(matches_of(tree_, topic), expected) << "topic '" << topic << "'";
  }

  void check_counts() const {
    size_t subscriptions = 0;
    std::set<std::string> filters;
    for (const auto& [filter, subscribers] : model_) {
      subscriptions += subscribers.size();
      filters.insert(filter);
    }
    EXPECT_EQ(tree_.filter_count(), model_.size());
    EXPECT_EQ(tree_.subscription_count(), subscriptions);
    EXPECT_EQ(filters_of(tree_), filters);
  }

  const Tree& tree() const { return tree_; }
  const std::map<std::string, std::map<uint32_t, int>>& model() const { return model_; }

 private:
  Tree tree_;
  std::map<std::string, std::map<uint32_t, int>> model_;
};

std::string random_levels(std::mt19937& rng, bool filter) {
  // A small alphabet so that random filters and topics collide often.
  static const std::vector<std::string> kLevels = {"a", "b", "", "$x", "$SYS", "c"};
  std::uniform_int_distribution<size_t> level_count(1, 4);
  std::uniform_int_distribution<size_t> pick(0, kLevels.size() - 1);
  std::uniform_int_distribution<int> percent(0, 99);
  size_t levels = level_count(rng);
  std::string text;
  for (size_t level = 0; level < levels; level++) {
    if (level > 0) text += '/';
    int roll = percent(rng);
    if (filter && roll < 20) {
      text += '+';
    } else if (filter && roll < 30 && level + 1 == levels) {
      text += '#';
    } else {
      text += kLevels[pick(rng)];
    }
  }
  // One empty level is the empty string, which is neither a valid filter nor topic.
  if (text.empty()) text.push_back('/');
  return text;
}

TEST(TopicTreeModelTest, RandomFiltersAgreeWithReferenceMatcher) {
  std::mt19937 rng(20240601);
  std::uniform_int_distribution<uint32_t> subscriber_of(0, 7);
  std::uniform_int_distribution<int> percent(0, 99);
  TopicTreeModel model;
  int next_data = 0;
  size_t topics_checked = 0;
  for (int round = 0; round < 300; round++) {
    for (int op = 0; op < 20; op++) {
      // Removes pick existing filters most of the time so the tree also shrinks.
      if (percent(rng) < 40 && !model.model().empty()) {
        auto it = model.model().begin();
        std::advance(it, std::uniform_int_distribution<size_t>(0, model.model().size() - 1)(rng));
        std::string filter = it->first;
        uint32_t subscriber = percent(rng) < 80 ? it->second.begin()->first : subscriber_of(rng);
        model.remove(filter, subscriber);
      } else {
        model.insert(random_levels(rng, true), subscriber_of(rng), next_data++);
      }
    }
    for (int probe = 0; probe < 20; probe++) {
      model.check_topic(random_levels(rng, false));
      topics_checked++;
    }
    model.check_counts();
  }
  EXPECT_GE(topics_checked, 6000u);
  EXPECT_GT(model.tree().filter_count(), 0u);
  // Emptying the tree through remove() must prune every node.
  while (!model.model().empty()) {
    auto first = model.model().begin();
    model.remove(std::string(first->first), first->second.begin()->first);
  }
  model.check_counts();
  EXPECT_EQ(model.tree().node_count(), 0u);
}

}  // namespace
}  // namespace coremq::topic
