// Options: one run of mqtt-bench as the user asked for it, after flags were parsed, checked and
// the --scenario preset applied. Built once by the main thread, then read-only and shared by
// every worker for the life of the run.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "address.h"

namespace coremq::bench {

enum class Command { kConn, kPub, kSub, kRun };
enum class Scenario { kNone, kFanIn, kFanOut, kPairs, kShared };
// How open-loop messages (--rate, --interval) are spread in time. kBurst: every publisher on the
// same beat (all send at once, then all wait: easy to batch). kUniform: every message of the run
// evenly spaced, publisher after publisher (the fleet pattern, the hardest to batch). kPoisson:
// each publisher with exponential gaps (independent devices).
enum class Arrival { kBurst, kUniform, kPoisson };
const char* arrival_name(Arrival arrival);

const char* command_name(Command command);
struct Options;
// "mqtt", "mqtts", "ws" or "wss", and the broker as a URL of that scheme
// ("wss://127.0.0.1:8081/mqtt"): how the report names the transport.
const char* transport_scheme(const Options& options);
std::string broker_url(const Options& options);
const char* scenario_name(Scenario scenario);

struct Options {
  Command command = Command::kRun;
  Scenario scenario = Scenario::kNone;
  std::string host = "127.0.0.1";       // the broker's address, numeric ("::1" for IPv6)
  std::string host_name = "127.0.0.1";  // --host as given: WebSocket Host header, TLS name
  uint16_t port = 1883;
  sockaddr_storage broker_address{};    // resolved once from --host and --port
  socklen_t broker_address_length = 0;
  // --source-address: this process uses addresses source_offset + j * source_stride for
  // j < source_local_count, its client number c taking j = c % source_local_count.
  SourceAddresses source_addresses;
  uint32_t source_offset = 0;
  uint32_t source_stride = 1;
  uint32_t source_local_count = 0;

  // The transport: plain TCP when both tls and ws are off (no transport object at all then).
  bool tls = false;
  std::string tls_ca_file;       // empty: the system's default CA paths
  std::string tls_cert_file;     // client certificate chain (PEM), with tls_key_file
  std::string tls_key_file;
  bool tls_insecure = false;     // no certificate chain or name check
  int tls_version_min = 0;       // OpenSSL's TLS1_2_VERSION, TLS1_3_VERSION; 0 = no bound
  int tls_version_max = 0;
  std::string tls_server_name;   // SNI (a DNS name) and the name the certificate must carry
  bool tls_resume = false;       // resume the worker's latest session on each new connection
  bool ws = false;
  std::string ws_path = "/mqtt";

  // Clients of this process. With --process-count N every count flag means all N processes
  // together and this process runs the clients whose number n has n % N == process_index
  // (the *_total fields keep the totals: topics, client ids and schedule phases use n).
  uint32_t idle_connections = 0;  // `conn`
  uint32_t publishers = 0;
  uint32_t subscribers = 0;
  uint32_t idle_connections_total = 0;
  uint32_t publishers_total = 0;
  uint32_t subscribers_total = 0;
  uint32_t process_index = 0;
  uint32_t process_count = 1;
  std::string publish_topic;    // template: %i client index, %c client id
  std::string subscribe_filter; // template, as above

  uint8_t qos = 0;
  uint32_t payload_bytes = 64;      // --size, or the low end of a range
  uint32_t payload_bytes_max = 64;  // the high end of a range (== payload_bytes for one size)
  bool size_exponential = false;    // --size-dist exponential (else uniform over the range)
  bool retain = false;              // PUBLISH with RETAIN
  // --will-topic: every client's CONNECT carries a will (topic template as --topic).
  std::string will_topic;
  std::string will_payload;
  uint8_t will_qos = 0;
  bool will_retain = false;
  // --reconnect-every: publishers and idle connections disconnect and connect again after this
  // many messages (publishers) or seconds (both); 0 = never.
  uint64_t reconnect_messages = 0;
  double reconnect_s = 0;
  uint64_t rate_total = 0;      // messages/s over all publishers; 0 = as fast as the window allows
  // Open loop: the gap between two messages of one publisher, and each message's scheduled time
  // (what its payload carries). rate_total > 0 or --interval set it; 0 = closed loop.
  double period_ns = 0;
  double interval_s = 0;        // --interval as given (0 when --rate set the period)
  Arrival arrival = Arrival::kBurst;
  int64_t lag_threshold_ns = 10'000'000;  // a message written later than this after its time is late
  uint32_t window = 0;          // unacknowledged (QoS 1/2) or undelivered (QoS 0, `run`) per publisher
  double duration_s = 0;        // publishing time after warm-up (`conn`: hold time); 0 = bounded by count
  uint64_t count = 0;           // messages per publisher (`sub`: per subscriber); 0 = bounded by duration
  double warmup_s = 0;
  double connect_timeout_s = 30;
  double drain_timeout_s = 5;
  double stall_timeout_s = 10;  // --count runs: no progress for this long ends the run

  uint8_t protocol_level = 4;   // 3 (3.1), 4 (3.1.1) or 5
  // MQTT 5 only: CONNECT properties (absent when 0 / has_session_expiry false), topic aliases on
  // publish (when the broker's CONNACK allows one), User Properties on every PUBLISH.
  bool has_session_expiry = false;
  uint32_t session_expiry_s = 0;
  uint16_t receive_maximum = 0;
  uint32_t maximum_packet_size = 0;
  bool topic_alias = false;
  std::vector<std::pair<std::string, std::string>> user_properties;
  std::string share_group = "bench";  // --scenario shared: $share/<group>/...
  bool clean_session = true;
  bool has_username = false;
  std::string username;
  bool has_password = false;
  std::string password;
  uint16_t keepalive_s = 60;
  std::string client_id_prefix;
  uint32_t threads = 1;
  double connect_rate = 0;      // new connections/s over all threads; 0 = as fast as possible

  std::string json_path;
  int broker_pid = 0;
  bool quiet = false;           // no progress line
};

// Turns argv (after the subcommand was taken off and flags were parsed) into Options.
// Returns false with a message on any usage error (the caller exits 2).
[[nodiscard]] bool options_from_flags(Command command, Options* options, std::string* error);

// Every client is a socket: raises the soft RLIMIT_NOFILE to what this process's clients need
// (up to the hard limit). False with a message when even the hard limit is too low.
[[nodiscard]] bool fit_descriptor_limit(const Options& options, std::string* error);


}  // namespace coremq::bench
