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
  uint64_t authentication_failures = 0;  // refused by the hook, connecting or re-authenticating
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
  // A copy past the hard bound on retained messages (twice the limit): an update another
  // shard admitted was not stored here (the one case where copies can differ).
  uint64_t retained_dropped_hard_limit = 0;
  // Tombstones forgotten before their lifetime because there were too many of them.
  uint64_t retained_tombstones_evicted = 0;
  // Answers (SUBACK, retained PUBACK/PUBREC) that waited for every peer's barrier ack.
  uint64_t answers_held_for_peers = 0;
  uint64_t sessions_refused_limit = 0;
  // CONNECTs refused because the keep-alive is over --max-keepalive (3.1/3.1.1), and MQTT 5
  // keep-alives cut down to it.
  uint64_t keep_alive_refused = 0;
  uint64_t keep_alive_capped = 0;
  // Topic names, filters and will topics refused for having more than --max-topic-levels levels.
  uint64_t topic_levels_refused = 0;
  // Connections closed because a packet for them (other than PUBLISH, which is dropped) was
  // over the client's Maximum Packet Size even without its optional properties.
  uint64_t packets_over_client_maximum = 0;
  // Acknowledgements of the wrong kind for a message in flight (a PUBREC for QoS 1 ...).
  uint64_t wrong_acknowledgements = 0;
};

}  // namespace coremq::broker
