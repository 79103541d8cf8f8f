// A double-ended queue on one circular array that allocates nothing until the first
// push. std::deque allocates a map and a 512-byte block even when empty, which an
// idle session (two queues each) cannot afford when a shard holds a million of them.
// Single-threaded. Elements are addressed by position from the front: 0 .. size()-1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <utility>

#include "base/assert.h"

namespace coremq::base {

template <typename T>
class RingDeque {
 public:
  RingDeque() = default;
  RingDeque(const RingDeque&) = delete;
  RingDeque& operator=(const RingDeque&) = delete;
  ~RingDeque() {
    clear();
    ::operator delete(slots_);
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  T& operator[](size_t position) {
    COREMQ_ASSERT(position < size_);
    return slots_[(head_ + position) & (capacity_ - 1)];
  }
  const T& operator[](size_t position) const {
    COREMQ_ASSERT(position < size_);
    return slots_[(head_ + position) & (capacity_ - 1)];
  }
  T& front() { return (*this)[0]; }
  T& back() { return (*this)[size_ - 1]; }

  void push_back(T value) {
    if (size_ == capacity_) grow();
    new (&slots_[(head_ + size_) & (capacity_ - 1)]) T(std::move(value));
    ++size_;
  }

  void pop_front() {
    COREMQ_ASSERT(size_ > 0);
    slots_[head_].~T();
    head_ = (head_ + 1) & (capacity_ - 1);
    --size_;
    if (size_ == 0) release_if_large();
  }

  // Removes the element at `position`, keeping the order of the others.
  void erase(size_t position) {
    COREMQ_ASSERT(position < size_);
    if (position == 0) {
      pop_front();
      return;
    }
    for (size_t i = position; i + 1 < size_; ++i) (*this)[i] = std::move((*this)[i + 1]);
    (*this)[size_ - 1].~T();
    --size_;
  }

  void clear() {
    while (size_ > 0) pop_front();
  }

 private:
  void grow() {
    COREMQ_ASSERT(capacity_ < (uint32_t{1} << 31));
    uint32_t grown = capacity_ == 0 ? 4 : capacity_ * 2;
    T* fresh = static_cast<T*>(::operator new(grown * sizeof(T)));
    for (size_t i = 0; i < size_; ++i) {
      T& old = (*this)[i];
      new (&fresh[i]) T(std::move(old));
      old.~T();
    }
    ::operator delete(slots_);
    slots_ = fresh;
    capacity_ = grown;
    head_ = 0;
  }

  // A queue that once held a burst gives the memory back when it empties.
  void release_if_large() {
    if (capacity_ <= 16) return;
    ::operator delete(slots_);
    slots_ = nullptr;
    capacity_ = 0;
    head_ = 0;
  }

  // 32-bit positions keep the deque at 24 bytes; a session holds two.
  T* slots_ = nullptr;
  uint32_t capacity_ = 0;  // 0 or a power of two
  uint32_t head_ = 0;
  uint32_t size_ = 0;
};

}  // namespace coremq::base
