// A fixed log2-bucket histogram of non-negative integers (microseconds here): bucket i counts
// values below 2^i (and at least 2^(i-1)), the last bucket everything above. Observing is a
// bit_width and two additions: no allocation, no lock, no atomic. Owned and written by one
// thread (a shard); other threads read a copy taken on that thread (shard/shard_snapshot.h).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace coremq::base {

struct LogHistogram {
  // 2^25 us is about 33 s: anything slower than that lands in the overflow bucket.
  static constexpr uint32_t kBuckets = 27;
  std::array<uint64_t, kBuckets> counts{};
  uint64_t sum = 0;

  void observe(uint64_t value) {
    uint32_t bucket = std::min<uint32_t>(static_cast<uint32_t>(std::bit_width(value)), kBuckets - 1);
    ++counts[bucket];
    sum += value;
  }
  // Upper bound (inclusive) of bucket i in the observed unit; the last one is unbounded.
  static uint64_t upper_bound(uint32_t bucket) { return (uint64_t{1} << bucket) - 1; }
  uint64_t count() const {
    uint64_t total = 0;
    for (uint64_t value : counts) total += value;
    return total;
  }
  void add(const LogHistogram& other) {
    for (uint32_t i = 0; i < kBuckets; ++i) counts[i] += other.counts[i];
    sum += other.sum;
  }
};

}  // namespace coremq::base
