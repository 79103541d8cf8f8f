// Where a record made by ShardJournal::create_tracked sits in its shard's open batch, kept by
// whoever made it (a queue entry, a stored body) so that a later change of the record finds it
// there without a lookup (store.h). A stale slot is harmless: every use checks that the batch
// is still open and that the op it names still holds that key as a new record.
#pragma once

#include <cstdint>

namespace coremq::persist {

struct JournalSlot {
  static constexpr uint32_t kNone = UINT32_MAX;
  // Not in the journal yet: the holder's shard writes the record when the open batch leaves
  // (ShardState::write_deferred_records), if the record is still needed then.
  static constexpr uint32_t kDeferred = UINT32_MAX - 1;
  uint32_t index = kNone;
  bool deferred() const { return index == kDeferred; }
};

}  // namespace coremq::persist
