// The client protocol state machine; see client.h. Runs on the owning worker's thread.
#include "client.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "base/assert.h"
#include "bounds.h"
#include "clock.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/properties.h"
#include "mqtt/reason_code.h"
#include "payload.h"

namespace coremq::bench {

namespace {

constexpr size_t kPacketIds = 65536;

bool test_bit(const std::vector<uint64_t>& bits, uint16_t id) { return (bits[id / 64] >> (id % 64)) & 1; }
void set_bit(std::vector<uint64_t>& bits, uint16_t id) { bits[id / 64] |= uint64_t{1} << (id % 64); }
void clear_bit(std::vector<uint64_t>& bits, uint16_t id) { bits[id / 64] &= ~(uint64_t{1} << (id % 64)); }

const char* connack_reason(mqtt::ConnectReturnCode code) {
  switch (code) {
    case mqtt::ConnectReturnCode::kAccepted: return "accepted";
    case mqtt::ConnectReturnCode::kUnacceptableProtocolVersion: return "unacceptable protocol version";
    case mqtt::ConnectReturnCode::kIdentifierRejected: return "identifier rejected";
    case mqtt::ConnectReturnCode::kServerUnavailable: return "server unavailable";
    case mqtt::ConnectReturnCode::kBadUsernameOrPassword: return "bad username or password";
    case mqtt::ConnectReturnCode::kNotAuthorized: return "not authorized";
  }
  return "unknown";
}

}  // namespace

Client::Client(const ClientSpec& spec, WorkerContext& context)
    : spec_(spec), context_(context), version_(static_cast<mqtt::ProtocolVersion>(context.options->protocol_level)) {
  if (spec_.role == Role::kPublisher && context_.options->qos > 0) {
    awaiting_ack_.assign(kPacketIds / 64, 0);
    awaiting_complete_.assign(kPacketIds / 64, 0);
  }
  if (spec_.role == Role::kPublisher && version_ == mqtt::ProtocolVersion::kV5) build_publish_properties();
}

namespace {
void append_u16(std::vector<uint8_t>& out, size_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value));
}
void append_string(std::vector<uint8_t>& out, const std::string& text) {
  append_u16(out, text.size());
  out.insert(out.end(), text.begin(), text.end());
}
}  // namespace

void Client::build_publish_properties() {
  for (const auto& [name, value] : context_.options->user_properties) {
    publish_properties_plain_.push_back(static_cast<uint8_t>(mqtt::PropertyId::kUserProperty));
    append_string(publish_properties_plain_, name);
    append_string(publish_properties_plain_, value);
  }
  publish_properties_ = publish_properties_plain_;
  if (context_.options->topic_alias) {
    // Alias 1 on every connection: each publisher has one topic.
    publish_properties_.insert(publish_properties_.begin(), {static_cast<uint8_t>(mqtt::PropertyId::kTopicAlias), 0, 1});
  }
}

void Client::on_connected() {
  COREMQ_ASSERT(state_ == ClientState::kConnecting);
  const Options& options = *context_.options;
  mqtt::ConnectPacket connect;
  connect.protocol_level = options.protocol_level;
  connect.clean_session = options.clean_session;
  connect.keep_alive_seconds = options.keepalive_s;
  connect.client_id = spec_.client_id;
  connect.has_username = options.has_username;
  connect.username = options.username;
  connect.has_password = options.has_password;
  connect.password = options.password;
  if (!spec_.will_topic.empty()) {
    connect.has_will = true;
    connect.will.topic = spec_.will_topic;
    connect.will.payload = options.will_payload;
    connect.will.qos = options.will_qos;
    connect.will.retain = options.will_retain;
  }
  if (version_ == mqtt::ProtocolVersion::kV5) {
    if (options.has_session_expiry) connect.properties.session_expiry_interval_seconds = options.session_expiry_s;
    if (options.receive_maximum > 0) connect.properties.receive_maximum = options.receive_maximum;
    if (options.maximum_packet_size > 0) connect.properties.maximum_packet_size = options.maximum_packet_size;
  }
  mqtt::encode_connect(staging, connect);
  state_ = ClientState::kAwaitingConnack;
}

void Client::fail(std::string message) {
  if (state_ == ClientState::kFailed) return;
  state_ = ClientState::kFailed;
  error_ = absl::StrFormat("%s: %s", spec_.client_id, message);
}

bool Client::protocol_error(std::string message) {
  fail(std::move(message));
  return false;
}

bool Client::on_bytes(std::span<const uint8_t> bytes, int64_t now_ns) {
  if (state_ == ClientState::kFailed || state_ == ClientState::kClosed) return true;
  if (partial_.empty()) {
    int64_t consumed = parse_packets(bytes, now_ns);
    if (consumed < 0) return false;
    partial_.append(bytes.subspan(static_cast<size_t>(consumed)));
    return true;
  }
  partial_.append(bytes);
  int64_t consumed = parse_packets(partial_.span(), now_ns);
  if (consumed < 0) return false;
  partial_.consume_front(static_cast<size_t>(consumed));
  return true;
}

int64_t Client::parse_packets(std::span<const uint8_t> bytes, int64_t now_ns) {
  size_t offset = 0;
  while (offset < bytes.size()) {
    mqtt::FixedHeader header{};
    mqtt::FrameStatus status = mqtt::parse_fixed_header(bytes.subspan(offset), kIncomingPacketBytesMax, &header);
    if (status == mqtt::FrameStatus::kNeedMore) break;
    if (status != mqtt::FrameStatus::kComplete) {
      protocol_error(absl::StrFormat("broker sent a bad packet header (%s)", mqtt::frame_status_name(status)));
      return -1;
    }
    size_t total = size_t{header.header_length} + header.remaining_length;
    if (bytes.size() - offset < total) break;
    std::span<const uint8_t> body = bytes.subspan(offset + header.header_length, header.remaining_length);
    if (!handle_packet(header, body, now_ns)) return -1;
    offset += total;
  }
  COREMQ_ASSERT(offset <= bytes.size());
  return static_cast<int64_t>(offset);
}

bool Client::handle_packet(const mqtt::FixedHeader& header, std::span<const uint8_t> body, int64_t now_ns) {
  using mqtt::PacketType;
  if (state_ == ClientState::kAwaitingConnack && header.type != PacketType::kConnack) {
    return protocol_error(absl::StrFormat("expected CONNACK, broker sent %s", mqtt::packet_type_name(header.type)));
  }
  switch (header.type) {
    case PacketType::kConnack: return handle_connack(header, body);
    case PacketType::kSuback: return handle_suback(header, body);
    case PacketType::kPublish: return handle_publish(header, body, now_ns);
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp: return handle_ack(header.type, header, body);
    case PacketType::kPingresp: return true;
    case PacketType::kDisconnect: return handle_disconnect(header, body);
    default:
      return protocol_error(
          absl::StrFormat("broker sent an unexpected %s packet", mqtt::packet_type_name(header.type)));
  }
}

bool Client::handle_connack(const mqtt::FixedHeader& header, std::span<const uint8_t> body) {
  if (state_ != ClientState::kAwaitingConnack) return protocol_error("broker sent a second CONNACK");
  mqtt::ConnackPacket connack;
  mqtt::DecodeStatus status = mqtt::decode_connack(body, header.flags, version_, &connack);
  if (status != mqtt::DecodeStatus::kOk) {
    return protocol_error(absl::StrFormat("bad CONNACK (%s)", mqtt::decode_status_name(status)));
  }
  if (version_ == mqtt::ProtocolVersion::kV5) {
    context_.result->connack_reasons[connack.reason_code]++;
    if (connack.reason_code >= 0x80) {
      return protocol_error(absl::StrFormat(
          "CONNACK refused the connection: reason code 0x%02x (%s)", connack.reason_code,
          mqtt::reason_code_name(static_cast<mqtt::ReasonCode>(connack.reason_code))));
    }
    server_receive_maximum_ = connack.properties.receive_maximum.value_or(65535);
    server_topic_alias_maximum_ = connack.properties.topic_alias_maximum.value_or(0);
    context_.result->server_receive_maximum = server_receive_maximum_;
    context_.result->server_topic_alias_maximum = server_topic_alias_maximum_;
    alias_sent_ = false;
  }
  if (connack.return_code != mqtt::ConnectReturnCode::kAccepted) {
    return protocol_error(absl::StrFormat("CONNACK refused the connection: code %d (%s)",
                                          static_cast<int>(connack.return_code), connack_reason(connack.return_code)));
  }
  connected_ns_ = monotonic_ns();
  if (reconnecting_) {
    reconnecting_ = false;
    context_.result->reconnects++;
    state_ = ClientState::kReady;
    return true;
  }
  context_.result->connections_up++;
  context_.result->last_connack_ns = std::max(context_.result->last_connack_ns, connected_ns_);
  if (spec_.role != Role::kSubscriber) {
    state_ = ClientState::kReady;
    return true;
  }
  mqtt::SubscribeTopic topic;
  topic.filter = spec_.topic;
  topic.qos = context_.options->qos;
  mqtt::encode_subscribe(staging, 1, std::span<const mqtt::SubscribeTopic>(&topic, 1), version_, {});
  state_ = ClientState::kAwaitingSuback;
  return true;
}

bool Client::handle_suback(const mqtt::FixedHeader& header, std::span<const uint8_t> body) {
  if (state_ != ClientState::kAwaitingSuback) return protocol_error("broker sent an unrequested SUBACK");
  mqtt::SubackPacket suback;
  mqtt::DecodeStatus status = mqtt::decode_suback(body, header.flags, version_, &suback);
  if (status != mqtt::DecodeStatus::kOk || suback.packet_id != 1 || suback.return_codes.size() != 1) {
    return protocol_error(absl::StrFormat("bad SUBACK (%s)", mqtt::decode_status_name(status)));
  }
  if (suback.return_codes[0] >= mqtt::kSubackFailure) {
    return protocol_error(absl::StrFormat(
        "SUBACK refused the subscription to '%s': code 0x%02x (%s)", spec_.topic, suback.return_codes[0],
        mqtt::reason_code_name(static_cast<mqtt::ReasonCode>(suback.return_codes[0]))));
  }
  granted_qos_ = suback.return_codes[0];
  context_.result->subscribed++;
  state_ = ClientState::kReady;
  return true;
}

bool Client::handle_publish(const mqtt::FixedHeader& header, std::span<const uint8_t> body, int64_t now_ns) {
  mqtt::PublishPacket publish;
  mqtt::DecodeStatus status = mqtt::decode_publish(body, header.flags, version_, &publish);
  if (status != mqtt::DecodeStatus::kOk) {
    return protocol_error(absl::StrFormat("bad PUBLISH (%s)", mqtt::decode_status_name(status)));
  }
  if (publish.qos == 1) mqtt::encode_ack(staging, mqtt::PacketType::kPuback, publish.packet_id);
  if (publish.qos == 2) mqtt::encode_ack(staging, mqtt::PacketType::kPubrec, publish.packet_id);
  received_++;
  context_.result->received++;

  PayloadHeader payload;
  const Plan& plan = *context_.plan;
  if (!read_payload(publish.payload, &payload) || (plan.in_process && payload.run_id != context_.shared->run_id)) {
    foreign_++;
    return true;
  }
  if (plan.in_process) {
    const std::vector<uint32_t>& sources = plan.sources[spec_.index];
    if (!std::binary_search(sources.begin(), sources.end(), payload.publisher)) {
      unexpected_++;
      return true;
    }
  }
  auto tracker = trackers_.find(payload.publisher);
  if (tracker == trackers_.end()) {
    if (trackers_.size() >= kTrackedPublishersMax) {
      foreign_++;
      return true;
    }
    tracker = trackers_.try_emplace(payload.publisher).first;
  }
  uint64_t next_before = tracker->second.next;
  if (!tracker->second.on_sequence(payload.sequence)) return true;  // a duplicate
  // The window credits the publisher with every sequence this arrival settles: itself
  // and any it skipped (lost), so a lost message cannot stall the publisher for good.
  uint64_t settled = tracker->second.next - next_before;
  if (plan.shared && plan.in_process) {
    // Sequences skipped here went to other members: this arrival settles itself alone.
    settled = 1;
    SharedState& shared = *context_.shared;
    if (payload.sequence < shared.shared_capacity) {
      uint64_t bit = uint64_t{payload.publisher} * shared.shared_capacity + payload.sequence;
      uint64_t mask = uint64_t{1} << (bit % 64);
      if (shared.shared_seen[bit / 64].fetch_or(mask, std::memory_order_relaxed) & mask) {
        shared_duplicates_++;  // another member of the group had it already
        return true;
      }
    } else {
      context_.result->shared_untracked++;
    }
  }
  record_delivery(payload.publisher, payload.send_ns, now_ns);
  if (plan.in_process && settled > 0) {
    if (context_.pending_delivered[payload.publisher] == 0) context_.touched_publishers.push_back(payload.publisher);
    context_.pending_delivered[payload.publisher] += static_cast<uint32_t>(std::min<uint64_t>(settled, 1u << 30));
  }
  uint64_t count = context_.options->count;
  if (!plan.in_process && count > 0 && received_ - foreign_ == count) context_.result->subscribers_done++;
  return true;
}

void Client::record_delivery(uint32_t publisher, int64_t send_ns, int64_t now_ns) {
  (void)publisher;
  // The stamp comes off the wire: a negative one (a stray message that has our magic) must
  // not overflow the subtraction. CLOCK_MONOTONIC times are positive.
  int64_t latency_ns = send_ns > 0 && now_ns > send_ns ? now_ns - send_ns : 0;
  context_.counters->latency.record(static_cast<uint64_t>(latency_ns));
  if (send_ns >= context_.measure_start_ns && send_ns < context_.measure_end_ns) {
    context_.result->latency_ns.record(static_cast<uint64_t>(latency_ns));
    context_.result->received_in_window++;
  }
}

bool Client::handle_ack(mqtt::PacketType type, const mqtt::FixedHeader& header, std::span<const uint8_t> body) {
  mqtt::AckPacket ack;
  mqtt::DecodeStatus status = mqtt::decode_ack(body, header.flags, type, version_, &ack);
  if (status != mqtt::DecodeStatus::kOk) {
    return protocol_error(
        absl::StrFormat("bad %s (%s)", mqtt::packet_type_name(type), mqtt::decode_status_name(status)));
  }
  uint16_t id = ack.packet_id;
  if (version_ == mqtt::ProtocolVersion::kV5 && type != mqtt::PacketType::kPubrel) {
    context_.result->ack_reasons[ack.reason_code]++;
  }
  if (type == mqtt::PacketType::kPubrel) {  // subscriber side of QoS 2
    mqtt::encode_ack(staging, mqtt::PacketType::kPubcomp, id);
    return true;
  }
  uint8_t qos = context_.options->qos;
  bool expected_type = (type == mqtt::PacketType::kPuback && qos == 1) ||
                       (type != mqtt::PacketType::kPuback && qos == 2);
  if (!is_publisher() || !expected_type) {
    return protocol_error(absl::StrFormat("broker sent an unexpected %s", mqtt::packet_type_name(type)));
  }
  std::vector<uint64_t>& awaiting = type == mqtt::PacketType::kPubcomp ? awaiting_complete_ : awaiting_ack_;
  if (!test_bit(awaiting, id)) {
    return protocol_error(absl::StrFormat("broker sent %s for packet id %u, which is not in flight",
                                          mqtt::packet_type_name(type), id));
  }
  clear_bit(awaiting, id);
  if (type != mqtt::PacketType::kPubcomp) note_acknowledged(id);
  // A PUBREC with a failure reason ends the flow there (MQTT 5 section 4.3.3): no PUBREL.
  if (type == mqtt::PacketType::kPubrec && ack.reason_code < 0x80) {
    set_bit(awaiting_complete_, id);
    mqtt::encode_ack(staging, mqtt::PacketType::kPubrel, id);
    return true;
  }
  COREMQ_ASSERT(inflight_ > 0);
  inflight_--;
  context_.result->acknowledged++;
  return true;
}

void Client::note_acknowledged(uint16_t packet_id) {
  // In order: anything older than this id was acknowledged out of order or not at all.
  while (!ack_stamps_.empty() && ack_stamps_.front().first != packet_id) ack_stamps_.pop_front();
  if (ack_stamps_.empty()) return;
  int64_t stamp_ns = ack_stamps_.front().second;
  ack_stamps_.pop_front();
  if (stamp_ns >= context_.measure_start_ns && stamp_ns < context_.measure_end_ns) {
    context_.result->ack_latency_ns.record(static_cast<uint64_t>(std::max<int64_t>(0, monotonic_ns() - stamp_ns)));
  }
}

bool Client::handle_disconnect(const mqtt::FixedHeader& header, std::span<const uint8_t> body) {
  mqtt::DisconnectPacket disconnect;
  mqtt::DecodeStatus status = mqtt::decode_disconnect(body, header.flags, version_, &disconnect);
  if (status != mqtt::DecodeStatus::kOk || version_ != mqtt::ProtocolVersion::kV5) {
    return protocol_error("broker sent an unexpected DISCONNECT packet");
  }
  context_.result->disconnect_reasons[disconnect.reason_code]++;
  return protocol_error(absl::StrFormat(
      "broker sent DISCONNECT: reason code 0x%02x (%s)%s", disconnect.reason_code,
      mqtt::reason_code_name(static_cast<mqtt::ReasonCode>(disconnect.reason_code)),
      disconnect.properties.reason_string ? absl::StrFormat(": %s", *disconnect.properties.reason_string) : ""));
}

uint32_t Client::window_room() const {
  const Options& options = *context_.options;
  uint32_t room = std::numeric_limits<uint32_t>::max();
  // MQTT 5: never more in flight than the broker's Receive Maximum allows.
  uint32_t window = std::min<uint32_t>(options.window, server_receive_maximum_);
  if (options.qos > 0) room = window > inflight_ ? window - inflight_ : 0;
  // In `run` the window is end to end as well: a message counts until every subscriber of this
  // process that matches it has it. Without that a publisher whose PUBACKs come back at once
  // outruns its subscribers and the run measures the broker's queue limits, not its throughput.
  const Plan& plan = *context_.plan;
  if (!plan.in_process || options.window == 0) return room;
  uint64_t fanout = plan.fanout[spec_.index];
  if (fanout == 0) return room;
  uint64_t delivered = context_.shared->delivered[spec_.index].load(std::memory_order_relaxed);
  uint64_t expected = next_sequence_ * fanout;
  uint64_t undelivered = expected > delivered ? (expected - delivered + fanout - 1) / fanout : 0;
  uint32_t delivery_room = undelivered < options.window ? static_cast<uint32_t>(options.window - undelivered) : 0;
  return std::min(room, delivery_room);
}

uint16_t Client::take_packet_id() {
  COREMQ_ASSERT(inflight_ < kWindowMax);
  for (;;) {
    last_packet_id_ = static_cast<uint16_t>(last_packet_id_ + 1);
    if (last_packet_id_ == 0) continue;
    if (!test_bit(awaiting_ack_, last_packet_id_) && !test_bit(awaiting_complete_, last_packet_id_)) {
      return last_packet_id_;
    }
  }
}

uint64_t Client::next_random() {
  // splitmix64: eight bytes of state per client, so 100k publishers cost nothing.
  uint64_t z = (random_state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void Client::start_schedule(int64_t publish_start_ns) {
  const Options& options = *context_.options;
  COREMQ_ASSERT(is_publisher() && options.period_ns > 0);
  random_state_ = (uint64_t{context_.shared->run_id} << 32) ^ spec_.number;
  double phase_ns = 0;
  if (options.arrival == Arrival::kUniform) {
    // Publisher n of N starts n/N of a period in: every message of the run evenly spaced.
    phase_ns = options.period_ns * spec_.number / options.publishers_total;
  }
  schedule_origin_ns_ = static_cast<double>(publish_start_ns) + phase_ns;
  next_due_ns_ = static_cast<int64_t>(schedule_origin_ns_);
  if (options.arrival == Arrival::kPoisson) {
    next_due_ns_ = publish_start_ns;
    advance_schedule();
  }
}

void Client::advance_schedule() {
  const Options& options = *context_.options;
  if (options.arrival != Arrival::kPoisson) {
    // From the origin, not from the previous time, so rounding never accumulates.
    next_due_ns_ = static_cast<int64_t>(schedule_origin_ns_ + options.period_ns * static_cast<double>(next_sequence_));
    return;
  }
  double uniform = static_cast<double>((next_random() >> 11) + 1) * 0x1.0p-53;  // (0, 1]
  next_due_ns_ += static_cast<int64_t>(-std::log(uniform) * options.period_ns);
}

uint32_t Client::next_payload_bytes() {
  const Options& options = *context_.options;
  uint32_t low = options.payload_bytes;
  uint32_t high = options.payload_bytes_max;
  if (low == high) return low;
  uint64_t random = next_random();
  if (!options.size_exponential) return low + static_cast<uint32_t>(random % (uint64_t{high} - low + 1));
  double uniform = static_cast<double>((random >> 11) + 1) * 0x1.0p-53;  // (0, 1]
  double extra = -std::log(uniform) * (high - low) / 4.0;
  return extra >= high - low ? high : low + static_cast<uint32_t>(extra);
}

bool Client::reconnect_due(int64_t now_ns) const {
  const Options& options = *context_.options;
  // A publisher that sent its --count stays: a reconnect after the last message measures nothing.
  if (state_ != ClientState::kReady || spec_.role == Role::kSubscriber || inflight_ > 0 || !staging.empty() ||
      publishing_done_) {
    return false;
  }
  if (options.reconnect_messages > 0 && sent_since_connect_ >= options.reconnect_messages) return true;
  return options.reconnect_s > 0 && now_ns - connected_ns_ >= static_cast<int64_t>(options.reconnect_s * kNanosPerSecond);
}

void Client::reset_for_reconnect() {
  COREMQ_ASSERT(inflight_ == 0);
  ack_stamps_.clear();
  state_ = ClientState::kNotStarted;
  partial_.clear();
  staging.clear();
  alias_sent_ = false;
  sent_since_connect_ = 0;
  reconnecting_ = true;
}

uint64_t Client::due_unsent(int64_t until_ns) const {
  const Options& options = *context_.options;
  if (options.period_ns <= 0 || publishing_done_ || next_due_ns_ >= until_ns) return 0;
  until_ns = std::min(until_ns, context_.measure_end_ns);
  if (next_due_ns_ >= until_ns) return 0;
  auto due = static_cast<uint64_t>(static_cast<double>(until_ns - next_due_ns_) / options.period_ns) + 1;
  if (options.count > 0) due = std::min(due, options.count - next_sequence_);
  return due;
}

uint32_t Client::publish(uint32_t budget) {
  COREMQ_ASSERT(is_publisher());
  if (state_ != ClientState::kReady || publishing_done_) return 0;
  const Options& options = *context_.options;
  uint32_t allowed = std::min(budget, window_room());
  if (options.count > 0) allowed = static_cast<uint32_t>(std::min<uint64_t>(allowed, options.count - next_sequence_));
  if (options.reconnect_messages > 0) {
    uint64_t left = options.reconnect_messages > sent_since_connect_ ? options.reconnect_messages - sent_since_connect_ : 0;
    allowed = static_cast<uint32_t>(std::min<uint64_t>(allowed, left));
  }
  WorkerResult& result = *context_.result;
  uint64_t fanout = context_.plan->in_process ? context_.plan->fanout[spec_.index] : 0;
  bool open_loop = options.period_ns > 0;
  uint32_t encoded = 0;
  for (; encoded < allowed; ++encoded) {
    if (staging.size() >= kStagedBytesMax) {
      result.publish_paused_staged_full++;
      break;
    }
    int64_t now_ns = monotonic_ns();
    int64_t stamp_ns = now_ns;
    if (open_loop) {
      if (next_due_ns_ >= context_.measure_end_ns) {
        schedule_finished_ = true;
        break;
      }
      if (next_due_ns_ > now_ns) break;
      stamp_ns = next_due_ns_;
      int64_t lag_ns = now_ns - stamp_ns;
      result.schedule_lag_max_ns = std::max(result.schedule_lag_max_ns, lag_ns);
      if (lag_ns > options.lag_threshold_ns) result.schedule_late++;
    } else if (now_ns >= context_.measure_end_ns) {
      break;
    }
    uint16_t packet_id = 0;
    if (options.qos > 0) {
      packet_id = take_packet_id();
      set_bit(awaiting_ack_, packet_id);
      ack_stamps_.emplace_back(packet_id, stamp_ns);
      inflight_++;
    }
    uint32_t size = next_payload_bytes();
    if (version_ != mqtt::ProtocolVersion::kV5) {
      mqtt::encode_publish_header(staging, spec_.topic, options.qos, options.retain, false, packet_id, size);
    } else if (options.topic_alias && server_topic_alias_maximum_ >= 1) {
      // The topic with its alias once per connection, then the alias alone (section 3.3.2.3.4).
      mqtt::encode_publish_header_v5(staging, alias_sent_ ? std::string_view() : std::string_view(spec_.topic),
                                     options.qos, options.retain, false, packet_id, publish_properties_, size);
      if (alias_sent_) result.topic_alias_publishes++;
      alias_sent_ = true;
    } else {
      mqtt::encode_publish_header_v5(staging, spec_.topic, options.qos, options.retain, false, packet_id,
                                     publish_properties_plain_, size);
    }
    PayloadHeader payload{context_.shared->run_id, spec_.index, next_sequence_, stamp_ns};
    write_payload(staging.grow(size), size, payload);
    result.payload_bytes_sent += size;
    sent_since_connect_++;
    next_sequence_++;
    if (open_loop) advance_schedule();
    result.sent++;
    result.expected_deliveries += fanout;
    result.last_send_ns = now_ns;
    if (stamp_ns >= context_.measure_start_ns) result.sent_in_window++;
  }
  if (options.count > 0 && next_sequence_ == options.count) {
    publishing_done_ = true;
    result.publishers_done++;
  }
  return encoded;
}

void Client::stage_pingreq() {
  mqtt::encode_pingreq(staging);
  context_.result->pings++;
}

void Client::stage_disconnect() {
  mqtt::encode_disconnect(staging);
  state_ = ClientState::kDisconnecting;
}

PublisherResult Client::publisher_result() const {
  return PublisherResult{spec_.index, next_sequence_, inflight_};
}

SubscriberResult Client::subscriber_result() const {
  SubscriberResult result;
  result.index = spec_.index;
  result.received = received_;
  result.unexpected = unexpected_;
  result.foreign = foreign_;
  result.granted_qos = granted_qos_;
  result.shared_duplicates = shared_duplicates_;
  for (const auto& [publisher, tracker] : trackers_) {
    result.unique += tracker.unique();
    result.duplicates += tracker.duplicates;
    result.reordered += tracker.reordered;
    result.gaps += tracker.gaps;
  }
  return result;
}

}  // namespace coremq::bench
