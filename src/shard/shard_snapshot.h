// A copy of each shard's counters and gauges, taken on the shard's own thread through
// ShardAccess: what $SYS, /metrics and the admin API's stats read. Any thread but a shard's.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "base/log_histogram.h"
#include "broker/shard_counters.h"
#include "shard/bridge.h"
#include "shard/shard_access.h"

namespace coremq::shard {

struct ShardSnapshot {
  uint32_t shard = 0;
  // False when the shard did not answer in time (stopping, or its control ring full): the
  // other fields are zero then.
  bool answered = false;
  broker::ShardCounters counters;
  uint64_t connections = 0;    // known to the protocol side (attached or awaiting CONNECT)
  uint64_t sessions = 0;       // sessions this shard owns, online or not
  uint64_t subscriptions = 0;  // one per session and filter
  uint64_t retained = 0;       // live messages in this shard's retained copy
  // --persistence: message bodies this shard's persistent sessions hold in the store, and
  // their bytes (0 without a store).
  uint64_t stored_messages = 0;
  uint64_t stored_message_bytes = 0;
  // --persistence: this shard's batches not yet durable (handed to the committer and unanswered,
  // plus the open one if it has changes): grows while the disk refuses writes.
  uint64_t store_batches_waiting = 0;
  // --persistence: this shard's changes that reached RocksDB, that never needed to (a record
  // created and erased in one open batch: a message its persistent subscriber acknowledged
  // before the batch left), and that a later change of the same key in the batch replaced.
  uint64_t store_changes_written = 0;
  uint64_t store_changes_elided = 0;
  uint64_t store_changes_superseded = 0;
  uint64_t store_erases_coalesced = 0;  // erases of queue entries and bodies written in a range delete
  // --persistence: the committer's figures, store-wide (every shard reads the same ones; /metrics
  // shows them once): writes that failed (disk full, I/O error; each retried), batches written,
  // log fsyncs.
  uint64_t store_write_failures = 0;
  uint64_t store_batches_written = 0;
  uint64_t store_syncs = 0;
  uint64_t sessions_online = 0;       // of `sessions`, those with a connection attached
  uint64_t sockets = 0;               // the shard's open client sockets, closing ones included
  uint64_t inbound_ring_depth = 0;    // items waiting in the rings from every peer
  bool input_paused = false;          // socket input paused for cross-shard back-pressure
  base::LogHistogram delivery_latency_us;  // publish-to-deliver, per delivery (turn clock)
  base::LogHistogram turn_duration_us;     // loop turns' work, kernel wait left out
  std::vector<BridgeStats> bridges;  // the bridges this shard runs (state, queue, counters)
};

// One snapshot per shard, in shard order; waits at most `timeout` for all of them.
std::vector<ShardSnapshot> collect_shard_snapshots(ShardAccess& access, std::chrono::milliseconds timeout);

}  // namespace coremq::shard
