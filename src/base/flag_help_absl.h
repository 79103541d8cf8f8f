// The flags of a program as base::FlagHelp, read from Abseil's flag registry. Header-only so
// that only the programs (which link absl_flags) compile it, never the library. Main thread,
// before or after parsing (it reads defaults, not values).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "base/flag_help.h"

namespace coremq::base {

// Every registered flag whose defining file's path contains `path_part` (Abseil's own flags
// and a library's do not), with a placeholder made from its type: "true|false", "N", "X" or
// "VALUE" (a placement may name a better one).
inline std::vector<FlagHelp> registered_flags(std::string_view path_part) {
  std::vector<FlagHelp> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (flag->Filename().find(path_part) == std::string::npos) continue;
    // A const char* chosen first: assigning literals to a std::string trips GCC 12's -Wrestrict.
    const char* placeholder = "VALUE";
    if (flag->IsOfType<bool>()) {
      placeholder = "true|false";
    } else if (flag->IsOfType<uint32_t>() || flag->IsOfType<int32_t>() || flag->IsOfType<uint64_t>() ||
               flag->IsOfType<int64_t>()) {
      placeholder = "N";
    } else if (flag->IsOfType<double>()) {
      placeholder = "X";
    }
    flags.push_back({std::string(name), placeholder, flag->DefaultValue(), flag->Help()});
  }
  return flags;
}

}  // namespace coremq::base
