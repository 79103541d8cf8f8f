// The retained messages, one full copy per shard: every retained PUBLISH is sent to
// every shard, so a SUBSCRIBE on any shard is answered from local memory without
// asking anyone. The copies share each message's bytes by reference count.
//
// The copies must end up the same even when shards take retained PUBLISHes on one
// topic at the same moment and receive each other's in different orders. So every
// retained update carries a stamp (a Lamport clock with the shard id as tie-break),
// and a copy keeps, per topic, the update with the highest stamp: all copies converge
// on the same message, and one publisher's updates (stamped in order on its shard)
// keep their order. A cleared topic leaves a stamped tombstone for a while, so an
// older update still on its way cannot bring the message back.
//
// Bounded by Options::max_retained_messages (live messages, and tombstones apart).
// Single-threaded (its shard's).
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

  enum class Update { kStored, kReplaced, kCleared, kStale, kLimitReached };
  // An empty payload clears the topic's retained message (MQTT-3.3.1-10/11). An update
  // stamped lower than what the topic holds is stale and ignored.
  Update update(const MessageRef& message, int64_t now_ms);

  // Forgets tombstones older than the age after which no older update can still be in
  // flight between shards.
  void forget_tombstones(int64_t now_ms);

  // Visits every retained message whose topic matches the filter.
  template <typename Visit>
  void for_each_match(std::string_view filter, Visit&& visit) const;

  size_t size() const { return live_; }

 private:
  struct Entry {
    MessageRef message;        // null for a tombstone
    uint64_t stamp = 0;
    int64_t cleared_at_ms = 0;  // tombstones only
  };
  uint32_t max_messages_;
  size_t live_ = 0;
  size_t tombstones_ = 0;
  int64_t next_sweep_ms_ = 0;
  base::StringMap<Entry> entries_;
};

}  // namespace coremq::broker

#include "topic/topic.h"

namespace coremq::broker {

template <typename Visit>
void RetainedStore::for_each_match(std::string_view filter, Visit&& visit) const {
  bool has_wildcard = filter.find_first_of("+#") != std::string_view::npos;
  if (!has_wildcard) {
    auto found = entries_.find(filter);
    if (found != entries_.end() && found->second.message) visit(found->second.message);
    return;
  }
  // A scan: subscribing with a wildcard is rare next to publishing, and the store is bounded.
  for (const auto& [topic, entry] : entries_) {
    if (entry.message && topic::topic_matches(filter, topic)) visit(entry.message);
  }
}

}  // namespace coremq::broker
