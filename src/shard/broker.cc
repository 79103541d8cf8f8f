// Broker: builds the shards, the SPSC ring for every ordered pair of them and one
// SO_REUSEPORT listener per shard, starts their threads and stops them. Runs on the
// embedding program's controlling thread; after start() the shards run on their own.
#include "coremq/broker.h"

#include <sched.h>
#include <unistd.h>

#include <memory>
#include <thread>
#include <vector>

#include "auth/acl_file.h"
#include "base/assert.h"
#include "base/log.h"
#include "io/listener.h"
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
  // One entry per listener (Options::listeners, or the single one bind_address/port make),
  // with its ACL file loaded; false with *error naming the file and line.
  bool load_listener_security(broker::ListenerSecurityList* list, std::string* error) const;
  void stop() {
    for (auto& shard : shards_) shard->request_stop();
  }
  void wait() {
    for (auto& shard : shards_) shard->join();
    // Only now, with every thread gone, can nothing more be posted.
    for (auto& shard : shards_) shard->release_leftovers();
  }

  Options options_;
  uint16_t port_ = 0;
  shard::SharedState shared_;
  std::vector<std::unique_ptr<shard::CrossShardRing>> rings_;  // [from * count + to]
  std::vector<std::unique_ptr<shard::Shard>> shards_;
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

bool BrokerImpl::load_listener_security(broker::ListenerSecurityList* list, std::string* error) const {
  std::vector<std::string> acl_paths;
  if (options_.listeners.empty()) {
    acl_paths.push_back(options_.acl_file);
  } else {
    for (const ListenerOptions& listener : options_.listeners) acl_paths.push_back(listener.acl_file);
  }
  list->resize(acl_paths.size());
  for (size_t i = 0; i < acl_paths.size(); ++i) {
    if (acl_paths[i].empty()) continue;
    std::string why;
    (*list)[i].acl = auth::load_acl_file(acl_paths[i], &why);
    if ((*list)[i].acl == nullptr) {
      *error = "ACL file " + why;
      return false;
    }
    for (const std::string& warning : (*list)[i].acl->warnings()) LOG_WARNING("ACL file %s", warning);
    LOG_INFO("listener %u: ACL file %s: %u rules, %u users", static_cast<unsigned>(i), acl_paths[i],
             (*list)[i].acl->rule_count(), (*list)[i].acl->user_count());
  }
  return true;
}

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

  // Each listener's ACL file, read and parsed here, once, before any shard runs (file reads
  // never happen on a shard thread); every shard shares the same immutable AclFile.
  broker::ListenerSecurityList listener_security;
  if (!load_listener_security(&listener_security, error)) {
    for (int open_fd : listen_fds) ::close(open_fd);
    return false;
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
    shards_.back()->set_listener_security(listener_security);
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

}  // namespace coremq
