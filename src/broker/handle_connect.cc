// CONNECT: validation, CONNACK codes, hand-off to the client id's owner shard,
// session creation, resumption and takeover. Runs on the shard that reads the CONNECT
// and again (fully) on the owner shard after a hand-off.
#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"

namespace coremq::broker {

ShardState::Next ShardState::handle_connect(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  using mqtt::ConnectReturnCode;
  mqtt::ConnectPacket connect;
  mqtt::DecodeStatus status = mqtt::decode_connect(body, flags, &connect);
  if (status == mqtt::DecodeStatus::kUnsupportedProtocolLevel) {
    // MQTT-3.1.2-2: answer with 0x01 and close.
    refuse_connect(connection, ConnectReturnCode::kUnacceptableProtocolVersion,
                   absl::StrFormat("unsupported protocol level %u", connect.protocol_level));
    return Next::kStop;
  }
  if (status != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, absl::StrFormat("bad CONNECT: %s", mqtt::decode_status_name(status)));
    return Next::kStop;
  }

  std::string client_id(connect.client_id);
  if (client_id.empty()) {
    // MQTT-3.1.3-7/8: an empty id is allowed only with clean session; 3.1 never allowed it.
    if (!connect.clean_session || connect.protocol_level == 3) {
      refuse_connect(connection, ConnectReturnCode::kIdentifierRejected, "empty client id without clean session");
      return Next::kStop;
    }
    client_id = assign_client_id();
  }
  if (client_id.size() > options_.max_client_id_length) {
    refuse_connect(connection, ConnectReturnCode::kIdentifierRejected,
                   absl::StrFormat("client id of %u bytes is over --max-client-id-length=%u", client_id.size(),
                                   options_.max_client_id_length));
    return Next::kStop;
  }

  uint32_t owner = owner_shard_of(client_id, shard_count_);
  if (owner != shard_id_) {
    // The session and all its state live on the owner shard; move the socket there
    // with every byte read so far. The owner decodes this CONNECT again.
    connection->state = ConnectionState::kHandingOff;
    connections_.erase(connection);
    --counters_.connections_current;
    io_.hand_off_connection(connection, owner);
    return Next::kHandOff;
  }

  Session* session = find_session(client_id);
  if (session != nullptr && session->connection != nullptr) {
    // MQTT-3.1.4-2: the new connection takes the session over; the old one is closed
    // as a network failure would close it, so its will is published.
    LOG_INFO("client '%s' taken over by a new connection, closing the old one", client_id);
    end_connection(session->connection, /*publish_will=*/true, /*flush_first=*/false);
    session = find_session(client_id);  // a clean session ended with its connection
  }
  if (session != nullptr && connect.clean_session) {
    destroy_session(session);
    session = nullptr;
  }
  bool session_present = session != nullptr;
  if (session == nullptr) {
    if (sessions_.size() >= options_.max_sessions) {
      ++counters_.sessions_refused_limit;
      refuse_connect(connection, ConnectReturnCode::kServerUnavailable,
                     absl::StrFormat("this shard holds --max-sessions=%u sessions", options_.max_sessions));
      return Next::kStop;
    }
    auto created = std::make_unique<Session>();
    created->client_id = client_id;
    session = created.get();
    sessions_.emplace(client_id, std::move(created));
  }
  session->clean_session = connect.clean_session;
  session->connection = connection;
  session->has_will = connect.has_will;
  if (connect.has_will) {
    session->will.topic = std::string(connect.will.topic);
    session->will.payload = std::string(connect.will.payload);
    session->will.qos = connect.will.qos;
    session->will.retain = connect.will.retain;
  }
  connection->session = session;
  connection->state = ConnectionState::kConnected;
  connection->version = static_cast<mqtt::ProtocolVersion>(connect.protocol_level);
  connection->keep_alive_seconds = connect.keep_alive_seconds;

  mqtt::encode_connack(connection->output, session_present, ConnectReturnCode::kAccepted);
  io_.request_flush(connection);
  LOG_INFO("client '%s' connected (protocol level %u, clean session %d, keep-alive %u s, session present %d)",
           client_id, connect.protocol_level, connect.clean_session, connect.keep_alive_seconds, session_present);
  if (session_present) resume_session(session);
  return Next::kContinue;
}

void ShardState::refuse_connect(Connection* connection, mqtt::ConnectReturnCode code, std::string_view reason) {
  LOG_INFO("refusing CONNECT on fd %d with return code %u: %s", connection->fd, static_cast<unsigned>(code), reason);
  mqtt::encode_connack(connection->output, false, code);
  io_.request_flush(connection);
  end_connection(connection, /*publish_will=*/false, /*flush_first=*/true);
}

std::string ShardState::assign_client_id() {
  // The id must hash to this shard, so the session stays here: try counters until one does.
  for (;;) {
    std::string candidate = absl::StrFormat("coremq-%u-%x", shard_id_, ++assigned_id_counter_);
    if (owner_shard_of(candidate, shard_count_) == shard_id_ && find_session(candidate) == nullptr) return candidate;
  }
}

void ShardState::resume_session(Session* session) {
  Connection* connection = session->connection;
  COREMQ_ASSERT(connection != nullptr);
  // MQTT-4.4.0-1: resend unacknowledged PUBLISH (DUP set) and PUBREL, in their order.
  for (size_t i = 0; i < session->inflight.size(); ++i) {
    OutgoingInflight& inflight = session->inflight[i];
    if (inflight.pubrec_received) {
      mqtt::encode_ack(connection->output, mqtt::PacketType::kPubrel, inflight.packet_id);
    } else {
      send_publish(session, inflight.message, inflight.qos, inflight.retain_flag, /*dup=*/true, inflight.packet_id);
    }
  }
  io_.request_flush(connection);
  pump_queue(session);
}

}  // namespace coremq::broker
