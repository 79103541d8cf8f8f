// MQTT topic names and topic filters: validation and the reference matcher.
// Pure functions with no state; callable from any thread.
//
// A topic is split into levels at every '/'. Empty levels are real levels: "a//b" has the
// three levels "a", "" and "b", "/a" has "" and "a", and "/" has two empty levels. UTF-8
// well-formedness and the ban on control characters are the codec's business (mqtt/);
// these checks cover what the topic rules themselves require.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace coremq::topic {

// The longest topic name or filter an MQTT string can carry (a two-byte length prefix).
// A string of that length has at most 65536 levels ("/" repeated 65535 times, all levels
// empty); code that walks levels must therefore be iterative or bounded, never one stack
// frame per level.
inline constexpr size_t kTopicBytesMax = 65535;
inline constexpr size_t kTopicLevelsMax = kTopicBytesMax + 1;

// A PUBLISH topic name: 1..65535 bytes, no '+', no '#', no NUL.
bool is_valid_topic_name(std::string_view topic);
// The same, also giving the number of levels of a valid name (counted in the same pass, so
// the publish path pays no second scan for --max-topic-levels); *levels is unspecified when
// the name is invalid.
bool is_valid_topic_name(std::string_view topic, uint32_t* levels);

// Levels of a topic name or filter: one more than its '/' count.
inline uint32_t count_levels(std::string_view text) {
  uint32_t slashes = 0;
  for (char c : text) slashes += c == '/';
  return slashes + 1;
}

// A SUBSCRIBE topic filter: 1..65535 bytes, no NUL, '+' only as a whole level, '#' only as
// the whole last level.
bool is_valid_topic_filter(std::string_view filter);

// The reference matcher, written for clarity rather than speed: TopicTree must agree with it.
// '+' matches exactly one level (an empty one too), '#' matches any number of levels
// including none, so "a/#" matches "a". A topic whose first character is '$' is not matched
// by a filter whose first level is '+' or '#' ("$SYS/x" is not matched by "#" or "+/x", but
// is by "$SYS/#"). Both arguments are expected to be valid; on invalid input the answer is
// unspecified but the call is still memory-safe.
bool topic_matches(std::string_view filter, std::string_view topic);

// True when the topic is one that wildcards at the first level must not match.
inline bool is_dollar_topic(std::string_view topic) { return !topic.empty() && topic.front() == '$'; }

// Walks the levels of a topic or filter left to right without allocating. `next()` may be
// called while `has_next()` holds; a string always has at least one level (the empty string
// has one empty level).
class LevelCursor {
 public:
  explicit LevelCursor(std::string_view text) : text_(text) {}

  bool has_next() const { return position_ <= text_.size(); }

  std::string_view next() {
    size_t slash = text_.find('/', position_);
    if (slash == std::string_view::npos) slash = text_.size();
    std::string_view level = text_.substr(position_, slash - position_);
    position_ = slash + 1;
    return level;
  }

 private:
  std::string_view text_;
  size_t position_ = 0;  // start of the next level; text_.size() + 1 once all are taken
};

}  // namespace coremq::topic
