// $SYS topics: the tree of values (SysTree) and the thread that publishes it (SysPublisher).
// See sys_topics.h. Runs on the $SYS thread only (and in unit tests).
#include "shard/sys_topics.h"

#include <pthread.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "base/assert.h"
#include "base/log.h"

namespace coremq::shard {

namespace {
// Index of each value in SysTree::values_ (the order of kValueTopics).
enum ValueIndex : int {
  kConnected,
  kDisconnected,
  kTotal,
  kMaximum,
  kExpired,
  kMessagesReceived,
  kMessagesSent,
  kPublishReceived,
  kPublishSent,
  kPublishDropped,
  kBytesReceived,
  kBytesSent,
  kSubscriptions,
  kRetained,
  kStoreMessages,
  kStoreBytes,
  kConnects,  // not published itself: the source of load/connections
  kSockets,   // not published itself: the source of load/sockets
  kValueCount,
};

// Mosquitto 2.0's topic names (mosquitto(8)); null: kept only for a load average.
constexpr const char* kValueTopics[kValueCount] = {
    "$SYS/broker/clients/connected",
    "$SYS/broker/clients/disconnected",
    "$SYS/broker/clients/total",
    "$SYS/broker/clients/maximum",
    "$SYS/broker/clients/expired",
    "$SYS/broker/messages/received",
    "$SYS/broker/messages/sent",
    "$SYS/broker/publish/messages/received",
    "$SYS/broker/publish/messages/sent",
    "$SYS/broker/publish/messages/dropped",
    "$SYS/broker/bytes/received",
    "$SYS/broker/bytes/sent",
    "$SYS/broker/subscriptions/count",
    "$SYS/broker/retained messages/count",
    "$SYS/broker/store/messages/count",
    "$SYS/broker/store/messages/bytes",
    nullptr,
    nullptr,
};

struct LoadSource {
  const char* name;  // $SYS/broker/load/<name>/<1min|5min|15min>
  int value;
};
constexpr LoadSource kLoadSources[] = {
    {"messages/received", kMessagesReceived},
    {"messages/sent", kMessagesSent},
    {"publish/dropped", kPublishDropped},
    {"publish/received", kPublishReceived},
    {"publish/sent", kPublishSent},
    {"bytes/received", kBytesReceived},
    {"bytes/sent", kBytesSent},
    {"sockets", kSockets},
    {"connections", kConnects},
};

std::string format_load(double value) {
  return absl::StrFormat("%.2f", value);
}
}  // namespace

SysTotals sum_shard_snapshots(const std::vector<ShardSnapshot>& snapshots, const SysOwnTraffic& own) {
  SysTotals totals;
  for (const ShardSnapshot& snapshot : snapshots) {
    if (!snapshot.answered) continue;
    const broker::ShardCounters& counters = snapshot.counters;
    totals.connections += snapshot.connections;
    totals.sessions += snapshot.sessions;
    totals.subscriptions += snapshot.subscriptions;
    // Every shard keeps a full copy of the retained store: they agree, so any one will do.
    totals.retained = std::max<uint64_t>(totals.retained, snapshot.retained);
    totals.stored_messages += snapshot.stored_messages;
    totals.stored_message_bytes += snapshot.stored_message_bytes;
    totals.sessions_expired += counters.sessions_expired;
    totals.packets_received += counters.packets_received;
    totals.packets_sent += counters.packets_sent;
    totals.publish_received += counters.messages_received;
    totals.publish_sent += counters.messages_delivered;
    totals.publish_dropped += counters.qos0_dropped_slow_consumer + counters.messages_dropped_queue_full +
                              counters.qos0_dropped_offline;
    totals.bytes_received += counters.bytes_received;
    totals.bytes_sent += counters.bytes_sent;
    totals.connects_received += counters.connects_received;
    totals.sockets_accepted += counters.connections_accepted;
  }
  // Clamped: a publish of the previous update may not have reached its shard yet.
  auto less = [](uint64_t& total, uint64_t own_part) { total -= std::min(total, own_part); };
  less(totals.connections, own.sessions);
  less(totals.sessions, own.sessions);
  less(totals.packets_received, own.connects + own.publishes);
  less(totals.publish_received, own.publishes);
  less(totals.packets_sent, own.connects);
  less(totals.connects_received, own.connects);
  return totals;
}

SysTree::SysTree(std::string version) : version_(std::move(version)) {
  for (int i = 0; i < kValueCount; ++i) values_.push_back(Value{kValueTopics[i], 0, i == kMaximum});
  counters_last_.assign(kValueCount, 0);
  for (const LoadSource& source : kLoadSources) {
    for (auto [suffix, window] : {std::pair{"1min", 60.0}, {"5min", 300.0}, {"15min", 900.0}}) {
      loads_.push_back(
          Load{absl::StrFormat("$SYS/broker/load/%s/%s", source.name, suffix), source.value, window, 0});
    }
  }
}

double SysTree::next_load(double previous, uint64_t increase, double interval_seconds,
                          double window_seconds) {
  COREMQ_ASSERT(interval_seconds > 0 && window_seconds > 0);
  double rate_per_minute = static_cast<double>(increase) * 60.0 / interval_seconds;
  double exponent = std::exp(-interval_seconds / window_seconds);
  return rate_per_minute + exponent * (previous - rate_per_minute);
}

std::vector<SysTree::Publication> SysTree::update(const SysTotals& totals, double uptime_seconds) {
  uint64_t next[kValueCount] = {};
  next[kConnected] = totals.connections;
  // Mosquitto's own arithmetic: clients it knows of minus those with a socket.
  next[kDisconnected] = totals.sessions - std::min(totals.sessions, totals.connections);
  next[kTotal] = totals.sessions;
  next[kMaximum] = totals.sessions;  // as Mosquitto: the highest total seen at an update
  next[kExpired] = totals.sessions_expired;
  next[kMessagesReceived] = totals.packets_received;
  next[kMessagesSent] = totals.packets_sent;
  next[kPublishReceived] = totals.publish_received;
  next[kPublishSent] = totals.publish_sent;
  next[kPublishDropped] = totals.publish_dropped;
  next[kBytesReceived] = totals.bytes_received;
  next[kBytesSent] = totals.bytes_sent;
  next[kSubscriptions] = totals.subscriptions;
  next[kRetained] = totals.retained;
  // Mosquitto counts the messages its store holds, retained ones included.
  next[kStoreMessages] = totals.retained + totals.stored_messages;
  next[kStoreBytes] = totals.stored_message_bytes;
  next[kConnects] = totals.connects_received;
  next[kSockets] = totals.sockets_accepted;

  std::vector<Publication> out;
  const bool everything = first_;
  if (everything) out.emplace_back("$SYS/broker/version", version_);
  out.emplace_back("$SYS/broker/uptime", absl::StrFormat("%d seconds", static_cast<int64_t>(uptime_seconds)));

  // Loads first: they need the counters' previous values. The first update has no interval to
  // measure over and publishes every average as it stands (0.00 at start).
  double interval = uptime_seconds - last_update_seconds_;
  bool measure = have_previous_ && interval > 0;
  for (Load& load : loads_) {
    double value = load.current;
    if (measure) {
      uint64_t before = counters_last_[load.source];
      uint64_t now = next[load.source];
      value = next_load(load.current, now >= before ? now - before : 0, interval, load.window_seconds);
    }
    if (everything || std::fabs(value - load.current) >= 0.01)
      out.emplace_back(load.topic, format_load(value));
    load.current = value;
  }
  if (measure || !have_previous_) {
    counters_last_.assign(next, next + kValueCount);
    last_update_seconds_ = uptime_seconds;
    have_previous_ = true;
  }

  for (int i = 0; i < kValueCount; ++i) {
    Value& value = values_[i];
    bool changed = value.is_maximum ? next[i] > value.current : next[i] != value.current;
    if (changed) value.current = next[i];
    if ((changed || everything) && value.topic != nullptr) {
      out.emplace_back(value.topic, absl::StrFormat("%u", value.current));
    }
  }
  first_ = false;
  return out;
}

SysPublisher::SysPublisher(ShardAccess& shards, std::chrono::seconds interval, std::string version,
                           bool retain, Connect connect)
    : shards_(shards),
      interval_(interval),
      retain_(retain),
      tree_(std::move(version)),
      connect_(std::move(connect)) {
  COREMQ_ASSERT(interval_.count() > 0);
}

void SysPublisher::start() {
  COREMQ_ASSERT(!thread_.joinable());
  started_ = std::chrono::steady_clock::now();
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "coremq-sys");
    run();
  });
}

void SysPublisher::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SysPublisher::run() {
  auto next = std::chrono::steady_clock::now();
  for (;;) {
    std::chrono::duration<double> uptime = std::chrono::steady_clock::now() - started_;
    publish_once(uptime.count());
    next += interval_;
    std::unique_lock lock(mutex_);
    if (wake_.wait_until(lock, next, [this] { return stopping_; })) break;
  }
  // Disconnected here, on this thread, while the shards still run (~LocalClient waits for its
  // shard to see the DISCONNECT).
  client_.reset();
}

void SysPublisher::publish_once(double uptime_seconds) {
  if (client_ == nullptr || !client_->connected()) {
    client_ = connect_();
    if (client_ == nullptr) return;  // the broker is stopping, or refused: try at the next update
    ++own_.connects;
    // A new session: whatever was retained is still there, but values may have been missed.
    tree_.forget_all();
  }
  // A shard that does not answer within the interval is left out of this update (its counters
  // come back at the next): the snapshot waits no longer than that.
  auto timeout = std::min<std::chrono::milliseconds>(interval_, std::chrono::milliseconds(2000));
  std::vector<ShardSnapshot> snapshots = collect_shard_snapshots(shards_, timeout);
  bool all_answered =
      std::all_of(snapshots.begin(), snapshots.end(), [](const auto& s) { return s.answered; });
  if (!all_answered) {
    LOG_WARNING_LIMITED("$SYS: a shard did not answer within %d ms; this update is skipped",
                        static_cast<int>(timeout.count()));
    return;
  }
  SysOwnTraffic own = own_;
  own.sessions = 1;
  for (const auto& [topic, payload] : tree_.update(sum_shard_snapshots(snapshots, own), uptime_seconds)) {
    LocalStatus status = client_->publish(topic, payload, 0, retain_, {}, nullptr);
    if (status == LocalStatus::kOk) ++own_.publishes;
    if (status != LocalStatus::kOk) {
      LOG_WARNING_LIMITED("$SYS: publishing %s failed (%s); everything goes out again at the next update",
                          topic, local_status_name(status));
      tree_.forget_all();
      break;
    }
  }
}

}  // namespace coremq::shard
