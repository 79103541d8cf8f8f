// BridgeTopics: the topic lines of mosquitto.conf(5) (pattern, direction, prefixes) as filters
// and renames; and config::parse_bridge_spec, the --bridge form of a bridge section.
#include "shard/bridge_topics.h"

#include <gtest/gtest.h>

#include "config/bridge_spec.h"

namespace coremq::shard {
namespace {

BridgeTopic line(std::string pattern, BridgeTopic::Direction direction, uint8_t qos, std::string local = "",
                 std::string remote = "") {
  return BridgeTopic{std::move(pattern), direction, qos, std::move(local), std::move(remote)};
}

TEST(BridgeTopicsTest, PrefixesAreSwappedBothWays) {
  BridgeTopics topics({line("sensors/#", BridgeTopic::Direction::kBoth, 1, "local/", "remote/")});
  ASSERT_EQ(topics.local_filters().size(), 1u);
  EXPECT_EQ(topics.local_filters()[0].filter, "local/sensors/#");
  EXPECT_EQ(topics.local_filters()[0].qos, 1);
  EXPECT_EQ(topics.remote_filters()[0].filter, "remote/sensors/#");
  EXPECT_EQ(topics.to_remote("local/sensors/a/b"), "remote/sensors/a/b");
  EXPECT_EQ(topics.to_local("remote/sensors/a"), "local/sensors/a");
  EXPECT_EQ(topics.to_remote("local/other"), std::nullopt);
  EXPECT_EQ(topics.to_remote("sensors/a"), std::nullopt);  // the local prefix is required
}

TEST(BridgeTopicsTest, DirectionDecidesWhichSideSubscribes) {
  BridgeTopics topics(
      {line("out/#", BridgeTopic::Direction::kOut, 0), line("in/#", BridgeTopic::Direction::kIn, 2)});
  ASSERT_EQ(topics.local_filters().size(), 1u);
  EXPECT_EQ(topics.local_filters()[0].filter, "out/#");
  ASSERT_EQ(topics.remote_filters().size(), 1u);
  EXPECT_EQ(topics.remote_filters()[0].filter, "in/#");
  EXPECT_EQ(topics.to_remote("in/x"), std::nullopt);  // an in line never sends out
  EXPECT_EQ(topics.to_local("out/x"), std::nullopt);
  EXPECT_EQ(topics.to_local("in/x"), "in/x");
}

TEST(BridgeTopicsTest, AnEmptyPatternMakesEachPrefixAWholeTopic) {
  BridgeTopics topics({line("", BridgeTopic::Direction::kBoth, 0, "here/status", "there/status")});
  EXPECT_EQ(topics.local_filters()[0].filter, "here/status");
  EXPECT_EQ(topics.to_remote("here/status"), "there/status");
  EXPECT_EQ(topics.to_local("there/status"), "here/status");
  EXPECT_EQ(topics.to_remote("here/status/x"), std::nullopt);
}

TEST(BridgeTopicsTest, TheFirstMatchingLineWins) {
  BridgeTopics topics({line("a/+", BridgeTopic::Direction::kOut, 0, "", "one/"),
                       line("a/#", BridgeTopic::Direction::kOut, 0, "", "two/")});
  EXPECT_EQ(topics.to_remote("a/b"), "one/a/b");
  EXPECT_EQ(topics.to_remote("a/b/c"), "two/a/b/c");
}

TEST(BridgeSpecTest, ACompactSpecFillsTheOptions) {
  BridgeOptions bridge;
  std::string error;
  ASSERT_TRUE(config::parse_bridge_spec(
      "edge,address=broker.example:8883 [::1]:1884 10.0.0.2,topic=s/# both 2 l/ r/,topic=\"\" in 0 a/b c/d,"
      "bridge_protocol_version=mqttv50,try_private=false,cleansession=true,restart_timeout=3 60,"
      "start_type=lazy,threshold=5,bridge_max_queued_messages=7,bridge_max_inflight_qos2=3",
      &bridge, &error))
      << error;
  EXPECT_EQ(bridge.name, "edge");
  ASSERT_EQ(bridge.addresses.size(), 3u);
  EXPECT_EQ(bridge.addresses[0].host, "broker.example");
  EXPECT_EQ(bridge.addresses[0].port, 8883);
  EXPECT_EQ(bridge.addresses[1].host, "::1");
  EXPECT_EQ(bridge.addresses[1].port, 1884);
  EXPECT_EQ(bridge.addresses[2].port, 1883);
  ASSERT_EQ(bridge.topics.size(), 2u);
  EXPECT_EQ(bridge.topics[0].direction, BridgeTopic::Direction::kBoth);
  EXPECT_EQ(bridge.topics[0].qos, 2);
  EXPECT_EQ(bridge.topics[0].local_prefix, "l/");
  EXPECT_EQ(bridge.topics[1].pattern, "");
  EXPECT_EQ(bridge.topics[1].remote_prefix, "c/d");
  EXPECT_EQ(bridge.protocol_version, 5);
  EXPECT_FALSE(bridge.try_private);
  EXPECT_TRUE(bridge.clean_session);
  EXPECT_EQ(bridge.restart_timeout_seconds, 3u);
  EXPECT_EQ(bridge.restart_timeout_cap_seconds, 60u);
  EXPECT_EQ(bridge.start_type, BridgeOptions::StartType::kLazy);
  EXPECT_EQ(bridge.threshold, 5u);
  EXPECT_EQ(bridge.max_queued_messages, 7u);
  EXPECT_EQ(bridge.max_inflight_qos2, 3u);
  EXPECT_EQ(bridge.max_inflight, 1000u) << "the default";
}

TEST(BridgeSpecTest, BadSpecsAreRefusedWithAReason) {
  for (const char* spec :
       {"", "x", "x,address=h:0,topic=#", "x,address=h,topic=# sideways", "x,address=h,topic=# out 3",
        "x,address=h,topic=a/# out 0 pre+/ r/", "x,address=h,topic=\"\" out 0 a/",
        "x,address=h,topic=#,keepalive_interval=1", "x,address=h,topic=#,bridge_tls_version=tlsv1.1",
        "x,address=h,topic=#,bridge_certfile=/c.pem", "x,address=h,topic=#,nonsense=1",
        "x,address=h,topic=#,restart_timeout=10 5", "x,address=h,topic=#,bridge_max_inflight_qos2=0"}) {
    BridgeOptions bridge;
    std::string error;
    EXPECT_FALSE(config::parse_bridge_spec(spec, &bridge, &error)) << spec;
    EXPECT_FALSE(error.empty()) << spec;
  }
}

}  // namespace
}  // namespace coremq::shard
