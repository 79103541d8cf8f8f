// The embedding program's message interceptor (include/coremq/interception.h) and event hook
// (include/coremq/events.h), called from the protocol side. Each call site tests a cached raw
// pointer first, so a broker without these hooks pays one predictable branch per site.
// Shard thread only.
#include <chrono>

#include "base/assert.h"
#include "base/log.h"
#include "broker/host_input.h"
#include "broker/shard_state.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/properties.h"
#include "topic/topic.h"

namespace coremq {

const char* disconnect_reason_name(DisconnectReason reason) {
  switch (reason) {
    case DisconnectReason::kClientDisconnect: return "client disconnect";
    case DisconnectReason::kConnectionLost: return "connection lost";
    case DisconnectReason::kKeepAliveTimeout: return "keep-alive timeout";
    case DisconnectReason::kProtocolError: return "protocol error";
    case DisconnectReason::kTakenOver: return "taken over";
    case DisconnectReason::kShutdown: return "shutdown";
    case DisconnectReason::kSlowConsumer: return "slow consumer";
    case DisconnectReason::kTransportError: return "transport error";
    case DisconnectReason::kAuthentication: return "re-authentication failed";
    case DisconnectReason::kAdministrative: return "administrative";
  }
  return "unknown";
}

const char* drop_reason_name(DropReason reason) {
  switch (reason) {
    case DropReason::kQueueFull: return "queue full";
    case DropReason::kSlowConsumer: return "slow consumer";
    case DropReason::kOffline: return "offline";
    case DropReason::kAuthorization: return "not authorized";
    case DropReason::kReceiveDenied: return "receive denied";
    case DropReason::kInterceptor: return "interceptor";
    case DropReason::kExpired: return "expired";
    case DropReason::kOverClientMaximum: return "over the client's maximum packet size";
  }
  return "unknown";
}

}  // namespace coremq

namespace coremq::broker {

using mqtt::PacketType;
using mqtt::ProtocolVersion;
using mqtt::ReasonCode;


template <typename Call>
void ShardState::call_event_hook(Call&& call) {
#ifdef NDEBUG
  call(*events_);
#else
  // Debug builds: a hook that blocks the shard is found by this, not by a stalled fleet.
  auto started = std::chrono::steady_clock::now();
  call(*events_);
  auto took_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
  if (took_us > 1000) {
    uint64_t slow = ++counters_.event_hook_slow;
    LOG_WARNING_LIMITED("an event hook call ran %d us on shard %u (event hooks must not block; %u slow so far)",
                        took_us, shard_id_, slow);
  }
#endif
}

InterceptionVerdict ShardState::call_interceptor(Connection* connection, const mqtt::PublishPacket& publish,
                                                 std::string_view topic, MessageRewrite& rewrite) {
  InterceptedMessage message;
  message.client = hook_identity(connection->session);
  message.protocol_version = static_cast<uint8_t>(connection->version);
  message.topic = topic;
  message.payload = publish.payload;
  message.qos = publish.qos;
  message.retain = publish.retain;
  const mqtt::Properties& properties = publish.properties;
  if (connection->version == ProtocolVersion::kV5) {
    message.payload_format_indicator = properties.payload_format_indicator;
    message.message_expiry_interval_seconds = properties.message_expiry_interval_seconds;
    message.content_type = properties.content_type;
    message.response_topic = properties.response_topic;
    message.correlation_data = properties.correlation_data;
    intercepted_user_properties_.clear();
    if (properties.user_property_count > 0) {
      user_property_scratch_.resize(properties.user_property_count);
      size_t users = mqtt::copy_user_properties(properties, user_property_scratch_);
      for (size_t i = 0; i < users; ++i) {
        intercepted_user_properties_.emplace_back(user_property_scratch_[i].name, user_property_scratch_[i].value);
      }
    }
    message.user_properties = {intercepted_user_properties_.data(), intercepted_user_properties_.size()};
  }
  Deferral deferral(*this);
  InterceptionVerdict verdict = interceptor_->on_publish(message, rewrite, deferral);
  if (verdict.action != InterceptionVerdict::Action::kDefer) return verdict;
  rewrite.reset();
  switch (hold_for_decision(connection, deferral, PendingDecision::Stage::kInterception)) {
    case Held::kHeld: return InterceptionVerdict::defer();  // held: the answer comes later
    case Held::kBusy: return InterceptionVerdict::drop(static_cast<uint8_t>(ReasonCode::kQuotaExceeded));
    case Held::kBroken: break;
  }
  return InterceptionVerdict::drop(static_cast<uint8_t>(ReasonCode::kImplementationSpecificError));
}

ShardState::Interception ShardState::intercept_publish(Connection* connection, mqtt::PublishPacket& publish,
                                                       std::string_view* topic) {
  COREMQ_ASSERT(interceptor_ != nullptr && connection->session != nullptr);
  MessageRewrite& rewrite = rewrite_scratch_;
  rewrite.reset();
  InterceptionVerdict verdict;
  if (HookAnswer* stored = stored_answer(connection, PendingDecision::Stage::kInterception)) {
    // Handled again: the deferred answer stands in for the call.
    switch (stored->kind) {
      case HookAnswer::Kind::kAllow:
        if (stored->rewrite != nullptr) rewrite = std::move(*stored->rewrite);
        break;
      case HookAnswer::Kind::kDisconnect: verdict = InterceptionVerdict::disconnect(stored->reason_code); break;
      case HookAnswer::Kind::kTimedOut:
        verdict = InterceptionVerdict::drop(static_cast<uint8_t>(ReasonCode::kUnspecifiedError));
        break;
      default: verdict = InterceptionVerdict::drop(stored->reason_code); break;
    }
  } else {
    verdict = call_interceptor(connection, publish, *topic, rewrite);
    if (verdict.action == InterceptionVerdict::Action::kDefer) return Interception::kHeld;
  }
  const std::string& client_id = connection->session->client_id;
  switch (verdict.action) {
    case InterceptionVerdict::Action::kPass: break;
    case InterceptionVerdict::Action::kDrop: {
      auto reason = static_cast<ReasonCode>(verdict.reason_code);
      if (verdict.reason_code < 0x80 || !mqtt::reason_code_allowed(PacketType::kPuback, reason)) {
        reason = ReasonCode::kUnspecifiedError;
      }
      ++counters_.interceptor_drops;
      LOG_DEBUG("interceptor dropped a PUBLISH of client '%s' on '%s' (%s)", client_id, *topic,
                mqtt::reason_code_name(reason));
      return refuse_intercepted(connection, publish, *topic, reason) ? Interception::kDropped : Interception::kStop;
    }
    case InterceptionVerdict::Action::kDisconnect: {
      auto reason = static_cast<ReasonCode>(verdict.reason_code);
      if (verdict.reason_code < 0x80 || !mqtt::reason_code_allowed(PacketType::kDisconnect, reason)) {
        reason = ReasonCode::kUnspecifiedError;
      }
      ++counters_.interceptor_disconnects;
      LOG_INFO_LIMITED("the message interceptor ended client '%s' (%s)", client_id, mqtt::reason_code_name(reason));
      bool tell_client = connection->version == ProtocolVersion::kV5;
      if (tell_client) send_disconnect(connection, reason, "the message interceptor ended the connection");
      end_connection(connection, /*publish_will=*/true, /*flush_first=*/tell_client,
                     {CloseReason::kInterceptor, static_cast<int>(reason),
                      "the message interceptor ended the connection"});
      return Interception::kStop;
    }
    case InterceptionVerdict::Action::kDefer: COREMQ_ASSERT_MSG(false, "a deferral is held above"); break;
  }
  if (rewrite.empty()) return Interception::kPass;
  if (rewrite.topic) {
    if (!valid_host_topic(*rewrite.topic, options_.max_topic_levels)) {
      ++counters_.interceptor_rewrites_invalid;
      LOG_WARNING_LIMITED("the message interceptor rewrote '%s' (client '%s') to an invalid topic: message dropped",
                          *topic, client_id);
      return refuse_intercepted(connection, publish, *topic, ReasonCode::kImplementationSpecificError)
                 ? Interception::kDropped
                 : Interception::kStop;
    }
    *topic = *rewrite.topic;
  }
  if (rewrite.properties && !valid_host_properties(*rewrite.properties)) {
    ++counters_.interceptor_rewrites_invalid;
    LOG_WARNING_LIMITED("the message interceptor gave a message of client '%s' on '%s' invalid properties: dropped",
                        client_id, *topic);
    return refuse_intercepted(connection, publish, *topic, ReasonCode::kImplementationSpecificError)
               ? Interception::kDropped
               : Interception::kStop;
  }
  if (rewrite.payload) publish.payload = *rewrite.payload;
  ++counters_.interceptor_rewrites;
  return Interception::kPass;
}

bool ShardState::refuse_intercepted(Connection* connection, const mqtt::PublishPacket& publish,
                                    std::string_view topic, ReasonCode reason, DropReason why) {
  report_dropped(connection->session, topic, publish.qos, why);
  if (publish.qos == 0) return true;
  // As an ACL refusal (refuse_publish): the QoS flow ends normally; 3.1.1 has no reason code.
  uint8_t code = connection->version == ProtocolVersion::kV5 ? static_cast<uint8_t>(reason) : 0;
  return send_ack(connection, publish.qos == 1 ? PacketType::kPuback : PacketType::kPubrec, publish.packet_id, code);
}

std::string_view ShardState::encode_rewritten_properties(const MessageProperties& replaced) {
  mqtt::Properties encoded;
  encoded.payload_format_indicator = replaced.payload_format_indicator;
  if (replaced.content_type) encoded.content_type = *replaced.content_type;
  if (replaced.response_topic) encoded.response_topic = *replaced.response_topic;
  if (replaced.correlation_data) encoded.correlation_data = *replaced.correlation_data;
  user_property_scratch_.clear();
  for (const UserProperty& property : replaced.user_properties) {
    user_property_scratch_.push_back({property.name, property.value});
  }
  property_scratch_.clear();
  mqtt::encode_property_bytes(property_scratch_, mqtt::PropertyContext::kPublish, encoded, user_property_scratch_);
  return property_scratch_.view();
}

void ShardState::report_connected(Connection* connection, bool clean_start, bool session_present) {
  COREMQ_ASSERT(events_ != nullptr && connection->session != nullptr);
  connection->connect_reported = true;
  ClientConnectedEvent event;
  event.client = hook_identity(connection->session);
  std::string address;
  if (!connection->in_process) address = format_peer(connection->peer, false);
  event.address = address;
  event.protocol_version = static_cast<uint8_t>(connection->version);
  event.clean_start = clean_start;
  event.session_present = session_present;
  event.keep_alive_seconds = connection->keep_alive_seconds;
  call_event_hook([&](EventHook& hook) { hook.on_client_connected(event); });
}

void ShardState::report_disconnected(Connection* connection, Session* session, const EndCause& cause,
                                     bool will_published) {
  COREMQ_ASSERT(events_ != nullptr);
  connection->connect_reported = false;
  ClientDisconnectedEvent event;
  event.client = hook_identity(session);
  event.reason = disconnect_reason_of(cause.reason);
  event.reason_code = cause.reason_code >= 0 ? static_cast<uint8_t>(cause.reason_code) : 0;
  event.will_published = will_published;
  call_event_hook([&](EventHook& hook) { hook.on_client_disconnected(event); });
}

void ShardState::report_subscription(Session* session, std::string_view filter, const SubscriptionOptions* added) {
  COREMQ_ASSERT(events_ != nullptr);
  SubscriptionEvent event;
  event.client = hook_identity(session);
  event.filter = filter;
  if (added != nullptr) {
    event.qos = added->qos;
    event.no_local = added->no_local;
    event.retain_as_published = added->retain_as_published;
    event.retain_handling = added->retain_handling;
    event.subscription_identifier = added->identifier;
    call_event_hook([&](EventHook& hook) { hook.on_subscription_added(event); });
  } else {
    call_event_hook([&](EventHook& hook) { hook.on_subscription_removed(event); });
  }
}

void ShardState::report_dropped_now(const Session* session, std::string_view topic, uint8_t qos, DropReason reason) {
  MessageDroppedEvent event;
  event.client = hook_identity(session);
  event.topic = topic;
  event.qos = qos;
  event.reason = reason;
  call_event_hook([&](EventHook& hook) { hook.on_message_dropped(event); });
}

}  // namespace coremq::broker
