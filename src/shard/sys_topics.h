// The $SYS/broker/... topics (Mosquitto's names and meanings, mosquitto(8) "BROKER STATUS"):
// every --sys-interval seconds a $SYS thread collects each shard's counters through
// ShardAccess (collect_shard_snapshots: the copy is made on each shard's own thread, so
// nothing shared is added to the publish path) and publishes what changed as retained
// messages through an in-process client of the broker (Broker::connect_local).
//
// Threads: SysTree is plain data, used by one thread (the $SYS thread, or a test). SysPublisher
// is owned by BrokerImpl: started after the shards serve, stopped before they are told to stop;
// its thread ("coremq-sys") is the only one that touches its SysTree and its LocalClient.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "coremq/local_client.h"
#include "shard/shard_access.h"
#include "shard/shard_snapshot.h"

namespace coremq::shard {

// The broker-wide figures of one $SYS update: shard counters and gauges summed.
struct SysTotals {
  uint64_t connections = 0;  // open client connections (network and in-process), CONNECT done or not
  uint64_t sessions = 0;     // sessions, online or kept offline
  uint64_t subscriptions = 0;
  uint64_t retained = 0;  // retained messages (every shard holds a full copy: shard 0's)
  // --persistence: queued and in-flight message bodies in the store, and their bytes.
  uint64_t stored_messages = 0;
  uint64_t stored_message_bytes = 0;
  uint64_t sessions_expired = 0;
  uint64_t packets_received = 0;
  uint64_t packets_sent = 0;
  uint64_t publish_received = 0;
  uint64_t publish_sent = 0;
  uint64_t publish_dropped = 0;
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t connects_received = 0;
  uint64_t sockets_accepted = 0;
};

// What the $SYS publisher itself did, left out of the totals as Mosquitto's internal $SYS
// messages are not counted: its session and connection, its CONNECTs (and their CONNACKs), and
// its PUBLISHes received by its shard.
struct SysOwnTraffic {
  uint64_t sessions = 0;
  uint64_t connects = 0;
  uint64_t publishes = 0;
};

// Sums the shards that answered, less `own`.
SysTotals sum_shard_snapshots(const std::vector<ShardSnapshot>& snapshots, const SysOwnTraffic& own);

// Mosquitto's $SYS tree as a state machine: each update gives the (topic, payload) pairs to
// publish. Counters and gauges go out when they changed since the last update (maximum when it
// grew), load averages when they moved by 0.01 or more, uptime every time; the first update
// (or one after forget_all) sends everything, version included.
class SysTree {
 public:
  using Publication = std::pair<std::string, std::string>;

  explicit SysTree(std::string version);

  // `uptime_seconds` since the broker started (monotonic).
  std::vector<Publication> update(const SysTotals& totals, double uptime_seconds);
  // The next update sends everything again (the publisher reconnected, or a publish failed).
  void forget_all() { first_ = true; }

  // One load average (Mosquitto's sys_tree.c): the counter's increase over the interval, scaled
  // to a per-minute rate, folded into an exponentially decaying average with time constant
  // `window_seconds` (60, 300, 900): new = rate + exp(-interval/window) * (old - rate).
  static double next_load(double previous, uint64_t increase, double interval_seconds, double window_seconds);

 private:
  struct Value {
    const char* topic;
    uint64_t current = 0;
    bool is_maximum = false;  // published only when it grows
  };
  struct Load {
    std::string topic;
    int source = 0;  // index into values_ of the counter it averages
    double window_seconds = 60;
    double current = 0;
  };

  std::string version_;
  std::vector<Value> values_;
  std::vector<uint64_t> counters_last_;  // each value at the previous measured update (for the loads)
  std::vector<Load> loads_;
  double last_update_seconds_ = 0;
  bool have_previous_ = false;  // counters_last_ and last_update_seconds_ are set
  bool first_ = true;
};

// The $SYS thread. `connect` makes the in-process client it publishes with (again after a
// network client took its client id over); publishes are QoS 0 retained, and a publish the
// broker did not take (its intake full) makes the next update send everything again.
class SysPublisher {
 public:
  using Connect = std::function<std::unique_ptr<LocalClient>()>;

  // `retain`: publish retained (false when the broker has retained messages off, where a
  // retained PUBLISH would be a protocol error).
  SysPublisher(ShardAccess& shards, std::chrono::seconds interval, std::string version, bool retain,
               Connect connect);
  ~SysPublisher() { stop(); }
  SysPublisher(const SysPublisher&) = delete;
  SysPublisher& operator=(const SysPublisher&) = delete;

  void start();
  // Wakes the thread, joins it and disconnects its client (the shards must still run).
  void stop();

  // The client id the publisher connects with (a network client using it takes the session
  // over; the publisher connects again at its next update).
  static constexpr const char* kClientId = "$coremq-sys";

 private:
  void run();
  void publish_once(double uptime_seconds);

  ShardAccess& shards_;
  const std::chrono::seconds interval_;
  const bool retain_;
  SysTree tree_;
  Connect connect_;
  std::unique_ptr<LocalClient> client_;  // $SYS thread only
  SysOwnTraffic own_;                    // $SYS thread only: connects and publishes so far
  std::chrono::steady_clock::time_point started_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // under mutex_
  std::thread thread_;
};

}  // namespace coremq::shard
