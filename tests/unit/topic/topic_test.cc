// Validation and the reference matcher, table-driven; the match table is also run through
// TopicTree, so it is what "correct" means for both.
#include "topic/topic.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "topic/topic_tree.h"

namespace coremq::topic {
namespace {

using namespace std::string_literals;

struct ValidityCase {
  std::string text;
  bool valid;
};

TEST(TopicValidation, TopicNames) {
  const std::vector<ValidityCase> cases = {
      {"a", true},          {"a/b/c", true},       {"/", true},
      {"/a", true},         {"a/", true},          {"a//b", true},
      {"$SYS/broker", true}, {" ", true},          {"", false},
      {"a/+", false},       {"a/#", false},        {"+", false},
      {"#", false},         {"a+b", false},        {"a#", false},
      {"a\0b"s, false},     {std::string(65535, 'x'), true},
      {std::string(65536, 'x'), false},            {std::string(65535, '/'), true},
  };
  for (const ValidityCase& c : cases) {
    EXPECT_EQ(is_valid_topic_name(c.text), c.valid) << "topic '" << c.text.substr(0, 40) << "'";
  }
}

TEST(TopicValidation, TopicFilters) {
  const std::vector<ValidityCase> cases = {
      {"a", true},        {"a/b", true},     {"#", true},      {"+", true},
      {"+/+", true},      {"a/+/b", true},   {"a/#", true},    {"+/#", true},
      {"/#", true},       {"//", true},      {"$SYS/#", true}, {"/+/", true},
      {"", false},        {"a#", false},     {"#/a", false},   {"a/#/b", false},
      {"a/b#", false},    {"a+", false},     {"+a/b", false},  {"a/+b", false},
      {"##", false},      {"++", false},     {"a/\0"s, false}, {"\0"s, false},
      {std::string(65535, '/'), true},      {std::string(65536, '/'), false},
  };
  for (const ValidityCase& c : cases) {
    EXPECT_EQ(is_valid_topic_filter(c.text), c.valid) << "filter '" << c.text.substr(0, 40) << "'";
  }
}

struct MatchCase {
  std::string_view filter;
  std::string_view topic;
  bool matches;
};

const std::vector<MatchCase>& topic_match_cases() {
  static const std::vector<MatchCase> cases = {
      {"a", "a", true},
      {"a", "b", false},
      {"a/b", "a/b", true},
      {"a/b", "a", false},
      {"a", "a/b", false},
      {"a/+", "a/b", true},
      {"a/+", "a/b/c", false},
      {"a/+", "a", false},
      {"a/+", "a/", true},  // '+' matches an empty level
      {"+/+", "/", true},
      {"+", "/", false},
      {"+", "a", true},
      {"+", "", true},
      {"/+", "/a", true},
      {"+/a", "/a", true},
      {"a//b", "a//b", true},
      {"a/+/b", "a//b", true},
      {"a//b", "a/b", false},
      {"/a", "a", false},
      {"a/", "a", false},
      {"#", "a", true},
      {"#", "a/b/c", true},
      {"#", "/", true},
      {"#", "", true},
      {"a/#", "a", true},  // '#' matches the parent level too
      {"a/#", "a/b", true},
      {"a/#", "a/b/c", true},
      {"a/#", "b", false},
      {"a/#", "ab", false},
      {"a/b/#", "a", false},
      {"+/#", "a", true},
      {"+/#", "a/b", true},
      {"+/+/#", "a", false},
      {"/#", "/", true},
      {"/#", "a", false},
      {"$SYS/x", "$SYS/x", true},
      {"#", "$SYS/x", false},
      {"+/x", "$SYS/x", false},
      {"+", "$SYS", false},
      {"+/#", "$SYS/x", false},
      {"$SYS/#", "$SYS/x", true},
      {"$SYS/#", "$SYS", true},
      {"$SYS/+", "$SYS/x", true},
      {"a/$x", "a/$x", true},
      {"a/+", "a/$x", true},  // '$' only matters at the first level
      {"a/#", "a/$x", true},
      {"#", "x$", true},
  };
  return cases;
}

TEST(TopicMatch, Table) {
  for (const MatchCase& c : topic_match_cases()) {
    EXPECT_EQ(topic_matches(c.filter, c.topic), c.matches) << "filter '" << c.filter << "' topic '" << c.topic << "'";
  }
}

// The same table through the tree: one filter per tree, so a match is exactly one visit.
TEST(TopicTreeMatch, Table) {
  for (const MatchCase& c : topic_match_cases()) {
    TopicTree<int, int> tree;
    tree.insert(c.filter, 1, 0);
    int visits = 0;
    tree.match(c.topic, [&visits](int, int) { visits++; });
    EXPECT_EQ(visits, c.matches ? 1 : 0) << "filter '" << c.filter << "' topic '" << c.topic << "'";
  }
}

TEST(TopicMatch, DeepTopicsNeedNoStack) {
  std::string slashes(65535, '/');
  EXPECT_TRUE(topic_matches(slashes, slashes));
  EXPECT_TRUE(topic_matches("#", slashes));
  EXPECT_FALSE(topic_matches(slashes, slashes.substr(1)));
}

TEST(TopicLevelCursor, SplitsEmptyLevels) {
  LevelCursor cursor("/a//");
  std::vector<std::string_view> levels;
  while (cursor.has_next()) levels.push_back(cursor.next());
  EXPECT_EQ(levels, (std::vector<std::string_view>{"", "a", "", ""}));
  LevelCursor empty("");
  ASSERT_TRUE(empty.has_next());
  EXPECT_EQ(empty.next(), "");
  EXPECT_FALSE(empty.has_next());
}

}  // namespace
}  // namespace coremq::topic

namespace coremq::topic {
namespace {

// The name check reads eight bytes at a time: a forbidden byte must be found at every
// position of a long topic, in the word-sized part and in the tail.
TEST(TopicValidationWordwise, FindsForbiddenBytesAtEveryPosition) {
  for (size_t length : {1u, 7u, 8u, 9u, 16u, 23u, 40u}) {
    std::string topic(length, 'a');
    EXPECT_TRUE(is_valid_topic_name(topic)) << length;
    for (size_t position = 0; position < length; ++position) {
      for (char forbidden : {'+', '#', '\0'}) {
        std::string bad = topic;
        bad[position] = forbidden;
        EXPECT_FALSE(is_valid_topic_name(bad)) << length << " " << position << " " << int(forbidden);
      }
      std::string near = topic;  // bytes next to the forbidden ones must pass
      near[position] = static_cast<char>('+' + 1);
      EXPECT_TRUE(is_valid_topic_name(near));
      near[position] = static_cast<char>(0x80 | '#');
      EXPECT_TRUE(is_valid_topic_name(near));
    }
  }
}

// The same scan counts levels for --max-topic-levels: every '/' counts, at every position of
// the word-sized part and the tail, and bytes one off a '/' ('.' = '/' ^ 1, '0' = '/' + 1)
// or with its low bits (0x80 | '/') do not (an inexact SWAR zero-byte mask would count some).
TEST(TopicValidationWordwise, CountsLevelsInTheSameScan) {
  uint32_t levels = 0;
  for (size_t length : {1u, 7u, 8u, 9u, 16u, 23u, 40u}) {
    for (size_t position = 0; position < length; ++position) {
      std::string topic(length, 'a');
      topic[position] = '/';
      ASSERT_TRUE(is_valid_topic_name(topic, &levels));
      EXPECT_EQ(levels, 2u) << length << " " << position;
      for (char near : {'.', '0', static_cast<char>(0x80 | '/'), '\x01'}) {
        std::string other = topic;
        for (size_t i = 0; i < length; ++i) {
          if (i != position) other[i] = near;
        }
        ASSERT_TRUE(is_valid_topic_name(other, &levels));
        EXPECT_EQ(levels, 2u) << length << " " << position << " " << int(near);
      }
    }
    std::string slashes(length, '/');
    ASSERT_TRUE(is_valid_topic_name(slashes, &levels));
    EXPECT_EQ(levels, length + 1);
    EXPECT_EQ(count_levels(slashes), length + 1);
  }
  std::string longest(kTopicBytesMax, '/');
  ASSERT_TRUE(is_valid_topic_name(longest, &levels));
  EXPECT_EQ(levels, kTopicLevelsMax);
  ASSERT_TRUE(is_valid_topic_name("a", &levels));
  EXPECT_EQ(levels, 1u);
  ASSERT_TRUE(is_valid_topic_name("a//b/c", &levels));
  EXPECT_EQ(levels, 4u);
  EXPECT_EQ(count_levels("a//b/c"), 4u);
}

}  // namespace
}  // namespace coremq::topic
