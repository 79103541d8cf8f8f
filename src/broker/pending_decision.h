// Asynchronous hook decisions on the protocol side (include/coremq/async_hooks.h): the answer
// a host thread sends back (HookAnswer, carried to the shard by src/shard/hook_channel.h), and
// what a connection keeps while one is pending (PendingDecision): the packet that asked, so it
// can be handled again, from the start, once the answer is in, with the answers gathered so
// far (a PUBLISH may ask the authorization hook and then the interceptor; a SUBSCRIBE asks for
// each filter in turn and keeps what earlier filters got).
// Shard thread only, except HookAnswer, which is built on a host thread and moved through the ring.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/byte_buffer.h"
#include "coremq/interception.h"
#include "mqtt/packet.h"

namespace coremq::broker {

struct HookAnswer {
  enum class Kind : uint8_t {
    kNone,
    kAllow,       // allowed / pass (with `rewrite` when set) / authentication succeeded (`data`)
    kContinue,    // authentication goes on: AUTH Continue authentication with `data`
    kDeny,        // refused / dropped with reason_code
    kDisconnect,  // interception: end the client with reason_code
    kTimedOut,    // not answered in time, or the handle was destroyed unanswered
    kBusy,        // never sent: the shard could not wait for one more decision
  };
  uint64_t token = 0;
  uint32_t index = 0;
  Kind kind = Kind::kNone;
  uint8_t reason_code = 0;
  std::unique_ptr<MessageRewrite> rewrite;
  std::string data;  // authentication: the step's Authentication Data
};

struct PendingDecision {
  // What the outstanding question is.
  // kAuthentication is never handled again: its answer is applied as the step it stands for
  // (the CONNECT waits in Connection::authentication, as for a Continue step).
  enum class Stage : uint8_t { kNone, kPublishAuthorization, kInterception, kSubscribe, kAuthentication };
  uint64_t token = 0;  // 0 while no question is outstanding (replaying)
  Stage waiting = Stage::kNone;
  int64_t deadline_ms = 0;
  // The packet, handled again once the answer is in.
  mqtt::PacketType type = mqtt::PacketType::kPublish;
  uint8_t flags = 0;
  base::ByteBuffer body;
  // PUBLISH: the answers so far.
  std::optional<HookAnswer> publish_authorization;
  std::optional<HookAnswer> interception;
  // SUBSCRIBE: the reason codes and "existed" flags of the filters before next_filter, and
  // the answer for next_filter.
  uint32_t next_filter = 0;
  std::vector<uint8_t> subscribe_results;
  std::vector<bool> subscribe_existed;
  std::optional<HookAnswer> subscribe_answer;
};

}  // namespace coremq::broker
