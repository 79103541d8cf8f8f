// Durable persistence, the protocol side (docs/PERSISTENCE.md): what a shard writes to its
// journal when retained messages and persistent sessions change, how it waits for the store
// before answers that promise durable state, and how it takes records back at start-up.
// Without a journal (--persistence=none) every function here returns at its first line.
// Runs on the owning shard's thread.
#include <algorithm>

#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "persist/records.h"
#include "persist/store.h"

namespace coremq::broker {

bool ShardState::journal_caught_up() const {
  return journal_ == nullptr || journal_->is_durable(journal_->batch_needed());
}

uint64_t ShardState::journal_batch_needed() const { return journal_ == nullptr ? 0 : journal_->batch_needed(); }

bool ShardState::journal_durable(uint64_t batch) const { return journal_ == nullptr || journal_->is_durable(batch); }

void ShardState::on_durable() {
  if (journal_ == nullptr) return;
  while (!deferred_barrier_acks_.empty() && journal_->is_durable(deferred_barrier_acks_.front().batch)) {
    DeferredBarrierAck deferred = deferred_barrier_acks_.front();
    deferred_barrier_acks_.pop_front();
    CrossShardItem ack{CrossShardItem::Kind::kBarrierAck, shard_id_};
    ack.sequence = deferred.sequence;
    io_.post(deferred.peer, ack);
  }
  if (!queues_held_for_store_.empty()) pump_queues_held_for_store();
  release_waiting_answers();
}

void ShardState::answer_barrier_request(uint32_t peer, uint64_t sequence) {
  // A peer's SUBACK or retained PUBACK waits for this ack; what this shard wrote because of the
  // peer's changes (the retained record of a topic it owns) must be durable before it goes.
  // Earlier deferred acks go first, so one peer's acks keep their order.
  if (journal_ != nullptr && (!deferred_barrier_acks_.empty() || !journal_caught_up())) {
    deferred_barrier_acks_.push_back(DeferredBarrierAck{peer, sequence, journal_->batch_needed()});
    return;
  }
  CrossShardItem ack{CrossShardItem::Kind::kBarrierAck, shard_id_};
  ack.sequence = sequence;
  io_.post(peer, ack);
}

void ShardState::journal_retained(const MessageRef& message, RetainedStore::Update update) {
  COREMQ_ASSERT(journal_ != nullptr);
  if (owner_shard_of(message->topic(), shard_count_) != shard_id_) return;
  // $SYS/ topics are the broker's own figures, published again at every interval of the new
  // run: stored, they would come back stale (an old uptime) until then.
  if (message->topic().starts_with("$SYS/")) return;
  switch (update) {
    case RetainedStore::Update::kStored:
    case RetainedStore::Update::kReplaced: {
      persist::RetainedRecord record;
      record.qos = message->qos();
      record.stamp = message->retain_stamp();
      record.expires_at_unix_ms = message->expires_at_ms() == 0 ? 0 : message->expires_at_ms() + unix_offset_ms_;
      // The bytes are copied into the batch by encode; the record's strings are the scratch.
      record.payload.assign(message->payload());
      record.property_bytes.assign(message->property_bytes());
      persist::encode_retained(record, &record_scratch_);
      journal_->put(persist::retained_key(message->topic()), record_scratch_);
      break;
    }
    case RetainedStore::Update::kCleared:
      journal_->erase(persist::retained_key(message->topic()));
      break;
    case RetainedStore::Update::kStale:
    case RetainedStore::Update::kLimitReached:
      break;
  }
}

void ShardState::journal_session(Session* session) {
  if (journal_ == nullptr) return;
  if (session->expiry_seconds == 0) {
    // No longer persistent (a reconnect with expiry 0): it ends with its connection.
    journal_session_gone(session);
    return;
  }
  if (!session->persisted && store_full_) {
    ++counters_.store_full_refusals;
    LOG_WARNING_LIMITED("session of client '%s' kept in memory only: the store is over --persistence-max-mb",
                        session->client_id);
    return;
  }
  // Numbered when first stored: the short prefix of its outgoing and incoming QoS 2 keys.
  if (!session->persisted) session->store_number = journal_->next_session_number();
  persist::SessionRecord record;
  record.session_number = session->store_number;
  record.expiry_seconds = session->expiry_seconds;
  record.will_delay_seconds = session->will_delay_seconds;
  record.disconnected_at_unix_ms = session->connection == nullptr ? io_.now_ms() + unix_offset_ms_ : 0;
  // While connected the will is kept (a crash ends the connection); once disconnected only a
  // will still waiting for its delay.
  if (session->will != nullptr && (session->connection != nullptr || session->will_pending)) {
    const WillMessage& will = *session->will;
    persist::WillRecord& stored = record.will.emplace();
    stored.topic = will.topic;
    stored.payload = will.payload;
    stored.property_bytes = will.property_bytes;
    stored.message_expiry_seconds = will.message_expiry_seconds;
    stored.qos = will.qos;
    stored.retain = will.retain;
  }
  record.subscriptions.reserve(session->subscriptions.size());
  for (const auto& [filter, options] : session->subscriptions) {
    persist::SubscriptionRecord& stored = record.subscriptions.emplace_back();
    stored.filter = filter;
    stored.qos = options.qos;
    stored.no_local = options.no_local;
    stored.retain_as_published = options.retain_as_published;
    stored.retain_handling = options.retain_handling;
    stored.identifier = options.identifier;
  }
  persist::encode_session(record, &record_scratch_);
  journal_->put(persist::session_key(session->client_id), record_scratch_);
  if (!session->persisted) {
    session->persisted = true;
    journal_existing_outgoing(session);
  }
}

void ShardState::journal_session_gone(Session* session) {
  if (journal_ == nullptr || !session->persisted) return;
  journal_->erase(persist::session_key(session->client_id));
  // Its messages and QoS 2 ids: one range each, whatever their number.
  release_stored_outgoing(session);
  auto [outgoing_begin, outgoing_end] = persist::outgoing_range(session->store_number);
  journal_->erase_range(outgoing_begin, outgoing_end);
  auto [incoming_begin, incoming_end] = persist::incoming_qos2_range(session->store_number);
  journal_->erase_range(incoming_begin, incoming_end);
  session->persisted = false;
  session->store_number = 0;
}

void ShardState::restore_retained(const MessageRef& message) {
  COREMQ_ASSERT(connections_.empty());
  retain_clock_ = std::max(retain_clock_, message->retain_stamp() >> 8);
  // Every copy takes every record; the limits were decided when the messages were taken.
  (void)retained_.update(message, io_.now_ms());
}

void ShardState::restore_session(const persist::LoadedSession& loaded, const RestoredBodies& bodies) {
  const persist::SessionRecord& record = loaded.record;
  COREMQ_ASSERT(connections_.empty());
  COREMQ_ASSERT(owner_shard_of(record.client_id, shard_count_) == shard_id_);
  if (find_session(record.client_id) != nullptr) return;
  if (sessions_.size() >= options_.max_sessions) {
    // The same bound as for a CONNECT; the record stays in the store for a larger setting.
    ++counters_.sessions_refused_limit;
    LOG_WARNING_LIMITED("stored session of client '%s' not loaded: this shard holds --max-sessions=%u",
                        record.client_id, options_.max_sessions);
    return;
  }
  auto created = std::make_unique<Session>();
  Session* session = created.get();
  session->client_id = record.client_id;
  sessions_.emplace(std::string_view(session->client_id), std::move(created));
  session->expiry_seconds = record.expiry_seconds;
  session->will_delay_seconds = record.will_delay_seconds;
  session->persisted = true;
  COREMQ_ASSERT_MSG(record.session_number != 0, "Store::load numbers every session");
  session->store_number = record.session_number;
  session->timer_generation = ++timer_generation_last_;
  for (const persist::SubscriptionRecord& stored : record.subscriptions) {
    SubscriptionOptions options;
    options.qos = std::min(stored.qos, options_.maximum_qos);
    options.no_local = stored.no_local;
    options.retain_as_published = stored.retain_as_published;
    options.retain_handling = stored.retain_handling;
    options.identifier = stored.identifier;
    std::string_view filter = stored.filter;
    if (session->subscriptions.contains(filter)) continue;
    std::string_view shared_key, shared_filter;
    if (is_shared_filter(filter)) {
      if (!parse_shared_filter(filter, &shared_key, &shared_filter)) continue;
      session->subscriptions.emplace(std::string(filter), options);
      if (shared_.add_local(shared_key, shared_filter, session, options)) {
        post_interest(CrossShardItem::Kind::kInterestAdd, filter);
      }
    } else {
      if (!topic::is_valid_topic_filter(filter)) continue;
      session->subscriptions.emplace(std::string(filter), options);
      if (subscriptions_.insert(filter, session, options).first_for_filter) {
        post_interest(CrossShardItem::Kind::kInterestAdd, filter);
      }
    }
  }
  // The deadlines: from the disconnect the record names, or from now for a client that was
  // connected when the broker stopped (its connection ended with the broker).
  int64_t now = io_.now_ms();
  int64_t disconnected_at = record.disconnected_at_unix_ms == 0 ? now : record.disconnected_at_unix_ms - unix_offset_ms_;
  if (record.will) {
    session->will = std::make_unique<WillMessage>();
    WillMessage& will = *session->will;
    will.topic = record.will->topic;
    will.payload = record.will->payload;
    will.property_bytes = record.will->property_bytes;
    will.message_expiry_seconds = record.will->message_expiry_seconds;
    will.qos = record.will->qos;
    will.retain = record.will->retain;
    session->will_pending = true;
    uint32_t delay = std::min(session->will_delay_seconds, session->expiry_seconds);
    // Due at once (the first tick) if its time passed while the broker was down.
    schedule(std::max(now, disconnected_at + int64_t{delay} * 1000), /*is_will=*/true, session);
  }
  if (session->expiry_seconds != kSessionNeverExpires) {
    schedule(std::max(now, disconnected_at + int64_t{session->expiry_seconds} * 1000), /*is_will=*/false, session);
  }
  restore_outgoing(session, loaded, bodies);
  // A record written while the client was connected now says when its disconnect counted.
  if (record.disconnected_at_unix_ms == 0) journal_session(session);
}

void ShardState::restore_outgoing(Session* session, const persist::LoadedSession& loaded,
                                  const RestoredBodies& bodies) {
  // In sequence order: what was in flight is resent first (with DUP, or its PUBREL) when the
  // client comes back, then the queue, as before the restart.
  for (const persist::OutgoingRecord& entry : loaded.outgoing) {
    Delivery delivery;
    delivery.qos = entry.qos;
    delivery.retain_flag = entry.retain_flag;
    delivery.subscription_ids.assign(entry.subscription_ids.begin(), entry.subscription_ids.end());
    delivery.shared_group = entry.shared_group;
    MessageRef message;
    if (entry.state != persist::OutgoingState::kPubrelSent) {
      auto body = bodies.find(entry.body_id);
      COREMQ_ASSERT_MSG(body != bodies.end(), "Store::load hands over every body a record names");
      message = body->second;
      auto [stored, made] = stored_bodies_.try_emplace(message.get(), StoredBody{entry.body_id, 0});
      COREMQ_ASSERT(stored->second.id == entry.body_id);
      if (made) stored_body_bytes_ += message->memory_size();
      ++stored->second.references;
    }
    session->last_store_sequence = std::max(session->last_store_sequence, entry.sequence);
    if (entry.state == persist::OutgoingState::kQueued) {
      session->queue.push_back(QueuedDelivery{std::move(delivery), std::move(message), entry.sequence});
    } else {
      bool pubrel = entry.state == persist::OutgoingState::kPubrelSent;
      session->inflight.push_back(
          OutgoingInflight{entry.packet_id, pubrel, false, std::move(delivery), std::move(message), entry.sequence});
      session->last_packet_id = entry.packet_id;
    }
  }
  if (!loaded.incoming_qos2.empty()) {
    session->incoming_qos2 = std::make_unique<absl::flat_hash_set<uint16_t>>(loaded.incoming_qos2.begin(),
                                                                             loaded.incoming_qos2.end());
  }
}

}  // namespace coremq::broker
