// JsonWriter (see json_writer.h). Admin thread only.
#include "admin/json_writer.h"

#include "base/assert.h"

namespace coremq::admin {

namespace {

// Length of the valid UTF-8 sequence at text[at], or 0 if it is not one (overlong forms,
// surrogates and code points above U+10FFFF are not valid: RFC 3629).
size_t utf8_sequence_length(std::string_view text, size_t at) {
  auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  uint8_t lead = byte(at);
  size_t left = text.size() - at;
  auto continuation = [&](size_t i) { return (byte(at + i) & 0xC0) == 0x80; };
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return left >= 2 && continuation(1) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    if (left < 3 || !continuation(1) || !continuation(2)) return 0;
    if (lead == 0xE0 && byte(at + 1) < 0xA0) return 0;   // overlong
    if (lead == 0xED && byte(at + 1) >= 0xA0) return 0;  // surrogates
    return 3;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    if (left < 4 || !continuation(1) || !continuation(2) || !continuation(3)) return 0;
    if (lead == 0xF0 && byte(at + 1) < 0x90) return 0;   // overlong
    if (lead == 0xF4 && byte(at + 1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

void append_json_string(std::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t at = 0;
  while (at < text.size()) {
    auto c = static_cast<uint8_t>(text[at]);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
      ++at;
    } else if (c == '\n') {
      out->append("\\n");
      ++at;
    } else if (c == '\r') {
      out->append("\\r");
      ++at;
    } else if (c == '\t') {
      out->append("\\t");
      ++at;
    } else if (c < 0x20 || c == 0x7F) {
      out->append("\\u00");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xF]);
      ++at;
    } else {
      size_t length = utf8_sequence_length(text, at);
      if (length == 0) {
        out->append("\\ufffd");
        ++at;
      } else {
        out->append(text.substr(at, length));
        at += length;
      }
    }
  }
  out->push_back('"');
}

void JsonWriter::before_value() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!open_.empty()) {
    if (!open_.back()) out_.push_back(',');
    open_.back() = false;
  } else {
    COREMQ_ASSERT_MSG(out_.empty(), "one top-level JSON value");
  }
}

JsonWriter& JsonWriter::begin_object() {
  before_value();
  out_.push_back('{');
  open_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  COREMQ_ASSERT(!open_.empty() && !after_key_);
  open_.pop_back();
  out_.push_back('}');
  return *this;
}

JsonWriter& JsonWriter::begin_array() {
  before_value();
  out_.push_back('[');
  open_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  COREMQ_ASSERT(!open_.empty() && !after_key_);
  open_.pop_back();
  out_.push_back(']');
  return *this;
}

JsonWriter& JsonWriter::key(std::string_view name) {
  COREMQ_ASSERT(!open_.empty() && !after_key_);
  if (!open_.back()) out_.push_back(',');
  open_.back() = false;
  append_json_string(name, &out_);
  out_.push_back(':');
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::string(std::string_view text) {
  before_value();
  append_json_string(text, &out_);
  return *this;
}

JsonWriter& JsonWriter::number(uint64_t value) {
  before_value();
  out_.append(std::to_string(value));
  return *this;
}

JsonWriter& JsonWriter::number_signed(int64_t value) {
  before_value();
  out_.append(std::to_string(value));
  return *this;
}

JsonWriter& JsonWriter::boolean(bool value) {
  before_value();
  out_.append(value ? "true" : "false");
  return *this;
}

JsonWriter& JsonWriter::null() {
  before_value();
  out_.append("null");
  return *this;
}

}  // namespace coremq::admin
