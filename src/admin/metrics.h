// Prometheus text exposition (format 0.0.4) of every shard's counters, gauges and histograms,
// and the HTTP server's own counters: what GET /metrics answers. Each counter appears twice:
// the broker total as coremq_NAME (no labels beyond `reason`), and per shard as
// coremq_shard_NAME{shard="N"}, so that summing either never counts anything twice.
// docs/API.md lists the names. Pure: built from copies (shard::collect_shard_snapshots), on
// the admin thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "shard/shard_snapshot.h"

namespace coremq::admin {

// The HTTP listener's own counters (http_server.h), copied.
struct HttpCountersCopy {
  uint64_t requests = 0;
  uint64_t connections_open = 0;
  uint64_t connections_refused_limit = 0;
  uint64_t timeouts = 0;
  uint64_t bodies_too_large = 0;
  uint64_t authentication_failures = 0;
  uint64_t shard_timeouts = 0;  // counted by the API (api.h), not the server
};

std::string render_metrics(const std::vector<shard::ShardSnapshot>& shards, const HttpCountersCopy& http);

// How one ShardCounters field is exposed: Prometheus family name (without coremq_ and
// _total), its `reason` label (empty: none) and whether it is a gauge. Exposed for tests
// and the embedding API's names.
struct CounterName {
  std::string family;
  std::string reason;
  bool gauge = false;
};
CounterName prometheus_name(std::string_view counter);

}  // namespace coremq::admin
