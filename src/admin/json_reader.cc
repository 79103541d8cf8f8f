// FlatJsonObject (see json_reader.h): a recursive-descent reader over one flat object.
#include "admin/json_reader.h"

#include <limits>

namespace coremq::admin {

namespace {

class Reader {
 public:
  Reader(std::string_view text, std::string* error) : text_(text), error_(error) {}

  bool fail(std::string_view what) {
    *error_ = "offset " + std::to_string(at_) + ": " + std::string(what);
    return false;
  }
  void skip_blanks() {
    while (at_ < text_.size() &&
           (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n' || text_[at_] == '\r')) {
      ++at_;
    }
  }
  bool expect(char c) {
    skip_blanks();
    if (at_ >= text_.size() || text_[at_] != c) return fail(std::string("expected '") + c + "'");
    ++at_;
    return true;
  }
  bool peek(char c) {
    skip_blanks();
    return at_ < text_.size() && text_[at_] == c;
  }
  bool at_end() {
    skip_blanks();
    return at_ == text_.size();
  }

  static void append_utf8(uint32_t code_point, std::string* out) {
    if (code_point < 0x80) {
      out->push_back(static_cast<char>(code_point));
    } else if (code_point < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
      out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
    } else if (code_point < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
      out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
      out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
    }
  }

  bool hex4(uint32_t* value) {
    if (text_.size() - at_ < 4) return fail("short \\u escape");
    *value = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[at_++];
      uint32_t digit;
      if (c >= '0' && c <= '9') {
        digit = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return fail("bad hex digit in \\u escape");
      }
      *value = *value * 16 + digit;
    }
    return true;
  }

  bool string(std::string* out) {
    if (!expect('"')) return false;
    while (true) {
      if (at_ >= text_.size()) return fail("unterminated string");
      auto c = static_cast<uint8_t>(text_[at_]);
      if (c == '"') {
        ++at_;
        return true;
      }
      if (c < 0x20) return fail("control character in string");
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        ++at_;
        continue;
      }
      ++at_;
      if (at_ >= text_.size()) return fail("unterminated escape");
      char escape = text_[at_++];
      switch (escape) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t unit = 0;
          if (!hex4(&unit)) return false;
          if (unit >= 0xD800 && unit <= 0xDBFF) {
            uint32_t low = 0;
            if (text_.substr(at_, 2) != "\\u") return fail("lone high surrogate");
            at_ += 2;
            if (!hex4(&low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return fail("bad low surrogate");
            unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
          } else if (unit >= 0xDC00 && unit <= 0xDFFF) {
            return fail("lone low surrogate");
          }
          append_utf8(unit, out);
          break;
        }
        default:
          return fail("unknown escape");
      }
    }
  }

  bool value(JsonValue* out) {
    skip_blanks();
    if (at_ >= text_.size()) return fail("expected a value");
    char c = text_[at_];
    if (c == '"') {
      out->kind = JsonValue::Kind::kString;
      return string(&out->text);
    }
    if (c == '{' || c == '[') return fail("nested objects and arrays are not taken here");
    if (text_.substr(at_, 4) == "true") {
      at_ += 4;
      out->kind = JsonValue::Kind::kBoolean;
      out->boolean = true;
      return true;
    }
    if (text_.substr(at_, 5) == "false") {
      at_ += 5;
      out->kind = JsonValue::Kind::kBoolean;
      return true;
    }
    if (text_.substr(at_, 4) == "null") {
      at_ += 4;
      out->kind = JsonValue::Kind::kNull;
      return true;
    }
    bool negative = false;
    if (c == '-') {
      negative = true;
      ++at_;
    }
    if (at_ >= text_.size() || text_[at_] < '0' || text_[at_] > '9') return fail("expected a value");
    if (text_[at_] == '0' && at_ + 1 < text_.size() && text_[at_ + 1] >= '0' && text_[at_ + 1] <= '9') {
      return fail("leading zero");
    }
    uint64_t magnitude = 0;
    while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') {
      uint64_t digit = static_cast<uint64_t>(text_[at_] - '0');
      if (magnitude > (uint64_t{std::numeric_limits<int64_t>::max()} - digit) / 10)
        return fail("integer too large");
      magnitude = magnitude * 10 + digit;
      ++at_;
    }
    if (at_ < text_.size() && (text_[at_] == '.' || text_[at_] == 'e' || text_[at_] == 'E')) {
      return fail("only integers are taken");
    }
    out->kind = JsonValue::Kind::kInteger;
    out->integer = negative ? -static_cast<int64_t>(magnitude) : static_cast<int64_t>(magnitude);
    return true;
  }

 private:
  std::string_view text_;
  std::string* error_;
  size_t at_ = 0;
};

}  // namespace

bool FlatJsonObject::parse(std::string_view text, std::string* error) {
  members_.clear();
  Reader reader(text, error);
  if (!reader.expect('{')) return false;
  if (reader.peek('}')) {
    (void)reader.expect('}');
  } else {
    while (true) {
      if (members_.size() == kMembersMax) return reader.fail("too many members");
      std::pair<std::string, JsonValue> member;
      if (!reader.string(&member.first) || !reader.expect(':') || !reader.value(&member.second)) return false;
      members_.push_back(std::move(member));
      if (reader.peek(',')) {
        (void)reader.expect(',');
        continue;
      }
      if (!reader.expect('}')) return false;
      break;
    }
  }
  if (!reader.at_end()) return reader.fail("text after the object");
  return true;
}

const JsonValue* FlatJsonObject::find(std::string_view name) const {
  for (auto it = members_.rbegin(); it != members_.rend(); ++it) {
    if (it->first == name) return &it->second;
  }
  return nullptr;
}

}  // namespace coremq::admin
