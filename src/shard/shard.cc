// The shard event loop; see shard.h: start-up, the turn (enter the kernel, reap, tick,
// end of turn), accepting, shutdown and the stats line. Receiving and parking are in
// shard_input.cc, sending and closing in shard_output.cc, cross-shard traffic in
// shard_peers.cc. Everything here runs on the shard's thread except request_stop().
#include "shard/shard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/assert.h"
#include "base/log.h"
#include "shard/wake.h"

namespace coremq::shard {

using broker::Connection;
using broker::ConnectionState;
using broker::CrossShardItem;

namespace {
constexpr int64_t kTickIntervalMs = 250;
constexpr int64_t kIdleSweepIntervalMs = 1000;
// Completions a coalescing wait (--coalesce-wait-us) waits for before its window ends: more
// than a quiet loop gets within it, so the window decides.
constexpr uint32_t kCoalesceBatch = 256;
constexpr int64_t kShutdownGraceMs = 3000;
}  // namespace

Shard::Shard(uint32_t shard_id, uint32_t shard_count, const Options& options, SharedState& shared, int listen_fd)
    : Shard(shard_id, shard_count, options, shared,
            listen_fd >= 0 ? std::vector<ListenSocket>{ListenSocket{listen_fd, 0}} : std::vector<ListenSocket>{}) {}

Shard::Shard(uint32_t shard_id, uint32_t shard_count, const Options& options, SharedState& shared,
             std::vector<ListenSocket> listen_sockets)
    : shard_id_(shard_id),
      shard_count_(shard_count),
      options_(options),
      shared_(shared),
      listen_sockets_(std::move(listen_sockets)) {
  event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  COREMQ_ASSERT_MSG(event_fd_ >= 0, "eventfd failed");
  staged_.resize(shard_count);
  peer_needs_wake_.resize(shard_count, false);
  // Room for every decision the shard may wait for, and as many late answers again.
  hook_channel_ = std::make_shared<internal::HookChannel>(
      std::max<size_t>(2, 2 * size_t{std::max<uint32_t>(1, options.max_pending_hook_decisions)}));
  hook_channel_->shard = this;
}

Shard::~Shard() {
  COREMQ_ASSERT(!thread_.joinable());
  {
    // A HookCompletion answered from now on finds no shard to wake.
    std::lock_guard lock(hook_channel_->mutex);
    hook_channel_->shard = nullptr;
  }
  if (event_fd_ >= 0) ::close(event_fd_);
  for (const ListenSocket& socket : listen_sockets_) ::close(socket.fd);
}

void Shard::set_peers(std::vector<Peer> peers, std::vector<CrossShardRing*> inbound) {
  COREMQ_ASSERT(peers.size() == shard_count_ && inbound.size() == shard_count_);
  peers_ = std::move(peers);
  inbound_ = std::move(inbound);
}

void Shard::start(int cpu) {
  thread_ = std::thread([this, cpu] { run(cpu); });
}

void Shard::join() {
  if (thread_.joinable()) thread_.join();
}

void Shard::request_stop() {
  stop_requested_.store(true, std::memory_order_release);
  wake_by_eventfd(event_fd_);
}

bool Shard::post_control(ControlItem&& item) {
  if (!control_.try_push(std::move(item))) return false;
  wake_by_eventfd(event_fd_);
  return true;
}

void Shard::drain_control() {
  ControlItem item;
  while (control_.try_pop(item)) {
    switch (item.kind) {
      case ControlItem::Kind::kReplaceTransportFactory:
        if (item.listener < transport_factories_.size()) {
          // The old factory's SSL_CTX lives on in the transports it made (reference counted);
          // the library context is the shard's, kept by the broker until exit.
          transport_factories_[item.listener] = std::move(item.factory);
        }
        break;
      case ControlItem::Kind::kReplaceAcl:
        if (state_) state_->replace_listener_acl(item.listener, std::move(item.acl));
        break;
      case ControlItem::Kind::kRun:
        if (state_ && item.run) item.run(*this);
        break;
    }
  }
}

bool Shard::check_password(uint64_t token, uint8_t listener, std::string_view username, bool has_password,
                           std::string_view password) {
  if (password_checker_ == nullptr) return false;
  return password_checker_->submit(shard_id_, auth::PasswordCheckRequest{token, listener, has_password,
                                                                         std::string(username), std::string(password)});
}

HookCompletion Shard::defer_decision(uint64_t token, uint32_t index) {
  return internal::HookChannelAccess::make(hook_channel_, token, index);
}

void Shard::drain_hook_answers() {
  if (!state_) return;
  // Bounded by the ring: each answer pushed before this look is handled once.
  for (size_t taken = 0; taken < hook_channel_->answers.capacity(); ++taken) {
    broker::HookAnswer* answer = hook_channel_->answers.front();
    if (answer == nullptr) break;
    broker::HookAnswer taken_answer = std::move(*answer);
    hook_channel_->answers.pop();
    state_->on_hook_answer(std::move(taken_answer));
  }
  state_->counters().hook_answers_dropped = hook_channel_->answers_dropped.load(std::memory_order_relaxed);
}

bool Shard::password_verdicts_ready() const {
  return password_checker_ != nullptr && password_checker_->has_verdicts(shard_id_);
}

void Shard::drain_password_verdicts() {
  if (password_checker_ == nullptr || !state_) return;
  password_checker_->drain_verdicts(
      shard_id_, [this](auth::PasswordVerdict&& verdict) { state_->on_password_verdict(verdict.token, verdict.accepted, verdict.expired); });
}

void Shard::release_leftovers() {
  COREMQ_ASSERT(!thread_.joinable());
  for (auto& staged : staged_) {
    for (const CrossShardItem& item : staged) broker::release_cross_shard_item(item);
    staged.clear();
  }
  for (CrossShardRing* ring : inbound_) {
    if (ring == nullptr) continue;
    ring->drain([](CrossShardItem&& item) { broker::release_cross_shard_item(item); }, ring->capacity());
  }
  release_local_leftovers();
}

void Shard::run(int cpu) {
  base::set_log_thread_shard(static_cast<int>(shard_id_));
  char name[16];
  std::snprintf(name, sizeof(name), "coremq-shard%u", shard_id_);
  pthread_setname_np(pthread_self(), name);
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
      LOG_WARNING("could not pin to CPU %d; running unpinned", cpu);
    }
  }
  bool ok = set_up();
  if (!ok) {
    LOG_ERROR("shard start-up failed: %s", startup_error_);
    shared_.shards_failed.fetch_add(1);
  }
  shared_.shards_ready.fetch_add(1, std::memory_order_acq_rel);
  // Every shard must be able to receive before any accepts a client that may be handed over.
  while (shared_.shards_ready.load(std::memory_order_acquire) < shard_count_) std::this_thread::yield();
  if (!ok || shared_.shards_failed.load() > 0) return;
  exchange_restored_interest();
  loop();
}

bool Shard::set_up() {
  if (!ring_.init(options_.ring_entries, &startup_error_)) return false;
  if (!buffers_.init(ring_, /*group_id=*/0, options_.receive_buffer_count, options_.receive_buffer_size,
                     &startup_error_)) {
    startup_error_ += " (provided buffer rings need Linux 5.19 or later)";
    return false;
  }
  state_ = std::make_unique<broker::ShardState>(shard_id_, shard_count_, options_, *this);
  state_->set_listener_security(listener_security_);
  update_clock();
  restore_from_store();
  next_tick_ms_ = now_ms_ + kTickIntervalMs;
  next_idle_sweep_ms_ = now_ms_ + kIdleSweepIntervalMs;
  arm_idle_accepts();
  arm_eventfd();
  start_bridges();
  LOG_DEBUG("ring ready: defer_taskrun=%d msg_ring=%d multishot accept=%d recv=%d", ring_.features().defer_taskrun,
            ring_.features().msg_ring, ring_.features().multishot_accept, ring_.features().recv_multishot);
  return true;
}

void Shard::update_clock() {
  if (manual_clock_ms_ >= 0) {
    now_ms_ = manual_clock_ms_;
    return;
  }
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  now_ms_ = int64_t{now.tv_sec} * 1000 + now.tv_nsec / 1000000;
}

void Shard::loop() {
  while (turn()) {
  }
  finish_loop();
}

namespace {
// CLOCK_MONOTONIC (not the coarse clock the ticks use): two reads per turn, for the latency
// and turn-duration histograms.
int64_t monotonic_us() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t{now.tv_sec} * 1000000 + now.tv_nsec / 1000;
}
}  // namespace

size_t Shard::inbound_ring_depth() const {
  size_t depth = 0;
  for (const CrossShardRing* ring : inbound_) {
    if (ring != nullptr) depth += ring->size_approx();
  }
  return depth;
}

bool Shard::turn() {
  enter_kernel();
  update_clock();
  int64_t turn_started_us = monotonic_us();
  state_->set_turn_time_us(turn_started_us);
  start_turn_handshakes();
  // Items from other shards first: anything a peer pushed before this turn's socket data
  // arrived is handled before that data, which bounds how stale this shard's view of its
  // peers is (the SUBACK and retained PUBACK promises rest on barriers, not on this).
  drain_inbound();
  unsigned head = 0;
  unsigned count = 0;
  io_uring_cqe* cqe = nullptr;
  io_uring_for_each_cqe(ring_.raw(), head, cqe) {
    handle_completion(cqe);
    ++count;
  }
  io_uring_cq_advance(ring_.raw(), count);
  drain_inbound();
  drain_password_verdicts();
  drain_store_answers();
  drain_hook_answers();
  drain_control();
  drain_local_intake();
  if (stop_requested_.load(std::memory_order_acquire) && !stopping_) begin_shutdown();
  if (now_ms_ >= next_tick_ms_) tick();
  end_of_turn();
  turn_duration_us_.observe(static_cast<uint64_t>(std::max<int64_t>(0, monotonic_us() - turn_started_us)));
  return !(stopping_ && (connections_.empty() || now_ms_ >= shutdown_deadline_ms_));
}

void Shard::finish_loop() {
  submit_prepared_wakes_before_exit();
  // Leave nothing behind: sockets still open past the grace period are closed, and
  // whatever other shards sent is dropped (references released, handed-off fds closed).
  closing_.clear();
  for (Connection* connection : connections_) {
    ::close(connection->fd);
    shared_.connections_total.fetch_sub(1, std::memory_order_relaxed);
    closed_at_exit_.emplace_back(connection);
  }
  connections_.clear();
  for (auto& bridge : bridges_) bridge->close_at_exit();
  loop_ended_.store(true, std::memory_order_release);
  drain_inbound();
  LOG_DEBUG("shard stopped");
}

void Shard::enter_kernel() {
  // Blocking is safe only if no peer can have pushed without seeing sleeping_ set. This
  // is a store followed by loads of other variables (the rings' indices, read with acquire
  // in inbound_empty): C++ orders that pair only through a seq_cst fence between them, which
  // pairs with the fence a producer puts between its push and its load of sleeping_ (in
  // flush_cross_shard). In the fences' single total order either the producer's fence comes
  // first, and then the loads below see its push, or this one does, and then the producer
  // sees sleeping_ set and wakes this shard. A seq_cst store alone would not do: a later
  // acquire load may still be satisfied before it (store-load reordering).
  sleeping_.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // Everything prepared so far, wake-ups included, goes out with the submission below.
  wakes_prepared_.clear();
  // Items that did not fit a peer's ring must not wait for a completion or the next tick:
  // the peer frees room as it drains (it stays awake while its ring holds items) and
  // nothing wakes this shard when it does, so it keeps turning until they are pushed.
  if (!inbound_empty() || io_uring_cq_ready(ring_.raw()) > 0 || has_staged_items() || handshakes_deferred_ ||
      local_work_ready() || password_verdicts_ready() || store_answers_ready() ||
      hook_answers_ready()) {
    sleeping_.store(false, std::memory_order_relaxed);
    int result = io_uring_submit_and_get_events(ring_.raw());
    if (result < 0 && result != -EINTR && result != -EBUSY) LOG_WARNING("io_uring submit: %s", std::strerror(-result));
    return;
  }
  int64_t wait_ms = std::max<int64_t>(1, next_tick_ms_ - now_ms_);
  __kernel_timespec timeout{};
  timeout.tv_sec = wait_ms / 1000;
  timeout.tv_nsec = (wait_ms % 1000) * 1000000;
  int result = 0;
  if (options_.coalesce_wait_us > 0 && ring_.features().min_wait) {
    // A quiet loop handles what arrives within the window in one wake-up (--coalesce-wait-us).
    result = ring_.submit_and_wait_min(kCoalesceBatch, options_.coalesce_wait_us, timeout);
  } else {
    io_uring_cqe* cqe = nullptr;
    result = io_uring_submit_and_wait_timeout(ring_.raw(), &cqe, 1, &timeout, nullptr);
  }
  if (result < 0 && result != -ETIME && result != -EINTR && result != -EBUSY) {
    LOG_WARNING("io_uring wait: %s", std::strerror(-result));
  }
  sleeping_.store(false, std::memory_order_relaxed);
}

bool Shard::has_staged_items() const {
  for (const auto& items : staged_) {
    if (!items.empty()) return true;
  }
  return false;
}

bool Shard::inbound_empty() const {
  for (uint32_t peer = 0; peer < shard_count_; ++peer) {
    if (peer != shard_id_ && !inbound_[peer]->empty()) return false;
  }
  return true;
}

void Shard::handle_completion(const io_uring_cqe* cqe) {
  uint64_t data = cqe->user_data;
  auto tag = static_cast<Tag>(data & 7);
  void* pointer = reinterpret_cast<void*>(data & ~uint64_t{7});
  switch (tag) {
    case Tag::kAccept:
      on_accept(static_cast<ListenSocket*>(pointer), cqe->res, (cqe->flags & IORING_CQE_F_MORE) != 0);
      break;
    case Tag::kReceive: on_receive(static_cast<Connection*>(pointer), cqe); break;
    case Tag::kSend: on_send(static_cast<Connection*>(pointer), cqe->res); break;
    case Tag::kEventfd: on_eventfd(); break;
    case Tag::kWake: break;  // a peer's MSG_RING: its items are drained below
    case Tag::kIgnore:
      // A bridge's operation (its record's address; null for a cancel, whose result is moot).
      static_assert(static_cast<uint64_t>(Tag::kIgnore) == Bridge::kUserDataTag);
      if (pointer != nullptr) Bridge::on_completion(data, cqe->res, now_ms_);
      break;
    case Tag::kDiscard: on_discard(static_cast<Connection*>(pointer), cqe->res); break;
    case Tag::kWakeSent: on_wake_sent(static_cast<Shard*>(pointer), cqe->res); break;
  }
}

// ---- accepting -------------------------------------------------------------

void Shard::cancel_operation(void* pointer, Tag tag) {
  // The cancellation's own completion says nothing the cancelled operation's will not.
  io_uring_sqe* sqe = ring_.next_sqe();
  io_uring_prep_cancel64(sqe, user_data(pointer, tag), 0);
  io_uring_sqe_set_data64(sqe, user_data(nullptr, Tag::kIgnore));
}

void Shard::arm_accept(ListenSocket& socket) {
  if (socket.fd < 0 || stopping_) return;
  io_uring_sqe* sqe = ring_.next_sqe();
  if (ring_.features().multishot_accept) {
    io_uring_prep_multishot_accept(sqe, socket.fd, nullptr, nullptr, SOCK_CLOEXEC);
  } else {
    io_uring_prep_accept(sqe, socket.fd, nullptr, nullptr, SOCK_CLOEXEC);
  }
  io_uring_sqe_set_data64(sqe, user_data(&socket, Tag::kAccept));
  socket.accept_armed = true;
}

void Shard::arm_idle_accepts() {
  for (ListenSocket& socket : listen_sockets_) {
    if (!socket.accept_armed) arm_accept(socket);
  }
}

void Shard::on_accept(ListenSocket* socket, int result, bool more) {
  COREMQ_ASSERT(socket >= listen_sockets_.data() && socket < listen_sockets_.data() + listen_sockets_.size());
  if (!more) socket->accept_armed = false;
  if (result < 0) {
    // EMFILE/ENFILE: out of descriptors; the multishot accept ends and is re-armed next tick.
    if (result != -ECANCELED && result != -EINVAL) LOG_WARNING("accept failed: %s", std::strerror(-result));
    return;
  }
  // A one-shot accept (older kernels) is re-armed for every connection, refused or not.
  if (!more && !stopping_) arm_accept(*socket);
  int fd = result;
  if (stopping_) {
    ::close(fd);
    return;
  }
  uint32_t before = shared_.connections_total.fetch_add(1, std::memory_order_relaxed);
  if (before >= options_.max_connections) {
    shared_.connections_total.fetch_sub(1, std::memory_order_relaxed);
    uint64_t refused = ++state_->counters().connections_refused_limit;
    // One line a second at most: a flood of refused connections must not flood the log.
    if (now_ms_ >= next_refusal_log_ms_) {
      next_refusal_log_ms_ = now_ms_ + 1000;
      LOG_WARNING("refusing connections: --max-connections=%u reached (%u refused so far)", options_.max_connections,
                  refused);
    }
    ::close(fd);
    return;
  }
  int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  if (options_.tcp_user_timeout_seconds > 0) {
    // Data the peer does not acknowledge for this long (a dead or unplugged peer) makes the
    // kernel drop the connection, so its pending send fails instead of retransmitting for about
    // 15 minutes (tcp_retries2); the fd keeps the option across a hand-off to another shard.
    unsigned int timeout_ms = options_.tcp_user_timeout_seconds * 1000;
    ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof(timeout_ms));
  }
  ++state_->counters().connections_accepted;
  Connection* connection = open_connection(fd, now_ms_);
  connection->listener = socket->listener;
  bool attached = attach_channel(connection);
  connection->payloads_by_reference = connection->channel == nullptr;
  state_->on_connection_opened(connection);
  if (!attached) {
    state_->on_transport_error(connection, "no transport for a new connection (out of memory)");
    return;
  }
  arm_receive(connection);
}

broker::PeerAddress Shard::peer_address(const Connection& connection) {
  // One getpeername at CONNECT (not on the publish path); a socket the client already reset
  // has no peer any more, and the address then shows as unknown.
  broker::PeerAddress peer;
  if (connection.in_process || connection.fd < 0) return peer;
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (::getpeername(connection.fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return peer;
  if (address.ss_family == AF_INET) {
    const auto* ipv4 = reinterpret_cast<const sockaddr_in*>(&address);
    std::memcpy(peer.bytes, &ipv4->sin_addr, 4);
    peer.port = ntohs(ipv4->sin_port);
    peer.family = 4;
  } else if (address.ss_family == AF_INET6) {
    const auto* ipv6 = reinterpret_cast<const sockaddr_in6*>(&address);
    std::memcpy(peer.bytes, &ipv6->sin6_addr, 16);
    peer.port = ntohs(ipv6->sin6_port);
    peer.family = 6;
  }
  return peer;
}

Connection* Shard::open_connection(int fd, int64_t accepted_at_ms) {
  auto* connection = new Connection();
  connection->fd = fd;
  connection->accepted_at_ms = accepted_at_ms;
  connections_.insert(connection);
  return connection;
}

// ---- eventfd, ticks, end of turn ---------------------------------------------

void Shard::arm_eventfd() {
  io_uring_sqe* sqe = ring_.next_sqe();
  io_uring_prep_read(sqe, event_fd_, &eventfd_value_, sizeof(eventfd_value_), 0);
  io_uring_sqe_set_data64(sqe, user_data(this, Tag::kEventfd));
}

void Shard::on_eventfd() { arm_eventfd(); }

void Shard::tick() {
  next_tick_ms_ = now_ms_ + kTickIntervalMs;
  state_->on_tick(now_ms_);
  tick_store();
  tick_local();
  for (auto& bridge : bridges_) bridge->on_tick(now_ms_);
  check_close_deadlines();
  if (options_.stats_interval_seconds > 0 && now_ms_ >= next_stats_ms_) {
    next_stats_ms_ = now_ms_ + int64_t{options_.stats_interval_seconds} * 1000;
    log_stats();
  }
  arm_idle_accepts();
  if (now_ms_ >= next_idle_sweep_ms_) {
    next_idle_sweep_ms_ = now_ms_ + kIdleSweepIntervalMs;
    // Idle connections hold no buffers: an idle fleet costs only its bookkeeping.
    for (Connection* connection : connections_) {
      if (!connection->send_in_flight && !has_unsent_output(connection)) {
        connection->sending.shrink();
        connection->output.shrink();
        connection->references.reset();
        if (connection->channel != nullptr) connection->channel->wire_pending.shrink();
      }
    }
  }
}

void Shard::end_of_turn() {
  flush_sends();
  flush_cross_shard();
  update_input_pause();
  purge_closed_parked();
  if (replay_wanted_ && !input_paused_ && parked_live_ > 0) {
    replay_parked();
    // The replayed input made output and cross-shard items of its own, and may have closed
    // connections that still had entries.
    flush_sends();
    flush_cross_shard();
    update_input_pause();
    purge_closed_parked();
  }
  if (parked_live_ == 0) replay_wanted_ = false;
  // Starved receives run again once some buffer came back (never during a pause); entries
  // of connections closed or moved this turn leave here, before anything is freed below.
  if (!starved_.empty()) {
    bool rearm = !input_paused_ && (buffers_returned_ || parked_live_ == 0);
    if (rearm || starved_stale_) {
      std::erase_if(starved_, [&](Connection* connection) {
        if (!connection->receive_starved) return true;
        if (!rearm) return false;
        unstarve(connection);
        rearm_list_.push_back(connection);
        return true;
      });
    }
  }
  starved_stale_ = false;
  buffers_returned_ = false;
  buffers_.publish();
  submit_to_store();
  // rearm_list_, flush_list_ and release_list_ live for one turn: a connection on them is
  // freed only below, after the re-arms. starved_ and parked_ outlive the turn: each entry
  // keeps its connection alive (an operation in flight) until it leaves them, which a close
  // or a hand-off makes happen by this point (forget_deferred_input).
  for (Connection* connection : rearm_list_) {
    if (wants_receive(connection)) arm_receive(connection);
  }
  rearm_list_.clear();
  for (Connection* connection : release_list_) {
    COREMQ_ASSERT(connection->parked_count == 0 && !connection->receive_starved);
    if (connection->fd >= 0) {
      ::close(connection->fd);
      shared_.connections_total.fetch_sub(1, std::memory_order_relaxed);
    }
    delete connection;
  }
  release_list_.clear();
}

void Shard::log_stats() const {
  // The format is documented in README.md and read by the integration tests: "stats", the
  // shard's open sockets, then every ShardCounters field as name=value in declaration order.
  std::string line = absl::StrCat("stats sockets=", connections_.size());
  broker::for_each_counter(state_->counters(),
                           [&](const char* name, uint64_t value) { absl::StrAppend(&line, " ", name, "=", value); });
  LOG_INFO("%s", line);
}

void Shard::begin_shutdown() {
  stopping_ = true;
  shutdown_deadline_ms_ = now_ms_ + kShutdownGraceMs;
  for (ListenSocket& socket : listen_sockets_) {
    if (socket.accept_armed) cancel_operation(&socket, Tag::kAccept);
  }
  for (auto& bridge : bridges_) bridge->stop();
  state_->on_shutdown();
}

}  // namespace coremq::shard
