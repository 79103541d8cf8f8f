// Broker::stats(): every shard's counters and gauges as (name, value) pairs, and their sums:
// the numbers /metrics exposes, for a program that embeds the broker. Names are the stats
// log line's (README.md) plus the gauges listed in docs/API.md ("connections", "sessions",
// "sessions_online", "subscriptions", "retained", "inbound_ring_depth", "input_paused",
// latency and turn-duration counts and sums in microseconds). A plain copy: any thread may
// keep it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace coremq {

using StatValues = std::vector<std::pair<std::string, uint64_t>>;

struct ShardStats {
  uint32_t shard = 0;
  // False when the shard did not answer in time (stopping, or its control queue full): its
  // values are zero then.
  bool answered = false;
  StatValues values;
};

struct BrokerStats {
  std::vector<ShardStats> shards;
  // Each name's sum over the shards ("retained" is shard 0's copy: every shard holds one).
  StatValues total;
};

}  // namespace coremq
