// A bounds-checked cursor over a packet body, private to the mqtt module. Every read either
// succeeds entirely or returns false and leaves the cursor where it was, so decoders stay short
// and cannot run past the end of the input. Lives on the decoder's stack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "base/assert.h"
#include "mqtt/packet.h"

namespace coremq::mqtt::detail {

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  size_t remaining() const { return bytes_.size() - position_; }
  bool at_end() const { return position_ == bytes_.size(); }
  size_t position() const { return position_; }
  std::span<const uint8_t> rest() const { return bytes_.subspan(position_); }

  [[nodiscard]] bool read_u8(uint8_t* value) {
    if (remaining() < 1) return false;
    *value = bytes_[position_];
    position_ += 1;
    return true;
  }

  [[nodiscard]] bool read_u16(uint16_t* value) {
    if (remaining() < 2) return false;
    *value = static_cast<uint16_t>((bytes_[position_] << 8) | bytes_[position_ + 1]);
    position_ += 2;
    return true;
  }

  [[nodiscard]] bool read_u32(uint32_t* value) {
    if (remaining() < 4) return false;
    const uint8_t* at = bytes_.data() + position_;
    *value = (uint32_t{at[0]} << 24) | (uint32_t{at[1]} << 16) | (uint32_t{at[2]} << 8) | uint32_t{at[3]};
    position_ += 4;
    return true;
  }

  // Variable byte integer (section 1.5.5 / 2.2.3): at most four bytes.
  [[nodiscard]] bool read_varint(uint32_t* value) {
    uint32_t result = 0;
    for (size_t index = 0; index < kRemainingLengthBytesMax; index++) {
      if (position_ + index >= bytes_.size()) return false;
      const uint8_t byte = bytes_[position_ + index];
      result |= uint32_t{byte & 0x7Fu} << (7 * index);
      if ((byte & 0x80) == 0) {
        // MQTT-1.5.5-1: the fewest bytes; a final 0x00 after a continuation byte is padding.
        if (index > 0 && byte == 0) return false;
        position_ += index + 1;
        *value = result;
        return true;
      }
    }
    return false;
  }

  [[nodiscard]] bool read_bytes(size_t count, std::span<const uint8_t>* value) {
    if (remaining() < count) return false;
    *value = bytes_.subspan(position_, count);
    position_ += count;
    return true;
  }

  // Two-byte length followed by that many bytes: a UTF-8 string or binary data (section 1.5.4 /
  // 1.5.6). The caller decides whether the content must be checked as UTF-8.
  [[nodiscard]] bool read_length_prefixed(std::string_view* value) {
    const size_t start = position_;
    uint16_t length = 0;
    if (!read_u16(&length)) return false;
    if (remaining() < length) {
      position_ = start;
      return false;
    }
    *value = std::string_view(reinterpret_cast<const char*>(bytes_.data()) + position_, length);
    position_ += length;
    COREMQ_ASSERT(position_ <= bytes_.size());
    return true;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t position_ = 0;
};

}  // namespace coremq::mqtt::detail
