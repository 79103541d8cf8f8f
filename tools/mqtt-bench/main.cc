// mqtt-bench: the MQTT load tool. This file is the command line only: the subcommand, the
// flags (dashed or underscored, checked here so that every usage error exits 2 with a clear
// message), then the run and its report. Exit codes: 0 clean run, 1 loss or errors, 2 usage.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "base/flag_help_absl.h"
#include "base/flag_spelling.h"
#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_format.h"
#include "options.h"
#include "plan.h"
#include "report.h"
#include "runner.h"
#include "tls_client_transport.h"

namespace {

using coremq::bench::Command;

constexpr int kExitUsage = 2;

constexpr const char* kUsage =
    "mqtt-bench " COREMQ_VERSION ": load and verify an MQTT broker (MQTT 3.1, 3.1.1 and 5 over\n"
    "TCP, TLS, WebSocket) over io_uring.\n"
    "\n"
    "Usage: mqtt-bench <conn|pub|sub|run> [--flag=VALUE ...]\n"
    "  conn  open --connections at --connect-rate and hold them for --duration\n"
    "  pub   --publishers publish to --topic\n"
    "  sub   --subscribers subscribe to --sub-topic and verify what arrives\n"
    "  run   publishers and subscribers in one process: exact loss, order and latency\n"
    "\n"
    "Examples:\n"
    "  mqtt-bench run --scenario pairs --pairs 100 --qos 1 --duration 10s --warmup 2s\n"
    "  mqtt-bench run --scenario fan-out --subscribers 100 --rate 1000 --duration 10s\n"
    "  mqtt-bench conn --connections 10000 --connect-rate 2000 --duration 30s \\\n"
    "      --broker-pid $(pidof coremq)\n"
    "  mqtt-bench run --scenario pairs --qos 1 --count 10000 --tls --cafile ca.pem \\\n"
    "      --port 8883\n"
    "  mqtt-bench run --scenario pairs --qos 1 --count 10000 --ws --port 8080 \\\n"
    "      --ws-path /mqtt\n"
    "\n"
    "Every run needs a bound: --duration or --count. Exit status: 0 clean, 1 loss or\n"
    "errors, 2 usage error. Flags may be written with dashes or underscores and take\n"
    "their value after '=' or as the next argument; --version prints the version.\n";

bool is_ours(const absl::CommandLineFlag& flag) { return flag.Filename().find("mqtt-bench") != std::string::npos; }

// The --help groups (and the OPTIONS of mqtt-bench(1), generated from the same table): a new
// flag joins a group with one line here; one not named lands in "Other".
constexpr std::string_view kBroker = "Broker and connection";
constexpr std::string_view kWorkload = "Workload";
constexpr std::string_view kTiming = "Duration and timeouts";
constexpr std::string_view kOutput = "Output";
constexpr std::string_view kOther = "Other";
constexpr std::string_view kGroupTitles[] = {kBroker, kWorkload, kTiming, kOutput, kOther};
constexpr coremq::base::FlagPlacement kPlacements[] = {
    {"host", kBroker, "ADDRESS"},
    {"port", kBroker},
    {"mqtt", kBroker, "3.1.1|3.1|5"},
    {"source_address", kBroker, "ADDRESSES"},
    {"session_expiry", kBroker, "SECONDS"},
    {"receive_maximum", kBroker},
    {"maximum_packet_size", kBroker, "BYTES"},
    {"will_topic", kBroker, "TOPIC"},
    {"will_payload", kBroker, "TEXT"},
    {"will_qos", kBroker, "0|1|2"},
    {"will_retain", kBroker},
    {"username", kBroker, "NAME"},
    {"password", kBroker, "PASSWORD"},
    {"client_id_prefix", kBroker, "PREFIX"},
    {"clean", kBroker},
    {"keepalive", kBroker, "SECONDS"},
    {"tls", kBroker},
    {"cafile", kBroker, "FILE"},
    {"cert", kBroker, "FILE"},
    {"key", kBroker, "FILE"},
    {"tls_insecure", kBroker},
    {"tls_version", kBroker, "VERSION"},
    {"tls_server_name", kBroker, "NAME"},
    {"tls_resume", kBroker},
    {"ws", kBroker},
    {"ws_path", kBroker, "PATH"},
    {"scenario", kWorkload, "NAME"},
    {"connections", kWorkload},
    {"connect_rate", kWorkload, "PER_SECOND"},
    {"publishers", kWorkload},
    {"subscribers", kWorkload},
    {"pairs", kWorkload},
    {"topic", kWorkload, "TEMPLATE"},
    {"sub_topic", kWorkload, "TEMPLATE"},
    {"qos", kWorkload, "0|1|2"},
    {"size", kWorkload, "BYTES|LOW-HIGH"},
    {"size_dist", kWorkload, "uniform|exponential"},
    {"retain", kWorkload},
    {"topic_alias", kWorkload},
    {"user_property", kWorkload, "NAME=VALUE"},
    {"share_group", kWorkload, "NAME"},
    {"rate", kWorkload, "PER_SECOND"},
    {"arrival", kWorkload, "burst|uniform|poisson"},
    {"interval", kWorkload, "DURATION"},
    {"lag_threshold", kWorkload, "DURATION"},
    {"reconnect_every", kWorkload, "N|DURATION"},
    {"process_count", kWorkload},
    {"process_index", kWorkload},
    {"window", kWorkload},
    {"threads", kWorkload},
    {"duration", kTiming, "DURATION"},
    {"count", kTiming},
    {"warmup", kTiming, "DURATION"},
    {"connect_timeout", kTiming, "DURATION"},
    {"drain_timeout", kTiming, "DURATION"},
    {"stall_timeout", kTiming, "DURATION"},
    {"json", kOutput, "FILE"},
    {"broker_pid", kOutput, "PID"},
    {"quiet", kOutput},
};
constexpr coremq::base::FlagGroups kGroups = {kGroupTitles, kPlacements};

void print_usage(std::FILE* out) {
  std::fputs(kUsage, out);
  std::vector<coremq::base::FlagHelp> flags = coremq::base::registered_flags("mqtt-bench");
  std::fputs(coremq::base::render_flag_help(flags, kGroups).c_str(), out);
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "mqtt-bench: %s (see mqtt-bench --help)\n", message.c_str());
  return kExitUsage;
}

bool parse_command(const std::string& word, Command* command) {
  if (word == "conn") *command = Command::kConn;
  else if (word == "pub") *command = Command::kPub;
  else if (word == "sub") *command = Command::kSub;
  else if (word == "run") *command = Command::kRun;
  else return false;
  return true;
}

// Sets each --name[=value] / --name value / --bool / --nobool on its flag. Returns false with
// a message for an unknown flag, a missing value or a value that does not parse.
bool parse_flags(const std::vector<std::string>& arguments, size_t first, std::string* error) {
  for (size_t i = first; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument.size() < 2 || argument[0] != '-') {
      *error = absl::StrFormat("unexpected argument '%s'", argument);
      return false;
    }
    size_t name_start = argument[1] == '-' ? 2 : 1;
    size_t equals = argument.find('=');
    std::string name = argument.substr(name_start, equals == std::string::npos ? std::string::npos : equals - name_start);
    bool has_value = equals != std::string::npos;
    std::string value = has_value ? argument.substr(equals + 1) : "";
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if ((flag == nullptr || !is_ours(*flag)) && name.rfind("no", 0) == 0 && !has_value) {
      absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && is_ours(*negated) && negated->IsOfType<bool>()) {
        flag = negated;
        has_value = true;
        value = "false";
      }
    }
    std::string spelled = name;
    std::replace(spelled.begin(), spelled.end(), '_', '-');
    if (flag == nullptr || !is_ours(*flag)) {
      *error = absl::StrFormat("unknown flag --%s", spelled);
      return false;
    }
    if (!has_value && flag->IsOfType<bool>()) {
      value = "true";
    } else if (!has_value) {
      if (i + 1 >= arguments.size()) {
        *error = absl::StrFormat("--%s needs a value", spelled);
        return false;
      }
      value = arguments[++i];
    }
    std::string parse_error;
    if (!flag->ParseFrom(value, &parse_error)) {
      *error = absl::StrFormat("--%s=%s: %s", spelled, value, parse_error);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> arguments = coremq::base::normalize_flag_spelling(argc, argv);
  if (arguments.size() < 2) {
    print_usage(stderr);
    return kExitUsage;
  }
  const std::string& word = arguments[1];
  if (word == "--help" || word == "-h" || word == "help" || word == "-help") {
    print_usage(stdout);
    return 0;
  }
  if (word == "--version" || word == "-version") {
    std::printf("mqtt-bench %s\n", COREMQ_VERSION);
    return 0;
  }
  // The OPTIONS section of mqtt-bench(1), generated at build time (dist/man/meson.build).
  if (word == "--help_roff") {
    std::vector<coremq::base::FlagHelp> flags = coremq::base::registered_flags("mqtt-bench");
    std::fputs(coremq::base::render_flag_roff(flags, kGroups).c_str(), stdout);
    return 0;
  }
  Command command = Command::kRun;
  if (!parse_command(word, &command)) {
    return usage_error(absl::StrFormat("unknown subcommand '%s': expected conn, pub, sub or run", word));
  }
  if (std::find(arguments.begin(), arguments.end(), "--help") != arguments.end()) {
    print_usage(stdout);
    return 0;
  }
  std::string error;
  if (!parse_flags(arguments, 2, &error)) return usage_error(error);
  coremq::bench::Options options;
  if (!coremq::bench::options_from_flags(command, &options, &error)) return usage_error(error);
  if (!coremq::bench::fit_descriptor_limit(options, &error)) return usage_error(error);
  coremq::bench::Plan plan;
  if (!coremq::bench::build_plan(options, &plan, &error)) return usage_error(error);
  // The CA, certificate and key are loaded once here so that a bad file is a usage error
  // before any connection; each worker then loads its own context.
  if (options.tls &&
      coremq::bench::TlsClientContext::create(coremq::bench::tls_client_settings(options), &error) == nullptr)
    return usage_error(error);

  signal(SIGPIPE, SIG_IGN);  // sends use MSG_NOSIGNAL; this covers anything else
  coremq::bench::Report report;
  coremq::bench::run_benchmark(options, plan, &report);
  coremq::bench::print_report(report, stdout);
  int exit_code = report.exit_code();
  if (!options.json_path.empty() && !coremq::bench::write_json(report, options.json_path, &error)) {
    std::fprintf(stderr, "mqtt-bench: %s\n", error.c_str());
    exit_code = 1;
  }
  return exit_code;
}
