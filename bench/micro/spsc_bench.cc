// SpscRing throughput between two threads, the path every cross-shard message takes.
//
// The benchmark thread produces and a second thread consumes; each iteration moves 64k
// uint64_t items through a 1024-slot ring and waits until the consumer has them all, so the
// figure is end-to-end items per second. "Single" uses try_push/try_pop, one index publish
// per item; "Batched" stages `batch` items and uses try_push_batch/drain, one publish per
// batch, which is how shards flush their outboxes once per loop turn.
//
// Expected magnitude on two cores of one socket: single ~50-300 M items/s (the cached
// indices spare most items a cache-line transfer, but every publish is one), batched with
// 32-512 items ~0.5-1.5 G items/s (the cost is the copy, not the coherence traffic); batches
// of 8 sit in between. A shared or oversubscribed VM shows several-fold run-to-run variance,
// so compare with --benchmark_repetitions.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "base/spsc_ring.h"

namespace coremq::base {
namespace {

constexpr size_t kRingCapacity = 1024;
constexpr uint64_t kItemsPerIteration = 64 * 1024;

// Pops until told to stop, publishing its running count for the producer to wait on.
class Consumer {
 public:
  Consumer(SpscRing<uint64_t>& ring, size_t batch) : ring_(ring), batch_(batch), thread_([this] { run(); }) {}
  ~Consumer() {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
  }
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  void wait_for(uint64_t count) const {
    while (consumed_.load(std::memory_order_acquire) < count) {
    }
  }
  uint64_t checksum() const { return checksum_; }

 private:
  void run() {
    uint64_t consumed = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      size_t taken;
      if (batch_ == 1) {
        uint64_t value;
        taken = ring_.try_pop(value) ? 1 : 0;
        if (taken == 1) checksum_ += value;
      } else {
        taken = ring_.drain([this](uint64_t&& value) { checksum_ += value; }, batch_);
      }
      if (taken > 0) {
        consumed += taken;
        consumed_.store(consumed, std::memory_order_release);
      }
    }
  }

  SpscRing<uint64_t>& ring_;
  const size_t batch_;
  uint64_t checksum_ = 0;  // read after join, keeps the loads from being optimised out
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> consumed_{0};
  std::thread thread_;  // last: starts after every other member is built
};

void BM_SpscSingle(benchmark::State& state) {
  SpscRing<uint64_t> ring(kRingCapacity);
  uint64_t produced = 0;
  {
    Consumer consumer(ring, 1);
    for (auto _ : state) {
      for (uint64_t i = 0; i < kItemsPerIteration; i++) {
        uint64_t value = produced;
        while (!ring.try_push(std::move(value))) {
        }
        produced++;
      }
      consumer.wait_for(produced);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(produced));
}
BENCHMARK(BM_SpscSingle)->UseRealTime();

void BM_SpscBatched(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  SpscRing<uint64_t> ring(kRingCapacity);
  std::vector<uint64_t> staged(batch);
  uint64_t produced = 0;
  {
    Consumer consumer(ring, batch);
    for (auto _ : state) {
      for (uint64_t sent = 0; sent < kItemsPerIteration;) {
        for (size_t i = 0; i < batch; i++) staged[i] = produced + i;
        size_t pushed = 0;
        while (pushed < batch) pushed += ring.try_push_batch(staged.begin() + static_cast<ptrdiff_t>(pushed), staged.end());
        produced += batch;
        sent += batch;
      }
      consumer.wait_for(produced);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(produced));
}
BENCHMARK(BM_SpscBatched)->ArgName("batch")->Arg(8)->Arg(32)->Arg(128)->Arg(512)->UseRealTime();

}  // namespace
}  // namespace coremq::base
