// LocalHub: connecting and disconnecting in-process clients, and the delivery thread that
// turns what the shards sent them into callbacks and completed futures. See local_hub.h.
// connect() and disconnect() run on host threads; run_delivery() and everything it calls on
// the delivery thread; start() and stop() on the Broker's controlling thread.
#include "shard/local_hub.h"

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <exception>

#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/properties.h"
#include "shard/shard.h"
#include "shard/wake.h"
#include "topic/topic.h"

namespace coremq::shard {

namespace {
// Set on the delivery thread, and on a shard while it runs inline callbacks.
thread_local bool running_callbacks = false;
// Items taken from one shard's ring per pass, so one busy shard cannot starve the others.
constexpr size_t kOutputsPerPassMax = 256;
// While acknowledgements wait for room in an intake, the delivery thread looks again this often.
constexpr int kUnsentRetryMs = 1;
constexpr uint32_t kPacketSizeMax = 268435455 + 5;

base::ByteBuffer encode_ack(mqtt::PacketType type, uint16_t packet_id) {
  base::ByteBuffer out;
  mqtt::encode_ack_v5(out, type, packet_id, 0, {});
  return out;
}
}  // namespace

LocalHub::LocalHub(const Options& options, uint32_t shard_count)
    : options_(options), shard_count_(shard_count) {
  for (uint32_t i = 0; i < shard_count; ++i) {
    links_.push_back(std::make_unique<LocalShardLink>(options_.local_intake_capacity,
                                                      options_.local_delivery_queue_capacity));
  }
  delivery_event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  COREMQ_ASSERT_MSG(delivery_event_fd_ >= 0, "eventfd failed");
}

LocalHub::~LocalHub() {
  COREMQ_ASSERT(!delivery_thread_.joinable());
  COREMQ_ASSERT(cores_.empty());
  ::close(delivery_event_fd_);
}

bool LocalHub::on_delivery_thread() {
  return running_callbacks;
}

void LocalHub::set_running_callbacks(bool running) {
  running_callbacks = running;
}

void LocalHub::start() {
  delivery_thread_ = std::thread([this] { run_delivery(); });
}

void LocalHub::stop() {
  if (delivery_thread_.joinable()) {
    stop_delivery_.store(true, std::memory_order_release);
    wake_by_eventfd(delivery_event_fd_);
    delivery_thread_.join();
  }
  // Nothing runs any more but host threads: what was never answered fails now, and cores
  // whose handle went inside a callback are freed.
  std::vector<LocalClientCore*> orphans;
  {
    std::lock_guard lock(mutex_);
    stopped_.store(true, std::memory_order_release);
    for (LocalClientCore* core : cores_) {
      fail_everything(*core, LocalStatus::kBrokerStopped, 0);
      std::lock_guard core_lock(core->mutex);
      if (!core->closed_signalled) {
        core->closed_signalled = true;
        core->closed.set_value();
      }
      if (core->orphaned) orphans.push_back(core);
    }
    for (LocalClientCore* core : disconnect_requests_) {
      if (core->orphaned && std::find(orphans.begin(), orphans.end(), core) == orphans.end())
        orphans.push_back(core);
    }
    disconnect_requests_.clear();
  }
  for (LocalClientCore* core : orphans) forget(core);
}

void LocalHub::forget(LocalClientCore* core) {
  {
    std::lock_guard lock(mutex_);
    cores_.erase(core);
  }
  if (core->orphaned) delete core;
}

// ---- host threads ----------------------------------------------------------------------

LocalStatus LocalHub::push(LocalClientCore& core, LocalCommand&& command) {
  LocalShardLink& link = *links_[core.shard];
  if (!link.intake.try_push(std::move(command))) {
    uint64_t full = link.intake_full.fetch_add(1, std::memory_order_relaxed) + 1;
    LOG_WARNING_LIMITED(
        "shard %u local intake full (Options::local_intake_capacity=%u): an in-process operation "
        "was refused (%u times so far)",
        core.shard, options_.local_intake_capacity, full);
    return LocalStatus::kIntakeFull;
  }
  link.shard->wake_from_outside();
  return LocalStatus::kOk;
}

std::unique_ptr<LocalClientCore> LocalHub::connect(const LocalClientOptions& options, std::string* error) {
  if (on_delivery_thread()) {
    *error = "connect_local cannot be called inside an in-process client's callback";
    return nullptr;
  }
  std::string client_id = options.client_id;
  if (client_id.empty()) {
    client_id = "coremq-local-" + std::to_string(clients_made_.fetch_add(1, std::memory_order_relaxed) + 1);
  }
  if (client_id.size() > options_.max_client_id_length || !mqtt::is_valid_utf8_string(client_id)) {
    *error = "the client id is not valid UTF-8 or longer than Options::max_client_id_length";
    return nullptr;
  }
  uint32_t shard = broker::owner_shard_of(client_id, shard_count_);
  if (options.manual_acknowledgement && options.inline_callbacks) {
    *error = "manual_acknowledgement and inline_callbacks cannot be combined";
    return nullptr;
  }
  auto core = std::make_unique<LocalClientCore>(shared_from_this(), client_id, shard,
                                                options.on_unmatched_message, options.inline_callbacks);
  core->manual_acknowledgement = options.manual_acknowledgement;
  std::future<OperationResult> connack = core->connack.get_future();
  {
    std::lock_guard lock(mutex_);
    if (stopped_.load(std::memory_order_relaxed)) {
      *error = "the broker is stopped";
      return nullptr;
    }
    cores_.insert(core.get());
  }

  mqtt::ConnectPacket connect;
  connect.protocol_level = 5;
  connect.client_id = client_id;
  connect.clean_session = options.clean_start;
  connect.keep_alive_seconds = 0;
  if (options.session_expiry_interval_seconds > 0) {
    connect.properties.session_expiry_interval_seconds = options.session_expiry_interval_seconds;
  }
  connect.properties.receive_maximum = std::max<uint16_t>(1, options.receive_maximum);
  LocalCommand command{core.get(), LocalCommand::Kind::kConnect, 0, {}};
  mqtt::encode_connect(command.bytes, connect);
  LocalStatus status = push(*core, std::move(command));
  if (status != LocalStatus::kOk) {
    forget(core.get());
    *error = std::string("cannot connect: ") + local_status_name(status);
    return nullptr;
  }
  // The CONNACK comes through the delivery thread (or stop() fails it).
  OperationResult result = connack.get();
  if (!result.ok()) {
    *error = std::string("connect refused: ") + local_status_name(result.status) + ", reason code " +
             std::to_string(result.reason_code);
    disconnect(std::move(core));  // ends what is left of the attempt
    return nullptr;
  }
  return core;
}

void LocalHub::disconnect(std::unique_ptr<LocalClientCore> owned) {
  LocalClientCore* core = owned.get();
  core->host_gone.store(true, std::memory_order_release);
  std::future<void> closed = core->closed.get_future();
  bool delivery = on_delivery_thread();
  {
    std::lock_guard lock(mutex_);
    if (stopped_.load(std::memory_order_relaxed)) {
      cores_.erase(core);
      return;  // nothing refers to it any more
    }
    // The delivery thread sends the DISCONNECT, behind every acknowledgement it sent for this
    // client: then nothing in an intake refers to the core once kDisconnectDone comes back.
    disconnect_requests_.push_back(core);
    disconnect_requested_.store(true, std::memory_order_release);
    if (delivery) {
      // Inside one of the delivery thread's callbacks: it cannot wait for itself. The hub
      // frees the core at kDisconnectDone.
      core->orphaned = true;
      owned.release();
    }
  }
  if (delivery) {
    // Inline callbacks run on a shard: the delivery thread may be asleep.
    wake_delivery();
    return;
  }
  wake_by_eventfd(delivery_event_fd_);
  closed.wait();
  forget(core);
}

// ---- the delivery thread ----------------------------------------------------------------

void LocalHub::wake_delivery() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (delivery_sleeping_.load(std::memory_order_relaxed) && delivery_sleeping_.exchange(false)) {
    wake_by_eventfd(delivery_event_fd_);
  }
}

void LocalHub::run_delivery() {
  running_callbacks = true;
  pthread_setname_np(pthread_self(), "coremq-local");
  for (;;) {
    if (disconnect_requested_.load(std::memory_order_acquire)) take_disconnect_requests();
    bool worked = drain_outputs();
    bool unsent_left = flush_unsent();
    if (worked) continue;
    if (stop_delivery_.load(std::memory_order_acquire)) break;
    // Going to sleep: the same protocol as a shard (see the member comment).
    delivery_sleeping_.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    bool empty = true;
    for (auto& link : links_) empty = empty && link->output.empty();
    if (!empty || disconnect_requested_.load(std::memory_order_acquire)) {
      delivery_sleeping_.store(false, std::memory_order_relaxed);
      continue;
    }
    pollfd poll_fd{delivery_event_fd_, POLLIN, 0};
    int ready = ::poll(&poll_fd, 1, unsent_left ? kUnsentRetryMs : -1);
    if (ready > 0) {
      uint64_t value = 0;
      ssize_t bytes = ::read(delivery_event_fd_, &value, sizeof(value));
      (void)bytes;  // EAGAIN: another wake already consumed it
    }
    delivery_sleeping_.store(false, std::memory_order_relaxed);
  }
  running_callbacks = false;
}

bool LocalHub::drain_outputs() {
  bool worked = false;
  for (auto& link : links_) {
    size_t drained =
        link->output.drain([this](LocalOutput&& item) { handle_output(item); }, kOutputsPerPassMax);
    worked = worked || drained > 0;
    // The shard found this ring full: its output waits until it is woken (see
    // Shard::retry_local_output; this fence pairs with the one there).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (link->output_full.load(std::memory_order_relaxed) && link->output_full.exchange(false)) {
      link->shard->wake_from_outside();
    }
  }
  return worked;
}

void LocalHub::take_disconnect_requests() {
  std::vector<LocalClientCore*> requests;
  {
    std::lock_guard lock(mutex_);
    requests.swap(disconnect_requests_);
    disconnect_requested_.store(false, std::memory_order_relaxed);
  }
  for (LocalClientCore* core : requests) {
    core->disconnect_requested = true;
    LocalCommand command{core, LocalCommand::Kind::kDisconnect, 0, {}};
    mqtt::encode_disconnect_v5(command.bytes, 0x00, {});
    send_from_delivery(*core, std::move(command));
  }
}

void LocalHub::send_from_delivery(LocalClientCore& core, LocalCommand&& command) {
  if (core.unsent.empty() && push(core, std::move(command)) == LocalStatus::kOk) return;
  // The intake is full: acknowledgements must not be lost (the broker would wait for them
  // forever), so they wait here, in order, and go first on the next passes.
  if (core.unsent.empty()) cores_with_unsent_.push_back(&core);
  core.unsent.push_back(std::move(command));
}

bool LocalHub::flush_unsent() {
  std::erase_if(cores_with_unsent_, [this](LocalClientCore* core) {
    while (!core->unsent.empty()) {
      LocalShardLink& link = *links_[core->shard];
      if (!link.intake.try_push(std::move(core->unsent.front()))) return false;
      core->unsent.pop_front();
      link.shard->wake_from_outside();
    }
    return true;
  });
  return !cores_with_unsent_.empty();
}

void LocalHub::handle_output(LocalOutput& item) {
  LocalClientCore& core = *item.core;
  switch (item.kind) {
    case LocalOutput::Kind::kBytes:
      handle_packets(core, item.bytes.span());
      break;
    case LocalOutput::Kind::kClosed:
      handle_closed(core, item.reason_code);
      break;
    case LocalOutput::Kind::kRejected:
      if (item.packet_id != 0) complete(core, item.packet_id, {LocalStatus::kDisconnected, 0});
      break;
    case LocalOutput::Kind::kDisconnectDone: {
      COREMQ_ASSERT(core.disconnect_requested && core.unsent.empty());
      bool orphaned = false;
      bool signal = false;
      {
        std::lock_guard lock(core.mutex);
        orphaned = core.orphaned;
        signal = !core.closed_signalled;
        core.closed_signalled = true;
      }
      // Signalled after the lock is released: a waiting host's destructor frees the core (and
      // its mutex) as soon as it sees the signal, so nothing of the core is touched after it.
      if (orphaned) {
        if (signal) core.closed.set_value();
        forget(&core);
      } else if (signal) {
        core.closed.set_value();
      }
      break;
    }
    case LocalOutput::Kind::kNone:
      COREMQ_ASSERT_MSG(false, "an empty local output");
      break;
  }
}

void LocalHub::handle_packets(LocalClientCore& core, std::span<const uint8_t> bytes) {
  // The broker's own output: whole, well-formed packets (a decode failure is a bug here).
  while (!bytes.empty()) {
    mqtt::FixedHeader header{};
    mqtt::FrameStatus frame = mqtt::parse_fixed_header(bytes, kPacketSizeMax, &header);
    COREMQ_ASSERT(frame == mqtt::FrameStatus::kComplete);
    COREMQ_ASSERT(bytes.size() >= size_t{header.header_length} + header.remaining_length);
    std::span<const uint8_t> body = bytes.subspan(header.header_length, header.remaining_length);
    bytes = bytes.subspan(header.header_length + header.remaining_length);
    constexpr auto kV5 = mqtt::ProtocolVersion::kV5;
    switch (header.type) {
      case mqtt::PacketType::kConnack: {
        mqtt::ConnackPacket connack;
        COREMQ_ASSERT(mqtt::decode_connack(body, header.flags, kV5, &connack) == mqtt::DecodeStatus::kOk);
        if (connack.reason_code < 0x80) core.connected.store(true, std::memory_order_release);
        std::lock_guard lock(core.mutex);
        if (!core.connack_signalled) {
          core.connack_signalled = true;
          core.connack.set_value(
              {connack.reason_code < 0x80 ? LocalStatus::kOk : LocalStatus::kRefused, connack.reason_code});
        }
        break;
      }
      case mqtt::PacketType::kPublish:
        handle_publish(core, body, header.flags);
        break;
      case mqtt::PacketType::kPuback:
      case mqtt::PacketType::kPubrec:
      case mqtt::PacketType::kPubcomp: {
        mqtt::AckPacket ack;
        COREMQ_ASSERT(mqtt::decode_ack(body, header.flags, header.type, kV5, &ack) ==
                      mqtt::DecodeStatus::kOk);
        if (header.type == mqtt::PacketType::kPubrec && ack.reason_code < 0x80) {
          // QoS 2, second step: release it; the operation completes on PUBCOMP.
          if (!core.disconnect_requested) {
            send_from_delivery(core, LocalCommand{&core, LocalCommand::Kind::kPackets, ack.packet_id,
                                                  encode_ack(mqtt::PacketType::kPubrel, ack.packet_id)});
          }
          break;
        }
        complete(core, ack.packet_id, {LocalStatus::kOk, ack.reason_code});
        break;
      }
      case mqtt::PacketType::kPubrel: {
        mqtt::AckPacket ack;
        COREMQ_ASSERT(mqtt::decode_ack(body, header.flags, header.type, kV5, &ack) ==
                      mqtt::DecodeStatus::kOk);
        core.qos2_received.erase(ack.packet_id);
        if (!core.disconnect_requested) {
          send_from_delivery(core, LocalCommand{&core, LocalCommand::Kind::kPackets, 0,
                                                encode_ack(mqtt::PacketType::kPubcomp, ack.packet_id)});
        }
        break;
      }
      case mqtt::PacketType::kSuback: {
        mqtt::SubackPacket suback;
        COREMQ_ASSERT(mqtt::decode_suback(body, header.flags, kV5, &suback) == mqtt::DecodeStatus::kOk);
        COREMQ_ASSERT(suback.return_codes.size() == 1);
        complete(core, suback.packet_id, {LocalStatus::kOk, suback.return_codes[0]});
        break;
      }
      case mqtt::PacketType::kUnsuback: {
        mqtt::UnsubackPacket unsuback;
        COREMQ_ASSERT(mqtt::decode_unsuback(body, header.flags, kV5, &unsuback) == mqtt::DecodeStatus::kOk);
        COREMQ_ASSERT(unsuback.reason_codes.size() == 1);
        complete(core, unsuback.packet_id, {LocalStatus::kOk, unsuback.reason_codes[0]});
        break;
      }
      case mqtt::PacketType::kDisconnect: {
        mqtt::DisconnectPacket disconnect;
        COREMQ_ASSERT(mqtt::decode_disconnect(body, header.flags, kV5, &disconnect) ==
                      mqtt::DecodeStatus::kOk);
        LOG_INFO("in-process client '%s' disconnected by the broker (reason 0x%02x)", core.client_id,
                 disconnect.reason_code);
        break;  // kClosed follows and fails what is pending
      }
      default:
        COREMQ_ASSERT_MSG(false, "an unexpected packet to an in-process client");
        break;
    }
  }
}

void LocalHub::handle_publish(LocalClientCore& core, std::span<const uint8_t> body, uint8_t flags) {
  mqtt::PublishPacket publish;
  COREMQ_ASSERT(mqtt::decode_publish_from_server(body, flags, mqtt::ProtocolVersion::kV5, &publish) ==
                mqtt::DecodeStatus::kOk);
  // A QoS 2 message seen again (a resent PUBLISH after a resumed session): PUBREC only.
  bool repeated = publish.qos == 2 && core.qos2_received.contains(publish.packet_id);
  bool taken = false;  // a callback saw it (manual acknowledgement: the host acknowledges)
  if (!repeated && !core.disconnect_requested) {
    {
      std::lock_guard lock(core.mutex);
      match_publish(publish, core.subscriptions, options_.subscription_identifiers_available, scratch_);
    }
    taken = !scratch_.matches.empty() || core.on_unmatched != nullptr;
    run_callbacks(core, publish, scratch_);
  }
  if (publish.qos == 0 || core.disconnect_requested) return;
  if (core.manual_acknowledgement && taken) {
    if (publish.qos == 2) core.qos2_received.insert(publish.packet_id);  // PUBREL is still answered here
    return;
  }
  // Acknowledged once the callbacks returned: QoS 1 done, QoS 2 waits for PUBREL.
  if (publish.qos == 2) core.qos2_received.insert(publish.packet_id);
  mqtt::PacketType ack = publish.qos == 1 ? mqtt::PacketType::kPuback : mqtt::PacketType::kPubrec;
  send_from_delivery(
      core, LocalCommand{&core, LocalCommand::Kind::kPackets, 0, encode_ack(ack, publish.packet_id)});
}

void LocalHub::match_publish(
    const mqtt::PublishPacket& publish,
    const absl::flat_hash_map<uint32_t, std::shared_ptr<LocalSubscription>>& subscriptions,
    bool identifiers_available, DispatchScratch& scratch) {
  // Identifiers no subscription has (a resumed session's, or an unsubscribed one's) match
  // nothing: such a message goes to on_unmatched_message.
  scratch.matches.clear();
  uint32_t identifiers[64];
  size_t identifier_count = mqtt::copy_subscription_identifiers(publish.properties, identifiers);
  if (identifier_count > 0 || identifiers_available) {
    for (size_t i = 0; i < identifier_count; ++i) {
      auto found = subscriptions.find(identifiers[i]);
      if (found != subscriptions.end()) scratch.matches.push_back(found->second);
    }
    return;
  }
  for (const auto& [identifier, subscription] : subscriptions) {
    if (topic::topic_matches(subscription->match_filter, publish.topic))
      scratch.matches.push_back(subscription);
  }
}

int64_t LocalHub::run_callbacks(const LocalClientCore& core, const mqtt::PublishPacket& publish,
                                DispatchScratch& scratch) {
  ReceivedMessage& message = scratch.message;
  message.topic = publish.topic;
  message.payload = publish.payload;
  message.qos = publish.qos;
  message.retain = publish.retain;
  message.duplicate = publish.dup;
  const mqtt::Properties& properties = publish.properties;
  message.payload_format_indicator = properties.payload_format_indicator;
  message.message_expiry_interval_seconds = properties.message_expiry_interval_seconds;
  message.content_type = properties.content_type;
  message.response_topic = properties.response_topic;
  message.correlation_data = properties.correlation_data;
  message.user_properties.clear();
  mqtt::PropertyCursor cursor(properties);
  mqtt::PropertyCursor::Entry entry;
  while (cursor.next(&entry)) {
    if (entry.id == mqtt::PropertyId::kUserProperty)
      message.user_properties.emplace_back(entry.text, entry.pair_value);
  }
  message.acknowledgement = {publish.packet_id, publish.qos};
  message.subscription_identifiers.clear();
  for (const auto& subscription : scratch.matches) {
    if (subscription->host_identifier != 0)
      message.subscription_identifiers.push_back(subscription->host_identifier);
  }
  int64_t longest_us = 0;
  auto timed = [&](const MessageCallback& callback, std::string_view filter) {
    if (core.host_gone.load(std::memory_order_acquire)) return;  // destroyed by an earlier callback
    auto started = std::chrono::steady_clock::now();
    run_callback(core, callback, message, filter);
    auto took =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
    longest_us = std::max<int64_t>(longest_us, took.count());
  };
  for (const auto& subscription : scratch.matches) timed(subscription->callback, subscription->filter);
  if (scratch.matches.empty() && core.on_unmatched) timed(core.on_unmatched, "(unmatched)");
  scratch.matches.clear();
  return longest_us;
}

void LocalHub::run_callback(const LocalClientCore& core, const MessageCallback& callback,
                            const ReceivedMessage& message, std::string_view filter) {
  // A host callback that throws is contained here: logged, and the message counts as
  // delivered (it is acknowledged all the same) and the session continues.
  try {
    callback(message);
  } catch (const std::exception& exception) {
    LOG_WARNING_LIMITED("in-process client '%s': a callback for '%s' threw: %s", core.client_id, filter,
                        exception.what());
  } catch (...) {
    LOG_WARNING_LIMITED("in-process client '%s': a callback for '%s' threw", core.client_id, filter);
  }
}

void LocalHub::handle_closed(LocalClientCore& core, uint8_t reason_code) {
  core.connected.store(false, std::memory_order_release);
  {
    std::lock_guard lock(core.mutex);
    if (!core.connack_signalled) {
      core.connack_signalled = true;
      core.connack.set_value({LocalStatus::kRefused, reason_code});
    }
  }
  // (The DISCONNECT that said why, if any, was logged as it went by.)
  fail_everything(core, LocalStatus::kDisconnected, reason_code);
}

void LocalHub::complete(LocalClientCore& core, uint16_t packet_id, OperationResult result) {
  LocalClientCore::Pending pending;
  {
    std::lock_guard lock(core.mutex);
    auto found = core.pending.find(packet_id);
    if (found == core.pending.end()) return;  // already failed (the session ended meanwhile)
    pending = std::move(found->second);
    core.pending.erase(found);
    if (pending.is_publish_qos) --core.publishes_in_flight;
    if (pending.subscription_identifier != 0 && result.reason_code >= 0x80) {
      // Refused (a bad filter, no $share support ...): its callback will never be called.
      auto subscription = core.subscriptions.find(pending.subscription_identifier);
      if (subscription != core.subscriptions.end()) {
        core.filter_identifiers.erase(subscription->second->filter);
        core.subscriptions.erase(subscription);
      }
    }
  }
  if (pending.has_promise) pending.promise.set_value(result);
  if (pending.callback) {
    try {
      pending.callback(result);
    } catch (...) {
      LOG_WARNING_LIMITED("in-process client '%s': a completion callback threw", core.client_id);
    }
  }
}

void LocalHub::fail_everything(LocalClientCore& core, LocalStatus status, uint8_t reason_code) {
  absl::flat_hash_map<uint16_t, LocalClientCore::Pending> pending;
  {
    std::lock_guard lock(core.mutex);
    pending.swap(core.pending);
    core.publishes_in_flight = 0;
    if (!core.connack_signalled) {
      core.connack_signalled = true;
      core.connack.set_value({status, reason_code});
    }
  }
  core.connected.store(false, std::memory_order_release);
  for (auto& [packet_id, entry] : pending) {
    OperationResult result{status, reason_code};
    if (entry.has_promise) entry.promise.set_value(result);
    if (entry.callback) {
      try {
        entry.callback(result);
      } catch (...) {
        LOG_WARNING_LIMITED("in-process client '%s': a completion callback threw", core.client_id);
      }
    }
  }
}

}  // namespace coremq::shard
