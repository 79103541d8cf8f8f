// SysTree and sum_shard_snapshots: Mosquitto's $SYS values, load averages and change detection,
// without a broker (the thread and the real topics are tested by test_30_sys.py).
#include "shard/sys_topics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "absl/strings/str_format.h"

namespace coremq::shard {
namespace {

std::map<std::string, std::string> as_map(const std::vector<SysTree::Publication>& publications) {
  std::map<std::string, std::string> out;
  for (const auto& [topic, payload] : publications) {
    EXPECT_TRUE(out.emplace(topic, payload).second) << "published twice in one update: " << topic;
  }
  return out;
}

TEST(SysTreeTest, FirstUpdateSendsEverythingThenOnlyWhatChanged) {
  SysTree tree("coremq 9.9");
  SysTotals totals;
  totals.connections = 3;
  totals.sessions = 5;
  auto first = as_map(tree.update(totals, 0.2));
  EXPECT_EQ(first["$SYS/broker/version"], "coremq 9.9");
  EXPECT_EQ(first["$SYS/broker/uptime"], "0 seconds");
  EXPECT_EQ(first["$SYS/broker/clients/connected"], "3");
  EXPECT_EQ(first["$SYS/broker/clients/total"], "5");
  EXPECT_EQ(first["$SYS/broker/clients/disconnected"], "2");
  EXPECT_EQ(first["$SYS/broker/clients/maximum"], "5");
  EXPECT_EQ(first["$SYS/broker/retained messages/count"], "0");
  EXPECT_EQ(first["$SYS/broker/load/bytes/sent/15min"], "0.00");
  // 16 values, 9 loads x 3 windows, version and uptime.
  EXPECT_EQ(first.size(), 16u + 27u + 2u);

  // Nothing moved: only the uptime goes out.
  auto second = as_map(tree.update(totals, 10.2));
  EXPECT_EQ(second.size(), 1u);
  EXPECT_EQ(second["$SYS/broker/uptime"], "10 seconds");

  totals.connections = 1;
  totals.sessions = 2;
  totals.retained = 7;
  auto third = as_map(tree.update(totals, 20.2));
  EXPECT_EQ(third["$SYS/broker/clients/connected"], "1");
  EXPECT_EQ(third["$SYS/broker/clients/total"], "2");
  EXPECT_EQ(third["$SYS/broker/clients/disconnected"], "1");
  EXPECT_EQ(third["$SYS/broker/retained messages/count"], "7");
  // The store holds the retained messages (and, with --persistence, queued bodies).
  EXPECT_EQ(third["$SYS/broker/store/messages/count"], "7");
  // The maximum never goes down.
  EXPECT_EQ(third.count("$SYS/broker/clients/maximum"), 0u);
  EXPECT_EQ(third.count("$SYS/broker/version"), 0u);

  tree.forget_all();
  auto again = as_map(tree.update(totals, 30.2));
  EXPECT_EQ(again.size(), 16u + 27u + 2u);
  EXPECT_EQ(again["$SYS/broker/clients/maximum"], "5");
}

TEST(SysTreeTest, LoadIsMosquittosExponentialMovingAverage) {
  // 60 messages in 60 s into a 1-minute average starting at 0: 60 * (1 - e^-1).
  EXPECT_NEAR(SysTree::next_load(0, 60, 60, 60), 60 * (1 - std::exp(-1.0)), 1e-9);
  // A steady rate converges on it (per minute): 10 messages every 10 s is 60/min.
  double load = 0;
  for (int i = 0; i < 1000; ++i) load = SysTree::next_load(load, 10, 10, 300);
  EXPECT_NEAR(load, 60, 0.01);
  // Nothing happening decays it by e^(-interval/window).
  EXPECT_NEAR(SysTree::next_load(100, 0, 60, 900), 100 * std::exp(-60.0 / 900), 1e-9);

  SysTree tree("v");
  SysTotals totals;
  tree.update(totals, 1);
  totals.publish_received = 120;
  auto next = as_map(tree.update(totals, 61));
  EXPECT_EQ(next["$SYS/broker/load/publish/received/1min"],
            absl::StrFormat("%.2f", SysTree::next_load(0, 120, 60, 60)));
  EXPECT_EQ(next["$SYS/broker/publish/messages/received"], "120");
  // Loads that did not move by 0.01 are not sent again.
  EXPECT_EQ(next.count("$SYS/broker/load/bytes/sent/1min"), 0u);
}

TEST(SysTreeTest, SumLeavesOutUnansweredShardsAndThePublishersOwnTraffic) {
  std::vector<ShardSnapshot> snapshots(3);
  for (uint32_t i = 0; i < 3; ++i) {
    snapshots[i].shard = i;
    snapshots[i].answered = true;
    snapshots[i].connections = 2;
    snapshots[i].sessions = 3;
    snapshots[i].retained = 4;  // every shard has the full copy
    snapshots[i].counters.messages_received = 10;
    snapshots[i].counters.packets_received = 20;
    snapshots[i].counters.connects_received = 2;
    snapshots[i].counters.bytes_sent = 100;
    snapshots[i].counters.qos0_dropped_offline = 1;
    snapshots[i].counters.messages_dropped_queue_full = 1;
  }
  snapshots[2].answered = false;
  SysOwnTraffic own{.sessions = 1, .connects = 1, .publishes = 5};
  SysTotals totals = sum_shard_snapshots(snapshots, own);
  EXPECT_EQ(totals.connections, 3u);
  EXPECT_EQ(totals.sessions, 5u);
  EXPECT_EQ(totals.retained, 4u);
  EXPECT_EQ(totals.publish_received, 15u);
  EXPECT_EQ(totals.packets_received, 34u);
  EXPECT_EQ(totals.connects_received, 3u);
  EXPECT_EQ(totals.bytes_sent, 200u);
  EXPECT_EQ(totals.publish_dropped, 4u);
  // Never below zero, even when the publisher's last publishes have not been counted yet.
  SysTotals small = sum_shard_snapshots({}, SysOwnTraffic{.sessions = 1, .connects = 1, .publishes = 50});
  EXPECT_EQ(small.sessions, 0u);
  EXPECT_EQ(small.publish_received, 0u);
}

}  // namespace
}  // namespace coremq::shard
