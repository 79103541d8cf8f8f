// Retained message bookkeeping; see retained_store.h.
#include "broker/retained_store.h"

#include <algorithm>

#include "base/assert.h"

namespace coremq::broker {

namespace {
// Cross-shard items are handled within milliseconds, or within the input pause when a
// shard falls behind; a minute leaves a wide margin.
constexpr int64_t kTombstoneLifetimeMs = 60'000;
}  // namespace

bool RetainedStore::admits(const Message& message) const {
  if (message.payload().empty() || live_ < max_messages_) return true;
  auto found = entries_.find(message.topic());
  return found != entries_.end() && found->second.message;
}

RetainedStore::Update RetainedStore::update(const MessageRef& message, int64_t now_ms) {
  COREMQ_ASSERT(message);
  std::string_view topic = message->topic();
  uint64_t stamp = message->retain_stamp();
  bool clear = message->payload().empty();
  auto found = entries_.find(topic);
  if (found == entries_.end()) {
    if (!clear && live_ >= hard_limit()) return Update::kLimitReached;
    found = entries_.emplace(std::string(topic), Entry{}).first;
    found->second.stamp = stamp;
    if (clear) {
      // Nothing held here, but an older update may still be on its way: the tombstone stops it.
      add_tombstone(found->first, found->second, now_ms);
      return Update::kCleared;
    }
    found->second.message = message;
    ++live_;
    return Update::kStored;
  }
  Entry& entry = found->second;
  if (stamp < entry.stamp) return Update::kStale;
  bool was_live = static_cast<bool>(entry.message);
  if (!clear && !was_live && live_ >= hard_limit()) return Update::kLimitReached;
  if (!was_live) tombstones_.erase({entry.stamp, std::string(topic)});
  entry.stamp = stamp;
  if (clear) {
    if (was_live) --live_;
    entry.message = MessageRef();
    add_tombstone(found->first, entry, now_ms);
    return Update::kCleared;
  }
  if (!was_live) ++live_;
  entry.message = message;
  return was_live ? Update::kReplaced : Update::kStored;
}

void RetainedStore::add_tombstone(std::string_view topic, Entry& entry, int64_t now_ms) {
  COREMQ_ASSERT(!entry.message);
  entry.cleared_at_ms = now_ms;
  tombstones_.emplace(entry.stamp, std::string(topic));
  if (tombstones_.size() <= std::max<uint32_t>(max_messages_, 1)) return;
  // The oldest clear goes: every copy with the same clears forgets the same one. (It may
  // be the one just made, when it is older than all the others.)
  auto oldest = tombstones_.begin();
  entries_.erase(entries_.find(oldest->second));
  tombstones_.erase(oldest);
  ++tombstones_evicted_;
}

void RetainedStore::forget_tombstones(int64_t now_ms) {
  // A scan of the tombstones: at most every ten seconds, and only when there are some.
  if (tombstones_.empty() || now_ms < next_sweep_ms_) return;
  next_sweep_ms_ = now_ms + 10'000;
  for (auto it = tombstones_.begin(); it != tombstones_.end();) {
    auto found = entries_.find(it->second);
    COREMQ_ASSERT(found != entries_.end() && !found->second.message);
    if (now_ms - found->second.cleared_at_ms > kTombstoneLifetimeMs) {
      entries_.erase(found);
      it = tombstones_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace coremq::broker
