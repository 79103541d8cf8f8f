// A shard's side of its bridges (src/shard/bridge.h): making them at set-up, routing their local
// connection's output and close to them, and their counters. Shard thread only.
#include "base/log.h"
#include "shard/shard.h"

namespace coremq::shard {

void Shard::start_bridges() {
  for (BridgeSetup& setup : bridge_setups_) {
    // --persistence: the bridge's queue lives in its persistent local session (bridge.h).
    if (store_ != nullptr) setup.durable = true;
    LOG_INFO("bridge %s: runs on this shard (local client id '%s', remote client id '%s')",
             setup.options.name, setup.local_clientid, setup.remote_clientid);
    bridges_.push_back(std::make_unique<Bridge>(std::move(setup), ring_, *state_, options_.max_packet_size));
    bridges_.back()->start(now_ms_);
  }
  bridge_setups_.clear();
}

Bridge* Shard::bridge_of(const broker::Connection* connection) const {
  // A handful of bridges at most per shard: a scan is cheaper than a map.
  for (const auto& bridge : bridges_) {
    if (bridge->local_connection() == connection) return bridge.get();
  }
  return nullptr;
}

std::vector<BridgeStats> Shard::bridge_stats() const {
  std::vector<BridgeStats> stats;
  for (const auto& bridge : bridges_) stats.push_back(bridge->stats());
  return stats;
}

}  // namespace coremq::shard
