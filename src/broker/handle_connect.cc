// CONNECT and AUTH: validation, CONNACK codes (3.1.1 return codes, MQTT 5 reason codes
// and properties), hand-off to the client id's owner shard, enhanced authentication,
// session creation, resumption and takeover. Runs on the shard that reads the CONNECT
// and again (fully) on the owner shard after a hand-off.
#include <algorithm>
#include <array>

#include "base/assert.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/properties.h"
#include "topic/topic.h"

namespace coremq::broker {

using mqtt::ProtocolVersion;
using mqtt::ReasonCode;

ShardState::Next ShardState::handle_connect(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  mqtt::ConnectPacket connect;
  mqtt::DecodeStatus status = mqtt::decode_connect(body, flags, &connect);
  if (status == mqtt::DecodeStatus::kUnsupportedProtocolLevel) {
    // MQTT-3.1.2-2: answer 0x01 (in the 3.1.1 form every client version reads) and close.
    refuse_connect(connection, ProtocolVersion::kV311, ReasonCode::kUnsupportedProtocolVersion,
                   absl::StrFormat("unsupported protocol level %u", connect.protocol_level));
    return Next::kStop;
  }
  if (status != mqtt::DecodeStatus::kOk) {
    if (connect.protocol_level == 5 && status != mqtt::DecodeStatus::kBadProtocolName) {
      // MQTT-3.1.4-1 / 4.13: a v5 client learns why in CONNACK.
      refuse_connect(connection, ProtocolVersion::kV5, mqtt::reason_code_for(status),
                     absl::StrFormat("bad CONNECT: %s", mqtt::decode_status_name(status)));
    } else {
      close_for_protocol_error(connection, ReasonCode::kMalformedPacket,
                               absl::StrFormat("bad CONNECT: %s", mqtt::decode_status_name(status)));
    }
    return Next::kStop;
  }
  auto version = static_cast<ProtocolVersion>(connect.protocol_level);
  bool v5 = version == ProtocolVersion::kV5;
  connection->version = version;
  connection->bridge_client = connect.bridge;
  // From here on every packet to the client, a refusing CONNACK too, is held to it.
  if (v5) connection->client_maximum_packet_size = connect.properties.maximum_packet_size.value_or(0);

  std::string client_id(connect.client_id);
  bool assigned = false;
  if (client_id.empty()) {
    // 3.1.1 (MQTT-3.1.3-7/8): only with clean session; 3.1 never. MQTT 5 assigns one always.
    if (!v5 && (!connect.clean_session || version == ProtocolVersion::kV31)) {
      refuse_connect(connection, version, ReasonCode::kClientIdentifierNotValid,
                     "empty client id without clean session");
      return Next::kStop;
    }
    client_id = assign_client_id();
    assigned = true;
  }
  // The bound is on what clients send; an id the broker assigned (39 bytes) is exempt.
  if (!assigned && client_id.size() > options_.max_client_id_length) {
    refuse_connect(connection, version, ReasonCode::kClientIdentifierNotValid,
                   absl::StrFormat("client id of %u bytes is over --max-client-id-length=%u", client_id.size(),
                                   options_.max_client_id_length));
    return Next::kStop;
  }
  if (v5 && connect.has_will && connect.will.qos > options_.maximum_qos) {  // MQTT-3.2.2-12
    refuse_connect(connection, version, ReasonCode::kQosNotSupported,
                   absl::StrFormat("will QoS %u is over the server's maximum QoS %u", connect.will.qos,
                                   options_.maximum_qos));
    return Next::kStop;
  }
  if (v5 && connect.has_will && connect.will.retain && !options_.retain_available) {  // MQTT-3.2.2-13
    refuse_connect(connection, version, ReasonCode::kRetainNotSupported, "retained wills are not available");
    return Next::kStop;
  }
  if (connect.has_will && topic::count_levels(connect.will.topic) > options_.max_topic_levels) {
    ++counters_.topic_levels_refused;
    std::string why = absl::StrFormat("will topic of %u levels is over --max-topic-levels=%u",
                                      topic::count_levels(connect.will.topic), options_.max_topic_levels);
    // As for any other invalid will topic: MQTT 5 learns why in CONNACK (0x90), 3.1.1
    // has no return code for it and is closed (MQTT-3.1.4-1).
    if (v5) {
      refuse_connect(connection, version, ReasonCode::kTopicNameInvalid, why);
    } else {
      close_for_protocol_error(connection, ReasonCode::kProtocolError, why);
    }
    return Next::kStop;
  }
  if (!v5 && over_max_keep_alive(connect.keep_alive_seconds)) {
    // 3.1/3.1.1 have no Server Keep Alive to tell the client a shorter one, so it is refused
    // as Mosquitto refuses it (0x02, identifier rejected: the nearest 3.1.1 return code).
    ++counters_.keep_alive_refused;
    refuse_connect(connection, version, ReasonCode::kClientIdentifierNotValid,
                   absl::StrFormat("keep-alive of %u s (0: none) is over --max-keepalive=%u",
                                   connect.keep_alive_seconds, options_.max_keep_alive_seconds));
    return Next::kStop;
  }
  if (v5 && connect.properties.authentication_method) {
    const auto& hook = options_.authentication_hook;
    if (hook == nullptr || !hook->supports_method(*connect.properties.authentication_method)) {
      refuse_connect(connection, version, ReasonCode::kBadAuthenticationMethod,
                     absl::StrFormat("authentication method '%s' is not supported",
                                     *connect.properties.authentication_method));
      return Next::kStop;
    }
  }

  uint32_t owner = owner_shard_of(client_id, shard_count_);
  if (owner != shard_id_) {
    // The session and all its state live on the owner shard; move the socket there
    // with every byte read so far. The owner decodes this CONNECT again.
    connection->state = ConnectionState::kHandingOff;
    connections_.erase(connection);
    --counters_.connections_current;
    --counters_.packets_received;  // the owner reads this CONNECT again and counts it there
    hand_off_target_ = owner;  // on_bytes moves it once every byte read is in its input
    return Next::kHandOff;
  }

  // On the owner shard, so a refusal is counted once, where the session would have been.
  ++counters_.connects_received;
  COREMQ_ASSERT(connection->listener < listeners_.size());
  // An in-process client (Broker::connect_local) is the host program itself, not a client of
  // any listener: no listener's certificate, anonymous or password rule applies to it.
  if (!connection->in_process && !apply_certificate_username(connection, &connect)) return Next::kStop;
  // Mosquitto reads a zero-length username as none: such a client is anonymous (the listener's
  // anonymous rule decides, no password check), so the same files give the same answers.
  if (connect.has_username && connect.username.empty()) connect.has_username = false;
  if (!connection->in_process && !connect.has_username && !connect.properties.authentication_method &&
      !anonymous_allowed_[connection->listener]) {
    // An MQTT 5 client with an authentication method is not anonymous: the hook decides.
    ++counters_.anonymous_refused;
    refuse_connect(connection, version, ReasonCode::kNotAuthorized,
                   absl::StrFormat("no username, and listener %u refuses anonymous clients (see the start-up log)",
                                   connection->listener));
    return Next::kStop;
  }

  if (!connection->in_process && connect.has_username && !connect.properties.authentication_method &&
      listeners_[connection->listener].refuse_unchecked_usernames &&
      listeners_[connection->listener].password_file.empty() && !username_from_certificate(connection)) {
    // A config file's listener without allow_anonymous and without a password file: nothing can
    // check the username, so Mosquitto 2 refuses it, and so does coremq (the file's meaning).
    ++counters_.authentication_failures;
    refuse_connect(connection, version, ReasonCode::kNotAuthorized,
                   absl::StrFormat("username '%s' cannot be checked: listener %u has no password file and "
                                   "refuses anonymous clients (allow_anonymous false in the config file)",
                                   connect.username, connection->listener));
    return Next::kStop;
  }
  if (v5 && connect.properties.authentication_method) {
    return begin_authentication(connection, connect, body, flags, std::move(client_id), assigned);
  }
  if (needs_password_check(connection, connect)) {
    return begin_password_check(connection, connect, body, flags, std::move(client_id), assigned);
  }
  return accept_connect(connection, connect, std::move(client_id), assigned, {});
}

// Enhanced authentication (MQTT 5.0 section 4.12) runs on the owner shard: handle_connect
// hands the connection off before it gets here, so the exchange, and the session it ends
// in, stay on one thread.
ShardState::Next ShardState::begin_authentication(Connection* connection, const mqtt::ConnectPacket& connect,
                                                  std::span<const uint8_t> body, uint8_t flags,
                                                  std::string client_id, bool client_id_assigned) {
  COREMQ_ASSERT(connection->state == ConnectionState::kAwaitingConnect);
  std::string_view method = *connect.properties.authentication_method;
  std::string_view data = connect.properties.authentication_data.value_or(std::string_view());
  // The client's limits hold for every packet the broker sends it, the AUTH packets of the
  // exchange included (MQTT-3.1.2-24, MQTT-3.1.2-29), not only for those after CONNACK.
  connection->client_maximum_packet_size = connect.properties.maximum_packet_size.value_or(0);
  connection->request_problem_information = connect.properties.request_problem_information.value_or(1) == 1;
  auto authentication = std::make_unique<EnhancedAuthentication>();
  authentication->method = std::string(method);
  Deferral deferral(*this);
  AuthenticationHook::Step step = options_.authentication_hook->begin_deferrable(client_id, method, data, deferral);
  if (step.result == AuthenticationHook::Step::Result::kDefer) {
    // The CONNECT waits in `authentication` as for a Continue step; the answer is applied as
    // one (apply_connecting_step).
    authentication->client_id = std::move(client_id);
    authentication->connect_body.append(body);
    authentication->connect_flags = flags;
    connection->authentication = std::move(authentication);
    connection->state = ConnectionState::kAuthenticating;
    return hold_authentication(connection, deferral) ? Next::kContinue : Next::kStop;
  }
  step = checked(std::move(step));
  switch (step.result) {
    case AuthenticationHook::Step::Result::kFailure:
      refuse_authentication(connection, step);
      return Next::kStop;
    case AuthenticationHook::Step::Result::kSuccess:
      connection->authentication = std::move(authentication);
      return accept_connect(connection, connect, std::move(client_id), client_id_assigned, step.data);
    case AuthenticationHook::Step::Result::kContinue: break;
    case AuthenticationHook::Step::Result::kDefer: COREMQ_ASSERT_MSG(false, "handled above"); break;
  }
  authentication->client_id = std::move(client_id);
  authentication->connect_body.append(body);
  authentication->connect_flags = flags;
  connection->authentication = std::move(authentication);
  connection->state = ConnectionState::kAuthenticating;
  return send_auth(connection, ReasonCode::kContinueAuthentication, step.data) ? Next::kContinue : Next::kStop;
}

bool ShardState::handle_auth(Connection* connection, std::span<const uint8_t> body, uint8_t flags) {
  if (connection->version != ProtocolVersion::kV5) {
    close_for_protocol_error(connection, ReasonCode::kProtocolError, "AUTH is not an MQTT 3.1.1 packet");
    return false;
  }
  mqtt::AuthPacket auth;
  mqtt::DecodeStatus status = mqtt::decode_auth(body, flags, &auth);
  if (status != mqtt::DecodeStatus::kOk) {
    close_for_protocol_error(connection, mqtt::reason_code_for(status),
                             absl::StrFormat("bad AUTH: %s", mqtt::decode_status_name(status)));
    return false;
  }
  EnhancedAuthentication* authentication = connection->authentication.get();
  if (authentication == nullptr) {
    // MQTT-4.12.0-7: a client that named no Authentication Method in CONNECT sends no AUTH.
    close_for_protocol_error(connection, ReasonCode::kProtocolError,
                             "AUTH from a client that named no authentication method in CONNECT");
    return false;
  }
  // Section 3.15.2.2.2: every AUTH names the CONNECT's method. decode_auth lets only the
  // short form (empty body: Success, which only a server sends) go without one.
  if (!auth.properties.authentication_method) {
    close_for_protocol_error(connection, ReasonCode::kProtocolError, "AUTH without an authentication method");
    return false;
  }
  std::string_view method = *auth.properties.authentication_method;
  if (method != authentication->method) {
    close_for_protocol_error(connection, ReasonCode::kProtocolError,
                             absl::StrFormat("AUTH names authentication method '%s', not '%s' of CONNECT", method,
                                             authentication->method));
    return false;
  }
  std::string_view data = auth.properties.authentication_data.value_or(std::string_view());
  if (connection->state == ConnectionState::kAuthenticating) return continue_authentication(connection, auth, data);
  return handle_reauthentication(connection, auth, data);
}

// One client step of the exchange CONNECT began: AUTH Continue authentication only
// (section 4.12: the client answers each AUTH 0x18 with an AUTH 0x18 until CONNACK).
bool ShardState::continue_authentication(Connection* connection, const mqtt::AuthPacket& auth,
                                         std::string_view data) {
  EnhancedAuthentication* authentication = connection->authentication.get();
  if (auth.reason_code != static_cast<uint8_t>(ReasonCode::kContinueAuthentication)) {
    close_for_protocol_error(connection, ReasonCode::kProtocolError,
                             absl::StrFormat("AUTH with reason 0x%02x while connecting", auth.reason_code));
    return false;
  }
  Deferral deferral(*this);
  AuthenticationHook::Step step =
      options_.authentication_hook->next_deferrable(authentication->client_id, authentication->method, data, deferral);
  if (step.result == AuthenticationHook::Step::Result::kDefer) return hold_authentication(connection, deferral);
  return apply_connecting_step(connection, checked(std::move(step)));
}

bool ShardState::apply_connecting_step(Connection* connection, const AuthenticationHook::Step& step) {
  COREMQ_ASSERT(connection->state == ConnectionState::kAuthenticating);
  EnhancedAuthentication* authentication = connection->authentication.get();
  if (step.result == AuthenticationHook::Step::Result::kFailure) {
    refuse_authentication(connection, step);
    return false;
  }
  if (step.result == AuthenticationHook::Step::Result::kContinue) {
    return send_auth(connection, ReasonCode::kContinueAuthentication, step.data);
  }
  // The decoded CONNECT points into connect_body: keep the body alive through accept_connect.
  base::ByteBuffer connect_body = std::move(authentication->connect_body);
  std::string client_id = std::move(authentication->client_id);
  mqtt::ConnectPacket connect;
  COREMQ_ASSERT(mqtt::decode_connect(connect_body.span(), authentication->connect_flags, &connect) ==
                mqtt::DecodeStatus::kOk);
  bool assigned = connect.client_id.empty();
  connection->state = ConnectionState::kAwaitingConnect;
  return accept_connect(connection, connect, std::move(client_id), assigned, step.data) == Next::kContinue;
}

// AUTH from a connected client (section 4.12.1): Re-authenticate starts an exchange,
// Continue authentication carries one on. Other packets keep flowing meanwhile, under the
// previous authentication; a failure ends the connection (MQTT-4.12.1-2).
bool ShardState::handle_reauthentication(Connection* connection, const mqtt::AuthPacket& auth,
                                         std::string_view data) {
  COREMQ_ASSERT(connection->state == ConnectionState::kConnected && connection->session != nullptr);
  EnhancedAuthentication* authentication = connection->authentication.get();
  AuthenticationHook& hook = *options_.authentication_hook;
  const std::string& client_id = connection->session->client_id;
  AuthenticationHook::Step step;
  Deferral deferral(*this);
  if (auth.reason_code == static_cast<uint8_t>(ReasonCode::kReauthenticate) && !authentication->reauthenticating) {
    step = hook.begin_reauthentication_deferrable(client_id, authentication->method, data, deferral);
  } else if (auth.reason_code == static_cast<uint8_t>(ReasonCode::kContinueAuthentication) &&
             authentication->reauthenticating) {
    step = hook.next_deferrable(client_id, authentication->method, data, deferral);
  } else {
    const char* when =
        authentication->reauthenticating ? "during a re-authentication" : "with no re-authentication under way";
    close_for_protocol_error(connection, ReasonCode::kProtocolError,
                             absl::StrFormat("AUTH with reason 0x%02x %s", auth.reason_code, when));
    return false;
  }
  if (step.result == AuthenticationHook::Step::Result::kDefer) return hold_authentication(connection, deferral);
  return apply_reauthentication_step(connection, checked(std::move(step)));
}

bool ShardState::apply_reauthentication_step(Connection* connection, const AuthenticationHook::Step& step) {
  COREMQ_ASSERT(connection->state == ConnectionState::kConnected && connection->session != nullptr);
  EnhancedAuthentication* authentication = connection->authentication.get();
  const std::string& client_id = connection->session->client_id;
  switch (step.result) {
    case AuthenticationHook::Step::Result::kFailure:
      refuse_authentication(connection, step);
      return false;
    case AuthenticationHook::Step::Result::kDefer: COREMQ_ASSERT_MSG(false, "a deferred step is never applied"); break;
    case AuthenticationHook::Step::Result::kContinue:
      authentication->reauthenticating = true;
      return send_auth(connection, ReasonCode::kContinueAuthentication, step.data);
    case AuthenticationHook::Step::Result::kSuccess:
      authentication->reauthenticating = false;
      LOG_DEBUG("client '%s' re-authenticated", client_id);
      return send_auth(connection, ReasonCode::kSuccess, step.data);
  }
  return false;
}

AuthenticationHook::Step ShardState::checked(AuthenticationHook::Step step) {
  // Authentication Data is Binary Data (MQTT 5.0 section 1.5.6): at most 65535 bytes. More
  // cannot be sent; the exchange fails rather than the broker (the hook is the embedding
  // program's code, not ours).
  if (step.result != AuthenticationHook::Step::Result::kFailure && step.data.size() > mqtt::kStringLengthMax) {
    LOG_WARNING("authentication hook answered with %u bytes of Authentication Data (at most %u): failing the exchange",
                step.data.size(), mqtt::kStringLengthMax);
    step.result = AuthenticationHook::Step::Result::kFailure;
    step.data.clear();
    step.failure_reason_code = static_cast<uint8_t>(ReasonCode::kImplementationSpecificError);
  }
  return step;
}

void ShardState::refuse_authentication(Connection* connection, const AuthenticationHook::Step& step) {
  ++counters_.authentication_failures;
  bool connected = connection->state == ConnectionState::kConnected;
  // The hook's code if the packet that carries it allows it (table 2-6), else Not authorized.
  auto reason = static_cast<ReasonCode>(step.failure_reason_code);
  if (step.failure_reason_code < 0x80 ||
      !mqtt::reason_code_allowed(connected ? mqtt::PacketType::kDisconnect : mqtt::PacketType::kConnack, reason)) {
    reason = ReasonCode::kNotAuthorized;
  }
  end_authentication(connection, reason, connected ? "re-authentication failed" : "enhanced authentication failed");
}

void ShardState::end_authentication(Connection* connection, ReasonCode reason, std::string_view why) {
  if (connection->state != ConnectionState::kConnected) {
    // MQTT-4.12.0-4: a CONNACK with a failure code, then close; never a DISCONNECT before
    // a successful CONNACK (MQTT-3.14.0-1).
    refuse_connect(connection, ProtocolVersion::kV5, reason, why);
    return;
  }
  // MQTT-4.12.1-2: DISCONNECT and close. The client did not ask to leave: its will goes out.
  send_disconnect(connection, reason, why);
  end_connection(connection, /*publish_will=*/true, /*flush_first=*/true,
                 {CloseReason::kAuthentication, static_cast<int>(reason), why});
}

bool ShardState::send_auth(Connection* connection, ReasonCode reason, std::string_view data) {
  COREMQ_ASSERT(connection->authentication != nullptr);
  // Only the method (MQTT-4.12.0-5) and the hook's data: AUTH never carries a Reason
  // String or User Property here, so neither the client's Request Problem Information
  // (MQTT-3.1.2-29) nor its Maximum Packet Size (MQTT-3.15.2-2, -3) needs them left out.
  mqtt::Properties properties;
  properties.authentication_method = connection->authentication->method;
  if (!data.empty()) properties.authentication_data = data;
  property_scratch_.clear();
  mqtt::encode_property_bytes(property_scratch_, mqtt::PropertyContext::kAuth, properties);
  size_t property_block =
      property_scratch_.size() + mqtt::remaining_length_size(static_cast<uint32_t>(property_scratch_.size()));
  size_t remaining = 1 + property_block;
  size_t packet_size = 1 + mqtt::remaining_length_size(static_cast<uint32_t>(remaining)) + remaining;
  uint32_t limit = connection->client_maximum_packet_size;
  if (limit != 0 && packet_size > limit) {
    // The step cannot reach the client (MQTT-3.1.2-24), so the exchange cannot go on.
    end_authentication(connection, ReasonCode::kPacketTooLarge,
                       absl::StrFormat("an AUTH of %u bytes is over the client's Maximum Packet Size of %u",
                                       packet_size, limit));
    return false;
  }
  mqtt::encode_auth(connection->output, static_cast<uint8_t>(reason), property_scratch_.span());
  io_.request_flush(connection);
  return true;
}

std::optional<std::string_view> ShardState::client_username(const Connection* /*connection*/,
                                                            const mqtt::ConnectPacket& connect) const {
  if (!connect.has_username) return std::nullopt;
  return connect.username;
}

const auth::AclFile* ShardState::listener_acl(const Connection* connection) const {
  // No list at all: a ShardState driven without listener settings (tests, fuzzers). With one,
  // a connection naming a listener it does not have is a bug: answering "no ACL" would let it
  // past its listener's rules.
  if (listener_security_.empty()) return nullptr;
  // The host program's own in-process clients answer to no listener's ACL (an authorization
  // hook will decide for them).
  if (connection->in_process) return nullptr;
  COREMQ_ASSERT_MSG(connection->listener < listener_security_.size(), "connection of an unknown listener");
  return listener_security_[connection->listener].acl.get();
}

ShardState::Next ShardState::accept_connect(Connection* connection, const mqtt::ConnectPacket& connect,
                                            std::string client_id, bool client_id_assigned,
                                            std::string_view authentication_data) {
  auto version = static_cast<ProtocolVersion>(connect.protocol_level);
  bool v5 = version == ProtocolVersion::kV5;
  const mqtt::Properties& properties = connect.properties;

  Session* session = find_session(client_id);
  if (session != nullptr && session->connection != nullptr) {
    // MQTT-3.1.4-3: the new connection takes the session over; the old one is closed as
    // a network failure would close it (so its will is due), MQTT 5 clients with 0x8E.
    Connection* old = session->connection;
    if (old->version == ProtocolVersion::kV5) send_disconnect(old, ReasonCode::kSessionTakenOver, "session taken over");
    end_connection(old, /*publish_will=*/true, /*flush_first=*/old->version == ProtocolVersion::kV5,
                   {CloseReason::kTakeover, static_cast<int>(ReasonCode::kSessionTakenOver),
                    "a new connection took the client id over"});
    session = find_session(client_id);  // a session with expiry 0 ended with its connection
  }
  if (session != nullptr && connect.clean_session) {
    destroy_session(session);  // MQTT-3.1.2-4 (Clean Start): a pending will goes out now
    session = nullptr;
  }
  bool session_present = session != nullptr;
  if (session == nullptr) {
    if (sessions_.size() >= options_.max_sessions) {
      ++counters_.sessions_refused_limit;
      refuse_connect(connection, version, ReasonCode::kServerBusy,
                     absl::StrFormat("this shard holds --max-sessions=%u sessions", options_.max_sessions));
      return Next::kStop;
    }
    auto created = std::make_unique<Session>();
    created->client_id = client_id;
    session = created.get();
    sessions_.emplace(std::string_view(session->client_id), std::move(created));
  }
  // Reconnecting cancels the expiry timer and a will still waiting for its delay (MQTT-3.1.3-9).
  session->timer_generation = ++timer_generation_last_;
  session->will_pending = false;

  uint32_t requested_expiry = v5 ? properties.session_expiry_interval_seconds.value_or(0)
                                 : (connect.clean_session ? 0 : kSessionNeverExpires);
  session->expiry_seconds = std::min(requested_expiry, options_.max_session_expiry_seconds);
  session->connection = connection;
  session->will.reset();
  session->will_delay_seconds = 0;
  if (connect.has_will) {
    session->will = std::make_unique<WillMessage>();
    WillMessage& will = *session->will;
    will.topic = std::string(connect.will.topic);
    will.payload = std::string(connect.will.payload);
    will.qos = connect.will.qos;
    will.retain = connect.will.retain;
    if (v5) {
      session->will_delay_seconds = connect.will_properties.will_delay_interval_seconds.value_or(0);
      will.message_expiry_seconds = connect.will_properties.message_expiry_interval_seconds.value_or(0);
      will.property_bytes = std::string(encode_forwarded_properties(connect.will_properties));
    }
  }
  // The ACL rules for this client, compiled once here so that each check on the publish path
  // walks a short list of its own (Mosquitto also picks a client's ACL list at CONNECT).
  session->acl.reset();
  if (const auth::AclFile* acl = listener_acl(connection); acl != nullptr) {
    session->acl = std::make_unique<auth::CompiledAcl>(acl->compile(client_username(connection, connect), client_id));
  }
  // For the admin API (src/admin): who the client said it is; null for anonymous clients.
  session->username.reset();
  if (std::optional<std::string_view> username = client_username(connection, connect)) {
    session->username = std::make_unique<std::string>(*username);
  }
  session->hook_listener = connection->listener;
  session->hook_in_process = connection->in_process;
  connection->session = session;
  connection->state = ConnectionState::kConnected;
  // MQTT 5: --server-keep-alive replaces the client's value, and whatever results is held
  // to --max-keepalive (handle_connect refused a 3.1/3.1.1 client over it).
  uint16_t keep_alive = connect.keep_alive_seconds;
  if (v5 && options_.server_keep_alive_seconds != 0) keep_alive = options_.server_keep_alive_seconds;
  if (v5 && over_max_keep_alive(keep_alive)) {
    ++counters_.keep_alive_capped;
    keep_alive = options_.max_keep_alive_seconds;
  }
  connection->keep_alive_seconds = keep_alive;
  if (v5) {
    connection->request_problem_information = properties.request_problem_information.value_or(1) == 1;
    connection->client_receive_maximum = properties.receive_maximum.value_or(65535);
    connection->client_maximum_packet_size = properties.maximum_packet_size.value_or(0);
    // The aliases this broker uses towards the client: the client's maximum, capped so a
    // client cannot make it hold 65535 topic strings (nothing is announced; MQTT 5 lets the
    // sender use fewer than allowed).
    connection->client_topic_alias_maximum =
        std::min(properties.topic_alias_maximum.value_or(0), options_.max_topic_alias_broker);
  }

  if (v5) {
    mqtt::Properties ack;
    if (session->expiry_seconds != requested_expiry) ack.session_expiry_interval_seconds = session->expiry_seconds;
    if (options_.receive_maximum != 65535) ack.receive_maximum = options_.receive_maximum;
    if (options_.maximum_qos < 2) ack.maximum_qos = options_.maximum_qos;
    if (!options_.retain_available) ack.retain_available = 0;
    ack.maximum_packet_size = options_.max_packet_size;
    if (client_id_assigned) ack.assigned_client_identifier = client_id;
    if (options_.topic_alias_maximum > 0) ack.topic_alias_maximum = options_.topic_alias_maximum;
    if (!options_.wildcard_subscriptions_available) ack.wildcard_subscription_available = 0;
    if (!options_.subscription_identifiers_available) ack.subscription_identifier_available = 0;
    if (!options_.shared_subscriptions_available) ack.shared_subscription_available = 0;
    if (options_.server_keep_alive_seconds != 0 || keep_alive != connect.keep_alive_seconds) {
      ack.server_keep_alive_seconds = keep_alive;
    }
    std::string response_information;
    if (properties.request_response_information.value_or(0) == 1 && !options_.response_information_prefix.empty()) {
      response_information = options_.response_information_prefix + client_id;
      ack.response_information = response_information;
    }
    if (properties.authentication_method) {
      ack.authentication_method = properties.authentication_method;
      if (!authentication_data.empty()) ack.authentication_data = authentication_data;
    }
    property_scratch_.clear();
    mqtt::encode_property_bytes(property_scratch_, mqtt::PropertyContext::kConnack, ack);
  }
  journal_session(session);  // --persistence: the session's record (or its end)
  // MQTT 3.1 (protocol level 3) has no Session Present: that CONNACK byte is reserved, 0.
  bool present_flag = session_present && version != ProtocolVersion::kV31;
  auto encode_connack = [&](base::ByteBuffer& out, bool) {
    if (v5) {
      mqtt::encode_connack_v5(out, present_flag, 0, property_scratch_.span());
    } else {
      mqtt::encode_connack(out, present_flag, mqtt::ConnectReturnCode::kAccepted);
    }
  };
  // --persistence: a CONNACK that creates a persistent session waits until its record is
  // durable (a new session has no subscriptions, so nothing is delivered to it meanwhile; its
  // later packets are held behind the CONNACK as behind a waiting SUBACK). Not a bridge's
  // local side (Connection::connack_without_store_wait).
  if (!session_present && session->persisted && !journal_caught_up() && !connection->connack_without_store_wait) {
    WaitingAnswer answer;
    answer.connection = connection;
    if (!stage_packet_into(answer.packet, connection, mqtt::PacketType::kConnack, encode_connack)) return Next::kStop;
    wait_for_peers(std::move(answer));
    // Connected as far as the broker is concerned; the CONNACK leaves once the record is durable.
    note_connected(connection, session, connect, session_present);
    return Next::kContinue;
  }
  bool staged = stage_packet(connection, mqtt::PacketType::kConnack, encode_connack);
  if (!staged) return Next::kStop;  // the connection is closed; the session kept or ended as on any close
  note_connected(connection, session, connect, session_present);
  if (session_present) resume_session(session);
  // A resent PUBREL that did not fit the client's Maximum Packet Size closed it.
  return connection->state == ConnectionState::kConnected ? Next::kContinue : Next::kStop;
}

void ShardState::note_connected(Connection* connection, Session* session, const mqtt::ConnectPacket& connect,
                                bool session_present) {
  // One getpeername per connect: the connect and disconnect log lines, the event hook and the
  // admin API read the address from here.
  connection->peer = io_.peer_address(*connection);
  log_connected(connection, session, client_username(connection, connect), connect.clean_session, session_present);
  if (events_ != nullptr) report_connected(connection, connect.clean_session, session_present);
}

void ShardState::refuse_connect(Connection* connection, ProtocolVersion version, ReasonCode reason,
                                std::string_view why) {
  LOG_INFO_LIMITED("refusing CONNECT on fd %d with %s: %s", connection->fd, mqtt::reason_code_name(reason), why);
  if (version == ProtocolVersion::kV5) encode_reason_string(why);
  // A refusal too large for the client even bare is left out (stage_packet then closes).
  (void)stage_packet(connection, mqtt::PacketType::kConnack, [&](base::ByteBuffer& out, bool with_optional) {
    if (version == ProtocolVersion::kV5) {
      mqtt::encode_connack_v5(out, false, static_cast<uint8_t>(reason),
                              with_optional ? property_scratch_.span() : std::span<const uint8_t>());
    } else {
      mqtt::encode_connack(out, false, mqtt::connect_return_code_for(reason));
    }
  });
  // Never connected: no disconnect line nor event (the line above says why).
  end_connection(connection, /*publish_will=*/false, /*flush_first=*/true,
                 {CloseReason::kUnknown, static_cast<int>(reason), why});
}

bool ShardState::over_max_keep_alive(uint16_t keep_alive_seconds) const {
  // Keep-alive 0 (none at all) is longer than any cap; a cap of 65535, the longest keep-alive
  // there is, is no cap, and then 0 stays allowed. (Mosquitto 2.0.12 and later refuse
  // keep-alive 0 from 3.1.1 clients even at its default 65535, which broke many devices
  // that never ping; here that needs a cap to be set.)
  uint16_t cap = options_.max_keep_alive_seconds;
  return cap != 65535 && (keep_alive_seconds == 0 || keep_alive_seconds > cap);
}

std::string ShardState::assign_client_id() {
  // 128 random bits: another client can neither guess an assigned id (and take the session
  // over) nor, choosing its own, hit one. The id must hash to this shard so the session
  // stays here, and name no session yet: drawn again until both hold (shard_count draws on
  // average; one CONNECT with an empty id each, off the publish path).
  static constexpr char kHex[] = "0123456789abcdef";
  std::array<uint8_t, 16> random;
  std::string candidate(kAssignedIdPrefix.size() + 2 * random.size(), '\0');
  std::copy(kAssignedIdPrefix.begin(), kAssignedIdPrefix.end(), candidate.begin());
  for (;;) {
    random_.fill(random);
    char* hex = candidate.data() + kAssignedIdPrefix.size();
    for (uint8_t byte : random) {
      *hex++ = kHex[byte >> 4];
      *hex++ = kHex[byte & 0xF];
    }
    if (owner_shard_of(candidate, shard_count_) == shard_id_ && find_session(candidate) == nullptr) return candidate;
  }
}

void ShardState::resume_session(Session* session) {
  Connection* connection = session->connection;
  COREMQ_ASSERT(connection != nullptr);
  // MQTT-4.4.0-1: resend unacknowledged PUBLISH (DUP set) and PUBREL, in their order.
  for (size_t i = 0; i < session->inflight.size();) {
    OutgoingInflight& inflight = session->inflight[i];
    if (inflight.awaiting_store) {
      ++i;  // never sent: pump_queue sends it once its record is durable
      continue;
    }
    if (inflight.pubrec_received) {
      if (!send_ack(connection, mqtt::PacketType::kPubrel, inflight.packet_id, 0)) return;  // closed
    } else if (exceeds_client_packet_limit(connection, *inflight.message, inflight.delivery)) {
      // Over the Maximum Packet Size this connection announced (smaller than the last
      // one's): discarded as if sent (MQTT-3.1.2-25), as a new message would be.
      ++counters_.messages_dropped_queue_full;
      journal_outgoing_done(&inflight.store_sequence, &inflight.delivery.store_slot, session, inflight.message.get());
      session->inflight.erase(i);
      continue;
    } else {
      send_publish(session, inflight.message, inflight.delivery, /*dup=*/true, inflight.packet_id);
    }
    ++i;
  }
  io_.request_flush(connection);
  pump_queue(session);
}

}  // namespace coremq::broker
