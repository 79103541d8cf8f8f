// Per-shard counters: plain integers written only by their shard; read by others
// (for $SYS and metrics later) as relaxed snapshots, where a stale value is fine.
#pragma once

#include <cstdint>

namespace coremq::broker {

struct ShardCounters {
  uint64_t connections_accepted = 0;
  uint64_t connections_refused_limit = 0;
  uint64_t connections_current = 0;
  uint64_t protocol_errors = 0;
  uint64_t messages_received = 0;
  uint64_t messages_delivered = 0;
  uint64_t messages_forwarded_to_shards = 0;
  uint64_t qos0_dropped_slow_consumer = 0;
  uint64_t messages_dropped_queue_full = 0;
  uint64_t qos0_dropped_offline = 0;
  uint64_t slow_consumers_disconnected = 0;
  uint64_t cross_shard_queue_full = 0;
  uint64_t keep_alive_expiries = 0;
  uint64_t connect_timeouts = 0;
  uint64_t retained_dropped_limit = 0;
  uint64_t sessions_refused_limit = 0;
  // Closes that hit --close-linger (socket reset) or --close-linger-bytes (closed early).
  uint64_t closes_forced_deadline = 0;
  uint64_t closes_linger_bytes_exceeded = 0;
  // Wake-ups of a peer shard whose MSG_RING failed and went through its eventfd instead.
  uint64_t wakes_by_eventfd_fallback = 0;
};

}  // namespace coremq::broker
