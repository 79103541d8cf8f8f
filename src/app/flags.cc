// Flag definitions (each with the help text `coremq --help` prints) and their checks.
#include "app/flags.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string_view>
#include <tuple>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "base/assert.h"

ABSL_FLAG(std::string, config, "",
          "Read options from this Mosquitto-style config file first (alias -c; see docs/CONFIG.md); "
          "COREMQ_<FLAG> environment variables override it and flags override both.");
ABSL_FLAG(std::string, bind, "",
          "Address of the plain MQTT listener --bind/--port make when no --listener is given: empty = "
          "loopback only (127.0.0.1 and ::1), `*` = every interface, a numeric IPv4 or IPv6 address, or a host "
          "name (resolved once at start; every address it has is listened on).");
ABSL_FLAG(uint32_t, port, 1883, "TCP port for MQTT; 0 picks a free port (logged at start).");
ABSL_FLAG(bool, allow_anonymous, false,
          "Let clients without a username connect through the --bind/--port listener even when it is not on "
          "loopback (by default such a listener refuses them, as Mosquitto 2 does).");
ABSL_FLAG(std::string, listener, "",
          "A listener, repeatable: SCHEME://ADDRESS:PORT[,key=value...] with SCHEME mqtt, mqtts, ws or wss, "
          "ADDRESS a numeric IPv4 address, [IPv6], a host name, * (every interface) or empty (loopback), and keys "
          "allow_anonymous, password_file, acl_file, certfile, keyfile, cafile, capath, crlfile, ciphers, "
          "ciphersuites, tls_version, require_certificate, use_identity_as_username, use_subject_as_username "
          "(see docs/CONFIG.md). Any --listener replaces --bind/--port.");
ABSL_FLAG(std::string, bridge, "",
          "A bridge to another broker, repeatable: NAME,key=value[,key=value...] with the keys of a mosquitto.conf "
          "bridge section (address=HOST[:PORT] [HOST[:PORT]...], topic=PATTERN [out|in|both] [QOS] [LOCAL_PREFIX] "
          "[REMOTE_PREFIX] (repeatable), bridge_protocol_version, try_private, cleansession, remote_clientid, "
          "bridge_max_queued_messages ...; see docs/BRIDGING.md). Adds to the config file's connection sections.");
ABSL_FLAG(std::string, password_file, "",
          "Mosquitto password file for the listener of --bind/--port (mosquitto_passwd or coremq-passwd format); "
          "clients with a username must give its password; empty = none.");
ABSL_FLAG(std::string, acl_file, "",
          "Mosquitto ACL file for the listener of --bind/--port (topic/pattern/user lines, as mosquitto.conf(5) "
          "acl_file); empty = no access control.");
ABSL_FLAG(uint32_t, threads, 0, "Shards (event-loop threads); 0 = one per CPU this process may use.");
ABSL_FLAG(bool, pin_threads, true, "Pin shard i to the i-th allowed CPU.");
ABSL_FLAG(uint32_t, max_connections, 100000, "Connections held at once; more are accepted and closed at once.");
ABSL_FLAG(uint32_t, max_packet_size, 1024 * 1024,
          "Largest MQTT packet accepted from a client, in bytes (whole packet); larger closes the connection.");
ABSL_FLAG(uint32_t, max_inflight, 64,
          "QoS 1/2 messages sent to one client and not yet acknowledged (1..65535).");
ABSL_FLAG(uint32_t, max_queued_messages, 1000,
          "Messages waiting for one session beyond the in-flight window (offline or slow); when full the "
          "oldest QoS 0 message is dropped first, then new messages.");
ABSL_FLAG(uint32_t, max_client_output_bytes, 8 * 1024 * 1024,
          "Bytes staged for one client's socket; past this QoS 0 messages to that client are dropped.");
ABSL_FLAG(uint32_t, payload_reference_min, 1024,
          "Payloads of at least this many bytes are sent to plain-TCP clients from the message itself, not "
          "copied per subscriber; 0 always copies.");
ABSL_FLAG(uint32_t, coalesce_wait_us, 0,
          "Microseconds a sleeping shard waits for more completions before waking for the first (Linux 6.12+): "
          "less CPU per message when messages arrive one by one, up to this much more latency; 0 wakes at once.");
ABSL_FLAG(uint32_t, connect_timeout, 10, "Seconds a new connection may take to send CONNECT.");
ABSL_FLAG(uint32_t, close_linger, 3,
          "Seconds a broker-initiated close may take to deliver its last packet (DISCONNECT, CONNACK) and see "
          "the client close; past it the socket is reset (1..3600).");
ABSL_FLAG(uint32_t, close_linger_bytes, 64 * 1024,
          "Bytes a closing connection may still read and discard while the client sees its DISCONNECT.");
ABSL_FLAG(uint32_t, tcp_user_timeout, 60,
          "TCP_USER_TIMEOUT on client sockets, in seconds: unacknowledged data past it drops the connection; "
          "0 = the kernel's default.");
ABSL_FLAG(uint32_t, max_client_id_length, 256, "Longest client id accepted, in bytes (up to 65535).");
ABSL_FLAG(uint32_t, max_subscriptions_per_session, 1000, "Subscriptions one session may hold.");
ABSL_FLAG(uint32_t, max_retained_messages, 100000, "Retained messages kept; new retained topics past it are not stored.");
ABSL_FLAG(uint32_t, max_sessions, 1000000, "Sessions one shard holds (online and offline).");
ABSL_FLAG(uint32_t, password_check_threads, 2, "Threads that check passwords against password files.");
ABSL_FLAG(uint32_t, password_check_queue, 1024,
          "CONNECTs per shard waiting for a password check; more are refused with Server busy.");
ABSL_FLAG(uint32_t, max_handshakes_per_turn, 32,
          "TLS/WebSocket handshake steps one shard runs per loop turn; more wait for the next turn.");
ABSL_FLAG(uint32_t, max_topic_levels, 201,
          "Levels a topic name, filter or will topic may have (1..65536; 201 = Mosquitto's bound); deeper "
          "ones are refused (SUBACK failure, or the connection closed / DISCONNECT 0x90).");
ABSL_FLAG(uint32_t, ring_entries, 4096, "io_uring submission queue entries per shard.");
ABSL_FLAG(uint32_t, receive_buffer_size, 16384, "Bytes per provided receive buffer.");
ABSL_FLAG(uint32_t, receive_buffer_count, 512, "Provided receive buffers per shard (rounded up to a power of two).");
ABSL_FLAG(uint32_t, cross_shard_queue_capacity, 65536,
          "Items each shard may have waiting for each other shard; past it the shard stops reading its "
          "sockets until the peer catches up (nothing is dropped).");
ABSL_FLAG(uint32_t, receive_maximum, 65535,
          "MQTT 5 Receive Maximum: QoS 2 messages a client may have awaiting PUBREL (1..65535); more gets "
          "DISCONNECT 0x93.");
ABSL_FLAG(uint32_t, max_qos, 2, "Highest QoS granted and accepted (MQTT 5 Maximum QoS; higher PUBLISH gets 0x9B).");
ABSL_FLAG(bool, retain_available, true, "Accept retained messages (MQTT 5 Retain Available; else 0x9A).");
ABSL_FLAG(uint32_t, topic_alias_maximum, 10, "Topic aliases a MQTT 5 client may set per connection (0..65535).");
ABSL_FLAG(bool, wildcard_subscriptions, true, "Allow '+' and '#' in subscriptions (else SUBACK 0xA2).");
ABSL_FLAG(bool, subscription_identifiers, true, "Allow MQTT 5 Subscription Identifiers (else DISCONNECT 0xA1).");
ABSL_FLAG(bool, shared_subscriptions, true, "Allow $share/{group}/{filter} subscriptions (else SUBACK 0x9E).");
ABSL_FLAG(uint32_t, server_keep_alive, 0,
          "Keep-alive in seconds the broker imposes on MQTT 5 clients (CONNACK Server Keep Alive); 0 = the client's.");
ABSL_FLAG(uint32_t, max_keepalive, 65535,
          "Longest keep-alive in seconds a client may use (1..65535): MQTT 5 clients asking for more or for 0 "
          "get it as Server Keep Alive, MQTT 3.1/3.1.1 clients are refused (CONNACK 0x02); 65535 = no cap.");
ABSL_FLAG(uint32_t, max_topic_alias_broker, 10,
          "Topic aliases the broker uses when sending to one MQTT 5 client (at most the client's Topic Alias "
          "Maximum; 0..65535).");
ABSL_FLAG(uint32_t, max_session_expiry, 0xFFFFFFFF,
          "Longest MQTT 5 Session Expiry Interval granted, in seconds (4294967295 = no cap).");
ABSL_FLAG(std::string, response_information_prefix, "",
          "Answer MQTT 5 Request Response Information with this prefix followed by the client id; empty = never.");
ABSL_FLAG(std::string, persistence, "none",
          "Durable persistence: none (everything in memory) or rocksdb (retained messages and persistent "
          "sessions in a RocksDB database under --data-dir; see docs/PERSISTENCE.md).");
ABSL_FLAG(std::string, data_dir, "coremq-data",
          "Directory of the --persistence=rocksdb database, made if missing (its parent must exist); relative "
          "paths are from the working directory (the Debian service uses /var/lib/coremq).");
ABSL_FLAG(std::string, fsync, "batch",
          "When an acknowledgement of durable state is sent: always (after an fsync of the log; nothing is "
          "lost on power loss), batch (after the log write, fsync every --fsync-interval-ms: kill -9 loses "
          "nothing, a power loss at most that interval), never (after the log write, no explicit fsync).");
ABSL_FLAG(uint32_t, fsync_interval_ms, 10, "With --fsync=batch: milliseconds between fsyncs of the log (1..10000).");
ABSL_FLAG(uint32_t, persistence_cache_mb, 64, "RocksDB block cache in MiB (1..65536).");
ABSL_FLAG(uint32_t, persistence_write_buffer_mb, 64,
          "Memory all RocksDB write buffers (memtables) may take together, in MiB (4..65536).");
ABSL_FLAG(uint32_t, persistence_max_mb, 0,
          "Live data the store may hold, in MiB; past it new retained messages are refused (as at "
          "--max-retained-messages) and new persistent sessions are kept in memory only; 0 = no bound.");
ABSL_FLAG(uint32_t, persistence_committer_nice, 19,
          "Nice value (0..19) of the store's committer thread: above the shards' 0, so a shard that "
          "shares its CPU runs first and the acknowledgements it takes meanwhile remove writes from the "
          "open batch (docs/PERSISTENCE.md).");
ABSL_FLAG(std::string, log_level, "info", "Log level: debug, info, warning, error, none.");
ABSL_FLAG(uint32_t, stats_interval, 0,
          "Seconds between each shard's 'stats' log line of its counters (name=value pairs); 0 = never.");
ABSL_FLAG(std::string, http_listener, "",
          "HTTP admin listener ADDRESS:PORT (dashboard /, Prometheus /metrics, admin API /api/v1); "
          "':PORT' = loopback only; empty = none.");
ABSL_FLAG(std::string, http_user, "", "HTTP basic-auth user, checked against --http-password-file.");
ABSL_FLAG(std::string, http_password_file, "", "Mosquitto password file holding --http-user's password.");
ABSL_FLAG(std::string, http_token_file, "",
          "File whose first line is the bearer token HTTP requests must send (Authorization: Bearer TOKEN).");
ABSL_FLAG(uint32_t, http_max_connections, 32, "HTTP connections open at once; more are refused.");
ABSL_FLAG(uint32_t, http_timeout, 10, "Seconds an HTTP connection may stay idle before it is closed.");
ABSL_FLAG(uint32_t, http_max_body_bytes, 256 * 1024, "Largest HTTP request body taken (else 413).");
ABSL_FLAG(std::string, log_dest, "stderr",
          "Where log lines go: stderr, file:PATH (reopened on SIGHUP, for logrotate) or syslog; "
          "comma-separated or repeated for several.");
ABSL_FLAG(std::string, log_format, "text",
          "Log line format: text, or json (one JSON object per line: time, level, shard, message and the "
          "line's fields).");
ABSL_FLAG(uint32_t, log_buffer_bytes, 256 * 1024,
          "Bytes of each thread's buffer of log lines waiting for the log thread; a line that does not fit "
          "is dropped and counted (4096..1073741824).");
ABSL_FLAG(uint32_t, log_recent_lines, 256, "Recent log lines kept in memory for the admin dashboard (0..100000).");
ABSL_FLAG(uint32_t, log_connection_lines, 50,
          "Client connect and disconnect lines each shard logs per second; more are left out and counted in the "
          "next line's '(N similar lines suppressed)' (1..1000000).");
ABSL_FLAG(uint32_t, sys_interval, 10,
          "Seconds between updates of the retained $SYS/broker/... topics (Mosquitto's names, see "
          "docs/OPERATIONS.md); 0 = no $SYS topics.");

namespace coremq::app {

namespace {

// The accepted range of every numeric flag that has one. options_from_flags checks the final
// values against it, and the config file reader checks each value it reads (flag_catalog), so
// an error there names its file and line.
constexpr FlagRange kFlagRanges[] = {
    {"port", 0, 65535},
    {"threads", 0, 256},
    {"max_connections", 1, 50'000'000},
    {"max_packet_size", 64, 268'435'460},
    {"max_inflight", 1, 65535},
    // A connection's buffers hold at most twice this (then it is closed), under 2 GiB.
    {"max_client_output_bytes", 1024, 1u << 30},
    // Below the shortest loop timeout (1 ms), so a wait still ends at the next tick.
    {"coalesce_wait_us", 0, 1000},
    {"connect_timeout", 1, 3600},
    {"close_linger", 1, 3600},
    {"close_linger_bytes", 0, 1u << 30},
    // The kernel takes milliseconds in an int.
    {"tcp_user_timeout", 0, 2'000'000},
    {"max_client_id_length", 23, 65535},
    {"max_sessions", 1, std::numeric_limits<uint32_t>::max()},
    {"max_topic_levels", 1, 65536},
    {"max_handshakes_per_turn", 1, 65536},
    {"password_check_threads", 1, 64},
    {"password_check_queue", 1, 1048576},
    {"ring_entries", 64, 32768},
    {"receive_buffer_size", 512, 1 << 20},
    {"receive_buffer_count", 16, 32768},
    {"cross_shard_queue_capacity", 64, 1 << 24},
    {"receive_maximum", 1, 65535},
    {"max_qos", 0, 2},
    {"topic_alias_maximum", 0, 65535},
    {"server_keep_alive", 0, 65535},
    {"max_keepalive", 1, 65535},
    {"max_topic_alias_broker", 0, 65535},
    {"stats_interval", 0, 86400},
    {"http_max_connections", 1, 65536},
    {"http_timeout", 1, 3600},
    {"http_max_body_bytes", 1024, 64u << 20},
    {"sys_interval", 0, 86400},
    {"log_buffer_bytes", 4096, 1u << 30},
    {"log_recent_lines", 0, 100000},
    {"log_connection_lines", 1, 1000000},
    {"fsync_interval_ms", 1, 10000},
    {"persistence_cache_mb", 1, 65536},
    {"persistence_write_buffer_mb", 4, 65536},
    {"persistence_max_mb", 0, 1u << 30},
    {"persistence_committer_nice", 0, 19},
};

const FlagRange& range_of(std::string_view flag) {
  for (const FlagRange& range : kFlagRanges) {
    if (range.flag == flag) return range;
  }
  COREMQ_ASSERT_MSG(false, "flag without a range");
  return kFlagRanges[0];
}

}  // namespace

std::span<const FlagRange> flag_ranges() { return kFlagRanges; }

bool options_from_flags(Options* options, std::string* error, const FlagOrigins* origins) {
  // Where a flag's value came from, when not the command line or its default.
  auto origin_prefix = [origins](std::string_view flag) -> std::string {
    if (origins == nullptr) return "";
    auto it = origins->find(std::string(flag));
    return it == origins->end() ? "" : it->second + ": ";
  };
  auto in_range = [&](std::string_view flag, uint32_t value, std::string* message) {
    const FlagRange& range = range_of(flag);
    if (value >= range.low && value <= range.high) return true;
    std::string dashed(flag);
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    *message = absl::StrFormat("%s--%s=%u is out of range [%u, %u]", origin_prefix(flag), dashed, value,
                               range.low, range.high);
    return false;
  };
  options->bind_address = absl::GetFlag(FLAGS_bind);
  uint32_t port = absl::GetFlag(FLAGS_port);
  if (!in_range("port", port, error)) return false;
  options->port = static_cast<uint16_t>(port);
  options->acl_file = absl::GetFlag(FLAGS_acl_file);
  options->threads = absl::GetFlag(FLAGS_threads);
  if (!in_range("threads", options->threads, error)) return false;
  options->pin_threads = absl::GetFlag(FLAGS_pin_threads);
  options->max_connections = absl::GetFlag(FLAGS_max_connections);
  if (!in_range("max_connections", options->max_connections, error)) return false;
  options->max_packet_size = absl::GetFlag(FLAGS_max_packet_size);
  if (!in_range("max_packet_size", options->max_packet_size, error)) return false;
  options->max_inflight = absl::GetFlag(FLAGS_max_inflight);
  if (!in_range("max_inflight", options->max_inflight, error)) return false;
  options->max_queued_messages = absl::GetFlag(FLAGS_max_queued_messages);
  options->max_client_output_bytes = absl::GetFlag(FLAGS_max_client_output_bytes);
  if (!in_range("max_client_output_bytes", options->max_client_output_bytes, error))
    return false;
  options->payload_reference_min_bytes = absl::GetFlag(FLAGS_payload_reference_min);
  options->coalesce_wait_us = absl::GetFlag(FLAGS_coalesce_wait_us);
  if (!in_range("coalesce_wait_us", options->coalesce_wait_us, error)) return false;
  options->connect_timeout_seconds = absl::GetFlag(FLAGS_connect_timeout);
  if (!in_range("connect_timeout", options->connect_timeout_seconds, error)) return false;
  options->close_linger_seconds = absl::GetFlag(FLAGS_close_linger);
  if (!in_range("close_linger", options->close_linger_seconds, error)) return false;
  options->close_linger_bytes = absl::GetFlag(FLAGS_close_linger_bytes);
  if (!in_range("close_linger_bytes", options->close_linger_bytes, error)) return false;
  options->tcp_user_timeout_seconds = absl::GetFlag(FLAGS_tcp_user_timeout);
  if (!in_range("tcp_user_timeout", options->tcp_user_timeout_seconds, error)) return false;
  options->max_client_id_length = absl::GetFlag(FLAGS_max_client_id_length);
  if (!in_range("max_client_id_length", options->max_client_id_length, error)) return false;
  options->max_subscriptions_per_session = absl::GetFlag(FLAGS_max_subscriptions_per_session);
  options->max_retained_messages = absl::GetFlag(FLAGS_max_retained_messages);
  options->max_sessions = absl::GetFlag(FLAGS_max_sessions);
  if (!in_range("max_sessions", options->max_sessions, error)) return false;
  options->max_topic_levels = absl::GetFlag(FLAGS_max_topic_levels);
  if (!in_range("max_topic_levels", options->max_topic_levels, error)) return false;
  options->max_handshakes_per_turn = absl::GetFlag(FLAGS_max_handshakes_per_turn);
  if (!in_range("max_handshakes_per_turn", options->max_handshakes_per_turn, error)) return false;
  options->password_check_threads = absl::GetFlag(FLAGS_password_check_threads);
  if (!in_range("password_check_threads", options->password_check_threads, error)) return false;
  options->password_check_queue = absl::GetFlag(FLAGS_password_check_queue);
  if (!in_range("password_check_queue", options->password_check_queue, error)) return false;
  options->ring_entries = absl::GetFlag(FLAGS_ring_entries);
  if (!in_range("ring_entries", options->ring_entries, error)) return false;
  options->receive_buffer_size = absl::GetFlag(FLAGS_receive_buffer_size);
  if (!in_range("receive_buffer_size", options->receive_buffer_size, error)) return false;
  options->receive_buffer_count = absl::GetFlag(FLAGS_receive_buffer_count);
  if (!in_range("receive_buffer_count", options->receive_buffer_count, error)) return false;
  options->cross_shard_queue_capacity = absl::GetFlag(FLAGS_cross_shard_queue_capacity);
  if (!in_range("cross_shard_queue_capacity", options->cross_shard_queue_capacity, error)) return false;
  uint32_t receive_maximum = absl::GetFlag(FLAGS_receive_maximum);
  if (!in_range("receive_maximum", receive_maximum, error)) return false;
  options->receive_maximum = static_cast<uint16_t>(receive_maximum);
  uint32_t max_qos = absl::GetFlag(FLAGS_max_qos);
  if (!in_range("max_qos", max_qos, error)) return false;
  options->maximum_qos = static_cast<uint8_t>(max_qos);
  options->retain_available = absl::GetFlag(FLAGS_retain_available);
  uint32_t topic_alias_maximum = absl::GetFlag(FLAGS_topic_alias_maximum);
  if (!in_range("topic_alias_maximum", topic_alias_maximum, error)) return false;
  options->topic_alias_maximum = static_cast<uint16_t>(topic_alias_maximum);
  options->wildcard_subscriptions_available = absl::GetFlag(FLAGS_wildcard_subscriptions);
  options->subscription_identifiers_available = absl::GetFlag(FLAGS_subscription_identifiers);
  options->shared_subscriptions_available = absl::GetFlag(FLAGS_shared_subscriptions);
  uint32_t server_keep_alive = absl::GetFlag(FLAGS_server_keep_alive);
  if (!in_range("server_keep_alive", server_keep_alive, error)) return false;
  options->server_keep_alive_seconds = static_cast<uint16_t>(server_keep_alive);
  uint32_t max_keepalive = absl::GetFlag(FLAGS_max_keepalive);
  if (!in_range("max_keepalive", max_keepalive, error)) return false;
  options->max_keep_alive_seconds = static_cast<uint16_t>(max_keepalive);
  // The server's own keep-alive is not cut down behind the operator's back: say so at start.
  if (server_keep_alive > max_keepalive) {
    *error = absl::StrFormat("%s--server-keep-alive=%u is over --max-keepalive=%u", origin_prefix("server_keep_alive"),
                             server_keep_alive, max_keepalive);
    return false;
  }
  uint32_t max_topic_alias_broker = absl::GetFlag(FLAGS_max_topic_alias_broker);
  if (!in_range("max_topic_alias_broker", max_topic_alias_broker, error)) return false;
  options->max_topic_alias_broker = static_cast<uint16_t>(max_topic_alias_broker);
  options->max_session_expiry_seconds = absl::GetFlag(FLAGS_max_session_expiry);
  options->response_information_prefix = absl::GetFlag(FLAGS_response_information_prefix);
  options->log_level = absl::GetFlag(FLAGS_log_level);
  options->stats_interval_seconds = absl::GetFlag(FLAGS_stats_interval);
  if (!in_range("stats_interval", options->stats_interval_seconds, error)) return false;
  options->http_listener = absl::GetFlag(FLAGS_http_listener);
  options->http_user = absl::GetFlag(FLAGS_http_user);
  options->http_password_file = absl::GetFlag(FLAGS_http_password_file);
  options->http_token_file = absl::GetFlag(FLAGS_http_token_file);
  options->http_max_connections = absl::GetFlag(FLAGS_http_max_connections);
  if (!in_range("http_max_connections", options->http_max_connections, error)) return false;
  options->http_timeout_seconds = absl::GetFlag(FLAGS_http_timeout);
  if (!in_range("http_timeout", options->http_timeout_seconds, error)) return false;
  options->http_max_body_bytes = absl::GetFlag(FLAGS_http_max_body_bytes);
  if (!in_range("http_max_body_bytes", options->http_max_body_bytes, error)) return false;
  options->sys_interval_seconds = absl::GetFlag(FLAGS_sys_interval);
  if (!in_range("sys_interval", options->sys_interval_seconds, error)) return false;
  options->log_connection_lines_per_second = absl::GetFlag(FLAGS_log_connection_lines);
  if (!in_range("log_connection_lines", options->log_connection_lines_per_second, error)) return false;
  PersistenceOptions& persistence = options->persistence;
  std::string engine = absl::GetFlag(FLAGS_persistence);
  if (engine == "none") {
    persistence.engine = PersistenceOptions::Engine::kNone;
  } else if (engine == "rocksdb") {
    persistence.engine = PersistenceOptions::Engine::kRocksDb;
  } else {
    *error = absl::StrFormat("%s--persistence=%s: expected none or rocksdb", origin_prefix("persistence"), engine);
    return false;
  }
  persistence.data_dir = absl::GetFlag(FLAGS_data_dir);
  if (persistence.engine != PersistenceOptions::Engine::kNone && persistence.data_dir.empty()) {
    *error = absl::StrFormat("%s--data-dir is empty", origin_prefix("data_dir"));
    return false;
  }
  std::string fsync = absl::GetFlag(FLAGS_fsync);
  if (fsync == "always") {
    persistence.fsync = PersistenceOptions::Fsync::kAlways;
  } else if (fsync == "batch") {
    persistence.fsync = PersistenceOptions::Fsync::kBatch;
  } else if (fsync == "never") {
    persistence.fsync = PersistenceOptions::Fsync::kNever;
  } else {
    *error = absl::StrFormat("%s--fsync=%s: expected always, batch or never", origin_prefix("fsync"), fsync);
    return false;
  }
  persistence.fsync_interval_ms = absl::GetFlag(FLAGS_fsync_interval_ms);
  if (!in_range("fsync_interval_ms", persistence.fsync_interval_ms, error)) return false;
  persistence.cache_mb = absl::GetFlag(FLAGS_persistence_cache_mb);
  if (!in_range("persistence_cache_mb", persistence.cache_mb, error)) return false;
  persistence.write_buffer_mb = absl::GetFlag(FLAGS_persistence_write_buffer_mb);
  if (!in_range("persistence_write_buffer_mb", persistence.write_buffer_mb, error)) return false;
  persistence.max_store_mb = absl::GetFlag(FLAGS_persistence_max_mb);
  if (!in_range("persistence_max_mb", persistence.max_store_mb, error)) return false;
  persistence.committer_nice = absl::GetFlag(FLAGS_persistence_committer_nice);
  if (!in_range("persistence_committer_nice", persistence.committer_nice, error)) return false;
  return true;
}

bool log_options_from_flags(base::LogOptions* log, base::LogFormat* format, std::string* error,
                            const FlagOrigins* origins) {
  auto origin_prefix = [origins](std::string_view flag) -> std::string {
    if (origins == nullptr) return "";
    auto it = origins->find(std::string(flag));
    return it == origins->end() ? "" : it->second + ": ";
  };
  std::string message;
  std::string destinations = absl::GetFlag(FLAGS_log_dest);
  if (!base::parse_log_destinations(destinations, &log->destinations, &message)) {
    *error = absl::StrFormat("%s--log-dest=%s: %s", origin_prefix("log_dest"), destinations, message);
    return false;
  }
  std::string format_name = absl::GetFlag(FLAGS_log_format);
  if (!base::parse_log_format(format_name, format)) {
    *error = absl::StrFormat("%s--log-format=%s: expected text or json", origin_prefix("log_format"), format_name);
    return false;
  }
  for (auto [flag, value, field] :
       {std::tuple{"log_buffer_bytes", absl::GetFlag(FLAGS_log_buffer_bytes), &log->thread_buffer_bytes},
        std::tuple{"log_recent_lines", absl::GetFlag(FLAGS_log_recent_lines), &log->recent_lines}}) {
    const FlagRange& range = range_of(flag);
    if (value < range.low || value > range.high) {
      std::string dashed(flag);
      std::replace(dashed.begin(), dashed.end(), '_', '-');
      *error = absl::StrFormat("%s--%s=%u is out of range [%u, %u]", origin_prefix(flag), dashed, value, range.low,
                               range.high);
      return false;
    }
    *field = value;
  }
  return true;
}

std::string repeated_flag_values(const std::vector<std::string>& arguments, std::string_view flag) {
  std::string dashed(flag);
  std::replace(dashed.begin(), dashed.end(), '_', '-');
  std::string joined;
  auto add = [&joined](std::string_view value) {
    if (!joined.empty()) joined += ',';
    joined += value;
  };
  for (size_t i = 1; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument == "--") break;
    for (const std::string& name : {std::string(flag), dashed}) {
      for (const std::string& prefix : {"--" + name + "=", "-" + name + "="}) {
        if (argument.starts_with(prefix)) add(std::string_view(argument).substr(prefix.size()));
      }
      if ((argument == "--" + name || argument == "-" + name) && i + 1 < arguments.size()) add(arguments[++i]);
    }
  }
  return joined;
}

}  // namespace coremq::app
