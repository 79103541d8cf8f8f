// SUBSCRIBE and UNSUBSCRIBE: the session's filters, this shard's topic tree, the
// interest messages that keep other shards' routing views true, and retained
// messages sent on subscribe. Runs on the session's shard.
#include <algorithm>

#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "topic/topic.h"

namespace coremq::broker {

namespace {
// A SUBSCRIBE entry is at least 4 bytes (length, one filter byte, options), so the
// packet size bounds the count; this caps the scratch array for huge packet limits.
constexpr size_t kTopicsPerPacketMax = 16384;
size_t topics_per_packet_max(uint32_t max_packet_size) {
  return std::min<size_t>(kTopicsPerPacketMax, max_packet_size / 4 + 1);
}
}  // namespace

bool ShardState::handle_subscribe(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  if (subscribe_scratch_.empty()) subscribe_scratch_.resize(topics_per_packet_max(options_.max_packet_size));
  mqtt::SubscribePacket subscribe;
  mqtt::DecodeStatus status =
      mqtt::decode_subscribe(body, flags, connection->version, subscribe_scratch_, &subscribe);
  if (status != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, absl::StrFormat("bad SUBSCRIBE: %s", mqtt::decode_status_name(status)));
    return false;
  }
  Session* session = connection->session;
  suback_scratch_.clear();
  for (const mqtt::SubscribeTopic& entry : subscribe.topics) {
    if (!topic::is_valid_topic_filter(entry.filter)) {
      LOG_INFO("client '%s' subscribed to invalid filter '%s': refused", session->client_id, entry.filter);
      suback_scratch_.push_back(mqtt::kSubackFailure);
      continue;
    }
    auto existing = session->subscriptions.find(entry.filter);
    if (existing == session->subscriptions.end() &&
        session->subscriptions.size() >= options_.max_subscriptions_per_session) {
      LOG_INFO("client '%s' is at --max-subscriptions-per-session=%u: '%s' refused", session->client_id,
               options_.max_subscriptions_per_session, entry.filter);
      suback_scratch_.push_back(mqtt::kSubackFailure);
      continue;
    }
    uint8_t granted = entry.qos;
    if (existing == session->subscriptions.end()) {
      session->subscriptions.emplace(std::string(entry.filter), granted);
    } else {
      existing->second = granted;  // MQTT-3.8.4-3: a repeated filter replaces the old subscription
    }
    if (subscriptions_.insert(entry.filter, session, granted).first_for_filter) add_local_interest(entry.filter);
    suback_scratch_.push_back(granted);
  }
  mqtt::encode_suback(connection->output, subscribe.packet_id, suback_scratch_);
  io_.request_flush(connection);

  // MQTT-3.3.1-6: retained messages matching each new subscription, after the SUBACK.
  for (size_t i = 0; i < subscribe.topics.size(); ++i) {
    uint8_t granted = suback_scratch_[i];
    if (granted == mqtt::kSubackFailure) continue;
    retained_.for_each_match(subscribe.topics[i].filter, [&](const MessageRef& message) {
      deliver_to_session(session, message, std::min(granted, message->qos()), /*retain_flag=*/true);
    });
  }
  return true;
}

bool ShardState::handle_unsubscribe(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  if (unsubscribe_scratch_.empty()) unsubscribe_scratch_.resize(topics_per_packet_max(options_.max_packet_size));
  mqtt::UnsubscribePacket unsubscribe;
  mqtt::DecodeStatus status =
      mqtt::decode_unsubscribe(body, flags, connection->version, unsubscribe_scratch_, &unsubscribe);
  if (status != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, absl::StrFormat("bad UNSUBSCRIBE: %s", mqtt::decode_status_name(status)));
    return false;
  }
  Session* session = connection->session;
  for (std::string_view filter : unsubscribe.filters) {
    auto existing = session->subscriptions.find(filter);
    if (existing == session->subscriptions.end()) continue;
    session->subscriptions.erase(existing);
    if (subscriptions_.remove(filter, session).last_for_filter) remove_local_interest(filter);
  }
  mqtt::encode_unsuback(connection->output, unsubscribe.packet_id);
  io_.request_flush(connection);
  return true;
}

void ShardState::add_local_interest(std::string_view filter) {
  for (uint32_t shard = 0; shard < shard_count_; ++shard) {
    if (shard == shard_id_) continue;
    io_.post(shard, CrossShardItem{CrossShardItem::Kind::kInterestAdd, shard_id_,
                                   new InterestChange{std::string(filter)}});
  }
}

void ShardState::remove_local_interest(std::string_view filter) {
  for (uint32_t shard = 0; shard < shard_count_; ++shard) {
    if (shard == shard_id_) continue;
    io_.post(shard, CrossShardItem{CrossShardItem::Kind::kInterestRemove, shard_id_,
                                   new InterestChange{std::string(filter)}});
  }
}

void ShardState::remove_all_subscriptions(Session* session) {
  for (const auto& [filter, qos] : session->subscriptions) {
    if (subscriptions_.remove(filter, session).last_for_filter) remove_local_interest(filter);
  }
  session->subscriptions.clear();
}

}  // namespace coremq::broker
