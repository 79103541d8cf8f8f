// A bridge's topic mapping; see bridge_topics.h.
#include "shard/bridge_topics.h"

#include "topic/topic.h"

namespace coremq::shard {

namespace {

bool goes_out(const BridgeTopic& topic) {
  return topic.direction != BridgeTopic::Direction::kIn;
}
bool comes_in(const BridgeTopic& topic) {
  return topic.direction != BridgeTopic::Direction::kOut;
}

// from_prefix + T (T matching pattern) -> to_prefix + T.
std::optional<std::string> remap(const BridgeTopic& line, const std::string& from_prefix,
                                 const std::string& to_prefix, std::string_view topic) {
  if (line.pattern.empty()) {
    if (topic == from_prefix) return to_prefix;
    return std::nullopt;
  }
  if (!topic.starts_with(from_prefix)) return std::nullopt;
  std::string_view rest = topic.substr(from_prefix.size());
  if (rest.empty() || !topic::topic_matches(line.pattern, rest)) return std::nullopt;
  std::string mapped;
  mapped.reserve(to_prefix.size() + rest.size());
  mapped.append(to_prefix).append(rest);
  return mapped;
}

}  // namespace

std::vector<BridgeTopics::Filter> BridgeTopics::local_filters() const {
  std::vector<Filter> filters;
  for (const BridgeTopic& line : topics_) {
    if (goes_out(line)) filters.push_back(Filter{line.local_prefix + line.pattern, line.qos});
  }
  return filters;
}

std::vector<BridgeTopics::Filter> BridgeTopics::remote_filters() const {
  std::vector<Filter> filters;
  for (const BridgeTopic& line : topics_) {
    if (comes_in(line)) filters.push_back(Filter{line.remote_prefix + line.pattern, line.qos});
  }
  return filters;
}

std::optional<std::string> BridgeTopics::to_remote(std::string_view local_topic) const {
  for (const BridgeTopic& line : topics_) {
    if (!goes_out(line)) continue;
    if (auto mapped = remap(line, line.local_prefix, line.remote_prefix, local_topic)) return mapped;
  }
  return std::nullopt;
}

std::optional<std::string> BridgeTopics::to_local(std::string_view remote_topic) const {
  for (const BridgeTopic& line : topics_) {
    if (!comes_in(line)) continue;
    if (auto mapped = remap(line, line.remote_prefix, line.local_prefix, remote_topic)) return mapped;
  }
  return std::nullopt;
}

}  // namespace coremq::shard
