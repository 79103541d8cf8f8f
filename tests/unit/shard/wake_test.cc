// Cross-shard wake-ups (src/shard/wake.h) against the real kernel: a MSG_RING that
// succeeds posts its completion into the target ring and leaves the eventfd alone; one that
// fails is not ignored, the target is woken through its eventfd instead. Rings and eventfds
// only, no sockets; skips where the kernel has no MSG_RING.
#include "shard/wake.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <string>

namespace coremq::shard {
namespace {

constexpr uint64_t kWake = 0x1230;
constexpr uint64_t kSent = 0x4560;

class WakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(waker_.init(64, &error)) << error;
    if (!waker_.features().msg_ring) GTEST_SKIP() << "this kernel has no IORING_OP_MSG_RING";
    event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ASSERT_GE(event_fd_, 0);
  }
  void TearDown() override {
    if (event_fd_ >= 0) ::close(event_fd_);
  }

  // Submits what was prepared and returns the result of the waker's own completion.
  int submit_and_reap_sent() {
    io_uring_cqe* cqe = nullptr;
    EXPECT_GE(io_uring_submit_and_wait(waker_.raw(), 1), 0);
    EXPECT_EQ(io_uring_peek_cqe(waker_.raw(), &cqe), 0);
    EXPECT_EQ(cqe->user_data, kSent);
    int result = cqe->res;
    io_uring_cqe_seen(waker_.raw(), cqe);
    return result;
  }

  uint64_t eventfd_count() const {
    uint64_t value = 0;
    return ::read(event_fd_, &value, sizeof(value)) == sizeof(value) ? value : 0;
  }

  io::Ring waker_;
  int event_fd_ = -1;
};

TEST_F(WakeTest, SuccessfulMsgRingReachesTheTargetRingOnly) {
  io::Ring sleeper;
  std::string error;
  ASSERT_TRUE(sleeper.init(64, &error)) << error;
  prepare_msg_ring_wake(waker_, sleeper.fd(), kWake, kSent);
  int result = submit_and_reap_sent();
  EXPECT_GE(result, 0);
  EXPECT_FALSE(finish_msg_ring_wake(result, event_fd_));
  EXPECT_EQ(eventfd_count(), 0u);
  // The sleeper sees it when it waits (with DEFER_TASKRUN, only once it enters the kernel).
  io_uring_cqe* cqe = nullptr;
  __kernel_timespec timeout{.tv_sec = 5, .tv_nsec = 0};
  ASSERT_EQ(io_uring_wait_cqe_timeout(sleeper.raw(), &cqe, &timeout), 0);
  EXPECT_EQ(cqe->user_data, kWake);
  io_uring_cqe_seen(sleeper.raw(), cqe);
}

TEST_F(WakeTest, FailedMsgRingFallsBackToTheEventfd) {
  // An eventfd is no io_uring: the kernel fails the MSG_RING (-EBADFD), as it would for a
  // target it cannot post to. The wake must still arrive, through the eventfd.
  int not_a_ring = ::eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(not_a_ring, 0);
  prepare_msg_ring_wake(waker_, not_a_ring, kWake, kSent);
  int result = submit_and_reap_sent();
  ::close(not_a_ring);
  ASSERT_LT(result, 0);
  EXPECT_TRUE(finish_msg_ring_wake(result, event_fd_));
  EXPECT_EQ(eventfd_count(), 1u);
}

TEST(WakeByEventfd, FullCounterIsNotAnError) {
  int event_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(event_fd, 0);
  uint64_t almost_full = 0xfffffffffffffffe;
  ASSERT_EQ(::write(event_fd, &almost_full, sizeof(almost_full)), static_cast<ssize_t>(sizeof(almost_full)));
  wake_by_eventfd(event_fd);  // EAGAIN, silently: the target is being woken anyway
  uint64_t value = 0;
  ASSERT_EQ(::read(event_fd, &value, sizeof(value)), static_cast<ssize_t>(sizeof(value)));
  EXPECT_EQ(value, almost_full);
  ::close(event_fd);
}

}  // namespace
}  // namespace coremq::shard
