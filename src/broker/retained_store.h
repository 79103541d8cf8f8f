// The retained messages, one full copy per shard: every retained PUBLISH is sent to
// every shard, so a SUBSCRIBE on any shard is answered from local memory without
// asking anyone. The copies share each message's bytes by reference count.
//
// The copies must end up the same even when shards take retained PUBLISHes on one
// topic at the same moment and receive each other's in different orders. So every
// retained update carries a stamp (a Lamport clock with the shard id as tie-break),
// and a copy keeps, per topic, the update with the highest stamp: all copies converge
// on the same message, and one publisher's updates (stamped in order on its shard)
// keep their order. A clear always leaves a stamped tombstone, so an older update
// still on its way cannot bring the message back.
//
// Every decision a copy makes depends only on the set of updates it has received, never
// on their order, so the copies agree:
//   - The limit (Options::max_retained_messages) is decided once, by the shard where the
//     retained PUBLISH entered (admits(), on its own copy), and a refused message is not
//     sent to the other copies at all. Every copy stores what another shard admitted:
//     copies may go past the limit by the new topics admitted on several shards at once.
//     A hard bound of twice the limit guards memory; a copy that reaches it refuses
//     (counted apart: the one case where copies may differ).
//   - Tombstones are bounded separately, by the same number: a clear past it forgets the
//     tombstone with the lowest stamp (the oldest clear), so every copy that has seen the
//     same clears keeps the same ones. A tombstone is also forgotten a minute after it was
//     made, by when no older update can still be in flight between shards.
//
// Single-threaded (its shard's).
#pragma once

#include <cstdint>
#include <set>
#include <utility>
#include <string>
#include <string_view>

#include "base/string_map.h"
#include "broker/message.h"

namespace coremq::broker {

class RetainedStore {
 public:
  explicit RetainedStore(uint32_t max_messages) : max_messages_(max_messages) {}

  enum class Update { kStored, kReplaced, kCleared, kStale, kLimitReached };
  // The limit, decided once by the shard where a retained PUBLISH entered: a clear, a
  // topic that holds a message here, or a new topic while this copy is under the limit.
  bool admits(const Message& message) const;
  // Applies an admitted update. An empty payload clears the topic's retained message
  // (MQTT-3.3.1-10/11). An update stamped lower than what the topic holds is stale and
  // ignored. kLimitReached only at the hard bound.
  Update update(const MessageRef& message, int64_t now_ms);

  // Forgets tombstones older than the age after which no older update can still be in
  // flight between shards.
  void forget_tombstones(int64_t now_ms);

  // Visits every retained message whose topic matches the filter.
  template <typename Visit>
  void for_each_match(std::string_view filter, Visit&& visit) const;

  size_t size() const { return live_; }
  size_t tombstones() const { return tombstones_.size(); }
  // Tombstones forgotten early because there were max_messages of them (for a counter).
  uint64_t tombstones_evicted() const { return tombstones_evicted_; }
  uint64_t hard_limit() const { return 2 * uint64_t{max_messages_}; }

 private:
  struct Entry {
    MessageRef message;        // null for a tombstone
    uint64_t stamp = 0;
    int64_t cleared_at_ms = 0;  // tombstones only
  };
  // Makes `entry` (of `topic`) a tombstone stamped entry.stamp, evicting the oldest one
  // when there are max_messages_ already.
  void add_tombstone(std::string_view topic, Entry& entry, int64_t now_ms);
  uint32_t max_messages_;
  size_t live_ = 0;
  uint64_t tombstones_evicted_ = 0;
  int64_t next_sweep_ms_ = 0;
  base::StringMap<Entry> entries_;
  // Tombstones by stamp, lowest first, for eviction (the topic breaks ties: a stamp is
  // unique per update, but a test may make updates without one).
  std::set<std::pair<uint64_t, std::string>> tombstones_;
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
