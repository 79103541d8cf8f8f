// UTF-8 rules of section 1.5.3 (hand-picked cases and an exhaustive comparison with a plain
// code-point decoder), and the topic name / filter syntax of section 4.7.
#include <cstdint>
#include <random>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "mqtt/decoder.h"

namespace coremq::mqtt {
namespace {

TEST(MqttUtf8, Valid) {
  const std::string_view valid[] = {
      "",
      "a",
      "sensors/room-1/temperature",
      "exactly8",
      "more than eight ascii bytes in a row",
      "caf\xC3\xA9",                   // U+00E9, 2 bytes
      "\xC2\x80",                      // U+0080, smallest 2-byte
      "\xDF\xBF",                      // U+07FF, largest 2-byte
      "\xE0\xA0\x80",                  // U+0800, smallest 3-byte
      "\xE2\x82\xAC",                  // U+20AC euro sign
      "\xED\x9F\xBF",                  // U+D7FF, just below the surrogates
      "\xEE\x80\x80",                  // U+E000, just above the surrogates
      "\xEF\xBB\xBF",                  // U+FEFF byte order mark: allowed, not stripped
      "\xEF\xBF\xBF",                  // U+FFFF non-character: a SHOULD NOT, so accepted
      "\xF0\x90\x80\x80",              // U+10000, smallest 4-byte
      "\xF0\x9D\x84\x9E",              // U+1D11E musical symbol G clef
      "\xF4\x8F\xBF\xBF",              // U+10FFFF, largest code point
      "\x01\x1F\x7F",                  // control characters: a SHOULD NOT, so accepted
      "12345678\xF0\x9F\x98\x80tail",  // 4-byte after the fast path
  };
  for (const std::string_view text : valid)
    EXPECT_TRUE(is_valid_utf8_string(text)) << testing::PrintToString(text);
}

TEST(MqttUtf8, Invalid) {
  const std::string_view invalid[] = {
      std::string_view("\0", 1),                   // U+0000
      std::string_view("a\0b", 3),                 // U+0000 in the middle
      std::string_view("abcdefghij\0klmnop", 17),  // U+0000 inside an 8-byte word
      std::string_view("abcdefg\0", 8),            // U+0000 as the last byte of a word
      "\xC0\x80",                                  // overlong U+0000
      "\xC0\xAF",                                  // overlong '/'
      "\xC1\xBF",                                  // overlong U+007F
      "\xE0\x80\x80",                              // overlong 3-byte
      "\xE0\x9F\xBF",                              // overlong U+07FF
      "\xF0\x80\x80\x80",                          // overlong 4-byte
      "\xF0\x8F\xBF\xBF",                          // overlong U+FFFF
      "\xED\xA0\x80",                              // U+D800 high surrogate
      "\xED\xAF\xBF",                              // U+DBFF
      "\xED\xB0\x80",                              // U+DC00 low surrogate
      "\xED\xBF\xBF",                              // U+DFFF
      "\xED\xA0\xBD\xED\xB8\x80",                  // surrogate pair written as two 3-byte forms
      "\xF4\x90\x80\x80",                          // U+110000
      "\xF5\x80\x80\x80",                          // lead byte F5
      "\xF8\x88\x80\x80\x80",                      // 5-byte form
      "\xFC\x84\x80\x80\x80\x80",                  // 6-byte form
      "\xFE",
      "\xFF",
      "\x80",                  // lone continuation
      "a\xBF",                 // continuation after ASCII
      "\xC3",                  // truncated 2-byte
      "\xE2\x82",              // truncated 3-byte
      "\xF0\x9F\x98",          // truncated 4-byte
      "abcdefgh\xF0\x9F\x98",  // truncated after the fast path
      "\xC3\x28",              // bad continuation
      "\xE2\x28\xA1",
      "\xE2\x82\x28",
      "\xF0\x28\x8C\xBC",
      "\xF0\x90\x28\xBC",
      "\xF0\x90\x8C\x28",
  };
  for (const std::string_view text : invalid) {
    EXPECT_FALSE(is_valid_utf8_string(text)) << testing::PrintToString(text);
  }
}

// Plain reference: decode one code point at a time, then check range, minimal length, surrogates.
bool reference_valid(std::string_view text) {
  size_t position = 0;
  while (position < text.size()) {
    const auto lead = static_cast<uint8_t>(text[position]);
    size_t length = 0;
    uint32_t code_point = 0;
    if (lead < 0x80) {
      length = 1;
      code_point = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code_point = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code_point = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code_point = lead & 0x07;
    } else {
      return false;
    }
    if (position + length > text.size()) return false;
    for (size_t index = 1; index < length; index++) {
      const auto byte = static_cast<uint8_t>(text[position + index]);
      if ((byte & 0xC0) != 0x80) return false;
      code_point = (code_point << 6) | (byte & 0x3F);
    }
    const uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < smallest[length]) return false;
    if (code_point > 0x10FFFF) return false;
    if (code_point >= 0xD800 && code_point <= 0xDFFF) return false;
    if (code_point == 0) return false;
    position += length;
  }
  return true;
}

TEST(MqttUtf8, MatchesReferenceOnAllShortStrings) {
  std::string text;
  for (int first = 0; first < 256; first++) {
    text.assign(1, static_cast<char>(first));
    ASSERT_EQ(is_valid_utf8_string(text), reference_valid(text)) << first;
    for (int second = 0; second < 256; second++) {
      text.assign({static_cast<char>(first), static_cast<char>(second)});
      ASSERT_EQ(is_valid_utf8_string(text), reference_valid(text)) << first << " " << second;
    }
  }
  // Every 3-byte string that starts with a 3- or 4-byte lead byte.
  for (int first = 0xE0; first < 0x100; first++) {
    for (int second = 0; second < 256; second++) {
      for (int third = 0; third < 256; third++) {
        text.assign({static_cast<char>(first), static_cast<char>(second), static_cast<char>(third)});
        ASSERT_EQ(is_valid_utf8_string(text), reference_valid(text))
            << first << " " << second << " " << third;
      }
    }
  }
}

TEST(MqttUtf8, MatchesReferenceOnRandomStrings) {
  std::mt19937 random(7);
  // Biased towards bytes that matter: ASCII, continuations, lead bytes.
  const uint8_t interesting[] = {'a',  0,    0x7F, 0x80, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED,
                                 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0x8F, 0x90, 0x9F, 0xA0};
  std::uniform_int_distribution<size_t> pick(0, sizeof(interesting) - 1);
  std::uniform_int_distribution<int> any_byte(0, 255);
  std::uniform_int_distribution<size_t> length(0, 24);
  for (int iteration = 0; iteration < 200'000; iteration++) {
    std::string text(length(random), '\0');
    for (char& value : text) {
      value = static_cast<char>(iteration % 3 == 0 ? any_byte(random) : interesting[pick(random)]);
    }
    ASSERT_EQ(is_valid_utf8_string(text), reference_valid(text)) << testing::PrintToString(text);
  }
}

}  // namespace
}  // namespace coremq::mqtt
