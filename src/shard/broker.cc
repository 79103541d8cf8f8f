// Broker: builds the shards, the SPSC ring for every ordered pair of them and, for every
// listener, one SO_REUSEPORT socket per shard and bound address, starts their threads and stops
// them. Runs on the embedding program's controlling thread; after start() the shards run on
// their own.
#include "coremq/broker.h"

#include <sched.h>
#include <unistd.h>

#include <cerrno>

#include <memory>
#include <thread>
#include <vector>

#include "auth/password_checker.h"
#include "auth/password_file.h"
#include "auth/password_file_verifier.h"
#include "base/assert.h"
#include "base/log.h"
#include "broker/listeners.h"
#include "config/config_file.h"
#include "io/listener.h"
#include "shard/shard.h"
#include "transport/listener_factory.h"

namespace coremq {

class BrokerImpl {
 public:
  explicit BrokerImpl(Options options) : options_(std::move(options)) {}
  ~BrokerImpl() {
    stop();
    wait();
  }

  bool start(std::string* error);
  void stop() {
    for (auto& shard : shards_) shard->request_stop();
  }
  void wait() {
    for (auto& shard : shards_) shard->join();
    if (password_checker_ != nullptr) password_checker_->stop();
    // Only now, with every thread gone, can nothing more be posted.
    for (auto& shard : shards_) shard->release_leftovers();
  }

  // Reads every listener's password file and makes the checker that verifies against them
  // (none if no listener has one).
  [[nodiscard]] bool load_password_files(uint32_t count, std::string* error);
  // Each shard's transport factory for each TLS or WebSocket listener (reads certificates).
  [[nodiscard]] bool make_transport_factories(uint32_t count, std::string* error);
  // Opens every listener's sockets (see start); *sockets gets each shard's.
  [[nodiscard]] bool open_listeners(uint32_t count, std::vector<std::vector<shard::ListenSocket>>* sockets,
                                    std::vector<std::string>* started, std::string* error);

  Options options_;
  std::vector<ListenerOptions> listeners_;  // effective_listeners(options_)
  std::vector<uint16_t> listener_ports_;    // the port each one bound
  shard::SharedState shared_;
  std::vector<std::unique_ptr<shard::CrossShardRing>> rings_;  // [from * count + to]
  std::vector<std::unique_ptr<shard::Shard>> shards_;
  std::unique_ptr<auth::PasswordChecker> password_checker_;
  // [shard][listener]: null for plain MQTT listeners; moved into the shards at start.
  std::vector<std::vector<std::unique_ptr<transport::TransportFactory>>> transport_factories_;
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

  // Listeners first: a bind error is reported before any thread starts.
  std::vector<std::vector<shard::ListenSocket>> listen_sockets(count);
  std::vector<std::string> started;
  if (!open_listeners(count, &listen_sockets, &started, error)) return false;
  auto close_sockets = [&listen_sockets] {
    for (auto& shard_sockets : listen_sockets) {
      for (const shard::ListenSocket& socket : shard_sockets) ::close(socket.fd);
    }
  };
  if (!load_password_files(count, error) || !make_transport_factories(count, error)) {
    close_sockets();
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
    shards_.push_back(std::make_unique<shard::Shard>(i, count, options_, shared_, std::move(listen_sockets[i])));
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
    shards_[i]->set_transport_factories(std::move(transport_factories_[i]));
    shards_[i]->set_password_checker(password_checker_.get());
  }
  if (password_checker_ != nullptr) password_checker_->start();
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
  // Logged once every shard serves: whoever waits for these lines may connect at once.
  for (const std::string& line : started) LOG_INFO("%s", line);
  for (size_t index = 0; index < listeners_.size(); ++index) {
    const ListenerOptions& listener = listeners_[index];
    if (listener.allow_anonymous != ListenerOptions::Anonymous::kDefault || broker::anonymous_allowed(listener)) {
      continue;
    }
    LOG_WARNING("listener %s refuses clients without a username (CONNACK 0x05 / 0x87): %s; "
                "--allow-anonymous (for --bind/--port), allow_anonymous=true in its --listener spec or "
                "`allow_anonymous true` in the config file lets them in",
                broker::listener_url(listener, broker::bind_addresses(listener.address)[0].numeric,
                                     listener_ports_[index]),
                listener.password_file.empty() ? "it is not on loopback" : "it has a password file");
  }
  LOG_INFO("coremq started: %u listener%s, %u shard%s", listeners_.size(), listeners_.size() == 1 ? "" : "s", count,
           count == 1 ? "" : "s");
  return true;
}

bool BrokerImpl::load_password_files(uint32_t count, std::string* error) {
  std::vector<std::shared_ptr<const auth::PasswordVerifier>> verifiers(listeners_.size());
  bool any = false;
  for (size_t index = 0; index < listeners_.size(); ++index) {
    const std::string& path = listeners_[index].password_file;
    if (path.empty()) continue;
    std::vector<config::Diagnostic> diagnostics;
    std::shared_ptr<const auth::PasswordFile> file = auth::load_password_file(path, {}, &diagnostics);
    for (const config::Diagnostic& diagnostic : diagnostics) {
      if (diagnostic.severity == config::Severity::kWarning) LOG_WARNING("%s", config::format_diagnostic(diagnostic));
    }
    if (file == nullptr) {
      *error = "password file " + path + ": ";
      for (const config::Diagnostic& diagnostic : diagnostics) {
        if (diagnostic.severity == config::Severity::kError) *error += config::format_diagnostic(diagnostic);
      }
      return false;
    }
    LOG_INFO("password file %s: %u users", path, file->size());
    verifiers[index] = std::make_shared<auth::PasswordFileVerifier>(std::move(file));
    any = true;
  }
  if (!any) return true;
  password_checker_ = std::make_unique<auth::PasswordChecker>(
      count, options_.password_check_threads, options_.password_check_queue, std::move(verifiers),
      [this](uint32_t shard) { shards_[shard]->wake_from_outside(); });
  return true;
}

bool BrokerImpl::make_transport_factories(uint32_t count, std::string* error) {
  transport_factories_.clear();
  transport_factories_.resize(count);
  for (uint32_t shard = 0; shard < count; ++shard) {
    for (size_t index = 0; index < listeners_.size(); ++index) {
      const transport::ListenerTransportFactory* first =
          shard == 0 ? nullptr
                     : static_cast<const transport::ListenerTransportFactory*>(transport_factories_[0][index].get());
      auto factory = transport::ListenerTransportFactory::create(listeners_[index], options_.max_packet_size, first, error);
      if (factory == nullptr && !error->empty()) {
        *error = "listener " + std::to_string(index) + " (port " + std::to_string(listener_ports_[index]) + "): " + *error;
        transport_factories_.clear();
        return false;
      }
      transport_factories_[shard].push_back(std::move(factory));
    }
  }
  return true;
}

// For each listener and each address it binds: shard 0 binds the asked port (0: any) alone, so
// that a port another process listens on fails here with "Address already in use" (see
// io/listener.h); the other shards join its SO_REUSEPORT group on the port it got. A listener's
// second address (the ::1 of the loopback default) binds the port its first one got.
bool BrokerImpl::open_listeners(uint32_t count, std::vector<std::vector<shard::ListenSocket>>* sockets,
                                std::vector<std::string>* started, std::string* error) {
  listeners_ = broker::effective_listeners(options_);
  if (listeners_.size() > broker::kListenersMax) {
    *error = "at most " + std::to_string(broker::kListenersMax) + " listeners";
    return false;
  }
  auto close_all = [sockets] {
    for (auto& shard_sockets : *sockets) {
      for (const shard::ListenSocket& socket : shard_sockets) ::close(socket.fd);
      shard_sockets.clear();
    }
  };
  listener_ports_.assign(listeners_.size(), 0);
  for (size_t index = 0; index < listeners_.size(); ++index) {
    const ListenerOptions& listener = listeners_[index];
    uint16_t port = listener.port;
    for (const broker::BindAddress& address : broker::bind_addresses(listener.address)) {
      std::vector<int> fds;
      for (uint32_t i = 0; i < count; ++i) {
        uint16_t bound = 0;
        int error_number = 0;
        int fd = io::open_listener(address.numeric, port, 4096, /*join_group=*/i > 0, &bound, error, &error_number);
        if (fd < 0 && i == 0 && address.optional &&
            (error_number == EADDRNOTAVAIL || error_number == EAFNOSUPPORT)) {
          // A machine without IPv6 (or without ::1) still gets the listener's IPv4 half.
          LOG_WARNING("%s; going on without it", *error);
          error->clear();
          break;
        }
        if (fd < 0) {
          for (int open_fd : fds) ::close(open_fd);
          close_all();
          return false;
        }
        if (i == 0) port = bound;
        fds.push_back(fd);
      }
      if (fds.empty()) continue;
      for (uint32_t i = 0; i < count; ++i) {
        (*sockets)[i].push_back(shard::ListenSocket{fds[i], static_cast<uint8_t>(index)});
      }
      started->push_back("listening on " + broker::listener_url(listener, address.numeric, port) +
                         (broker::anonymous_allowed(listener) ? " (anonymous allowed)" : " (anonymous refused)"));
    }
    listener_ports_[index] = port;
  }
  return true;
}

Broker::Broker(Options options) : impl_(std::make_unique<BrokerImpl>(std::move(options))) {}
Broker::~Broker() = default;
bool Broker::start(std::string* error) { return impl_->start(error); }
void Broker::stop() { impl_->stop(); }
void Broker::wait() { impl_->wait(); }
uint16_t Broker::port() const { return impl_->listener_ports_.empty() ? 0 : impl_->listener_ports_[0]; }
uint16_t Broker::listener_port(size_t index) const {
  return index < impl_->listener_ports_.size() ? impl_->listener_ports_[index] : 0;
}
uint32_t Broker::shard_count() const { return static_cast<uint32_t>(impl_->shards_.size()); }

}  // namespace coremq
