// coremq::LocalClient (include/coremq/local_client.h): what host threads call. Each operation
// is checked here against the rules the broker would otherwise answer with a disconnect,
// encoded as the MQTT 5 packet a network client would send, registered (QoS 1/2, SUBSCRIBE,
// UNSUBSCRIBE: under the client's mutex, which only host threads and the delivery thread
// take) and pushed into the owner shard's intake. Any host thread.
#include <algorithm>

#include "base/assert.h"
#include "broker/host_input.h"
#include "broker/shared_subscriptions.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/properties.h"
#include "shard/local_hub.h"
#include "topic/topic.h"

namespace coremq {

using shard::LocalCommand;

namespace {
constexpr uint32_t kSubscriptionIdentifierMax = 268435455;
constexpr size_t kPendingMax = 65535;

// Scratch reused by each host thread, so a publish allocates only its packet.
thread_local base::ByteBuffer property_scratch;
thread_local std::vector<mqtt::UserProperty> user_property_scratch;

// A packet id not in use by this client. Caller holds core.mutex and checked the bound.
uint16_t allocate_packet_id(LocalClientCore& core) {
  COREMQ_ASSERT(core.pending.size() < kPendingMax);
  do {
    ++core.last_packet_id;
    if (core.last_packet_id == 0) core.last_packet_id = 1;
  } while (core.pending.contains(core.last_packet_id));
  return core.last_packet_id;
}

// Registers `pending` under a new packet id, or says why not.
LocalStatus register_pending(LocalClientCore& core, LocalClientCore::Pending&& pending, uint16_t* packet_id) {
  std::lock_guard lock(core.mutex);
  if (core.pending.size() >= kPendingMax) return LocalStatus::kTooManyInFlight;
  if (pending.is_publish_qos) {
    if (core.publishes_in_flight >= core.hub->options().receive_maximum) return LocalStatus::kTooManyInFlight;
    ++core.publishes_in_flight;
  }
  *packet_id = allocate_packet_id(core);
  core.pending.emplace(*packet_id, std::move(pending));
  return LocalStatus::kOk;
}

void unregister_pending(LocalClientCore& core, uint16_t packet_id) {
  std::lock_guard lock(core.mutex);
  auto found = core.pending.find(packet_id);
  if (found == core.pending.end()) return;
  if (found->second.is_publish_qos) --core.publishes_in_flight;
  core.pending.erase(found);
}

LocalStatus usable(const LocalClientCore& core) {
  if (core.hub->stopped()) return LocalStatus::kBrokerStopped;
  if (!core.connected.load(std::memory_order_acquire)) return LocalStatus::kDisconnected;
  return LocalStatus::kOk;
}

// What the broker would refuse with a disconnect, refused here instead.
bool publish_acceptable(const Options& options, std::string_view topic, std::string_view payload, uint8_t qos,
                        bool retain, const MessageProperties& properties) {
  if (qos > 2 || qos > options.maximum_qos || (retain && !options.retain_available)) return false;
  return broker::valid_host_topic(topic, options.max_topic_levels) && broker::valid_host_properties(properties) &&
         payload.size() <= mqtt::kRemainingLengthMax;
}

// Encodes the PUBLISH into command->bytes; false when it is over Options::max_packet_size.
bool encode_publish(const Options& options, std::string_view topic, std::string_view payload, uint8_t qos,
                    bool retain, const MessageProperties& properties, uint16_t packet_id,
                    LocalCommand* command) {
  mqtt::Properties encoded;
  encoded.payload_format_indicator = properties.payload_format_indicator;
  encoded.message_expiry_interval_seconds = properties.message_expiry_interval_seconds;
  if (properties.content_type) encoded.content_type = *properties.content_type;
  if (properties.response_topic) encoded.response_topic = *properties.response_topic;
  if (properties.correlation_data) encoded.correlation_data = *properties.correlation_data;
  user_property_scratch.clear();
  for (const UserProperty& property : properties.user_properties) {
    user_property_scratch.push_back({property.name, property.value});
  }
  property_scratch.clear();
  mqtt::encode_property_bytes(property_scratch, mqtt::PropertyContext::kPublish, encoded,
                              user_property_scratch);
  size_t size = mqtt::publish_packet_size_v5(topic, qos, property_scratch.size(), payload.size());
  if (size > options.max_packet_size) return false;
  mqtt::PublishPacket publish;
  publish.topic = topic;
  publish.payload = payload;
  publish.qos = qos;
  publish.retain = retain;
  publish.packet_id = packet_id;
  command->bytes.reserve(size);
  mqtt::encode_publish(command->bytes, publish, mqtt::ProtocolVersion::kV5, property_scratch.span());
  return true;
}

LocalStatus start_publish(LocalClientCore& core, std::string_view topic, std::string_view payload,
                          uint8_t qos, bool retain, const MessageProperties& properties,
                          LocalClientCore::Pending&& pending) {
  if (LocalStatus status = usable(core); status != LocalStatus::kOk) return status;
  const Options& options = core.hub->options();
  if (!publish_acceptable(options, topic, payload, qos, retain, properties))
    return LocalStatus::kInvalidArgument;
  uint16_t packet_id = 0;
  if (qos > 0) {
    pending.is_publish_qos = true;
    if (LocalStatus status = register_pending(core, std::move(pending), &packet_id);
        status != LocalStatus::kOk) {
      return status;
    }
  }
  LocalCommand command{&core, LocalCommand::Kind::kPackets, packet_id, {}};
  LocalStatus status = LocalStatus::kInvalidArgument;
  if (encode_publish(options, topic, payload, qos, retain, properties, packet_id, &command)) {
    status = core.hub->push(core, std::move(command));
  }
  if (status != LocalStatus::kOk && packet_id != 0) unregister_pending(core, packet_id);
  return status;
}

std::future<OperationResult> ready(OperationResult result) {
  std::promise<OperationResult> promise;
  promise.set_value(result);
  return promise.get_future();
}

}  // namespace

const char* local_status_name(LocalStatus status) {
  switch (status) {
    case LocalStatus::kOk:
      return "ok";
    case LocalStatus::kIntakeFull:
      return "intake full";
    case LocalStatus::kTooManyInFlight:
      return "too many operations in flight";
    case LocalStatus::kDisconnected:
      return "disconnected";
    case LocalStatus::kBrokerStopped:
      return "broker stopped";
    case LocalStatus::kInvalidArgument:
      return "invalid argument";
    case LocalStatus::kRefused:
      return "refused by the broker";
  }
  return "unknown";
}

LocalClient::LocalClient(std::unique_ptr<LocalClientCore> core) : core_(std::move(core)) {}

LocalClient::~LocalClient() {
  std::shared_ptr<shard::LocalHub> hub = core_->hub;  // the core may be freed inside
  hub->disconnect(std::move(core_));
}

const std::string& LocalClient::client_id() const {
  return core_->client_id;
}

bool LocalClient::connected() const {
  return usable(*core_) == LocalStatus::kOk;
}

std::future<OperationResult> LocalClient::publish(std::string_view topic, std::string_view payload,
                                                  uint8_t qos, bool retain,
                                                  const MessageProperties& properties) {
  if (qos == 0) {
    // No promise to keep: the intake's answer is the whole answer.
    LocalStatus status = start_publish(*core_, topic, payload, 0, retain, properties, {});
    return ready({status, 0});
  }
  LocalClientCore::Pending pending;
  pending.has_promise = true;
  std::future<OperationResult> future = pending.promise.get_future();
  LocalStatus status = start_publish(*core_, topic, payload, qos, retain, properties, std::move(pending));
  if (status != LocalStatus::kOk) return ready({status, 0});
  return future;
}

LocalStatus LocalClient::publish(std::string_view topic, std::string_view payload, uint8_t qos, bool retain,
                                 const MessageProperties& properties, ResultCallback on_complete) {
  LocalClientCore::Pending pending;
  pending.callback = std::move(on_complete);
  return start_publish(*core_, topic, payload, qos, retain, properties, std::move(pending));
}

std::future<OperationResult> LocalClient::subscribe(std::string_view filter, const SubscribeOptions& options,
                                                    MessageCallback on_message) {
  LocalClientCore& core = *core_;
  if (LocalStatus status = usable(core); status != LocalStatus::kOk) return ready({status, 0});
  const Options& broker_options = core.hub->options();
  bool shared = broker::is_shared_filter(filter);
  if (filter.empty() || !broker::valid_host_text(filter) || options.qos > 2 || options.retain_handling > 2 ||
      (shared && options.no_local) || options.subscription_identifier > kSubscriptionIdentifierMax ||
      !on_message) {
    return ready({LocalStatus::kInvalidArgument, 0});
  }
  auto subscription = std::make_shared<shard::LocalSubscription>();
  subscription->filter = std::string(filter);
  std::string_view match_filter = filter;
  std::string_view group_key;
  if (shared && !broker::parse_shared_filter(filter, &group_key, &match_filter)) match_filter = filter;
  subscription->match_filter = std::string(match_filter);
  subscription->host_identifier = options.subscription_identifier;
  subscription->callback = std::move(on_message);

  LocalClientCore::Pending pending;
  pending.has_promise = true;
  std::future<OperationResult> future = pending.promise.get_future();
  uint16_t packet_id = 0;
  {
    std::lock_guard lock(core.mutex);
    if (core.pending.size() >= kPendingMax) return ready({LocalStatus::kTooManyInFlight, 0});
    // Each subscription gets its own identifier, by which the delivery thread finds its
    // callback (the host's own identifier is reported back instead).
    if (broker_options.subscription_identifiers_available) {
      do {
        core.last_subscription_identifier =
            core.last_subscription_identifier % kSubscriptionIdentifierMax + 1;
      } while (core.subscriptions.contains(core.last_subscription_identifier));
      subscription->internal_identifier = core.last_subscription_identifier;
    } else {
      // Without identifiers the broker matches nothing by them: messages are matched by topic.
      subscription->internal_identifier = core.last_subscription_identifier =
          core.last_subscription_identifier + 1;
    }
    auto [entry, inserted] =
        core.filter_identifiers.try_emplace(subscription->filter, subscription->internal_identifier);
    if (!inserted) {
      core.subscriptions.erase(entry->second);  // subscribing again replaces it
      entry->second = subscription->internal_identifier;
    }
    core.subscriptions.emplace(subscription->internal_identifier, subscription);
    pending.subscription_identifier = subscription->internal_identifier;
    packet_id = allocate_packet_id(core);
    core.pending.emplace(packet_id, std::move(pending));
  }

  mqtt::SubscribeTopic entry;
  entry.filter = filter;
  entry.qos = options.qos;
  entry.no_local = options.no_local;
  entry.retain_as_published = options.retain_as_published;
  entry.retain_handling = options.retain_handling;
  mqtt::Properties properties;
  if (broker_options.subscription_identifiers_available) {
    properties.subscription_identifier = subscription->internal_identifier;
  }
  base::ByteBuffer property_bytes;
  mqtt::encode_property_bytes(property_bytes, mqtt::PropertyContext::kSubscribe, properties);
  LocalCommand command{&core, LocalCommand::Kind::kPackets, packet_id, {}};
  if (core.inline_callbacks) command.subscribe = subscription;
  mqtt::encode_subscribe(command.bytes, packet_id, std::span(&entry, 1), mqtt::ProtocolVersion::kV5,
                         property_bytes.span());
  LocalStatus status = core.hub->push(core, std::move(command));
  if (status == LocalStatus::kOk) return future;
  {
    std::lock_guard lock(core.mutex);
    core.pending.erase(packet_id);
    auto found = core.filter_identifiers.find(subscription->filter);
    if (found != core.filter_identifiers.end() && found->second == subscription->internal_identifier) {
      core.filter_identifiers.erase(found);
      core.subscriptions.erase(subscription->internal_identifier);
    }
  }
  return ready({status, 0});
}

std::future<OperationResult> LocalClient::unsubscribe(std::string_view filter) {
  LocalClientCore& core = *core_;
  if (LocalStatus status = usable(core); status != LocalStatus::kOk) return ready({status, 0});
  if (filter.empty() || !broker::valid_host_text(filter)) return ready({LocalStatus::kInvalidArgument, 0});
  LocalClientCore::Pending pending;
  pending.has_promise = true;
  std::future<OperationResult> future = pending.promise.get_future();
  uint16_t packet_id = 0;
  {
    std::lock_guard lock(core.mutex);
    if (core.pending.size() >= kPendingMax) return ready({LocalStatus::kTooManyInFlight, 0});
    // Its callback stops at once: messages already on their way are acknowledged unseen.
    auto found = core.filter_identifiers.find(std::string(filter));
    if (found != core.filter_identifiers.end()) {
      core.subscriptions.erase(found->second);
      core.filter_identifiers.erase(found);
    }
    packet_id = allocate_packet_id(core);
    core.pending.emplace(packet_id, std::move(pending));
  }
  std::string_view filters[] = {filter};
  LocalCommand command{&core, LocalCommand::Kind::kPackets, packet_id, {}};
  if (core.inline_callbacks) command.unsubscribe = std::string(filter);
  mqtt::encode_unsubscribe(command.bytes, packet_id, filters, mqtt::ProtocolVersion::kV5, {});
  LocalStatus status = core.hub->push(core, std::move(command));
  if (status == LocalStatus::kOk) return future;
  unregister_pending(core, packet_id);
  return ready({status, 0});
}

LocalStatus LocalClient::acknowledge(const MessageAcknowledgement& acknowledgement) {
  LocalClientCore& core = *core_;
  if (!core.manual_acknowledgement || acknowledgement.packet_id == 0 ||
      (acknowledgement.qos != 1 && acknowledgement.qos != 2)) {
    return LocalStatus::kInvalidArgument;
  }
  if (LocalStatus status = usable(core); status != LocalStatus::kOk) return status;
  // The same packet the delivery thread sends when a callback returns, from this thread: the
  // intake takes packets from any thread, and the shard reads them in order.
  LocalCommand command{&core, LocalCommand::Kind::kPackets, 0, {}};
  mqtt::encode_ack_v5(command.bytes, acknowledgement.qos == 1 ? mqtt::PacketType::kPuback : mqtt::PacketType::kPubrec,
                      acknowledgement.packet_id, 0, {});
  return core.hub->push(core, std::move(command));
}

}  // namespace coremq
