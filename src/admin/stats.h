// Shard snapshots as the embedding API's BrokerStats (include/coremq/stats.h): the one place
// that names every value, shared by Broker::stats() and GET /api/v1/stats. Pure; any thread
// but a shard's (the snapshots are copies).
#pragma once

#include <vector>

#include "coremq/stats.h"
#include "shard/shard_snapshot.h"

namespace coremq::admin {

BrokerStats broker_stats(const std::vector<shard::ShardSnapshot>& snapshots);

}  // namespace coremq::admin
