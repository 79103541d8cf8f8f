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
  ++counters_.messages_received;

  if (publish.qos == 2) {
    // Delivered on the first PUBLISH of a packet id; a resend (before PUBREL) is only
    // acknowledged again, so the message goes out exactly once. 3.1.1 bounds the set
    // only by the packet id space; MQTT 5 by the Receive Maximum we announced.
    if (!session->incoming_qos2) session->incoming_qos2 = std::make_unique<absl::flat_hash_set<uint16_t>>();
    bool first = session->incoming_qos2->insert(publish.packet_id).second;
    if (first && connection->version == ProtocolVersion::kV5 &&
        session->incoming_qos2->size() > options_.receive_maximum) {
      close_for_protocol_error(connection, ReasonCode::kReceiveMaximumExceeded,
                               absl::StrFormat("more than Receive Maximum %u QoS 2 messages awaiting PUBREL",
                                               options_.receive_maximum));
      return false;
    }
    if (first) publish_from_here(make_message(connection, publish, topic));
    // publish_from_here may deliver to this very connection; it is still open here.
    acknowledge_publish(connection, PacketType::kPubrec, publish.packet_id, publish.retain);
  } else {
    publish_from_here(make_message(connection, publish, topic));
    if (publish.qos == 1) acknowledge_publish(connection, PacketType::kPuback, publish.packet_id, publish.retain);
  }
  return true;
}

void ShardState::acknowledge_publish(Connection* connection, PacketType type, uint16_t packet_id, bool retain) {
  // A retained message acknowledged to its publisher is in every shard's copy (barrier.cc),
  // so any SUBSCRIBE the publisher (or anyone told by it) makes afterwards gets it.
  if (!retain || !answers_must_wait()) {
    send_ack(connection, type, packet_id, 0);
    return;
  }
  WaitingAnswer answer;
  answer.connection = connection;
  encode_ack_into(answer.packet, connection, type, packet_id, 0);
  wait_for_peers(std::move(answer));
}

MessageRef ShardState::make_message(Connection* connection, const mqtt::PublishPacket& publish,
                                    std::string_view topic) {
  Message::Origin origin{shard_id_, connection->session};
  Message::Extras extras;
  if (publish.retain) extras.retain_stamp = next_retain_stamp();
  if (connection->version != ProtocolVersion::kV5 || publish.properties.encoded.empty()) {
    return MessageRef::adopt(Message::create(topic, publish.payload, publish.qos, publish.retain, origin, extras));
  }
  if (publish.properties.message_expiry_interval_seconds) {
    extras.expires_at_ms = io_.now_ms() + int64_t{*publish.properties.message_expiry_interval_seconds} * 1000;
  }
  extras.property_bytes = encode_forwarded_properties(publish.properties);
  return MessageRef::adopt(Message::create(topic, publish.payload, publish.qos, publish.retain, origin, extras));
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

void ShardState::send_ack(Connection* connection, PacketType type, uint16_t packet_id, uint8_t reason) {
  encode_ack_into(connection->output, connection, type, packet_id, reason);
  io_.request_flush(connection);
}

void ShardState::encode_ack_into(base::ByteBuffer& out, const Connection* connection, PacketType type,
                                 uint16_t packet_id, uint8_t reason) {
  if (connection->version == ProtocolVersion::kV5) {
    mqtt::encode_ack_v5(out, type, packet_id, reason, {});
  } else {
    mqtt::encode_ack(out, type, packet_id);
  }
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
      send_ack(connection, PacketType::kPubcomp, packet_id, known ? 0 : not_found);
      return true;
    }
    case PacketType::kPubrec: {
      OutgoingInflight* inflight = find_inflight(session, packet_id);
      if (inflight != nullptr && inflight->delivery.qos == 2 && ack.reason_code >= 0x80) {
        finish_inflight(session, packet_id);  // MQTT 5: an error PUBREC ends the exchange
        return true;
      }
      if (inflight != nullptr && inflight->delivery.qos == 2) {
        // Only the PUBREL/PUBCOMP exchange remains: the message itself is not needed.
        inflight->pubrec_received = true;
        inflight->message = MessageRef();
      }
      send_ack(connection, PacketType::kPubrel, packet_id, inflight != nullptr ? 0 : not_found);
      return true;
    }
    case PacketType::kPuback:
    case PacketType::kPubcomp: {
      uint8_t expected_qos = type == PacketType::kPuback ? 1 : 2;
      OutgoingInflight* inflight = find_inflight(session, packet_id);
      if (inflight == nullptr || inflight->delivery.qos != expected_qos ||
          (type == PacketType::kPubcomp && !inflight->pubrec_received)) {
        LOG_DEBUG("client '%s' sent %s for unknown packet id %u", session->client_id, mqtt::packet_type_name(type),
                  packet_id);
        return true;
      }
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
  LOG_DEBUG("client '%s' disconnected (reason 0x%02x)", session->client_id, disconnect.reason_code);
  end_connection(connection, publish_will, /*flush_first=*/true);
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
      inflight.erase(i);
      break;
    }
  }
  pump_queue(session);
}

}  // namespace coremq::broker
