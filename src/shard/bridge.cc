// One bridge on its shard's thread; see bridge.h.
#include "shard/bridge.h"

#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/properties.h"

namespace coremq::shard {

namespace {
constexpr size_t kReceiveBufferBytes = 64 * 1024;
constexpr int64_t kConnectTimeoutMs = 10000;
constexpr uint8_t kTryPrivateBit = 0x80;
// QoS 2 messages from the remote between PUBREC and PUBREL (its packet ids: at most 65535).
constexpr size_t kRemoteQos2Max = 65535;
// Durable: local QoS 1/2 PUBLISHes whose answer the bridge waits for (inbound_acks_). Below the
// 65,535 packet ids of the local session, so a waiting id is never used again meanwhile; the
// remote cannot send more unacknowledged ones either (its packet ids are as many), but a store
// that stays stalled (a full disk) would let them pile up across reconnects.
constexpr size_t kInboundAcksMax = 60000;
// The most QoS 1/2 messages one refill of the in-flight window sends (a batch of 64-byte
// messages fills a few kilobytes: one send, one read on the remote).
constexpr uint32_t kRefillBatchMax = 64;

uint64_t user_data_of(void* operation) {
  return reinterpret_cast<uint64_t>(operation) | Bridge::kUserDataTag;
}
}  // namespace

const char* bridge_state_name(BridgeState state) {
  switch (state) {
    case BridgeState::kIdle:
      return "idle";
    case BridgeState::kWaitingToRestart:
      return "waiting";
    case BridgeState::kConnecting:
      return "connecting";
    case BridgeState::kConnected:
      return "connected";
    case BridgeState::kStopped:
      return "stopped";
  }
  return "?";
}

Bridge::Bridge(BridgeSetup setup, io::Ring& ring, broker::ShardState& state, size_t max_packet_size)
    : setup_(std::move(setup)),
      topics_(setup_.options.topics),
      ring_(ring),
      state_(state),
      max_packet_size_(max_packet_size),
      version_(setup_.options.protocol_version == 5 ? mqtt::ProtocolVersion::kV5
                                                    : mqtt::ProtocolVersion::kV311),
      receive_buffer_(kReceiveBufferBytes),
      random_state_(std::hash<std::string>{}(setup_.options.name) | 1),
      packet_id_used_(65536, false) {
  stats_.name = setup_.options.name;
}

Bridge::~Bridge() {
  close_at_exit();
}

void Bridge::set_state(BridgeState state, const char* why) {
  if (state == state_now_) return;
  LOG_INFO("bridge %s: %s -> %s (%s; queued=%u inflight=%u out=%u in=%u reconnects=%u)", setup_.options.name,
           bridge_state_name(state_now_), bridge_state_name(state), why, queue_.size(), inflight_.size(),
           stats_.messages_out, stats_.messages_in, stats_.reconnects);
  state_now_ = state;
}

BridgeStats Bridge::stats() const {
  BridgeStats stats = stats_;
  stats.state = state_now_;
  stats.queued = queue_.size();
  stats.inflight = inflight_.size();
  stats.held_local_acks = held_acks_.size();
  stats.remote_acks_waiting = static_cast<uint64_t>(std::count_if(
      inbound_acks_.begin(), inbound_acks_.end(), [](const InboundAck& waiting) { return waiting.remote_packet_id != 0; }));
  if (setup_.durable) {
    // Every QoS 1/2 message the bridge holds waits for the remote before its local acknowledgement.
    stats.held_local_acks = inflight_.size();
    for (const OutboundMessage& message : queue_) stats.held_local_acks += message.qos > 0 ? 1 : 0;
  }
  return stats;
}

// ---- local side ---------------------------------------------------------------------------

void Bridge::start(int64_t now_ms) {
  now_ms_ = now_ms;
  open_local(now_ms);
  if (setup_.addresses.empty()) {
    LOG_ERROR("bridge %s: none of its addresses resolved: not started", setup_.options.name);
    stopped_ = true;
    set_state(BridgeState::kStopped, "no address");
    return;
  }
  if (setup_.options.start_type == BridgeOptions::StartType::kLazy) {
    set_state(BridgeState::kIdle, "lazy: waiting for the threshold");
    return;
  }
  begin_connect(now_ms);
}

void Bridge::open_local(int64_t now_ms) {
  local_ = new broker::Connection();
  local_->in_process = true;
  local_->accepted_at_ms = now_ms;
  // Durable: the window is the Receive Maximum below, not --max-inflight (every message the
  // bridge holds is in it until the remote acknowledges it).
  local_->own_inflight_window = setup_.durable;
  // Durable: its SUBSCRIBE below must not wait behind a CONNACK that waits for the store (a
  // first start), or shards would serve clients before they know its subscriptions.
  local_->connack_without_store_wait = setup_.durable;
  state_.on_connection_opened(local_);
  base::ByteBuffer bytes;
  mqtt::ConnectPacket connect;
  connect.protocol_level = static_cast<uint8_t>(mqtt::ProtocolVersion::kV5);
  connect.clean_session = !setup_.durable;
  connect.client_id = setup_.local_clientid;
  if (setup_.durable) {
    connect.properties.session_expiry_interval_seconds = broker::kSessionNeverExpires;
    connect.properties.receive_maximum =
        static_cast<uint16_t>(std::clamp<uint32_t>(setup_.options.max_queued_messages, 1, 65535));
  }
  mqtt::encode_connect(bytes, connect);
  feed_local(bytes);
  COREMQ_ASSERT(local_->state == broker::ConnectionState::kConnected);
  bytes.clear();
  if (setup_.durable) tidy_restored_local_session(bytes);
  // The subscriptions: No Local, so what the bridge publishes (from the remote) never comes back
  // to it; Retain As Published, so the remote sees the retain flag the publisher set. Durable:
  // retained messages only for a new subscription, so a restart does not forward them again.
  std::vector<BridgeTopics::Filter> filters = topics_.local_filters();
  std::vector<mqtt::SubscribeTopic> entries;
  uint8_t retain_handling = setup_.durable ? 1 : 0;
  for (const BridgeTopics::Filter& filter : filters) {
    entries.push_back(mqtt::SubscribeTopic{filter.filter, filter.qos, true, true, retain_handling});
  }
  if (!entries.empty()) {
    mqtt::encode_subscribe(bytes, ++local_packet_id_, entries, mqtt::ProtocolVersion::kV5, {});
  }
  feed_local(bytes);
  if (setup_.durable && (local_->session == nullptr || !local_->session->persisted)) {
    LOG_WARNING(
        "bridge %s: its local session is not in the store (store full?): what it queues is lost if "
        "coremq stops",
        setup_.options.name);
  }
  notify_local(false);
}

void Bridge::tidy_restored_local_session(base::ByteBuffer& bytes) {
  const broker::Session* session = local_->session;
  if (session == nullptr) return;
  // Subscriptions of the last run's topic lines that the config no longer has.
  std::vector<BridgeTopics::Filter> filters = topics_.local_filters();
  std::vector<std::string_view> stale;
  for (const auto& subscription : session->subscriptions) {
    // Not a structured binding: clang 14 (the fuzz build) cannot capture one in a lambda.
    std::string_view filter = subscription.first;
    bool wanted = std::any_of(filters.begin(), filters.end(),
                              [&](const BridgeTopics::Filter& entry) { return entry.filter == filter; });
    if (!wanted) stale.push_back(filter);
  }
  if (!stale.empty()) {
    LOG_INFO("bridge %s: %u local subscriptions of the last run are no longer configured: removed",
             setup_.options.name, stale.size());
    mqtt::encode_unsubscribe(bytes, ++local_packet_id_, stale, mqtt::ProtocolVersion::kV5, {});
  }
  // QoS 2 messages this bridge published locally in the last run, delivered but not released:
  // released now, or the broker would take a new message with one of those ids for a duplicate.
  if (session->incoming_qos2 != nullptr) {
    for (uint16_t packet_id : *session->incoming_qos2) {
      mqtt::encode_ack_v5(bytes, mqtt::PacketType::kPubrel, packet_id, 0, {});
    }
  }
}

void Bridge::feed_local(const base::ByteBuffer& bytes) {
  if (local_ == nullptr || local_->state == broker::ConnectionState::kClosing) return;
  // A held connection keeps what arrives in its input, in order (ShardState::on_bytes).
  state_.on_bytes(local_, bytes.span());
}

void Bridge::on_local_resumed() {
  if (local_ != nullptr && !local_->input.empty()) state_.on_bytes(local_, {});
}

void Bridge::on_local_closed() {
  local_ = nullptr;
  stop();
}

void Bridge::encode_crossing_properties(const mqtt::Properties& received, bool keep_expiry,
                                        base::ByteBuffer& out) {
  out.clear();
  if (received.encoded.empty()) return;
  mqtt::Properties crossing = received;
  crossing.topic_alias.reset();
  crossing.subscription_identifier.reset();
  if (!keep_expiry) crossing.message_expiry_interval_seconds.reset();
  user_property_scratch_.resize(received.user_property_count);
  size_t users = mqtt::copy_user_properties(received, user_property_scratch_);
  mqtt::encode_property_bytes(out, mqtt::PropertyContext::kPublish, crossing,
                              std::span(user_property_scratch_.data(), users));
}

uint16_t Bridge::publish_local(std::string_view topic, std::string_view payload, uint8_t qos, bool retain,
                               std::span<const uint8_t> property_bytes, uint16_t remote_packet_id) {
  base::ByteBuffer bytes;
  mqtt::PublishPacket publish;
  publish.topic = topic;
  publish.payload = payload;
  publish.qos = qos;
  publish.retain = retain;
  if (qos > 0) {
    if (++local_packet_id_ == 0) local_packet_id_ = 1;
    publish.packet_id = local_packet_id_;
  }
  mqtt::encode_publish(bytes, publish, mqtt::ProtocolVersion::kV5, property_bytes);
  if (setup_.durable && qos > 0) {
    // Before feeding: the broker may answer within this call.
    inbound_acks_.push_back(InboundAck{publish.packet_id, remote_packet_id,
                                       qos == 1 ? mqtt::PacketType::kPuback : mqtt::PacketType::kPubrec,
                                       remote_connections_});
  }
  feed_local(bytes);
  return publish.packet_id;
}

void Bridge::take_local_answer(uint16_t local_packet_id) {
  // The broker answers in publish order: the front, unless something was never answered.
  auto found = std::find_if(inbound_acks_.begin(), inbound_acks_.end(), [&](const InboundAck& waiting) {
    return !waiting.ready && waiting.local_packet_id == local_packet_id;
  });
  if (found == inbound_acks_.end()) return;
  found->ready = true;
  send_ready_remote_acks();
}

void Bridge::send_ready_remote_acks() {
  // In the order the remote's PUBLISHes came (MQTT-4.6.0-2, -3): an answer that is ready waits
  // for those ahead of it.
  while (!inbound_acks_.empty() && inbound_acks_.front().ready) {
    InboundAck answered = inbound_acks_.front();
    inbound_acks_.pop_front();
    // An acknowledgement belongs to the connection the message came on: after a reconnect the
    // remote sends it again (QoS 1: published again; QoS 2: a duplicate, answered once its
    // first copy is durable) and may reuse the id for another message.
    if (answered.remote_packet_id != 0 && answered.remote_connection == remote_connections_ &&
        state_now_ == BridgeState::kConnected && !closing_) {
      send_remote_ack(answered.type, answered.remote_packet_id);
    }
  }
}

void Bridge::notify_local(bool connected) {
  if (!setup_.options.notifications) return;
  publish_local(setup_.notification_topic, connected ? "1" : "0", 1, true);
}

void Bridge::on_local_output(base::ByteBuffer bytes, int64_t now_ms) {
  now_ms_ = now_ms;
  base::ByteBuffer acks;
  std::span<const uint8_t> input = bytes.span();
  while (!input.empty()) {
    mqtt::FixedHeader header{};
    mqtt::FrameStatus frame = mqtt::parse_fixed_header(input, mqtt::kRemainingLengthMax + 5, &header);
    COREMQ_ASSERT(frame == mqtt::FrameStatus::kComplete);
    size_t size = size_t{header.header_length} + header.remaining_length;
    std::span<const uint8_t> body = input.subspan(header.header_length, header.remaining_length);
    if (header.type == mqtt::PacketType::kPublish) {
      mqtt::PublishPacket publish;
      COREMQ_ASSERT(mqtt::decode_publish_from_server(body, header.flags, mqtt::ProtocolVersion::kV5,
                                                     &publish) == mqtt::DecodeStatus::kOk);
      take_local_publish(publish, acks);
      last_traffic_ms_ = now_ms;
    } else if (header.type == mqtt::PacketType::kPubrel) {
      mqtt::AckPacket pubrel;
      COREMQ_ASSERT(mqtt::decode_ack(body, header.flags, mqtt::PacketType::kPubrel,
                                     mqtt::ProtocolVersion::kV5, &pubrel) == mqtt::DecodeStatus::kOk);
      if (setup_.durable) {
        take_local_pubrel(pubrel.packet_id, acks);
      } else {
        mqtt::encode_ack_v5(acks, mqtt::PacketType::kPubcomp, pubrel.packet_id, 0, {});
      }
    } else if (header.type == mqtt::PacketType::kPubrec) {
      // Our own QoS 2 publish (from the remote) was taken: release it.
      mqtt::AckPacket pubrec;
      COREMQ_ASSERT(mqtt::decode_ack(body, header.flags, mqtt::PacketType::kPubrec,
                                     mqtt::ProtocolVersion::kV5, &pubrec) == mqtt::DecodeStatus::kOk);
      if (pubrec.reason_code < 0x80)
        mqtt::encode_ack_v5(acks, mqtt::PacketType::kPubrel, pubrec.packet_id, 0, {});
      if (setup_.durable) take_local_answer(pubrec.packet_id);
    } else if (header.type == mqtt::PacketType::kPuback) {
      if (setup_.durable) {
        mqtt::AckPacket puback;
        COREMQ_ASSERT(mqtt::decode_ack(body, header.flags, mqtt::PacketType::kPuback,
                                       mqtt::ProtocolVersion::kV5, &puback) == mqtt::DecodeStatus::kOk);
        take_local_answer(puback.packet_id);
      }
    } else if (header.type == mqtt::PacketType::kSuback) {
      mqtt::SubackPacket suback;
      if (mqtt::decode_suback(body, header.flags, mqtt::ProtocolVersion::kV5, &suback) ==
          mqtt::DecodeStatus::kOk) {
        for (uint8_t code : suback.return_codes) {
          if (code >= 0x80)
            LOG_ERROR("bridge %s: a local subscription was refused (0x%02x)", setup_.options.name, code);
        }
      }
    } else if (header.type == mqtt::PacketType::kDisconnect) {
      LOG_WARNING("bridge %s: the broker disconnected the bridge's local side", setup_.options.name);
    }
    // CONNACK and PUBCOMP need nothing.
    input = input.subspan(size);
  }
  if (!acks.empty()) feed_local(acks);
  pump();
  flush_remote();
}

void Bridge::take_local_publish(const mqtt::PublishPacket& publish, base::ByteBuffer& acks) {
  std::optional<std::string> remote_topic = topics_.to_remote(publish.topic);
  const BridgeOptions& options = setup_.options;
  bool queued = false;
  if (remote_topic) {
    if (publish.qos == 0 && queue_.size() >= options.max_queued_messages) {
      uint64_t dropped = ++stats_.dropped_qos0;
      LOG_WARNING_LIMITED(
          "bridge %s: queue full (bridge_max_queued_messages=%u): QoS 0 message dropped (%u so far)",
          options.name, options.max_queued_messages, dropped);
    } else {
      OutboundMessage message;
      message.topic = std::move(*remote_topic);
      message.payload.assign(publish.payload);
      message.qos = publish.qos;
      message.retain = publish.retain && options.outgoing_retain;
      if (setup_.durable) message.local_packet_id = publish.packet_id;
      if (version_ == mqtt::ProtocolVersion::kV5 && !publish.properties.encoded.empty()) {
        // The broker sent the time left (MQTT-3.3.2-6); the queue may hold the message a while.
        if (publish.properties.message_expiry_interval_seconds)
          message.expires_at_ms = now_ms_ + int64_t{*publish.properties.message_expiry_interval_seconds} * 1000;
        encode_crossing_properties(publish.properties, false, property_scratch_);
        message.properties.assign(reinterpret_cast<const char*>(property_scratch_.data()),
                                  property_scratch_.size());
      }
      queue_.push_back(std::move(message));
      queued = true;
    }
  }
  if (publish.qos == 0) return;
  mqtt::PacketType type = publish.qos == 1 ? mqtt::PacketType::kPuback : mqtt::PacketType::kPubrec;
  if (setup_.durable) {
    // Acknowledged when the remote acknowledges it (pump, handle_remote_packet); the local
    // session's window (Receive Maximum max_queued_messages) bounds what waits here. One that
    // goes nowhere (a subscription no topic line maps) is answered at once.
    if (!queued) mqtt::encode_ack_v5(acks, type, publish.packet_id, 0, {});
    return;
  }
  // Past the bound the acknowledgement waits: the broker keeps what follows in the bridge's
  // session (its in-flight window, then its queue), in order.
  if (queued && (queue_.size() > options.max_queued_messages || !held_acks_.empty())) {
    uint64_t full = ++stats_.queue_full;
    LOG_WARNING_LIMITED(
        "bridge %s: queue full (bridge_max_queued_messages=%u): local acknowledgements wait (%u so far)",
        options.name, options.max_queued_messages, full);
    held_acks_.push_back(HeldAck{publish.packet_id, type});
    return;
  }
  mqtt::encode_ack_v5(acks, type, publish.packet_id, 0, {});
}

void Bridge::take_local_pubrel(uint16_t packet_id, base::ByteBuffer& acks) {
  auto found = std::find_if(inflight_.begin(), inflight_.end(),
                            [&](const InflightMessage& entry) { return entry.packet_id == packet_id; });
  if (found == inflight_.end()) {
    if (std::any_of(queue_.begin(), queue_.end(),
                    [&](const OutboundMessage& message) { return message.local_packet_id == packet_id; })) {
      // Cannot happen: the local PUBREC (which the PUBREL answers) follows the remote's.
      mqtt::encode_ack_v5(acks, mqtt::PacketType::kPubcomp, packet_id, 0, {});
      return;
    }
    // Restored from the last run: the local PUBREC was durable, so the remote had the message;
    // its PUBREL goes (again) and the remote's PUBCOMP ends both exchanges.
    OutboundMessage release;
    release.qos = 2;
    release.local_packet_id = packet_id;
    packet_id_used_[packet_id] = true;
    ++inflight_qos2_;
    inflight_.push_back(InflightMessage{std::move(release), packet_id, true, true});
    if (state_now_ == BridgeState::kConnected && !closing_)
      send_remote_ack(mqtt::PacketType::kPubrel, packet_id);
    return;
  }
  found->released = true;
  if (state_now_ == BridgeState::kConnected && !closing_)
    send_remote_ack(mqtt::PacketType::kPubrel, packet_id);
}

void Bridge::acknowledge_dropped_local(const OutboundMessage& message) {
  if (!setup_.durable || message.qos == 0) return;
  if (message.qos == 1) {
    mqtt::encode_ack_v5(local_acks_, mqtt::PacketType::kPuback, message.local_packet_id, 0, {});
  } else {
    // 0x80 (unspecified error): an error PUBREC ends a QoS 2 exchange, no PUBREL follows.
    mqtt::encode_ack_v5(local_acks_, mqtt::PacketType::kPubrec, message.local_packet_id, 0x80, {});
  }
}

void Bridge::flush_local_acks() {
  if (local_acks_.empty()) return;
  feed_local(local_acks_);
  local_acks_.clear();
}

void Bridge::send_remote_ack(mqtt::PacketType type, uint16_t packet_id) {
  base::ByteBuffer bytes;
  if (version_ == mqtt::ProtocolVersion::kV5) {
    mqtt::encode_ack_v5(bytes, type, packet_id, 0, {});
  } else {
    mqtt::encode_ack(bytes, type, packet_id);
  }
  send_remote(bytes);
}

void Bridge::release_held_acks() {
  if (held_acks_.empty()) return;
  base::ByteBuffer acks;
  while (!held_acks_.empty() && queue_.size() < setup_.options.max_queued_messages) {
    mqtt::encode_ack_v5(acks, held_acks_.front().type, held_acks_.front().packet_id, 0, {});
    held_acks_.pop_front();
  }
  if (!acks.empty()) feed_local(acks);
}

// ---- remote side: connection ----------------------------------------------------------------

void Bridge::begin_connect(int64_t now_ms) {
  COREMQ_ASSERT(fd_ < 0 && operations_in_flight_ == 0);
  const BridgeSetup::Resolved& address = setup_.addresses[address_index_ % setup_.addresses.size()];
  stats_.remote = address.text;
  fd_ = ::socket(address.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    LOG_ERROR("bridge %s: socket: %s", setup_.options.name, std::strerror(errno));
    schedule_restart(now_ms);
    return;
  }
  int one = 1;
  (void)::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  closing_ = false;
  connack_received_ = false;
  input_.clear();
  output_.clear();
  wire_pending_.clear();
  tls_.reset();
  if (address.tls != nullptr) {
    std::string error;
    tls_ = transport::TlsClientTransport::create(*address.tls, &error);
    if (tls_ == nullptr) {
      LOG_ERROR("bridge %s: %s", setup_.options.name, error);
      ::close(fd_);
      fd_ = -1;
      schedule_restart(now_ms);
      return;
    }
  }
  connect_started_ms_ = now_ms;
  set_state(BridgeState::kConnecting, address.text.c_str());
  io_uring_sqe* sqe = ring_.next_sqe();
  io_uring_prep_connect(sqe, fd_, reinterpret_cast<const sockaddr*>(&address.address), address.length);
  io_uring_sqe_set_data64(sqe, user_data_of(&connect_operation_));
  ++operations_in_flight_;
}

void Bridge::on_completion(uint64_t user_data, int result, int64_t now_ms) {
  auto* operation = reinterpret_cast<Operation*>(user_data & ~uint64_t{7});
  operation->bridge->now_ms_ = now_ms;
  operation->bridge->handle(operation->kind, result, now_ms);
}

void Bridge::handle(OperationKind kind, int result, int64_t now_ms) {
  COREMQ_ASSERT(operations_in_flight_ > 0);
  --operations_in_flight_;
  switch (kind) {
    case OperationKind::kConnect:
      on_connected(result, now_ms);
      break;
    case OperationKind::kReceive:
      on_received(result, now_ms);
      break;
    case OperationKind::kSend:
      on_sent(result);
      break;
  }
  if (closing_) finish_close(now_ms);
}

void Bridge::on_connected(int result, int64_t now_ms) {
  if (closing_) return;
  if (result < 0) {
    ++stats_.connect_failures;
    LOG_WARNING("bridge %s: connect to %s failed: %s", setup_.options.name, stats_.remote,
                std::strerror(-result));
    ++address_index_;  // failover: the next address next time
    lose_connection("connect failed", now_ms);
    return;
  }
  last_received_ms_ = now_ms;
  last_sent_ms_ = now_ms;
  if (tls_ != nullptr) {
    // An empty input starts the handshake: the ClientHello goes to wire_pending_.
    decoded_.clear();
    if (tls_->decode({}, decoded_, wire_pending_) == transport::Transport::Status::kError) {
      lose_connection("TLS handshake could not start", now_ms);
      return;
    }
  }
  // With TLS the CONNECT waits in output_ until the handshake is done.
  send_connect();
  arm_receive();
  flush_remote();
}

void Bridge::send_connect() {
  const BridgeOptions& options = setup_.options;
  mqtt::ConnectPacket connect;
  uint8_t level = static_cast<uint8_t>(version_);
  if (version_ == mqtt::ProtocolVersion::kV311 && options.try_private) level |= kTryPrivateBit;
  connect.protocol_level = level;
  connect.clean_session = options.clean_session;
  connect.keep_alive_seconds = options.keepalive_seconds;
  connect.client_id = setup_.remote_clientid;
  if (!options.remote_username.empty()) {
    connect.has_username = true;
    connect.username = options.remote_username;
  }
  if (options.has_remote_password) {
    connect.has_password = true;
    connect.password = options.remote_password;
  }
  if (options.notifications) {
    // As Mosquitto: the remote announces the bridge's loss itself.
    connect.has_will = true;
    connect.will = mqtt::Will{setup_.notification_topic, "0", 1, true};
  }
  if (version_ == mqtt::ProtocolVersion::kV5) {
    if (!options.clean_session) connect.properties.session_expiry_interval_seconds = 0xFFFFFFFF;
    connect.properties.maximum_packet_size = static_cast<uint32_t>(max_packet_size_);
  }
  base::ByteBuffer bytes;
  mqtt::encode_connect(bytes, connect);
  send_remote(bytes);
}

void Bridge::arm_receive() {
  io_uring_sqe* sqe = ring_.next_sqe();
  io_uring_prep_recv(sqe, fd_, receive_buffer_.data(), receive_buffer_.size(), 0);
  io_uring_sqe_set_data64(sqe, user_data_of(&receive_operation_));
  ++operations_in_flight_;
}

void Bridge::on_received(int result, int64_t now_ms) {
  if (closing_) return;
  if (result <= 0) {
    lose_connection(result == 0 ? "the remote closed the connection" : std::strerror(-result), now_ms);
    return;
  }
  last_received_ms_ = now_ms;
  std::span<const uint8_t> received(receive_buffer_.data(), static_cast<size_t>(result));
  if (tls_ != nullptr) {
    decoded_.clear();
    transport::Transport::Status status = tls_->decode(received, decoded_, wire_pending_);
    if (status != transport::Transport::Status::kOk) {
      std::string why = status == transport::Transport::Status::kClosed
                            ? std::string("TLS closed by the remote")
                            : "TLS: " + std::string(tls_->error());
      lose_connection(why.c_str(), now_ms);
      return;
    }
    input_.append(decoded_.span());
  } else {
    input_.append(received);
  }
  handle_remote_packets(now_ms);
  flush_local_acks();  // one batch for the local session per receive
  if (closing_) return;
  arm_receive();
  pump();
  flush_remote();
}

void Bridge::send_remote(base::ByteBuffer& bytes) {
  output_.append(bytes.span());
  last_sent_ms_ = now_ms_;
}

void Bridge::flush_remote() {
  if (fd_ < 0 || closing_ || send_in_flight_) return;
  if (tls_ != nullptr) {
    if (tls_->established() && !output_.empty()) {
      if (tls_->encode(output_.span(), wire_pending_) != transport::Transport::Status::kOk) {
        std::string why = "TLS: " + std::string(tls_->error());
        lose_connection(why.c_str(), now_ms_);
        return;
      }
      output_.clear();
    }
    if (wire_pending_.empty()) return;
    sending_.swap(wire_pending_);
  } else {
    if (output_.empty()) return;
    sending_.swap(output_);
  }
  io_uring_sqe* sqe = ring_.next_sqe();
  io_uring_prep_send(sqe, fd_, sending_.data(), sending_.size(), MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, user_data_of(&send_operation_));
  send_in_flight_ = true;
  ++operations_in_flight_;
}

void Bridge::on_sent(int result) {
  send_in_flight_ = false;
  if (closing_) {
    sending_.clear();
    return;
  }
  if (result < 0) {
    sending_.clear();
    lose_connection(std::strerror(-result), last_received_ms_);
    return;
  }
  size_t sent = static_cast<size_t>(result);
  if (sent < sending_.size()) {
    // A short send: the rest goes first next time (wire bytes under TLS, plain ones without).
    base::ByteBuffer& pending = tls_ != nullptr ? wire_pending_ : output_;
    base::ByteBuffer rest;
    rest.append(sending_.span().subspan(sent));
    rest.append(pending.span());
    pending.swap(rest);
  }
  sending_.clear();
  flush_remote();
}

void Bridge::lose_connection(const char* why, int64_t now_ms) {
  if (closing_) return;
  bool was_connected = state_now_ == BridgeState::kConnected;
  closing_ = true;
  if (fd_ >= 0) {
    // Ends the receive (and a send) in the kernel; the fd is closed once they completed.
    (void)::shutdown(fd_, SHUT_RDWR);
    if (operations_in_flight_ > 0) {
      io_uring_sqe* sqe = ring_.next_sqe();
      io_uring_prep_cancel_fd(sqe, fd_, IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(sqe, 0 | Bridge::kUserDataTag);  // a null pointer: ignored
    }
  }
  if (was_connected) notify_local(false);
  ++stats_.reconnects;
  LOG_WARNING("bridge %s: connection to %s lost: %s", setup_.options.name, stats_.remote, why);
  if (was_connected) address_index_ = 0;  // a lost connection starts again from the first address
  finish_close(now_ms);
}

void Bridge::finish_close(int64_t now_ms) {
  if (operations_in_flight_ > 0) return;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  closing_ = false;
  send_in_flight_ = false;
  sending_.clear();
  output_.clear();
  input_.clear();
  wire_pending_.clear();
  tls_.reset();
  ping_outstanding_ = false;
  if (stopped_ || setup_.options.start_type == BridgeOptions::StartType::kOnce) {
    stopped_ = true;
    set_state(BridgeState::kStopped, "not restarted");
    return;
  }
  if (setup_.options.start_type == BridgeOptions::StartType::kLazy &&
      queue_.size() < setup_.options.threshold && connack_received_) {
    set_state(BridgeState::kIdle, "lazy: idle");
    return;
  }
  schedule_restart(now_ms);
}

void Bridge::schedule_restart(int64_t now_ms) {
  const BridgeOptions& options = setup_.options;
  uint32_t delay = options.restart_timeout_seconds;
  if (options.restart_timeout_cap_seconds > 0) {
    // Mosquitto's decorrelated jitter: a random delay between base and three times the last
    // one, capped.
    uint32_t last = std::max(restart_delay_seconds_, options.restart_timeout_seconds);
    uint64_t high = std::min<uint64_t>(uint64_t{last} * 3, options.restart_timeout_cap_seconds);
    random_state_ ^= random_state_ << 13;
    random_state_ ^= random_state_ >> 7;
    random_state_ ^= random_state_ << 17;
    uint64_t span = high > options.restart_timeout_seconds ? high - options.restart_timeout_seconds + 1 : 1;
    delay = static_cast<uint32_t>(options.restart_timeout_seconds + random_state_ % span);
  }
  restart_delay_seconds_ = delay;
  restart_at_ms_ = now_ms + int64_t{delay} * 1000;
  set_state(BridgeState::kWaitingToRestart, "restart timer");
}

void Bridge::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (fd_ >= 0) {
    lose_connection("shutting down", last_received_ms_);
  } else {
    set_state(BridgeState::kStopped, "shutting down");
  }
}

void Bridge::close_at_exit() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Bridge::on_tick(int64_t now_ms) {
  now_ms_ = now_ms;
  if (local_ != nullptr) local_->last_packet_at_ms = now_ms;  // an in-process client never pings
  const BridgeOptions& options = setup_.options;
  switch (state_now_) {
    case BridgeState::kWaitingToRestart:
      if (!stopped_ && fd_ < 0 && now_ms >= restart_at_ms_) begin_connect(now_ms);
      break;
    case BridgeState::kIdle:
      if (!stopped_ && fd_ < 0 && queue_.size() + held_acks_.size() >= options.threshold)
        begin_connect(now_ms);
      break;
    case BridgeState::kConnecting:
      if (!closing_ && now_ms - connect_started_ms_ > kConnectTimeoutMs) {
        ++address_index_;
        lose_connection("connect timed out", now_ms);
      }
      break;
    case BridgeState::kConnected: {
      int64_t keepalive_ms = int64_t{options.keepalive_seconds} * 1000;
      if (now_ms - last_received_ms_ > keepalive_ms * 3 / 2) {
        lose_connection("keep-alive: nothing from the remote", now_ms);
        break;
      }
      if (!ping_outstanding_ && now_ms - last_sent_ms_ >= keepalive_ms) {
        base::ByteBuffer ping;
        mqtt::encode_pingreq(ping);
        send_remote(ping);
        ping_outstanding_ = true;
        last_sent_ms_ = now_ms;
        flush_remote();
      }
      if (options.start_type == BridgeOptions::StartType::kLazy && queue_.empty() && inflight_.empty() &&
          now_ms - last_traffic_ms_ > int64_t{options.idle_timeout_seconds} * 1000) {
        lose_connection("lazy: idle timeout", now_ms);
      }
      break;
    }
    case BridgeState::kStopped:
      break;
  }
}

// ---- remote side: packets -------------------------------------------------------------------

void Bridge::handle_remote_packets(int64_t now_ms) {
  std::span<const uint8_t> pending = input_.span();
  size_t consumed = 0;
  while (!closing_) {
    mqtt::FixedHeader header{};
    std::span<const uint8_t> rest = pending.subspan(consumed);
    mqtt::FrameStatus frame =
        mqtt::parse_fixed_header(rest, static_cast<uint32_t>(max_packet_size_), &header);
    if (frame == mqtt::FrameStatus::kNeedMore) break;
    if (frame != mqtt::FrameStatus::kComplete) {
      lose_connection("a malformed or oversized packet from the remote", now_ms);
      return;
    }
    size_t size = size_t{header.header_length} + header.remaining_length;
    if (rest.size() < size) break;
    if (!handle_remote_packet(header, rest.subspan(header.header_length, header.remaining_length), now_ms))
      return;
    consumed += size;
  }
  if (!closing_) input_.consume_front(consumed);
}

bool Bridge::handle_remote_packet(const mqtt::FixedHeader& header, std::span<const uint8_t> body,
                                  int64_t now_ms) {
  const BridgeOptions& options = setup_.options;
  base::ByteBuffer reply;
  switch (header.type) {
    case mqtt::PacketType::kConnack: {
      mqtt::ConnackPacket connack;
      if (connack_received_ ||
          mqtt::decode_connack(body, header.flags, version_, &connack) != mqtt::DecodeStatus::kOk) {
        lose_connection("a malformed CONNACK", now_ms);
        return false;
      }
      if (connack.return_code != mqtt::ConnectReturnCode::kAccepted) {
        LOG_ERROR("bridge %s: %s refused the connection (return code %u, reason 0x%02x)", options.name,
                  stats_.remote, static_cast<unsigned>(connack.return_code), connack.reason_code);
        lose_connection("CONNACK refusal", now_ms);
        return false;
      }
      connack_received_ = true;
      ++remote_connections_;
      remote_receive_maximum_ = connack.properties.receive_maximum.value_or(65535);
      remote_maximum_packet_size_ = connack.properties.maximum_packet_size.value_or(0);
      after_connack(now_ms);
      return true;
    }
    case mqtt::PacketType::kPublish: {
      mqtt::PublishPacket publish;
      if (mqtt::decode_publish_from_server(body, header.flags, version_, &publish) !=
          mqtt::DecodeStatus::kOk) {
        lose_connection("a malformed PUBLISH", now_ms);
        return false;
      }
      bool duplicate =
          publish.qos == 2 && std::find(remote_qos2_received_.begin(), remote_qos2_received_.end(),
                                        publish.packet_id) != remote_qos2_received_.end();
      if (publish.qos == 2 && !duplicate && remote_qos2_received_.size() >= kRemoteQos2Max) {
        // A remote that never releases its QoS 2 messages cannot make this list grow forever.
        lose_connection("the remote left too many QoS 2 messages unreleased", now_ms);
        return false;
      }
      if (publish.qos > 0 && setup_.durable && inbound_acks_.size() >= kInboundAcksMax) {
        // The local store has answered none of these for a long while (a full disk): take no
        // more from the remote, which keeps what it sent until a later connection.
        lose_connection("the local store has not made the remote's earlier messages durable yet", now_ms);
        return false;
      }
      // Durable: the remote's acknowledgement waits for the local broker's (take_local_answer).
      bool answer_later = false;
      if (!duplicate) {
        if (std::optional<std::string> local_topic = topics_.to_local(publish.topic)) {
          // MQTT 5: its properties cross too, the expiry as the time left the remote sent.
          encode_crossing_properties(publish.properties, true, property_scratch_);
          publish_local(*local_topic, publish.payload, publish.qos, publish.retain, property_scratch_.span(),
                        publish.packet_id);
          answer_later = setup_.durable && publish.qos > 0;
          ++stats_.messages_in;
          last_traffic_ms_ = now_ms;
        }
      } else if (setup_.durable) {
        // A QoS 2 resend (after a reconnect) of a message whose local PUBREC has not come yet: its
        // PUBREC goes on this connection once it does.
        for (InboundAck& waiting : inbound_acks_) {
          if (waiting.remote_packet_id == publish.packet_id && waiting.type == mqtt::PacketType::kPubrec) {
            waiting.remote_connection = remote_connections_;
            answer_later = true;
          }
        }
      }
      if (publish.qos == 2 && !duplicate) remote_qos2_received_.push_back(publish.packet_id);
      if (answer_later) break;
      if (publish.qos > 0 && setup_.durable && !inbound_acks_.empty()) {
        // Answerable now (a topic no line maps, a QoS 2 resend whose PUBREC went), but behind
        // the acknowledgements still waiting for the local broker: the remote gets them in the
        // order it sent the PUBLISHes (MQTT-4.6.0-2, -3).
        inbound_acks_.push_back(InboundAck{0, publish.packet_id,
                                           publish.qos == 1 ? mqtt::PacketType::kPuback : mqtt::PacketType::kPubrec,
                                           remote_connections_, /*ready=*/true});
        break;
      }
      if (publish.qos == 1) {
        if (version_ == mqtt::ProtocolVersion::kV5) {
          mqtt::encode_ack_v5(reply, mqtt::PacketType::kPuback, publish.packet_id, 0, {});
        } else {
          mqtt::encode_ack(reply, mqtt::PacketType::kPuback, publish.packet_id);
        }
      } else if (publish.qos == 2) {
        if (version_ == mqtt::ProtocolVersion::kV5) {
          mqtt::encode_ack_v5(reply, mqtt::PacketType::kPubrec, publish.packet_id, 0, {});
        } else {
          mqtt::encode_ack(reply, mqtt::PacketType::kPubrec, publish.packet_id);
        }
      }
      break;
    }
    case mqtt::PacketType::kPubrel: {
      mqtt::AckPacket pubrel;
      if (mqtt::decode_ack(body, header.flags, mqtt::PacketType::kPubrel, version_, &pubrel) !=
          mqtt::DecodeStatus::kOk) {
        lose_connection("a malformed PUBREL", now_ms);
        return false;
      }
      std::erase(remote_qos2_received_, pubrel.packet_id);
      if (version_ == mqtt::ProtocolVersion::kV5) {
        mqtt::encode_ack_v5(reply, mqtt::PacketType::kPubcomp, pubrel.packet_id, 0, {});
      } else {
        mqtt::encode_ack(reply, mqtt::PacketType::kPubcomp, pubrel.packet_id);
      }
      break;
    }
    case mqtt::PacketType::kPuback:
    case mqtt::PacketType::kPubrec:
    case mqtt::PacketType::kPubcomp: {
      mqtt::AckPacket ack;
      if (mqtt::decode_ack(body, header.flags, header.type, version_, &ack) != mqtt::DecodeStatus::kOk) {
        lose_connection("a malformed acknowledgement", now_ms);
        return false;
      }
      auto found = std::find_if(inflight_.begin(), inflight_.end(), [&](const InflightMessage& entry) {
        return entry.packet_id == ack.packet_id;
      });
      if (found == inflight_.end()) break;  // a late or duplicate acknowledgement
      if (setup_.durable && header.type == mqtt::PacketType::kPubrec && ack.reason_code < 0x80) {
        // Passed on; the remote's PUBREL waits for the local one (take_local_pubrel).
        if (!found->remote_received && !found->released) {
          found->remote_received = true;
          mqtt::encode_ack_v5(local_acks_, mqtt::PacketType::kPubrec, found->message.local_packet_id, 0, {});
        }
        break;
      }
      if (header.type == mqtt::PacketType::kPubrec && ack.reason_code < 0x80) {
        found->released = true;
        if (version_ == mqtt::ProtocolVersion::kV5) {
          mqtt::encode_ack_v5(reply, mqtt::PacketType::kPubrel, ack.packet_id, 0, {});
        } else {
          mqtt::encode_ack(reply, mqtt::PacketType::kPubrel, ack.packet_id);
        }
        break;
      }
      packet_id_used_[found->packet_id] = false;
      if (found->message.qos == 2) --inflight_qos2_;
      if (setup_.durable) {
        // The remote has it (PUBACK, PUBCOMP, or an error PUBREC that ends the exchange): now the
        // local session may forget it.
        mqtt::PacketType local_type = found->message.qos == 1                    ? mqtt::PacketType::kPuback
                                      : header.type == mqtt::PacketType::kPubrec ? mqtt::PacketType::kPubrec
                                                                                 : mqtt::PacketType::kPubcomp;
        uint8_t reason = local_type == mqtt::PacketType::kPubrec ? 0x80 : 0;
        if (local_type != mqtt::PacketType::kPubrec || !found->remote_received)
          mqtt::encode_ack_v5(local_acks_, local_type, found->message.local_packet_id, reason, {});
      }
      inflight_.erase(found);
      ++stats_.messages_out;
      release_held_acks();
      break;
    }
    case mqtt::PacketType::kSuback: {
      mqtt::SubackPacket suback;
      if (mqtt::decode_suback(body, header.flags, version_, &suback) == mqtt::DecodeStatus::kOk) {
        for (uint8_t code : suback.return_codes) {
          if (code >= 0x80)
            LOG_ERROR("bridge %s: the remote refused a subscription (0x%02x)", options.name, code);
        }
      }
      break;
    }
    case mqtt::PacketType::kPingresp:
      ping_outstanding_ = false;
      break;
    case mqtt::PacketType::kDisconnect:
      lose_connection("the remote sent DISCONNECT", now_ms);
      return false;
    default:
      lose_connection("an unexpected packet from the remote", now_ms);
      return false;
  }
  if (!reply.empty()) send_remote(reply);
  return true;
}

void Bridge::after_connack(int64_t now_ms) {
  const BridgeOptions& options = setup_.options;
  ++stats_.connects;
  restart_delay_seconds_ = 0;
  last_traffic_ms_ = now_ms;
  set_state(BridgeState::kConnected, stats_.remote.c_str());
  base::ByteBuffer bytes;
  // The remote subscriptions (in lines). MQTT 5: No Local, so the remote never sends back what
  // this bridge published there; 3.1.1 relies on the bridge bit (try_private) for the same.
  std::vector<BridgeTopics::Filter> filters = topics_.remote_filters();
  if (!filters.empty()) {
    std::vector<mqtt::SubscribeTopic> entries;
    for (const BridgeTopics::Filter& filter : filters) {
      bool v5 = version_ == mqtt::ProtocolVersion::kV5;
      entries.push_back(mqtt::SubscribeTopic{filter.filter, filter.qos, v5, v5, 0});
    }
    uint16_t id = next_packet_id();
    packet_id_used_[id] = false;  // a SUBACK frees it at once: nothing waits on it
    mqtt::encode_subscribe(bytes, id, entries, version_, {});
  }
  if (options.notifications) {
    mqtt::PublishPacket publish;
    publish.topic = setup_.notification_topic;
    publish.payload = "1";
    publish.qos = 0;
    publish.retain = true;
    mqtt::encode_publish(bytes, publish, version_, {});
  }
  send_remote(bytes);
  // What was in flight goes again first, in order (DUP set), then the queue.
  for (const InflightMessage& entry : inflight_) {
    // Durable QoS 2 past the remote's PUBREC: its PUBREL waits for the local one.
    if (entry.remote_received && !entry.released) continue;
    if (entry.released) {
      base::ByteBuffer pubrel;
      if (version_ == mqtt::ProtocolVersion::kV5) {
        mqtt::encode_ack_v5(pubrel, mqtt::PacketType::kPubrel, entry.packet_id, 0, {});
      } else {
        mqtt::encode_ack(pubrel, mqtt::PacketType::kPubrel, entry.packet_id);
      }
      send_remote(pubrel);
    } else {
      (void)encode_publish_remote(entry.message, entry.packet_id, true, false);
    }
  }
  notify_local(true);
}

uint16_t Bridge::next_packet_id() {
  // Bounded by max_inflight (<= 65535), so a free id is always found.
  do {
    if (++last_packet_id_ == 0) last_packet_id_ = 1;
  } while (packet_id_used_[last_packet_id_]);
  packet_id_used_[last_packet_id_] = true;
  return last_packet_id_;
}

bool Bridge::encode_publish_remote(const OutboundMessage& message, uint16_t packet_id, bool dup,
                                   bool drop_expired) {
  std::span<const uint8_t> property_bytes(reinterpret_cast<const uint8_t*>(message.properties.data()),
                                          message.properties.size());
  if (message.expires_at_ms != 0) {
    int64_t left_ms = message.expires_at_ms - now_ms_;
    if (left_ms <= 0 && drop_expired) return false;
    // The time left, rounded up, in a block of its own after the others (order is free).
    mqtt::Properties expiry;
    expiry.message_expiry_interval_seconds = static_cast<uint32_t>(std::max<int64_t>(1, (left_ms + 999) / 1000));
    property_scratch_.clear();
    property_scratch_.append(property_bytes);
    mqtt::encode_property_bytes(property_scratch_, mqtt::PropertyContext::kPublish, expiry);
    property_bytes = property_scratch_.span();
  }
  mqtt::PublishPacket publish;
  publish.topic = message.topic;
  publish.payload = message.payload;
  publish.qos = message.qos;
  publish.retain = message.retain;
  publish.dup = dup;
  publish.packet_id = packet_id;
  if (version_ != mqtt::ProtocolVersion::kV5) property_bytes = {};
  mqtt::encode_publish(output_, publish, version_, property_bytes);
  return true;
}

void Bridge::pump() {
  if (state_now_ != BridgeState::kConnected || closing_) return;
  const BridgeOptions& options = setup_.options;
  uint32_t window = std::min<uint32_t>(options.max_inflight, remote_receive_maximum_);
  uint32_t limit = options.max_packet_size;
  if (remote_maximum_packet_size_ > 0 && (limit == 0 || remote_maximum_packet_size_ < limit))
    limit = remote_maximum_packet_size_;
  // Refill a full window in batches: once it was full, wait until `batch` slots are free. Sending
  // a message per PUBACK as it comes turned a remote that acknowledges one message per write (as
  // Mosquitto does) into one PUBLISH per loop turn, a send and a wake-up per message on both sides.
  uint32_t batch = std::max<uint32_t>(1, std::min<uint32_t>(window / 2, kRefillBatchMax));
  if (refill_waits_ && window - std::min<size_t>(inflight_.size(), window) >= batch) refill_waits_ = false;
  while (!queue_.empty() && (queue_.front().qos == 0 || (!refill_waits_ && inflight_.size() < window))) {
    if (queue_.front().qos == 2 && inflight_qos2_ >= options.max_inflight_qos2) {
      // A 3.1.1 remote cannot say how many QoS 2 messages it takes at once, and Mosquitto
      // drops a client that has more than its max_inflight_messages (20) unreleased.
      uint64_t waits = ++stats_.qos2_window_full;
      LOG_INFO_LIMITED("bridge %s: %u QoS 2 messages in flight (bridge_max_inflight_qos2): the next waits (%u so far)",
                       options.name, inflight_qos2_, waits);
      break;
    }
    OutboundMessage message = std::move(queue_.front());
    queue_.pop_front();
    // (+ 5: the Message Expiry Interval added on the way out)
    size_t size = version_ == mqtt::ProtocolVersion::kV5
                      ? mqtt::publish_packet_size_v5(message.topic, message.qos,
                                                     message.properties.size() + (message.expires_at_ms != 0 ? 5 : 0),
                                                     message.payload.size())
                      : mqtt::publish_packet_size(message.topic, message.qos, message.payload.size());
    if (limit > 0 && size > limit) {
      uint64_t dropped = ++stats_.dropped_too_large;
      LOG_WARNING_LIMITED(
          "bridge %s: a %u-byte message is over the packet size limit %u: dropped (%u so far)", options.name,
          size, limit, dropped);
      acknowledge_dropped_local(message);
      continue;
    }
    if (message.expires_at_ms != 0 && message.expires_at_ms <= now_ms_) {
      // MQTT-3.3.2-5: an expired message is not sent on (Mosquitto drops it too).
      uint64_t expired = ++stats_.dropped_expired;
      LOG_INFO_LIMITED("bridge %s: a message expired while queued: dropped (%u so far)", options.name, expired);
      acknowledge_dropped_local(message);
      continue;
    }
    if (message.qos == 0) {
      bool encoded = encode_publish_remote(message, 0, false, true);
      COREMQ_ASSERT(encoded);  // not expired: checked above
      ++stats_.messages_out;
      continue;
    }
    // Durable: the local packet id goes to the remote too (see bridge.h).
    uint16_t id = message.local_packet_id;
    if (setup_.durable) {
      COREMQ_ASSERT(id != 0);
      packet_id_used_[id] = true;
    } else {
      id = next_packet_id();
    }
    bool encoded = encode_publish_remote(message, id, false, true);
    COREMQ_ASSERT(encoded);
    if (message.qos == 2) ++inflight_qos2_;
    inflight_.push_back(InflightMessage{std::move(message), id, false});
    if (inflight_.size() >= window) refill_waits_ = true;
  }
  flush_local_acks();
  release_held_acks();
}

}  // namespace coremq::shard
