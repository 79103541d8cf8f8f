// SequenceTracker: what one subscriber has seen of one publisher's sequence numbers, to count
// duplicates and out-of-order arrivals exactly and loss either exactly (`run`: against what
// the publisher sent) or as unfilled gaps (`sub`: the publisher is in another process).
// Constant memory per pair: the 64 sequences behind the highest seen are remembered bit by
// bit; an arrival older than that is counted as reordered (it cannot be told from a
// duplicate, which on a single connection without reconnects is the rarer of the two).
// Owned by the subscriber's thread.
#pragma once

#include <cstdint>

#include "base/assert.h"

namespace coremq::bench {

struct SequenceTracker {
  uint64_t next = 0;         // one past the highest sequence seen
  uint64_t seen_behind = 0;  // bit i set: sequence next-1-i has arrived
  uint64_t received = 0;
  uint64_t duplicates = 0;
  uint64_t reordered = 0;    // arrived after a higher sequence from the same publisher
  uint64_t gaps = 0;         // sequences skipped and not filled since

  uint64_t unique() const { return received - duplicates; }

  // Returns false for a duplicate.
  bool on_sequence(uint64_t sequence) {
    received++;
    if (sequence >= next) {
      uint64_t shift = sequence - next + 1;
      gaps += shift - 1;
      seen_behind = shift >= 64 ? 0 : seen_behind << shift;
      seen_behind |= 1;
      next = sequence + 1;
      return true;
    }
    uint64_t distance = next - 1 - sequence;
    if (distance < 64) {
      uint64_t bit = uint64_t{1} << distance;
      if (seen_behind & bit) {
        duplicates++;
        return false;
      }
      seen_behind |= bit;
    }
    COREMQ_ASSERT(gaps > 0 || distance >= 64);
    if (gaps == 0) {  // beyond the remembered window and nothing missing: it was a duplicate
      duplicates++;
      return false;
    }
    gaps--;
    reordered++;
    return true;
  }
};

}  // namespace coremq::bench
