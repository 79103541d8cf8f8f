// The one JSON shape the admin API reads (POST bodies): a flat object whose values are
// strings, integers, booleans or null - no nesting, no fractions or exponents. Anything else
// is refused with a message naming the byte offset. Bounded: the text is at most the HTTP
// body limit, and at most kMembersMax members. Pure; any thread. Fuzzed by
// tests/fuzz/fuzz_json_reader.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coremq::admin {

struct JsonValue {
  enum class Kind : uint8_t { kString, kInteger, kBoolean, kNull };
  Kind kind = Kind::kNull;
  std::string text;  // kString: the decoded string (UTF-8)
  int64_t integer = 0;
  bool boolean = false;
};

class FlatJsonObject {
 public:
  static constexpr size_t kMembersMax = 32;

  // Parses text; false with *error ("offset 12: expected ':'") on anything it does not take.
  [[nodiscard]] bool parse(std::string_view text, std::string* error);
  // The member named `name` (the last one when repeated), or null.
  const JsonValue* find(std::string_view name) const;
  const std::vector<std::pair<std::string, JsonValue>>& members() const { return members_; }

 private:
  std::vector<std::pair<std::string, JsonValue>> members_;
};

}  // namespace coremq::admin
