// Flag spelling; see flag_spelling.h.
#include "base/flag_spelling.h"

namespace coremq::base {

std::vector<std::string> normalize_flag_spelling(int argc, char** argv) {
  std::vector<std::string> arguments;
  arguments.reserve(static_cast<size_t>(argc));
  bool flags_ended = false;
  for (int i = 0; i < argc; ++i) {
    std::string argument = argv[i];
    if (argument == "--") flags_ended = true;
    if (i > 0 && !flags_ended && argument.size() > 2 && argument[0] == '-') {
      size_t name_start = argument[1] == '-' ? 2 : 1;
      size_t name_end = argument.find('=');
      if (name_end == std::string::npos) name_end = argument.size();
      for (size_t j = name_start; j < name_end; ++j) {
        if (argument[j] == '-') argument[j] = '_';
      }
    }
    arguments.push_back(std::move(argument));
  }
  return arguments;
}

}  // namespace coremq::base
