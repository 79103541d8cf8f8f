// Ring set-up and feature probing; see ring.h. Runs on the owning shard's thread.
#include "io/ring.h"

#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/assert.h"
#include "base/log.h"

namespace coremq::io {

namespace {
// IORING_FEAT_MIN_TIMEOUT, from Linux 6.12's uapi header (Debian 12's predates it).
constexpr uint32_t kFeatureMinTimeout = 1U << 15;
}  // namespace

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
  features_.min_wait = (params.features & kFeatureMinTimeout) != 0;
  return true;
}

int Ring::submit_and_wait_min(uint32_t batch, uint32_t min_wait_us, const __kernel_timespec& timeout) {
  COREMQ_ASSERT(features_.min_wait);
  // liburing 2.3 (Debian 12) has no call that sets the minimum wait, so this is what its
  // io_uring_submit_and_wait_timeout does, with the field the kernel reads it from (named
  // `pad` in these headers, `min_wait_usec` from 6.12 on): publish the prepared entries,
  // then one io_uring_enter that submits them and waits.
  io_uring_sq& sq = ring_.sq;
  unsigned tail = sq.sqe_tail;
  if (sq.sqe_head != tail) {
    sq.sqe_head = tail;
    io_uring_smp_store_release(sq.ktail, tail);
  }
  unsigned to_submit = tail - io_uring_smp_load_acquire(sq.khead);
  io_uring_getevents_arg arg{};
  arg.pad = min_wait_us;
  arg.ts = reinterpret_cast<uint64_t>(&timeout);
  long result = ::syscall(__NR_io_uring_enter, ring_.ring_fd, to_submit, batch,
                          IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof(arg));
  return result < 0 ? -errno : 0;
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
