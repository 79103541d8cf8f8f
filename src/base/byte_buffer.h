// A growable byte buffer for encoding packets and staging socket output.
// Owned by one thread at a time; not thread-safe. Keeps its capacity across
// clear() so a connection's send buffer stops allocating once warmed up, and can
// give the memory back with shrink() when a connection goes idle.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string_view>
#include <utility>

#include "base/assert.h"

namespace coremq::base {

class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ByteBuffer(ByteBuffer&& other) noexcept { swap(other); }
  ByteBuffer& operator=(ByteBuffer&& other) noexcept {
    if (this != &other) {
      release();
      swap(other);
    }
    return *this;
  }
  ~ByteBuffer() { release(); }

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  std::span<const uint8_t> span() const { return {data_, size_}; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }

  void clear() { size_ = 0; }

  // Frees the memory (a connection that went quiet should not keep its peak buffer).
  void shrink() {
    release();
  }

  void reserve(size_t wanted) {
    if (wanted <= capacity_) return;
    // Sizes are 32-bit to keep the buffer small (a connection holds three); every user
    // bounds its buffers far below 4 GiB (packet size, --max-client-output-bytes).
    COREMQ_ASSERT_MSG(wanted <= kCapacityMax, "byte buffer over 2 GiB");
    size_t grown = capacity_ ? size_t{capacity_} * 2 : 64;
    while (grown < wanted) grown *= 2;
    if (grown > kCapacityMax) grown = kCapacityMax;
    auto* fresh = static_cast<uint8_t*>(std::realloc(data_, grown));
    COREMQ_ASSERT_MSG(fresh != nullptr, "out of memory");
    data_ = fresh;
    capacity_ = static_cast<uint32_t>(grown);
  }

  // Capacity for exactly `wanted` bytes (no doubling): for a size known in advance.
  void reserve_exact(size_t wanted) {
    if (wanted <= capacity_) return;
    COREMQ_ASSERT_MSG(wanted <= kCapacityMax, "byte buffer over 2 GiB");
    auto* fresh = static_cast<uint8_t*>(std::realloc(data_, wanted));
    COREMQ_ASSERT_MSG(fresh != nullptr, "out of memory");
    data_ = fresh;
    capacity_ = static_cast<uint32_t>(wanted);
  }

  // Extends the buffer by `count` bytes and returns where they start, for in-place encoding.
  uint8_t* grow(size_t count) {
    reserve(size_t{size_} + count);
    uint8_t* at = data_ + size_;
    size_ += static_cast<uint32_t>(count);
    return at;
  }

  void append(const void* bytes, size_t count) {
    if (count == 0) return;
    std::memcpy(grow(count), bytes, count);
  }
  void append(std::span<const uint8_t> bytes) { append(bytes.data(), bytes.size()); }
  void append(std::string_view bytes) { append(bytes.data(), bytes.size()); }
  void append_u8(uint8_t value) { *grow(1) = value; }
  void append_u16(uint16_t value) {
    uint8_t* at = grow(2);
    at[0] = static_cast<uint8_t>(value >> 8);
    at[1] = static_cast<uint8_t>(value);
  }
  void append_u32(uint32_t value) {
    uint8_t* at = grow(4);
    at[0] = static_cast<uint8_t>(value >> 24);
    at[1] = static_cast<uint8_t>(value >> 16);
    at[2] = static_cast<uint8_t>(value >> 8);
    at[3] = static_cast<uint8_t>(value);
  }

  // Drops every byte from `size` on (a packet staged and then withdrawn).
  void truncate(size_t size) {
    COREMQ_ASSERT(size <= size_);
    size_ = static_cast<uint32_t>(size);
  }

  // Drops the first `count` bytes (after a partial send).
  void consume_front(size_t count) {
    COREMQ_ASSERT(count <= size_);
    if (count == size_) {
      size_ = 0;
      return;
    }
    std::memmove(data_, data_ + count, size_ - count);
    size_ -= static_cast<uint32_t>(count);
  }

  // Hands the memory to the caller (who frees it with std::free) and leaves the buffer empty.
  uint8_t* release_storage(size_t* capacity) {
    *capacity = capacity_;
    uint8_t* storage = data_;
    data_ = nullptr;
    size_ = 0;
    capacity_ = 0;
    return storage;
  }

  void swap(ByteBuffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }

 private:
  void release() {
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
    capacity_ = 0;
  }

  static constexpr size_t kCapacityMax = size_t{1} << 31;
  uint8_t* data_ = nullptr;
  uint32_t size_ = 0;
  uint32_t capacity_ = 0;
};

}  // namespace coremq::base
