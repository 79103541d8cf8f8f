// Command-line flag spelling shared by the coremq binary and mqtt-bench. Users type
// flags with dashes (--max-connections) as on most Linux servers; Abseil names them with
// underscores. Pure function, any thread.
#pragma once

#include <string>
#include <vector>

namespace coremq::base {

// Rewrites the name part of every "--flag[=value]" (and "-flag") before "--", turning
// dashes into underscores; values and positional arguments are left alone.
std::vector<std::string> normalize_flag_spelling(int argc, char** argv);

}  // namespace coremq::base
