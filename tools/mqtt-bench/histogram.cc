// Log-linear bucket arithmetic and percentiles; see histogram.h.
#include "histogram.h"

#include <bit>
#include <cmath>

#include "base/assert.h"

namespace coremq::bench {

size_t histogram_bucket(uint64_t value) {
  if (value < kHistogramSubBuckets) return static_cast<size_t>(value);
  int exponent = 63 - std::countl_zero(value);  // >= kHistogramSubBucketBits
  if (exponent > kHistogramExponentMax) return kHistogramBuckets - 1;
  int shift = exponent - kHistogramSubBucketBits;
  uint64_t sub_bucket = (value >> shift) - kHistogramSubBuckets;
  size_t bucket = kHistogramSubBuckets + static_cast<size_t>(shift) * kHistogramSubBuckets + sub_bucket;
  COREMQ_ASSERT(bucket < kHistogramBuckets);
  return bucket;
}

uint64_t histogram_bucket_value(size_t bucket) {
  COREMQ_ASSERT(bucket < kHistogramBuckets);
  if (bucket < kHistogramSubBuckets) return bucket;
  size_t shift = (bucket - kHistogramSubBuckets) / kHistogramSubBuckets;
  uint64_t sub_bucket = (bucket - kHistogramSubBuckets) % kHistogramSubBuckets;
  uint64_t low = (kHistogramSubBuckets + sub_bucket) << shift;
  uint64_t width = uint64_t{1} << shift;
  return low + width / 2;
}

uint64_t histogram_percentile(const uint64_t* counts, uint64_t total, double percent) {
  if (total == 0) return 0;
  COREMQ_ASSERT(percent > 0 && percent <= 100);
  uint64_t rank = static_cast<uint64_t>(std::ceil(static_cast<double>(total) * percent / 100.0));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (size_t bucket = 0; bucket < kHistogramBuckets; ++bucket) {
    seen += counts[bucket];
    if (seen >= rank) return histogram_bucket_value(bucket);
  }
  return histogram_bucket_value(kHistogramBuckets - 1);
}

void Histogram::merge(const Histogram& other) {
  for (size_t bucket = 0; bucket < kHistogramBuckets; ++bucket) counts_[bucket] += other.counts_[bucket];
  total_ += other.total_;
  if (other.max_ > max_) max_ = other.max_;
}

void LiveHistogram::add_to(std::vector<uint64_t>& sums) const {
  COREMQ_ASSERT(sums.size() == kHistogramBuckets);
  for (size_t bucket = 0; bucket < kHistogramBuckets; ++bucket) {
    sums[bucket] += counts_[bucket].load(std::memory_order_relaxed);
  }
}

}  // namespace coremq::bench
