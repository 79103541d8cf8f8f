// mqtt-bench: the MQTT load tool. This file is the command line only: the subcommand, the
// flags (dashed or underscored, checked here so that every usage error exits 2 with a clear
// message), then the run and its report. Exit codes: 0 clean run, 1 loss or errors, 2 usage.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

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
    "mqtt-bench: load and verify an MQTT broker (MQTT 3.1.1 over TCP, TLS, WebSocket) over io_uring.\n"
    "\n"
    "Usage: mqtt-bench <conn|pub|sub|run> [--flag=value ...]\n"
    "  conn  open --connections at --connect-rate and hold them for --duration\n"
    "  pub   --publishers publish to --topic\n"
    "  sub   --subscribers subscribe to --sub-topic and verify what arrives\n"
    "  run   publishers and subscribers in one process: exact loss, order and latency\n"
    "\n"
    "Examples:\n"
    "  mqtt-bench run --scenario pairs --pairs 100 --qos 1 --duration 10s --warmup 2s\n"
    "  mqtt-bench run --scenario fan-out --subscribers 100 --rate 1000 --duration 10s\n"
    "  mqtt-bench conn --connections 10000 --connect-rate 2000 --duration 30s --broker-pid $(pidof coremq)\n"
    "  mqtt-bench run --scenario pairs --qos 1 --count 10000 --tls --cafile ca.pem --port 8883\n"
    "  mqtt-bench run --scenario pairs --qos 1 --count 10000 --ws --port 8080 --ws-path /mqtt\n"
    "\n"
    "Every run needs a bound: --duration or --count. Exit status: 0 clean, 1 loss or errors, 2 usage error.\n";

bool is_ours(const absl::CommandLineFlag& flag) { return flag.Filename().find("mqtt-bench") != std::string::npos; }

void print_usage(std::FILE* out) {
  std::fputs(kUsage, out);
  std::fputs("\nFlags (dashes or underscores):\n", out);
  std::vector<const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (is_ours(*flag)) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(), [](auto* left, auto* right) { return left->Name() < right->Name(); });
  for (const absl::CommandLineFlag* flag : flags) {
    std::string name(flag->Name());
    std::replace(name.begin(), name.end(), '_', '-');
    std::fprintf(out, "  --%s (default: %s)\n      %s\n", name.c_str(), flag->DefaultValue().c_str(),
                 flag->Help().c_str());
  }
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
