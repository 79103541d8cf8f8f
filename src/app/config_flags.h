// Where the binary's flag values come from, lowest precedence first: the config file
// (--config FILE, -c FILE, or COREMQ_CONFIG), then COREMQ_<FLAG> environment variables, then the
// command line. Runs once on the main thread, before any broker thread starts.
#pragma once

#include <string>
#include <vector>

#include "app/flags.h"
#include "app/listener_flags.h"
#include "config/config_file.h"

namespace coremq::app {

// The binary's own flags (those defined in src/app/flags.cc, not Abseil's), with their types and
// ranges, for the config file and the environment. --config itself is not among them.
config::FlagCatalog flag_catalog();

// Rewrites Mosquitto's `-c FILE` and `--config-file FILE` as `--config FILE`.
void normalize_config_arguments(std::vector<std::string>* arguments);

// Applies the config file named by `--config` in arguments (or COREMQ_CONFIG), then the
// COREMQ_<FLAG> variables, to the flags; the command line, parsed after this, overrides both.
// Prints each warning and error to stderr; false when there was an error (nothing listens then).
// *origins records where each value set here came from; *listeners receives the file's listeners.
[[nodiscard]] bool apply_config_and_environment(const std::vector<std::string>& arguments,
                                                FlagOrigins* origins, FileListeners* listeners);

// Drops the origins of flags that arguments set, once the command line has overridden them.
void forget_command_line_origins(const std::vector<std::string>& arguments, FlagOrigins* origins);

}  // namespace coremq::app
