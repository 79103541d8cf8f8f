// UTF-8 checks for strings in MQTT packets (section 1.5.3). Every topic,
// client id, username and filter of every packet passes through is_valid_utf8_string, so it has an
// ASCII fast path that checks eight bytes per step.
#include <cstring>

#include "mqtt/decoder.h"

namespace coremq::mqtt {
namespace {

constexpr uint64_t kHighBits = 0x8080808080808080ull;
constexpr uint64_t kLowBits = 0x0101010101010101ull;

// True when all eight bytes are ASCII and none is zero.
inline bool ascii_word_without_nul(uint64_t word) {
  const bool has_zero_byte = ((word - kLowBits) & ~word & kHighBits) != 0;
  return (word & kHighBits) == 0 && !has_zero_byte;
}

inline bool is_continuation(uint8_t byte) {
  return (byte & 0xC0) == 0x80;
}

// Length of the well-formed multi-byte sequence at `at` (Unicode table 3-7), or 0 if it is not one.
// The second-byte ranges exclude overlong forms (E0, F0), surrogates (ED) and code points above
// U+10FFFF (F4).
size_t multibyte_sequence_length(const uint8_t* at, size_t available) {
  const uint8_t lead = at[0];
  size_t length = 0;
  uint8_t second_min = 0x80;
  uint8_t second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;
    if (lead == 0xED) second_max = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;
    if (lead == 0xF4) second_max = 0x8F;
  } else {
    return 0;  // continuation byte as lead, C0/C1 (always overlong), F5..FF
  }
  if (available < length) return 0;
  if (at[1] < second_min || at[1] > second_max) return 0;
  for (size_t index = 2; index < length; index++) {
    if (!is_continuation(at[index])) return 0;
  }
  return length;
}

}  // namespace

bool is_valid_utf8_string(std::string_view text) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(text.data());
  const size_t size = text.size();
  size_t position = 0;
  while (position < size) {
    if (size - position >= sizeof(uint64_t)) {
      uint64_t word;
      std::memcpy(&word, bytes + position, sizeof(word));
      if (ascii_word_without_nul(word)) {
        position += sizeof(word);
        continue;
      }
    }
    const uint8_t byte = bytes[position];
    if (byte < 0x80) {
      if (byte == 0) return false;
      position++;
      continue;
    }
    const size_t length = multibyte_sequence_length(bytes + position, size - position);
    if (length == 0) return false;
    position += length;
  }
  return true;
}

}  // namespace coremq::mqtt
