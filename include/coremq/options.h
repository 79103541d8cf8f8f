// Everything that tunes a coremq broker. The library never reads command-line flags:
// an embedding program fills this struct; the coremq binary fills it from its flags.
// Every bound the broker enforces lives here, so each one has a name and a default.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "coremq/authentication.h"
#include "coremq/authorization.h"
#include "coremq/events.h"
#include "coremq/interception.h"

namespace coremq {

// TLS on one listener, as Mosquitto's listener options of the same names.
struct TlsOptions {
  std::string certfile;  // server certificate chain (PEM)
  std::string keyfile;   // its private key (PEM)
  std::string cafile;    // CAs that client certificates must chain to (PEM)
  std::string capath;    // a directory of hashed CA certificates, the same use
  std::string crlfile;   // revoked client certificates (PEM CRL); checked when set
  std::string ciphers;       // TLS 1.2 cipher list (OpenSSL syntax); empty: OpenSSL's default
  std::string ciphersuites;  // TLS 1.3 cipher suites; empty: OpenSSL's default
  // Oldest protocol accepted: "tlsv1.2" or "tlsv1.3" (Mosquitto's tls_version).
  std::string min_version = "tlsv1.2";
  // A client must present a certificate that chains to cafile/capath.
  bool require_certificate = false;
  // The client certificate's subject CN (identity) or whole subject (RFC 2253) becomes the
  // MQTT username; the CONNECT's own username is ignored.
  bool use_identity_as_username = false;
  bool use_subject_as_username = false;
};

// One address and port the broker accepts clients on. Every shard serves every listener.
struct ListenerOptions {
  enum class Transport : uint8_t { kMqtt, kWebSockets };
  // Whether clients without a username (and without a certificate that gives one) may connect.
  // kDefault: only on a loopback address or with require_certificate, and never with a
  // password_file (Mosquitto 2's rule, so a broker opened to the network is never open by
  // accident).
  enum class Anonymous : uint8_t { kDefault, kAllow, kDeny };

  // Numeric IPv4 or IPv6 address; empty (or "localhost"): loopback only (127.0.0.1 and ::1);
  // "*": every interface, IPv4 and IPv6. A missing IPv6 half (no IPv6 on the machine) is logged.
  // A host name is resolved once by Broker::start (getaddrinfo; every address it yields is
  // bound), and start fails when it does not resolve.
  std::string address;
  // 0 asks the kernel for a free port (see Broker::port()).
  uint16_t port = 1883;
  Transport transport = Transport::kMqtt;
  bool tls = false;
  TlsOptions tls_options;
  Anonymous allow_anonymous = Anonymous::kDefault;
  // Refuse (CONNACK 0x05/0x87) a client whose username nothing can check: no password_file, not
  // from a certificate, no MQTT 5 authentication method. Mosquitto 2's rule when allow_anonymous
  // is false, which the config file sets for such listeners (src/config); false (flags,
  // embedders): a username without a password file is taken as given.
  bool refuse_unchecked_usernames = false;
  // Mosquitto password file (mosquitto_passwd / coremq-passwd format); empty: none.
  std::string password_file;
  // Mosquitto ACL file; empty: every client may publish and subscribe to everything.
  std::string acl_file;
};

// Durable persistence (docs/PERSISTENCE.md): retained messages and persistent sessions kept in
// a RocksDB database under data_dir, written by a committer thread from each shard's per-turn
// batch; answers that promise durable state wait until their batch is durable.
struct PersistenceOptions {
  enum class Engine : uint8_t { kNone, kRocksDb };
  // What an acknowledgement waits for: kAlways, an fsync of the write-ahead log (nothing
  // acknowledged is lost, even on power loss); kBatch, the write into the log (survives kill -9;
  // a power loss loses at most fsync_interval_ms); kNever, the write into the log with no
  // explicit fsync (survives kill -9; a power loss loses what the kernel had not written yet).
  enum class Fsync : uint8_t { kAlways, kBatch, kNever };
  Engine engine = Engine::kNone;
  // The database directory (made if missing; its parent must exist). The binary's default.
  std::string data_dir = "coremq-data";
  Fsync fsync = Fsync::kBatch;
  // kBatch: the write-ahead log is fsynced this often.
  uint32_t fsync_interval_ms = 10;
  // RocksDB block cache (reads: loads, queues read back).
  uint32_t cache_mb = 64;
  // All memtables together (a WriteBufferManager): what RocksDB buffers before it flushes.
  uint32_t write_buffer_mb = 64;
  // Live data in the store (approximate: SST files plus memtables, checked each second); past
  // it new retained messages are refused as past --max-retained-messages and new persistent
  // sessions are kept in memory only (counter store_full_refusals). 0: no bound.
  uint32_t max_store_mb = 0;
  // Commit requests one shard may have waiting for the committer; past it the shard keeps
  // adding to its open batch and submits it once there is room (its acknowledgements wait).
  uint32_t commit_queue_capacity = 256;
  // Batches one shard may have with the committer, not yet answered. Its open batch grows
  // meanwhile (one write for many turns), and a message queued for a persistent session and
  // acknowledged by it before its batch leaves never reaches the disk. 1 keeps batches large;
  // more lowers the latency of an acknowledgement when the disk is idle.
  uint32_t batches_in_flight = 1;
  // The committer thread's nice value (0..19; the shards run at 0). Where it shares a CPU with
  // a shard, the kernel gives the shard the CPU first: every acknowledgement the shard takes
  // before the committer runs removes a write from the open batch (ShardJournal), so the
  // committer's work shrinks the longer it waits. It is never starved: a nice-19 thread still
  // gets about 1/70 of a CPU it shares with one busy thread, and all of an idle one.
  uint32_t committer_nice = 19;
};

// One `topic` line of a bridge: what crosses it, which way, at which QoS, and how the topic
// is renamed (mosquitto.conf(5): `topic PATTERN [out|in|both] [QOS] [LOCAL_PREFIX] [REMOTE_PREFIX]`).
// Local topic = local_prefix + T, remote topic = remote_prefix + T, for T matching pattern; an
// empty pattern ("" in the file) makes each prefix the whole topic on its side.
struct BridgeTopic {
  enum class Direction : uint8_t { kOut, kIn, kBoth };
  std::string pattern;
  Direction direction = Direction::kOut;
  uint8_t qos = 0;
  std::string local_prefix;
  std::string remote_prefix;
};

// One bridge (a mosquitto.conf `connection NAME` section): an outbound MQTT client that lives
// on one shard (owner_shard_of(local_clientid)) and carries `topics` between this broker and
// the remote one. docs/BRIDGING.md lists what each field does and the Mosquitto defaults kept.
struct BridgeOptions {
  struct Address {
    std::string host;  // a name or numeric address, resolved once at start (getaddrinfo)
    uint16_t port = 1883;
  };
  enum class StartType : uint8_t { kAutomatic, kLazy, kOnce };
  std::string name;
  // Tried in order: a failed connect moves to the next (failover); a lost connection starts
  // again from the first.
  std::vector<Address> addresses;
  std::vector<BridgeTopic> topics;
  uint8_t protocol_version = 4;  // 4: MQTT 3.1.1, 5: MQTT 5.0
  // 3.1.1: send the protocol level with 0x80 set, so a Mosquitto (or coremq) remote treats the
  // connection as a bridge and never sends its own messages back.
  bool try_private = true;
  bool clean_session = false;
  std::string local_clientid;   // empty: "local." + remote_clientid (Mosquitto's default)
  std::string remote_clientid;  // empty: HOSTNAME + "." + name (Mosquitto's default)
  std::string remote_username;
  std::string remote_password;
  bool has_remote_password = false;
  uint16_t keepalive_seconds = 60;
  bool notifications = true;
  // Empty: $SYS/broker/connection/REMOTE_CLIENTID/state (Mosquitto's default).
  std::string notification_topic;
  // Reconnect delay: constant when restart_timeout_cap_seconds is 0, else Mosquitto's
  // decorrelated jitter between base and cap (`restart_timeout BASE CAP`).
  uint32_t restart_timeout_seconds = 5;
  uint32_t restart_timeout_cap_seconds = 30;
  StartType start_type = StartType::kAutomatic;
  uint32_t threshold = 10;            // lazy: queued messages that start the connection
  uint32_t idle_timeout_seconds = 60; // lazy: idle seconds before it stops again
  uint32_t max_packet_size = 0;       // 0: no limit beyond the protocol's
  bool outgoing_retain = true;
  // TLS towards the remote (any of these makes the bridge use TLS; cafile empty: the system CAs).
  // tls_version: the oldest accepted, "tlsv1.2" (default) or "tlsv1.3".
  std::string cafile;
  std::string certfile;
  std::string keyfile;
  bool insecure = false;
  std::string tls_version;
  // coremq's own bounds: outbound messages waiting for the remote (QoS 0 past it is dropped,
  // QoS 1/2 stay unacknowledged in the bridge's local session, which holds them in order), and
  // QoS 1/2 messages sent to the remote and not yet acknowledged.
  uint32_t max_queued_messages = 10000;
  uint32_t max_inflight = 1000;
  // Of those, QoS 2 messages (a 3.1.1 Mosquitto remote drops a client with more unreleased than
  // its max_inflight_messages, 20 by default).
  uint32_t max_inflight_qos2 = 20;
};

struct Options {
  // Where to listen when `listeners` is empty: one plain MQTT listener. An empty address
  // means loopback only (127.0.0.1 and ::1); port 0 asks the kernel for a free port
  // (see Broker::port()).
  std::string bind_address;
  uint16_t port = 1883;
  // That listener's Mosquitto ACL file (only when `listeners` is empty; a listener in
  // `listeners` has its own); empty: every client may publish and subscribe to everything.
  std::string acl_file;
  // Every listener (at most 255); when empty, bind_address and port above make the only one.
  std::vector<ListenerOptions> listeners;
  // Bridges to other brokers (docs/BRIDGING.md); each runs on the shard that owns its local
  // client id.
  std::vector<BridgeOptions> bridges;

  // Number of shards (event-loop threads); 0 means one per online CPU.
  uint32_t threads = 0;
  // Pin shard i to the i-th CPU this process may run on.
  bool pin_threads = true;

  // Threads that check passwords against password files (hashing never runs on a shard),
  // and the CONNECTs each shard may have waiting for them; past that a CONNECT is refused
  // with Server busy (3.1.1: Server unavailable).
  uint32_t password_check_threads = 2;
  uint32_t password_check_queue = 1024;
  // TLS and WebSocket handshake steps one shard runs per loop turn (a TLS handshake costs up
  // to a millisecond of CPU); past it, handshake input waits for the next turn, so a storm of
  // new connections cannot starve the shard's established clients.
  uint32_t max_handshakes_per_turn = 32;
  // Connections the whole broker holds at once; more are accepted and closed at once.
  uint32_t max_connections = 100000;
  // Largest MQTT packet (fixed header included) accepted from a client.
  uint32_t max_packet_size = 1024 * 1024;
  // QoS 1/2 messages sent to one client and not yet acknowledged.
  uint32_t max_inflight = 64;
  // Messages waiting for one session beyond the in-flight window, online or offline.
  uint32_t max_queued_messages = 1000;
  // Bytes staged for one connection's socket; past this QoS 0 messages to it are dropped
  // and, past twice this, the connection is closed as a slow consumer.
  uint32_t max_client_output_bytes = 8 * 1024 * 1024;
  // Payloads of at least this many bytes go to plain-TCP clients straight from the message
  // (one gathered send) instead of being copied into each client's output; 0: always copy.
  uint32_t payload_reference_min_bytes = 1024;
  // Seconds a new connection may take to send CONNECT.
  uint32_t connect_timeout_seconds = 10;
  // Seconds a close that has something to tell the client (a CONNACK refusal, a DISCONNECT
  // with a reason, queued messages at shutdown) may take: flushing it, then reading and
  // discarding what the client still sends until it closes its side. Past it the socket is
  // reset, so a client that stops reading cannot hold it.
  uint32_t close_linger_seconds = 3;
  // Bytes such a closing connection may still read and discard before it is closed anyway.
  uint32_t close_linger_bytes = 64 * 1024;
  // TCP_USER_TIMEOUT on client sockets: seconds sent data may stay unacknowledged before
  // the kernel drops the connection (a dead peer); 0 keeps the kernel's default.
  uint32_t tcp_user_timeout_seconds = 60;
  // Longest client id accepted (the spec allows 65535; most fleets use < 64).
  uint32_t max_client_id_length = 256;
  // Subscriptions one session may hold.
  uint32_t max_subscriptions_per_session = 1000;
  // Retained messages the broker keeps (each shard keeps a copy of the index).
  uint32_t max_retained_messages = 100000;
  // Persistent sessions (clean session 0) kept while their clients are offline, per shard.
  uint32_t max_sessions = 1000000;
  // Levels a topic name or filter may have (a/b/c has 3); deeper ones are refused. 201 is
  // Mosquitto's bound (at most 200 '/'), so anything Mosquitto takes is taken here.
  uint32_t max_topic_levels = 201;

  // Microseconds a shard that goes to sleep waits for more completions before it wakes for the
  // first one (the kernel's minimum wait, Linux 6.12+; ignored before): messages arriving one
  // by one are then handled several per wake-up, for less CPU per message and up to this much
  // more latency. 0: wake for every completion.
  uint32_t coalesce_wait_us = 0;

  // io_uring sizing per shard.
  uint32_t ring_entries = 4096;
  // 16 KiB x 512 = 8 MiB per shard, all of it touched in time (the kernel hands buffers out
  // in ring order). Smaller buffers cost a receive completion (and a copy into the packet's
  // buffer) per 2 KiB of a large packet: with 2 KiB x 1024, 16 KiB pairs took 1.4x the broker
  // CPU per message; at 64 B the larger buffers measured the same or better (fewer completions
  // when a client's messages queue up). See docs/BENCHMARKS.md.
  uint32_t receive_buffer_size = 16384;
  uint32_t receive_buffer_count = 512;
  // Items one shard may have waiting for each other shard; past it the shard stops
  // reading its sockets until the peer catches up.
  uint32_t cross_shard_queue_capacity = 65536;
  // In-process clients (Broker::connect_local): packets host threads may have waiting for
  // one shard (a publish, a subscribe, an acknowledgement each); past it an operation fails
  // with LocalStatus::kIntakeFull (counter local_intake_full).
  uint32_t local_intake_capacity = 16384;
  // Batches of output one shard may have waiting for the delivery thread that runs the
  // in-process callbacks; past it the shard keeps the output on the client's connection, as
  // for a socket that does not drain (--max-client-output-bytes then applies; counter
  // local_delivery_queue_full).
  uint32_t local_delivery_queue_capacity = 4096;

  // MQTT 5: what CONNACK announces and the broker then enforces.
  // QoS 1/2 PUBLISH a client may have unacknowledged towards the broker (QoS 2 until PUBREL).
  uint16_t receive_maximum = 65535;
  uint8_t maximum_qos = 2;
  bool retain_available = true;
  // Inbound topic aliases a client may set per connection (0: none).
  uint16_t topic_alias_maximum = 10;
  bool wildcard_subscriptions_available = true;
  bool subscription_identifiers_available = true;
  bool shared_subscriptions_available = true;
  // Overrides the client's keep-alive when non-zero (CONNACK Server Keep Alive).
  uint16_t server_keep_alive_seconds = 0;
  // Longest keep-alive a client may use (Mosquitto's max_keepalive). An MQTT 5 client asking
  // for more, or for 0 (none), gets Server Keep Alive = this; an MQTT 3.1/3.1.1 client is
  // refused (CONNACK 0x02). 65535 (the largest keep-alive there is) means no cap, and then
  // keep-alive 0 stays allowed.
  uint16_t max_keep_alive_seconds = 65535;
  // Topic aliases the broker uses towards one client: at most min(client's Topic Alias
  // Maximum, this), so a client cannot make it hold 65535 topic strings (Mosquitto's
  // max_topic_alias_broker).
  uint16_t max_topic_alias_broker = 10;
  // Cap on a client's Session Expiry Interval (0xFFFFFFFF: no cap).
  uint32_t max_session_expiry_seconds = 0xFFFFFFFF;
  // Answer Request Response Information with this prefix + client id; empty: never.
  std::string response_information_prefix;
  // Enhanced authentication methods (MQTT 5); none by default.
  std::shared_ptr<AuthenticationHook> authentication_hook;
  // What each client may publish, subscribe to and receive, decided in process next to the
  // listeners' ACL files (include/coremq/authorization.h); none by default.
  std::shared_ptr<AuthorizationHook> authorization_hook;
  // Sees every PUBLISH entering the broker from a client and may pass, rewrite or drop it
  // (include/coremq/interception.h); none by default.
  std::shared_ptr<MessageInterceptor> message_interceptor;
  // Told of connects, disconnects, subscriptions and dropped messages (include/coremq/events.h);
  // none by default.
  std::shared_ptr<EventHook> event_hook;
  // Asynchronous hook decisions (include/coremq/async_hooks.h): how long one may take before
  // it counts as a refusal (0x80; counter hook_decisions_timed_out), and how many one shard
  // may wait for at once (past it: refused at once, 0x97; counter hook_decisions_refused_busy).
  uint32_t hook_timeout_ms = 5000;
  uint32_t max_pending_hook_decisions = 1024;

  // Durable persistence; none by default (everything lives in memory).
  PersistenceOptions persistence;

  // Log level name: debug, info, warning, error, none.
  std::string log_level = "info";
  // Seconds between each shard's "stats" log line of its counters; 0 = never.
  uint32_t stats_interval_seconds = 0;

  // The HTTP admin listener (Prometheus /metrics and the admin API, src/admin/), served by
  // its own thread: "ADDRESS:PORT", "HOST:PORT", "[IPV6]:PORT" or ":PORT" (loopback only);
  // empty: none. Port 0 asks the kernel for a free port (Broker::http_port()).
  std::string http_listener;
  // Basic authentication: this user, checked against a Mosquitto password file (both set or
  // neither); or a bearer token, the first line of http_token_file. Neither: no authentication.
  std::string http_user;
  std::string http_password_file;
  std::string http_token_file;
  // HTTP connections open at once (more are refused at accept), seconds one may stay idle,
  // and the largest request body taken (a POST over it gets 413). Each hit is counted.
  uint32_t http_max_connections = 32;
  uint32_t http_timeout_seconds = 10;
  uint32_t http_max_body_bytes = 256 * 1024;
  // Seconds between updates of the retained $SYS/broker/... topics (Mosquitto's names; see
  // docs/OPERATIONS.md), published by a "coremq-sys" thread through an in-process client with
  // client id "$coremq-sys"; 0 = no $SYS topics. The coremq binary's --sys-interval defaults
  // to 10, as Mosquitto's sys_interval does; an embedding program asks for them.
  uint32_t sys_interval_seconds = 0;
  // Client connect and disconnect log lines (info) each shard writes per second; more are left
  // out and counted in the next one's "(N similar lines suppressed)".
  uint32_t log_connection_lines_per_second = 50;
};

}  // namespace coremq
