// How a thread other than the shards' (the admin API, $SYS, metrics) reads or changes shard
// state: it runs a callback on each shard's own thread, through the shard's control ring, and
// waits for the answers. Nothing else of a shard is ever touched from outside.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace coremq::shard {

class Shard;

class ShardAccess {
 public:
  virtual ~ShardAccess() = default;

  virtual uint32_t shard_count() const = 0;

  // Runs `visit(shard)` on every shard's thread at its next turn and waits until all of them
  // ran it or `timeout` passed; returns how many ran it in time. `visit` runs concurrently on
  // different shards and may still run on a late shard after this returns, so what it writes
  // must be per shard and owned by the callback (a shared_ptr it captured). It must not block.
  virtual uint32_t run_on_each_shard(const std::function<void(Shard&)>& visit, std::chrono::milliseconds timeout) = 0;

  // The same for one shard; false if it did not run in time (or the shard does not exist).
  virtual bool run_on_shard(uint32_t shard, const std::function<void(Shard&)>& visit,
                            std::chrono::milliseconds timeout) = 0;
};

}  // namespace coremq::shard
