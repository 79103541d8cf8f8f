// The way back from a host thread to a shard for asynchronous hook decisions
// (include/coremq/async_hooks.h): one bounded MPSC ring per shard (shard/local_intake.h's
// MpscRing, the in-process clients' intake design) that any host thread pushes a HookAnswer
// into, then wakes the shard. The shard drains it each turn (Shard::drain_hook_answers).
// Owned by its Shard and shared with every HookCompletion made for it, which may outlive the
// Broker: `shard` is cleared (under `mutex`, host side only) before the Shard is destroyed,
// and answers pushed after that are never read. The shard thread never takes the mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "broker/pending_decision.h"
#include "coremq/async_hooks.h"
#include "shard/local_intake.h"

namespace coremq::shard {
class Shard;
}

namespace coremq::internal {

struct HookChannel {
  explicit HookChannel(size_t capacity) : answers(capacity) {}
  // Any thread: pushes the answer and wakes the shard; a full ring drops it (counted; the
  // decision then times out).
  void push(broker::HookAnswer&& answer);

  shard::MpscRing<broker::HookAnswer> answers;
  std::mutex mutex;
  shard::Shard* shard = nullptr;  // null once the shard is gone
  std::atomic<uint64_t> answers_dropped{0};
};

struct HookChannelAccess {
  static HookCompletion make(std::shared_ptr<HookChannel> channel, uint64_t token, uint32_t index) {
    return HookCompletion(std::move(channel), token, index);
  }
  // Sends the handle's answer once and empties it.
  static void send(HookCompletion& completion, broker::HookAnswer::Kind kind, uint8_t reason_code,
                   std::unique_ptr<MessageRewrite> rewrite, std::string data = {});
};

}  // namespace coremq::internal
