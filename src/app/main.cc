// The coremq binary: config file, environment and flags -> Options, start the broker, wait for SIGINT/SIGTERM,
// stop gracefully; SIGHUP reloads the password, ACL and TLS files. Everything else lives in the library.
#include <mimalloc.h>
#include <signal.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "app/config_flags.h"
#include "app/flags.h"
#include "app/help.h"
#include "app/bridge_flags.h"
#include "app/listener_flags.h"
#include "app/service_notify.h"
#include "base/flag_spelling.h"
#include "base/log.h"
#include "coremq/broker.h"

ABSL_DECLARE_FLAG(std::string, log_dest);

int main(int argc, char** argv) {
  // --help, -h and --version are answered by app/help.h below; --helpfull stays Abseil's.
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view path) { return path.find("app/flags") != absl::string_view::npos; };
  usage_config.contains_helpshort_flags = usage_config.contains_help_flags;
  usage_config.version_string = [] { return std::string("coremq ") + coremq::app::version() + "\n"; };
  absl::SetFlagsUsageConfig(usage_config);
  absl::SetProgramUsageMessage(
      "a thread-per-core MQTT broker.\n"
      "Usage: coremq [-c FILE] [--flag=value ...]   (flags may be written --max-connections or --max_connections)");
  std::vector<std::string> arguments = coremq::base::normalize_flag_spelling(argc, argv);
  coremq::app::normalize_config_arguments(&arguments);
  if (std::optional<int> status = coremq::app::print_requested_help(arguments)) return *status;
  // The file, then COREMQ_<FLAG> variables; the command line parsed below overrides both.
  coremq::app::FlagOrigins origins;
  coremq::app::FileListeners file_listeners;
  if (!coremq::app::apply_config_and_environment(arguments, &origins, &file_listeners)) return 2;
  // absl keeps only the last of a repeated flag: every --listener is taken from here.
  std::vector<std::string> listener_specs = coremq::app::listener_arguments(arguments);
  std::vector<std::string> bridge_specs = coremq::app::bridge_arguments(arguments);
  std::vector<char*> pointers;
  for (std::string& argument : arguments) pointers.push_back(argument.data());
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(pointers.size()), pointers.data());
  if (positional.size() > 1) {
    std::fprintf(stderr, "coremq: unexpected argument '%s' (see --help)\n", positional[1]);
    return 2;
  }
  // --log-dest is repeatable: absl kept only the last, so every one is read from the arguments.
  if (std::string destinations = coremq::app::repeated_flag_values(arguments, "log_dest"); !destinations.empty()) {
    absl::SetFlag(&FLAGS_log_dest, destinations);
  }
  coremq::app::forget_command_line_origins(arguments, &origins);

  coremq::Options options;
  coremq::base::LogOptions log_options;
  coremq::base::LogFormat log_format = coremq::base::LogFormat::kText;
  std::string error;
  if (!coremq::app::options_from_flags(&options, &error, &origins) ||
      !coremq::app::listeners_from_flags(listener_specs, file_listeners, &options, &error) ||
      !coremq::app::log_options_from_flags(&log_options, &log_format, &error, &origins) ||
      !coremq::app::bridges_from_flags(bridge_specs, file_listeners, &options, &error)) {
    std::fprintf(stderr, "coremq: %s\n", error.c_str());
    return 2;
  }

  // Signals are taken by sigwait below, never by a shard thread: block them before
  // any thread starts so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // The log thread first (threads started later inherit the blocked signals too): from here on
  // no shard writes a log destination itself.
  coremq::base::set_log_format(log_format);
  if (!coremq::base::log_start(log_options, &error)) {
    std::fprintf(stderr, "coremq: %s\n", error.c_str());
    return 1;
  }
  coremq::Broker broker(options);
  if (!broker.start(&error)) {
    coremq::base::log_stop();  // what the broker logged before failing goes out first
    std::fprintf(stderr, "coremq: %s\n", error.c_str());
    return 1;
  }
  LOG_DEBUG("allocator: mimalloc %d", mi_version());
  // Every listener accepts connections now (start() returned): a Type=notify unit is started.
  std::string status = "serving on " + std::to_string(broker.shard_count()) +
                       (broker.shard_count() == 1 ? " shard" : " shards");
  coremq::app::notify_ready(status);
  int received = 0;
  for (;;) {
    sigwait(&signals, &received);
    if (received != SIGHUP) break;
    coremq::app::notify_reloading();
    coremq::base::log_reopen();  // after logrotate renamed the file: lines go to a new one
    std::string report;
    // Each file's outcome is logged by the broker; a file that fails keeps the previous one.
    LOG_INFO("received SIGHUP: %s", broker.reload(&report) ? "reloaded" : "reloaded, except what the lines above say");
    coremq::app::notify_ready(status);
  }
  coremq::app::notify_stopping();
  LOG_INFO("received %s, shutting down", received == SIGINT ? "SIGINT" : "SIGTERM");
  broker.stop();
  broker.wait();
  LOG_INFO("stopped");
  coremq::base::log_stop();
  return 0;
}
