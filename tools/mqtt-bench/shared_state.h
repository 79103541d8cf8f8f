// SharedState: the few things the main thread and the workers share while a run is under way.
// The main thread drives the phase and publishes the measurement window; each worker writes
// only its own WorkerCounters (single writer: relaxed load+store, no read-modify-write) and the
// main thread sums them for the progress line and the phase decisions. Publishers' delivery
// counters are the one many-writer item (subscribers on any thread add to them, once per loop
// turn per publisher, not per message). Created by the main thread before the workers start;
// destroyed after they were joined.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/spsc_ring.h"
#include "bounds.h"
#include "histogram.h"

namespace coremq::bench {

enum class Phase : int {
  kConnecting,  // open connections, subscribe; nothing is published
  kPublishing,  // publishers send from publish_start_ns; measurement from measure_start_ns
  kDraining,    // publishing stopped; waiting for deliveries and acknowledgements
  kStopping,    // send DISCONNECT, close, leave the loop
};

// One worker's live counters, on their own cache lines so workers do not share lines.
struct alignas(base::kCacheLineBytes) WorkerCounters {
  std::atomic<uint64_t> connections_up{0};
  std::atomic<uint64_t> subscribed{0};         // subscribers whose SUBACK granted the subscription
  std::atomic<uint64_t> errors{0};             // connection-level failures (refused, closed, protocol)
  std::atomic<uint64_t> sent{0};               // PUBLISH packets encoded
  std::atomic<uint64_t> expected_deliveries{0};// sent x fan-out (`run` only)
  std::atomic<uint64_t> acknowledged{0};       // QoS 1 PUBACK / QoS 2 PUBCOMP received
  std::atomic<uint64_t> received{0};           // PUBLISH packets received by subscribers
  std::atomic<uint64_t> publishers_done{0};    // publishers that reached --count
  std::atomic<uint64_t> subscribers_done{0};   // `sub --count`: subscribers that received --count
  std::atomic<int64_t> last_send_ns{0};
  std::atomic<uint64_t> schedule_late{0};      // open loop: messages written behind schedule
  LiveHistogram latency;

  static void add(std::atomic<uint64_t>& counter, uint64_t amount) {
    counter.store(counter.load(std::memory_order_relaxed) + amount, std::memory_order_relaxed);
  }
};

struct SharedState {
  SharedState(uint32_t workers, uint32_t publishers)
      : counters(std::make_unique<WorkerCounters[]>(workers)),
        delivered(std::make_unique<std::atomic<uint64_t>[]>(publishers)),
        worker_count(workers) {}

  std::atomic<Phase> phase{Phase::kConnecting};
  // Written by the main thread before it stores kPublishing (release); read after (acquire).
  int64_t publish_start_ns = 0;
  int64_t measure_start_ns = 0;
  int64_t measure_end_ns = 0;  // INT64_MAX when the run is bounded by --count
  uint32_t run_id = 0;

  std::unique_ptr<WorkerCounters[]> counters;
  // Per publisher: deliveries of its messages to subscribers of this process (the `run` window).
  std::unique_ptr<std::atomic<uint64_t>[]> delivered;
  uint32_t worker_count;
  // Share group runs: one bit per (publisher, sequence < shared_capacity), set by whichever
  // member got the message first (fetch_or, any thread); a member that finds it set got a
  // message another member already had. Later sequences are only counted (untracked).
  std::unique_ptr<std::atomic<uint64_t>[]> shared_seen;
  uint64_t shared_capacity = 0;

  void track_shared(uint32_t publishers, uint64_t count) {
    shared_capacity = kSharedTrackedBitsMax / std::max<uint32_t>(publishers, 1);
    if (count > 0) shared_capacity = std::min(shared_capacity, count);
    shared_capacity = (shared_capacity + 63) / 64 * 64;
    shared_seen = std::make_unique<std::atomic<uint64_t>[]>(shared_capacity / 64 * publishers);
  }
};

}  // namespace coremq::bench
