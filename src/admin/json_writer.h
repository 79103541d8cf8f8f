// A small JSON writer for the admin API: objects, arrays, strings (escaped, and made valid
// UTF-8: a byte that does not start a valid sequence becomes U+FFFD), integers and booleans,
// appended to one std::string. Commas are placed by a stack of "first element" flags; the
// caller keeps the nesting right (asserted). Admin thread only; no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace coremq::admin {

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  // An object member's name; the next value call is its value.
  JsonWriter& key(std::string_view name);
  JsonWriter& string(std::string_view text);
  JsonWriter& number(uint64_t value);
  JsonWriter& number_signed(int64_t value);
  JsonWriter& boolean(bool value);
  JsonWriter& null();

  // The text written so far; complete once every object and array is closed.
  const std::string& text() const { return out_; }
  bool complete() const { return open_.empty() && !out_.empty(); }

 private:
  void before_value();
  std::string out_;
  // One entry per open container: whether nothing was written in it yet.
  std::vector<bool> open_;
  bool after_key_ = false;
};

// Appends `text` as a JSON string literal (quotes included) to *out.
void append_json_string(std::string_view text, std::string* out);

}  // namespace coremq::admin
