// Unit tests of mqtt-bench's open-loop schedule (Client::start_schedule, publish stamping with
// the scheduled time, due_unsent), its payload size draw, and the --source-address parser
// (tools/mqtt-bench/address.cc). No sockets: the client writes into its staging buffer.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "absl/strings/str_format.h"
#include "mqtt/decoder.h"
// mqtt-bench is a program, not a library: its headers are reached from here by path.
#include "../../../tools/mqtt-bench/address.h"
#include "../../../tools/mqtt-bench/client.h"
#include "../../../tools/mqtt-bench/clock.h"
#include "../../../tools/mqtt-bench/payload.h"
#include "../../../tools/mqtt-bench/shared_state.h"

namespace coremq::bench {
namespace {

std::string address_text(const SourceAddresses& sources, uint32_t k) {
  sockaddr_storage address{};
  sources.address(k, &address);
  char text[INET6_ADDRSTRLEN] = {};
  const void* raw = address.ss_family == AF_INET
                        ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(&address)->sin_addr)
                        : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(&address)->sin6_addr);
  inet_ntop(address.ss_family, raw, text, sizeof(text));
  return text;
}

TEST(BenchSourceAddress, RangesAndCidrs) {
  SourceAddresses sources;
  std::string error;
  ASSERT_TRUE(parse_source_addresses("127.0.0.1-127.0.1.10", &sources, &error)) << error;
  EXPECT_EQ(sources.count, 266u);
  EXPECT_EQ(address_text(sources, 0), "127.0.0.1");
  EXPECT_EQ(address_text(sources, 255), "127.0.1.0");
  EXPECT_EQ(address_text(sources, 265), "127.0.1.10");
  ASSERT_TRUE(parse_source_addresses("127.0.0.0/24", &sources, &error)) << error;
  EXPECT_EQ(sources.count, 254u);  // no network, no broadcast address
  EXPECT_EQ(address_text(sources, 0), "127.0.0.1");
  EXPECT_EQ(address_text(sources, 253), "127.0.0.254");
  ASSERT_TRUE(parse_source_addresses("10.1.2.3/32", &sources, &error)) << error;
  EXPECT_EQ(sources.count, 1u);
  ASSERT_TRUE(parse_source_addresses("fd00::1-fd00::1:2", &sources, &error)) << error;
  EXPECT_EQ(sources.family, AF_INET6);
  EXPECT_EQ(sources.count, 0x10002u);
  EXPECT_EQ(address_text(sources, 0xFFFF), "fd00::1:0");
  ASSERT_TRUE(parse_source_addresses("fd00::/120", &sources, &error)) << error;
  EXPECT_EQ(sources.count, 256u);
  for (const char* bad : {"127.0.0.5-127.0.0.1", "127.0.0.1-::1", "fd00::1-fd01::1", "127.0.0.0/33", "::/64",
                          "127.0.0.0/", "1.2.3", ""}) {
    EXPECT_FALSE(parse_source_addresses(bad, &sources, &error)) << bad;
  }
}

class BenchSchedule : public ::testing::Test {
 protected:
  void make(Arrival arrival, uint32_t publishers, double period_ns) {
    options_.arrival = arrival;
    options_.period_ns = period_ns;
    options_.publishers = options_.publishers_total = publishers;
    options_.window = 0;
    plan_.publishers = publishers;
    for (uint32_t i = 0; i < publishers; ++i) {
      specs_[i].role = Role::kPublisher;
      specs_[i].index = specs_[i].number = i;
      specs_[i].client_id = absl::StrFormat("p%u", i);
      specs_[i].topic = absl::StrFormat("t/%u", i);
    }
    context_.options = &options_;
    context_.plan = &plan_;
    context_.shared = &shared_;
    context_.counters = &shared_.counters[0];
    context_.result = &result_;
    context_.measure_start_ns = 0;
    context_.measure_end_ns = std::numeric_limits<int64_t>::max();
  }

  // The send times stamped into the payloads of what `client` staged.
  static std::vector<int64_t> stamps(Client& client) {
    std::vector<int64_t> out;
    std::span<const uint8_t> bytes = client.staging.span();
    while (!bytes.empty()) {
      mqtt::FixedHeader header{};
      EXPECT_EQ(mqtt::parse_fixed_header(bytes, 1 << 20, &header), mqtt::FrameStatus::kComplete);
      std::span<const uint8_t> body = bytes.subspan(header.header_length, header.remaining_length);
      uint16_t topic_bytes = static_cast<uint16_t>(body[0] << 8 | body[1]);
      std::string_view payload(reinterpret_cast<const char*>(body.data()) + 2 + topic_bytes,
                               body.size() - 2 - topic_bytes);
      PayloadHeader header_out;
      EXPECT_TRUE(read_payload(payload, &header_out));
      out.push_back(header_out.send_ns);
      bytes = bytes.subspan(header.header_length + header.remaining_length);
    }
    client.staging.clear();
    return out;
  }

  Options options_;
  Plan plan_;
  SharedState shared_{1, 4};
  WorkerResult result_;
  WorkerContext context_;
  ClientSpec specs_[4];
};

TEST_F(BenchSchedule, UniformStampsScheduledTimesEvenlySpacedAcrossPublishers) {
  // 4 publishers, each every 4 ms: one message of the run every 1 ms, publisher after publisher.
  make(Arrival::kUniform, 4, 4e6);
  int64_t start_ns = monotonic_ns() - 1'000'000'000;  // a second late: everything is due
  std::vector<int64_t> first;
  for (uint32_t i = 0; i < 4; ++i) {
    Client client(specs_[i], context_);
    client.on_connecting();
    client.on_connected();
    ASSERT_TRUE(client.on_bytes(std::vector<uint8_t>{0x20, 0x02, 0x00, 0x00}, 0));
    client.staging.clear();
    client.start_schedule(start_ns);
    EXPECT_EQ(client.next_due_ns(), start_ns + int64_t{i} * 1'000'000);
    ASSERT_EQ(client.publish(3), 3u);
    std::vector<int64_t> sent = stamps(client);
    ASSERT_EQ(sent.size(), 3u);
    // Stamped with the schedule, not with the (much later) moment they were written.
    EXPECT_EQ(sent[0], start_ns + int64_t{i} * 1'000'000);
    EXPECT_EQ(sent[1] - sent[0], 4'000'000);
    EXPECT_EQ(sent[2] - sent[1], 4'000'000);
    first.push_back(sent[0]);
    EXPECT_GT(client.due_unsent(monotonic_ns()), 200u);  // a second behind at 250/s
  }
  EXPECT_EQ(result_.schedule_late, 12u);  // all written about a second late
  EXPECT_GE(result_.schedule_lag_max_ns, 990'000'000);
}

TEST_F(BenchSchedule, BurstPutsEveryPublisherOnTheSameBeatAndWaitsForIt) {
  make(Arrival::kBurst, 2, 1e9);
  int64_t start_ns = monotonic_ns();
  for (uint32_t i = 0; i < 2; ++i) {
    Client client(specs_[i], context_);
    client.on_connecting();
    client.on_connected();
    ASSERT_TRUE(client.on_bytes(std::vector<uint8_t>{0x20, 0x02, 0x00, 0x00}, 0));
    client.staging.clear();
    client.start_schedule(start_ns);
    EXPECT_EQ(client.next_due_ns(), start_ns);
    EXPECT_EQ(client.publish(10), 1u);  // the next one is a second away
    EXPECT_EQ(client.next_due_ns(), start_ns + 1'000'000'000);
    EXPECT_EQ(client.due_unsent(start_ns + 1'000'000'000), 0u);
    EXPECT_EQ(client.due_unsent(start_ns + 2'500'000'000), 2u);
  }
}

TEST_F(BenchSchedule, PoissonGapsAverageThePeriod) {
  make(Arrival::kPoisson, 1, 1e6);
  Client client(specs_[0], context_);
  client.on_connecting();
  client.on_connected();
  ASSERT_TRUE(client.on_bytes(std::vector<uint8_t>{0x20, 0x02, 0x00, 0x00}, 0));
  client.staging.clear();
  int64_t start_ns = monotonic_ns() - 10'000'000'000;  // 10 s: about 10,000 messages due
  client.start_schedule(start_ns);
  uint64_t written = 0;
  while (client.next_due_ns() < start_ns + 10'000'000'000) {
    written += client.publish(256);
    client.staging.clear();
  }
  EXPECT_NEAR(static_cast<double>(written), 10'000, 500);  // five standard deviations
}

TEST_F(BenchSchedule, PayloadSizesStayInTheirRange) {
  make(Arrival::kBurst, 1, 0);
  options_.period_ns = 0;
  options_.payload_bytes = 64;
  options_.payload_bytes_max = 1024;
  for (bool exponential : {false, true}) {
    options_.size_exponential = exponential;
    result_.payload_bytes_sent = 0;
    result_.sent = 0;
    Client client(specs_[0], context_);
    client.on_connecting();
    client.on_connected();
    ASSERT_TRUE(client.on_bytes(std::vector<uint8_t>{0x20, 0x02, 0x00, 0x00}, 0));
    client.staging.clear();
    for (int turn = 0; turn < 40; ++turn) {
      client.publish(100);
      client.staging.clear();
    }
    double mean = static_cast<double>(result_.payload_bytes_sent) / static_cast<double>(result_.sent);
    EXPECT_NEAR(mean, exponential ? 64 + 960 / 4.0 : 544, exponential ? 30 : 30) << exponential;
  }
}

}  // namespace
}  // namespace coremq::bench
