// Cross-shard wake-ups; see wake.h. Runs on the waking shard's thread.
#include "shard/wake.h"

#include <unistd.h>

namespace coremq::shard {

void prepare_msg_ring_wake(io::Ring& ring, int target_ring_fd, uint64_t wake_user_data, uint64_t sent_user_data) {
  io_uring_sqe* sqe = ring.next_sqe();
  io_uring_prep_msg_ring(sqe, target_ring_fd, 0, wake_user_data, 0);
  io_uring_sqe_set_data64(sqe, sent_user_data);
}

void wake_by_eventfd(int target_event_fd) {
  uint64_t one = 1;
  ssize_t written = ::write(target_event_fd, &one, sizeof(one));
  (void)written;  // EAGAIN: the counter is full, the target is already being woken
}

bool finish_msg_ring_wake(int result, int target_event_fd) {
  if (result >= 0) return false;
  // The target's ring got nothing; its eventfd read completes in that ring instead.
  wake_by_eventfd(target_event_fd);
  return true;
}

}  // namespace coremq::shard
