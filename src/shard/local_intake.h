// MpscRing: the bounded multi-producer/single-consumer queue through which host threads (and
// the delivery thread) hand encoded MQTT packets of in-process clients to one shard. Many
// threads push; only the owning shard pops. Lock-free on both sides: a producer claims a slot
// with one compare-and-swap on the shared tail, the consumer never writes anything a producer
// writes except each slot's sequence number. A full queue is an answer, never a wait.
//
// Design: Dmitry Vyukov's bounded MPMC array queue, with the consumer side reduced to one
// thread. Each slot carries a sequence number: slot i is free for the producer that claims
// position p when its sequence equals p, and full for the consumer at position p when it
// equals p + 1; popping sets it to p + capacity, freeing it for the next lap. The acquire
// load of a sequence pairs with the release store that set it, so the item is published with
// it. Positions are 64-bit and never wrap in practice.
//
// Ownership: the queue owns the items between push and pop; items still inside when it is
// destroyed (after every thread stopped using it) are destroyed with it.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "base/assert.h"
#include "base/spsc_ring.h"

namespace coremq::shard {

template <typename T>
class MpscRing {
 public:
  explicit MpscRing(size_t capacity) : capacity_(std::bit_ceil(capacity)), mask_(capacity_ - 1) {
    COREMQ_ASSERT(capacity >= 1 && capacity <= (size_t{1} << 30));
    slots_ = std::make_unique<Slot[]>(capacity_);
    for (size_t i = 0; i < capacity_; ++i) slots_[i].sequence.store(i, std::memory_order_relaxed);
  }
  MpscRing(const MpscRing&) = delete;
  MpscRing& operator=(const MpscRing&) = delete;

  // Any thread. False (and `value` untouched) when the queue is full.
  [[nodiscard]] bool try_push(T&& value) {
    size_t position = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Slot& slot = slots_[position & mask_];
      size_t sequence = slot.sequence.load(std::memory_order_acquire);
      auto difference = static_cast<std::ptrdiff_t>(sequence - position);
      if (difference == 0) {
        if (tail_.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
          slot.value = std::move(value);
          slot.sequence.store(position + 1, std::memory_order_release);
          return true;
        }
        // Another producer took `position`; compare_exchange reloaded it.
      } else if (difference < 0) {
        return false;  // the slot still holds the item of the previous lap: full
      } else {
        position = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  // Consumer only: the oldest item, or null when the queue is empty (or its oldest push is
  // still being written: that producer finishes in a few instructions).
  T* front() {
    size_t head = head_.load(std::memory_order_relaxed);
    Slot& slot = slots_[head & mask_];
    if (slot.sequence.load(std::memory_order_acquire) != head + 1) return nullptr;
    return &slot.value;
  }
  // Consumer only, after front() returned an item: frees its slot.
  void pop() {
    size_t head = head_.load(std::memory_order_relaxed);
    Slot& slot = slots_[head & mask_];
    COREMQ_ASSERT(slot.sequence.load(std::memory_order_relaxed) == head + 1);
    slot.value = T();
    slot.sequence.store(head + capacity_, std::memory_order_release);
    head_.store(head + 1, std::memory_order_relaxed);
  }

  // Any thread; a snapshot. From the consumer, false means front() finds an item (or will in
  // a moment). As with SpscRing::empty(), a consumer that stores "going to sleep" before
  // calling it needs a seq_cst fence between the two (see Shard::enter_kernel).
  bool empty() const {
    const Slot& slot = slots_[head_.load(std::memory_order_relaxed) & mask_];
    return slot.sequence.load(std::memory_order_acquire) != head_.load(std::memory_order_relaxed) + 1;
  }

  size_t capacity() const { return capacity_; }

 private:
  // Slots are packed, not one per cache line: the consumer reads them in order, and the
  // memory is capacity * (8 + sizeof(T)) bytes per shard.
  struct Slot {
    std::atomic<size_t> sequence{0};
    T value{};
  };

  const size_t capacity_;
  const size_t mask_;
  std::unique_ptr<Slot[]> slots_;
  alignas(base::kCacheLineBytes) std::atomic<size_t> tail_{0};
  // Written by the consumer only; atomic so that empty() may read it from other threads.
  alignas(base::kCacheLineBytes) std::atomic<size_t> head_{0};
};

}  // namespace coremq::shard
