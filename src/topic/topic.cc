// Topic validation and the reference matcher; see topic.h. Stateless, any thread.
#include "topic/topic.h"

#include <cstdint>
#include <cstring>

namespace coremq::topic {

namespace {
// SWAR: a word whose bytes are all `byte`, and "does any byte of x equal zero".
constexpr uint64_t broadcast(uint8_t byte) { return 0x0101010101010101ull * byte; }
constexpr bool has_zero_byte(uint64_t x) { return ((x - broadcast(1)) & ~x & broadcast(0x80)) != 0; }
// The high bit of exactly each zero byte of x (has_zero_byte's borrow can also mark a 0x01
// byte above a zero one, which is fine for "any" but not for counting).
constexpr uint64_t zero_byte_mask(uint64_t x) {
  return ~(((x & broadcast(0x7F)) + broadcast(0x7F)) | x | broadcast(0x7F));
}
// The sum of the eight bytes of x: pairs into 16-bit lanes (each at most 510), then those
// four added by one multiply into the top 16 bits (at most 2040).
constexpr uint32_t sum_of_byte_lanes(uint64_t x) {
  constexpr uint64_t kLowBytes = 0x00FF00FF00FF00FFull;
  uint64_t pairs = (x & kLowBytes) + ((x >> 8) & kLowBytes);
  return static_cast<uint32_t>((pairs * 0x0001000100010001ull) >> 48);
}
}  // namespace

bool is_valid_topic_name(std::string_view topic) {
  uint32_t levels = 0;
  return is_valid_topic_name(topic, &levels);
}

bool is_valid_topic_name(std::string_view topic, uint32_t* levels) {
  if (topic.empty() || topic.size() > kTopicBytesMax) return false;
  // Every PUBLISH passes here: eight bytes per step, looking for '+', '#' or NUL at once,
  // and counting the '/' of those eight bytes on the way.
  // The '/' of each word are added up per byte lane (at most one per lane and word) and the
  // lanes summed every 255 words, before a lane can overflow, and at the end: cheaper than
  // a popcount per word, which baseline x86-64 has no instruction for.
  uint32_t slashes = 0;
  uint64_t lanes = 0;
  uint32_t words_in_lanes = 0;
  size_t i = 0;
  for (; i + 8 <= topic.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, topic.data() + i, 8);
    if (has_zero_byte(word ^ broadcast('+')) || has_zero_byte(word ^ broadcast('#')) || has_zero_byte(word)) {
      return false;
    }
    lanes += zero_byte_mask(word ^ broadcast('/')) >> 7;
    if (++words_in_lanes == 255) {
      slashes += sum_of_byte_lanes(lanes);
      lanes = 0;
      words_in_lanes = 0;
    }
  }
  slashes += sum_of_byte_lanes(lanes);
  for (; i < topic.size(); ++i) {
    char c = topic[i];
    if (c == '+' || c == '#' || c == '\0') return false;
    slashes += c == '/';
  }
  *levels = slashes + 1;
  return true;
}

bool is_valid_topic_filter(std::string_view filter) {
  if (filter.empty() || filter.size() > kTopicBytesMax) return false;
  LevelCursor levels(filter);
  while (levels.has_next()) {
    std::string_view level = levels.next();
    if (level.find('\0') != std::string_view::npos) return false;
    if (level.find('+') != std::string_view::npos && level != "+") return false;
    if (level.find('#') != std::string_view::npos) {
      // '#' must be the whole level and the last one.
      if (level != "#" || levels.has_next()) return false;
    }
  }
  return true;
}

bool topic_matches(std::string_view filter, std::string_view topic) {
  LevelCursor filter_levels(filter);
  LevelCursor topic_levels(topic);
  bool first_level = true;
  while (filter_levels.has_next()) {
    std::string_view filter_level = filter_levels.next();
    bool is_wildcard = filter_level == "+" || filter_level == "#";
    if (first_level && is_wildcard && is_dollar_topic(topic)) return false;
    first_level = false;
    // '#' takes the rest of the topic, including nothing at all ("a/#" matches "a").
    if (filter_level == "#") return true;
    if (!topic_levels.has_next()) return false;
    std::string_view topic_level = topic_levels.next();
    if (filter_level != "+" && filter_level != topic_level) return false;
  }
  return !topic_levels.has_next();
}

}  // namespace coremq::topic
