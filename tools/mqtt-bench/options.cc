// Flag definitions (their help text is what `mqtt-bench --help` prints), the checks on them and
// the --scenario presets. Runs on the main thread before any worker starts.
#include "options.h"

#include <arpa/inet.h>
#include <openssl/tls1.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <string_view>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "bounds.h"
#include "clock.h"
#include "payload.h"

ABSL_FLAG(std::string, host, "127.0.0.1",
          "Broker host: an IPv4 or IPv6 address (::1) or a name, resolved once (a name's first IPv4 address, "
          "else its first IPv6 one).");
ABSL_FLAG(std::string, source_address, "",
          "Bind each client to the next local address of this list before connecting (ports are then picked "
          "per destination, IP_BIND_ADDRESS_NO_PORT), so one run passes the ~64k ports of one source: an "
          "address, a range 127.0.0.1-127.0.0.255 or a CIDR 127.0.0.0/24.");
ABSL_FLAG(uint32_t, port, 0, "Broker TCP port; 0 = 1883, or 8883 with --tls (--ws needs it given).");
ABSL_FLAG(bool, tls, false, "MQTT over TLS (mqtts://; with --ws: wss://). The broker's certificate is checked "
          "against --cafile (or the system's CAs) and --tls-server-name unless --tls-insecure.");
ABSL_FLAG(std::string, cafile, "", "--tls: PEM file of the CA certificates to trust (default: the system's).");
ABSL_FLAG(std::string, cert, "", "--tls: client certificate chain (PEM), for brokers that require one; needs --key.");
ABSL_FLAG(std::string, key, "", "--tls: private key (PEM) of --cert.");
ABSL_FLAG(bool, tls_insecure, false, "--tls: do not check the broker's certificate or its name.");
ABSL_FLAG(std::string, tls_version, "",
          "--tls: 1.2 or 1.3 (only that version; tlsv1.2 and tlsv1.3 also read), or 1.2-1.3 (the default).");
ABSL_FLAG(std::string, tls_server_name, "",
          "--tls: the name sent as SNI (when not an address) and checked in the certificate (default: --host).");
ABSL_FLAG(bool, tls_resume, false,
          "--tls: resume the latest TLS session of the thread on every new connection (measures resumed "
          "handshakes; the report counts them).");
ABSL_FLAG(bool, ws, false, "MQTT over WebSocket (ws://; with --tls: wss://), subprotocol mqtt, one frame per packet.");
ABSL_FLAG(std::string, ws_path, "/mqtt", "--ws: the path of the upgrade request.");
ABSL_FLAG(int64_t, connections, -1, "conn: connections to open and hold (default 100).");
ABSL_FLAG(int64_t, publishers, -1, "pub/run: publishing clients (default 1; fan-in 10; fan-out 1).");
ABSL_FLAG(int64_t, subscribers, -1, "sub/run: subscribing clients (default 1; fan-out 100; fan-in 1).");
ABSL_FLAG(int64_t, pairs, -1, "--scenario pairs: publisher/subscriber pairs, one topic each (default 100).");
ABSL_FLAG(std::string, topic, "",
          "Topic template publishers publish to: %i is the client index, %c the client id, %% a percent "
          "sign (default bench/%i).");
ABSL_FLAG(std::string, sub_topic, "", "Filter template subscribers subscribe to (default: --topic).");
ABSL_FLAG(std::string, scenario, "",
          "Preset topology: fan-in (P publishers -> 1 subscriber of bench/fan-in/+), fan-out (1 publisher -> "
          "S subscribers of one topic), pairs (N publisher/subscriber pairs, one topic each), shared "
          "(P publishers -> S subscribers of $share/<--share-group>/bench/shared/+: each message must reach "
          "exactly one of them; the report gives the spread).");
ABSL_FLAG(uint32_t, qos, 0, "QoS of publishes and subscriptions: 0, 1 or 2.");
ABSL_FLAG(std::string, size, "64",
          "Payload bytes per message (at least 32: publisher, sequence, send time), or a range such as "
          "64-16384 drawn per message by --size-dist.");
ABSL_FLAG(std::string, size_dist, "uniform",
          "With a --size range: uniform, or exponential (most messages small: the low end plus an exponential "
          "with a mean of a quarter of the range, capped at the high end).");
ABSL_FLAG(bool, retain, false, "Publish with the RETAIN flag (the broker keeps the last message of each topic).");
ABSL_FLAG(std::string, will_topic, "",
          "Give every client a will on this topic (template as --topic; e.g. bench/will/%c): the broker "
          "publishes it when the connection ends without DISCONNECT.");
ABSL_FLAG(std::string, will_payload, "gone", "--will-topic: the will message.");
ABSL_FLAG(uint32_t, will_qos, 0, "--will-topic: the will's QoS.");
ABSL_FLAG(bool, will_retain, false, "--will-topic: retain the will.");
ABSL_FLAG(std::string, reconnect_every, "",
          "Connection churn: publishers disconnect and connect again every N messages (e.g. 1000) or every "
          "duration (e.g. 5s; idle `conn` connections too). QoS 1/2 publishers first wait for their acks. "
          "Subscribers stay connected, so delivery stays exact.");
ABSL_FLAG(uint64_t, rate, 0,
          "Open loop: messages per second over all publishers (of all --process-count processes), each "
          "stamped with its scheduled send time so a slow broker shows as latency; 0 = as fast as --window "
          "allows.");
ABSL_FLAG(std::string, arrival, "",
          "Open loop schedule: burst (every publisher on the same beat; the default with --rate), uniform "
          "(every message evenly spaced across all publishers; the default with --interval) or poisson "
          "(exponential gaps per publisher).");
ABSL_FLAG(std::string, interval, "",
          "Fleet simulation: every publisher sends one message per interval (e.g. 30s), phases spread "
          "evenly over it; the same as --rate publishers/interval. Not with --rate.");
ABSL_FLAG(std::string, lag_threshold, "10ms",
          "Open loop: a message written later than this after its scheduled time counts as behind schedule.");
ABSL_FLAG(uint32_t, process_index, 0, "With --process-count: which share of the clients this process runs (0-based).");
ABSL_FLAG(uint32_t, process_count, 1,
          "Split one run over N processes (or machines): process I runs the clients numbered n with "
          "n % N == I and every Ith source address; counts and --rate are totals over all N.");
ABSL_FLAG(uint32_t, window, 100,
          "Closed loop: most messages per publisher not yet acknowledged (QoS 1/2: PUBACK/PUBCOMP) and, in "
          "`run`, not yet delivered to every matching subscriber of this process. 0 = no window (open loop "
          "at QoS 0; QoS 1/2 then allow the most packet identifiers).");
ABSL_FLAG(std::string, duration, "",
          "How long to publish after the warm-up (conn: how long to hold), e.g. 10, 10s, 500ms, 2m.");
ABSL_FLAG(uint64_t, count, 0, "Messages per publisher (sub: per subscriber) after which the run ends.");
ABSL_FLAG(std::string, warmup, "0", "Publishing time before measurement starts (not in rates or latency).");
ABSL_FLAG(std::string, connect_timeout, "30s", "Time allowed for all connections and subscriptions to be up.");
ABSL_FLAG(std::string, drain_timeout, "5s", "Time allowed after publishing stops for deliveries and acks.");
ABSL_FLAG(std::string, stall_timeout, "10s",
          "With --count: stop the run when nothing was sent, received or acknowledged for this long.");
ABSL_FLAG(bool, clean, true, "Clean session on CONNECT.");
ABSL_FLAG(std::string, mqtt, "3.1.1", "Protocol version: 3.1.1, 3.1 or 5.");
ABSL_FLAG(int64_t, session_expiry, -1, "--mqtt 5: Session Expiry Interval (seconds) sent on CONNECT (default: none).");
ABSL_FLAG(uint32_t, receive_maximum, 0,
          "--mqtt 5: Receive Maximum sent on CONNECT (QoS 1/2 deliveries the broker may have in flight to "
          "each client); 0 = not sent (65,535).");
ABSL_FLAG(uint32_t, maximum_packet_size, 0, "--mqtt 5: Maximum Packet Size sent on CONNECT; 0 = not sent.");
ABSL_FLAG(bool, topic_alias, false,
          "--mqtt 5: publish with a Topic Alias (the topic once per connection, then the alias alone) when "
          "the broker's CONNACK allows one; the report says whether it did.");
ABSL_FLAG(std::string, user_property, "",
          "--mqtt 5: User Properties on every PUBLISH, name=value[,name=value...].");
ABSL_FLAG(std::string, share_group, "bench", "--scenario shared: the share group name ($share/<group>/<topic>).");
ABSL_FLAG(std::string, username, "", "Username sent on CONNECT (none when empty).");
ABSL_FLAG(std::string, password, "", "Password sent on CONNECT (none when empty; needs --username).");
ABSL_FLAG(uint32_t, keepalive, 60, "Keep-alive seconds on CONNECT; PINGREQ is sent when a connection is quiet.");
ABSL_FLAG(uint32_t, threads, 0, "Worker threads, each with its own io_uring and clients; 0 = one per usable CPU.");
ABSL_FLAG(double, connect_rate, 0, "New connections per second over all threads; 0 = as fast as possible.");
ABSL_FLAG(std::string, client_id_prefix, "", "Client id prefix (default mqtt-bench-<pid>-).");
ABSL_FLAG(std::string, json, "", "Also write the results as JSON to this file.");
ABSL_FLAG(int32_t, broker_pid, 0, "Broker process id: report its CPU time and RSS from /proc.");
ABSL_FLAG(bool, quiet, false, "No progress line.");

namespace coremq::bench {

const char* command_name(Command command) {
  switch (command) {
    case Command::kConn: return "conn";
    case Command::kPub: return "pub";
    case Command::kSub: return "sub";
    case Command::kRun: return "run";
  }
  return "?";
}

const char* scenario_name(Scenario scenario) {
  switch (scenario) {
    case Scenario::kNone: return "none";
    case Scenario::kFanIn: return "fan-in";
    case Scenario::kFanOut: return "fan-out";
    case Scenario::kPairs: return "pairs";
    case Scenario::kShared: return "shared";
  }
  return "?";
}

const char* arrival_name(Arrival arrival) {
  switch (arrival) {
    case Arrival::kBurst: return "burst";
    case Arrival::kUniform: return "uniform";
    case Arrival::kPoisson: return "poisson";
  }
  return "?";
}

const char* transport_scheme(const Options& options) {
  if (options.ws) return options.tls ? "wss" : "ws";
  return options.tls ? "mqtts" : "mqtt";
}

std::string broker_url(const Options& options) {
  return absl::StrFormat("%s://%s:%u%s", transport_scheme(options), bracketed(options.host), options.port,
                         options.ws ? options.ws_path : "");
}

namespace {

// "10", "10s", "1.5s", "500ms", "2m" -> seconds. Negative or unparsable -> false.
bool parse_seconds(const std::string& text, double* seconds) {
  if (text.empty()) {
    *seconds = 0;
    return true;
  }
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  std::string unit(end);
  if (end == text.c_str() || !std::isfinite(value) || value < 0) return false;
  if (unit.empty() || unit == "s") {
    *seconds = value;
  } else if (unit == "ms") {
    *seconds = value / 1000;
  } else if (unit == "m") {
    *seconds = value * 60;
  } else {
    return false;
  }
  return true;
}

bool time_flag(const char* name, const std::string& text, double* seconds, std::string* error) {
  if (parse_seconds(text, seconds) && *seconds <= 7 * 24 * 3600) return true;
  *error = absl::StrFormat("--%s=%s is not a duration (examples: 10, 10s, 500ms, 2m)", name, text);
  return false;
}

bool count_flag(const char* name, int64_t value, int64_t fallback, uint32_t* out, std::string* error) {
  if (value < 0) value = fallback;
  if (value > kClientsTotalMax) {
    *error = absl::StrFormat("--%s=%d is more than the %u clients one run may have", name, value, kClientsTotalMax);
    return false;
  }
  *out = static_cast<uint32_t>(value);
  return true;
}

uint32_t usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  int count = CPU_COUNT(&set);
  return count > 0 ? static_cast<uint32_t>(count) : 1;
}

// Applies --scenario: counts from their own flags when given, topics from the preset.
bool apply_scenario(Options* options, std::string* error) {
  std::string name = absl::GetFlag(FLAGS_scenario);
  if (name.empty()) return true;
  if (options->command == Command::kConn) {
    *error = "--scenario applies to pub, sub and run, not conn";
    return false;
  }
  if (!absl::GetFlag(FLAGS_topic).empty() || !absl::GetFlag(FLAGS_sub_topic).empty()) {
    *error = "--scenario sets the topics itself; drop --topic/--sub-topic or the scenario";
    return false;
  }
  int64_t publishers = absl::GetFlag(FLAGS_publishers);
  int64_t subscribers = absl::GetFlag(FLAGS_subscribers);
  if (name == "fan-in") {
    options->scenario = Scenario::kFanIn;
    if (!count_flag("publishers", publishers, 10, &options->publishers, error)) return false;
    options->subscribers = 1;
    options->publish_topic = "bench/fan-in/%i";
    options->subscribe_filter = "bench/fan-in/+";
  } else if (name == "fan-out") {
    options->scenario = Scenario::kFanOut;
    options->publishers = 1;
    if (!count_flag("subscribers", subscribers, 100, &options->subscribers, error)) return false;
    options->publish_topic = "bench/fan-out";
    options->subscribe_filter = "bench/fan-out";
  } else if (name == "pairs") {
    options->scenario = Scenario::kPairs;
    int64_t pairs = absl::GetFlag(FLAGS_pairs);
    if (pairs < 0) pairs = publishers >= 0 ? publishers : subscribers;
    if (!count_flag("pairs", pairs, 100, &options->publishers, error)) return false;
    options->subscribers = options->publishers;
    options->publish_topic = "bench/pairs/%i";
    options->subscribe_filter = "bench/pairs/%i";
  } else if (name == "shared") {
    // P publishers, S subscribers sharing one subscription: each message to exactly one of them.
    options->scenario = Scenario::kShared;
    if (!count_flag("publishers", publishers, 2, &options->publishers, error) ||
        !count_flag("subscribers", subscribers, 4, &options->subscribers, error)) {
      return false;
    }
    options->publish_topic = "bench/shared/%i";
    options->subscribe_filter = absl::StrFormat("$share/%s/bench/shared/+", absl::GetFlag(FLAGS_share_group));
  } else {
    *error = absl::StrFormat("unknown --scenario '%s' (fan-in, fan-out, pairs, shared)", name);
    return false;
  }
  // Each subcommand runs its own half of the topology.
  if (options->command == Command::kPub) options->subscribers = 0;
  if (options->command == Command::kSub) options->publishers = 0;
  return true;
}

bool counts_from_flags(Options* options, std::string* error) {
  Command command = options->command;
  if (command == Command::kConn) {
    if (!count_flag("connections", absl::GetFlag(FLAGS_connections), 100, &options->idle_connections, error)) {
      return false;
    }
    if (options->idle_connections == 0) *error = "--connections must be at least 1";
    return options->idle_connections > 0;
  }
  if (absl::GetFlag(FLAGS_scenario).empty()) {
    bool publishing = command == Command::kPub || command == Command::kRun;
    bool subscribing = command == Command::kSub || command == Command::kRun;
    if (!count_flag("publishers", absl::GetFlag(FLAGS_publishers), publishing ? 1 : 0, &options->publishers, error) ||
        !count_flag("subscribers", absl::GetFlag(FLAGS_subscribers), subscribing ? 1 : 0, &options->subscribers,
                    error)) {
      return false;
    }
    if (!publishing && options->publishers > 0) {
      *error = "sub runs subscribers only; use run for publishers and subscribers in one process";
      return false;
    }
    if (!subscribing && options->subscribers > 0) {
      *error = "pub runs publishers only; use run for publishers and subscribers in one process";
      return false;
    }
    options->publish_topic = absl::GetFlag(FLAGS_topic);
    if (options->publish_topic.empty()) options->publish_topic = "bench/%i";
    options->subscribe_filter = absl::GetFlag(FLAGS_sub_topic);
    if (options->subscribe_filter.empty()) options->subscribe_filter = options->publish_topic;
  } else if (!apply_scenario(options, error)) {
    return false;
  }
  if (options->publishers + options->subscribers == 0) {
    *error = "nothing to run: no publishers and no subscribers";
    return false;
  }
  return true;
}

// This process's share of `total` clients numbered 0..total-1: those with n % count == index.
uint32_t process_share(uint32_t total, uint32_t index, uint32_t count) {
  return total > index ? (total - index + count - 1) / count : 0;
}

bool partition_flags(Options* options, std::string* error) {
  options->process_index = absl::GetFlag(FLAGS_process_index);
  options->process_count = absl::GetFlag(FLAGS_process_count);
  if (options->process_count == 0 || options->process_index >= options->process_count) {
    *error = absl::StrFormat("--process-index=%u --process-count=%u: the index must be below the count",
                             options->process_index, options->process_count);
    return false;
  }
  options->idle_connections_total = options->idle_connections;
  options->publishers_total = options->publishers;
  options->subscribers_total = options->subscribers;
  uint32_t index = options->process_index;
  uint32_t count = options->process_count;
  options->idle_connections = process_share(options->idle_connections, index, count);
  options->publishers = process_share(options->publishers, index, count);
  options->subscribers = process_share(options->subscribers, index, count);
  // Source addresses: every Nth to process I when there are enough to go round, all of them
  // otherwise (the kernel still picks distinct ports per destination).
  uint32_t sources = options->source_addresses.count;
  if (sources >= count) {
    options->source_offset = index;
    options->source_stride = count;
    options->source_local_count = process_share(sources, index, count);
  } else {
    options->source_local_count = sources;
  }
  if (uint64_t{options->idle_connections} + options->publishers + options->subscribers > kClientsMax) {
    *error = absl::StrFormat("more than %u clients in one process: split the run with --process-count", kClientsMax);
    return false;
  }
  if (options->idle_connections + options->publishers + options->subscribers == 0) {
    *error = absl::StrFormat("--process-index=%u of %u has no clients: fewer clients than processes", index, count);
    return false;
  }
  return true;
}

// --rate, --interval and --arrival into the open-loop period; after partition_flags.
bool schedule_flags(Options* options, std::string* error) {
  std::string interval = absl::GetFlag(FLAGS_interval);
  std::string arrival = absl::GetFlag(FLAGS_arrival);
  double lag_threshold_s = 0;
  if (!time_flag("interval", interval, &options->interval_s, error) ||
      !time_flag("lag-threshold", absl::GetFlag(FLAGS_lag_threshold), &lag_threshold_s, error)) {
    return false;
  }
  options->lag_threshold_ns = static_cast<int64_t>(lag_threshold_s * kNanosPerSecond);
  bool open_loop = options->rate_total > 0 || options->interval_s > 0;
  if (options->rate_total > 0 && options->interval_s > 0) {
    *error = "--rate and --interval both set the schedule: give one (--interval T is --rate publishers/T)";
    return false;
  }
  if (!interval.empty() && options->interval_s <= 0) {
    *error = "--interval must be more than 0";
    return false;
  }
  if (arrival.empty()) {
    options->arrival = options->interval_s > 0 ? Arrival::kUniform : Arrival::kBurst;
  } else if (arrival == "burst") {
    options->arrival = Arrival::kBurst;
  } else if (arrival == "uniform") {
    options->arrival = Arrival::kUniform;
  } else if (arrival == "poisson") {
    options->arrival = Arrival::kPoisson;
  } else {
    *error = absl::StrFormat("--arrival=%s: expected burst, uniform or poisson", arrival);
    return false;
  }
  if (!arrival.empty() && !open_loop) {
    *error = "--arrival needs --rate or --interval (without them publishing is closed loop)";
    return false;
  }
  if (!open_loop || options->publishers_total == 0) return true;
  options->period_ns = options->interval_s > 0
                           ? options->interval_s * kNanosPerSecond
                           : static_cast<double>(options->publishers_total) * kNanosPerSecond / options->rate_total;
  if (options->interval_s > 0) {
    options->rate_total = static_cast<uint64_t>(std::llround(options->publishers_total / options->interval_s));
  }
  return true;
}

bool message_flags(Options* options, std::string* error) {
  uint32_t qos = absl::GetFlag(FLAGS_qos);
  if (qos > 2) {
    *error = absl::StrFormat("--qos=%u: QoS is 0, 1 or 2", qos);
    return false;
  }
  options->qos = static_cast<uint8_t>(qos);
  std::string size = absl::GetFlag(FLAGS_size);
  size_t dash = size.find('-');
  char* end = nullptr;
  uint64_t low = std::strtoull(size.c_str(), &end, 10);
  uint64_t high = low;
  bool parsed = end != size.c_str() && (*end == '\0' || end == size.c_str() + dash);
  if (parsed && dash != std::string::npos) {
    const char* high_text = size.c_str() + dash + 1;
    high = std::strtoull(high_text, &end, 10);
    parsed = end != high_text && *end == '\0';
  }
  if (!parsed || low < kPayloadHeaderBytes || high > kPayloadBytesMax || high < low) {
    *error = absl::StrFormat("--size=%s: expected N or LOW-HIGH within [%u, %u]", size, kPayloadHeaderBytes,
                             kPayloadBytesMax);
    return false;
  }
  options->payload_bytes = static_cast<uint32_t>(low);
  options->payload_bytes_max = static_cast<uint32_t>(high);
  std::string size_dist = absl::GetFlag(FLAGS_size_dist);
  if (size_dist != "uniform" && size_dist != "exponential") {
    *error = absl::StrFormat("--size-dist=%s: expected uniform or exponential", size_dist);
    return false;
  }
  options->size_exponential = size_dist == "exponential";
  options->retain = absl::GetFlag(FLAGS_retain);
  options->will_topic = absl::GetFlag(FLAGS_will_topic);
  options->will_payload = absl::GetFlag(FLAGS_will_payload);
  options->will_retain = absl::GetFlag(FLAGS_will_retain);
  uint32_t will_qos = absl::GetFlag(FLAGS_will_qos);
  if (will_qos > 2) {
    *error = absl::StrFormat("--will-qos=%u: QoS is 0, 1 or 2", will_qos);
    return false;
  }
  options->will_qos = static_cast<uint8_t>(will_qos);
  if (options->will_topic.empty() && (will_qos > 0 || options->will_retain)) {
    *error = "--will-qos and --will-retain need --will-topic";
    return false;
  }
  std::string reconnect = absl::GetFlag(FLAGS_reconnect_every);
  if (!reconnect.empty()) {
    bool digits = reconnect.find_first_not_of("0123456789") == std::string::npos;
    if (digits) {
      options->reconnect_messages = std::strtoull(reconnect.c_str(), nullptr, 10);
    } else if (!time_flag("reconnect-every", reconnect, &options->reconnect_s, error)) {
      return false;
    }
    if (options->reconnect_messages == 0 && options->reconnect_s <= 0) {
      *error = "--reconnect-every must be more than 0 (messages, or a duration such as 5s)";
      return false;
    }
  }
  options->rate_total = absl::GetFlag(FLAGS_rate);
  options->window = absl::GetFlag(FLAGS_window);
  if (options->window > kWindowMax || (options->qos > 0 && options->window == 0)) options->window = kWindowMax;
  options->count = absl::GetFlag(FLAGS_count);
  return true;
}

bool time_flags(Options* options, std::string* error) {
  if (!time_flag("duration", absl::GetFlag(FLAGS_duration), &options->duration_s, error) ||
      !time_flag("warmup", absl::GetFlag(FLAGS_warmup), &options->warmup_s, error) ||
      !time_flag("connect-timeout", absl::GetFlag(FLAGS_connect_timeout), &options->connect_timeout_s, error) ||
      !time_flag("drain-timeout", absl::GetFlag(FLAGS_drain_timeout), &options->drain_timeout_s, error) ||
      !time_flag("stall-timeout", absl::GetFlag(FLAGS_stall_timeout), &options->stall_timeout_s, error)) {
    return false;
  }
  if (options->command == Command::kConn) {
    if (options->duration_s <= 0) {
      *error = "conn needs --duration: how long to hold the connections (the tool never runs unbounded)";
      return false;
    }
    return true;
  }
  if (options->duration_s <= 0 && options->count == 0) {
    *error = absl::StrFormat("%s needs a bound: --duration (e.g. --duration 10s) or --count (messages per %s)",
                             command_name(options->command),
                             options->command == Command::kSub ? "subscriber" : "publisher");
    return false;
  }
  if (options->connect_timeout_s <= 0 || options->stall_timeout_s <= 0) {
    *error = "--connect-timeout and --stall-timeout must be more than 0";
    return false;
  }
  return true;
}

// "1.2", "1.3", "tlsv1.2", "tlsv1.3" -> one version; "1.2-1.3" -> both.
bool parse_tls_version(std::string text, Options* options) {
  if (text.empty()) text = "1.2-1.3";
  auto one = [](std::string_view name) {
    if (name.rfind("tlsv", 0) == 0) name.remove_prefix(4);
    if (name == "1.2") return TLS1_2_VERSION;
    if (name == "1.3") return TLS1_3_VERSION;
    return 0;
  };
  size_t dash = text.find('-');
  std::string_view view(text);
  options->tls_version_min = one(view.substr(0, dash));
  options->tls_version_max = dash == std::string::npos ? options->tls_version_min : one(view.substr(dash + 1));
  return options->tls_version_min != 0 && options->tls_version_max != 0 &&
         options->tls_version_min <= options->tls_version_max;
}

// --tls, --ws and their companions; a companion without its transport is an error rather
// than ignored, so a run never measures plain TCP while the user believes it measured TLS.
bool transport_flags(Options* options, std::string* error) {
  options->tls = absl::GetFlag(FLAGS_tls);
  options->ws = absl::GetFlag(FLAGS_ws);
  options->tls_ca_file = absl::GetFlag(FLAGS_cafile);
  options->tls_cert_file = absl::GetFlag(FLAGS_cert);
  options->tls_key_file = absl::GetFlag(FLAGS_key);
  options->tls_insecure = absl::GetFlag(FLAGS_tls_insecure);
  options->tls_resume = absl::GetFlag(FLAGS_tls_resume);
  options->ws_path = absl::GetFlag(FLAGS_ws_path);
  std::string tls_version = absl::GetFlag(FLAGS_tls_version);
  std::string server_name = absl::GetFlag(FLAGS_tls_server_name);
  if (!options->tls) {
    const char* needs_tls = !options->tls_ca_file.empty()     ? "--cafile"
                            : !options->tls_cert_file.empty() ? "--cert"
                            : !options->tls_key_file.empty()  ? "--key"
                            : options->tls_insecure           ? "--tls-insecure"
                            : options->tls_resume             ? "--tls-resume"
                            : !tls_version.empty()            ? "--tls-version"
                            : !server_name.empty()            ? "--tls-server-name"
                                                              : nullptr;
    if (needs_tls != nullptr) {
      *error = absl::StrFormat("%s needs --tls", needs_tls);
      return false;
    }
  }
  if (options->tls_cert_file.empty() != options->tls_key_file.empty()) {
    *error = "--cert and --key go together: a client certificate needs its private key";
    return false;
  }
  if (options->tls_insecure && !options->tls_ca_file.empty()) {
    *error = "--tls-insecure checks no certificate, so --cafile would be ignored: give one or the other";
    return false;
  }
  if (options->tls && !parse_tls_version(tls_version, options)) {
    *error = absl::StrFormat("--tls-version=%s: expected 1.2, 1.3 or 1.2-1.3", tls_version);
    return false;
  }
  options->tls_server_name = server_name.empty() ? options->host_name : server_name;
  if (!options->ws && options->ws_path != "/mqtt") {
    *error = "--ws-path needs --ws";
    return false;
  }
  // The request target goes into the request line as it is: no spaces or control bytes.
  bool path_ok = !options->ws_path.empty() && options->ws_path[0] == '/' &&
                 std::all_of(options->ws_path.begin(), options->ws_path.end(),
                             [](char c) { return c > ' ' && c < 0x7F; }) &&
                 options->ws_path.size() <= 1024;
  if (options->ws && !path_ok) {
    *error = absl::StrFormat("--ws-path=%s: expected an absolute path such as /mqtt (printable ASCII, no spaces)",
                             options->ws_path);
    return false;
  }
  return true;
}

bool mqtt5_flags(Options* options, std::string* error) {
  int64_t session_expiry = absl::GetFlag(FLAGS_session_expiry);
  uint32_t receive_maximum = absl::GetFlag(FLAGS_receive_maximum);
  std::string user_properties = absl::GetFlag(FLAGS_user_property);
  options->maximum_packet_size = absl::GetFlag(FLAGS_maximum_packet_size);
  options->topic_alias = absl::GetFlag(FLAGS_topic_alias);
  const char* needs_five = session_expiry >= 0                  ? "--session-expiry"
                           : receive_maximum > 0                ? "--receive-maximum"
                           : options->maximum_packet_size > 0   ? "--maximum-packet-size"
                           : options->topic_alias               ? "--topic-alias"
                           : !user_properties.empty()           ? "--user-property"
                                                                : nullptr;
  if (needs_five != nullptr && options->protocol_level != 5) {
    *error = absl::StrFormat("%s is an MQTT 5 property: add --mqtt 5", needs_five);
    return false;
  }
  if (session_expiry > UINT32_MAX || receive_maximum > 65535) {
    *error = "--session-expiry is at most 4294967295 and --receive-maximum at most 65535";
    return false;
  }
  options->has_session_expiry = session_expiry >= 0;
  options->session_expiry_s = options->has_session_expiry ? static_cast<uint32_t>(session_expiry) : 0;
  options->receive_maximum = static_cast<uint16_t>(receive_maximum);
  if (options->maximum_packet_size > 0 && options->maximum_packet_size < 64) {
    *error = "--maximum-packet-size below 64 bytes would refuse every PUBLISH of the run";
    return false;
  }
  size_t start = 0;
  while (start < user_properties.size()) {
    size_t comma = user_properties.find(',', start);
    if (comma == std::string::npos) comma = user_properties.size();
    std::string pair = user_properties.substr(start, comma - start);
    size_t equals = pair.find('=');
    if (equals == std::string::npos || equals == 0 || pair.size() > 1024) {
      *error = absl::StrFormat("--user-property: '%s' is not name=value", pair);
      return false;
    }
    options->user_properties.emplace_back(pair.substr(0, equals), pair.substr(equals + 1));
    start = comma + 1;
  }
  options->share_group = absl::GetFlag(FLAGS_share_group);
  if (options->share_group.empty() || options->share_group.find_first_of("/+#") != std::string::npos) {
    *error = "--share-group must be a non-empty name without '/', '+' or '#'";
    return false;
  }
  return true;
}

bool connection_flags(Options* options, std::string* error) {
  options->host_name = absl::GetFlag(FLAGS_host);
  if (options->host_name.size() > 2 && options->host_name.front() == '[' && options->host_name.back() == ']') {
    options->host_name = options->host_name.substr(1, options->host_name.size() - 2);  // [::1] as in URLs
  }
  if (!transport_flags(options, error)) return false;
  uint32_t port = absl::GetFlag(FLAGS_port);
  if (port == 0 && options->ws) {
    *error = "--ws needs --port: the broker's WebSocket listener (MQTT has no standard WebSocket port)";
    return false;
  }
  if (port == 0) port = options->tls ? 8883 : 1883;
  if (port > 65535) {
    *error = absl::StrFormat("--port=%u is out of range [1, 65535]", port);
    return false;
  }
  options->port = static_cast<uint16_t>(port);
  if (!resolve_host(options->host_name, options->port, &options->broker_address, &options->broker_address_length,
                    &options->host, error)) {
    return false;
  }
  std::string sources = absl::GetFlag(FLAGS_source_address);
  if (!sources.empty()) {
    if (!parse_source_addresses(sources, &options->source_addresses, error)) return false;
    if (options->source_addresses.family != options->broker_address.ss_family) {
      *error = absl::StrFormat("--source-address=%s and --host=%s (%s) are not of one address family", sources,
                               options->host_name, options->host);
      return false;
    }
  }
  std::string version = absl::GetFlag(FLAGS_mqtt);
  if (version == "3.1.1" || version == "4") {
    options->protocol_level = 4;
  } else if (version == "3.1" || version == "3") {
    options->protocol_level = 3;
  } else if (version == "5" || version == "5.0") {
    options->protocol_level = 5;
  } else {
    *error = absl::StrFormat("--mqtt=%s: expected 3.1.1, 3.1 or 5", version);
    return false;
  }
  if (!mqtt5_flags(options, error)) return false;
  options->clean_session = absl::GetFlag(FLAGS_clean);
  options->username = absl::GetFlag(FLAGS_username);
  options->has_username = !options->username.empty();
  options->password = absl::GetFlag(FLAGS_password);
  options->has_password = !options->password.empty();
  if (options->has_password && !options->has_username) {
    *error = "--password needs --username (MQTT 3.1.1 section 3.1.2.9)";
    return false;
  }
  uint32_t keepalive = absl::GetFlag(FLAGS_keepalive);
  if (keepalive > 65535) {
    *error = absl::StrFormat("--keepalive=%u is out of range [0, 65535]", keepalive);
    return false;
  }
  options->keepalive_s = static_cast<uint16_t>(keepalive);
  options->connect_rate = absl::GetFlag(FLAGS_connect_rate);
  if (!(options->connect_rate >= 0)) {
    *error = "--connect-rate must be 0 or more";
    return false;
  }
  options->client_id_prefix = absl::GetFlag(FLAGS_client_id_prefix);
  if (options->client_id_prefix.empty()) options->client_id_prefix = absl::StrFormat("mqtt-bench-%d-", getpid());
  return true;
}

}  // namespace

bool fit_descriptor_limit(const Options& options, std::string* error) {
  uint64_t clients = uint64_t{options.idle_connections} + options.publishers + options.subscribers;
  uint64_t needed = clients + kDescriptorsReserved;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return true;  // unknown: socket() reports EMFILE itself
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur >= needed) return true;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) {
    *error = absl::StrFormat(
        "%u connections need %u open files, but this process may open at most %u (the hard RLIMIT_NOFILE): "
        "raise it (ulimit -Hn, systemd LimitNOFILE=, sysctl fs.nr_open) or split the run over processes with "
        "--process-count and --process-index",
        clients, needed, static_cast<uint64_t>(limit.rlim_max));
    return false;
  }
  limit.rlim_cur = needed;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    *error = absl::StrFormat("setrlimit(RLIMIT_NOFILE, %u) failed: %s", needed, std::strerror(errno));
    return false;
  }
  return true;
}

bool options_from_flags(Command command, Options* options, std::string* error) {
  options->command = command;
  if (!connection_flags(options, error) || !counts_from_flags(options, error) || !partition_flags(options, error) ||
      !message_flags(options, error) || !schedule_flags(options, error) || !time_flags(options, error)) {
    return false;
  }
  uint32_t clients = options->idle_connections + options->publishers + options->subscribers;
  uint32_t threads = absl::GetFlag(FLAGS_threads);
  if (threads > kThreadsMax) {
    *error = absl::StrFormat("--threads=%u is out of range [0, %u]", threads, kThreadsMax);
    return false;
  }
  if (threads == 0) threads = usable_cpus();
  options->threads = std::min(threads, clients);
  options->json_path = absl::GetFlag(FLAGS_json);
  options->broker_pid = absl::GetFlag(FLAGS_broker_pid);
  if (options->broker_pid < 0) {
    *error = "--broker-pid must be a process id";
    return false;
  }
  options->quiet = absl::GetFlag(FLAGS_quiet);
  return true;
}

}  // namespace coremq::bench
