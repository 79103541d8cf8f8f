// What the publish path pays per delivery for the publish-to-deliver latency histogram
// (base/log_histogram.h, observed in ShardState::send_publish): a subtraction, a bit_width and
// two additions into the shard's own array. "Observe" feeds a spread of latencies (so the
// bucket index varies, as in a broker); "Baseline" is the same loop without the histogram.
//
// Expected magnitude: about 1 ns per observation on any x86-64 of the last decade (the array
// is 27 words, always in L1), against hundreds of ns of broker CPU per delivered message.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "base/log_histogram.h"

namespace {

std::vector<int64_t> ingress_times() {
  std::vector<int64_t> times(4096);
  uint64_t state = 88172645463325252ull;
  for (int64_t& time : times) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    time = 1'000'000 - static_cast<int64_t>(state % 20'000);  // 0..20 ms before "now"
  }
  return times;
}

void BM_HistogramObserve(benchmark::State& state) {
  std::vector<int64_t> times = ingress_times();
  coremq::base::LogHistogram histogram;
  const int64_t now_us = 1'000'000;
  size_t index = 0;
  for (auto _ : state) {
    int64_t latency = now_us - times[index++ & 4095];
    histogram.observe(static_cast<uint64_t>(latency < 0 ? 0 : latency));
  }
  benchmark::DoNotOptimize(histogram);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramObserve);

void BM_HistogramBaseline(benchmark::State& state) {
  std::vector<int64_t> times = ingress_times();
  const int64_t now_us = 1'000'000;
  size_t index = 0;
  int64_t sink = 0;
  for (auto _ : state) {
    int64_t latency = now_us - times[index++ & 4095];
    benchmark::DoNotOptimize(sink += latency);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramBaseline);

}  // namespace
