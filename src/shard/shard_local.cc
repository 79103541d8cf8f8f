// A shard's side of the in-process clients (src/shard/local_hub.h): reading the local intake
// once per turn, opening and feeding their socket-less connections, handing their output to
// the delivery thread instead of a socket, and closing them. Shard thread only, except
// wake_from_outside().
#include <algorithm>
#include <atomic>

#include "base/assert.h"
#include "base/log.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "shard/shard.h"
#include "shard/wake.h"

namespace coremq::shard {

using broker::Connection;
using broker::ConnectionState;

namespace {
// Commands taken from the intake per turn, so host threads cannot starve the sockets.
constexpr size_t kLocalCommandsPerTurnMax = 4096;
}  // namespace

void Shard::attach_local(LocalHub* hub, LocalShardLink* link) {
  local_.hub = hub;
  local_.link = link;
  link->shard = this;
}

void Shard::wake_from_outside() {
  // The producer half of the sleeping_ protocol (see enter_kernel): the push that came
  // before this fence is seen by the shard's last look at its queues, or sleeping_ is seen here.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_relaxed) && sleeping_.exchange(false)) wake_by_eventfd(event_fd_);
}

bool Shard::local_work_ready() const {
  if (local_.link == nullptr) return false;
  // Output waiting for the delivery thread is retried once its ring has room; until then the
  // delivery thread wakes this shard when it drains (it sees output_full, or this look sees
  // the room: enter_kernel's fence pairs with the one after its drain).
  const LocalOutputRing& output = local_.link->output;
  if ((!local_.waiting.empty() || !local_.blocked.empty()) && output.size_approx() < output.capacity())
    return true;
  return !local_.intake_blocked && !input_paused_ && local_.waiting.empty() && !local_.link->intake.empty();
}

void Shard::drain_local_intake() {
  if (local_.link == nullptr) return;
  // What is owed to the delivery thread goes first: while some of it waits, reading more
  // commands would only make more (the intake fills, and the host gets kIntakeFull).
  if (!retry_local_output()) return;
  for (size_t taken = 0; taken < kLocalCommandsPerTurnMax; ++taken) {
    if (input_paused_ || local_.intake_blocked || !local_.waiting.empty()) return;
    LocalCommand* command = local_.link->intake.front();
    if (command == nullptr) return;
    Connection* connection = command->core->connection;
    if (connection != nullptr && connection->input_held && command->kind != LocalCommand::Kind::kConnect) {
      // An answer of this client waits for the peers (a SUBACK); its next packets wait for it,
      // and so does the rest of the intake (the hold lasts one barrier round trip).
      local_.intake_blocked = true;
      return;
    }
    handle_local_command(*command);
    local_.link->intake.pop();
  }
}

void Shard::handle_local_command(LocalCommand& command) {
  LocalClientCore* core = command.core;
  Connection* connection = core->connection;
  bool open = connection != nullptr && connection->state != ConnectionState::kClosing;
  switch (command.kind) {
    case LocalCommand::Kind::kConnect:
      COREMQ_ASSERT(connection == nullptr);
      if (stopping_) {
        emit_local(LocalOutput{core, LocalOutput::Kind::kClosed, 0x8B, 0, {}});  // Server shutting down
      } else {
        open_local_connection(core, command.bytes.span());
      }
      break;
    case LocalCommand::Kind::kPackets:
      if (open) {
        if (core->inline_callbacks) update_inline_subscriptions(command);
        state_->on_bytes(connection, command.bytes.span());
      } else {
        emit_local(LocalOutput{core, LocalOutput::Kind::kRejected, 0, command.packet_id, {}});
      }
      break;
    case LocalCommand::Kind::kDisconnect:
      // The DISCONNECT ends the session as the protocol says (the will is discarded); the
      // close then releases the connection at once (close_local_connection).
      if (open) state_->on_bytes(connection, command.bytes.span());
      COREMQ_ASSERT(core->connection == nullptr || core->connection->state == ConnectionState::kClosing);
      emit_local(LocalOutput{core, LocalOutput::Kind::kDisconnectDone, 0, 0, {}});
      break;
    case LocalCommand::Kind::kNone:
      COREMQ_ASSERT_MSG(false, "an empty local command");
      break;
  }
}

void Shard::open_local_connection(LocalClientCore* core, std::span<const uint8_t> connect) {
  auto* connection = new Connection();
  connection->in_process = true;
  connection->accepted_at_ms = now_ms_;
  core->connection = connection;
  local_.connections.emplace(connection, core);
  state_->on_connection_opened(connection);
  // The owner shard was chosen by the client id, so the CONNECT never hands it off.
  state_->on_bytes(connection, connect);
  COREMQ_ASSERT(connection->state != ConnectionState::kHandingOff);
}

void Shard::emit_local(LocalOutput&& item) {
  if (local_.waiting.empty() && local_.link->output.try_push(std::move(item))) {
    local_.hub->wake_delivery();
    return;
  }
  // Bounded by the local connections (one close each) and by the intake, which is not read
  // while anything waits here.
  local_.waiting.push_back(std::move(item));
  local_.link->output_full.store(true, std::memory_order_relaxed);
}

bool Shard::retry_local_output() {
  LocalShardLink& link = *local_.link;
  if (local_.waiting.empty() && local_.blocked.empty()) return true;
  // Either the delivery thread sees output_full after its drain (and wakes this shard), or
  // the pushes below see the room it made (the fences pair, as in enter_kernel).
  link.output_full.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bool pushed = false;
  while (!local_.waiting.empty() && link.output.try_push(std::move(local_.waiting.front()))) {
    local_.waiting.pop_front();
    pushed = true;
  }
  if (pushed) local_.hub->wake_delivery();
  if (!local_.waiting.empty()) return false;
  // Blocked connections flush again at this turn's end (start_send -> take_local_output).
  for (Connection* connection : local_.blocked) request_flush(connection);
  local_.blocked.clear();
  return true;
}

void Shard::take_local_output(Connection* connection) {
  COREMQ_ASSERT(connection->in_process && !connection->output.empty());
  if (Bridge* bridge = bridge_of(connection)) {
    bridge->on_local_output(std::move(connection->output), now_ms_);
    if (connection->state == ConnectionState::kConnected) state_->on_output_drained(connection);
    return;
  }
  auto found = local_.connections.find(connection);
  COREMQ_ASSERT(found != local_.connections.end());
  if (found->second->inline_callbacks) {
    deliver_inline(connection, found->second, std::move(connection->output));
    return;
  }
  LocalOutput item{found->second, LocalOutput::Kind::kBytes, 0, 0, std::move(connection->output)};
  if (!local_.waiting.empty() || !local_.link->output.try_push(std::move(item))) {
    // The delivery thread is behind: the output stays on the connection, as on a socket that
    // does not drain, so --max-client-output-bytes and the slow-consumer rule apply.
    connection->output = std::move(item.bytes);
    uint64_t full = ++state_->counters().local_delivery_queue_full;
    LOG_WARNING_LIMITED(
        "in-process client delivery queue full (Options::local_delivery_queue_capacity=%u): "
        "output waits on its connection (%u times so far)",
        options_.local_delivery_queue_capacity, full);
    if (std::find(local_.blocked.begin(), local_.blocked.end(), connection) == local_.blocked.end()) {
      local_.blocked.push_back(connection);
    }
    local_.link->output_full.store(true, std::memory_order_relaxed);
    return;
  }
  local_.hub->wake_delivery();
  // As a completed send: the session may send what it queued behind the output bound.
  if (connection->state == ConnectionState::kConnected) state_->on_output_drained(connection);
}

void Shard::update_inline_subscriptions(LocalCommand& command) {
  LocalClientCore& core = *command.core;
  // Before the SUBSCRIBE is handled: its retained messages follow its SUBACK at once.
  if (command.subscribe) {
    uint32_t identifier = command.subscribe->internal_identifier;
    auto [entry, inserted] = core.inline_filters.try_emplace(command.subscribe->filter, identifier);
    if (!inserted) {
      core.inline_subscriptions.erase(entry->second);
      entry->second = identifier;
    }
    core.inline_subscriptions.insert_or_assign(identifier, std::move(command.subscribe));
  }
  if (!command.unsubscribe.empty()) {
    auto entry = core.inline_filters.find(command.unsubscribe);
    if (entry == core.inline_filters.end()) return;
    // The identifier may already name a newer subscription (host threads racing): only this
    // filter's own entry goes.
    auto subscription = core.inline_subscriptions.find(entry->second);
    if (subscription != core.inline_subscriptions.end() &&
        subscription->second->filter == command.unsubscribe) {
      core.inline_subscriptions.erase(subscription);
    }
    core.inline_filters.erase(entry);
  }
}

void Shard::deliver_inline(Connection* connection, LocalClientCore* core, base::ByteBuffer bytes) {
  base::ByteBuffer rest;  // for the delivery thread: CONNACK, acknowledgements of its own operations
  base::ByteBuffer acks;  // PUBACK, PUBREC, PUBCOMP, handed to the protocol side below
  int64_t longest_us = 0;
  LocalHub::set_running_callbacks(true);
  std::span<const uint8_t> input = bytes.span();
  while (!input.empty()) {
    mqtt::FixedHeader header{};
    mqtt::FrameStatus frame = mqtt::parse_fixed_header(input, mqtt::kRemainingLengthMax + 5, &header);
    COREMQ_ASSERT(frame == mqtt::FrameStatus::kComplete);
    size_t size = size_t{header.header_length} + header.remaining_length;
    COREMQ_ASSERT(input.size() >= size);
    std::span<const uint8_t> body = input.subspan(header.header_length, header.remaining_length);
    if (header.type == mqtt::PacketType::kPublish) {
      mqtt::PublishPacket publish;
      COREMQ_ASSERT(mqtt::decode_publish_from_server(body, header.flags, mqtt::ProtocolVersion::kV5,
                                                     &publish) == mqtt::DecodeStatus::kOk);
      if (publish.qos < 2 || !core->qos2_received.contains(publish.packet_id)) {
        LocalHub::match_publish(publish, core->inline_subscriptions,
                                options_.subscription_identifiers_available, local_.scratch);
        longest_us = std::max(longest_us, LocalHub::run_callbacks(*core, publish, local_.scratch));
      }
      if (publish.qos == 1) mqtt::encode_ack_v5(acks, mqtt::PacketType::kPuback, publish.packet_id, 0, {});
      if (publish.qos == 2) {
        core->qos2_received.insert(publish.packet_id);
        mqtt::encode_ack_v5(acks, mqtt::PacketType::kPubrec, publish.packet_id, 0, {});
      }
    } else if (header.type == mqtt::PacketType::kPubrel) {
      mqtt::AckPacket pubrel;
      COREMQ_ASSERT(mqtt::decode_ack(body, header.flags, mqtt::PacketType::kPubrel,
                                     mqtt::ProtocolVersion::kV5, &pubrel) == mqtt::DecodeStatus::kOk);
      core->qos2_received.erase(pubrel.packet_id);
      mqtt::encode_ack_v5(acks, mqtt::PacketType::kPubcomp, pubrel.packet_id, 0, {});
    } else {
      rest.append(input.first(size));
    }
    input = input.subspan(size);
  }
  LocalHub::set_running_callbacks(false);
  if (longest_us > 1000) {
    uint64_t slow = ++state_->counters().local_inline_callbacks_slow;
    LOG_WARNING_LIMITED(
        "an inline callback of in-process client '%s' ran %d us on the shard thread (inline "
        "callbacks must not block; %u slow so far)",
        core->client_id, longest_us, slow);
  }
  // What the delivery thread completes (futures) must not be lost: it waits in order if its
  // ring is full (bounded by the client's operations in flight).
  if (!rest.empty()) emit_local(LocalOutput{core, LocalOutput::Kind::kBytes, 0, 0, std::move(rest)});
  // A callback may not end the session (a LocalClient's destruction goes through the
  // delivery thread), but a takeover handled meanwhile cannot happen either: same thread.
  if (!acks.empty() && connection->state == ConnectionState::kConnected)
    state_->on_bytes(connection, acks.span());
  if (connection->state == ConnectionState::kConnected) state_->on_output_drained(connection);
}

void Shard::close_local_connection(Connection* connection) {
  COREMQ_ASSERT(connection->in_process && connection->state == ConnectionState::kClosing);
  if (Bridge* bridge = bridge_of(connection)) {
    bridge->on_local_closed();
    connection->socket_shut_down = true;
    release_list_.push_back(connection);
    return;
  }
  auto found = local_.connections.find(connection);
  COREMQ_ASSERT(found != local_.connections.end());
  LocalClientCore* core = found->second;
  // Its last packets (a DISCONNECT with a reason, a CONNACK refusal) go before the close.
  // An inline client's messages among them run its callbacks here, as the others did (no
  // acknowledgement goes back: the session is over).
  uint8_t reason = 0;
  if (!connection->output.empty() && core->inline_callbacks) {
    deliver_inline(connection, core, std::move(connection->output));
  } else if (!connection->output.empty()) {
    emit_local(LocalOutput{core, LocalOutput::Kind::kBytes, 0, 0, std::move(connection->output)});
  }
  if (!connection->clean_disconnect) reason = 0x8B;  // refused, taken over, shut down: not the host's doing
  emit_local(LocalOutput{core, LocalOutput::Kind::kClosed, reason, 0, {}});
  std::erase(local_.blocked, connection);
  // It may have been the held connection that stopped the intake (a held answer is dropped
  // when its connection ends, with no resume_input): the next drain looks again.
  local_.intake_blocked = false;
  local_.connections.erase(found);
  core->connection = nullptr;
  // flush_sends skips it; it is freed at this turn's end, after the protocol side is done with it.
  connection->socket_shut_down = true;
  release_list_.push_back(connection);
}

void Shard::resume_local_input(Connection* connection) {
  COREMQ_ASSERT(connection->in_process);
  if (Bridge* bridge = bridge_of(connection)) {
    bridge->on_local_resumed();
    return;
  }
  if (!local_.intake_blocked) return;
  // Its held packets were next in the intake: read on from there (this turn's end or the next).
  local_.intake_blocked = false;
}

void Shard::tick_local() {
  if (local_.link == nullptr) return;
  state_->counters().local_intake_full = local_.link->intake_full.load(std::memory_order_relaxed);
  // An in-process client never sends PINGREQ: its handle is its liveness, so a keep-alive
  // that --max-keepalive imposed must not end it.
  for (auto& [connection, core] : local_.connections) connection->last_packet_at_ms = now_ms_;
}

void Shard::release_local_leftovers() {
  // After the thread joined: the cores are failed by LocalHub::stop; what is queued is freed
  // with the rings and deques.
  local_.waiting.clear();
  local_.blocked.clear();
  // A connection still open here was never closed by the protocol side (it is in ShardState's
  // set until the Shard goes): freed with the others that were open when the loop ended.
  for (auto& [connection, core] : local_.connections) {
    core->connection = nullptr;
    closed_at_exit_.emplace_back(connection);
  }
  local_.connections.clear();
}

}  // namespace coremq::shard
