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
  bool min_wait = false;         // IORING_FEAT_MIN_TIMEOUT (6.12): see submit_and_wait_min
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

  // Submits what is prepared and waits up to `timeout` for a completion, as
  // io_uring_submit_and_wait_timeout does, but with the kernel's minimum wait (needs
  // features().min_wait): once `min_wait_us` has passed since the call, it returns as soon as
  // one completion is there, and before that only when `batch` are, so completions arriving
  // close together are handled in one wake-up. Returns 0 or -errno (-ETIME on timeout).
  int submit_and_wait_min(uint32_t batch, uint32_t min_wait_us, const __kernel_timespec& timeout);

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
