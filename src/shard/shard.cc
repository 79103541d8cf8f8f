// The shard event loop; see shard.h. Everything here runs on the shard's thread
// except request_stop().
#include "shard/shard.h"

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
constexpr int64_t kShutdownGraceMs = 3000;
// Items taken from one inbound ring per turn, so one busy peer cannot starve the sockets.
constexpr size_t kInboundBatchMax = 4096;
// A connection whose send buffers are idle gives their memory back past this size at
// once, and entirely at the next idle sweep.
constexpr size_t kRetainedSendBufferMax = 64 * 1024;
constexpr size_t kSmallSendBufferMax = 512;
// Parked "buffer ids" that are not buffers (ids stop at 32767): the end of the stream, and
// an adopted connection's first bytes, kept in its input while parked.
constexpr uint16_t kFirstParkedMarker = 0xFFFE;
constexpr uint16_t kParkedInput = 0xFFFE;
constexpr uint16_t kParkedEndOfStream = 0xFFFF;
}  // namespace

Shard::Shard(uint32_t shard_id, uint32_t shard_count, const Options& options, SharedState& shared, int listen_fd)
    : shard_id_(shard_id), shard_count_(shard_count), options_(options), shared_(shared), listen_fd_(listen_fd) {
  event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  COREMQ_ASSERT_MSG(event_fd_ >= 0, "eventfd failed");
  staged_.resize(shard_count);
  peer_needs_wake_.resize(shard_count, false);
}

Shard::~Shard() {
  COREMQ_ASSERT(!thread_.joinable());
  if (event_fd_ >= 0) ::close(event_fd_);
  if (listen_fd_ >= 0) ::close(listen_fd_);
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
  uint64_t one = 1;
  ssize_t written = ::write(event_fd_, &one, sizeof(one));
  (void)written;  // a full eventfd counter already means "wake up"
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
  update_clock();
  next_tick_ms_ = now_ms_ + kTickIntervalMs;
  next_idle_sweep_ms_ = now_ms_ + kIdleSweepIntervalMs;
  arm_accept();
  arm_eventfd();
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

bool Shard::turn() {
  enter_kernel();
  update_clock();
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
  if (stop_requested_.load(std::memory_order_acquire) && !stopping_) begin_shutdown();
  if (now_ms_ >= next_tick_ms_) tick();
  end_of_turn();
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
  if (!inbound_empty() || io_uring_cq_ready(ring_.raw()) > 0 || has_staged_items()) {
    sleeping_.store(false, std::memory_order_relaxed);
    int result = io_uring_submit_and_get_events(ring_.raw());
    if (result < 0 && result != -EINTR && result != -EBUSY) LOG_WARNING("io_uring submit: %s", std::strerror(-result));
    return;
  }
  int64_t wait_ms = std::max<int64_t>(1, next_tick_ms_ - now_ms_);
  __kernel_timespec timeout{};
  timeout.tv_sec = wait_ms / 1000;
  timeout.tv_nsec = (wait_ms % 1000) * 1000000;
  io_uring_cqe* cqe = nullptr;
  int result = io_uring_submit_and_wait_timeout(ring_.raw(), &cqe, 1, &timeout, nullptr);
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
    case Tag::kAccept: on_accept(cqe->res, (cqe->flags & IORING_CQE_F_MORE) != 0); break;
    case Tag::kReceive: on_receive(static_cast<Connection*>(pointer), cqe); break;
    case Tag::kSend: on_send(static_cast<Connection*>(pointer), cqe->res); break;
    case Tag::kEventfd: on_eventfd(); break;
    case Tag::kWake: break;  // a peer's MSG_RING: its items are drained below
    case Tag::kIgnore: break;
    case Tag::kDiscard: on_discard(static_cast<Connection*>(pointer), cqe->res); break;
    case Tag::kWakeSent: on_wake_sent(static_cast<Shard*>(pointer), cqe->res); break;
  }
}

// ---- accepting -------------------------------------------------------------

void Shard::arm_accept() {
  if (listen_fd_ < 0 || stopping_) return;
  io_uring_sqe* sqe = ring_.next_sqe();
  if (ring_.features().multishot_accept) {
    io_uring_prep_multishot_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  } else {
    io_uring_prep_accept(sqe, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  }
  io_uring_sqe_set_data64(sqe, user_data(this, Tag::kAccept));
  accept_armed_ = true;
}

void Shard::on_accept(int result, bool more) {
  if (!more) accept_armed_ = false;
  if (result < 0) {
    // EMFILE/ENFILE: out of descriptors; the multishot accept ends and is re-armed next tick.
    if (result != -ECANCELED && result != -EINVAL) LOG_WARNING("accept failed: %s", std::strerror(-result));
    return;
  }
  // A one-shot accept (older kernels) is re-armed for every connection, refused or not.
  if (!more && !stopping_) arm_accept();
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
  state_->on_connection_opened(connection);
  arm_receive(connection);
}

Connection* Shard::open_connection(int fd, int64_t accepted_at_ms) {
  auto* connection = new Connection();
  connection->fd = fd;
  connection->accepted_at_ms = accepted_at_ms;
  connections_.insert(connection);
  return connection;
}

// ---- receiving -------------------------------------------------------------

void Shard::arm_receive(Connection* connection) {
  COREMQ_ASSERT(!connection->receive_armed && !connection->receive_starved);
  if (connection->state == ConnectionState::kClosing || connection->state == ConnectionState::kHandingOff) return;
  io_uring_sqe* sqe = ring_.next_sqe();
  // Until CONNECT is handled, one receive at a time: the connection may still move to
  // another shard, and no receive of this ring may be pending on it when it does.
  bool multishot = connection->state == ConnectionState::kConnected && ring_.features().recv_multishot;
  if (multishot) {
    io_uring_prep_recv_multishot(sqe, connection->fd, nullptr, 0, 0);
  } else {
    io_uring_prep_recv(sqe, connection->fd, nullptr, 0, 0);
  }
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffers_.group_id();
  io_uring_sqe_set_data64(sqe, user_data(connection, Tag::kReceive));
  connection->receive_armed = true;
  ++connection->operations_in_flight;
}

bool Shard::wants_receive(const Connection* connection) const {
  if (connection->receive_armed || connection->receive_starved || connection->socket_shut_down) return false;
  switch (connection->state) {
    case ConnectionState::kConnected: return true;
    // Before CONNECT is done (and during an MQTT 5 AUTH exchange) a connection reads with one
    // one-shot receive at a time, and none while it has input parked: when its parked CONNECT
    // is replayed it may move to another shard, and no receive may then be pending on it here.
    case ConnectionState::kAwaitingConnect:
    case ConnectionState::kAuthenticating: return connection->parked_count == 0;
    case ConnectionState::kHandingOff:
    case ConnectionState::kClosing: return false;
  }
  return false;
}

void Shard::on_receive(Connection* connection, const io_uring_cqe* cqe) {
  bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  if (!more) {
    connection->receive_armed = false;
    COREMQ_ASSERT(connection->operations_in_flight > 0);
    --connection->operations_in_flight;
  }
  int result = cqe->res;
  if (result > 0) {
    COREMQ_ASSERT(cqe->flags & IORING_CQE_F_BUFFER);
    auto buffer_id = static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    if (should_park(connection)) {
      park(connection, buffer_id, static_cast<uint32_t>(result));
    } else {
      deliver_received(connection, buffer_id, static_cast<uint32_t>(result));
    }
    if (!connection->receive_armed) rearm_list_.push_back(connection);
  } else if (result == -ENOBUFS) {
    // Every receive buffer is in use. While some are parked (input paused or held) they come
    // back only with a replay, so the receive waits for that (starve); otherwise they come
    // back at this turn's end and the receive is armed again then.
    if (input_paused_ || parked_live_ > 0) {
      starve(connection);
    } else {
      rearm_list_.push_back(connection);
    }
  } else {
    if (result < 0 && result != -ECONNRESET && result != -ECANCELED && result != -EPIPE) {
      LOG_DEBUG("receive on fd %d: %s", connection->fd, std::strerror(-result));
    }
    // The end of the stream waits behind the data parked before it: a DISCONNECT in that
    // data must be read before the connection counts as lost (and its will goes out).
    if (should_park(connection)) {
      park(connection, kParkedEndOfStream, 0);
    } else {
      state_->on_transport_closed(connection);
    }
  }
  maybe_release(connection);
}

bool Shard::should_park(const Connection* connection) const {
  switch (connection->state) {
    case ConnectionState::kConnected:
      // Behind the pause, behind a held answer, or behind its own parked input (order).
      return input_paused_ || connection->input_held || connection->parked_count > 0;
    case ConnectionState::kAwaitingConnect:
    case ConnectionState::kAuthenticating:
      // A CONNECT may take a session over, ending the old connection: it must not be handled
      // before anything parked earlier (that connection's DISCONNECT, say), so while anything
      // is parked it waits too, and the replay keeps arrival order.
      return input_paused_ || parked_live_ > 0;
    case ConnectionState::kHandingOff:
    case ConnectionState::kClosing: return false;
  }
  return false;
}

void Shard::park(Connection* connection, uint16_t buffer_id, uint32_t length) {
  ++connection->operations_in_flight;  // the connection outlives what is parked for it
  ++connection->parked_count;
  ++parked_live_;
  // Parked bytes are activity: the client did send within its keep-alive, the broker chose
  // not to read yet (ShardState::on_tick also spares a connection with parked input).
  if (buffer_id != kParkedEndOfStream) connection->last_packet_at_ms = now_ms_;
  // Without a pause or a hold it waits only behind other parked input: try at the turn's end.
  if (!input_paused_ && !connection->input_held) replay_wanted_ = true;
  parked_.push_back(ParkedReceive{connection, buffer_id, length});
}

Shard::ParkedReceive Shard::take_parked(size_t index) {
  ParkedReceive entry = parked_[index];
  COREMQ_ASSERT(entry.connection != nullptr && parked_live_ > 0);
  COREMQ_ASSERT(entry.connection->parked_count > 0 && entry.connection->operations_in_flight > 0);
  parked_[index].connection = nullptr;  // compacted away by compact_parked()
  --entry.connection->parked_count;
  --entry.connection->operations_in_flight;
  --parked_live_;
  return entry;
}

void Shard::recycle_parked(const ParkedReceive& entry) {
  if (entry.buffer_id >= kFirstParkedMarker) return;  // holds no receive buffer
  buffers_.recycle(entry.buffer_id);
  buffers_returned_ = true;
}

void Shard::compact_parked() {
  if (replay_depth_ > 0) return;  // a replay walks parked_ by index: compact only after it
  std::erase_if(parked_, [](const ParkedReceive& entry) { return entry.connection == nullptr; });
  COREMQ_ASSERT(parked_.size() == parked_live_);
}

void Shard::replay(const ParkedReceive& entry) {
  Connection* connection = entry.connection;
  bool one_shot = connection->state != ConnectionState::kConnected;
  deliver_received(connection, entry.buffer_id, entry.length);
  // A connection before CONNECT was not read while it had input parked (wants_receive).
  if (one_shot) rearm_list_.push_back(connection);
  maybe_release(connection);
}

void Shard::deliver_received(Connection* connection, uint16_t buffer_id, uint32_t length) {
  if (buffer_id == kParkedEndOfStream) {
    state_->on_transport_closed(connection);
    return;
  }
  if (buffer_id == kParkedInput) {
    // An adopted connection's bytes, kept in its input while they were parked.
    state_->on_bytes(connection, {});
    return;
  }
  state_->on_bytes(connection, {buffers_.buffer(buffer_id), length});
  buffers_.recycle(buffer_id);
  buffers_returned_ = true;
}

void Shard::replay_parked() {
  replay_wanted_ = false;
  ++replay_depth_;
  // Arrival order, except that a held connection's input stays (until resume_input), and
  // a connection before CONNECT parked after held input stays behind it (takeover order).
  bool behind_held = false;
  for (size_t i = 0; i < parked_.size() && !input_paused_; ++i) {
    Connection* connection = parked_[i].connection;
    if (connection == nullptr) continue;
    if (connection->state == ConnectionState::kClosing) {
      recycle_parked(take_parked(i));  // closed meanwhile (by an earlier entry, say): never replayed
      maybe_release(connection);
      continue;
    }
    if (connection->input_held) {
      behind_held = true;
      continue;
    }
    if (behind_held && connection->state != ConnectionState::kConnected) continue;
    replay(take_parked(i));
  }
  --replay_depth_;
  compact_parked();
}

void Shard::resume_input(Connection* connection) {
  COREMQ_ASSERT(!connection->input_held);
  if (connection->state == ConnectionState::kClosing) return;  // its entries are purged
  // Whatever waited behind this connection's input may go too, at the end of the turn.
  if (parked_live_ > 0) replay_wanted_ = true;
  // During a pause its input waits for the pause's end, in order with everyone else's.
  if (connection->parked_count == 0 || input_paused_) return;
  ++replay_depth_;
  for (size_t i = 0; i < parked_.size() && connection->parked_count > 0; ++i) {
    if (connection->input_held || input_paused_ || connection->state == ConnectionState::kClosing) break;
    if (parked_[i].connection == connection) replay(take_parked(i));
  }
  --replay_depth_;
  compact_parked();
}

void Shard::move_parked_input(Connection* connection, base::ByteBuffer& into) {
  for (size_t i = 0; i < parked_.size() && connection->parked_count > 0; ++i) {
    if (parked_[i].connection != connection) continue;
    ParkedReceive entry = take_parked(i);
    if (entry.buffer_id < kFirstParkedMarker) {
      into.append(std::span<const uint8_t>(buffers_.buffer(entry.buffer_id), entry.length));
    }
    recycle_parked(entry);
  }
  COREMQ_ASSERT(connection->parked_count == 0);
  // A connection before CONNECT parked behind this one may now be replayed.
  if (parked_live_ > 0) replay_wanted_ = true;
  compact_parked();
}

void Shard::starve(Connection* connection) {
  COREMQ_ASSERT(!connection->receive_starved && !connection->receive_armed);
  connection->receive_starved = true;
  ++connection->operations_in_flight;  // kept alive while on starved_ (removed on close)
  starved_.push_back(connection);
}

void Shard::unstarve(Connection* connection) {
  COREMQ_ASSERT(connection->receive_starved && connection->operations_in_flight > 0);
  connection->receive_starved = false;
  --connection->operations_in_flight;
}

void Shard::forget_deferred_input(Connection* connection, base::ByteBuffer* moved_input) {
  if (connection->receive_starved) {
    // Left on starved_ until this turn's end, which drops it before anything is freed: no
    // search per close (a shutdown under a pause closes every starved connection at once).
    unstarve(connection);
    starved_stale_ = true;
  }
  if (connection->parked_count == 0) return;
  if (moved_input != nullptr) {
    move_parked_input(connection, *moved_input);  // a hand-off: the bytes go along now
  } else {
    // A closed connection's entries are never replayed (replays skip a closing connection)
    // and are dropped by one pass at the turn's end, for every close of the turn at once.
    // Until then they keep the connection alive (they count as operations in flight).
    parked_purge_wanted_ = true;
  }
}

void Shard::purge_closed_parked() {
  if (!parked_purge_wanted_) return;
  parked_purge_wanted_ = false;
  COREMQ_ASSERT(replay_depth_ == 0);
  for (size_t i = 0; i < parked_.size(); ++i) {
    Connection* connection = parked_[i].connection;
    if (connection == nullptr || connection->state != ConnectionState::kClosing) continue;
    recycle_parked(take_parked(i));
    maybe_release(connection);
  }
  compact_parked();
  // A connection before CONNECT parked behind a closed one may now be replayed.
  if (parked_live_ > 0) replay_wanted_ = true;
}

void Shard::update_input_pause() {
  // Pausing happens where items are staged (post); here the pause ends, once the peers have
  // taken all but half of the bound.
  if (!input_paused_) return;
  size_t staged = 0;
  for (const auto& items : staged_) staged = std::max(staged, items.size());
  if (staged > options_.cross_shard_queue_capacity / 2) return;
  input_paused_ = false;
  replay_wanted_ = true;
}

void Shard::pause_input(size_t staged) {
  input_paused_ = true;
  ++state_->counters().cross_shard_queue_full;
  LOG_DEBUG("pausing input: %u items staged for a peer shard (--cross-shard-queue-capacity=%u)", staged,
            options_.cross_shard_queue_capacity);
}

// ---- sending ---------------------------------------------------------------

void Shard::request_flush(Connection* connection) {
  if (connection->queued_for_flush) return;
  connection->queued_for_flush = true;
  flush_list_.push_back(connection);
}

void Shard::flush_sends() {
  // Index loop: start_send never adds to the list, but on_output_drained callbacks elsewhere may.
  for (size_t i = 0; i < flush_list_.size(); ++i) {
    Connection* connection = flush_list_[i];
    connection->queued_for_flush = false;
    if (connection->socket_shut_down) continue;
    if (!connection->send_in_flight && !connection->output.empty()) start_send(connection);
    if (connection->close_after_flush && !connection->send_in_flight && connection->output.empty()) {
      begin_linger(connection);
    }
  }
  flush_list_.clear();
}

void Shard::start_send(Connection* connection) {
  COREMQ_ASSERT(!connection->send_in_flight);
  COREMQ_ASSERT(connection->sending.empty());
  connection->sending.swap(connection->output);
  io_uring_sqe* sqe = ring_.next_sqe();
  io_uring_prep_send(sqe, connection->fd, connection->sending.data(), connection->sending.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, user_data(connection, Tag::kSend));
  connection->send_in_flight = true;
  ++connection->operations_in_flight;
}

void Shard::on_send(Connection* connection, int result) {
  COREMQ_ASSERT(connection->send_in_flight && connection->operations_in_flight > 0);
  connection->send_in_flight = false;
  --connection->operations_in_flight;
  if (result < 0) {
    connection->sending.clear();
    if (result != -EPIPE && result != -ECONNRESET) LOG_DEBUG("send on fd %d: %s", connection->fd, std::strerror(-result));
    state_->on_transport_closed(connection);
    if (connection->close_after_flush) shut_down_socket(connection);
    maybe_release(connection);
    return;
  }
  auto sent = static_cast<size_t>(result);
  if (sent < connection->sending.size()) {
    // A short send: the rest goes first, before anything gathered since.
    connection->sending.consume_front(sent);
    if (!connection->output.empty()) {
      connection->sending.append(connection->output.span());
      connection->output.clear();
    }
    connection->output.swap(connection->sending);
    request_flush(connection);
    return;
  }
  connection->sending.clear();
  // A connection that sends little gives its buffer back at once (a fleet of quiet
  // devices then holds no send memory); a busy one keeps a mid-sized buffer for reuse.
  size_t capacity = connection->sending.capacity();
  if (capacity <= kSmallSendBufferMax || capacity > kRetainedSendBufferMax) connection->sending.shrink();
  if (connection->state == ConnectionState::kConnected) state_->on_output_drained(connection);
  if (!connection->output.empty() || connection->close_after_flush) request_flush(connection);
  maybe_release(connection);
}

// ---- closing and releasing ---------------------------------------------------

void Shard::close_connection(Connection* connection, bool flush_first) {
  COREMQ_ASSERT(connection->state == ConnectionState::kClosing);
  // Input parked or starved for it is never read now: its buffers go back, and no deferred
  // list keeps a pointer to a connection that is about to be freed.
  forget_deferred_input(connection, nullptr);
  if (flush_first && (connection->send_in_flight || !connection->output.empty())) {
    // The client is owed its last packets (a DISCONNECT with a reason, a CONNACK
    // refusal): flush, then linger (begin_linger). Never for longer than --close-linger:
    // a send that cannot complete (zero window, dead peer) must not hold the socket.
    COREMQ_ASSERT(!closing_.contains(connection));
    closing_[connection].deadline_ms = now_ms_ + int64_t{options_.close_linger_seconds} * 1000;
    connection->close_after_flush = true;
    request_flush(connection);
    return;
  }
  shut_down_socket(connection);
}

void Shard::begin_linger(Connection* connection) {
  auto found = closing_.find(connection);
  COREMQ_ASSERT(found != closing_.end());
  Closing& closing = found->second;
  if (closing.lingering || connection->socket_shut_down) return;
  closing.lingering = true;
  // Everything is sent: FIN goes after the last packet, so the client reads it, then the
  // end of the stream. Closing the socket now instead would make the kernel answer any
  // byte the client still writes (a PUBREL for a PUBREC it just read) with RST, and the
  // client would get a broken pipe instead of the reason. So the read side stays open and
  // what arrives is read and dropped until the client closes (or a bound is hit).
  ::shutdown(connection->fd, SHUT_WR);
  // Discarding goes through a plain receive into discard_buffer_, not the provided-buffer
  // ring: a client writing hard while it lingers must not take receive buffers from the
  // shard's live connections (nor be parked by an input pause). The receive still armed
  // on the ring is cancelled; what it still brings is dropped (ShardState ignores input of
  // a closing connection) and its buffers are recycled as usual.
  if (connection->receive_armed) {
    io_uring_sqe* sqe = ring_.next_sqe();
    io_uring_prep_cancel64(sqe, user_data(connection, Tag::kReceive), 0);
    io_uring_sqe_set_data64(sqe, user_data(nullptr, Tag::kIgnore));
  }
  arm_discard(connection);
}

void Shard::arm_discard(Connection* connection) {
  Closing& closing = closing_.at(connection);
  COREMQ_ASSERT(closing.lingering && !closing.discard_armed && !connection->socket_shut_down);
  io_uring_sqe* sqe = ring_.next_sqe();
  io_uring_prep_recv(sqe, connection->fd, discard_buffer_.data(), discard_buffer_.size(), 0);
  io_uring_sqe_set_data64(sqe, user_data(connection, Tag::kDiscard));
  closing.discard_armed = true;
  ++connection->operations_in_flight;
}

void Shard::on_discard(Connection* connection, int result) {
  Closing& closing = closing_.at(connection);
  COREMQ_ASSERT(closing.discard_armed && connection->operations_in_flight > 0);
  closing.discard_armed = false;
  --connection->operations_in_flight;
  if (result > 0 && !connection->socket_shut_down) {
    closing.discarded_bytes += static_cast<uint64_t>(result);
    if (closing.discarded_bytes <= options_.close_linger_bytes) {
      arm_discard(connection);
    } else {
      ++state_->counters().closes_linger_bytes_exceeded;
      LOG_INFO("closing fd %d: the client sent over --close-linger-bytes=%u after its DISCONNECT", connection->fd,
               options_.close_linger_bytes);
      shut_down_socket(connection);
    }
  } else if (!connection->socket_shut_down) {
    // 0: the client closed its side, having read everything; < 0: reset, or cancelled.
    shut_down_socket(connection);
  }
  maybe_release(connection);
}

void Shard::check_close_deadlines() {
  std::vector<Connection*> expired;
  for (const auto& [connection, closing] : closing_) {
    if (now_ms_ >= closing.deadline_ms && !connection->socket_shut_down) expired.push_back(connection);
  }
  for (Connection* connection : expired) force_close(connection);
}

void Shard::force_close(Connection* connection) {
  ++state_->counters().closes_forced_deadline;
  LOG_INFO("closing fd %d: --close-linger=%u s passed %s; resetting the connection", connection->fd,
           options_.close_linger_seconds,
           connection->send_in_flight ? "with its last packets unsent (the client does not read)"
                                      : "and the client has not closed its side");
  // Linger 0 makes the close() at release reset the connection and free the socket with
  // its unsent bytes at once. A plain close would hand them to an orphan socket that keeps
  // probing a zero window for minutes.
  linger abort_on_close{.l_onoff = 1, .l_linger = 0};
  ::setsockopt(connection->fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
  if (connection->send_in_flight) {
    // The send waits for room in the socket buffer that will not come; it must end before
    // the connection (whose buffer it points into) can be freed.
    io_uring_sqe* sqe = ring_.next_sqe();
    io_uring_prep_cancel64(sqe, user_data(connection, Tag::kSend), 0);
    io_uring_sqe_set_data64(sqe, user_data(nullptr, Tag::kIgnore));
  }
  shut_down_socket(connection);
}

void Shard::shut_down_socket(Connection* connection) {
  if (connection->socket_shut_down) return;
  connection->socket_shut_down = true;
  // shutdown() ends the pending receive (it completes with 0) and any send; the fd
  // itself is closed only once no operation refers to it, so it cannot be reused
  // under an operation still in the kernel.
  ::shutdown(connection->fd, SHUT_RDWR);
  if (connection->receive_armed) {
    io_uring_sqe* sqe = ring_.next_sqe();
    io_uring_prep_cancel64(sqe, user_data(connection, Tag::kReceive), 0);
    io_uring_sqe_set_data64(sqe, user_data(nullptr, Tag::kIgnore));
  }
  auto closing = closing_.find(connection);
  if (closing != closing_.end() && closing->second.discard_armed) {
    io_uring_sqe* sqe = ring_.next_sqe();
    io_uring_prep_cancel64(sqe, user_data(connection, Tag::kDiscard), 0);
    io_uring_sqe_set_data64(sqe, user_data(nullptr, Tag::kIgnore));
  }
  maybe_release(connection);
}

void Shard::maybe_release(Connection* connection) {
  bool done = connection->state == ConnectionState::kClosing && connection->socket_shut_down &&
              connection->operations_in_flight == 0;
  bool handed_off = connection->state == ConnectionState::kHandingOff && connection->fd < 0;
  if (!done && !handed_off) return;
  if (!connections_.contains(connection)) return;  // already on the release list
  connections_.erase(connection);
  closing_.erase(connection);  // nothing may refer to a connection once it is freed
  release_list_.push_back(connection);
}

void Shard::hand_off_connection(Connection* connection, uint32_t target_shard) {
  COREMQ_ASSERT(connection->state == ConnectionState::kHandingOff);
  COREMQ_ASSERT(!connection->receive_armed);  // one receive at a time before CONNECT, none while parked
  auto* handoff = new broker::ConnectionHandoff();
  handoff->fd = connection->fd;
  handoff->accepted_at_ms = connection->accepted_at_ms;
  handoff->input = std::move(connection->input);
  // Bytes parked after the CONNECT go along, in order: a connection holds no parked data
  // once it has moved. A parked end of stream is dropped: the socket reports it again there.
  forget_deferred_input(connection, &handoff->input);
  COREMQ_ASSERT(connection->operations_in_flight == 0);
  connection->fd = -1;
  // Never refused or delayed: post always stages (the bound pauses input instead).
  post(target_shard, CrossShardItem{CrossShardItem::Kind::kAdoptConnection, shard_id_, handoff});
  maybe_release(connection);
}

void Shard::adopt(broker::ConnectionHandoff* handoff) {
  std::unique_ptr<broker::ConnectionHandoff> owned(handoff);
  if (stopping_) {
    ::close(handoff->fd);
    shared_.connections_total.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  Connection* connection = open_connection(handoff->fd, handoff->accepted_at_ms);
  state_->on_connection_opened(connection);
  if (!handoff->input.empty() && should_park(connection)) {
    // Its CONNECT may take over a session whose input is parked here: it waits its turn.
    connection->input = std::move(handoff->input);
    park(connection, kParkedInput, 0);
  } else {
    state_->on_bytes(connection, handoff->input.span());
  }
  if (wants_receive(connection)) arm_receive(connection);
  maybe_release(connection);
}

// ---- cross-shard -------------------------------------------------------------

void Shard::post(uint32_t target_shard, CrossShardItem item) {
  COREMQ_ASSERT(target_shard < shard_count_ && target_shard != shard_id_);
  // Staging is bounded where items are made, whatever made them (a received packet, a
  // hand-off, an interest change, a tick's expiries and wills, a peer's item forwarded):
  // when one peer's staging passes --cross-shard-queue-capacity, what its ring takes is
  // pushed at once (one ring operation per `capacity` items), and if that is not enough
  // this shard stops reading sockets, within this very turn, until the peer catches up.
  // An item itself is never refused or dropped: an adopt message carries a socket, a
  // publish a message already acknowledged, an interest change the routing of others;
  // each comes from a bounded cause (input read before the pause, the shard's sessions).
  std::vector<CrossShardItem>& staged = staged_[target_shard];
  staged.push_back(item);
  if (staged.size() != size_t{options_.cross_shard_queue_capacity} + 1) return;
  push_staged(target_shard);
  if (staged.size() > options_.cross_shard_queue_capacity && !input_paused_) pause_input(staged.size());
}

void Shard::push_staged(uint32_t target) {
  auto& staged = staged_[target];
  if (peers_[target].shard->loop_ended_.load(std::memory_order_acquire)) {
    // That peer stopped and drains no more (only at shutdown): its items would keep this
    // shard turning, unable to sleep, until its own grace period ends.
    release_items_for_stopped_peer(target);
    return;
  }
  size_t pushed = peers_[target].outbound->try_push_batch(staged.begin(), staged.end());
  staged.erase(staged.begin(), staged.begin() + static_cast<std::ptrdiff_t>(pushed));
  if (pushed > 0) {
    peer_needs_wake_[target] = true;
    wake_pending_ = true;
  }
}

void Shard::flush_cross_shard() {
  for (uint32_t target = 0; target < shard_count_; ++target) {
    if (!staged_[target].empty()) push_staged(target);
  }
  // Items pushed earlier in the turn (post) are woken for here too.
  if (!wake_pending_) return;
  wake_pending_ = false;
  // Pairs with the fence between the peer's store to sleeping_ and its look at its rings
  // (enter_kernel): either the peer sees these pushes, or this load sees it asleep.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (uint32_t target = 0; target < shard_count_; ++target) {
    if (!peer_needs_wake_[target]) continue;
    peer_needs_wake_[target] = false;
    Shard* peer = peers_[target].shard;
    if (peer->sleeping_.load(std::memory_order_relaxed) && peer->sleeping_.exchange(false)) wake(peer);
  }
}

void Shard::release_items_for_stopped_peer(uint32_t target) {
  // A stopped peer applies nothing more and forwards nothing more, so a barrier it was asked
  // for holds for it: it is acknowledged here on its behalf, after the staging is cleared
  // (the answers it releases may stage items again).
  std::vector<CrossShardItem> staged;
  staged.swap(staged_[target]);
  uint64_t barrier_sequence = 0;
  for (const CrossShardItem& item : staged) {
    if (item.kind == CrossShardItem::Kind::kAdoptConnection) {
      shared_.connections_total.fetch_sub(1, std::memory_order_relaxed);  // its socket is closed
    }
    if (item.kind == CrossShardItem::Kind::kBarrierRequest) barrier_sequence = std::max(barrier_sequence, item.sequence);
    broker::release_cross_shard_item(item);
  }
  if (barrier_sequence != 0) {
    CrossShardItem ack{CrossShardItem::Kind::kBarrierAck, target};
    ack.sequence = barrier_sequence;
    state_->on_cross_shard(ack);
  }
}

void Shard::wake(Shard* peer) {
  if (ring_.features().msg_ring) {
    // A completion posted straight into the peer's ring wakes its wait, with no extra
    // syscall: it goes out with this turn's submissions. Its result comes back as a
    // kWakeSent completion (on_wake_sent), which falls back to the eventfd on failure.
    prepare_msg_ring_wake(ring_, peer->ring_.fd(), user_data(nullptr, Tag::kWake), user_data(peer, Tag::kWakeSent));
    wakes_prepared_.push_back(peer);
    return;
  }
  wake_by_eventfd(peer->event_fd_);
}

void Shard::on_wake_sent(Shard* peer, int result) {
  if (!finish_msg_ring_wake(result, peer->event_fd_)) return;
  uint64_t fallbacks = ++state_->counters().wakes_by_eventfd_fallback;
  // One line a second at most: a peer whose ring keeps refusing would otherwise flood the log.
  if (now_ms_ >= next_wake_warning_ms_) {
    next_wake_warning_ms_ = now_ms_ + 1000;
    LOG_WARNING("waking shard %u by MSG_RING failed (%s); woken through its eventfd (%u times so far)", peer->id(),
                std::strerror(-result), fallbacks);
  }
}

void Shard::submit_prepared_wakes_before_exit() {
  // The loop is leaving, so the wake-ups prepared in its last turn would never be
  // submitted, nor their results looked at: peers still running would sleep until their
  // next tick with this shard's last items unseen. Submit what is prepared, and wake
  // those peers through their eventfds too, as nothing will check the MSG_RING results.
  int submitted = io_uring_submit(ring_.raw());
  if (submitted < 0) LOG_DEBUG("io_uring submit at exit: %s", std::strerror(-submitted));
  for (Shard* peer : wakes_prepared_) wake_by_eventfd(peer->event_fd_);
  wakes_prepared_.clear();
}

void Shard::drain_inbound() {
  for (uint32_t from = 0; from < shard_count_; ++from) {
    if (from == shard_id_) continue;
    inbound_[from]->drain(
        [this](CrossShardItem&& item) {
          if (item.kind == CrossShardItem::Kind::kAdoptConnection) {
            adopt(static_cast<broker::ConnectionHandoff*>(item.pointer));
          } else if (state_) {
            state_->on_cross_shard(item);
          }
        },
        kInboundBatchMax);
  }
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
  check_close_deadlines();
  if (options_.stats_interval_seconds > 0 && now_ms_ >= next_stats_ms_) {
    next_stats_ms_ = now_ms_ + int64_t{options_.stats_interval_seconds} * 1000;
    log_stats();
  }
  if (!accept_armed_) arm_accept();
  if (now_ms_ >= next_idle_sweep_ms_) {
    next_idle_sweep_ms_ = now_ms_ + kIdleSweepIntervalMs;
    // Idle connections hold no buffers: an idle fleet costs only its bookkeeping.
    for (Connection* connection : connections_) {
      if (!connection->send_in_flight && connection->output.empty()) {
        connection->sending.shrink();
        connection->output.shrink();
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
  if (accept_armed_) {
    io_uring_sqe* sqe = ring_.next_sqe();
    io_uring_prep_cancel64(sqe, user_data(this, Tag::kAccept), 0);
    io_uring_sqe_set_data64(sqe, user_data(nullptr, Tag::kIgnore));
  }
  state_->on_shutdown();
}

}  // namespace coremq::shard
