// Routing and delivery of one message: match this shard's subscribers, forward to the
// shards whose routing view says they have matching subscribers, and put the message
// to each matching session at the highest matching QoS (once per session), straight
// onto the connection, into the in-flight window, or into the session's queue.
// Runs on the shard that owns the sessions.
#include <algorithm>

#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "mqtt/encoder.h"

namespace coremq::broker {

void ShardState::publish_from_here(MessageRef message) {
  if (message->retain()) {
    if (retained_.update(message) == RetainedStore::Update::kLimitReached) {
      ++counters_.retained_dropped_limit;
      LOG_WARNING("retained message on '%s' not stored: --max-retained-messages=%u reached", message->topic(),
                  options_.max_retained_messages);
    }
  }
  deliver_locally(message);
  if (shard_count_ == 1) return;

  // A retained message goes to every shard (each keeps a full copy of the retained
  // store); any other only to shards that have a matching subscriber.
  uint64_t epoch = ++match_epoch_;
  auto forward = [&](uint32_t shard) {
    if (shard == shard_id_ || shard_match_epoch_[shard] == epoch) return;
    shard_match_epoch_[shard] = epoch;
    MessageRef copy = message;
    io_.post(shard, CrossShardItem{CrossShardItem::Kind::kPublish, shard_id_, copy.release()});
    ++counters_.messages_forwarded_to_shards;
  };
  if (message->retain()) {
    for (uint32_t shard = 0; shard < shard_count_; ++shard) forward(shard);
  } else {
    remote_interest_.match(message->topic(), [&](uint32_t shard, uint8_t) { forward(shard); });
  }
}

void ShardState::deliver_locally(const MessageRef& message) {
  uint64_t epoch = ++match_epoch_;
  match_scratch_.clear();
  subscriptions_.match(message->topic(), [&](Session* session, uint8_t granted_qos) {
    if (session->match_epoch != epoch) {
      session->match_epoch = epoch;
      session->match_slot = static_cast<uint32_t>(match_scratch_.size());
      match_scratch_.push_back(Match{session, granted_qos});
    } else {
      uint8_t& qos = match_scratch_[session->match_slot].qos;
      qos = std::max(qos, granted_qos);
    }
  });
  for (const Match& match : match_scratch_) {
    deliver_to_session(match.session, message, std::min(match.qos, message->qos()), /*retain_flag=*/false);
  }
}

bool ShardState::output_over_limit(const Connection* connection) const {
  return connection->output.size() + connection->sending.size() >= options_.max_client_output_bytes;
}

void ShardState::deliver_to_session(Session* session, const MessageRef& message, uint8_t qos, bool retain_flag) {
  Connection* connection = session->connection;
  if (qos == 0) {
    if (connection == nullptr) {
      ++counters_.qos0_dropped_offline;
      return;
    }
    if (!session->queue.empty()) {
      enqueue(session, message, qos, retain_flag);  // behind what already waits, to keep order
      return;
    }
    if (output_over_limit(connection)) {
      ++counters_.qos0_dropped_slow_consumer;
      return;
    }
    send_publish(session, message, 0, retain_flag, /*dup=*/false, 0);
    return;
  }
  if (connection != nullptr && session->queue.empty() && session->inflight.size() < options_.max_inflight) {
    start_inflight(session, message, qos, retain_flag);
    return;
  }
  enqueue(session, message, qos, retain_flag);
}

void ShardState::start_inflight(Session* session, const MessageRef& message, uint8_t qos, bool retain_flag) {
  uint16_t packet_id = next_packet_id(session);
  session->inflight.push_back(OutgoingInflight{packet_id, qos, false, retain_flag, message});
  send_publish(session, message, qos, retain_flag, /*dup=*/false, packet_id);
}

void ShardState::send_publish(Session* session, const MessageRef& message, uint8_t qos, bool retain_flag, bool dup,
                              uint16_t packet_id) {
  Connection* connection = session->connection;
  COREMQ_ASSERT(connection != nullptr);
  std::string_view payload = message->payload();
  mqtt::encode_publish_header(connection->output, message->topic(), qos, retain_flag, dup, packet_id, payload.size());
  connection->output.append(payload);
  ++counters_.messages_delivered;
  io_.request_flush(connection);
}

void ShardState::enqueue(Session* session, const MessageRef& message, uint8_t qos, bool retain_flag) {
  auto& queue = session->queue;
  if (queue.size() >= options_.max_queued_messages) {
    // Full: the oldest QoS 0 message makes room; with none to drop, the new message is dropped.
    size_t oldest_qos0 = queue.size();
    for (size_t i = 0; session->queued_qos0 > 0 && i < queue.size(); ++i) {
      if (queue[i].qos == 0) {
        oldest_qos0 = i;
        break;
      }
    }
    ++counters_.messages_dropped_queue_full;
    if (oldest_qos0 == queue.size()) {
      LOG_DEBUG("client '%s': queue full (--max-queued-messages=%u), dropping a QoS %u message on '%s'",
                session->client_id, options_.max_queued_messages, qos, message->topic());
      return;
    }
    queue.erase(oldest_qos0);
    --session->queued_qos0;
  }
  if (qos == 0) ++session->queued_qos0;
  queue.push_back(QueuedDelivery{qos, retain_flag, message});
}

void ShardState::pump_queue(Session* session) {
  Connection* connection = session->connection;
  if (connection == nullptr || connection->state != ConnectionState::kConnected) return;
  auto& queue = session->queue;
  while (!queue.empty()) {
    QueuedDelivery& front = queue.front();
    if (front.qos == 0) {
      if (output_over_limit(connection)) return;  // resumes on on_output_drained
      send_publish(session, front.message, 0, front.retain_flag, /*dup=*/false, 0);
      --session->queued_qos0;
    } else {
      if (session->inflight.size() >= options_.max_inflight) return;  // resumes on the next ack
      start_inflight(session, front.message, front.qos, front.retain_flag);
    }
    queue.pop_front();
  }
}

uint16_t ShardState::next_packet_id(Session* session) {
  // Ids increase and wrap, skipping 0 and any id still in flight; the window is bounded
  // by --max-inflight, so the scan is short.
  COREMQ_ASSERT(session->inflight.size() < 65535);
  for (;;) {
    uint16_t candidate = ++session->last_packet_id;
    if (candidate == 0) continue;
    bool in_use = false;
    for (size_t i = 0; i < session->inflight.size(); ++i) in_use |= session->inflight[i].packet_id == candidate;
    if (!in_use) return candidate;
  }
}

}  // namespace coremq::broker
