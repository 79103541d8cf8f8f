// The binary's bridges: the config file's `connection` sections, then every `--bridge=SPEC` of
// the command line (a repeated flag, which absl keeps only the last of, so they are taken from
// the arguments), into Options::bridges. Runs once on the main thread before the broker starts.
#pragma once

#include <string>
#include <vector>

#include "app/listener_flags.h"
#include "coremq/options.h"

namespace coremq::app {

// Every --bridge value in arguments (after flag spelling is normalized), in order.
std::vector<std::string> bridge_arguments(const std::vector<std::string>& arguments);

// Options::bridges = the file's bridges, then the command line's specs (or, with none there,
// COREMQ_BRIDGE's one spec). Two bridges with one name are an error. Reads --bridge, so call it
// after absl parsed the flags.
[[nodiscard]] bool bridges_from_flags(const std::vector<std::string>& command_line_specs,
                                      const FileListeners& file, Options* options, std::string* error);

}  // namespace coremq::app
