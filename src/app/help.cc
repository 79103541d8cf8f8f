// coremq's --help and --version; see help.h.
#include "app/help.h"

#include <cstdio>
#include <string_view>

#include "base/flag_help_absl.h"

#ifndef COREMQ_VERSION
#error "src/app/meson.build defines COREMQ_VERSION (the project's version)"
#endif

namespace coremq::app {

namespace {

constexpr std::string_view kListeners = "Listeners and security";
constexpr std::string_view kLimits = "Limits";
constexpr std::string_view kMqtt5 = "MQTT 5 and protocol features";
constexpr std::string_view kPersistence = "Persistence";
constexpr std::string_view kObservability = "Observability";
constexpr std::string_view kPerformance = "Performance and threads";
constexpr std::string_view kOther = "Other";
// Print order; kOther, last, also takes every flag the table below does not name.
constexpr std::string_view kGroupTitles[] = {kListeners,     kLimits,      kMqtt5, kPersistence,
                                             kObservability, kPerformance, kOther};

// One line per flag: its group and, when the type's "N"/"VALUE" says too little, what its
// value is. Within a group, flags print in this order.
constexpr base::FlagPlacement kPlacements[] = {
    {"config", kListeners, "FILE"},
    {"listener", kListeners, "SCHEME://ADDRESS:PORT[,key=value...]"},
    {"bind", kListeners, "ADDRESS"},
    {"port", kListeners},
    {"allow_anonymous", kListeners},
    {"password_file", kListeners, "FILE"},
    {"acl_file", kListeners, "FILE"},
    {"password_check_threads", kListeners},
    {"password_check_queue", kListeners},
    {"max_connections", kLimits},
    {"max_packet_size", kLimits, "BYTES"},
    {"max_inflight", kLimits},
    {"max_queued_messages", kLimits},
    {"max_client_output_bytes", kLimits, "BYTES"},
    {"max_client_id_length", kLimits, "BYTES"},
    {"max_subscriptions_per_session", kLimits},
    {"max_retained_messages", kLimits},
    {"max_sessions", kLimits},
    {"max_topic_levels", kLimits},
    {"max_keepalive", kLimits, "SECONDS"},
    {"connect_timeout", kLimits, "SECONDS"},
    {"close_linger", kLimits, "SECONDS"},
    {"close_linger_bytes", kLimits, "BYTES"},
    {"tcp_user_timeout", kLimits, "SECONDS"},
    {"max_qos", kMqtt5, "0|1|2"},
    {"retain_available", kMqtt5},
    {"wildcard_subscriptions", kMqtt5},
    {"subscription_identifiers", kMqtt5},
    {"shared_subscriptions", kMqtt5},
    {"receive_maximum", kMqtt5},
    {"topic_alias_maximum", kMqtt5},
    {"max_topic_alias_broker", kMqtt5},
    {"server_keep_alive", kMqtt5, "SECONDS"},
    {"max_session_expiry", kMqtt5, "SECONDS"},
    {"response_information_prefix", kMqtt5, "PREFIX"},
    {"bridge", kListeners, "NAME,address=HOST:PORT,topic=...[,key=value...]"},
    {"persistence", kPersistence, "none|rocksdb"},
    {"data_dir", kPersistence, "DIR"},
    {"fsync", kPersistence, "always|batch|never"},
    {"fsync_interval_ms", kPersistence, "MS"},
    {"persistence_cache_mb", kPersistence, "MIB"},
    {"persistence_write_buffer_mb", kPersistence, "MIB"},
    {"persistence_max_mb", kPersistence, "MIB"},
    {"persistence_committer_nice", kPersistence, "NICE"},
    {"log_level", kObservability, "LEVEL"},
    {"log_dest", kObservability, "DEST[,DEST...]"},
    {"log_format", kObservability, "text|json"},
    {"log_connection_lines", kObservability, "PER_SECOND"},
    {"log_buffer_bytes", kObservability, "BYTES"},
    {"log_recent_lines", kObservability},
    {"sys_interval", kObservability, "SECONDS"},
    {"http_listener", kObservability, "ADDRESS:PORT"},
    {"http_user", kObservability, "USER"},
    {"http_password_file", kObservability, "FILE"},
    {"http_token_file", kObservability, "FILE"},
    {"http_max_connections", kObservability},
    {"http_timeout", kObservability, "SECONDS"},
    {"http_max_body_bytes", kObservability, "BYTES"},
    {"stats_interval", kObservability, "SECONDS"},
    {"threads", kPerformance},
    {"pin_threads", kPerformance},
    {"ring_entries", kPerformance},
    {"receive_buffer_size", kPerformance, "BYTES"},
    {"payload_reference_min", kPerformance, "BYTES"},
    {"coalesce_wait_us", kPerformance, "MICROSECONDS"},
    {"receive_buffer_count", kPerformance},
    {"cross_shard_queue_capacity", kPerformance},
    {"max_handshakes_per_turn", kPerformance},
};

constexpr base::FlagGroups kGroups = {kGroupTitles, kPlacements};

constexpr char kUsage[] = "coremq " COREMQ_VERSION
                          ", a thread-per-core MQTT 3.1, 3.1.1 and 5.0 broker.\n"
                          "\n"
                          "Usage: coremq [-c FILE] [--flag=VALUE ...]\n"
                          "\n"
                          "Options come from the config file (-c FILE, in mosquitto.conf syntax: see\n"
                          "coremq.conf(5)), then COREMQ_<FLAG> environment variables\n"
                          "(COREMQ_MAX_CONNECTIONS=N), then the command line, each overriding the one\n"
                          "before. Flags may be written with dashes or underscores (--max-connections,\n"
                          "--max_connections); a boolean flag alone means true. --version prints the\n"
                          "version, --helpfull Abseil's flags as well.\n";

}  // namespace

const char* version() {
  return COREMQ_VERSION;
}

const base::FlagGroups& flag_groups() {
  return kGroups;
}

std::string help_text() {
  std::vector<base::FlagHelp> flags = base::registered_flags("src/app/");
  return std::string(kUsage) + base::render_flag_help(flags, kGroups);
}

std::optional<int> print_requested_help(const std::vector<std::string>& arguments) {
  for (size_t i = 1; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument == "--") break;
    if (argument == "--help" || argument == "-help" || argument == "-h" || argument == "--helpshort" ||
        argument == "-helpshort") {
      std::fputs(help_text().c_str(), stdout);
      return 0;
    }
    if (argument == "--version" || argument == "-version") {
      std::printf("coremq %s\n", COREMQ_VERSION);
      return 0;
    }
    if (argument == "--help_roff") {
      std::vector<base::FlagHelp> flags = base::registered_flags("src/app/");
      std::fputs(base::render_flag_roff(flags, kGroups).c_str(), stdout);
      return 0;
    }
  }
  return std::nullopt;
}

}  // namespace coremq::app
