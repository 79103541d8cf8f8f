// A shard's traffic with the other shards: connections handed off and adopted, items
// staged and pushed into the peers' rings (with the staging bound), wake-ups, and the
// inbound drain. See docs/ARCHITECTURE.md. Shard thread only.
#include "shard/shard.h"

#include <unistd.h>

#include <algorithm>

#include "base/assert.h"
#include "base/log.h"
#include "shard/wake.h"

namespace coremq::shard {

using broker::Connection;
using broker::ConnectionState;
using broker::CrossShardItem;

namespace {
// Items taken from one inbound ring per turn, so one busy peer cannot starve the sockets.
constexpr size_t kInboundBatchMax = 4096;
}  // namespace

// ---- cross-shard -------------------------------------------------------------

void Shard::post(uint32_t target_shard, CrossShardItem item) {
  COREMQ_ASSERT(target_shard < shard_count_ && target_shard != shard_id_);
  // Staging is bounded where items are made, whatever made them (a received packet, a
  // hand-off, an interest change, a tick's expiries and wills, a peer's item forwarded):
  // when one peer's staging passes --cross-shard-queue-capacity, what its ring takes is
  // pushed at once (one ring operation per `capacity` items), and if that is not enough
  // this shard stops reading sockets, within this very turn, until the peer catches up.
  // An item itself is never refused or dropped: an adopt message carries a socket, a
  // publish a message already acknowledged, an interest change the routing of others;
  // each comes from a bounded cause (input read before the pause, the shard's sessions).
  std::vector<CrossShardItem>& staged = staged_[target_shard];
  staged.push_back(item);
  if (staged.size() != size_t{options_.cross_shard_queue_capacity} + 1) return;
  push_staged(target_shard);
  if (staged.size() > options_.cross_shard_queue_capacity && !input_paused_) pause_input(staged.size());
}

void Shard::push_staged(uint32_t target) {
  auto& staged = staged_[target];
  if (peers_[target].shard->loop_ended_.load(std::memory_order_acquire)) {
    // That peer stopped and drains no more (only at shutdown): its items would keep this
    // shard turning, unable to sleep, until its own grace period ends.
    release_items_for_stopped_peer(target);
    return;
  }
  size_t pushed = peers_[target].outbound->try_push_batch(staged.begin(), staged.end());
  staged.erase(staged.begin(), staged.begin() + static_cast<std::ptrdiff_t>(pushed));
  if (pushed > 0) {
    peer_needs_wake_[target] = true;
    wake_pending_ = true;
  }
}

void Shard::flush_cross_shard() {
  for (uint32_t target = 0; target < shard_count_; ++target) {
    if (!staged_[target].empty()) push_staged(target);
  }
  // Items pushed earlier in the turn (post) are woken for here too.
  if (!wake_pending_) return;
  wake_pending_ = false;
  // Pairs with the fence between the peer's store to sleeping_ and its look at its rings
  // (enter_kernel): either the peer sees these pushes, or this load sees it asleep.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  for (uint32_t target = 0; target < shard_count_; ++target) {
    if (!peer_needs_wake_[target]) continue;
    peer_needs_wake_[target] = false;
    Shard* peer = peers_[target].shard;
    if (peer->sleeping_.load(std::memory_order_relaxed) && peer->sleeping_.exchange(false)) wake(peer);
  }
}

void Shard::release_items_for_stopped_peer(uint32_t target) {
  // A stopped peer applies nothing more and forwards nothing more, so a barrier it was asked
  // for holds for it: it is acknowledged here on its behalf, after the staging is cleared
  // (the answers it releases may stage items again).
  std::vector<CrossShardItem> staged;
  staged.swap(staged_[target]);
  uint64_t barrier_sequence = 0;
  for (const CrossShardItem& item : staged) {
    if (item.kind == CrossShardItem::Kind::kAdoptConnection) {
      shared_.connections_total.fetch_sub(1, std::memory_order_relaxed);  // its socket is closed
    }
    if (item.kind == CrossShardItem::Kind::kBarrierRequest) barrier_sequence = std::max(barrier_sequence, item.sequence);
    broker::release_cross_shard_item(item);
  }
  if (barrier_sequence != 0) {
    CrossShardItem ack{CrossShardItem::Kind::kBarrierAck, target};
    ack.sequence = barrier_sequence;
    state_->on_cross_shard(ack);
  }
}

void Shard::wake(Shard* peer) {
  if (ring_.features().msg_ring) {
    // A completion posted straight into the peer's ring wakes its wait, with no extra
    // syscall: it goes out with this turn's submissions. Its result comes back as a
    // kWakeSent completion (on_wake_sent), which falls back to the eventfd on failure.
    prepare_msg_ring_wake(ring_, peer->ring_.fd(), user_data(nullptr, Tag::kWake), user_data(peer, Tag::kWakeSent));
    wakes_prepared_.push_back(peer);
    return;
  }
  wake_by_eventfd(peer->event_fd_);
}

void Shard::on_wake_sent(Shard* peer, int result) {
  if (!finish_msg_ring_wake(result, peer->event_fd_)) return;
  uint64_t fallbacks = ++state_->counters().wakes_by_eventfd_fallback;
  // One line a second at most: a peer whose ring keeps refusing would otherwise flood the log.
  if (now_ms_ >= next_wake_warning_ms_) {
    next_wake_warning_ms_ = now_ms_ + 1000;
    LOG_WARNING("waking shard %u by MSG_RING failed (%s); woken through its eventfd (%u times so far)", peer->id(),
                std::strerror(-result), fallbacks);
  }
}

void Shard::submit_prepared_wakes_before_exit() {
  // The loop is leaving, so the wake-ups prepared in its last turn would never be
  // submitted, nor their results looked at: peers still running would sleep until their
  // next tick with this shard's last items unseen. Submit what is prepared, and wake
  // those peers through their eventfds too, as nothing will check the MSG_RING results.
  int submitted = io_uring_submit(ring_.raw());
  if (submitted < 0) LOG_DEBUG("io_uring submit at exit: %s", std::strerror(-submitted));
  for (Shard* peer : wakes_prepared_) wake_by_eventfd(peer->event_fd_);
  wakes_prepared_.clear();
}

void Shard::exchange_restored_interest() {
  // Without this a message published in a shard's first turns (a client quick to connect, a
  // bridge's remote resending at once) could be routed before the shard applied a peer's
  // restored subscriptions: taken by nobody there, acknowledged, and lost for a persistent
  // subscriber that the peer restored (found by test_32's inbound kill -9 test). Every shard
  // spins here only at start-up, pushing (a full ring waits for its peer, which drains it in
  // this same loop) and applying, until every shard pushed all it posted; then it applies what
  // is left.
  bool pushed = false;
  for (;;) {
    if (!pushed) {
      flush_cross_shard();
      if (!has_staged_items()) {
        pushed = true;
        shared_.shards_restore_posted.fetch_add(1, std::memory_order_acq_rel);
      }
    }
    drain_inbound();
    if (pushed && shared_.shards_restore_posted.load(std::memory_order_acquire) == shard_count_) break;
    std::this_thread::yield();
  }
  // What is left of it: every peer pushed it all before counting itself, so it is in the rings
  // now, ahead of anything a peer already serving clients appends behind it.
  for (uint32_t from = 0; from < shard_count_; ++from) {
    if (from != shard_id_) drain_inbound_from(from, inbound_[from]->size_approx());
  }
}

void Shard::drain_inbound() {
  for (uint32_t from = 0; from < shard_count_; ++from) {
    if (from != shard_id_) drain_inbound_from(from, kInboundBatchMax);
  }
}

void Shard::drain_inbound_from(uint32_t from, size_t max_items) {
  inbound_[from]->drain(
      [this](CrossShardItem&& item) {
        if (item.kind == CrossShardItem::Kind::kAdoptConnection) {
          adopt(static_cast<broker::ConnectionHandoff*>(item.pointer));
        } else if (state_) {
          state_->on_cross_shard(item);
        }
      },
      max_items);
}

}  // namespace coremq::shard
