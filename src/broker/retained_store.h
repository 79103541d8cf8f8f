// The retained messages, one full copy per shard: every retained PUBLISH is sent to
// every shard, so a SUBSCRIBE on any shard is answered from local memory without
// asking anyone. The copies share each message's bytes by reference count.
// Bounded by Options::max_retained_messages. Single-threaded (its shard's).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/string_map.h"
#include "broker/message.h"

namespace coremq::broker {

class RetainedStore {
 public:
  explicit RetainedStore(uint32_t max_messages) : max_messages_(max_messages) {}

  enum class Update { kStored, kReplaced, kCleared, kNothingToClear, kLimitReached };
  // An empty payload clears the topic's retained message (MQTT-3.3.1-10/11).
  Update update(const MessageRef& message);

  // Visits every retained message whose topic matches the filter.
  template <typename Visit>
  void for_each_match(std::string_view filter, Visit&& visit) const;

  size_t size() const { return messages_.size(); }

 private:
  uint32_t max_messages_;
  base::StringMap<MessageRef> messages_;
};

}  // namespace coremq::broker

#include "topic/topic.h"

namespace coremq::broker {

template <typename Visit>
void RetainedStore::for_each_match(std::string_view filter, Visit&& visit) const {
  bool has_wildcard = filter.find_first_of("+#") != std::string_view::npos;
  if (!has_wildcard) {
    auto found = messages_.find(filter);
    if (found != messages_.end()) visit(found->second);
    return;
  }
  // A scan: subscribing with a wildcard is rare next to publishing, and the store is bounded.
  for (const auto& [topic, message] : messages_) {
    if (topic::topic_matches(filter, topic)) visit(message);
  }
}

}  // namespace coremq::broker
