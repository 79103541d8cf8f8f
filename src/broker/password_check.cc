// Password files (Mosquitto's password_file): a CONNECT with a username on a listener that
// has one waits, held, while the password checker hashes the password on its own threads
// (src/auth/password_checker.h); the verdict comes back through this shard's ring as
// on_password_verdict. Runs on the owner shard (after any hand-off), so the session the
// CONNECT ends in is this shard's. Shard thread only.
#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "mqtt/decoder.h"

namespace coremq::broker {

using mqtt::ProtocolVersion;
using mqtt::ReasonCode;

bool ShardState::username_from_certificate(const Connection* connection) const {
  const ListenerOptions& listener = listeners_[connection->listener];
  return listener.tls &&
         (listener.tls_options.use_identity_as_username || listener.tls_options.use_subject_as_username);
}

bool ShardState::apply_certificate_username(Connection* connection, mqtt::ConnectPacket* connect) {
  if (!username_from_certificate(connection)) return true;
  std::string_view name;
  if (connection->channel != nullptr) name = connection->channel->transport->certificate_username();
  if (name.empty()) {
    // Mosquitto refuses these too: the listener names its users by certificate, and this
    // client's certificate names none (no certificate, or a CN it cannot use).
    ++counters_.authentication_failures;
    refuse_connect(
        connection, static_cast<ProtocolVersion>(connect->protocol_level), ReasonCode::kNotAuthorized,
        "the listener takes usernames from client certificates, and this client's certificate gives none");
    return false;
  }
  // The name points into the transport, which outlives this CONNECT's handling.
  connect->has_username = true;
  connect->username = name;
  return true;
}

bool ShardState::needs_password_check(const Connection* connection,
                                      const mqtt::ConnectPacket& connect) const {
  // Without a username the client is anonymous: the listener's anonymous rule decides. With an
  // Authentication Method the enhanced-authentication hook decides. A username taken from a
  // verified client certificate is already authenticated (as in Mosquitto).
  if (!connect.has_username || connect.properties.authentication_method || connection->in_process) return false;
  if (username_from_certificate(connection)) return false;
  return connection->listener < listeners_.size() && !listeners_[connection->listener].password_file.empty();
}

ShardState::Next ShardState::begin_password_check(Connection* connection, const mqtt::ConnectPacket& connect,
                                                  std::span<const uint8_t> body, uint8_t flags,
                                                  std::string client_id, bool client_id_assigned) {
  COREMQ_ASSERT(connection->state == ConnectionState::kAwaitingConnect);
  auto version = static_cast<ProtocolVersion>(connect.protocol_level);
  uint64_t token = ++password_check_last_;
  if (!io_.check_password(token, connection->listener, connect.username, connect.has_password,
                          connect.password)) {
    ++counters_.password_checks_refused_busy;
    refuse_connect(connection, version, ReasonCode::kServerBusy,
                   "the password checker's queue from this shard is full (too many CONNECTs at once)");
    return Next::kStop;
  }
  // The client's limits hold for the refusal too.
  if (version == ProtocolVersion::kV5) {
    connection->request_problem_information = connect.properties.request_problem_information.value_or(1) == 1;
  }
  auto pending = std::make_unique<EnhancedAuthentication>();
  pending->client_id = std::move(client_id);
  pending->client_id_assigned = client_id_assigned;
  pending->connect_body.append(body);
  pending->connect_flags = flags;
  pending->password_check = token;
  connection->authentication = std::move(pending);
  connection->state = ConnectionState::kAuthenticating;
  // What the client sends behind its CONNECT waits for the verdict: the rest of this read in
  // connection->input, later reads parked by the loop (bounded by its receive buffers).
  connection->input_held = true;
  password_checks_[token] = connection;
  ++counters_.password_checks;
  return Next::kContinue;
}

void ShardState::on_password_verdict(uint64_t token, bool accepted, bool expired) {
  auto found = password_checks_.find(token);
  if (found == password_checks_.end()) return;  // the client left meanwhile
  Connection* connection = found->second;
  password_checks_.erase(found);
  COREMQ_ASSERT(connection->state == ConnectionState::kAuthenticating && connection->input_held);
  std::unique_ptr<EnhancedAuthentication> pending = std::move(connection->authentication);
  COREMQ_ASSERT(pending != nullptr && pending->password_check == token);
  connection->input_held = false;
  connection->state = ConnectionState::kAwaitingConnect;
  mqtt::ConnectPacket connect;
  // The decoded CONNECT points into the body, which lives until this function returns.
  COREMQ_ASSERT(mqtt::decode_connect(pending->connect_body.span(), pending->connect_flags, &connect) ==
                mqtt::DecodeStatus::kOk);
  auto version = static_cast<ProtocolVersion>(connect.protocol_level);
  if (expired) {
    ++counters_.password_checks_refused_busy;
    refuse_connect(connection, version, ReasonCode::kServerBusy,
                   "the password check waited past --connect-timeout in the checker's queue (too many CONNECTs at once)");
    return;
  }
  if (!accepted) {
    ++counters_.authentication_failures;
    // Mosquitto 2's answer to a wrong password or unknown user: Not authorized (3.1.1 return
    // code 5, MQTT 5 0x87), the same for both so the answer does not tell which was wrong.
    refuse_connect(
        connection, version, ReasonCode::kNotAuthorized,
        absl::StrFormat("user '%s' is not in the password file or gave a wrong password", connect.username));
    return;
  }
  if (accept_connect(connection, connect, std::move(pending->client_id), pending->client_id_assigned, {}) !=
      Next::kContinue) {
    return;
  }
  // A CONNACK waiting for the store holds the input again; it is resumed when that goes.
  if (!connection->input_held) resume_held_input(connection);
}

void ShardState::forget_password_check(Connection* connection) {
  if (connection->authentication == nullptr || connection->authentication->password_check == 0) return;
  password_checks_.erase(connection->authentication->password_check);
  connection->authentication->password_check = 0;
  connection->input_held = false;  // held for the verdict, not for a barrier answer
}

}  // namespace coremq::broker
