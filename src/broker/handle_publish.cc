// PUBLISH from a client and the acknowledgements of both QoS flows:
// inbound QoS 1 (PUBACK) and QoS 2 (PUBREC, then PUBREL -> PUBCOMP); outbound
// PUBACK, PUBREC -> PUBREL, PUBCOMP from the client. Runs on the session's shard.
#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"

namespace coremq::broker {

bool ShardState::handle_publish(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  mqtt::PublishPacket publish;
  mqtt::DecodeStatus status = mqtt::decode_publish(body, flags, connection->version, &publish);
  if (status != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, absl::StrFormat("bad PUBLISH: %s", mqtt::decode_status_name(status)));
    return false;
  }
  ++counters_.messages_received;
  Session* session = connection->session;

  if (publish.qos == 2) {
    // Delivered on the first PUBLISH of a packet id; a resend (before PUBREL) is only
    // acknowledged again, so the message goes out exactly once.
    // The set is bounded by the packet id space (65535 ids); MQTT 3.1.1 gives the
    // server no other way to limit a client's unreleased QoS 2 messages.
    bool first = session->incoming_qos2.insert(publish.packet_id).second;
    if (first) {
      publish_from_here(MessageRef::adopt(
          Message::create(publish.topic, publish.payload, publish.qos, publish.retain, shard_id_)));
    }
    // publish_from_here can deliver to this very connection and, if its client stopped
    // reading, never end it; the connection is still ours here.
    mqtt::encode_ack(connection->output, mqtt::PacketType::kPubrec, publish.packet_id);
  } else {
    publish_from_here(
        MessageRef::adopt(Message::create(publish.topic, publish.payload, publish.qos, publish.retain, shard_id_)));
    if (publish.qos == 1) mqtt::encode_ack(connection->output, mqtt::PacketType::kPuback, publish.packet_id);
  }
  if (publish.qos > 0) io_.request_flush(connection);
  return true;
}

bool ShardState::handle_puback(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  uint16_t packet_id = 0;
  if (mqtt::decode_packet_id_only(body, flags, mqtt::PacketType::kPuback, &packet_id) != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, "malformed PUBACK");
    return false;
  }
  OutgoingInflight* inflight = find_inflight(connection->session, packet_id);
  if (inflight == nullptr || inflight->qos != 1) {
    LOG_DEBUG("client '%s' acknowledged unknown QoS 1 packet id %u", connection->session->client_id, packet_id);
    return true;
  }
  finish_inflight(connection->session, packet_id);
  return true;
}

bool ShardState::handle_pubrec(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  uint16_t packet_id = 0;
  if (mqtt::decode_packet_id_only(body, flags, mqtt::PacketType::kPubrec, &packet_id) != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, "malformed PUBREC");
    return false;
  }
  OutgoingInflight* inflight = find_inflight(connection->session, packet_id);
  if (inflight != nullptr && inflight->qos == 2) {
    // The message itself is no longer needed: only the PUBREL/PUBCOMP exchange remains.
    inflight->pubrec_received = true;
    inflight->message = MessageRef();
  }
  mqtt::encode_ack(connection->output, mqtt::PacketType::kPubrel, packet_id);
  io_.request_flush(connection);
  return true;
}

bool ShardState::handle_pubrel(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  uint16_t packet_id = 0;
  if (mqtt::decode_packet_id_only(body, flags, mqtt::PacketType::kPubrel, &packet_id) != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, "malformed PUBREL");
    return false;
  }
  connection->session->incoming_qos2.erase(packet_id);
  mqtt::encode_ack(connection->output, mqtt::PacketType::kPubcomp, packet_id);
  io_.request_flush(connection);
  return true;
}

bool ShardState::handle_pubcomp(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  uint16_t packet_id = 0;
  if (mqtt::decode_packet_id_only(body, flags, mqtt::PacketType::kPubcomp, &packet_id) != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, "malformed PUBCOMP");
    return false;
  }
  OutgoingInflight* inflight = find_inflight(connection->session, packet_id);
  if (inflight == nullptr || inflight->qos != 2) {
    LOG_DEBUG("client '%s' completed unknown QoS 2 packet id %u", connection->session->client_id, packet_id);
    return true;
  }
  finish_inflight(connection->session, packet_id);
  return true;
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
