// The cross-shard barrier: a SUBACK, and the PUBACK/PUBREC of a retained PUBLISH, leave only
// once every other shard has applied the changes this shard posted before them (the
// interest-add that makes peers forward matching messages here, the retained update their
// copies answer SUBSCRIBEs from). So anything published anywhere after a client has its
// SUBACK reaches it, and a retained message acknowledged to its publisher is sent to any
// SUBSCRIBE made afterwards on any shard. See ShardState::WaitingAnswer. Runs on the
// owning shard's thread.
#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "mqtt/encoder.h"

namespace coremq::broker {

void ShardState::wait_for_peers(WaitingAnswer answer) {
  Connection* connection = answer.connection;
  COREMQ_ASSERT(answers_must_wait() || connection->answers_waiting > 0);
  COREMQ_ASSERT(connection->state == ConnectionState::kConnected);
  COREMQ_ASSERT(!answer.holds_input || !connection->input_held);
  answer.sequence = change_sequence_;
  // With persistence the answer may wait for this shard's own batch only (journal_caught_up).
  answer.batch = journal_caught_up() ? 0 : journal_batch_needed();
  if (barrier_requested_ < answer.sequence) {
    // Behind the changes in every peer's FIFO ring (or its staging, when the ring is full).
    // One request covers every change up to it, so answers made in one burst share it.
    barrier_requested_ = answer.sequence;
    for (uint32_t shard = 0; shard < shard_count_; ++shard) {
      if (shard == shard_id_) continue;
      CrossShardItem request{CrossShardItem::Kind::kBarrierRequest, shard_id_};
      request.sequence = answer.sequence;
      io_.post(shard, request);
    }
  }
  COREMQ_ASSERT(waiting_answers_.empty() || waiting_answers_.back().sequence <= answer.sequence);
  if (answer.holds_input) connection->input_held = true;
  ++connection->answers_waiting;
  if (answer.sequence > applied_by_all_) ++counters_.answers_held_for_peers;
  if (answer.batch != 0) ++counters_.answers_held_for_store;
  waiting_answers_.push_back(std::move(answer));
}

void ShardState::on_barrier_ack(uint32_t peer, uint64_t sequence) {
  COREMQ_ASSERT(peer < shard_count_ && peer != shard_id_);
  COREMQ_ASSERT_MSG(sequence <= barrier_requested_, "ack for a barrier never requested");
  if (sequence <= peer_applied_[peer]) return;
  peer_applied_[peer] = sequence;
  uint64_t lowest = UINT64_MAX;
  for (uint32_t shard = 0; shard < shard_count_; ++shard) {
    if (shard != shard_id_) lowest = std::min(lowest, peer_applied_[shard]);
  }
  applied_by_all_ = lowest;
  release_waiting_answers();
}

void ShardState::release_waiting_answers() {
  // In order: answers were queued in sequence (and batch) order. Sending one may handle held
  // input that queues another (with a later sequence) or closes a connection (dropping its
  // entry), so the front is taken off before anything else runs.
  while (!waiting_answers_.empty() && waiting_answers_.front().sequence <= applied_by_all_ &&
         journal_durable(waiting_answers_.front().batch)) {
    WaitingAnswer answer = std::move(waiting_answers_.front());
    waiting_answers_.pop_front();
    send_waiting_answer(answer);
  }
}

void ShardState::send_waiting_answer(WaitingAnswer& answer) {
  Connection* connection = answer.connection;
  COREMQ_ASSERT(connection->state == ConnectionState::kConnected && connection->answers_waiting > 0);
  COREMQ_ASSERT(!answer.holds_input || connection->input_held);
  --connection->answers_waiting;
  connection->output.append(answer.packet.span());
  io_.request_flush(connection);
  if (!answer.holds_input) return;
  Session* session = connection->session;
  for (const std::string& filter : answer.retained_filters) {
    // The subscription is still there: the client's UNSUBSCRIBE, if any, is held behind.
    auto subscription = session->subscriptions.find(filter);
    if (subscription != session->subscriptions.end()) send_retained(session, filter, subscription->second);
  }
  connection->input_held = false;
  resume_held_input(connection);
}

void ShardState::resume_held_input(Connection* connection) {
  // What arrived with the held packet (the rest of that read) waits in connection->input;
  // what the loop parked since comes through resume_input, after it.
  if (!connection->input.empty()) {
    size_t consumed = 0;
    Next next = process_input(connection, connection->input.span(), &consumed);
    bool input_taken = std::exchange(input_taken_by_message_, false);  // by its last packet's message
    if (next == Next::kStop) return;
    COREMQ_ASSERT(next == Next::kContinue);
    if (!input_taken) connection->input.consume_front(consumed);
    if (connection->input.empty()) connection->input.shrink();
  }
  if (connection->state == ConnectionState::kConnected && !connection->input_held) io_.resume_input(connection);
}

void ShardState::drop_waiting_answers(Connection* connection) {
  COREMQ_ASSERT(connection->answers_waiting > 0);
  bool held = false;
  for (auto it = waiting_answers_.begin(); it != waiting_answers_.end();) {
    if (it->connection != connection) {
      ++it;
      continue;
    }
    held |= it->holds_input;
    it = waiting_answers_.erase(it);
    --connection->answers_waiting;
  }
  COREMQ_ASSERT_MSG(connection->answers_waiting == 0, "an answer counted but not in the list");
  if (held) connection->input_held = false;
}

bool ShardState::send_durable_ack(Connection* connection, mqtt::PacketType type, uint16_t packet_id,
                                  uint8_t reason) {
  if (journal_ == nullptr || !answers_must_wait()) return send_ack(connection, type, packet_id, reason);
  return queue_ack(connection, type, packet_id, reason);
}

bool ShardState::queue_ack(Connection* connection, mqtt::PacketType type, uint16_t packet_id, uint8_t reason) {
  WaitingAnswer answer;
  answer.connection = connection;
  // Bounded per client: past the Receive Maximum this broker announces (what an MQTT 5 client
  // may have unacknowledged anyway), the client's input waits too, so a 3.1.1 client cannot
  // queue acknowledgements without end while the store is slow.
  answer.holds_input = connection->answers_waiting >= options_.receive_maximum && !connection->input_held;
  if (answer.holds_input) ++counters_.answers_held_input_for_store;
  if (!stage_packet_into(answer.packet, connection, type, [&](base::ByteBuffer& out, bool) {
        if (type == mqtt::PacketType::kPingresp) {
          mqtt::encode_pingresp(out);
        } else {
          encode_ack(out, connection->version, type, packet_id, reason);
        }
      })) {
    return false;
  }
  wait_for_peers(std::move(answer));
  return true;
}

}  // namespace coremq::broker
