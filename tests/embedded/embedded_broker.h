// The fixture the embedded tests share: a real in-process Broker on a loopback port, started
// once per test with --threads from the test's parameter (1 or 4), client ids placed on a
// chosen shard, and network clients (net_client.h) connected to it.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "broker/shard_state.h"
#include "coremq/broker.h"
#include "net_client.h"

namespace coremq::testing {

class EmbeddedBrokerTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override { start({}); }
  void TearDown() override { stop(); }

  // Small rings and buffers (many brokers start in one test run); `configure` adds the test's
  // own options, then `adjust` a single test's.
  void start(const std::function<void(Options&)>& adjust) {
    Options options;
    options.bind_address = "127.0.0.1";
    options.port = 0;
    options.threads = GetParam();
    options.pin_threads = false;
    options.log_level = "error";
    options.ring_entries = 256;
    options.receive_buffer_count = 64;
    configure(options);
    if (adjust) adjust(options);
    broker_ = std::make_unique<Broker>(options);
    std::string error;
    ASSERT_TRUE(broker_->start(&error)) << error;
  }
  virtual void configure(Options& options) { (void)options; }
  void stop() {
    if (!broker_) return;
    broker_->stop();
    broker_->wait();
  }
  void restart(const std::function<void(Options&)>& adjust) {
    stop();
    broker_.reset();
    start(adjust);
  }

  // A client id owned by `shard` (modulo the shard count), so with 4 threads clients can be
  // put on different shards on purpose.
  std::string id_on_shard(std::string_view prefix, uint32_t shard) const {
    for (int i = 0;; ++i) {
      std::string candidate = std::string(prefix) + "-" + std::to_string(i);
      if (broker::owner_shard_of(candidate, broker_->shard_count()) == shard % broker_->shard_count()) {
        return candidate;
      }
    }
  }

  std::unique_ptr<NetClient> network(const std::string& client_id) {
    auto client = std::make_unique<NetClient>(broker_->port());
    std::string why;
    EXPECT_TRUE(client->connect(client_id, &why)) << client_id << ": " << why;
    return client;
  }

  uint32_t shards() const { return broker_->shard_count(); }

  std::unique_ptr<Broker> broker_;
};

}  // namespace coremq::testing
