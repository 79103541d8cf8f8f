// Retained message bookkeeping; see retained_store.h.
#include "broker/retained_store.h"

#include <vector>

namespace coremq::broker {

namespace {
// Cross-shard items are handled within milliseconds, or within the input pause when a
// shard falls behind; a minute leaves a wide margin.
constexpr int64_t kTombstoneLifetimeMs = 60'000;
}  // namespace

RetainedStore::Update RetainedStore::update(const MessageRef& message, int64_t now_ms) {
  COREMQ_ASSERT(message);
  std::string_view topic = message->topic();
  uint64_t stamp = message->retain_stamp();
  bool clear = message->payload().empty();
  auto found = entries_.find(topic);
  if (found != entries_.end()) {
    Entry& entry = found->second;
    if (stamp < entry.stamp) return Update::kStale;
    bool was_live = static_cast<bool>(entry.message);
    entry.stamp = stamp;
    if (clear) {
      entry.message = MessageRef();
      entry.cleared_at_ms = now_ms;
      if (was_live) {
        --live_;
        ++tombstones_;
      }
      return Update::kCleared;
    }
    if (!was_live) {
      if (live_ >= max_messages_) return Update::kLimitReached;
      --tombstones_;
      ++live_;
    }
    entry.message = message;
    return was_live ? Update::kReplaced : Update::kStored;
  }
  if (clear) {
    // Nothing held: the tombstone only guards against an older update still in flight.
    if (tombstones_ >= max_messages_) return Update::kCleared;
    entries_.emplace(std::string(topic), Entry{MessageRef(), stamp, now_ms});
    ++tombstones_;
    return Update::kCleared;
  }
  if (live_ >= max_messages_) return Update::kLimitReached;
  entries_.emplace(std::string(topic), Entry{message, stamp, 0});
  ++live_;
  return Update::kStored;
}

void RetainedStore::forget_tombstones(int64_t now_ms) {
  // A scan of the whole store: at most every ten seconds, and only when there are tombstones.
  if (tombstones_ == 0 || now_ms < next_sweep_ms_) return;
  next_sweep_ms_ = now_ms + 10'000;
  std::vector<std::string_view> expired;
  for (const auto& [topic, entry] : entries_) {
    if (!entry.message && now_ms - entry.cleared_at_ms > kTombstoneLifetimeMs) expired.push_back(topic);
  }
  for (std::string_view topic : expired) entries_.erase(entries_.find(topic));
  tombstones_ -= expired.size();
}

}  // namespace coremq::broker
