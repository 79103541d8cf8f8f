// SpscRing: the bounded single-producer/single-consumer queue that carries messages between
// two shards. One ring per ordered pair of shards; exactly one thread pushes and exactly one
// thread pops, and each method says which side may call it. Other threads may only call the
// approximate observers (empty(), size_approx()), whose answers are stale by the time they
// return.
//
// Ownership: the ring owns the items between push and pop. Whoever creates it (the shard
// group, at start-up) destroys it after both threads have stopped using it; items still
// inside are destroyed then.
//
// Design: the classic cached-index ring. head_ (next slot to pop) is written only by the
// consumer, tail_ (next slot to fill) only by the producer; each sits on its own cache line
// next to that side's private copy of the other index. A side reads the other's index, and
// so pulls its cache line across cores, only when its cached copy says the ring is full
// (producer) or empty (consumer). Indices grow without wrapping (64 bits do not run out) and
// are masked into the power-of-two slot array. Ordering is acquire/release only: a release
// store of tail_ publishes the constructed items, an acquire load of it makes them visible;
// likewise head_ hands the emptied slots back. The batch calls publish their index once, so
// the peer sees one cache-line transfer per batch instead of one per item.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "base/assert.h"

namespace coremq::base {

// A cache line on the machines coremq targets (x86-64, most AArch64). Spelled out rather
// than std::hardware_destructive_interference_size, whose value GCC warns may change
// between compiler versions and so must not shape a layout.
inline constexpr size_t kCacheLineBytes = 64;

template <typename T>
class SpscRing {
  static_assert(std::is_nothrow_move_constructible_v<T>, "items move through the ring without failure paths");

 public:
  // The largest capacity accepted: far beyond any sane cross-shard queue, small enough that
  // rounding up cannot overflow.
  static constexpr size_t kCapacityMax = size_t{1} << 32;

  // `capacity` is rounded up to a power of two and fixed for the ring's life.
  explicit SpscRing(size_t capacity)
      : capacity_(rounded_capacity(capacity)), mask_(capacity_ - 1), slots_(allocator().allocate(capacity_)) {
    COREMQ_ASSERT(std::has_single_bit(capacity_));
    COREMQ_ASSERT(capacity_ >= capacity);
  }

  ~SpscRing() {
    size_t head = consumer_.head.load(std::memory_order_acquire);
    size_t tail = producer_.tail.load(std::memory_order_acquire);
    for (; head != tail; head++) std::destroy_at(slot(head));
    allocator().deallocate(slots_, capacity_);
  }

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  // Producer only. Returns false, leaving `value` untouched, when the ring is full; the
  // caller keeps the item staged and retries later (a full ring is flow control, not a bug).
  [[nodiscard]] bool try_push(T&& value) {
    size_t tail = producer_.tail.load(std::memory_order_relaxed);
    if (tail - producer_.cached_head == capacity_) {
      producer_.cached_head = consumer_.head.load(std::memory_order_acquire);
      if (tail - producer_.cached_head == capacity_) return false;
    }
    std::construct_at(slot(tail), std::move(value));
    producer_.tail.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Producer only. Moves items from [first, last) into the ring until it is full and
  // publishes them with one store. Returns how many were taken: the first n of the range are
  // moved-from, the rest are untouched.
  template <typename It>
  size_t try_push_batch(It first, It last) {
    size_t tail = producer_.tail.load(std::memory_order_relaxed);
    size_t free_slots = capacity_ - (tail - producer_.cached_head);
    size_t pushed = 0;
    for (; first != last; ++first) {
      if (pushed == free_slots) {
        // Look at the consumer's progress only once the cached view is used up.
        producer_.cached_head = consumer_.head.load(std::memory_order_acquire);
        free_slots = capacity_ - (tail - producer_.cached_head);
        if (pushed == free_slots) break;
      }
      std::construct_at(slot(tail + pushed), std::move(*first));
      pushed++;
    }
    if (pushed > 0) producer_.tail.store(tail + pushed, std::memory_order_release);
    COREMQ_ASSERT(pushed <= capacity_);
    return pushed;
  }

  // Consumer only. Moves the oldest item into `out`; false when the ring is empty.
  [[nodiscard]] bool try_pop(T& out) {
    size_t head = consumer_.head.load(std::memory_order_relaxed);
    if (head == consumer_.cached_tail) {
      consumer_.cached_tail = producer_.tail.load(std::memory_order_acquire);
      if (head == consumer_.cached_tail) return false;
    }
    T* item = slot(head);
    out = std::move(*item);
    std::destroy_at(item);
    consumer_.head.store(head + 1, std::memory_order_release);
    return true;
  }

  // Consumer only. Calls consume(T&&) on up to `max_items` items, oldest first, then hands
  // all their slots back with one store. Returns how many were consumed. `consume` must not
  // touch this ring (the slots it sees are not released until drain returns).
  template <typename F>
  size_t drain(F&& consume, size_t max_items) {
    size_t head = consumer_.head.load(std::memory_order_relaxed);
    size_t available = consumer_.cached_tail - head;
    if (available < max_items) {
      consumer_.cached_tail = producer_.tail.load(std::memory_order_acquire);
      available = consumer_.cached_tail - head;
    }
    COREMQ_ASSERT(available <= capacity_);
    size_t count = available < max_items ? available : max_items;
    for (size_t i = 0; i < count; i++) {
      T* item = slot(head + i);
      consume(std::move(*item));
      std::destroy_at(item);
    }
    if (count > 0) consumer_.head.store(head + count, std::memory_order_release);
    return count;
  }

  size_t capacity() const { return capacity_; }

  // Any thread; a snapshot that may be stale on return. From the consumer, "false" is exact
  // in the sense that try_pop will then succeed. Its loads are acquire only: a consumer that
  // stores a "going to sleep" flag and then calls empty() must put a seq_cst fence between
  // the two (a store followed by a load of another variable is not otherwise ordered), and
  // the producer one between its push and its load of the flag (see Shard::enter_kernel).
  bool empty() const {
    return consumer_.head.load(std::memory_order_acquire) == producer_.tail.load(std::memory_order_acquire);
  }

  // Any thread; an estimate in [0, capacity()]. head is read first: it never passes tail, so
  // the difference cannot go negative, though it can overshoot while the consumer moves on.
  size_t size_approx() const {
    size_t head = consumer_.head.load(std::memory_order_acquire);
    size_t tail = producer_.tail.load(std::memory_order_acquire);
    size_t size = tail - head;
    return size < capacity_ ? size : capacity_;
  }

 private:
  static std::allocator<T> allocator() { return std::allocator<T>(); }
  static size_t rounded_capacity(size_t capacity) {
    COREMQ_ASSERT(capacity >= 1 && capacity <= kCapacityMax);  // checked before bit_ceil can overflow
    return std::bit_ceil(capacity);
  }
  T* slot(size_t index) const { return slots_ + (index & mask_); }

  // Read-only after construction and shared by both sides; its own line keeps the index
  // stores below from invalidating it.
  alignas(kCacheLineBytes) const size_t capacity_;
  const size_t mask_;
  T* const slots_;

  // Written by the producer; the consumer reads `tail` only when its cached copy runs dry.
  struct alignas(kCacheLineBytes) ProducerSide {
    std::atomic<size_t> tail{0};
    size_t cached_head = 0;  // the producer's last view of consumer_.head
  } producer_;

  // Written by the consumer; the producer reads `head` only when its cached copy looks full.
  struct alignas(kCacheLineBytes) ConsumerSide {
    std::atomic<size_t> head{0};
    size_t cached_tail = 0;  // the consumer's last view of producer_.tail
  } consumer_;
};

}  // namespace coremq::base
