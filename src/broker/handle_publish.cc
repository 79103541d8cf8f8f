// PUBLISH from a client (MQTT 5 topic aliases, QoS/retain limits, receive maximum)
// and the acknowledgements of both QoS flows: inbound QoS 1 (PUBACK) and QoS 2
// (PUBREC, then PUBREL -> PUBCOMP); outbound PUBACK, PUBREC -> PUBREL, PUBCOMP from
// the client; and DISCONNECT. Runs on the session's shard.
#include <algorithm>

#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/properties.h"

namespace coremq::broker {

using mqtt::PacketType;
using mqtt::ProtocolVersion;
using mqtt::ReasonCode;

bool ShardState::handle_publish(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  // One packet reused per shard: a fresh one costs as much to zero as the decode itself.
  mqtt::PublishPacket& publish = publish_scratch_;
  mqtt::DecodeStatus status = mqtt::decode_publish(body, flags, connection->version, &publish);
  if (status != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, mqtt::reason_code_for(status),
                             absl::StrFormat("bad PUBLISH: %s", mqtt::decode_status_name(status)));
    return false;
  }
  Session* session = connection->session;
  std::string_view topic = publish.topic;
  // Counted by the decoder's validity scan, so this costs one compare (an aliased topic
  // was counted when the alias was set).
  if (publish.topic_levels > options_.max_topic_levels) {
    ++counters_.topic_levels_refused;
    close_for_protocol_error(connection, ReasonCode::kTopicNameInvalid,
                             absl::StrFormat("topic of %u levels is over --max-topic-levels=%u", publish.topic_levels,
                                             options_.max_topic_levels));
    return false;
  }
  if (connection->version == ProtocolVersion::kV5) {
    if (publish.qos > options_.maximum_qos) {
      close_for_protocol_error(connection, ReasonCode::kQosNotSupported,
                               absl::StrFormat("QoS %u is over the server's maximum QoS %u", publish.qos,
                                               options_.maximum_qos));
      return false;
    }
    if (publish.retain && !options_.retain_available) {
      close_for_protocol_error(connection, ReasonCode::kRetainNotSupported, "retain is not available");
      return false;
    }
    if (publish.properties.topic_alias) {
      uint16_t alias = *publish.properties.topic_alias;
      if (alias == 0 || alias > options_.topic_alias_maximum) {
        close_for_protocol_error(connection, ReasonCode::kTopicAliasInvalid,
                                 absl::StrFormat("topic alias %u outside 1..%u", alias, options_.topic_alias_maximum));
        return false;
      }
      if (!connection->topic_aliases) connection->topic_aliases = std::make_unique<TopicAliases>();
      auto& inbound = connection->topic_aliases->inbound;
      if (inbound.size() < options_.topic_alias_maximum) inbound.resize(options_.topic_alias_maximum);
      if (!topic.empty()) {
        inbound[alias - 1] = std::string(topic);
      } else if (inbound[alias - 1].empty()) {
        close_for_protocol_error(connection, ReasonCode::kProtocolError,
                                 absl::StrFormat("topic alias %u was never set", alias));
        return false;
      } else {
        topic = inbound[alias - 1];
      }
    } else if (topic.empty()) {
      close_for_protocol_error(connection, ReasonCode::kProtocolError, "empty topic without a topic alias");
      return false;
    }
  }
  // A PUBLISH handled again after an asynchronous hook answered was counted the first time.
  if (connection->pending_decision == nullptr) ++counters_.messages_received;
  // Mosquitto refuses every client write to $SYS (security.c acl__check_dollar), before and
  // whatever the ACL says; the broker's own $SYS publisher is in-process.
  if (!connection->in_process && reserved_for_broker(topic)) {
    return refuse_publish(connection, publish, topic, "$SYS is written only by the broker");
  }
  if (session->acl != nullptr && !session->acl->can_publish(topic)) {
    return refuse_publish(connection, publish, topic, "ACL file");
  }
  if (options_.authorization_hook != nullptr) {
    switch (authorize_publish(connection, publish, topic)) {
      case Interception::kPass: break;
      case Interception::kDropped: return true;
      case Interception::kStop: return false;
      case Interception::kHeld: return true;
    }
  }
  const MessageProperties* replaced_properties = nullptr;
  if (interceptor_ != nullptr) [[unlikely]] {
    // A QoS 2 resend before PUBREL was intercepted on its first arrival.
    bool resend = publish.qos == 2 && session->incoming_qos2 != nullptr &&
                  session->incoming_qos2->contains(publish.packet_id);
    if (!resend) {
      Interception result = intercept_publish(connection, publish, &topic);
      if (result == Interception::kHeld) return true;
      if (result != Interception::kPass) return result == Interception::kDropped;
      if (rewrite_scratch_.properties) replaced_properties = &*rewrite_scratch_.properties;
    }
  }

  if (publish.qos == 2) {
    // Delivered on the first PUBLISH of a packet id; a resend (before PUBREL) is only
    // acknowledged again, so the message goes out exactly once. 3.1.1 bounds the set
    // only by the packet id space; MQTT 5 by the Receive Maximum we announced.
    if (!session->incoming_qos2) session->incoming_qos2 = std::make_unique<absl::flat_hash_set<uint16_t>>();
    bool first = session->incoming_qos2->insert(publish.packet_id).second;
    if (first) journal_incoming_qos2(session, publish.packet_id, /*received=*/true);
    if (first && connection->version == ProtocolVersion::kV5 &&
        session->incoming_qos2->size() > options_.receive_maximum) {
      close_for_protocol_error(connection, ReasonCode::kReceiveMaximumExceeded,
                               absl::StrFormat("more than Receive Maximum %u QoS 2 messages awaiting PUBREL",
                                               options_.receive_maximum));
      return false;
    }
    if (first) publish_from_here(make_message(connection, publish, topic, replaced_properties));
    // publish_from_here may deliver to this very connection; it is still open here.
    return acknowledge_publish(connection, PacketType::kPubrec, publish.packet_id, publish.retain);
  }
  publish_from_here(make_message(connection, publish, topic, replaced_properties));
  if (publish.qos == 1) return acknowledge_publish(connection, PacketType::kPuback, publish.packet_id, publish.retain);
  return true;
}

bool ShardState::refuse_publish(Connection* connection, const mqtt::PublishPacket& publish, std::string_view topic,
                                std::string_view why) {
  // As Mosquitto 2.0: the message is dropped and its QoS flow still ends normally for the
  // client. MQTT 5 gets Not authorized in the PUBACK/PUBREC (which ends a QoS 2 exchange);
  // 3.1.1 has no reason code, so a QoS 2 client goes on with PUBREL and gets its PUBCOMP.
  ++counters_.acl_publishes_denied;
  LOG_INFO_LIMITED("client '%s' may not publish to '%s' (%s): message dropped", connection->session->client_id, topic,
                   why);
  report_dropped(connection->session, topic, publish.qos, DropReason::kAuthorization);
  if (publish.qos == 0) return true;
  uint8_t reason = connection->version == ProtocolVersion::kV5 ? static_cast<uint8_t>(ReasonCode::kNotAuthorized) : 0;
  return send_ack(connection, publish.qos == 1 ? PacketType::kPuback : PacketType::kPubrec, publish.packet_id, reason);
}

ShardState::Interception ShardState::authorize_publish(Connection* connection, const mqtt::PublishPacket& publish,
                                                       std::string_view topic) {
  HookAnswer::Kind answer = HookAnswer::Kind::kNone;
  if (const HookAnswer* stored = stored_answer(connection, PendingDecision::Stage::kPublishAuthorization)) {
    answer = stored->kind;
  } else {
    Deferral deferral(*this);
    AuthorizationHook::Decision decision = options_.authorization_hook->decide_publish(
        hook_identity(connection->session), topic, publish.qos, publish.retain, deferral);
    if (decision == AuthorizationHook::Decision::kDefer) {
      switch (hold_for_decision(connection, deferral, PendingDecision::Stage::kPublishAuthorization)) {
        case Held::kHeld: return Interception::kHeld;
        case Held::kBusy:
          return refuse_intercepted(connection, publish, topic, ReasonCode::kQuotaExceeded, DropReason::kAuthorization)
                     ? Interception::kDropped
                     : Interception::kStop;
        case Held::kBroken: answer = HookAnswer::Kind::kDeny; break;
      }
    } else {
      answer = decision == AuthorizationHook::Decision::kAllow ? HookAnswer::Kind::kAllow : HookAnswer::Kind::kDeny;
    }
  }
  if (answer == HookAnswer::Kind::kAllow) return Interception::kPass;
  if (answer == HookAnswer::Kind::kTimedOut) {
    return refuse_intercepted(connection, publish, topic, ReasonCode::kUnspecifiedError, DropReason::kAuthorization)
               ? Interception::kDropped
               : Interception::kStop;
  }
  return refuse_publish(connection, publish, topic) ? Interception::kDropped : Interception::kStop;
}

bool ShardState::acknowledge_publish(Connection* connection, PacketType type, uint16_t packet_id, bool retain) {
  // --persistence: the message is durable for every persistent session it was queued for or
  // sent to, on this shard and on the peers it was forwarded to (their barrier acks wait for
  // their own batches), and a retained message's record is durable.
  if (journal_ != nullptr) return send_durable_ack(connection, type, packet_id, 0);
  // A retained message acknowledged to its publisher is in every shard's copy (barrier.cc),
  // so any SUBSCRIBE the publisher (or anyone told by it) makes afterwards gets it.
  if (!retain || !answers_must_wait()) return send_ack(connection, type, packet_id, 0);
  WaitingAnswer answer;
  answer.connection = connection;
  if (!stage_packet_into(answer.packet, connection, type, [&](base::ByteBuffer& out, bool) {
        encode_ack(out, connection->version, type, packet_id, 0);
      })) {
    return false;
  }
  wait_for_peers(std::move(answer));
  return true;
}

MessageRef ShardState::make_message(Connection* connection, const mqtt::PublishPacket& publish,
                                    std::string_view topic, const MessageProperties* replaced_properties) {
  Message::Origin origin{shard_id_, connection->session};
  Message::Extras extras;
  extras.ingress_us = turn_time_us_;
  if (publish.retain) extras.retain_stamp = next_retain_stamp();
  if (replaced_properties != nullptr) [[unlikely]] {  // the message interceptor's rewrite
    if (replaced_properties->message_expiry_interval_seconds) {
      extras.expires_at_ms = io_.now_ms() + int64_t{*replaced_properties->message_expiry_interval_seconds} * 1000;
    }
    extras.property_bytes = encode_rewritten_properties(*replaced_properties);
    return MessageRef::adopt(Message::create(topic, publish.payload, publish.qos, publish.retain, origin, extras));
  }
  if (connection->version == ProtocolVersion::kV5 && !publish.properties.encoded.empty()) {
    if (publish.properties.message_expiry_interval_seconds) {
      extras.expires_at_ms = io_.now_ms() + int64_t{*publish.properties.message_expiry_interval_seconds} * 1000;
    }
    extras.property_bytes = encode_forwarded_properties(publish.properties);
  }
  if (ends_input_buffer(connection, publish.payload)) {
    // A large PUBLISH assembled in the input buffer, and the last bytes there: the message
    // takes the buffer over, so its payload is copied once on the way in (from the receive
    // buffers), not twice. The caller then leaves the consumed input alone (input_taken_by_message_).
    size_t block_size = 0;
    void* block = connection->input.release_storage(&block_size);
    input_taken_by_message_ = true;
    ++counters_.payloads_received_in_place;
    return MessageRef::adopt(Message::create_around(topic, publish.payload, block, block_size, publish.qos,
                                                    publish.retain, origin, extras));
  }
  return MessageRef::adopt(Message::create(topic, publish.payload, publish.qos, publish.retain, origin, extras));
}

bool ShardState::ends_input_buffer(const Connection* connection, std::string_view payload) const {
  uint32_t threshold = options_.payload_reference_min_bytes;
  if (threshold == 0 || payload.size() < threshold || connection->input.empty()) return false;
  auto input_start = reinterpret_cast<uintptr_t>(connection->input.data());
  auto payload_start = reinterpret_cast<uintptr_t>(payload.data());
  return payload_start >= input_start && payload_start + payload.size() == input_start + connection->input.size();
}

std::string_view ShardState::encode_forwarded_properties(const mqtt::Properties& received) {
  // Every property but the ones that belong to this hop: the topic alias, and the expiry,
  // which is kept as a deadline and sent as the time left (MQTT-3.3.2-6); a will's delay
  // is the broker's business too.
  mqtt::Properties forwarded = received;
  forwarded.topic_alias.reset();
  forwarded.message_expiry_interval_seconds.reset();
  forwarded.will_delay_interval_seconds.reset();
  user_property_scratch_.resize(received.user_property_count);
  size_t users = mqtt::copy_user_properties(received, user_property_scratch_);
  property_scratch_.clear();
  mqtt::encode_property_bytes(property_scratch_, mqtt::PropertyContext::kPublish, forwarded,
                              std::span(user_property_scratch_.data(), users));
  return property_scratch_.view();
}

void ShardState::encode_ack(base::ByteBuffer& out, ProtocolVersion version, PacketType type, uint16_t packet_id,
                            uint8_t reason) {
  if (version == ProtocolVersion::kV5) {
    mqtt::encode_ack_v5(out, type, packet_id, reason, {});
  } else {
    mqtt::encode_ack(out, type, packet_id);
  }
}

bool ShardState::send_ack(Connection* connection, PacketType type, uint16_t packet_id, uint8_t reason) {
  // Behind an acknowledgement to this client that waits (for peers or the store): acks keep
  // the order of what they answer (MQTT-4.6.0-2).
  if (connection->answers_waiting > 0) [[unlikely]] {
    return queue_ack(connection, type, packet_id, reason);
  }
  return stage_packet(connection, type, [&](base::ByteBuffer& out, bool) {
    encode_ack(out, connection->version, type, packet_id, reason);
  });
}

bool ShardState::close_for_wrong_ack(Connection* connection, PacketType type, const OutgoingInflight& inflight) {
  // The client mixed up the QoS 1 and QoS 2 flows (or skipped PUBREC): its view of what is
  // in flight is not the broker's, so going on would lose or duplicate messages. Mosquitto
  // treats it as a protocol error too.
  ++counters_.wrong_acknowledgements;
  close_for_protocol_error(connection, ReasonCode::kProtocolError,
                           absl::StrFormat("%s for packet id %u, a QoS %u message%s", mqtt::packet_type_name(type),
                                           inflight.packet_id, inflight.delivery.qos,
                                           inflight.delivery.qos == 2 && !inflight.pubrec_received
                                               ? " waiting for PUBREC"
                                               : ""));
  return false;
}

bool ShardState::handle_ack(Connection* connection, PacketType type, std::span<const uint8_t> body, uint8_t flags) {
  mqtt::AckPacket ack;
  mqtt::DecodeStatus status = mqtt::decode_ack(body, flags, type, connection->version, &ack);
  if (status != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, mqtt::reason_code_for(status),
                             absl::StrFormat("bad %s: %s", mqtt::packet_type_name(type), mqtt::decode_status_name(status)));
    return false;
  }
  Session* session = connection->session;
  uint16_t packet_id = ack.packet_id;
  auto not_found = static_cast<uint8_t>(ReasonCode::kPacketIdentifierNotFound);
  switch (type) {
    case PacketType::kPubrel: {
      bool known = session->incoming_qos2 != nullptr && session->incoming_qos2->erase(packet_id) > 0;
      if (!known) return send_ack(connection, PacketType::kPubcomp, packet_id, not_found);
      // --persistence: the id's record is gone before PUBCOMP frees the client to reuse the id.
      journal_incoming_qos2(session, packet_id, /*received=*/false);
      return send_durable_ack(connection, PacketType::kPubcomp, packet_id, 0);
    }
    case PacketType::kPubrec: {
      OutgoingInflight* inflight = find_inflight(session, packet_id);
      // An unknown id is answered all the same (MQTT 5: 0x92), as the spec and Mosquitto
      // do: the exchange may have ended on a resend across a reconnect.
      if (inflight == nullptr) return send_ack(connection, PacketType::kPubrel, packet_id, not_found);
      if (inflight->delivery.qos != 2) return close_for_wrong_ack(connection, type, *inflight);
      if (ack.reason_code >= 0x80) {
        finish_inflight(session, packet_id);  // MQTT 5: an error PUBREC ends the exchange
        return true;
      }
      // Only the PUBREL/PUBCOMP exchange remains: the message itself is not needed. A
      // repeated PUBREC is answered again.
      inflight->pubrec_received = true;
      // --persistence: the record says PUBREL sent before it is, so a restart resends the
      // PUBREL and never the PUBLISH the client already has.
      journal_pubrel_sent(session, *inflight);
      inflight->message = MessageRef();
      return send_durable_ack(connection, PacketType::kPubrel, packet_id, 0);
    }
    case PacketType::kPuback:
    case PacketType::kPubcomp: {
      OutgoingInflight* inflight = find_inflight(session, packet_id);
      if (inflight == nullptr) {
        // Tolerated like an unknown PUBREC (neither MQTT nor Mosquitto closes for it).
        LOG_DEBUG("client '%s' sent %s for unknown packet id %u", session->client_id, mqtt::packet_type_name(type),
                  packet_id);
        return true;
      }
      bool fits_flow = type == PacketType::kPuback ? inflight->delivery.qos == 1
                                                   : inflight->delivery.qos == 2 && inflight->pubrec_received;
      if (!fits_flow) return close_for_wrong_ack(connection, type, *inflight);
      finish_inflight(session, packet_id);
      return true;
    }
    default: COREMQ_ASSERT_MSG(false, "not an acknowledgement");
  }
  return true;
}

bool ShardState::handle_disconnect(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  mqtt::DisconnectPacket disconnect;
  mqtt::DecodeStatus status = mqtt::decode_disconnect(body, flags, connection->version, &disconnect);
  if (status != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, mqtt::reason_code_for(status),
                             absl::StrFormat("bad DISCONNECT: %s", mqtt::decode_status_name(status)));
    return false;
  }
  Session* session = connection->session;
  if (disconnect.properties.session_expiry_interval_seconds) {
    uint32_t expiry = *disconnect.properties.session_expiry_interval_seconds;
    // MQTT-3.14.2-2: a session that was to end at disconnect cannot be kept now.
    if (session->expiry_seconds == 0 && expiry != 0) {
      close_for_protocol_error(connection, ReasonCode::kProtocolError,
                               "DISCONNECT set a session expiry after CONNECT set 0");
      return false;
    }
    session->expiry_seconds = std::min(expiry, options_.max_session_expiry_seconds);
  }
  connection->clean_disconnect = true;
  // MQTT-3.14.4-3: only a normal disconnection (0x00) discards the will; 0x04 asks for
  // it, and an error reason is a failure the will exists for.
  bool publish_will = disconnect.reason_code != static_cast<uint8_t>(ReasonCode::kNormalDisconnection);
  end_connection(connection, publish_will, /*flush_first=*/true,
                 {CloseReason::kClientDisconnect, disconnect.reason_code});
  return false;
}

OutgoingInflight* ShardState::find_inflight(Session* session, uint16_t packet_id) {
  // Acknowledgements nearly always come in send order: the front is the usual hit.
  for (size_t i = 0; i < session->inflight.size(); ++i) {
    if (session->inflight[i].packet_id == packet_id) return &session->inflight[i];
  }
  return nullptr;
}

void ShardState::finish_inflight(Session* session, uint16_t packet_id) {
  auto& inflight = session->inflight;
  for (size_t i = 0; i < inflight.size(); ++i) {
    if (inflight[i].packet_id == packet_id) {
      journal_outgoing_done(&inflight[i].store_sequence, &inflight[i].delivery.store_slot, session, inflight[i].message.get());
      inflight.erase(i);
      break;
    }
  }
  pump_queue(session);
}

}  // namespace coremq::broker
