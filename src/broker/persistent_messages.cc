// Durable persistence of what persistent sessions owe their clients (docs/PERSISTENCE.md
// "Queued and in-flight messages"): every QoS 1/2 message queued for or sent to a persistent
// session has a record (Q + client id + sequence) naming its state and a body record
// (B + id) that every session of this shard holding the same message shares, counted here and
// deleted with its last reference; QoS 2 packet ids received from a persistent session's client
// wait for their PUBREL in records of their own (I + client id + id). Runs on the owning
// shard's thread; every function returns at once without a journal.
#include "base/assert.h"
#include "broker/shard_state.h"
#include "persist/records.h"
#include "persist/store.h"

namespace coremq::broker {

namespace {

persist::OutgoingRecord outgoing_record(const Delivery& delivery) {
  persist::OutgoingRecord record;
  record.qos = delivery.qos;
  record.retain_flag = delivery.retain_flag;
  record.subscription_ids.assign(delivery.subscription_ids.begin(), delivery.subscription_ids.end());
  record.shared_group = delivery.shared_group;
  return record;
}

}  // namespace

uint64_t ShardState::hold_body(const MessageRef& message) {
  auto [found, made] = stored_bodies_.try_emplace(message.get());
  StoredBody& body = found->second;
  if (made) {
    body.id = journal_->next_body_id();
    persist::BodyRecord record;
    record.qos = message->qos();
    record.retain = message->retain();
    record.expires_at_unix_ms = message->expires_at_ms() == 0 ? 0 : message->expires_at_ms() + unix_offset_ms_;
    record.topic.assign(message->topic());
    record.payload.assign(message->payload());
    record.property_bytes.assign(message->property_bytes());
    persist::encode_body(record, &record_scratch_);
    journal_->create(persist::body_key(body.id), record_scratch_);
    stored_body_bytes_ += message->memory_size();
  }
  ++body.references;
  return body.id;
}

void ShardState::release_body(const Message* message) {
  auto found = stored_bodies_.find(message);
  COREMQ_ASSERT_MSG(found != stored_bodies_.end(), "a stored message without its body");
  if (--found->second.references > 0) return;
  journal_->erase(persist::body_key(found->second.id));
  stored_body_bytes_ -= message->memory_size();
  stored_bodies_.erase(found);
}

void ShardState::journal_outgoing(Session* session, uint64_t* sequence, const MessageRef& message,
                                  const Delivery& delivery, uint16_t packet_id) {
  if (!stores_outgoing(session, delivery.qos)) return;
  persist::OutgoingRecord record = outgoing_record(delivery);
  bool created = *sequence == 0;
  if (created) {
    *sequence = ++session->last_store_sequence;
    record.body_id = hold_body(message);
  } else {
    record.body_id = stored_bodies_.at(message.get()).id;
  }
  record.state = packet_id == 0 ? persist::OutgoingState::kQueued : persist::OutgoingState::kPublishSent;
  record.packet_id = packet_id;
  persist::encode_outgoing(record, &record_scratch_);
  // Created: acknowledged before its batch leaves, it never reaches the store (ShardJournal).
  if (created) {
    journal_->create(persist::outgoing_key(session->client_id, *sequence), record_scratch_);
  } else {
    journal_->put(persist::outgoing_key(session->client_id, *sequence), record_scratch_);
  }
}

void ShardState::journal_pubrel_sent(Session* session, OutgoingInflight& inflight) {
  if (inflight.store_sequence == 0) return;
  persist::OutgoingRecord record = outgoing_record(inflight.delivery);
  record.state = persist::OutgoingState::kPubrelSent;
  record.packet_id = inflight.packet_id;
  persist::encode_outgoing(record, &record_scratch_);
  journal_->put(persist::outgoing_key(session->client_id, inflight.store_sequence), record_scratch_);
  if (inflight.message) release_body(inflight.message.get());
}

void ShardState::journal_outgoing_done(uint64_t* sequence, const Session* session, const Message* message) {
  if (*sequence == 0) return;
  journal_->erase(persist::outgoing_key(session->client_id, *sequence));
  if (message != nullptr) release_body(message);
  *sequence = 0;
}

void ShardState::release_stored_outgoing(Session* session) {
  if (journal_ == nullptr) return;
  for (size_t i = 0; i < session->inflight.size(); ++i) {
    OutgoingInflight& inflight = session->inflight[i];
    if (inflight.store_sequence != 0 && inflight.message) release_body(inflight.message.get());
    inflight.store_sequence = 0;
  }
  for (size_t i = 0; i < session->queue.size(); ++i) {
    QueuedDelivery& queued = session->queue[i];
    if (queued.store_sequence != 0) release_body(queued.message.get());
    queued.store_sequence = 0;
  }
}

void ShardState::journal_existing_outgoing(Session* session) {
  COREMQ_ASSERT(session->persisted);
  for (size_t i = 0; i < session->inflight.size(); ++i) {
    OutgoingInflight& inflight = session->inflight[i];
    if (inflight.store_sequence != 0) continue;
    if (inflight.pubrec_received) {
      inflight.store_sequence = ++session->last_store_sequence;
      journal_pubrel_sent(session, inflight);  // no body: the message was dropped at PUBREC
    } else {
      journal_outgoing(session, &inflight.store_sequence, inflight.message, inflight.delivery, inflight.packet_id);
    }
  }
  for (size_t i = 0; i < session->queue.size(); ++i) {
    QueuedDelivery& queued = session->queue[i];
    if (queued.store_sequence == 0) {
      journal_outgoing(session, &queued.store_sequence, queued.message, queued.delivery, 0);
    }
  }
  if (session->incoming_qos2 != nullptr) {
    for (uint16_t packet_id : *session->incoming_qos2) journal_incoming_qos2(session, packet_id, true);
  }
}

void ShardState::hold_queue_for_store(Session* session) {
  if (journal_->is_durable(journal_->batch_needed())) return;
  if (session->send_after_batch == 0) queues_held_for_store_.push_back(session->client_id);
  session->send_after_batch = journal_->batch_needed();
}

void ShardState::pump_queues_held_for_store() {
  // A session may have ended (or been replaced) meanwhile: looked up by client id.
  size_t kept = 0;
  for (size_t i = 0; i < queues_held_for_store_.size(); ++i) {
    Session* session = find_session(queues_held_for_store_[i]);
    if (session == nullptr || session->send_after_batch == 0) continue;
    if (!journal_->is_durable(session->send_after_batch)) {
      queues_held_for_store_[kept++] = std::move(queues_held_for_store_[i]);
      continue;
    }
    // Offline: send_after_batch stays set (durable now), so the client's return sends what
    // waited (pump_queue, after resume_session's resends).
    pump_queue(session);
  }
  queues_held_for_store_.resize(kept);
}

void ShardState::journal_incoming_qos2(Session* session, uint16_t packet_id, bool received) {
  if (journal_ == nullptr || !session->persisted) return;
  std::string key = persist::incoming_qos2_key(session->client_id, packet_id);
  if (received) {
    journal_->create(key, persist::incoming_qos2_value());
  } else {
    journal_->erase(key);
  }
}

}  // namespace coremq::broker
