// What shards tell each other through the per-pair SPSC rings. An item is two words
// so a batch of them moves through a ring with a few cache lines; anything bigger
// travels by pointer, and ownership of the pointee passes with the item (the
// receiver frees it, or for a Message drops the reference it was given).
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "base/byte_buffer.h"
#include "broker/message.h"
#include "transport/channel.h"

namespace coremq::broker {

// A connection whose CONNECT named a client id owned by another shard: the socket and
// every byte read from it so far (the CONNECT itself and whatever followed).
struct ConnectionHandoff {
  int fd = -1;
  uint8_t listener = 0;
  int64_t accepted_at_ms = 0;
  // Already decoded by the channel's transport (if any), which moves along with it.
  base::ByteBuffer input;
  std::unique_ptr<transport::Channel> channel;
};

// A filter that became (or stopped being) subscribed on the sending shard.
struct InterestChange {
  std::string filter;
};

// A message for one member of a shared subscription group on the receiving shard.
struct SharedDelivery {
  MessageRef message;
  std::string group_key;
  uint32_t hops = 0;  // re-forwards when the chosen shard's members just left
};

struct CrossShardItem {
  enum class Kind : uint8_t {
    kPublish,          // pointer: Message*, one reference owned by the item
    kRetainUpdate,     // pointer: Message*: store (or clear) it as the topic's retained message
    kInterestAdd,      // pointer: InterestChange*
    kInterestRemove,   // pointer: InterestChange*
    kAdoptConnection,  // pointer: ConnectionHandoff*
    kSharedPublish,    // pointer: SharedDelivery*
    // The cross-shard barrier (ShardState::wait_for_peers): "tell me when you have applied
    // everything I posted up to `sequence`". Rings are FIFO, so a peer that handles the
    // request has applied every change posted before it, and answers with kBarrierAck.
    kBarrierRequest,   // sequence: the sender's change sequence number to confirm
    kBarrierAck,       // sequence: the requester's number, now applied by from_shard
  };
  CrossShardItem() = default;
  // A constructor rather than brace elision into the union (clang asks for braces there).
  CrossShardItem(Kind item_kind, uint32_t sender, void* owned = nullptr)
      : kind(item_kind), from_shard(sender), pointer(owned) {}

  Kind kind = Kind::kPublish;
  uint32_t from_shard = 0;
  // A barrier item carries a number, not an object: no allocation, and the item stays two
  // words. Which member is live follows from `kind`.
  union {
    void* pointer = nullptr;
    uint64_t sequence;
  };
};
static_assert(sizeof(CrossShardItem) == 16, "a cross-shard item is two words");
static_assert(std::is_trivially_copyable_v<CrossShardItem>, "items are copied through the rings");

// Frees what an item owns (drops a message reference, closes a handed-off socket)
// without handling it: for items left over when the broker stops.
void release_cross_shard_item(CrossShardItem item);

}  // namespace coremq::broker
