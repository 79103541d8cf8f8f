// Command-line flags of the coremq binary and their translation into coremq::Options.
// Only the binary reads flags; the library takes Options.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "base/log.h"
#include "coremq/options.h"

namespace coremq::app {

// The accepted values of a numeric flag (underscore name).
struct FlagRange {
  std::string_view flag;
  uint32_t low;
  uint32_t high;
};
std::span<const FlagRange> flag_ranges();

// Where a flag's value came from when it was not the command line: "FILE:LINE" or
// "COREMQ_NAME". Keyed by the underscore name.
using FlagOrigins = std::map<std::string, std::string>;

// Reads the parsed flags into options. Returns false with *error for out-of-range values; the
// error starts with the value's origin when origins has one.
[[nodiscard]] bool options_from_flags(Options* options, std::string* error, const FlagOrigins* origins = nullptr);

// The log flags (--log-dest, --log-format, --log-buffer-bytes, --log-recent-lines): logging is
// the process's, not the library's, so they stay out of Options.
[[nodiscard]] bool log_options_from_flags(base::LogOptions* log, base::LogFormat* format, std::string* error,
                                          const FlagOrigins* origins = nullptr);
// Every value a repeatable string flag was given on the command line (--NAME=V, --NAME V, with
// dashes or underscores), joined with commas; empty if none (absl keeps only the last).
std::string repeated_flag_values(const std::vector<std::string>& arguments, std::string_view flag);

}  // namespace coremq::app
