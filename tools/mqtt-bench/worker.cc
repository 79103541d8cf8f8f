// The worker loop: io_uring submissions, completions and the per-turn publishing; see worker.h.
// Everything here runs on the worker's own thread except the constructor, start() and join().
#include "worker.h"

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <random>

#include "absl/strings/str_format.h"
#include "base/assert.h"
#include "bounds.h"
#include "clock.h"
#include "stacked_transport.h"
#include "ws_client_transport.h"

namespace coremq::bench {

namespace {

constexpr int kOperationBits = 3;
constexpr int64_t kKeepaliveCheckIntervalNs = kNanosPerSecond;
constexpr int64_t kIdleWaitNs = 20'000'000;     // nothing timed to do: wake to see the phase change
constexpr int64_t kPacedWaitNs = 1'000'000;     // paced connects or publishes: 1 ms ticks
constexpr int64_t kDisconnectGraceNs = kNanosPerSecond;

constexpr int kGenerationShift = 48;
constexpr int64_t kChurnCheckIntervalNs = 10'000'000;

// Operation in the low bits, slot + 1 above them, the socket's generation in the top 16.
uint64_t user_data(uint32_t slot, uint64_t operation, uint16_t generation) {
  return uint64_t{generation} << kGenerationShift | (uint64_t{slot} + 1) << kOperationBits | operation;
}

}  // namespace

Worker::Worker(uint32_t id, const Options& options, const Plan& plan, SharedState& shared,
               std::vector<const ClientSpec*> specs)
    : id_(id), options_(options), plan_(plan), shared_(shared), specs_(std::move(specs)) {
  context_.options = &options_;
  context_.plan = &plan_;
  context_.shared = &shared_;
  context_.counters = &shared_.counters[id_];
  context_.result = &result_;
  context_.measure_start_ns = std::numeric_limits<int64_t>::max();
  context_.measure_end_ns = std::numeric_limits<int64_t>::max();
  if (plan_.in_process) context_.pending_delivered.assign(plan_.publishers, 0);
  if (options_.connect_rate > 0) connect_rate_ = options_.connect_rate / options_.threads;
}

Worker::~Worker() { COREMQ_ASSERT(!thread_.joinable()); }

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::join() { thread_.join(); }

void Worker::run() {
  std::string error;
  if (!setup(&error)) {
    record_error(absl::StrFormat("thread %u: %s", id_, error));
    publish_counters();
    return;
  }
  loop();
  disconnect_all();
  collect_results();
  publish_counters();
}

bool Worker::setup(std::string* error) {
  if (!ring_.init(kRingEntries, error)) return false;
  if (options_.tls) {
    tls_context_ = TlsClientContext::create(tls_client_settings(options_), error);
    if (tls_context_ == nullptr) return false;
  }
  if (options_.ws) mask_seed_ = (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}() ^ id_;
  if (ring_.features().recv_multishot) {
    std::string buffer_error;
    provided_buffers_ = buffers_.init(ring_, 0, kReceiveBufferCount, kReceiveBufferBytes, &buffer_error);
  }
  clients_.reserve(specs_.size());
  for (const ClientSpec* spec : specs_) {
    clients_.push_back(std::make_unique<Client>(*spec, context_));
    if (spec->role == Role::kPublisher) publisher_slots_.push_back(static_cast<uint32_t>(clients_.size() - 1));
  }
  handshaking_.assign(clients_.size(), false);
  return true;
}

bool Worker::alive(const Client& client) const {
  ClientState state = client.state();
  return client.io.fd >= 0 && state != ClientState::kFailed && state != ClientState::kClosed;
}

void Worker::loop() {
  int64_t last_keepalive_ns = monotonic_ns();
  int64_t last_churn_ns = last_keepalive_ns;
  connect_start_ns_ = last_keepalive_ns;
  for (;;) {
    Phase phase = shared_.phase.load(std::memory_order_acquire);
    if (phase == Phase::kStopping) return;
    int64_t now_ns = monotonic_ns();
    if (phase != Phase::kConnecting && !window_known_) {
      // Published by the main thread before the phase store this load acquired.
      context_.measure_start_ns = shared_.measure_start_ns;
      context_.measure_end_ns = shared_.measure_end_ns;
      publish_start_ns_ = shared_.publish_start_ns;
      window_known_ = true;
    }
    start_connects(now_ns);
    bool open_loop = options_.period_ns > 0 && phase == Phase::kPublishing;
    if (phase != Phase::kPublishing && phase != Phase::kConnecting && publishing_stopped_ns_ == 0) {
      publishing_stopped_ns_ = now_ns;
    }
    if (open_loop && !schedules_started_) start_schedules();
    int64_t schedule_wait_ns = open_loop ? scheduled_publish_turn(now_ns) : kIdleWaitNs;
    bool more_work = phase == Phase::kPublishing && !open_loop && publish_turn(now_ns);
    bool churn = options_.reconnect_messages > 0 || options_.reconnect_s > 0;
    if (churn && now_ns - last_churn_ns >= kChurnCheckIntervalNs) {
      churn_turn(now_ns);
      last_churn_ns = now_ns;
    }
    if (now_ns - last_keepalive_ns >= kKeepaliveCheckIntervalNs) {
      keepalive_turn(now_ns);
      last_keepalive_ns = now_ns;
    }
    flush_sends(now_ns);
    bool paced = next_to_connect_ < clients_.size() ||
                 (phase == Phase::kPublishing && !open_loop && !publisher_slots_.empty());
    int64_t wait_ns = more_work ? 0 : paced ? kPacedWaitNs : kIdleWaitNs;
    wait_and_reap(std::min(wait_ns, schedule_wait_ns));
    flush_deliveries();
    publish_counters();
  }
}

void Worker::start_connects(int64_t now_ns) {
  uint32_t total = static_cast<uint32_t>(clients_.size());
  if (next_to_connect_ >= total) return;
  uint64_t allowed = total;
  if (connect_rate_ > 0) {
    double elapsed_s = static_cast<double>(now_ns - connect_start_ns_) / kNanosPerSecond;
    allowed = std::min<uint64_t>(total, static_cast<uint64_t>(elapsed_s * connect_rate_) + 1);
  }
  while (next_to_connect_ < allowed && handshakes_in_flight_ < kConnectsInFlightMax) {
    uint32_t slot = next_to_connect_++;
    start_connect(*clients_[slot], slot);
  }
}

void Worker::start_connect(Client& client, uint32_t slot) {
  if (result_.first_connect_ns == 0) result_.first_connect_ns = monotonic_ns();
  client.on_connecting();
  int fd = socket(options_.broker_address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int error = errno;
    fail_client(slot, absl::StrFormat("socket() failed: %s%s", std::strerror(error),
                                      error == EMFILE ? " (raise the open-file limit: ulimit -n)" : ""));
    return;
  }
  int one = 1;
  // Small packets must leave at once: latency is what is being measured.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  client.io.fd = fd;
  handshaking_[slot] = true;
  handshakes_in_flight_++;
  if (options_.source_local_count > 0 && !bind_source(fd, client, slot)) return;
  io_uring_sqe* sqe = ring_.next_sqe();
  io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr*>(&options_.broker_address),
                        options_.broker_address_length);
  io_uring_sqe_set_data64(sqe, user_data(slot, kConnect, client.io.generation));
}

bool Worker::bind_source(int fd, const Client& client, uint32_t slot) {
  uint32_t local = client.spec().ordinal % options_.source_local_count;
  uint32_t k = options_.source_offset + local * options_.source_stride;
  sockaddr_storage source{};
  socklen_t length = options_.source_addresses.address(k, &source);
  // Without IP_BIND_ADDRESS_NO_PORT, bind() to port 0 reserves a port for every destination at
  // once, so one source address would still hold only ~28k-64k connections in all. With it
  // the port is chosen at connect() for the full 4-tuple: each (source, broker) pair has its
  // own ephemeral range, and 255 loopback sources hold millions.
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&source), length) == 0) return true;
  int error = errno;
  char text[INET6_ADDRSTRLEN] = {};
  const void* raw = source.ss_family == AF_INET
                        ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(&source)->sin_addr)
                        : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(&source)->sin6_addr);
  inet_ntop(source.ss_family, raw, text, sizeof(text));
  fail_client(slot, absl::StrFormat("bind to source address %s failed: %s%s", text, std::strerror(error),
                                    error == EADDRNOTAVAIL ? " (not an address of this host)" : ""));
  return false;
}

bool Worker::publish_turn(int64_t now_ns) {
  (void)now_ns;
  bool more_work = false;
  for (uint32_t slot : publisher_slots_) {
    Client& client = *clients_[slot];
    if (!alive(client)) continue;
    uint32_t encoded = client.publish(kPublishesPerTurnMax);
    if (encoded == kPublishesPerTurnMax) more_work = true;
    if (!client.staging.empty()) queue_flush(slot);
  }
  return more_work;
}

namespace {
// std::push_heap and pop_heap build a max-heap; this makes the earliest due time the top.
bool later_due(const std::pair<int64_t, uint32_t>& left, const std::pair<int64_t, uint32_t>& right) {
  return left.first > right.first;
}
}  // namespace

void Worker::start_schedules() {
  COREMQ_ASSERT(!schedules_started_ && window_known_);
  schedules_started_ = true;
  due_heap_.reserve(publisher_slots_.size());
  for (uint32_t slot : publisher_slots_) {
    clients_[slot]->start_schedule(publish_start_ns_);
    due_heap_.emplace_back(clients_[slot]->next_due_ns(), slot);
  }
  std::make_heap(due_heap_.begin(), due_heap_.end(), later_due);
}

bool Worker::publish_due(uint32_t slot, int64_t now_ns) {
  Client& client = *clients_[slot];
  if (!alive(client)) return true;  // failed: its schedule ends with it
  if (client.publish(kPublishesPerTurnMax) == kPublishesPerTurnMax) catching_up_ = true;
  if (!client.staging.empty()) queue_flush(slot);
  if (client.publishing_done() || client.schedule_finished()) return true;
  if (client.next_due_ns() > now_ns) {
    due_heap_.emplace_back(client.next_due_ns(), slot);
    std::push_heap(due_heap_.begin(), due_heap_.end(), later_due);
    return true;
  }
  return false;
}

int64_t Worker::scheduled_publish_turn(int64_t now_ns) {
  // Those behind first: their messages were due earliest.
  catching_up_ = false;
  size_t kept = 0;
  for (uint32_t slot : behind_slots_) {
    if (!publish_due(slot, now_ns)) behind_slots_[kept++] = slot;
  }
  behind_slots_.resize(kept);
  while (!due_heap_.empty() && due_heap_.front().first <= now_ns) {
    uint32_t slot = due_heap_.front().second;
    std::pop_heap(due_heap_.begin(), due_heap_.end(), later_due);
    due_heap_.pop_back();
    if (!publish_due(slot, now_ns)) behind_slots_.push_back(slot);
  }
  // Behind: an acknowledgement or a finished send wakes the loop anyway; the tick bounds the
  // wait for a publisher held by kPublishesPerTurnMax.
  if (catching_up_) return 0;
  if (!behind_slots_.empty()) return kPacedWaitNs;
  if (due_heap_.empty()) return kIdleWaitNs;
  return std::clamp<int64_t>(due_heap_.front().first - monotonic_ns(), 0, kIdleWaitNs);
}

void Worker::keepalive_turn(int64_t now_ns) {
  if (options_.keepalive_s == 0) return;
  // Half the keep-alive: the broker allows one and a half before it closes the connection.
  int64_t quiet_ns_max = int64_t{options_.keepalive_s} * kNanosPerSecond / 2;
  for (uint32_t slot = 0; slot < clients_.size(); ++slot) {
    Client& client = *clients_[slot];
    if (client.state() != ClientState::kReady || client.io.fd < 0) continue;
    if (now_ns - client.io.last_send_ns < quiet_ns_max) continue;
    client.stage_pingreq();
    queue_flush(slot);
  }
}

void Worker::queue_flush(uint32_t slot) {
  Client& client = *clients_[slot];
  if (client.io.flush_queued) return;
  client.io.flush_queued = true;
  flush_queue_.push_back(slot);
}

void Worker::flush_sends(int64_t now_ns) {
  for (uint32_t slot : flush_queue_) {
    Client& client = *clients_[slot];
    client.io.flush_queued = false;
    if (client.io.send_in_flight || !alive(client)) continue;
    COREMQ_ASSERT(client.io.sending.empty());
    if (client.io.transport != nullptr) {
      // Encoded only while no send is in flight, so `staging` keeps holding what waits and
      // the publisher's kStagedBytesMax bound still applies.
      if (!encode_staged(slot) || client.io.wire_staging.empty()) continue;
      client.io.sending.swap(client.io.wire_staging);
    } else {
      if (client.staging.empty()) continue;
      client.io.sending.swap(client.staging);
    }
    client.io.sending_offset = 0;
    client.io.last_send_ns = now_ns;
    submit_send(slot);
  }
  flush_queue_.clear();
}

void Worker::submit_send(uint32_t slot) {
  Client& client = *clients_[slot];
  COREMQ_ASSERT(client.io.sending_offset < client.io.sending.size());
  io_uring_sqe* sqe = ring_.next_sqe();
  io_uring_prep_send(sqe, client.io.fd, client.io.sending.data() + client.io.sending_offset,
                     client.io.sending.size() - client.io.sending_offset, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, user_data(slot, kSend, client.io.generation));
  client.io.send_in_flight = true;
}

void Worker::arm_receive(uint32_t slot) {
  Client& client = *clients_[slot];
  COREMQ_ASSERT(!client.io.receive_armed);
  io_uring_sqe* sqe = ring_.next_sqe();
  if (provided_buffers_) {
    // One request serves every packet the connection will ever receive; the kernel picks a
    // buffer per completion, so idle connections hold no receive memory.
    io_uring_prep_recv_multishot(sqe, client.io.fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buffers_.group_id();
  } else {
    if (!client.io.receive_buffer) client.io.receive_buffer = std::make_unique<uint8_t[]>(kReceiveBufferBytes);
    io_uring_prep_recv(sqe, client.io.fd, client.io.receive_buffer.get(), kReceiveBufferBytes, 0);
  }
  io_uring_sqe_set_data64(sqe, user_data(slot, kReceive, client.io.generation));
  client.io.receive_armed = true;
}

void Worker::wait_and_reap(int64_t timeout_ns) {
  // With DEFER_TASKRUN completions are only produced while we are inside io_uring_enter, so
  // even the zero-timeout case must enter the kernel (one syscall submits and reaps).
  __kernel_timespec timeout{};
  timeout.tv_sec = timeout_ns / kNanosPerSecond;
  timeout.tv_nsec = timeout_ns % kNanosPerSecond;
  io_uring_cqe* first = nullptr;
  int result = io_uring_submit_and_wait_timeout(ring_.raw(), &first, 1, &timeout, nullptr);
  if (result < 0 && result != -ETIME && result != -EINTR && result != -EBUSY) {
    record_error(absl::StrFormat("thread %u: io_uring_submit_and_wait_timeout failed: %s", id_, std::strerror(-result)));
  }
  unsigned head = 0;
  unsigned reaped = 0;
  io_uring_cqe* cqe = nullptr;
  io_uring_for_each_cqe(ring_.raw(), head, cqe) {
    handle_completion(cqe);
    reaped++;
  }
  io_uring_cq_advance(ring_.raw(), reaped);
  if (provided_buffers_) buffers_.publish();
}

void Worker::handle_completion(const io_uring_cqe* cqe) {
  uint64_t data = io_uring_cqe_get_data64(cqe);
  uint64_t operation = data & ((1u << kOperationBits) - 1);
  auto generation = static_cast<uint16_t>(data >> kGenerationShift);
  uint64_t slot_plus_one = (data & ((uint64_t{1} << kGenerationShift) - 1)) >> kOperationBits;
  COREMQ_ASSERT(slot_plus_one >= 1);
  auto slot = static_cast<uint32_t>(slot_plus_one - 1);
  COREMQ_ASSERT(slot < clients_.size());
  if (generation != clients_[slot]->io.generation) {
    // The socket this request was for was closed for churn; only its buffer matters now.
    if (operation == kReceive && (cqe->flags & IORING_CQE_F_BUFFER)) {
      buffers_.recycle(static_cast<uint16_t>(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
    }
    return;
  }
  switch (operation) {
    case kConnect: on_connect_done(slot, cqe->res); break;
    case kReceive: on_receive(slot, cqe); break;
    case kSend: on_send_done(slot, cqe->res); break;
    default: COREMQ_ASSERT_MSG(false, "unknown completion");
  }
}

void Worker::on_connect_done(uint32_t slot, int result) {
  Client& client = *clients_[slot];
  if (client.state() != ClientState::kConnecting) return;  // failed meanwhile
  if (result < 0) {
    fail_client(slot, absl::StrFormat("connect to %s:%u failed: %s", bracketed(options_.host), options_.port,
                                      std::strerror(-result)));
    return;
  }
  if ((options_.tls || options_.ws) && !start_transport(slot)) return;
  client.on_connected();
  arm_receive(slot);
  queue_flush(slot);
}

bool Worker::start_transport(uint32_t slot) {
  Client& client = *clients_[slot];
  std::unique_ptr<transport::Transport> made;
  if (options_.tls) {
    std::string error;
    std::unique_ptr<TlsClientTransport> tls = TlsClientTransport::create(*tls_context_, &error);
    if (tls == nullptr) {
      fail_client(slot, error);
      return false;
    }
    client.io.tls = tls.get();
    made = std::move(tls);
  }
  if (options_.ws) {
    std::string host = absl::StrFormat("%s:%u", bracketed(options_.host_name), options_.port);
    uint64_t seed = mask_seed_ ^ (uint64_t{slot} * 0x9E3779B97F4A7C15ull);  // distinct per connection
    auto ws = std::make_unique<WsClientTransport>(host, options_.ws_path, seed);
    made = made != nullptr ? std::make_unique<StackedTransport>(std::move(made), std::move(ws))
                           : std::unique_ptr<transport::Transport>(std::move(ws));
  }
  client.io.transport = std::move(made);
  // A client speaks first: an empty decode writes the ClientHello or the upgrade request.
  decoded_.clear();
  transport::Transport::Status status = client.io.transport->decode({}, decoded_, client.io.wire_staging);
  if (status != transport::Transport::Status::kOk) {
    fail_client(slot, absl::StrFormat("%s: %s", transport_scheme(options_), client.io.transport->error()));
    return false;
  }
  COREMQ_ASSERT(!client.io.wire_staging.empty());
  return true;
}

bool Worker::encode_staged(uint32_t slot) {
  Client& client = *clients_[slot];
  transport::Transport& transport = *client.io.transport;
  if (!transport.established()) return true;  // staged bytes wait for the handshake's end
  if (!client.staging.empty()) {
    transport::Transport::Status status = transport.encode(client.staging.span(), client.io.wire_staging);
    client.staging.clear();
    if (status == transport::Transport::Status::kError) {
      fail_client(slot, absl::StrFormat("%s: %s", transport_scheme(options_), transport.error()));
      return false;
    }
  }
  if (client.io.close_after_staging) {
    transport.encode_close(WsClientTransport::kCloseNormal, client.io.wire_staging);
    client.io.close_after_staging = false;
  }
  return true;
}

void Worker::note_established(Client& client) {
  client.io.transport_established = true;
  if (client.io.tls == nullptr) return;
  result_.tls_handshakes++;
  if (client.io.tls->resumed()) result_.tls_resumed++;
  if (result_.tls_protocol.empty()) result_.tls_protocol = client.io.tls->protocol_and_cipher();
}

bool Worker::receive_through_transport(uint32_t slot, std::span<const uint8_t> wire, int64_t now_ns) {
  Client& client = *clients_[slot];
  transport::Transport& transport = *client.io.transport;
  decoded_.clear();
  transport::Transport::Status status = transport.decode(wire, decoded_, client.io.wire_staging);
  if (status == transport::Transport::Status::kError) {
    fail_client(slot, absl::StrFormat("%s: %s", transport_scheme(options_), transport.error()));
    return false;
  }
  if (!client.io.transport_established && transport.established()) note_established(client);
  if (!decoded_.empty()) {
    bool ok = client.on_bytes(decoded_.span(), now_ns);
    if (client.state() != ClientState::kAwaitingConnack) end_handshake(slot);
    if (!ok) {
      fail_client(slot, client.error());
      return false;
    }
  }
  if (status == transport::Transport::Status::kClosed) {
    broker_closed(slot, transport.error());
    return false;
  }
  if (!client.staging.empty() || !client.io.wire_staging.empty()) queue_flush(slot);
  return true;
}

// The broker ended the connection (end of stream, a TLS close_notify or a WebSocket close):
// expected after our DISCONNECT, a failure otherwise.
void Worker::broker_closed(uint32_t slot, std::string_view how) {
  Client& client = *clients_[slot];
  if (client.state() == ClientState::kDisconnecting) {
    close_client(client);
    return;
  }
  std::string what = client.state() == ClientState::kAwaitingConnack
                         ? "broker closed the connection before CONNACK"
                         : "broker closed the connection";
  fail_client(slot, !how.empty() ? absl::StrFormat("%s (%s)", what, how) : what);
}

void Worker::on_receive(uint32_t slot, const io_uring_cqe* cqe) {
  Client& client = *clients_[slot];
  bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  if (!more) client.io.receive_armed = false;
  const uint8_t* bytes = client.io.receive_buffer.get();
  int buffer_id = -1;
  if (cqe->flags & IORING_CQE_F_BUFFER) {
    buffer_id = static_cast<int>(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    bytes = buffers_.buffer(static_cast<uint16_t>(buffer_id));
  }
  int result = cqe->res;
  if (result > 0 && alive(client)) {
    std::span<const uint8_t> received(bytes, static_cast<size_t>(result));
    if (client.io.transport != nullptr) {
      (void)receive_through_transport(slot, received, monotonic_ns());  // failures close the client
    } else {
      bool ok = client.on_bytes(received, monotonic_ns());
      if (client.state() != ClientState::kAwaitingConnack) end_handshake(slot);
      if (!ok) fail_client(slot, client.error());
      else if (!client.staging.empty()) queue_flush(slot);
    }
  }
  if (buffer_id >= 0) buffers_.recycle(static_cast<uint16_t>(buffer_id));
  if (!alive(client)) return;
  if (result == 0) {
    broker_closed(slot, "");
    return;
  }
  if (result < 0 && result != -ENOBUFS) {
    if (client.state() == ClientState::kDisconnecting) {
      close_client(client);
      return;
    }
    fail_client(slot, absl::StrFormat("receive failed: %s", std::strerror(-result)));
    return;
  }
  if (result == -ENOBUFS) result_.receive_buffers_exhausted++;  // flow control: re-armed below
  if (!client.io.receive_armed) arm_receive(slot);
}

void Worker::on_send_done(uint32_t slot, int result) {
  Client& client = *clients_[slot];
  client.io.send_in_flight = false;
  if (!alive(client)) return;
  if (result < 0) {
    if (client.state() == ClientState::kDisconnecting) {
      close_client(client);
      return;
    }
    fail_client(slot, absl::StrFormat("send failed: %s", std::strerror(-result)));
    return;
  }
  client.io.sending_offset += static_cast<size_t>(result);
  COREMQ_ASSERT(client.io.sending_offset <= client.io.sending.size());
  if (client.io.sending_offset < client.io.sending.size()) {
    submit_send(slot);  // a short send: the rest goes before anything staged since
    return;
  }
  client.io.sending.clear();
  client.io.sending_offset = 0;
  if (client.io.reconnect_after_send && client.staging.empty() && client.io.wire_staging.empty()) {
    reconnect(slot);
    return;
  }
  if (!client.staging.empty() || !client.io.wire_staging.empty()) queue_flush(slot);
}

void Worker::churn_turn(int64_t now_ns) {
  for (uint32_t slot = 0; slot < clients_.size(); ++slot) {
    Client& client = *clients_[slot];
    if (client.io.fd < 0 || client.io.send_in_flight || client.io.reconnect_after_send ||
        !client.reconnect_due(now_ns)) {
      continue;
    }
    client.stage_disconnect();
    client.io.close_after_staging = client.io.transport != nullptr;
    client.io.reconnect_after_send = true;
    queue_flush(slot);
  }
}

void Worker::reconnect(uint32_t slot) {
  Client& client = *clients_[slot];
  // shutdown() ends the armed multishot receive; its completion carries the old generation.
  shutdown(client.io.fd, SHUT_RDWR);
  close(client.io.fd);
  client.io.fd = -1;
  client.io.generation++;
  client.io.receive_armed = false;
  client.io.reconnect_after_send = false;
  client.io.close_after_staging = false;
  client.io.transport_established = false;
  client.io.transport.reset();
  client.io.tls = nullptr;
  client.io.wire_staging.clear();
  client.reset_for_reconnect();
  start_connect(client, slot);
}

void Worker::end_handshake(uint32_t slot) {
  if (!handshaking_[slot]) return;
  handshaking_[slot] = false;
  COREMQ_ASSERT(handshakes_in_flight_ > 0);
  handshakes_in_flight_--;
}

void Worker::fail_client(uint32_t slot, std::string message) {
  Client& client = *clients_[slot];
  end_handshake(slot);
  client.fail(std::move(message));
  record_error(client.error());
  close_client(client);
}

void Worker::close_client(Client& client) {
  if (client.io.fd < 0) return;
  // shutdown() ends the armed multishot recv (it completes with 0): close() alone would not,
  // since the pending request holds its own reference to the socket.
  shutdown(client.io.fd, SHUT_RDWR);
  close(client.io.fd);
  client.io.fd = -1;
  if (client.state() != ClientState::kFailed) client.mark_closed();
}

void Worker::record_error(std::string message) {
  result_.errors++;
  if (result_.error_messages.size() < kErrorMessagesMax) result_.error_messages.push_back(std::move(message));
}

void Worker::flush_deliveries() {
  for (uint32_t publisher : context_.touched_publishers) {
    shared_.delivered[publisher].fetch_add(context_.pending_delivered[publisher], std::memory_order_relaxed);
    context_.pending_delivered[publisher] = 0;
  }
  context_.touched_publishers.clear();
}

void Worker::publish_counters() {
  WorkerCounters& counters = shared_.counters[id_];
  auto relaxed = std::memory_order_relaxed;
  counters.connections_up.store(result_.connections_up, relaxed);
  counters.subscribed.store(result_.subscribed, relaxed);
  counters.errors.store(result_.errors, relaxed);
  counters.sent.store(result_.sent, relaxed);
  counters.expected_deliveries.store(result_.expected_deliveries, relaxed);
  counters.acknowledged.store(result_.acknowledged, relaxed);
  counters.received.store(result_.received, relaxed);
  counters.publishers_done.store(result_.publishers_done, relaxed);
  counters.subscribers_done.store(result_.subscribers_done, relaxed);
  counters.last_send_ns.store(result_.last_send_ns, relaxed);
  counters.schedule_late.store(result_.schedule_late, relaxed);
}

void Worker::disconnect_all() {
  for (uint32_t slot = 0; slot < clients_.size(); ++slot) {
    Client& client = *clients_[slot];
    if (!alive(client) || client.state() == ClientState::kConnecting) continue;
    client.stage_disconnect();
    client.io.close_after_staging = client.io.transport != nullptr;
    queue_flush(slot);
  }
  int64_t now_ns = monotonic_ns();
  flush_sends(now_ns);
  // Give the DISCONNECTs a bounded time to leave, then close whatever is left.
  int64_t deadline_ns = now_ns + kDisconnectGraceNs;
  for (;;) {
    bool sending = std::any_of(clients_.begin(), clients_.end(), [this](const std::unique_ptr<Client>& client) {
      return alive(*client) && client->io.send_in_flight;
    });
    if (!sending || monotonic_ns() >= deadline_ns) break;
    wait_and_reap(kPacedWaitNs);
    flush_sends(monotonic_ns());
  }
  for (auto& client : clients_) close_client(*client);
}

void Worker::collect_results() {
  int64_t stopped_ns = publishing_stopped_ns_ > 0 ? publishing_stopped_ns_ : monotonic_ns();
  for (auto& client : clients_) {
    if (schedules_started_ && client->is_publisher()) result_.schedule_unsent += client->due_unsent(stopped_ns);
    if (client->spec().role == Role::kPublisher) result_.publishers.push_back(client->publisher_result());
    if (client->spec().role == Role::kSubscriber) result_.subscribers.push_back(client->subscriber_result());
  }
}

}  // namespace coremq::bench
