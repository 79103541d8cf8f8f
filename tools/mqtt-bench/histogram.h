// Latency histograms, log-linear: values below 64 ns have a bucket each; above, every power of
// two is split into 64 equal buckets, so a bucket is at most 1/64 (1.6%) of its value wide and
// the reported midpoint is within 0.8% of any value in it. Values of 2^42 ns (73 minutes) and
// more share the last bucket; the exact maximum is kept aside.
//
// Histogram is plain and owned by one thread (a worker records, the main thread merges after
// joining). LiveHistogram is written by one worker thread and read by the main thread for the
// once-a-second progress line, through relaxed atomics (single writer: load+store, no RMW).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace coremq::bench {

inline constexpr int kHistogramSubBucketBits = 6;
inline constexpr uint64_t kHistogramSubBuckets = uint64_t{1} << kHistogramSubBucketBits;
inline constexpr int kHistogramExponentMax = 41;  // highest power of two with its own buckets
inline constexpr size_t kHistogramBuckets =
    kHistogramSubBuckets + (kHistogramExponentMax - kHistogramSubBucketBits + 1) * kHistogramSubBuckets;

size_t histogram_bucket(uint64_t value);
// The midpoint of a bucket: what percentiles report.
uint64_t histogram_bucket_value(size_t bucket);
// The value at percentile `percent` (0..100] of `counts` (kHistogramBuckets entries); 0 if empty.
uint64_t histogram_percentile(const uint64_t* counts, uint64_t total, double percent);

class Histogram {
 public:
  Histogram() : counts_(kHistogramBuckets, 0) {}

  void record(uint64_t value) {
    counts_[histogram_bucket(value)]++;
    total_++;
    if (value > max_) max_ = value;
  }
  void merge(const Histogram& other);

  uint64_t count() const { return total_; }
  uint64_t max() const { return max_; }
  uint64_t percentile(double percent) const { return histogram_percentile(counts_.data(), total_, percent); }

 private:
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  uint64_t max_ = 0;
};

class LiveHistogram {
 public:
  LiveHistogram() : counts_(std::make_unique<std::atomic<uint64_t>[]>(kHistogramBuckets)) {}

  // Writer thread only.
  void record(uint64_t value) {
    std::atomic<uint64_t>& slot = counts_[histogram_bucket(value)];
    slot.store(slot.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  // Any thread: adds the current counts into `sums` (kHistogramBuckets entries).
  void add_to(std::vector<uint64_t>& sums) const;

 private:
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
};

}  // namespace coremq::bench
