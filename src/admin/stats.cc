// broker_stats (see stats.h).
#include "admin/stats.h"

#include <string_view>

namespace coremq::admin {

BrokerStats broker_stats(const std::vector<shard::ShardSnapshot>& snapshots) {
  BrokerStats stats;
  for (const shard::ShardSnapshot& snapshot : snapshots) {
    ShardStats shard;
    shard.shard = snapshot.shard;
    shard.answered = snapshot.answered;
    broker::for_each_counter(snapshot.counters, [&](std::string_view name, uint64_t value) {
      shard.values.emplace_back(std::string(name), value);
    });
    shard.values.emplace_back("connections", snapshot.connections);
    shard.values.emplace_back("sessions", snapshot.sessions);
    shard.values.emplace_back("sessions_online", snapshot.sessions_online);
    shard.values.emplace_back("sockets", snapshot.sockets);
    shard.values.emplace_back("subscriptions", snapshot.subscriptions);
    shard.values.emplace_back("retained", snapshot.retained);
    shard.values.emplace_back("inbound_ring_depth", snapshot.inbound_ring_depth);
    shard.values.emplace_back("input_paused", snapshot.input_paused ? 1 : 0);
    shard.values.emplace_back("delivery_latency_count", snapshot.delivery_latency_us.count());
    shard.values.emplace_back("delivery_latency_sum_us", snapshot.delivery_latency_us.sum);
    shard.values.emplace_back("loop_turns", snapshot.turn_duration_us.count());
    shard.values.emplace_back("loop_turn_duration_sum_us", snapshot.turn_duration_us.sum);
    if (stats.total.empty()) {
      stats.total = shard.values;
      for (auto& [name, value] : stats.total) value = 0;
    }
    for (size_t i = 0; i < shard.values.size(); ++i) {
      // The retained store is copied on every shard: its size is one copy's, not a sum.
      if (shard.values[i].first == "retained") {
        if (snapshot.shard == 0) stats.total[i].second = shard.values[i].second;
      } else {
        stats.total[i].second += shard.values[i].second;
      }
    }
    stats.shards.push_back(std::move(shard));
  }
  return stats;
}

}  // namespace coremq::admin
