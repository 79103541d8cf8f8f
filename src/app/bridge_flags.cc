// The binary's bridges; see bridge_flags.h.
#include "app/bridge_flags.h"

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "config/bridge_spec.h"

ABSL_DECLARE_FLAG(std::string, bridge);

namespace coremq::app {

std::vector<std::string> bridge_arguments(const std::vector<std::string>& arguments) {
  std::vector<std::string> specs;
  for (size_t i = 1; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument == "--") break;
    for (std::string_view prefix : {"--bridge=", "-bridge="}) {
      if (argument.starts_with(prefix)) specs.push_back(argument.substr(prefix.size()));
    }
    if ((argument == "--bridge" || argument == "-bridge") && i + 1 < arguments.size())
      specs.push_back(arguments[++i]);
  }
  return specs;
}

bool bridges_from_flags(const std::vector<std::string>& command_line_specs, const FileListeners& file,
                        Options* options, std::string* error) {
  options->bridges.clear();
  for (const config::ConfigBridge& bridge : file.bridges) options->bridges.push_back(bridge.options);
  std::vector<std::string> specs = command_line_specs;
  std::string from_environment = absl::GetFlag(FLAGS_bridge);
  if (specs.empty() && !from_environment.empty()) specs.push_back(from_environment);
  for (const std::string& spec : specs) {
    BridgeOptions bridge;
    std::string message;
    if (!config::parse_bridge_spec(spec, &bridge, &message)) {
      *error = absl::StrFormat("--bridge=%s: %s", spec, message);
      return false;
    }
    options->bridges.push_back(std::move(bridge));
  }
  for (size_t i = 0; i < options->bridges.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (options->bridges[i].name == options->bridges[j].name) {
        *error = absl::StrFormat("two bridges are named '%s'", options->bridges[i].name);
        return false;
      }
    }
  }
  return true;
}

}  // namespace coremq::app
