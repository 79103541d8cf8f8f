// Provided-buffer ring registration and recycling; see buffer_ring.h.
#include "io/buffer_ring.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/assert.h"

namespace coremq::io {

BufferRing::~BufferRing() {
  if (ring_memory_ != nullptr) {
    io_uring_unregister_buf_ring(ring_->raw(), group_id_);
    munmap(ring_memory_, ring_memory_size_);
  }
  std::free(buffers_);
}

bool BufferRing::init(Ring& ring, uint16_t group_id, uint32_t count, uint32_t buffer_size,
                      std::string* error) {
  COREMQ_ASSERT(ring_memory_ == nullptr);
  COREMQ_ASSERT(buffer_size > 0);
  uint32_t rounded = 1;
  while (rounded < count && rounded < 32768) rounded <<= 1;
  count_ = rounded;
  buffer_size_ = buffer_size;
  group_id_ = group_id;
  ring_ = &ring;

  ring_memory_size_ = count_ * sizeof(io_uring_buf);
  void* memory = mmap(nullptr, ring_memory_size_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (memory == MAP_FAILED) {
    *error = std::string("mmap for buffer ring failed: ") + std::strerror(errno);
    return false;
  }
  ring_memory_ = static_cast<io_uring_buf_ring*>(memory);
  io_uring_buf_ring_init(ring_memory_);

  io_uring_buf_reg registration{};
  registration.ring_addr = reinterpret_cast<uint64_t>(ring_memory_);
  registration.ring_entries = count_;
  registration.bgid = group_id_;
  int result = io_uring_register_buf_ring(ring.raw(), &registration, 0);
  if (result != 0) {
    munmap(ring_memory_, ring_memory_size_);
    ring_memory_ = nullptr;
    *error = std::string("io_uring_register_buf_ring failed: ") + std::strerror(-result);
    return false;
  }
  buffers_ = static_cast<uint8_t*>(std::aligned_alloc(64, static_cast<size_t>(count_) * buffer_size_));
  COREMQ_ASSERT_MSG(buffers_ != nullptr, "out of memory for receive buffers");
  for (uint32_t id = 0; id < count_; ++id) recycle(static_cast<uint16_t>(id));
  publish();
  ring.features().buffer_ring = true;
  return true;
}

uint8_t* BufferRing::buffer(uint16_t buffer_id) const {
  COREMQ_ASSERT(buffer_id < count_);
  return buffers_ + static_cast<size_t>(buffer_id) * buffer_size_;
}

void BufferRing::recycle(uint16_t buffer_id) {
  io_uring_buf_ring_add(ring_memory_, buffer(buffer_id), buffer_size_, buffer_id,
                        io_uring_buf_ring_mask(count_), pending_);
  ++pending_;
}

void BufferRing::publish() {
  if (pending_ == 0) return;
  io_uring_buf_ring_advance(ring_memory_, pending_);
  pending_ = 0;
}

}  // namespace coremq::io
