// The info lines of a client's connect and disconnect, with structured fields (client id,
// address, protocol and transport, listener, keep-alive; for a disconnect the reason, its
// reason code and detail, from the same EndCause the event hook is told), so that text logs
// read well and JSON logs (--log-format json) parse.
// Off the publish path: once per CONNECT and per close. Rate-limited per shard
// (Options::log_connection_lines_per_second), so a connect flood collapses into
// "(N similar lines suppressed)". Shard thread only.
#include <arpa/inet.h>

#include "base/log.h"
#include "broker/shard_state.h"

namespace coremq::broker {

std::string format_peer(const PeerAddress& peer, bool in_process) {
  if (in_process) return "in-process";
  if (peer.family == 0) return "unknown";
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(peer.family == 6 ? AF_INET6 : AF_INET, peer.bytes, text, sizeof(text));
  return peer.family == 6 ? absl::StrFormat("[%s]:%u", text, peer.port)
                          : absl::StrFormat("%s:%u", text, peer.port);
}

namespace {

const char* protocol_name(mqtt::ProtocolVersion version) {
  switch (version) {
    case mqtt::ProtocolVersion::kV31:
      return "3.1";
    case mqtt::ProtocolVersion::kV311:
      return "3.1.1";
    case mqtt::ProtocolVersion::kV5:
      return "5.0";
  }
  return "?";
}

const char* transport_name(const Connection* connection, const std::vector<ListenerOptions>& listeners) {
  if (connection->in_process) return "in-process";
  if (connection->listener >= listeners.size()) return "tcp";
  const ListenerOptions& listener = listeners[connection->listener];
  if (listener.transport == ListenerOptions::Transport::kWebSockets) return listener.tls ? "wss" : "ws";
  return listener.tls ? "tls" : "tcp";
}

}  // namespace

const char* close_reason_name(CloseReason reason) {
  switch (reason) {
    case CloseReason::kUnknown:
      return "closed";
    case CloseReason::kClientDisconnect:
      return "client-disconnect";
    case CloseReason::kConnectionLost:
      return "connection-lost";
    case CloseReason::kKeepAliveTimeout:
      return "keep-alive-timeout";
    case CloseReason::kProtocolError:
      return "protocol-error";
    case CloseReason::kTakeover:
      return "takeover";
    case CloseReason::kTransportError:
      return "transport-error";
    case CloseReason::kSlowConsumer:
      return "slow-consumer";
    case CloseReason::kPacketTooLarge:
      return "packet-too-large";
    case CloseReason::kAuthentication:
      return "authentication";
    case CloseReason::kShutdown:
      return "shutdown";
    case CloseReason::kAdmin:
      return "admin";
    case CloseReason::kInterceptor:
      return "interceptor";
  }
  return "closed";
}

DisconnectReason disconnect_reason_of(CloseReason reason) {
  // No default: a new CloseReason does not compile (-Wswitch, warnings are errors) until it
  // says which event it is.
  switch (reason) {
    case CloseReason::kUnknown:
    case CloseReason::kConnectionLost:
      return DisconnectReason::kConnectionLost;
    case CloseReason::kClientDisconnect:
      return DisconnectReason::kClientDisconnect;
    case CloseReason::kKeepAliveTimeout:
      return DisconnectReason::kKeepAliveTimeout;
    case CloseReason::kProtocolError:
    case CloseReason::kPacketTooLarge:
      return DisconnectReason::kProtocolError;
    case CloseReason::kTakeover:
      return DisconnectReason::kTakenOver;
    case CloseReason::kTransportError:
      return DisconnectReason::kTransportError;
    case CloseReason::kSlowConsumer:
      return DisconnectReason::kSlowConsumer;
    case CloseReason::kAuthentication:
      return DisconnectReason::kAuthentication;
    case CloseReason::kShutdown:
      return DisconnectReason::kShutdown;
    case CloseReason::kAdmin:
    case CloseReason::kInterceptor:
      return DisconnectReason::kAdministrative;
  }
  return DisconnectReason::kConnectionLost;
}

void ShardState::log_connected(const Connection* connection, const Session* session,
                               std::optional<std::string_view> username, bool clean_start,
                               bool session_present) {
  if (!base::log_enabled(base::LogLevel::kInfo)) return;
  static thread_local base::LogRateLimit limit;
  uint64_t suppressed = 0;
  if (!limit.admit(base::log_clock_ms(), &suppressed, options_.log_connection_lines_per_second)) return;
  std::string address = format_peer(connection->peer, connection->in_process);
  std::string message = "client connected";
  if (suppressed > 0) message += absl::StrFormat(" (%u similar lines suppressed)", suppressed);
  base::LogField fields[] = {
      base::LogField::string("client_id", session->client_id),
      base::LogField::string("address", address),
      base::LogField::string("protocol", protocol_name(connection->version)),
      base::LogField::string("transport", transport_name(connection, listeners_)),
      base::LogField::integer("listener", connection->listener),
      base::LogField::integer("keep_alive", connection->keep_alive_seconds),
      base::LogField::integer("clean_start", clean_start ? 1 : 0),
      base::LogField::integer("session_present", session_present ? 1 : 0),
      base::LogField::integer("session_expiry", session->expiry_seconds),
      base::LogField::string("username", username.value_or("")),
  };
  // The username only when there is one.
  size_t count = username.has_value() ? std::size(fields) : std::size(fields) - 1;
  base::log_write_fields(base::LogLevel::kInfo, message, std::span(fields, count));
}

void ShardState::log_disconnected(const Connection* connection, const Session* session,
                                  const EndCause& cause) {
  if (!base::log_enabled(base::LogLevel::kInfo)) return;
  static thread_local base::LogRateLimit limit;
  uint64_t suppressed = 0;
  if (!limit.admit(base::log_clock_ms(), &suppressed, options_.log_connection_lines_per_second)) return;
  std::string address = format_peer(connection->peer, connection->in_process);
  std::string message = "client disconnected";
  if (suppressed > 0) message += absl::StrFormat(" (%u similar lines suppressed)", suppressed);
  std::string code = cause.reason_code >= 0 ? absl::StrFormat("0x%02x", cause.reason_code) : std::string();
  base::LogField fields[] = {
      base::LogField::string("client_id", session->client_id),
      base::LogField::string("address", address),
      base::LogField::string("protocol", protocol_name(connection->version)),
      base::LogField::string("transport", transport_name(connection, listeners_)),
      base::LogField::integer("listener", connection->listener),
      base::LogField::integer("keep_alive", connection->keep_alive_seconds),
      base::LogField::string("reason", close_reason_name(cause.reason)),
      base::LogField::string("reason_code", code),
      base::LogField::string("detail", cause.detail),
  };
  // reason_code and detail only when there are some.
  base::LogField present[std::size(fields)];
  size_t count = 0;
  for (const base::LogField& field : fields) {
    if (!field.is_number && field.text.empty()) continue;
    present[count++] = field;
  }
  base::log_write_fields(base::LogLevel::kInfo, message, std::span(present, count));
}

}  // namespace coremq::broker
