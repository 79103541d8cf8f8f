// Routing and delivery of one message: match this shard's subscribers, forward to the
// shards whose routing view says they have matching subscribers, pick one member of
// each matching shared group, and put the message to each matching session once, at
// the highest matching QoS with every matching Subscription Identifier: straight onto
// the connection, into the in-flight window, or into the session's queue.
// Runs on the shard that owns the sessions.
#include <algorithm>
#include <cstring>

#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "mqtt/encoder.h"
#include "mqtt/properties.h"

namespace coremq::broker {

namespace {
// Shared-group messages may be re-forwarded when the chosen shard lost its members in
// the meantime; this bounds the chase.
constexpr uint32_t kSharedHopsMax = 4;

size_t variable_integer_size(uint32_t value) { return mqtt::remaining_length_size(value); }
}  // namespace

void ShardState::publish_from_here(MessageRef message) {
  if (message->retain()) update_retained(message, /*from_here=*/true);
  deliver_locally(message);
  uint64_t forwarded_before = counters_.messages_forwarded_to_shards;
  // --persistence: a QoS 1/2 message another shard takes may be queued there for a persistent
  // session; its acknowledgement waits for the barrier, which that shard answers once its
  // batch is durable (answer_barrier_request).
  auto note_durable_forward = [&] {
    if (journal_ != nullptr && message->qos() > 0 && counters_.messages_forwarded_to_shards != forwarded_before) {
      note_change_posted();
    }
  };
  // Exactly one member of each matching shared group gets it; the choice is made here,
  // on the shard where the message entered.
  shared_.match(message->topic(), [&](SharedSubscriptions::Group& group) { dispatch_shared(message, group, 0); });
  if (shard_count_ == 1) return;

  // To the shards that have a matching subscriber.
  uint64_t epoch = ++match_epoch_;
  auto forward = [&](uint32_t shard) {
    if (shard == shard_id_ || shard_match_epoch_[shard] == epoch) return;
    shard_match_epoch_[shard] = epoch;
    MessageRef copy = message;
    io_.post(shard, CrossShardItem{CrossShardItem::Kind::kPublish, shard_id_, copy.release()});
    ++counters_.messages_forwarded_to_shards;
  };
  remote_interest_.match(message->topic(), [&](uint32_t shard, uint8_t) { forward(shard); });
  note_durable_forward();
}

uint64_t ShardState::next_retain_stamp() {
  // A Lamport clock: above every stamp this shard has seen, with the shard id as the
  // tie-break, so all shards order concurrent updates the same way (RetainedStore).
  return (++retain_clock_ << 8) | shard_id_;
}

void ShardState::update_retained(const MessageRef& message, bool from_here) {
  retain_clock_ = std::max(retain_clock_, message->retain_stamp() >> 8);
  if (from_here && !retained_.admits(*message)) {
    // The limit is decided here, once: a refused message goes to no copy, so the copies
    // agree whatever order they receive other shards' updates in (RetainedStore).
    ++counters_.retained_dropped_limit;
    LOG_WARNING_LIMITED("retained message on '%s' not stored: --max-retained-messages=%u reached", message->topic(),
                        options_.max_retained_messages);
    return;
  }
  if (from_here && store_full_ && !message->payload().empty()) {
    // --persistence-max-mb: as at --max-retained-messages, the message goes to no copy.
    ++counters_.store_full_refusals;
    LOG_WARNING_LIMITED("retained message on '%s' not stored: the store is over --persistence-max-mb",
                        message->topic());
    return;
  }
  uint64_t evicted_before = retained_.tombstones_evicted();
  RetainedStore::Update update = retained_.update(message, io_.now_ms());
  if (journal_ != nullptr) journal_retained(message, update);
  if (update == RetainedStore::Update::kLimitReached) {
    ++counters_.retained_dropped_hard_limit;
    LOG_WARNING_LIMITED("retained message on '%s' not stored: this shard's copy holds %u, twice "
                        "--max-retained-messages=%u (new topics taken on many shards at once)",
                        message->topic(), retained_.size(), options_.max_retained_messages);
  }
  if (retained_.tombstones_evicted() != evicted_before) {
    counters_.retained_tombstones_evicted += retained_.tombstones_evicted() - evicted_before;
    LOG_INFO_LIMITED("retained store: over %u cleared topics remembered, the oldest forgotten early",
                     options_.max_retained_messages);
  }
  if (!from_here) return;
  if (shard_count_ > 1) note_change_posted();
  // Straight to every shard's copy: one hop, so a subscriber anywhere sees it as soon as
  // it would see a live message.
  for (uint32_t shard = 0; shard < shard_count_; ++shard) {
    if (shard == shard_id_) continue;
    MessageRef copy = message;
    io_.post(shard, CrossShardItem{CrossShardItem::Kind::kRetainUpdate, shard_id_, copy.release()});
  }
}

void ShardState::deliver_locally(const MessageRef& message) {
  uint64_t epoch = ++match_epoch_;
  match_scratch_.clear();
  const void* publisher = message->origin().shard == shard_id_ ? message->origin().session : nullptr;
  subscriptions_.match(message->topic(), [&](Session* session, const SubscriptionOptions& options) {
    if (options.no_local && session == publisher) return;  // MQTT-3.8.3-3
    if (session->match_epoch != epoch) {
      session->match_epoch = epoch;
      session->match_slot = static_cast<uint32_t>(match_scratch_.size());
      match_scratch_.push_back(Match{session, Delivery{}});
    }
    Delivery& delivery = match_scratch_[session->match_slot].delivery;
    delivery.qos = std::max(delivery.qos, options.qos);
    delivery.retain_flag |= options.retain_as_published && message->retain();
    if (options.identifier != 0) delivery.subscription_ids.push_back(options.identifier);
  });
  for (Match& match : match_scratch_) {
    match.delivery.qos = std::min(match.delivery.qos, message->qos());
    deliver_to_session(match.session, message, std::move(match.delivery));
  }
}

void ShardState::dispatch_shared(const MessageRef& message, SharedSubscriptions::Group& group, uint32_t hops) {
  // Candidates: this shard (if it has members) and every shard that told us it has some.
  size_t local = group.local_members.empty() ? 0 : 1;
  size_t count = local + group.remote_shards.size();
  if (count == 0) return;
  size_t choice = group.next_shard++ % count;
  if (choice < local) {
    deliver_shared_locally(message, group, hops);
    return;
  }
  uint32_t shard = group.remote_shards[choice - local];
  auto* shared = new SharedDelivery{message, group.key, hops};
  io_.post(shard, CrossShardItem{CrossShardItem::Kind::kSharedPublish, shard_id_, shared});
  ++counters_.messages_forwarded_to_shards;
}

void ShardState::deliver_shared_locally(const MessageRef& message, SharedSubscriptions::Group& group,
                                        uint32_t hops) {
  const SharedSubscriptions::Member* member = shared_.pick_local_member(group);
  // A member whose ACL may not read the topic is passed over for the next one (Mosquitto
  // drops the message when its round robin lands on such a member).
  for (size_t tries = group.local_members.size(); member != nullptr && tries > 1; --tries) {
    if (may_receive(member->session, message->topic())) break;
    member = shared_.pick_local_member(group);
  }
  if (member == nullptr) {
    // The members here left since the publishing shard chose us: try another shard.
    if (hops < kSharedHopsMax && !group.remote_shards.empty()) dispatch_shared(message, group, hops);
    return;
  }
  Delivery delivery;
  delivery.qos = std::min(member->options.qos, message->qos());
  delivery.retain_flag = member->options.retain_as_published && message->retain();
  if (member->options.identifier != 0) delivery.subscription_ids.push_back(member->options.identifier);
  delivery.shared_group = group.key;
  deliver_to_session(member->session, message, std::move(delivery));
}

bool ShardState::output_over_limit(const Connection* connection) const {
  return connection->unsent_output_bytes() >= options_.max_client_output_bytes;
}

uint32_t ShardState::send_window(const Session* session) const {
  const Connection* connection = session->connection;
  uint32_t window = connection != nullptr && connection->own_inflight_window ? 65535 : options_.max_inflight;
  if (connection != nullptr) window = std::min<uint32_t>(window, connection->client_receive_maximum);
  return window;
}

bool ShardState::exceeds_client_packet_limit(const Connection* connection, const Message& message,
                                             const Delivery& delivery) const {
  uint32_t limit = connection->client_maximum_packet_size;
  if (limit == 0) return false;
  // The largest form this PUBLISH can take for this client (a topic alias can only shorten it).
  size_t properties = message.property_bytes().size();
  if (message.expires_at_ms() != 0) properties += 5;
  for (uint32_t id : delivery.subscription_ids) properties += 1 + variable_integer_size(id);
  if (connection->client_topic_alias_maximum > 0) properties += 3;
  return mqtt::publish_packet_size_v5(message.topic(), delivery.qos, properties, message.payload().size()) > limit;
}

void ShardState::deliver_to_session(Session* session, const MessageRef& message, Delivery delivery) {
  Connection* connection = session->connection;
  // Read access, checked for every delivery (live, shared or retained) as Mosquitto does: a
  // subscription to '#' receives only what the ACL lets the client read.
  if (!may_receive(session, message->topic())) {
    ++counters_.acl_deliveries_denied;
    LOG_DEBUG("client '%s' may not read '%s' (ACL file or authorization hook): not delivered", session->client_id,
              message->topic());
    report_dropped(session, message->topic(), delivery.qos, DropReason::kReceiveDenied);
    return;
  }
  if (message->expired(io_.now_ms())) {
    report_dropped(session, message->topic(), delivery.qos, DropReason::kExpired);
    return;
  }
  if (connection != nullptr && exceeds_client_packet_limit(connection, *message, delivery)) {
    // MQTT-3.1.2-25: larger than the client's Maximum Packet Size: dropped for this client.
    ++counters_.messages_dropped_queue_full;
    report_dropped(session, message->topic(), delivery.qos, DropReason::kOverClientMaximum);
    return;
  }
  if (delivery.qos == 0) {
    if (connection == nullptr) {
      ++counters_.qos0_dropped_offline;
      report_dropped(session, message->topic(), 0, DropReason::kOffline);
      return;
    }
    if (!session->queue.empty() || session->send_after_batch != 0) {
      enqueue(session, message, std::move(delivery));  // behind what already waits, to keep order
      return;
    }
    if (output_over_limit(connection)) {
      ++counters_.qos0_dropped_slow_consumer;
      report_dropped(session, message->topic(), 0, DropReason::kSlowConsumer);
      return;
    }
    send_publish(session, message, delivery, /*dup=*/false, 0);
    return;
  }
  // Behind a QoS 2 PUBLISH that waits for its record (Session::send_after_batch), in the queue.
  if (connection != nullptr && session->queue.empty() && session->send_after_batch == 0 &&
      session->inflight.size() < send_window(session)) {
    start_inflight(session, message, std::move(delivery));
    return;
  }
  enqueue(session, message, std::move(delivery));
}

void ShardState::start_inflight(Session* session, const MessageRef& message, Delivery delivery,
                                uint64_t store_sequence) {
  uint16_t packet_id = next_packet_id(session);
  session->inflight.push_back(OutgoingInflight{packet_id, false, false, std::move(delivery), message, store_sequence});
  OutgoingInflight& inflight = session->inflight.back();
  // --persistence: the record says sent with this packet id, so a restart resends it with DUP.
  journal_outgoing(session, &inflight.store_sequence, &inflight.delivery.store_slot, message, inflight.delivery, packet_id);
  if (inflight.delivery.qos == 2 && inflight.store_sequence != 0) [[unlikely]] {
    // A QoS 2 PUBLISH leaves once that record is durable: sent earlier, a crash could forget a
    // message the client has (or restore it as queued, to go out with a new packet id), and the
    // client would take the next copy for a new message. pump_queue sends it (on_durable).
    inflight.awaiting_store = true;
    hold_queue_for_store(session);
    return;
  }
  send_publish(session, message, inflight.delivery, /*dup=*/false, packet_id);
}

template <typename Encode>
void ShardState::encode_publish_header_cached(base::ByteBuffer& out, const MessageRef& message, uint8_t form,
                                              uint16_t packet_id, size_t property_block_size, Encode&& encode) {
  PublishHeaderCache& cache = header_cache_;
  if (cache.message.get() == message.get() && cache.form == form) {
    uint8_t* at = out.grow(cache.size);
    std::memcpy(at, cache.bytes.data(), cache.size);
    if (cache.packet_id_at != 0) {
      at[cache.packet_id_at] = static_cast<uint8_t>(packet_id >> 8);
      at[cache.packet_id_at + 1] = static_cast<uint8_t>(packet_id);
    }
    return;
  }
  size_t start = out.size();
  encode(out);
  size_t size = out.size() - start;
  if (size > cache.bytes.size()) return;  // a long topic: encoded each time
  cache.message = message;
  cache.form = form;
  cache.size = static_cast<uint8_t>(size);
  cache.packet_id_at = (form & 3) != 0 ? static_cast<uint8_t>(size - 2 - property_block_size) : 0;
  std::memcpy(cache.bytes.data(), out.data() + start, size);
}

void ShardState::send_publish(Session* session, const MessageRef& message, const Delivery& delivery, bool dup,
                              uint16_t packet_id) {
  Connection* connection = session->connection;
  COREMQ_ASSERT(connection != nullptr);
  // Live deliveries only: a redelivery or a retained message sent at subscribe is not
  // publish-to-deliver latency.
  if (message->ingress_us() != 0 && !dup && !delivery.retain_flag) {
    int64_t latency_us = std::max<int64_t>(0, turn_time_us_ - message->ingress_us());
    delivery_latency_us_.observe(static_cast<uint64_t>(latency_us));
  }
  std::string_view payload = message->payload();
  auto form = static_cast<uint8_t>(delivery.qos | (delivery.retain_flag ? 4 : 0));
  if (connection->version != mqtt::ProtocolVersion::kV5) {
    auto encode = [&](base::ByteBuffer& out) {
      mqtt::encode_publish_header(out, message->topic(), delivery.qos, delivery.retain_flag, dup, packet_id,
                                  payload.size());
    };
    if (dup) {
      encode(connection->output);  // a resend: rare, and never the same header twice
    } else {
      encode_publish_header_cached(connection->output, message, form, packet_id, 0, encode);
    }
  } else if (!dup && message->expires_at_ms() == 0 && delivery.subscription_ids.empty() &&
             connection->client_topic_alias_maximum == 0) {
    // Nothing of this hop's own: every such MQTT 5 subscriber gets the same header.
    std::string_view forwarded = message->property_bytes();
    auto forwarded_bytes = std::span(reinterpret_cast<const uint8_t*>(forwarded.data()), forwarded.size());
    size_t block_size = variable_integer_size(static_cast<uint32_t>(forwarded.size())) + forwarded.size();
    encode_publish_header_cached(connection->output, message, static_cast<uint8_t>(form | 8), packet_id, block_size,
                                 [&](base::ByteBuffer& out) {
                                   mqtt::encode_publish_header_v5(out, message->topic(), delivery.qos,
                                                                  delivery.retain_flag, false, packet_id,
                                                                  forwarded_bytes, payload.size());
                                 });
  } else {
    // This hop's properties, then the ones the publisher set (forwarded unchanged).
    base::ByteBuffer& properties = property_scratch_;
    properties.clear();
    if (message->expires_at_ms() != 0) {
      int64_t left_ms = std::max<int64_t>(0, message->expires_at_ms() - io_.now_ms());
      properties.append_u8(static_cast<uint8_t>(mqtt::PropertyId::kMessageExpiryInterval));
      properties.append_u32(static_cast<uint32_t>((left_ms + 999) / 1000));
    }
    for (uint32_t id : delivery.subscription_ids) {
      properties.append_u8(static_cast<uint8_t>(mqtt::PropertyId::kSubscriptionIdentifier));
      mqtt::encode_remaining_length(properties, id);
    }
    std::string_view topic = message->topic();
    if (connection->client_topic_alias_maximum > 0) {
      if (!connection->topic_aliases) connection->topic_aliases = std::make_unique<TopicAliases>();
      auto& outbound = connection->topic_aliases->outbound;
      auto known = outbound.find(topic);
      uint16_t alias = 0;
      if (known != outbound.end()) {
        alias = known->second;
        topic = std::string_view();  // the alias alone names the topic (section 3.3.2.3.4)
      } else if (outbound.size() < connection->client_topic_alias_maximum) {
        alias = static_cast<uint16_t>(outbound.size() + 1);
        outbound.emplace(std::string(topic), alias);
      }
      if (alias != 0) {
        properties.append_u8(static_cast<uint8_t>(mqtt::PropertyId::kTopicAlias));
        properties.append_u16(alias);
      }
    }
    properties.append(message->property_bytes());
    mqtt::encode_publish_header_v5(connection->output, topic, delivery.qos, delivery.retain_flag, dup, packet_id,
                                   properties.span(), payload.size());
  }
  stage_payload(connection, message, payload);
  ++counters_.messages_delivered;
  ++counters_.packets_sent;
  io_.request_flush(connection);
}

void ShardState::stage_payload(Connection* connection, const MessageRef& message, std::string_view payload) {
  uint32_t threshold = options_.payload_reference_min_bytes;
  if (!connection->payloads_by_reference || threshold == 0 || payload.size() < threshold) {
    connection->output.append(payload);
    return;
  }
  if (!connection->references) connection->references = std::make_unique<OutputReferences>();
  OutputReferences& references = *connection->references;
  if (references.pending.size() >= kPayloadReferencesPerSendMax) {
    // One send gathers at most 2 * this + 1 pieces (under the kernel's UIO_MAXIOV): the rest
    // of this turn's payloads for this client are copied, as small ones are.
    ++counters_.payload_references_over_bound;
    connection->output.append(payload);
    return;
  }
  references.pending.push_back(PayloadReference{static_cast<uint32_t>(connection->output.size()), message});
  references.pending_bytes += payload.size();
  ++counters_.payloads_sent_by_reference;
}

void ShardState::enqueue(Session* session, const MessageRef& message, Delivery delivery) {
  auto& queue = session->queue;
  if (queue.size() >= options_.max_queued_messages) {
    // Full: the oldest QoS 0 message makes room; with none to drop, the new message is dropped.
    size_t oldest_qos0 = queue.size();
    for (size_t i = 0; session->queued_qos0 > 0 && i < queue.size(); ++i) {
      if (queue[i].delivery.qos == 0) {
        oldest_qos0 = i;
        break;
      }
    }
    ++counters_.messages_dropped_queue_full;
    if (oldest_qos0 == queue.size()) {
      LOG_DEBUG("client '%s': queue full (--max-queued-messages=%u), dropping a QoS %u message on '%s'",
                session->client_id, options_.max_queued_messages, delivery.qos, message->topic());
      report_dropped(session, message->topic(), delivery.qos, DropReason::kQueueFull);
      return;
    }
    report_dropped(session, queue[oldest_qos0].message->topic(), 0, DropReason::kQueueFull);
    queue.erase(oldest_qos0);
    --session->queued_qos0;
  }
  if (delivery.qos == 0) ++session->queued_qos0;
  queue.push_back(QueuedDelivery{std::move(delivery), message});
  QueuedDelivery& queued = queue.back();
  journal_outgoing(session, &queued.store_sequence, &queued.delivery.store_slot, message, queued.delivery, 0);
}

void ShardState::pump_queue(Session* session) {
  Connection* connection = session->connection;
  if (connection == nullptr || connection->state != ConnectionState::kConnected) return;
  if (session->send_after_batch != 0) {
    if (!journal_durable(session->send_after_batch)) return;  // resumes on on_durable
    session->send_after_batch = 0;
    // The QoS 2 PUBLISHes whose records are now durable: the tail of the in-flight window.
    for (size_t i = 0; i < session->inflight.size(); ++i) {
      OutgoingInflight& inflight = session->inflight[i];
      if (!inflight.awaiting_store) continue;
      inflight.awaiting_store = false;
      send_publish(session, inflight.message, inflight.delivery, /*dup=*/false, inflight.packet_id);
    }
  }
  auto& queue = session->queue;
  int64_t now = io_.now_ms();
  while (!queue.empty() && session->send_after_batch == 0) {
    QueuedDelivery& front = queue.front();
    bool qos0 = front.delivery.qos == 0;
    if (front.message->expired(now) || exceeds_client_packet_limit(connection, *front.message, front.delivery)) {
      // MQTT-3.3.2-5: an expired message is not sent; nor one too large for this client.
      report_dropped(session, front.message->topic(), front.delivery.qos,
                     front.message->expired(now) ? DropReason::kExpired : DropReason::kOverClientMaximum);
      journal_outgoing_done(&front.store_sequence, &front.delivery.store_slot, session, front.message.get());
    } else if (qos0) {
      if (output_over_limit(connection)) return;  // resumes on on_output_drained
      send_publish(session, front.message, front.delivery, /*dup=*/false, 0);
    } else {
      if (session->inflight.size() >= send_window(session)) return;  // resumes on the next ack
      start_inflight(session, front.message, std::move(front.delivery), front.store_sequence);
    }
    if (qos0) --session->queued_qos0;
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
