// One io_uring per shard, used only by the shard's own thread (SINGLE_ISSUER).
// Probes what the running kernel offers once, at set-up, so the shard loop can fall
// back cleanly (no DEFER_TASKRUN, no multishot recv, no buffer rings, no MSG_RING)
// instead of failing on an older kernel.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <string>

namespace coremq::io {

struct RingFeatures {
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool msg_ring = false;
  bool multishot_accept = false;
  bool recv_multishot = false;   // also needs a buffer ring
  bool buffer_ring = false;      // set by BufferRing::init when registration worked
};

class Ring {
 public:
  Ring() = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring();

  // Must be called on the thread that will use the ring (SINGLE_ISSUER binds it to the
  // first submitter, and DEFER_TASKRUN runs completions only on that thread).
  [[nodiscard]] bool init(uint32_t entries, std::string* error);

  // Never returns null: when the submission queue is full it is submitted first.
  io_uring_sqe* next_sqe();

  io_uring* raw() { return &ring_; }
  int fd() const { return ring_.ring_fd; }
  RingFeatures& features() { return features_; }
  const RingFeatures& features() const { return features_; }

 private:
  io_uring ring_{};
  bool initialised_ = false;
  RingFeatures features_;
};

// The kernel release as major*100+minor (6.1 -> 601); 0 if unknown.
int kernel_version();

}  // namespace coremq::io
