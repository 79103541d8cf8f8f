// A provided-buffer ring for multishot recv: the kernel picks a buffer per completion,
// so idle connections hold no receive memory at all. Buffers are handed back in a
// batch once per loop turn (one ring-tail store for many buffers). One per shard,
// used only by its thread.
#pragma once

#include <cstdint>
#include <string>

#include "io/ring.h"

namespace coremq::io {

class BufferRing {
 public:
  BufferRing() = default;
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;
  ~BufferRing();

  // count is rounded up to a power of two (kernel requirement), at most 32768.
  [[nodiscard]] bool init(Ring& ring, uint16_t group_id, uint32_t count, uint32_t buffer_size,
                          std::string* error);

  uint16_t group_id() const { return group_id_; }
  uint32_t buffer_size() const { return buffer_size_; }
  uint8_t* buffer(uint16_t buffer_id) const;

  // Returns a buffer to the kernel; takes effect at the next publish().
  void recycle(uint16_t buffer_id);
  void publish();

 private:
  Ring* ring_ = nullptr;
  io_uring_buf_ring* ring_memory_ = nullptr;
  size_t ring_memory_size_ = 0;
  uint8_t* buffers_ = nullptr;
  uint32_t count_ = 0;
  uint32_t buffer_size_ = 0;
  uint16_t group_id_ = 0;
  int pending_ = 0;
};

}  // namespace coremq::io
