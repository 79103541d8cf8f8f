// SUBSCRIBE and UNSUBSCRIBE: the session's filters, this shard's topic tree and shared
// subscription groups, the interest messages that keep other shards' routing views
// true, MQTT 5 subscription options and reason codes, and retained messages sent on
// subscribe. Runs on the session's shard.
#include <algorithm>

#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "topic/topic.h"

namespace coremq::broker {

using mqtt::ProtocolVersion;
using mqtt::ReasonCode;

namespace {
// A SUBSCRIBE entry is at least 4 bytes (length, one filter byte, options), so the
// packet size bounds the count; this caps the scratch array for huge packet limits.
constexpr size_t kTopicsPerPacketMax = 16384;
size_t topics_per_packet_max(uint32_t max_packet_size) {
  return std::min<size_t>(kTopicsPerPacketMax, max_packet_size / 4 + 1);
}
bool has_wildcard(std::string_view filter) { return filter.find_first_of("+#") != std::string_view::npos; }
constexpr uint8_t code(ReasonCode reason) { return static_cast<uint8_t>(reason); }
}  // namespace

bool ShardState::handle_subscribe(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  if (subscribe_scratch_.empty()) subscribe_scratch_.resize(topics_per_packet_max(options_.max_packet_size));
  mqtt::SubscribePacket subscribe;
  mqtt::DecodeStatus status =
      mqtt::decode_subscribe(body, flags, connection->version, subscribe_scratch_, &subscribe);
  if (status != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, mqtt::reason_code_for(status),
                             absl::StrFormat("bad SUBSCRIBE: %s", mqtt::decode_status_name(status)));
    return false;
  }
  bool v5 = connection->version == ProtocolVersion::kV5;
  uint32_t identifier = v5 ? subscribe.properties.subscription_identifier.value_or(0) : 0;
  if (identifier != 0 && !options_.subscription_identifiers_available) {
    close_for_protocol_error(connection, ReasonCode::kSubscriptionIdentifiersNotSupported,
                             "subscription identifiers are not available");
    return false;
  }
  for (mqtt::SubscribeTopic& entry : subscribe.topics) {
    if (entry.no_local && is_shared_filter(entry.filter)) {  // MQTT-3.8.3-4
      close_for_protocol_error(connection, ReasonCode::kProtocolError, "No Local on a shared subscription");
      return false;
    }
    // A Mosquitto bridge (try_private) is never sent its own messages back, and gets the retain
    // flag as published, as Mosquitto treats it; without this two brokers bridged both ways echo.
    if (connection->bridge_client && !is_shared_filter(entry.filter)) {
      entry.no_local = true;
      entry.retain_as_published = true;
    }
  }

  Session* session = connection->session;
  reason_code_scratch_.clear();
  std::vector<bool> existed(subscribe.topics.size(), false);
  size_t first = 0;
  if (PendingDecision* pending = connection->pending_decision.get()) {
    // Handled again after the authorization hook answered for filter next_filter: the filters
    // before it are done (subscribed, reported) and keep their results.
    first = pending->next_filter;
    reason_code_scratch_ = pending->subscribe_results;
    for (size_t i = 0; i < first; ++i) existed[i] = pending->subscribe_existed[i];
  }
  for (size_t i = first; i < subscribe.topics.size(); ++i) {
    bool was_there = false;
    uint8_t result = subscribe_one(session, subscribe.topics[i], identifier, &was_there);
    if (connection->input_held) {
      // The hook answers this filter later: keep what the earlier ones got.
      PendingDecision* pending = connection->pending_decision.get();
      pending->next_filter = static_cast<uint32_t>(i);
      pending->subscribe_results = reason_code_scratch_;
      pending->subscribe_existed.assign(existed.begin(), existed.begin() + static_cast<std::ptrdiff_t>(i));
      pending->subscribe_answer.reset();
      return true;
    }
    if (PendingDecision* pending = connection->pending_decision.get()) pending->subscribe_answer.reset();
    existed[i] = was_there;
    if (events_ != nullptr && result < 0x80) {
      const mqtt::SubscribeTopic& entry = subscribe.topics[i];
      SubscriptionOptions granted{result, entry.no_local, entry.retain_as_published, entry.retain_handling, identifier};
      report_subscription(session, entry.filter, &granted);
    }
    // 3.1.1 has one failure code for every reason.
    reason_code_scratch_.push_back(!v5 && result >= 0x80 ? mqtt::kSubackFailure : result);
  }
  journal_session(session);  // --persistence: the subscriptions are in the session's record
  // SUBACK now, or once every other shard knows the new filters (barrier.cc): after it, a
  // message published on any shard reaches the client; with --persistence, once the session's
  // record holding them is durable too.
  bool wait = answers_must_wait();
  WaitingAnswer answer;
  auto encode_suback = [&](base::ByteBuffer& out, bool) {
    if (v5) {
      mqtt::encode_suback_v5(out, subscribe.packet_id, {}, reason_code_scratch_);
    } else {
      mqtt::encode_suback(out, subscribe.packet_id, reason_code_scratch_);
    }
  };
  bool staged = wait ? stage_packet_into(answer.packet, connection, mqtt::PacketType::kSuback, encode_suback)
                     : stage_packet(connection, mqtt::PacketType::kSuback, encode_suback);
  if (!staged) return false;  // over the client's Maximum Packet Size: closed

  // MQTT-3.3.1-6 / 3.8.4: retained messages matching each new subscription, after the
  // SUBACK, as Retain Handling says; never for a shared subscription (section 4.8.2).
  for (size_t i = 0; i < subscribe.topics.size(); ++i) {
    const mqtt::SubscribeTopic& entry = subscribe.topics[i];
    if (reason_code_scratch_[i] >= 0x80 || is_shared_filter(entry.filter)) continue;
    if (entry.retain_handling == 2 || (entry.retain_handling == 1 && existed[i])) continue;
    if (wait) {
      answer.retained_filters.emplace_back(entry.filter);
      continue;
    }
    const SubscriptionOptions& options = session->subscriptions.find(entry.filter)->second;
    send_retained(session, entry.filter, options);
  }
  if (wait) {
    answer.connection = connection;
    wait_for_peers(std::move(answer));
  }
  return true;
}

uint8_t ShardState::subscribe_one(Session* session, const mqtt::SubscribeTopic& entry, uint32_t identifier,
                                  bool* existed) {
  std::string_view filter = entry.filter;
  std::string_view shared_key, shared_filter;
  bool shared = is_shared_filter(filter);
  if (shared) {
    if (!options_.shared_subscriptions_available) return code(ReasonCode::kSharedSubscriptionsNotSupported);
    if (!parse_shared_filter(filter, &shared_key, &shared_filter)) {
      LOG_INFO_LIMITED("client '%s' subscribed to invalid shared filter '%s': refused", session->client_id, filter);
      return code(ReasonCode::kTopicFilterInvalid);
    }
  } else if (!topic::is_valid_topic_filter(filter)) {
    LOG_INFO_LIMITED("client '%s' subscribed to invalid filter '%s': refused", session->client_id, filter);
    return code(ReasonCode::kTopicFilterInvalid);
  }
  // Every level is a node of the topic tree: without a bound one SUBSCRIBE builds 65536 of them.
  if (uint32_t levels = topic::count_levels(shared ? shared_filter : filter); levels > options_.max_topic_levels) {
    ++counters_.topic_levels_refused;
    LOG_INFO_LIMITED("client '%s' subscribed to a filter of %u levels, over --max-topic-levels=%u: refused",
             session->client_id, levels, options_.max_topic_levels);
    return code(ReasonCode::kTopicFilterInvalid);
  }
  if (!options_.wildcard_subscriptions_available && has_wildcard(shared ? shared_filter : filter)) {
    return code(ReasonCode::kWildcardSubscriptionsNotSupported);
  }
  if (session->acl != nullptr) {
    bool over_budget = false;
    if (!session->acl->can_subscribe(shared ? shared_filter : filter, &over_budget)) {
      // Mosquitto 2.0 grants it and then delivers nothing through it; saying so is kinder.
      ++counters_.acl_subscriptions_denied;
      LOG_INFO_LIMITED("client '%s' may read nothing through '%s' (ACL file): refused", session->client_id, filter);
      return code(ReasonCode::kNotAuthorized);
    }
    if (over_budget) {
      ++counters_.acl_subscribe_checks_over_budget;
      LOG_INFO_LIMITED("client '%s': ACL check of '%s' stopped after %u comparisons: granted, deliveries checked",
                       session->client_id, filter, auth::CompiledAcl::kSubscribeCheckBudget);
    }
  }
  if (options_.authorization_hook != nullptr) {
    HookAnswer::Kind answer = authorize_subscribe(session, shared ? shared_filter : filter, entry.qos);
    switch (answer) {
      case HookAnswer::Kind::kAllow: break;
      case HookAnswer::Kind::kNone: return 0;  // held: the caller sees connection->input_held
      case HookAnswer::Kind::kTimedOut: return code(ReasonCode::kUnspecifiedError);
      case HookAnswer::Kind::kBusy: return code(ReasonCode::kQuotaExceeded);
      default:
        ++counters_.acl_subscriptions_denied;
        LOG_INFO_LIMITED("client '%s' may not subscribe to '%s' (authorization hook): refused", session->client_id,
                         filter);
        return code(ReasonCode::kNotAuthorized);
    }
  }
  auto existing = session->subscriptions.find(filter);
  *existed = existing != session->subscriptions.end();
  if (!*existed && session->subscriptions.size() >= options_.max_subscriptions_per_session) {
    LOG_INFO_LIMITED("client '%s' is at --max-subscriptions-per-session=%u: '%s' refused", session->client_id,
             options_.max_subscriptions_per_session, filter);
    return code(ReasonCode::kQuotaExceeded);
  }
  SubscriptionOptions options;
  options.qos = std::min(entry.qos, options_.maximum_qos);
  options.no_local = entry.no_local;
  options.retain_as_published = entry.retain_as_published;
  options.retain_handling = entry.retain_handling;
  options.identifier = identifier;
  // MQTT-3.8.4-3: a repeated filter replaces the old subscription's options.
  if (*existed) {
    existing->second = options;
  } else {
    session->subscriptions.emplace(std::string(filter), options);
  }
  if (shared) {
    if (shared_.add_local(shared_key, shared_filter, session, options)) {
      post_interest(CrossShardItem::Kind::kInterestAdd, filter);
    }
  } else if (subscriptions_.insert(filter, session, options).first_for_filter) {
    post_interest(CrossShardItem::Kind::kInterestAdd, filter);
  }
  return options.qos;
}

void ShardState::send_retained(Session* session, std::string_view filter, const SubscriptionOptions& options) {
  int64_t now = io_.now_ms();
  retained_.for_each_match(filter, [&](const MessageRef& message) {
    if (message->expired(now)) return;
    Delivery delivery;
    delivery.qos = std::min(options.qos, message->qos());
    delivery.retain_flag = true;
    if (options.identifier != 0) delivery.subscription_ids.push_back(options.identifier);
    deliver_to_session(session, message, std::move(delivery));
  });
}

HookAnswer::Kind ShardState::authorize_subscribe(Session* session, std::string_view filter, uint8_t qos) {
  Connection* connection = session->connection;
  if (const HookAnswer* stored = stored_answer(connection, PendingDecision::Stage::kSubscribe)) return stored->kind;
  Deferral deferral(*this);
  AuthorizationHook::Decision decision =
      options_.authorization_hook->decide_subscribe(hook_identity(session), filter, qos, deferral);
  if (decision == AuthorizationHook::Decision::kAllow) return HookAnswer::Kind::kAllow;
  if (decision == AuthorizationHook::Decision::kDeny) return HookAnswer::Kind::kDeny;
  switch (hold_for_decision(connection, deferral, PendingDecision::Stage::kSubscribe)) {
    case Held::kHeld: return HookAnswer::Kind::kNone;
    case Held::kBusy: return HookAnswer::Kind::kBusy;
    case Held::kBroken: break;
  }
  return HookAnswer::Kind::kDeny;
}

bool ShardState::handle_unsubscribe(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  if (unsubscribe_scratch_.empty()) unsubscribe_scratch_.resize(topics_per_packet_max(options_.max_packet_size));
  mqtt::UnsubscribePacket unsubscribe;
  mqtt::DecodeStatus status =
      mqtt::decode_unsubscribe(body, flags, connection->version, unsubscribe_scratch_, &unsubscribe);
  if (status != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, mqtt::reason_code_for(status),
                             absl::StrFormat("bad UNSUBSCRIBE: %s", mqtt::decode_status_name(status)));
    return false;
  }
  reason_code_scratch_.clear();
  for (std::string_view filter : unsubscribe.filters) {
    bool removed = unsubscribe_one(connection->session, filter);
    if (removed && events_ != nullptr) report_subscription(connection->session, filter, nullptr);
    reason_code_scratch_.push_back(removed ? code(ReasonCode::kSuccess) : code(ReasonCode::kNoSubscriptionExisted));
  }
  journal_session(connection->session);  // --persistence: the record without them
  return stage_packet(connection, mqtt::PacketType::kUnsuback, [&](base::ByteBuffer& out, bool) {
    if (connection->version == ProtocolVersion::kV5) {
      mqtt::encode_unsuback_v5(out, unsubscribe.packet_id, {}, reason_code_scratch_);
    } else {
      mqtt::encode_unsuback(out, unsubscribe.packet_id);
    }
  });
}

bool ShardState::unsubscribe_one(Session* session, std::string_view filter) {
  auto existing = session->subscriptions.find(filter);
  if (existing == session->subscriptions.end()) return false;
  session->subscriptions.erase(existing);
  std::string_view shared_key, shared_filter;
  if (parse_shared_filter(filter, &shared_key, &shared_filter)) {
    if (shared_.remove_local(shared_key, session)) post_interest(CrossShardItem::Kind::kInterestRemove, filter);
  } else if (subscriptions_.remove(filter, session).last_for_filter) {
    post_interest(CrossShardItem::Kind::kInterestRemove, filter);
  }
  return true;
}

void ShardState::post_interest(CrossShardItem::Kind kind, std::string_view filter) {
  for (uint32_t shard = 0; shard < shard_count_; ++shard) {
    if (shard == shard_id_) continue;
    io_.post(shard, CrossShardItem{kind, shard_id_, new InterestChange{std::string(filter)}});
  }
  if (shard_count_ > 1) note_change_posted();
}

void ShardState::remove_all_subscriptions(Session* session) {
  // Copy the keys: unsubscribe_one edits the map.
  std::vector<std::string> filters;
  filters.reserve(session->subscriptions.size());
  for (const auto& [filter, options] : session->subscriptions) filters.push_back(filter);
  for (const std::string& filter : filters) unsubscribe_one(session, filter);
}

}  // namespace coremq::broker
