// What `coremq --help`, `--version` and `--help-roff` print: the flags grouped by what they are
// for (the placement table in help.cc), spelled as users type them, with defaults, wrapped at
// 80 columns; `--help-roff` is the same list as the OPTIONS section of coremq(8), which the build
// generates from it (dist/man/meson.build) so the page and --help cannot drift. Main thread,
// before the broker starts.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/flag_help.h"

namespace coremq::app {

// The version `--version` prints: the project's (meson.build), set by src/app/meson.build.
const char* version();

// coremq's flag groups and placements: a new flag joins a group with one line in help.cc.
const base::FlagGroups& flag_groups();

// `--help` (also -h, --helpshort): usage, then every flag of src/app/ by group.
std::string help_text();

// When arguments (after flag spelling is normalized: --help_roff) ask for help, the version or
// the roff options, prints it to stdout and returns the exit status (0); otherwise nullopt and
// the caller goes on. `--helpfull` and Abseil's other help flags are left to Abseil.
std::optional<int> print_requested_help(const std::vector<std::string>& arguments);

}  // namespace coremq::app
