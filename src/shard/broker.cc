// Broker: builds the shards, the SPSC ring for every ordered pair of them and, for every
// listener, one SO_REUSEPORT socket per shard and bound address, starts their threads and stops
// them. Runs on the embedding program's controlling thread; after start() the shards run on
// their own.
#include "coremq/broker.h"

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>

#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"
#include "admin/admin_server.h"
#include "admin/stats.h"
#include "auth/acl_file.h"
#include "auth/password_checker.h"
#include "auth/password_file.h"
#include "auth/password_file_verifier.h"
#include "base/assert.h"
#include "base/log.h"
#include "broker/listeners.h"
#include "config/config_file.h"
#include "io/listener.h"
#include "io/resolve.h"
#include "persist/store.h"
#include "shard/local_hub.h"
#include "shard/shard.h"
#include "shard/shard_access.h"
#include "shard/shard_snapshot.h"
#include "shard/coremq_version.h"
#include "shard/sys_topics.h"
#include "transport/listener_factory.h"

namespace coremq {

namespace {
// What the shards that ran a ShardAccess callback count down; shared with the callbacks, which
// may outlive the wait.
struct ShardCallbacksDone {
  std::mutex mutex;
  std::condition_variable changed;
  uint32_t ran = 0;
};
}  // namespace

class BrokerImpl final : public shard::ShardAccess {
 public:
  explicit BrokerImpl(Options options) : options_(std::move(options)) {}
  ~BrokerImpl() override {
    stop();
    wait();
  }

  // ShardAccess (any thread but a shard's).
  uint32_t shard_count() const override { return static_cast<uint32_t>(shards_.size()); }
  uint32_t run_on_each_shard(const std::function<void(shard::Shard&)>& visit,
                             std::chrono::milliseconds timeout) override;
  bool run_on_shard(uint32_t shard, const std::function<void(shard::Shard&)>& visit,
                    std::chrono::milliseconds timeout) override;
  bool post_run(uint32_t shard, const std::function<void(shard::Shard&)>& visit,
                const std::shared_ptr<ShardCallbacksDone>& done);

  bool start(std::string* error);
  std::unique_ptr<LocalClient> connect_local(const LocalClientOptions& options, std::string* error);
  // One entry per listener (Options::listeners, or the single one bind_address/port make),
  // with its ACL file loaded; false with *error naming the file and line.
  bool load_listener_security(broker::ListenerSecurityList* list, std::string* error) const;
  void stop() {
    // The $SYS thread first: it publishes through the shards and disconnects its client there.
    if (sys_publisher_ != nullptr) sys_publisher_->stop();
    running_.store(false, std::memory_order_release);
    for (auto& shard : shards_) shard->request_stop();
  }
  void wait() {
    // The admin thread first: it reads the shards (through ShardAccess) until it stops.
    admin_.reset();
    for (auto& shard : shards_) shard->join();
    if (password_checker_ != nullptr) password_checker_->stop();
    // After the shards: their last batches are written (and synced) before the store closes.
    if (store_ != nullptr) store_->stop();
    // Only now, with every thread gone, can nothing more be posted.
    for (auto& shard : shards_) shard->release_leftovers();
    // The delivery thread handles what the shards sent their in-process clients, then ends;
    // what is still pending fails with kBrokerStopped.
    if (local_hub_) local_hub_->stop();
  }

  bool reload(std::string* report);
  // Reads one password file: the checker's verifier for it, or null with *error set.
  static std::shared_ptr<const auth::PasswordVerifier> load_password_verifier(const std::string& path,
                                                                             std::string* error);
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
  // One OpenSSL library context per shard for its TLS listeners, for the whole run: declared
  // before shards_, so it is freed after them (and after every thread that used it exited).
  transport::ShardLibraryContexts tls_library_contexts_;
  std::vector<std::unique_ptr<shard::CrossShardRing>> rings_;  // [from * count + to]
  // --persistence: the store (before shards_, so it is freed after them) and what the shards
  // take from it as they start.
  std::unique_ptr<persist::Store> store_;
  std::vector<broker::MessageRef> restored_retained_;
  broker::ShardState::RestoredBodies restored_bodies_;  // queued and in-flight messages, by body id
  persist::LoadedState restored_;
  [[nodiscard]] bool open_store(uint32_t count, std::string* error);
  std::vector<std::unique_ptr<shard::Shard>> shards_;
  std::unique_ptr<auth::PasswordChecker> password_checker_;
  // One controller at a time posts to the shards' control rings (their single producer).
  std::mutex control_mutex_;
  // [shard][listener]: null for plain MQTT listeners; moved into the shards at start.
  std::vector<std::vector<std::unique_ptr<transport::TransportFactory>>> transport_factories_;
  // In-process clients: shared with every LocalClient, which may outlive the Broker.
  std::shared_ptr<shard::LocalHub> local_hub_;
  // The $SYS topics (Options::sys_interval_seconds): started once every shard serves, stopped
  // first in stop().
  std::unique_ptr<shard::SysPublisher> sys_publisher_;
  std::atomic<bool> running_{false};
  // The HTTP admin listener (Options::http_listener); null when off. Started after the shards,
  // destroyed before they are joined (wait()).
  std::unique_ptr<admin::AdminServer> admin_;
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
  for (const ListenerOptions& listener : listeners_) acl_paths.push_back(listener.acl_file);
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

  // Each listener's ACL file, read and parsed here, once, before any shard runs (file reads
  // never happen on a shard thread); every shard shares the same immutable AclFile.
  broker::ListenerSecurityList listener_security;
  if (!load_listener_security(&listener_security, error)) {
    close_sockets();
    return false;
  }

  if (!open_store(count, error)) {
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
  std::vector<std::vector<shard::BridgeSetup>> bridges = shard::resolve_bridges(options_.bridges, count);
  for (uint32_t i = 0; i < count; ++i) {
    shards_.push_back(std::make_unique<shard::Shard>(i, count, options_, shared_, std::move(listen_sockets[i])));
    shards_.back()->set_listener_security(listener_security);
    shards_.back()->set_bridges(std::move(bridges[i]));
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
    if (store_ != nullptr) {
      shards_[i]->set_store(store_.get(), &restored_retained_, &restored_.sessions_by_shard[i], &restored_bodies_);
    }
  }
  if (store_ != nullptr) store_->start();
  if (password_checker_ != nullptr) password_checker_->start();
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
  // The admin listener needs running shards (it reads them through ShardAccess), and is up
  // before the lines below, so whoever waits for them may use it at once too.
  if (!options_.http_listener.empty()) {
    auto connect = [this](const LocalClientOptions& local, std::string* why) { return connect_local(local, why); };
    admin_ = admin::AdminServer::start(options_, *this, connect, error);
    if (admin_ == nullptr) {
      stop();
      wait();
      shards_.clear();
      return false;
    }
  }
  // The shards hold what they took from the store; the loaded records are not needed again.
  restored_retained_ = {};
  restored_bodies_ = {};
  restored_ = {};
  // Logged once every shard serves: whoever waits for these lines may connect at once.
  for (const std::string& line : started) LOG_INFO("%s", line);
  for (size_t index = 0; index < listeners_.size(); ++index) {
    const ListenerOptions& listener = listeners_[index];
    if (listener.refuse_unchecked_usernames && listener.password_file.empty()) {
      LOG_WARNING(
          "listener %s refuses every client but those a certificate names (CONNACK 0x05 / 0x87): "
          "allow_anonymous is false and it has no password file, as Mosquitto 2 reads a config file "
          "(allow_anonymous defaults to false once the file defines a listener); give it a password_file "
          "or `allow_anonymous true`",
          broker::listener_url(listener, broker::bind_addresses(listener.address)[0].numeric,
                               listener_ports_[index]));
    }
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
  running_.store(true, std::memory_order_release);
  if (options_.sys_interval_seconds > 0) {
    sys_publisher_ = std::make_unique<shard::SysPublisher>(
        *this, std::chrono::seconds(options_.sys_interval_seconds), "coremq " COREMQ_VERSION,
        options_.retain_available, [this] {
          LocalClientOptions client;
          client.client_id = shard::SysPublisher::kClientId;
          std::string why;
          std::unique_ptr<LocalClient> made = connect_local(client, &why);
          if (made == nullptr) LOG_WARNING_LIMITED("$SYS: cannot connect its in-process client: %s", why);
          return made;
        });
    sys_publisher_->start();
  }
  LOG_INFO("coremq started: %u listener%s, %u shard%s", listeners_.size(), listeners_.size() == 1 ? "" : "s", count,
           count == 1 ? "" : "s");
  return true;
}

bool BrokerImpl::open_store(uint32_t count, std::string* error) {
  if (options_.persistence.engine == PersistenceOptions::Engine::kNone) return true;
  store_ = persist::Store::open(options_.persistence, count,
                                [this](uint32_t shard) { shards_[shard]->wake_from_outside(); }, error);
  if (store_ == nullptr) return false;
  timespec wall{};
  clock_gettime(CLOCK_REALTIME, &wall);
  int64_t now_unix_ms = int64_t{wall.tv_sec} * 1000 + wall.tv_nsec / 1000000;
  if (!store_->load(now_unix_ms, &restored_, error)) {
    store_.reset();
    return false;
  }
  // One Message per retained record, shared by every shard's copy (as a live retained
  // update is); deadlines back on the monotonic clock the shards use.
  timespec monotonic{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &monotonic);
  int64_t offset_ms = now_unix_ms - (int64_t{monotonic.tv_sec} * 1000 + monotonic.tv_nsec / 1000000);
  restored_retained_.reserve(restored_.retained.size());
  for (const persist::RetainedRecord& record : restored_.retained) {
    broker::Message::Extras extras;
    extras.property_bytes = record.property_bytes;
    extras.retain_stamp = record.stamp;
    extras.expires_at_ms = record.expires_at_unix_ms == 0 ? 0 : record.expires_at_unix_ms - offset_ms;
    restored_retained_.push_back(broker::MessageRef::adopt(broker::Message::create(
        record.topic, record.payload, record.qos, /*retain=*/true, broker::Message::Origin{0, nullptr}, extras)));
  }
  restored_.retained.clear();
  restored_.retained.shrink_to_fit();
  // One Message per stored body; the sessions of one shard that queued it share it again.
  restored_bodies_.reserve(restored_.bodies.size());
  for (const persist::BodyRecord& record : restored_.bodies) {
    broker::Message::Extras extras;
    extras.property_bytes = record.property_bytes;
    extras.expires_at_ms = record.expires_at_unix_ms == 0 ? 0 : record.expires_at_unix_ms - offset_ms;
    restored_bodies_.emplace(record.id, broker::MessageRef::adopt(broker::Message::create(
                                            record.topic, record.payload, record.qos, record.retain,
                                            broker::Message::Origin{0, nullptr}, extras)));
  }
  restored_.bodies.clear();
  restored_.bodies.shrink_to_fit();
  const char* fsync = options_.persistence.fsync == PersistenceOptions::Fsync::kAlways  ? "always"
                      : options_.persistence.fsync == PersistenceOptions::Fsync::kBatch ? "batch"
                                                                                        : "never";
  LOG_INFO("store %s loaded in %d ms: %u retained messages, %u persistent sessions with %u queued or in-flight "
           "messages, %u expired dropped, %u corrupt records skipped (--fsync=%s)",
           options_.persistence.data_dir, restored_.load_ms, restored_retained_.size(), restored_.sessions,
           restored_.outgoing_messages, restored_.expired_dropped, restored_.corrupt_skipped, fsync);
  return true;
}

std::shared_ptr<const auth::PasswordVerifier> BrokerImpl::load_password_verifier(const std::string& path,
                                                                                std::string* error) {
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
    return nullptr;
  }
  LOG_INFO("password file %s: %u users", path, file->size());
  return std::make_shared<auth::PasswordFileVerifier>(std::move(file));
}

bool BrokerImpl::load_password_files(uint32_t count, std::string* error) {
  std::vector<std::shared_ptr<const auth::PasswordVerifier>> verifiers(listeners_.size());
  bool any = false;
  for (size_t index = 0; index < listeners_.size(); ++index) {
    const std::string& path = listeners_[index].password_file;
    if (path.empty()) continue;
    verifiers[index] = load_password_verifier(path, error);
    if (verifiers[index] == nullptr) return false;
    any = true;
  }
  if (!any) return true;
  password_checker_ = std::make_unique<auth::PasswordChecker>(
      count, options_.password_check_threads, options_.password_check_queue, std::move(verifiers),
      [this](uint32_t shard) { shards_[shard]->wake_from_outside(); },
      /*stale_after_ms=*/int64_t{options_.connect_timeout_seconds} * 1000);
  return true;
}

bool BrokerImpl::make_transport_factories(uint32_t count, std::string* error) {
  transport_factories_.clear();
  transport_factories_.resize(count);
  bool any_tls = false;
  for (const ListenerOptions& listener : listeners_) any_tls = any_tls || listener.tls;
  if (any_tls && !tls_library_contexts_.make(count, error)) return false;
  for (uint32_t shard = 0; shard < count; ++shard) {
    for (size_t index = 0; index < listeners_.size(); ++index) {
      const transport::ListenerTransportFactory* first =
          shard == 0 ? nullptr
                     : static_cast<const transport::ListenerTransportFactory*>(transport_factories_[0][index].get());
      auto factory = transport::ListenerTransportFactory::create(listeners_[index], options_.max_packet_size, first,
                                                                 tls_library_contexts_.get(shard), error);
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

// Control mutex held: queues visit for `shard`, counted in *done once it ran.
bool BrokerImpl::post_run(uint32_t shard, const std::function<void(shard::Shard&)>& visit,
                          const std::shared_ptr<ShardCallbacksDone>& done) {
  shard::ControlItem item;
  item.kind = shard::ControlItem::Kind::kRun;
  item.run = [visit, done](shard::Shard& on) {
    visit(on);
    std::lock_guard done_lock(done->mutex);
    ++done->ran;
    done->changed.notify_all();
  };
  return shards_[shard]->post_control(std::move(item));
}

uint32_t BrokerImpl::run_on_each_shard(const std::function<void(shard::Shard&)>& visit,
                                       std::chrono::milliseconds timeout) {
  auto done = std::make_shared<ShardCallbacksDone>();
  uint32_t posted = 0;
  {
    std::lock_guard lock(control_mutex_);
    if (!running_.load(std::memory_order_acquire)) return 0;
    for (uint32_t shard = 0; shard < shards_.size(); ++shard) posted += post_run(shard, visit, done) ? 1 : 0;
  }
  std::unique_lock lock(done->mutex);
  done->changed.wait_for(lock, timeout, [&] { return done->ran == posted; });
  return done->ran;
}

bool BrokerImpl::run_on_shard(uint32_t shard, const std::function<void(shard::Shard&)>& visit,
                              std::chrono::milliseconds timeout) {
  auto done = std::make_shared<ShardCallbacksDone>();
  {
    std::lock_guard lock(control_mutex_);
    if (!running_.load(std::memory_order_acquire) || shard >= shards_.size()) return false;
    if (!post_run(shard, visit, done)) return false;
  }
  std::unique_lock lock(done->mutex);
  return done->changed.wait_for(lock, timeout, [&] { return done->ran == 1; });
}

// SIGHUP: every listener's password file and TLS files are read again; one that fails keeps
// what was loaded before (and says why, with the file and line). Connected clients are not
// touched: new connections see the new files.
bool BrokerImpl::reload(std::string* report) {
  std::lock_guard lock(control_mutex_);
  report->clear();
  if (shards_.empty()) {
    *report = "the broker is not running";
    return false;
  }
  bool all_reloaded = true;
  auto note = [&](const std::string& line, bool ok) {
    if (ok) {
      LOG_INFO("reload: %s", line);
    } else {
      LOG_ERROR("reload: %s", line);
      all_reloaded = false;
    }
    *report += line + "\n";
  };
  for (size_t index = 0; index < listeners_.size(); ++index) {
    const ListenerOptions& listener = listeners_[index];
    if (!listener.password_file.empty() && password_checker_ != nullptr) {
      std::string error;
      auto verifier = load_password_verifier(listener.password_file, &error);
      if (verifier == nullptr) {
        note(error + " (the previous file stays in use)", false);
      } else {
        password_checker_->set_verifier(static_cast<uint8_t>(index), std::move(verifier));
        note("password file " + listener.password_file + " reloaded", true);
      }
    }
    if (!listener.acl_file.empty()) {
      std::string why;
      std::shared_ptr<const auth::AclFile> acl = auth::load_acl_file(listener.acl_file, &why);
      if (acl == nullptr) {
        note("ACL file " + why + " (the previous file stays in use)", false);
      } else {
        for (const std::string& warning : acl->warnings()) LOG_WARNING("ACL file %s", warning);
        bool all_posted = true;
        for (size_t shard = 0; shard < shards_.size(); ++shard) {
          shard::ControlItem item;
          item.kind = shard::ControlItem::Kind::kReplaceAcl;
          item.listener = static_cast<uint8_t>(index);
          item.acl = acl;
          if (!shards_[shard]->post_control(std::move(item))) {
            note("ACL file " + listener.acl_file + ": shard " + std::to_string(shard) +
                     "'s control queue is full; it keeps the previous one",
                 false);
            all_posted = false;
          }
        }
        if (all_posted) note("ACL file " + listener.acl_file + " reloaded", true);
      }
    }
    if (listener.tls) {
      // Every shard's new context first: a certificate that fails changes nothing anywhere.
      std::vector<std::unique_ptr<transport::ListenerTransportFactory>> factories;
      std::string error;
      for (size_t shard = 0; shard < shards_.size() && error.empty(); ++shard) {
        factories.push_back(transport::ListenerTransportFactory::create(
            listener, options_.max_packet_size, shard == 0 ? nullptr : factories[0].get(),
            tls_library_contexts_.get(shard), &error));
      }
      std::string name = "TLS files of listener " + std::to_string(index) + " (port " +
                         std::to_string(listener_ports_[index]) + ")";
      if (!error.empty()) {
        note(name + ": " + error + " (the previous certificates stay in use)", false);
        continue;
      }
      for (size_t shard = 0; shard < shards_.size(); ++shard) {
        shard::ControlItem item;
        item.kind = shard::ControlItem::Kind::kReplaceTransportFactory;
        item.listener = static_cast<uint8_t>(index);
        item.factory = std::move(factories[shard]);
        if (!shards_[shard]->post_control(std::move(item))) {
          note(name + ": shard " + std::to_string(shard) + "'s control queue is full; it keeps the previous ones", false);
        }
      }
      note(name + " reloaded", true);
    }
  }
  if (report->empty()) *report = "nothing to reload (no password, ACL or TLS files)\n";
  return all_reloaded;
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
    std::vector<broker::BindAddress> addresses = broker::bind_addresses(listener.address);
    // A host name is resolved here, once, before any shard runs (it may block on DNS): every
    // address it has is bound, as Mosquitto does; one that does not resolve fails the start.
    if (listener.address != "localhost" && io::is_host_name(listener.address)) {
      std::vector<std::string> numeric;
      if (!io::resolve_host_addresses(listener.address, &numeric, error)) {
        *error = "listener " + broker::listener_url(listener, listener.address, listener.port) + ": " + *error;
        close_all();
        return false;
      }
      addresses.clear();
      for (const std::string& address : numeric) addresses.push_back({address, /*optional=*/false});
      LOG_INFO("host name %s resolved to %s", listener.address, absl::StrJoin(numeric, ", "));
    }
    for (const broker::BindAddress& address : addresses) {
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
bool Broker::reload(std::string* report) { return impl_->reload(report); }
uint32_t Broker::shard_count() const { return static_cast<uint32_t>(impl_->shards_.size()); }
uint16_t Broker::http_port() const { return impl_->admin_ != nullptr ? impl_->admin_->port() : 0; }
BrokerStats Broker::stats(std::chrono::milliseconds timeout) const {
  return admin::broker_stats(shard::collect_shard_snapshots(*impl_, timeout));
}

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
