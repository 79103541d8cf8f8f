// Command-line flags of the coremq binary and their translation into coremq::Options.
// Only the binary reads flags; the library takes Options.
#pragma once

#include <string>
#include <vector>

#include "coremq/options.h"

namespace coremq::app {

// Users type flags with dashes (--max-connections) as on most Linux servers; Abseil
// names them with underscores. Rewrites the name part of every "--flag[=value]".
std::vector<std::string> normalize_flag_spelling(int argc, char** argv);

// Reads the parsed flags into options. Returns false with *error for out-of-range values.
[[nodiscard]] bool options_from_flags(Options* options, std::string* error);

}  // namespace coremq::app
