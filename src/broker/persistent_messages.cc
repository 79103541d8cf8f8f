// Durable persistence of what persistent sessions owe their clients (docs/PERSISTENCE.md
// "Queued and in-flight messages"): every QoS 1/2 message queued for or sent to a persistent
// session has a record (q + session number + sequence) naming its state and a body record
// (B + id) that every session of this shard holding the same message shares, counted here and
// deleted with its last reference; QoS 2 packet ids received from a persistent session's client
// wait for their PUBREL in records of their own (i + session number + id). A new queue entry's
// record (and its body's) is written only when the open batch leaves, if the entry is still
// there: one acknowledged before costs nothing (write_deferred_records). Runs on the owning
// shard's thread; every function returns at once without a journal.
#include "base/assert.h"
#include "broker/shard_state.h"
#include "persist/records.h"
#include "persist/store.h"

namespace coremq::broker {

uint64_t ShardState::hold_body(const MessageRef& message) {
  auto [found, made] = stored_bodies_.try_emplace(message.get());
  StoredBody& body = found->second;
  if (made) {
    body.id = journal_->next_body_id();
    int64_t expires_at = message->expires_at_ms() == 0 ? 0 : message->expires_at_ms() + unix_offset_ms_;
    persist::encode_body_fields(message->topic(), message->payload(), message->property_bytes(), message->qos(),
                                message->retain(), expires_at, &record_scratch_);
    persist::body_key_into(body.id, &key_scratch_);
    journal_->create_tracked(key_scratch_, record_scratch_, &body.slot);
    stored_body_bytes_ += message->memory_size();
  }
  ++body.references;
  return body.id;
}

void ShardState::release_body(const Message* message) {
  auto found = stored_bodies_.find(message);
  COREMQ_ASSERT_MSG(found != stored_bodies_.end(), "a stored message without its body");
  if (--found->second.references > 0) return;
  persist::body_key_into(found->second.id, &key_scratch_);
  journal_->erase_tracked(key_scratch_, &found->second.slot);
  stored_body_bytes_ -= message->memory_size();
  stored_bodies_.erase(found);
}

void ShardState::journal_outgoing(Session* session, uint64_t* sequence, persist::JournalSlot* slot,
                                  const MessageRef& message, const Delivery& delivery, uint16_t packet_id) {
  if (!stores_outgoing(session, delivery.qos)) return;
  if (*sequence == 0) {
    // New: written when the open batch leaves, and only if still needed then. Most messages
    // to an online persistent session are acknowledged before that and never cost a write,
    // nor an encoding, a body reference or a journal entry (write_deferred_records).
    *sequence = ++session->last_store_sequence;
    slot->index = persist::JournalSlot::kDeferred;
    journal_->defer();
    if (!session->records_deferred) {
      session->records_deferred = true;
      deferred_record_sessions_.push_back(session->client_id);
    }
    return;
  }
  if (slot->deferred()) return;  // written with the state it has when its batch leaves
  write_outgoing_record(session, *sequence, slot, message, delivery, packet_id, /*created=*/false);
}

void ShardState::write_outgoing_record(Session* session, uint64_t sequence, persist::JournalSlot* slot,
                                       const MessageRef& message, const Delivery& delivery, uint16_t packet_id,
                                       bool created) {
  uint64_t body_id = created ? hold_body(message) : stored_bodies_.at(message.get()).id;
  persist::OutgoingState state = packet_id == 0 ? persist::OutgoingState::kQueued : persist::OutgoingState::kPublishSent;
  persist::encode_outgoing_fields(state, body_id, packet_id, delivery.qos, delivery.retain_flag,
                                  delivery.subscription_ids, delivery.shared_group, &record_scratch_);
  persist::outgoing_key_into(session->store_number, sequence, &key_scratch_);
  if (created) {
    journal_->create_tracked(key_scratch_, record_scratch_, slot);
  } else {
    journal_->put_tracked(key_scratch_, record_scratch_, slot);
  }
}

void ShardState::submit_journal() {
  if (journal_ == nullptr) return;
  if (journal_->ready_to_submit() && !deferred_record_sessions_.empty()) write_deferred_records();
  journal_->submit();
}

void ShardState::write_deferred_records() {
  // A session may have ended (or been replaced) meanwhile: looked up by client id. An ended
  // one's entries went with it, never written.
  for (const std::string& client_id : deferred_record_sessions_) {
    Session* session = find_session(client_id);
    if (session != nullptr && session->records_deferred) write_deferred_records(session);
  }
  deferred_record_sessions_.clear();
}

void ShardState::write_deferred_records(Session* session) {
  session->records_deferred = false;
  for (size_t i = 0; i < session->inflight.size(); ++i) {
    OutgoingInflight& inflight = session->inflight[i];
    persist::JournalSlot& slot = inflight.delivery.store_slot;
    if (!slot.deferred()) continue;
    slot.index = persist::JournalSlot::kNone;
    if (inflight.pubrec_received) {
      journal_pubrel_sent(session, inflight);  // its message is gone: the record needs no body
    } else {
      write_outgoing_record(session, inflight.store_sequence, &slot, inflight.message, inflight.delivery,
                            inflight.packet_id, /*created=*/true);
    }
  }
  // Entries join the queue at its back only: the deferred ones are among its newest, behind the
  // last one written earlier. QoS 0 entries (no record) may sit between them.
  size_t first_deferred = session->queue.size();
  while (first_deferred > 0) {
    const QueuedDelivery& older = session->queue[first_deferred - 1];
    if (older.store_sequence != 0 && !older.delivery.store_slot.deferred()) break;
    --first_deferred;
  }
  for (size_t i = first_deferred; i < session->queue.size(); ++i) {
    QueuedDelivery& queued = session->queue[i];
    if (!queued.delivery.store_slot.deferred()) continue;  // QoS 0
    queued.delivery.store_slot.index = persist::JournalSlot::kNone;
    write_outgoing_record(session, queued.store_sequence, &queued.delivery.store_slot, queued.message,
                          queued.delivery, 0, /*created=*/true);
  }
}

void ShardState::journal_pubrel_sent(Session* session, OutgoingInflight& inflight) {
  if (inflight.store_sequence == 0 || inflight.delivery.store_slot.deferred()) return;
  const Delivery& delivery = inflight.delivery;
  persist::encode_outgoing_fields(persist::OutgoingState::kPubrelSent, 0, inflight.packet_id, delivery.qos,
                                  delivery.retain_flag, delivery.subscription_ids, delivery.shared_group,
                                  &record_scratch_);
  persist::outgoing_key_into(session->store_number, inflight.store_sequence, &key_scratch_);
  journal_->put_tracked(key_scratch_, record_scratch_, &inflight.delivery.store_slot);
  if (inflight.message) release_body(inflight.message.get());
}

void ShardState::journal_outgoing_done(uint64_t* sequence, persist::JournalSlot* slot, const Session* session,
                                       const Message* message) {
  if (*sequence == 0) return;
  if (slot->deferred()) {
    // Done before its batch left: never written, and no body was held for it.
    slot->index = persist::JournalSlot::kNone;
    *sequence = 0;
    journal_->note_elided();
    return;
  }
  persist::outgoing_key_into(session->store_number, *sequence, &key_scratch_);
  journal_->erase_tracked(key_scratch_, slot);
  if (message != nullptr) release_body(message);
  *sequence = 0;
}

void ShardState::release_stored_outgoing(Session* session) {
  if (journal_ == nullptr) return;
  // A deferred entry holds no body.
  for (size_t i = 0; i < session->inflight.size(); ++i) {
    OutgoingInflight& inflight = session->inflight[i];
    if (inflight.store_sequence != 0 && !inflight.delivery.store_slot.deferred() && inflight.message) {
      release_body(inflight.message.get());
    }
    inflight.store_sequence = 0;
    inflight.delivery.store_slot.index = persist::JournalSlot::kNone;
  }
  for (size_t i = 0; i < session->queue.size(); ++i) {
    QueuedDelivery& queued = session->queue[i];
    if (queued.store_sequence != 0 && !queued.delivery.store_slot.deferred()) release_body(queued.message.get());
    queued.store_sequence = 0;
    queued.delivery.store_slot.index = persist::JournalSlot::kNone;
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
      journal_outgoing(session, &inflight.store_sequence, &inflight.delivery.store_slot, inflight.message, inflight.delivery,
                       inflight.packet_id);
    }
  }
  for (size_t i = 0; i < session->queue.size(); ++i) {
    QueuedDelivery& queued = session->queue[i];
    if (queued.store_sequence == 0) {
      journal_outgoing(session, &queued.store_sequence, &queued.delivery.store_slot, queued.message, queued.delivery, 0);
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
  // Taken out whole first: pump_queue may hold a queue again (a QoS 2 PUBLISH from it waits for
  // its record), and an in-process client (a bridge) answers within it, which may too; either
  // appends to queues_held_for_store_, and nothing appended may be lost. (Compacting the list in
  // place lost such entries, and moved a kept client id onto itself, which empties it: the
  // session's QoS 2 messages were held for good; found by the bridge shard test.)
  queues_pumping_.swap(queues_held_for_store_);
  for (std::string& client_id : queues_pumping_) {
    // A session may have ended (or been replaced) meanwhile: looked up by client id.
    Session* session = find_session(client_id);
    if (session == nullptr || session->send_after_batch == 0) continue;
    if (!journal_->is_durable(session->send_after_batch)) {
      queues_held_for_store_.push_back(std::move(client_id));
      continue;
    }
    // Offline: send_after_batch stays set (durable now), so the client's return sends what
    // waited (pump_queue, after resume_session's resends).
    pump_queue(session);
  }
  queues_pumping_.clear();
}

void ShardState::journal_incoming_qos2(Session* session, uint16_t packet_id, bool received) {
  if (journal_ == nullptr || !session->persisted) return;
  persist::incoming_qos2_key_into(session->store_number, packet_id, &key_scratch_);
  if (received) {
    journal_->create(key_scratch_, persist::incoming_qos2_value());
  } else {
    journal_->erase(key_scratch_);
  }
}

}  // namespace coremq::broker
