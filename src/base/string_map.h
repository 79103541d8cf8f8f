// Hash maps keyed by std::string that are looked up by std::string_view without
// building a string. (Debian's Abseil has its own string_view type, so its default
// heterogeneous lookup does not take std::string_view.)
#pragma once

#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"

namespace coremq::base {

struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return absl::Hash<std::string_view>{}(text); }
};

struct StringViewEqual {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

template <typename Value>
using StringMap = absl::flat_hash_map<std::string, Value, StringViewHash, StringViewEqual>;

}  // namespace coremq::base
