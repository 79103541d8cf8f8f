// render_metrics and LogHistogram (src/admin/metrics.h, src/base/log_histogram.h).
#include <gtest/gtest.h>

#include <optional>
#include <set>
#include <sstream>

#include "admin/metrics.h"
#include "admin/stats.h"
#include "base/log_histogram.h"

namespace coremq::admin {
namespace {

std::vector<shard::ShardSnapshot> two_shards() {
  std::vector<shard::ShardSnapshot> shards(2);
  for (uint32_t i = 0; i < 2; ++i) {
    shards[i].shard = i;
    shards[i].answered = true;
    shards[i].counters.messages_received = 10 + i;
    shards[i].counters.qos0_dropped_slow_consumer = 3;
    shards[i].counters.connections_current = 2;
    shards[i].sessions = 5;
    shards[i].sessions_online = 2;
    shards[i].retained = 7;
  }
  shards[0].delivery_latency_us.observe(0);
  shards[0].delivery_latency_us.observe(3);
  shards[1].delivery_latency_us.observe(1000);
  return shards;
}

// The value of the sample whose line starts with `series` followed by a blank.
std::optional<std::string> value_of(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.starts_with(series + " ")) return line.substr(series.size() + 1);
  }
  return std::nullopt;
}

TEST(LogHistogramTest, BucketsByBitWidth) {
  base::LogHistogram histogram;
  histogram.observe(0);
  histogram.observe(1);
  histogram.observe(2);
  histogram.observe(3);
  histogram.observe(uint64_t{1} << 40);
  EXPECT_EQ(histogram.counts[0], 1u);
  EXPECT_EQ(histogram.counts[1], 1u);
  EXPECT_EQ(histogram.counts[2], 2u);
  EXPECT_EQ(histogram.counts[base::LogHistogram::kBuckets - 1], 1u);
  EXPECT_EQ(histogram.count(), 5u);
  EXPECT_EQ(base::LogHistogram::upper_bound(2), 3u);
}

TEST(MetricsTest, TotalsAndPerShardSeriesWithHelpAndType) {
  std::string text = render_metrics(two_shards(), HttpCountersCopy{});
  EXPECT_NE(text.find("# HELP coremq_messages_received_total "), std::string::npos);
  EXPECT_NE(text.find("# TYPE coremq_messages_received_total counter\n"), std::string::npos);
  EXPECT_EQ(value_of(text, "coremq_messages_received_total"), "21");
  EXPECT_EQ(value_of(text, R"(coremq_shard_messages_received_total{shard="1"})"), "11");
  EXPECT_EQ(value_of(text, R"(coremq_messages_dropped_total{reason="slow_consumer"})"), "6");
  EXPECT_EQ(value_of(text, R"(coremq_shard_messages_dropped_total{shard="0",reason="slow_consumer"})"), "3");
  EXPECT_NE(text.find("# TYPE coremq_connections gauge\n"), std::string::npos);
  EXPECT_EQ(value_of(text, "coremq_connections"), "4");
  EXPECT_EQ(value_of(text, "coremq_sessions_offline"), "6");
  // Every shard holds the whole retained store: the total is one copy.
  EXPECT_EQ(value_of(text, "coremq_retained_messages"), "7");
  EXPECT_EQ(value_of(text, "coremq_shards"), "2");
  // No family is declared twice, and every sample line belongs to a declared family.
  std::istringstream lines(text);
  std::string line;
  std::set<std::string> declared;
  while (std::getline(lines, line)) {
    if (line.starts_with("# TYPE ")) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(declared.insert(name).second) << name;
    } else if (!line.starts_with("#")) {
      std::string name = line.substr(0, line.find_first_of("{ "));
      for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
        if (!declared.contains(name) && name.ends_with(suffix)) name.resize(name.size() - suffix.size());
      }
      EXPECT_TRUE(declared.contains(name)) << line;
    }
  }
}

TEST(MetricsTest, HistogramsAreCumulativeInSeconds) {
  std::string text = render_metrics(two_shards(), HttpCountersCopy{});
  EXPECT_NE(text.find("# TYPE coremq_delivery_latency_seconds histogram\n"), std::string::npos);
  EXPECT_EQ(value_of(text, R"(coremq_delivery_latency_seconds_bucket{le="0"})"), "1");
  EXPECT_EQ(value_of(text, R"(coremq_delivery_latency_seconds_bucket{le="3e-06"})"), "2");
  EXPECT_EQ(value_of(text, R"(coremq_delivery_latency_seconds_bucket{le="+Inf"})"), "3");
  EXPECT_EQ(value_of(text, "coremq_delivery_latency_seconds_count"), "3");
  EXPECT_EQ(value_of(text, "coremq_delivery_latency_seconds_sum"), "0.001003");
  EXPECT_EQ(value_of(text, R"(coremq_shard_delivery_latency_seconds_count{shard="1"})"), "1");
}

TEST(MetricsTest, HttpCountersAndNames) {
  HttpCountersCopy http;
  http.connections_refused_limit = 4;
  http.bodies_too_large = 2;
  http.shard_timeouts = 5;
  std::string text = render_metrics(two_shards(), http);
  EXPECT_EQ(value_of(text, R"(coremq_http_connections_refused_total{reason="max_connections"})"), "4");
  EXPECT_EQ(value_of(text, "coremq_http_bodies_too_large_total"), "2");
  EXPECT_EQ(value_of(text, "coremq_http_shard_timeouts_total"), "5");
  EXPECT_EQ(prometheus_name("cross_shard_queue_full").family, "cross_shard_pauses");
  EXPECT_EQ(prometheus_name("messages_dropped_queue_full").reason, "queue_full");
  EXPECT_TRUE(prometheus_name("connections_current").gauge);
}

TEST(MetricsTest, StoreFiguresAreShownOnceAndWaitingBatchesPerShard) {
  std::vector<shard::ShardSnapshot> shards = two_shards();
  for (shard::ShardSnapshot& snapshot : shards) {
    // The committer's figures are store-wide: every shard reads the same ones.
    snapshot.store_write_failures = 6;
    snapshot.store_batches_written = 40;
    snapshot.store_syncs = 3;
  }
  shards[0].answered = false;  // a shard that did not answer has zeros; the next one is read
  shards[0].store_write_failures = 0;
  shards[1].store_batches_waiting = 2;
  std::string text = render_metrics(shards, HttpCountersCopy{});
  EXPECT_NE(text.find("# TYPE coremq_store_write_failures_total counter\n"), std::string::npos);
  EXPECT_EQ(value_of(text, "coremq_store_write_failures_total"), "6");
  EXPECT_EQ(value_of(text, "coremq_store_batches_written_total"), "40");
  EXPECT_EQ(value_of(text, "coremq_store_syncs_total"), "3");
  EXPECT_EQ(value_of(text, "coremq_store_batches_waiting"), "2");
  EXPECT_EQ(value_of(text, R"(coremq_shard_store_batches_waiting{shard="1"})"), "2");
  // Without a store every figure is 0.
  std::string plain = render_metrics(two_shards(), HttpCountersCopy{});
  EXPECT_EQ(value_of(plain, "coremq_store_write_failures_total"), "0");
}

TEST(MetricsTest, BrokerStatsSumsShardsButNotRetainedCopies) {
  BrokerStats stats = broker_stats(two_shards());
  ASSERT_EQ(stats.shards.size(), 2u);
  auto total = [&](std::string_view name) {
    for (const auto& [key, value] : stats.total) {
      if (key == name) return value;
    }
    return uint64_t{999999};
  };
  EXPECT_EQ(total("messages_received"), 21u);
  EXPECT_EQ(total("retained"), 7u);
  EXPECT_EQ(total("sessions_online"), 4u);
  EXPECT_EQ(total("delivery_latency_count"), 3u);
}

}  // namespace
}  // namespace coremq::admin
