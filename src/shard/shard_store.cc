// The shard loop's side of durable persistence (--persistence=rocksdb, docs/PERSISTENCE.md):
// taking the store's records at start-up, handing the turn's batch to the committer at the end
// of each turn, and passing the committer's answers (batches now durable) to ShardState, whose
// waiting answers and barrier acks then go. Shard thread only; nothing here blocks.
#include <time.h>

#include "base/log.h"
#include "persist/records.h"
#include "persist/store.h"
#include "shard/shard.h"

namespace coremq::shard {

void Shard::restore_from_store() {
  if (store_ == nullptr) return;
  // The store keeps wall-clock deadlines; ShardState runs on the monotonic clock.
  timespec wall{};
  clock_gettime(CLOCK_REALTIME, &wall);
  int64_t unix_ms = int64_t{wall.tv_sec} * 1000 + wall.tv_nsec / 1000000;
  state_->set_journal(&store_->journal(shard_id_), unix_ms - now_ms_);
  if (restore_retained_ != nullptr) {
    for (const broker::MessageRef& message : *restore_retained_) state_->restore_retained(message);
  }
  if (restore_sessions_ != nullptr) {
    for (const persist::LoadedSession& loaded : *restore_sessions_) state_->restore_session(loaded, *restore_bodies_);
  }
  restore_retained_ = nullptr;
  restore_sessions_ = nullptr;
  restore_bodies_ = nullptr;
}

void Shard::drain_store_answers() {
  if (store_ == nullptr || !state_) return;
  if (store_->journal(shard_id_).drain_answers()) state_->on_durable();
}

bool Shard::store_answers_ready() const { return store_ != nullptr && store_->journal(shard_id_).answers_ready(); }

void Shard::submit_to_store() {
  if (store_ == nullptr) return;
  state_->submit_journal();
}

void Shard::tick_store() {
  if (store_ == nullptr) return;
  state_->set_store_full(store_->over_size_bound());
}

}  // namespace coremq::shard
