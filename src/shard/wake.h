// Waking a peer shard that is (about to be) blocked in io_uring_submit_and_wait. The
// usual way is an IORING_OP_MSG_RING from the waker's ring, which posts a completion
// straight into the sleeper's ring (no syscall of its own: it goes out with the waker's
// submissions). MSG_RING can fail (the target's completion queue overflowing, a kernel
// that refuses it for the target's ring set-up), and a lost wake-up leaves the peer asleep
// until its next tick; so its result is checked and a failure falls back to the peer's
// eventfd, which every shard keeps a read armed on. Called on the waking shard's thread.
#pragma once

#include <cstdint>

#include "io/ring.h"

namespace coremq::shard {

// Prepares (does not submit) a MSG_RING in `ring` that posts a completion carrying
// `wake_user_data` into the ring whose fd is `target_ring_fd`. This ring's own completion
// of it carries `sent_user_data`; hand its result to finish_msg_ring_wake.
void prepare_msg_ring_wake(io::Ring& ring, int target_ring_fd, uint64_t wake_user_data, uint64_t sent_user_data);

// Wakes a shard through its eventfd. A full eventfd counter (EAGAIN) already means
// "wake up", so a failed write is not an error.
void wake_by_eventfd(int target_event_fd);

// The result of a MSG_RING wake: on failure the target is woken through its eventfd.
// Returns true when it had to fall back.
[[nodiscard]] bool finish_msg_ring_wake(int result, int target_event_fd);

}  // namespace coremq::shard
