// The binary's listeners: every `--listener=SPEC` of the command line (a repeated flag, which
// absl would reduce to its last value, so they are collected here before absl parses), the
// config file's listener sections, and --bind/--port/--allow-anonymous, resolved into
// Options::listeners. Runs once on the main thread before the broker starts.
#pragma once

#include <string>
#include <vector>

#include "config/config_file.h"
#include "coremq/options.h"

namespace coremq::app {

// What the config file said about listeners (see config::ConfigResult).
struct FileListeners {
  bool read = false;  // a config file was read
  bool default_listener_opened = true;
  ListenerOptions default_listener;
  std::vector<config::ConfigListener> listeners;
  std::vector<config::ConfigBridge> bridges;  // the file's `connection` sections
};

// Every --listener value in arguments (after flag spelling is normalized), in order.
std::vector<std::string> listener_arguments(const std::vector<std::string>& arguments);

// Fills options->listeners from, in order of precedence: the command line's --listener specs
// (all of them; then the file's listeners are not used); else COREMQ_LISTENER (one spec);
// else the config file's listeners, the default one (--bind/--port with the file's options
// for it) first when the file opens it; else the one listener --bind/--port make.
// --allow-anonymous opens that --bind/--port listener; with no such listener it is an error.
// Reads --bind, --port, --allow-anonymous and --listener, so call it after absl parsed them.
// On error *error names the spec and the key, or the file line.
[[nodiscard]] bool listeners_from_flags(const std::vector<std::string>& command_line_specs,
                                        const FileListeners& file, Options* options, std::string* error);

}  // namespace coremq::app
