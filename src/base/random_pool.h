// Unguessable bytes for one thread, from the kernel's CSPRNG (getrandom(2)) read in
// batches, so that a caller needing a few bytes at a time (an assigned client id takes 16)
// pays one syscall per batch and no lock. The bytes are as unpredictable as the kernel's:
// unlike a user-space generator seeded once, nothing seen of earlier output helps guess the
// next. Not thread-safe: one per shard, touched only by that shard's thread.
#pragma once

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "base/assert.h"

namespace coremq::base {

class RandomPool {
 public:
  void fill(std::span<uint8_t> out) {
    size_t done = 0;
    while (done < out.size()) {
      if (position_ == pool_.size()) refill();
      size_t count = std::min(out.size() - done, pool_.size() - position_);
      std::memcpy(out.data() + done, pool_.data() + position_, count);
      // Handed-out bytes are not kept: a later look at this memory shows no past id.
      std::memset(pool_.data() + position_, 0, count);
      position_ += count;
      done += count;
    }
  }

 private:
  void refill() {
    // getrandom(2): once the kernel's pool is initialised (it blocks until then), a read
    // of up to 256 bytes always returns them all and is never interrupted by a signal.
    // So a failure here (ENOSYS before Linux 3.17, EFAULT) is not an operating condition
    // to handle but a broken assumption, and it asserts.
    static_assert(kPoolBytes % kReadBytes == 0);
    for (size_t offset = 0; offset < pool_.size(); offset += kReadBytes) {
      ssize_t got = getrandom(pool_.data() + offset, kReadBytes, 0);
      COREMQ_ASSERT_MSG(got == static_cast<ssize_t>(kReadBytes), "getrandom failed");
    }
    position_ = 0;
  }

  static constexpr size_t kReadBytes = 256;
  static constexpr size_t kPoolBytes = 1024;  // 64 assigned ids per refill
  std::array<uint8_t, kPoolBytes> pool_{};
  size_t position_ = kPoolBytes;  // empty: the first use fills it
};

}  // namespace coremq::base
