// Ring set-up and feature probing; see ring.h. Runs on the owning shard's thread.
#include "io/ring.h"

#include <sys/utsname.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/assert.h"
#include "base/log.h"

namespace coremq::io {

int kernel_version() {
  utsname name{};
  if (uname(&name) != 0) return 0;
  int major = 0, minor = 0;
  if (std::sscanf(name.release, "%d.%d", &major, &minor) != 2) return 0;
  return major * 100 + minor;
}

Ring::~Ring() {
  if (initialised_) io_uring_queue_exit(&ring_);
}

bool Ring::init(uint32_t entries, std::string* error) {
  COREMQ_ASSERT(!initialised_);
  // Completions far outnumber submissions with multishot accept/recv, so the CQ is
  // sized generously; CQ overflow is handled by the kernel but costs a slow path.
  io_uring_params params{};
  params.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
                 IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  params.cq_entries = entries * 4;
  int result = io_uring_queue_init_params(entries, &ring_, &params);
  if (result == 0) {
    features_.single_issuer = true;
    features_.defer_taskrun = true;
  } else {
    // Older kernels (< 6.1) reject DEFER_TASKRUN/SINGLE_ISSUER: run without them.
    params = io_uring_params{};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = entries * 4;
    result = io_uring_queue_init_params(entries, &ring_, &params);
  }
  if (result != 0) {
    *error = std::string("io_uring_queue_init failed: ") + std::strerror(-result);
    return false;
  }
  initialised_ = true;

  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  if (probe != nullptr) {
    features_.msg_ring = io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
    io_uring_free_probe(probe);
  }
  // Multishot accept came in 5.19 and multishot recv in 6.0; the probe cannot see
  // flags on an opcode, so the release decides.
  int version = kernel_version();
  features_.multishot_accept = version >= 519;
  features_.recv_multishot = version >= 600;
  return true;
}

io_uring_sqe* Ring::next_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe != nullptr) return sqe;
  int submitted = io_uring_submit(&ring_);
  if (submitted < 0) LOG_WARNING("io_uring_submit failed while the queue was full: %s", std::strerror(-submitted));
  sqe = io_uring_get_sqe(&ring_);
  COREMQ_ASSERT_MSG(sqe != nullptr, "submission queue still full after submit");
  return sqe;
}

}  // namespace coremq::io
