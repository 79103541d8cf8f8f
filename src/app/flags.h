// Command-line flags of the coremq binary and their translation into coremq::Options.
// Only the binary reads flags; the library takes Options.
#pragma once

#include <string>
#include <vector>

#include "coremq/options.h"

namespace coremq::app {

// Reads the parsed flags into options. Returns false with *error for out-of-range values.
[[nodiscard]] bool options_from_flags(Options* options, std::string* error);

}  // namespace coremq::app
