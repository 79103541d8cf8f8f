// The packet loop of a shard's protocol side: framing, dispatch by packet type,
// closing, keep-alive and connect timeouts, and what arrives from other shards.
// Runs only on the owning shard's thread.
#include "broker/shard_state.h"

#include "base/assert.h"
#include "base/log.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"

namespace coremq::broker {

uint32_t owner_shard_of(std::string_view client_id, uint32_t shard_count) {
  COREMQ_ASSERT(shard_count > 0);
  uint32_t hash = 2166136261u;
  for (char c : client_id) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 16777619u;
  }
  return hash % shard_count;
}

ShardState::ShardState(uint32_t shard_id, uint32_t shard_count, const Options& options, IoPort& io)
    : shard_id_(shard_id),
      shard_count_(shard_count),
      options_(options),
      io_(io),
      retained_(options.max_retained_messages),
      shard_match_epoch_(shard_count, 0) {
  COREMQ_ASSERT(shard_id < shard_count);
}

// The trees hold Session pointers; they are declared after sessions_ and so go first.
ShardState::~ShardState() = default;

void ShardState::on_connection_opened(Connection* connection) {
  COREMQ_ASSERT(connection->state == ConnectionState::kAwaitingConnect);
  connection->accepted_at_ms = connection->accepted_at_ms ? connection->accepted_at_ms : io_.now_ms();
  connection->last_packet_at_ms = io_.now_ms();
  connections_.insert(connection);
  ++counters_.connections_current;
}

void ShardState::on_bytes(Connection* connection, std::span<const uint8_t> bytes) {
  if (connection->state == ConnectionState::kClosing || connection->state == ConnectionState::kHandingOff) return;
  connection->last_packet_at_ms = io_.now_ms();

  // Before CONNECT every byte is kept: a hand-off to the owner shard carries them all.
  // After it, complete packets are handled straight from the receive buffer and only
  // the tail of an incomplete one is copied.
  bool buffered = connection->state == ConnectionState::kAwaitingConnect || !connection->input.empty();
  if (buffered) connection->input.append(bytes);
  std::span<const uint8_t> pending = buffered ? connection->input.span() : bytes;

  size_t consumed = 0;
  Next next = process_input(connection, pending, &consumed);
  if (next == Next::kStop) return;
  // On a hand-off, handle_connect already gave the connection (all its input bytes
  // included) to the I/O side to move.
  if (next == Next::kHandOff) return;
  if (buffered) {
    connection->input.consume_front(consumed);
    // Complete packets are read from the receive buffers; this one holds only a
    // partial packet, so once it is empty an idle connection keeps no memory here.
    if (connection->input.empty()) connection->input.shrink();
  } else if (consumed < bytes.size()) {
    connection->input.append(bytes.subspan(consumed));
  }
}

ShardState::Next ShardState::process_input(Connection* connection, std::span<const uint8_t> bytes,
                                           size_t* consumed) {
  size_t offset = 0;
  Next next = Next::kContinue;
  while (offset < bytes.size()) {
    mqtt::FixedHeader header{};
    mqtt::FrameStatus status = mqtt::parse_fixed_header(bytes.subspan(offset), options_.max_packet_size, &header);
    if (status == mqtt::FrameStatus::kNeedMore) break;
    if (status == mqtt::FrameStatus::kMalformed) {
      close_for_protocol_error(connection, "malformed fixed header");
      return Next::kStop;
    }
    if (status == mqtt::FrameStatus::kTooLarge) {
      close_for_protocol_error(connection, absl::StrFormat("packet of %u bytes is over --max-packet-size=%u",
                                                          header.header_length + header.remaining_length,
                                                          options_.max_packet_size));
      return Next::kStop;
    }
    size_t packet_size = size_t{header.header_length} + header.remaining_length;
    if (bytes.size() - offset < packet_size) break;
    next = handle_packet(connection, header, bytes.subspan(offset + header.header_length, header.remaining_length));
    if (next != Next::kContinue) break;
    offset += packet_size;
  }
  *consumed = offset;
  return next;
}

ShardState::Next ShardState::handle_packet(Connection* connection, const mqtt::FixedHeader& header,
                                           std::span<const uint8_t> body) {
  using mqtt::PacketType;
  if (connection->state == ConnectionState::kAwaitingConnect) {
    if (header.type != PacketType::kConnect) {
      close_for_protocol_error(connection, absl::StrFormat("%s before CONNECT", mqtt::packet_type_name(header.type)));
      return Next::kStop;
    }
    return handle_connect(connection, body, header.flags);
  }
  COREMQ_ASSERT(connection->state == ConnectionState::kConnected);
  bool keep_going = false;
  switch (header.type) {
    case PacketType::kPublish: keep_going = handle_publish(connection, body, header.flags); break;
    case PacketType::kPuback: keep_going = handle_puback(connection, body, header.flags); break;
    case PacketType::kPubrec: keep_going = handle_pubrec(connection, body, header.flags); break;
    case PacketType::kPubrel: keep_going = handle_pubrel(connection, body, header.flags); break;
    case PacketType::kPubcomp: keep_going = handle_pubcomp(connection, body, header.flags); break;
    case PacketType::kSubscribe: keep_going = handle_subscribe(connection, body, header.flags); break;
    case PacketType::kUnsubscribe: keep_going = handle_unsubscribe(connection, body, header.flags); break;
    case PacketType::kPingreq:
      if (mqtt::decode_empty(body, header.flags, header.type) != mqtt::DecodeStatus::kOk) {
        close_for_protocol_error(connection, "malformed PINGREQ");
        return Next::kStop;
      }
      mqtt::encode_pingresp(connection->output);
      io_.request_flush(connection);
      keep_going = true;
      break;
    case PacketType::kDisconnect:
      if (mqtt::decode_empty(body, header.flags, header.type) != mqtt::DecodeStatus::kOk) {
        close_for_protocol_error(connection, "malformed DISCONNECT");
        return Next::kStop;
      }
      connection->clean_disconnect = true;
      LOG_DEBUG("client '%s' disconnected", connection->session->client_id);
      end_connection(connection, /*publish_will=*/false, /*flush_first=*/true);
      return Next::kStop;
    case PacketType::kConnect:
      close_for_protocol_error(connection, "second CONNECT");
      return Next::kStop;
    default:
      close_for_protocol_error(connection,
                               absl::StrFormat("unexpected %s from a client", mqtt::packet_type_name(header.type)));
      return Next::kStop;
  }
  return keep_going ? Next::kContinue : Next::kStop;
}

void ShardState::close_for_protocol_error(Connection* connection, std::string_view reason) {
  ++counters_.protocol_errors;
  const char* who = connection->session ? connection->session->client_id.c_str() : "";
  LOG_INFO("closing connection fd %d (client '%s'): %s", connection->fd, who, reason);
  end_connection(connection, /*publish_will=*/true, /*flush_first=*/false);
}

void ShardState::end_connection(Connection* connection, bool publish_will, bool flush_first) {
  if (connection->state == ConnectionState::kClosing) return;
  bool was_handing_off = connection->state == ConnectionState::kHandingOff;
  connection->state = ConnectionState::kClosing;
  connections_.erase(connection);
  COREMQ_ASSERT(counters_.connections_current > 0);
  --counters_.connections_current;

  Session* session = connection->session;
  if (session != nullptr) {
    COREMQ_ASSERT(session->connection == connection);
    session->connection = nullptr;
    connection->session = nullptr;
    if (publish_will && session->has_will) {
      WillMessage& will = session->will;
      publish_from_here(MessageRef::adopt(Message::create(will.topic, will.payload, will.qos, will.retain, shard_id_)));
    }
    session->has_will = false;
    session->will = WillMessage{};
    if (session->clean_session) {
      destroy_session(session);
    } else {
      // Whatever waits for the client waits in the session now; nothing is serialized
      // for a connection that is going away, so the queue keeps its order.
    }
  }
  if (!was_handing_off) io_.close_connection(connection, flush_first);
}

void ShardState::on_transport_closed(Connection* connection) {
  if (connection->state == ConnectionState::kClosing) return;
  if (connection->state == ConnectionState::kConnected) {
    LOG_DEBUG("client '%s' connection lost", connection->session->client_id);
  }
  end_connection(connection, /*publish_will=*/true, /*flush_first=*/false);
}

void ShardState::on_output_drained(Connection* connection) {
  if (connection->state != ConnectionState::kConnected) return;
  if (connection->session != nullptr && !connection->session->queue.empty()) pump_queue(connection->session);
}

void ShardState::on_tick(int64_t now_ms) {
  now_ms_ = now_ms;
  // Collect first: ending a connection edits connections_.
  std::vector<std::pair<Connection*, bool>> expired;  // connection, is keep-alive expiry
  for (Connection* connection : connections_) {
    if (connection->state == ConnectionState::kAwaitingConnect) {
      if (now_ms - connection->accepted_at_ms > int64_t{options_.connect_timeout_seconds} * 1000) {
        expired.emplace_back(connection, false);
      }
    } else if (connection->state == ConnectionState::kConnected && connection->keep_alive_seconds > 0) {
      // MQTT-3.1.2-24: one and a half times the keep-alive without a packet.
      if (now_ms - connection->last_packet_at_ms > int64_t{connection->keep_alive_seconds} * 1500) {
        expired.emplace_back(connection, true);
      }
    }
  }
  for (auto [connection, keep_alive] : expired) {
    if (keep_alive) {
      ++counters_.keep_alive_expiries;
      LOG_INFO("client '%s' keep-alive of %u s expired, closing", connection->session->client_id,
               connection->keep_alive_seconds);
    } else {
      ++counters_.connect_timeouts;
      LOG_INFO("connection fd %d sent no CONNECT within %u s, closing", connection->fd,
               options_.connect_timeout_seconds);
    }
    end_connection(connection, /*publish_will=*/true, /*flush_first=*/false);
  }
}

void ShardState::on_shutdown() {
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (Connection* connection : all) end_connection(connection, /*publish_will=*/false, /*flush_first=*/true);
}

void ShardState::on_cross_shard(CrossShardItem item) {
  switch (item.kind) {
    case CrossShardItem::Kind::kPublish: {
      MessageRef message = MessageRef::adopt(static_cast<Message*>(item.pointer));
      if (message->retain()) retained_.update(message);
      deliver_locally(message);
      break;
    }
    case CrossShardItem::Kind::kInterestAdd: {
      std::unique_ptr<InterestChange> change(static_cast<InterestChange*>(item.pointer));
      remote_interest_.insert(change->filter, item.from_shard, 0);
      break;
    }
    case CrossShardItem::Kind::kInterestRemove: {
      std::unique_ptr<InterestChange> change(static_cast<InterestChange*>(item.pointer));
      remote_interest_.remove(change->filter, item.from_shard);
      break;
    }
    case CrossShardItem::Kind::kAdoptConnection:
      COREMQ_ASSERT_MSG(false, "connection adoption is handled by the shard loop");
      break;
  }
}

Session* ShardState::find_session(std::string_view client_id) {
  auto found = sessions_.find(client_id);
  return found == sessions_.end() ? nullptr : found->second.get();
}

void ShardState::destroy_session(Session* session) {
  COREMQ_ASSERT(session->connection == nullptr);
  remove_all_subscriptions(session);
  auto found = sessions_.find(session->client_id);
  COREMQ_ASSERT(found != sessions_.end() && found->second.get() == session);
  sessions_.erase(found);
}

}  // namespace coremq::broker
