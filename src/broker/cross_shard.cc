// Releasing what a cross-shard item owns, for items that will never be handled: those
// still in the rings or staging vectors when the broker stops. Any thread that owns the
// item (after the shards have stopped: the controlling thread).
#include "broker/cross_shard.h"

#include <unistd.h>

#include <memory>

#include "base/assert.h"

namespace coremq::broker {

void release_cross_shard_item(CrossShardItem item) {
  switch (item.kind) {
    case CrossShardItem::Kind::kPublish:
    case CrossShardItem::Kind::kRetainUpdate:
      static_cast<Message*>(item.pointer)->drop_reference();
      return;
    case CrossShardItem::Kind::kInterestAdd:
    case CrossShardItem::Kind::kInterestRemove:
      delete static_cast<InterestChange*>(item.pointer);
      return;
    case CrossShardItem::Kind::kAdoptConnection: {
      std::unique_ptr<ConnectionHandoff> handoff(static_cast<ConnectionHandoff*>(item.pointer));
      if (handoff->fd >= 0) ::close(handoff->fd);
      return;
    }
    case CrossShardItem::Kind::kSharedPublish:
      delete static_cast<SharedDelivery*>(item.pointer);
      return;
    case CrossShardItem::Kind::kBarrierRequest:
    case CrossShardItem::Kind::kBarrierAck:
      return;  // a number: nothing owned
  }
  COREMQ_ASSERT_MSG(false, "unknown cross-shard item kind");
}

}  // namespace coremq::broker
