// Broker: builds the shards, the SPSC ring for every ordered pair of them and one
// SO_REUSEPORT listener per shard, starts their threads and stops them. Runs on the
// embedding program's controlling thread; after start() the shards run on their own.
#include "coremq/broker.h"

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "base/assert.h"
#include "base/log.h"
#include "io/listener.h"
#include "shard/local_hub.h"
#include "shard/shard.h"

namespace coremq {

class BrokerImpl {
 public:
  explicit BrokerImpl(Options options) : options_(std::move(options)) {}
  ~BrokerImpl() {
    stop();
    wait();
  }

  bool start(std::string* error);
  std::unique_ptr<LocalClient> connect_local(const LocalClientOptions& options, std::string* error);
  void stop() {
    running_.store(false, std::memory_order_release);
    for (auto& shard : shards_) shard->request_stop();
  }
  void wait() {
    for (auto& shard : shards_) shard->join();
    // Only now, with every thread gone, can nothing more be posted.
    for (auto& shard : shards_) shard->release_leftovers();
    // The delivery thread handles what the shards sent their in-process clients, then ends;
    // what is still pending fails with kBrokerStopped.
    if (local_hub_) local_hub_->stop();
  }

  Options options_;
  uint16_t port_ = 0;
  shard::SharedState shared_;
  std::vector<std::unique_ptr<shard::CrossShardRing>> rings_;  // [from * count + to]
  std::vector<std::unique_ptr<shard::Shard>> shards_;
  // In-process clients: shared with every LocalClient, which may outlive the Broker.
  std::shared_ptr<shard::LocalHub> local_hub_;
  std::atomic<bool> running_{false};
};

namespace {
// The CPUs this process may run on, in order; shard i is pinned to the i-th (wrapping).
std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    }
  }
  return cpus;
}
}  // namespace

bool BrokerImpl::start(std::string* error) {
  COREMQ_ASSERT(shards_.empty());
  base::LogLevel level;
  if (!base::parse_log_level(options_.log_level, &level)) {
    *error = "unknown log level '" + options_.log_level + "' (debug, info, warning, error, none)";
    return false;
  }
  base::set_log_level(level);
  std::vector<int> cpus = allowed_cpus();
  uint32_t count = options_.threads != 0 ? options_.threads : static_cast<uint32_t>(std::max<size_t>(1, cpus.size()));
  if (count > 256) {
    *error = "--threads is at most 256";
    return false;
  }
  if (options_.max_inflight == 0 || options_.max_inflight > 65535) {
    *error = "--max-inflight must be between 1 and 65535";
    return false;
  }
  if (options_.max_packet_size < 64) {
    *error = "--max-packet-size must be at least 64 bytes";
    return false;
  }

  // Listeners first: a bind error is reported before any thread starts. Shard 0 binds
  // the asked port (0: any) alone, so that a port another process listens on fails here
  // with "Address already in use" (see io/listener.h); the others join its SO_REUSEPORT
  // group on the port it got.
  std::vector<int> listen_fds;
  const std::string address = options_.bind_address.empty() ? "127.0.0.1" : options_.bind_address;
  for (uint32_t i = 0; i < count; ++i) {
    uint16_t bound = 0;
    int fd = io::open_listener(address, i == 0 ? options_.port : port_, 4096, /*join_group=*/i > 0,
                               &bound, error);
    if (fd < 0) {
      for (int open_fd : listen_fds) ::close(open_fd);
      return false;
    }
    if (i == 0) port_ = bound;
    listen_fds.push_back(fd);
  }

  rings_.resize(size_t{count} * count);
  for (uint32_t from = 0; from < count; ++from) {
    for (uint32_t to = 0; to < count; ++to) {
      if (from != to) {
        rings_[from * count + to] = std::make_unique<shard::CrossShardRing>(options_.cross_shard_queue_capacity);
      }
    }
  }
  for (uint32_t i = 0; i < count; ++i) {
    shards_.push_back(std::make_unique<shard::Shard>(i, count, options_, shared_, listen_fds[i]));
  }
  for (uint32_t i = 0; i < count; ++i) {
    std::vector<shard::Peer> peers(count);
    std::vector<shard::CrossShardRing*> inbound(count, nullptr);
    for (uint32_t j = 0; j < count; ++j) {
      if (j == i) continue;
      peers[j] = shard::Peer{rings_[i * count + j].get(), shards_[j].get()};
      inbound[j] = rings_[j * count + i].get();
    }
    shards_[i]->set_peers(std::move(peers), std::move(inbound));
  }
  local_hub_ = std::make_shared<shard::LocalHub>(options_, count);
  for (uint32_t i = 0; i < count; ++i) shards_[i]->attach_local(local_hub_.get(), &local_hub_->link(i));
  local_hub_->start();
  for (uint32_t i = 0; i < count; ++i) {
    int cpu = options_.pin_threads && !cpus.empty() ? cpus[i % cpus.size()] : -1;
    shards_[i]->start(cpu);
  }
  while (shared_.shards_ready.load(std::memory_order_acquire) < count) std::this_thread::yield();
  if (shared_.shards_failed.load() > 0) {
    wait();
    for (auto& shard : shards_) {
      if (!shard->startup_error().empty()) {
        *error = shard->startup_error();
        break;
      }
    }
    shards_.clear();
    return false;
  }
  running_.store(true, std::memory_order_release);
  LOG_INFO("coremq listening on %s:%u with %u shards", address, port_, count);
  return true;
}

Broker::Broker(Options options) : impl_(std::make_unique<BrokerImpl>(std::move(options))) {}
Broker::~Broker() = default;
bool Broker::start(std::string* error) { return impl_->start(error); }
void Broker::stop() { impl_->stop(); }
void Broker::wait() { impl_->wait(); }
uint16_t Broker::port() const { return impl_->port_; }
uint32_t Broker::shard_count() const { return static_cast<uint32_t>(impl_->shards_.size()); }

std::unique_ptr<LocalClient> Broker::connect_local(const LocalClientOptions& options, std::string* error) {
  return impl_->connect_local(options, error);
}

std::unique_ptr<LocalClient> BrokerImpl::connect_local(const LocalClientOptions& options, std::string* error) {
  if (!running_.load(std::memory_order_acquire) || local_hub_ == nullptr) {
    *error = "the broker is not running (start() it first)";
    return nullptr;
  }
  std::unique_ptr<LocalClientCore> core = local_hub_->connect(options, error);
  if (core == nullptr) return nullptr;
  return std::unique_ptr<LocalClient>(new LocalClient(std::move(core)));
}

}  // namespace coremq
