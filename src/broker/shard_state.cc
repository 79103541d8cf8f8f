// The packet loop of a shard's protocol side: framing, dispatch by packet type,
// closing (with MQTT 5 DISCONNECT reasons), keep-alive and connect timeouts, and what
// arrives from other shards. Runs only on the owning shard's thread.
#include "broker/shard_state.h"

#include <utility>

#include "base/assert.h"
#include "base/log.h"
#include "broker/listeners.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/properties.h"

namespace coremq::broker {

using mqtt::ReasonCode;

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
      listeners_(effective_listeners(options)),
      retained_(options.max_retained_messages),
      shard_match_epoch_(shard_count, 0),
      peer_applied_(shard_count, 0),
      interceptor_(options.message_interceptor.get()),
      events_(options.event_hook.get()) {
  COREMQ_ASSERT(shard_id < shard_count);
  for (const ListenerOptions& listener : listeners_) anonymous_allowed_.push_back(anonymous_allowed(listener));
}

// The trees hold Session pointers; they are declared after sessions_ and so go first.
ShardState::~ShardState() = default;

void ShardState::on_connection_opened(Connection* connection) {
  COREMQ_ASSERT(connection->state == ConnectionState::kAwaitingConnect);
  if (connection->accepted_at_ms == 0) connection->accepted_at_ms = io_.now_ms();
  connection->last_packet_at_ms = io_.now_ms();
  connections_.insert(connection);
  ++counters_.connections_current;
}

void ShardState::on_bytes(Connection* connection, std::span<const uint8_t> bytes) {
  if (connection->state == ConnectionState::kClosing || connection->state == ConnectionState::kHandingOff) return;
  if (connection->input_held) {
    // The loop parks input while held; kept in order behind the held packet all the same.
    connection->input.append(bytes);
    return;
  }

  // A packet kept from earlier reads takes only its own bytes from this one: what follows is
  // handled straight from the receive buffer, and a large PUBLISH then ends the input buffer,
  // which its message can take over (make_message). Connected clients only: a CONNECT that
  // moves to another shard takes the rest of the read with it (kHandOff below).
  if (!connection->input.empty() && connection->state == ConnectionState::kConnected) {
    size_t missing = bytes_to_complete_buffered_packet(connection);
    if (missing != 0 && missing < bytes.size()) {
      on_bytes(connection, bytes.first(missing));
      on_bytes(connection, bytes.subspan(missing));  // dropped if the first closed the connection
      return;
    }
  }

  // Complete packets are handled straight from the receive buffer; only the tail of an
  // incomplete one is copied (and kept until the rest arrives).
  bool buffered = !connection->input.empty();
  if (buffered) append_partial_packet(connection, bytes);
  std::span<const uint8_t> pending = buffered ? connection->input.span() : bytes;

  size_t consumed = 0;
  Next next = process_input(connection, pending, &consumed);
  bool input_taken = std::exchange(input_taken_by_message_, false);
  if (next == Next::kStop) return;
  if (next == Next::kHandOff) {
    // The CONNECT names a client id owned by another shard: the socket moves there with
    // every byte read so far, from the CONNECT on (the owner decodes it again).
    if (buffered) {
      connection->input.consume_front(consumed);
    } else {
      connection->input.append(bytes.subspan(consumed));
    }
    io_.hand_off_connection(connection, hand_off_target_);
    return;
  }
  if (input_taken) {
    COREMQ_ASSERT(buffered && connection->input.empty());  // its last packet's message has the buffer
  } else if (buffered) {
    connection->input.consume_front(consumed);
    // Complete packets are read from the receive buffers; this one holds only a
    // partial packet, so once it is empty an idle connection keeps no memory here.
    if (connection->input.empty()) connection->input.shrink();
  } else if (consumed < bytes.size()) {
    append_partial_packet(connection, bytes.subspan(consumed));
  }
}

size_t ShardState::bytes_to_complete_buffered_packet(const Connection* connection) const {
  mqtt::FixedHeader header{};
  if (mqtt::parse_fixed_header(connection->input.span(), options_.max_packet_size, &header) !=
      mqtt::FrameStatus::kComplete) {
    return 0;  // not even its fixed header yet (or a bad one, refused by process_input)
  }
  size_t packet_size = size_t{header.header_length} + header.remaining_length;
  return packet_size > connection->input.size() ? packet_size - connection->input.size() : 0;
}

void ShardState::append_partial_packet(Connection* connection, std::span<const uint8_t> bytes) {
  base::ByteBuffer& input = connection->input;
  size_t wanted = input.size() + bytes.size();
  if (wanted > input.capacity()) {
    // A packet larger than a receive buffer comes in pieces: sized from its fixed header, the
    // buffer is allocated once instead of doubled (and copied) all the way up. A packet over
    // kInputReserveAtOnceMax gets its whole size only once an eighth of it is here, so a
    // client announcing a large packet is given memory as it sends, not before.
    std::span<const uint8_t> packet_start = input.empty() ? bytes : input.span();
    mqtt::FixedHeader header{};
    if (mqtt::parse_fixed_header(packet_start, options_.max_packet_size, &header) == mqtt::FrameStatus::kComplete) {
      size_t packet_size = size_t{header.header_length} + header.remaining_length;
      if (packet_size <= kInputReserveAtOnceMax || wanted >= packet_size / 8) {
        input.reserve_exact(std::max(packet_size, wanted));
      }
    }
  }
  input.append(bytes);
}

ShardState::Next ShardState::process_input(Connection* connection, std::span<const uint8_t> bytes,
                                           size_t* consumed) {
  size_t offset = 0;
  Next next = Next::kContinue;
  int64_t now = io_.now_ms();
  while (offset < bytes.size()) {
    mqtt::FixedHeader header{};
    mqtt::FrameStatus status = mqtt::parse_fixed_header(bytes.subspan(offset), options_.max_packet_size, &header);
    if (status == mqtt::FrameStatus::kNeedMore) break;
    if (status == mqtt::FrameStatus::kMalformed) {
      close_for_protocol_error(connection, ReasonCode::kMalformedPacket, "malformed fixed header");
      return Next::kStop;
    }
    if (status == mqtt::FrameStatus::kTooLarge) {
      close_for_protocol_error(connection, ReasonCode::kPacketTooLarge,
                               absl::StrFormat("packet of %u bytes is over --max-packet-size=%u",
                                               header.header_length + header.remaining_length,
                                               options_.max_packet_size));
      return Next::kStop;
    }
    size_t packet_size = size_t{header.header_length} + header.remaining_length;
    if (bytes.size() - offset < packet_size) break;
    // Only whole packets count for keep-alive (MQTT-3.1.2-24 speaks of Control Packets):
    // a client trickling one packet a byte at a time cannot stay connected on that.
    connection->last_packet_at_ms = now;
    ++counters_.packets_received;
    next = handle_packet(connection, header, bytes.subspan(offset + header.header_length, header.remaining_length));
    COREMQ_ASSERT(next != Next::kContinue || connection->state != ConnectionState::kClosing);
    if (next != Next::kContinue) break;
    offset += packet_size;
    // Answers (PUBACK, PINGRESP ...) to a client that sends but never reads are the one
    // output the other bounds do not cover: past twice the bound the client goes.
    if (connection->unsent_output_bytes() > 2 * size_t{options_.max_client_output_bytes}) {
      ++counters_.slow_consumers_disconnected;
      LOG_WARNING_LIMITED("client '%s' does not read what it is sent (over twice --max-client-output-bytes=%u): closing",
                  connection->session ? connection->session->client_id : std::string(), options_.max_client_output_bytes);
      end_connection(connection, /*publish_will=*/true, /*flush_first=*/false,
                     {CloseReason::kSlowConsumer, -1,
                      "does not read what it is sent (over twice --max-client-output-bytes)"});
      next = Next::kStop;
      break;
    }
    // The answer waits for other shards: the next packets wait for it (barrier.cc).
    if (connection->input_held) break;
  }
  *consumed = offset;
  return next;
}

ShardState::Next ShardState::handle_packet(Connection* connection, const mqtt::FixedHeader& header,
                                           std::span<const uint8_t> body) {
  using mqtt::PacketType;
  if (connection->state == ConnectionState::kAwaitingConnect) {
    if (header.type != PacketType::kConnect) {
      close_for_protocol_error(connection, ReasonCode::kProtocolError,
                               absl::StrFormat("%s before CONNECT", mqtt::packet_type_name(header.type)));
      return Next::kStop;
    }
    return handle_connect(connection, body, header.flags);
  }
  if (connection->state == ConnectionState::kAuthenticating) {
    if (header.type == PacketType::kAuth) return handle_auth(connection, body, header.flags) ? Next::kContinue : Next::kStop;
    if (header.type == PacketType::kDisconnect) {
      // Not connected yet: neither logged nor reported as a disconnect.
      end_connection(connection, /*publish_will=*/false, /*flush_first=*/false,
                     {CloseReason::kClientDisconnect, -1, "DISCONNECT during authentication"});
      return Next::kStop;
    }
    close_for_protocol_error(connection, ReasonCode::kProtocolError,
                             absl::StrFormat("%s during authentication", mqtt::packet_type_name(header.type)));
    return Next::kStop;
  }
  COREMQ_ASSERT(connection->state == ConnectionState::kConnected);
  // Kept by hold_for_decision when a hook answers later.
  current_packet_type_ = header.type;
  current_packet_flags_ = header.flags;
  current_packet_body_ = body;
  bool keep_going = false;
  switch (header.type) {
    case PacketType::kPublish: keep_going = handle_publish(connection, body, header.flags); break;
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp: keep_going = handle_ack(connection, header.type, body, header.flags); break;
    case PacketType::kSubscribe: keep_going = handle_subscribe(connection, body, header.flags); break;
    case PacketType::kUnsubscribe: keep_going = handle_unsubscribe(connection, body, header.flags); break;
    case PacketType::kPingreq:
      if (mqtt::decode_empty(body, header.flags, header.type) != mqtt::DecodeStatus::kOk) {
        close_for_protocol_error(connection, ReasonCode::kMalformedPacket, "malformed PINGREQ");
        return Next::kStop;
      }
      // Behind acknowledgements that wait for the store (as behind a waiting SUBACK), so a
      // client that synchronises on PINGRESP has every earlier answer first.
      keep_going = connection->answers_waiting > 0
                       ? queue_ack(connection, PacketType::kPingresp, 0, 0)
                       : stage_packet(connection, PacketType::kPingresp,
                                      [](base::ByteBuffer& out, bool) { mqtt::encode_pingresp(out); });
      break;
    case PacketType::kDisconnect: handle_disconnect(connection, body, header.flags); return Next::kStop;
    case PacketType::kAuth: keep_going = handle_auth(connection, body, header.flags); break;
    case PacketType::kConnect:
      close_for_protocol_error(connection, ReasonCode::kProtocolError, "second CONNECT");
      return Next::kStop;
    default:
      close_for_protocol_error(connection, ReasonCode::kProtocolError,
                               absl::StrFormat("unexpected %s from a client", mqtt::packet_type_name(header.type)));
      return Next::kStop;
  }
  return keep_going ? Next::kContinue : Next::kStop;
}

bool ShardState::wants_problem_information(const Connection* connection) const {
  return connection->version == mqtt::ProtocolVersion::kV5 && connection->request_problem_information;
}

void ShardState::send_disconnect(Connection* connection, ReasonCode reason, std::string_view why) {
  COREMQ_ASSERT(connection->version == mqtt::ProtocolVersion::kV5);
  // DISCONNECT may carry a Reason String whatever Request Problem Information said
  // (MQTT-3.1.2-29 names the packets it forbids, and DISCONNECT is not one of them).
  encode_reason_string(why);
  // A DISCONNECT that does not fit even bare is left out: the connection is closing anyway.
  (void)stage_packet(connection, mqtt::PacketType::kDisconnect, [&](base::ByteBuffer& out, bool with_optional) {
    mqtt::encode_disconnect_v5(out, static_cast<uint8_t>(reason),
                               with_optional ? property_scratch_.span() : std::span<const uint8_t>());
  });
}

void ShardState::encode_reason_string(std::string_view why) {
  property_scratch_.clear();
  // A short human-readable reason; stage_packet drops it again when the packet would pass
  // the client's Maximum Packet Size with it (MQTT-3.1.2-25: the reason is optional, the
  // limit is not).
  if (why.empty() || why.size() >= 256) return;
  property_scratch_.append_u8(static_cast<uint8_t>(mqtt::PropertyId::kReasonString));
  property_scratch_.append_u16(static_cast<uint16_t>(why.size()));
  property_scratch_.append(why);
}

bool ShardState::stage_packet(Connection* connection, mqtt::PacketType type, PacketEncoder encode) {
  if (!stage_packet_into(connection->output, connection, type, encode)) return false;
  io_.request_flush(connection);
  return true;
}

bool ShardState::stage_packet_into(base::ByteBuffer& out, Connection* connection, mqtt::PacketType type,
                                   PacketEncoder encode) {
  // Encoded in place and withdrawn when over the limit, so the packet that fits (nearly
  // always) costs no copy; the second encoding happens only for one that does not.
  const size_t start = out.size();
  const uint32_t limit = connection->client_maximum_packet_size;  // 0: none (and always before MQTT 5)
  encode(out, /*with_optional_properties=*/true);
  if (limit != 0 && out.size() - start > limit) {
    out.truncate(start);
    encode(out, /*with_optional_properties=*/false);
  }
  const size_t size = out.size() - start;
  if (limit == 0 || size <= limit) {
    ++counters_.packets_sent;
    return true;
  }
  out.truncate(start);
  ++counters_.packets_over_client_maximum;
  LOG_INFO_LIMITED("%s of %u bytes for connection fd %d (client '%s') is over the client's Maximum Packet Size %u: "
                   "not sent, closing",
                   mqtt::packet_type_name(type), size, connection->fd,
                   connection->session ? connection->session->client_id : std::string(), limit);
  if (type != mqtt::PacketType::kDisconnect) {
    // What was staged before still goes out. A client that never had its CONNACK was never
    // connected, so its will is not published.
    std::string why =
        absl::StrFormat("a %s over the client's Maximum Packet Size", mqtt::packet_type_name(type));
    end_connection(connection, /*publish_will=*/type != mqtt::PacketType::kConnack, /*flush_first=*/true,
                   {CloseReason::kPacketTooLarge, static_cast<int>(ReasonCode::kPacketTooLarge), why});
  }
  return false;
}

void ShardState::close_for_protocol_error(Connection* connection, ReasonCode reason, std::string_view why) {
  ++counters_.protocol_errors;
  const char* who = connection->session ? connection->session->client_id.c_str() : "";
  if (connection->state == ConnectionState::kAuthenticating) {
    // CONNECT is read but not yet answered: the reason goes in CONNACK (which logs it), since
    // no DISCONNECT may come before a successful CONNACK (MQTT-3.14.0-1).
    refuse_connect(connection, mqtt::ProtocolVersion::kV5, reason, why);
    return;
  }
  bool tell_client =
      connection->version == mqtt::ProtocolVersion::kV5 && connection->state == ConnectionState::kConnected;
  // A connected client's close is logged by end_connection (with this reason); one that did not
  // finish CONNECT has no disconnect line, so it gets this one.
  if (connection->state != ConnectionState::kConnected) {
    LOG_INFO_LIMITED("closing connection fd %d (client '%s'): %s", connection->fd, who, why);
  }
  if (tell_client) send_disconnect(connection, reason, why);
  end_connection(connection, /*publish_will=*/true, /*flush_first=*/tell_client,
                 {CloseReason::kProtocolError, static_cast<int>(reason), why});
}

void ShardState::end_connection(Connection* connection, bool publish_will, bool flush_first, EndCause cause) {
  if (connection->state == ConnectionState::kClosing) return;
  // The log line and the event below are both made from `cause`, and only here.
  if (connection->state == ConnectionState::kConnected && connection->session != nullptr) {
    log_disconnected(connection, connection->session, cause);
  }
  bool was_handing_off = connection->state == ConnectionState::kHandingOff;
  connection->state = ConnectionState::kClosing;
  forget_password_check(connection);
  forget_pending_decision(connection);
  if (connection->answers_waiting > 0) drop_waiting_answers(connection);
  connections_.erase(connection);
  COREMQ_ASSERT(counters_.connections_current > 0);
  --counters_.connections_current;

  Session* session = connection->session;
  if (session != nullptr) {
    COREMQ_ASSERT(session->connection == connection);
    session->connection = nullptr;
    connection->session = nullptr;
    session->timer_generation = ++timer_generation_last_;  // timers set while connected (none today) lose meaning
    int64_t now = io_.now_ms();
    bool session_ends_now = session->expiry_seconds == 0;
    if (connection->connect_reported) report_disconnected(connection, session, cause, publish_will && session->will);
    if (publish_will && session->will != nullptr) {
      // MQTT-3.1.3-9: the will waits for its delay or the session's end, whichever is first.
      uint32_t delay = std::min(session->will_delay_seconds, session->expiry_seconds);
      if (delay == 0) {
        publish_will_message(session);
      } else {
        session->will_pending = true;
        schedule(now + int64_t{delay} * 1000, /*is_will=*/true, session);
      }
    }
    if (!session->will_pending) session->will.reset();
    if (session_ends_now) {
      destroy_session(session);
    } else {
      if (session->expiry_seconds != kSessionNeverExpires) {
        schedule(now + int64_t{session->expiry_seconds} * 1000, /*is_will=*/false, session);
      }
      journal_session(session);  // --persistence: disconnected at, and the will still pending
    }
  }
  if (!was_handing_off) io_.close_connection(connection, flush_first);
}

void ShardState::on_transport_closed(Connection* connection, bool flush_answer) {
  if (connection->state == ConnectionState::kClosing) return;
  end_connection(connection, /*publish_will=*/true, /*flush_first=*/flush_answer,
                 {CloseReason::kConnectionLost});
}

void ShardState::on_transport_error(Connection* connection, std::string_view why) {
  if (connection->state == ConnectionState::kClosing) return;
  ++counters_.transport_errors;
  if (connection->state != ConnectionState::kConnected) {
    LOG_INFO_LIMITED("closing fd %d before CONNECT: %s", connection->fd, why);
  }
  LOG_INFO_LIMITED("closing %s: %s",
                   connection->session != nullptr ? absl::StrFormat("client '%s'", connection->session->client_id)
                                                  : absl::StrFormat("fd %d before CONNECT", connection->fd),
                   why);
  end_connection(connection, /*publish_will=*/true, /*flush_first=*/true,
                 {CloseReason::kTransportError, -1, why});
}

void ShardState::on_output_drained(Connection* connection) {
  if (connection->state != ConnectionState::kConnected) return;
  if (connection->session != nullptr && !connection->session->queue.empty()) pump_queue(connection->session);
}

void ShardState::on_tick(int64_t now_ms) {
  now_ms_ = now_ms;
  run_due_timers(now_ms);
  expire_pending_decisions(now_ms);
  retained_.forget_tombstones(now_ms);
  // Collect first: ending a connection edits connections_.
  std::vector<std::pair<Connection*, bool>> expired;  // connection, is keep-alive expiry
  for (Connection* connection : connections_) {
    // Input parked by the loop (paused or held) is unread activity: a DISCONNECT in it must
    // be read before any timer may end the connection.
    if (connection->parked_count > 0) continue;
    if (connection->state == ConnectionState::kAwaitingConnect ||
        connection->state == ConnectionState::kAuthenticating) {
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
      bool v5 = connection->version == mqtt::ProtocolVersion::kV5;
      if (v5) send_disconnect(connection, ReasonCode::kKeepAliveTimeout, "keep-alive timeout");
      LOG_INFO_LIMITED("client '%s' keep-alive of %u s expired, closing", connection->session->client_id,
                       connection->keep_alive_seconds);
      std::string why = absl::StrFormat("no packet for 1.5 x %u s", connection->keep_alive_seconds);
      end_connection(connection, /*publish_will=*/true, /*flush_first=*/true,
                     {CloseReason::kKeepAliveTimeout, static_cast<int>(ReasonCode::kKeepAliveTimeout), why});
    } else {
      ++counters_.connect_timeouts;
      LOG_INFO_LIMITED("connection fd %d sent no CONNECT (or did not finish its authentication) within %u s, closing",
               connection->fd, options_.connect_timeout_seconds);
      // Never connected: neither logged nor reported as a disconnect.
      end_connection(connection, /*publish_will=*/false, /*flush_first=*/false,
                     {CloseReason::kUnknown, -1, "no CONNECT in time"});
    }
  }
}

void ShardState::on_shutdown() {
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (Connection* connection : all) {
    if (connection->state == ConnectionState::kConnected && connection->version == mqtt::ProtocolVersion::kV5) {
      send_disconnect(connection, ReasonCode::kServerShuttingDown, "server shutting down");
    }
    end_connection(connection, /*publish_will=*/false, /*flush_first=*/true,
                   {CloseReason::kShutdown, static_cast<int>(ReasonCode::kServerShuttingDown)});
  }
}

void ShardState::on_cross_shard(CrossShardItem item) {
  switch (item.kind) {
    case CrossShardItem::Kind::kPublish:
      deliver_locally(MessageRef::adopt(static_cast<Message*>(item.pointer)));
      break;
    case CrossShardItem::Kind::kRetainUpdate: {
      update_retained(MessageRef::adopt(static_cast<Message*>(item.pointer)), /*from_here=*/false);
      break;
    }
    case CrossShardItem::Kind::kSharedPublish: {
      std::unique_ptr<SharedDelivery> shared(static_cast<SharedDelivery*>(item.pointer));
      SharedSubscriptions::Group* group = shared_.find(shared->group_key);
      if (group == nullptr) {
        ++counters_.messages_dropped_queue_full;
        LOG_DEBUG("shared group '%s' has no members any more; message dropped", shared->group_key);
        break;
      }
      deliver_shared_locally(shared->message, *group, shared->hops + 1);
      break;
    }
    case CrossShardItem::Kind::kInterestAdd:
    case CrossShardItem::Kind::kInterestRemove: {
      std::unique_ptr<InterestChange> change(static_cast<InterestChange*>(item.pointer));
      bool add = item.kind == CrossShardItem::Kind::kInterestAdd;
      std::string_view key, filter;
      if (parse_shared_filter(change->filter, &key, &filter)) {
        if (add) shared_.add_remote(key, filter, item.from_shard);
        else shared_.remove_remote(key, item.from_shard);
      } else if (add) {
        remote_interest_.insert(change->filter, item.from_shard, 0);
      } else {
        remote_interest_.remove(change->filter, item.from_shard);
      }
      break;
    }
    case CrossShardItem::Kind::kBarrierRequest: {
      // Everything the peer posted before this request has been applied here (FIFO ring);
      // with persistence, the ack also waits until what that made this shard write is durable.
      answer_barrier_request(item.from_shard, item.sequence);
      break;
    }
    case CrossShardItem::Kind::kBarrierAck: on_barrier_ack(item.from_shard, item.sequence); break;
    case CrossShardItem::Kind::kAdoptConnection:
      COREMQ_ASSERT_MSG(false, "connection adoption is handled by the shard loop");
      break;
  }
}

}  // namespace coremq::broker
