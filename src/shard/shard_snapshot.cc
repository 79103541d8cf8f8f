// Counters and gauges read on each shard's thread (see shard_snapshot.h).
#include "shard/shard_snapshot.h"

#include <memory>
#include <mutex>

#include "broker/shard_state.h"
#include "persist/store.h"
#include "shard/shard.h"

namespace coremq::shard {

std::vector<ShardSnapshot> collect_shard_snapshots(ShardAccess& access, std::chrono::milliseconds timeout) {
  // Shared with the callbacks: a shard that answers after the timeout still has somewhere to
  // write. Each shard writes only its own slot; the mutex orders those writes before the copy
  // this thread makes (a late shard would otherwise race with it).
  struct Slots {
    std::mutex mutex;
    std::vector<ShardSnapshot> snapshots;
  };
  auto slots = std::make_shared<Slots>();
  slots->snapshots.resize(access.shard_count());
  for (uint32_t i = 0; i < slots->snapshots.size(); ++i) slots->snapshots[i].shard = i;
  access.run_on_each_shard(
      [slots](Shard& shard) {
        const broker::ShardState& state = shard.state();
        ShardSnapshot taken;
        taken.shard = shard.id();
        taken.answered = true;
        taken.counters = state.counters();
        taken.connections = state.connection_count();
        taken.sessions = state.session_count();
        taken.subscriptions = state.subscription_count();
        taken.retained = state.retained_count();
        taken.stored_messages = state.stored_messages();
        taken.stored_message_bytes = state.stored_message_bytes();
        if (const persist::Store* store = shard.store(); store != nullptr) {
          const persist::ShardJournal& journal = store->journal(shard.id());
          taken.store_batches_waiting = journal.batch_needed() - journal.durable();
          taken.store_changes_written = journal.changes_written();
          taken.store_changes_elided = journal.changes_elided();
          taken.store_changes_superseded = journal.changes_superseded();
          taken.store_erases_coalesced = journal.erases_coalesced();
          taken.store_write_failures = store->write_failures();
          taken.store_batches_written = store->batches_written();
          taken.store_syncs = store->syncs();
        }
        taken.sessions_online = state.online_session_count();
        taken.sockets = shard.socket_count();
        taken.inbound_ring_depth = shard.inbound_ring_depth();
        taken.input_paused = shard.input_paused();
        taken.delivery_latency_us = state.delivery_latency_us();
        taken.turn_duration_us = shard.turn_duration_us();
        taken.bridges = shard.bridge_stats();
        std::lock_guard lock(slots->mutex);
        if (taken.shard < slots->snapshots.size()) slots->snapshots[taken.shard] = taken;
      },
      timeout);
  std::lock_guard lock(slots->mutex);
  return slots->snapshots;
}

}  // namespace coremq::shard
