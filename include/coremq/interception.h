// The hook an embedding program implements to see, and change or stop, every PUBLISH that
// enters the broker from a client: network clients and the host's own in-process clients
// (Broker::connect_local) alike. Wills and the broker's own messages are not intercepted.
// Set it in Options::message_interceptor; without one the publish path pays one branch.
//
// Order: a PUBLISH is decoded and checked (topic, QoS, topic alias), then the listener's ACL
// file and the authorization hook decide; only a message they allow reaches the interceptor,
// before it is routed or retained. A QoS 2 message is intercepted once, on its first PUBLISH
// (a resend of the same packet id before PUBREL is only acknowledged again).
//
// Verdicts, as Mosquitto's MOSQ_EVT_MESSAGE plugins return them:
// - kPass: the message goes on, changed as the rewrite says (nothing set: unchanged).
// - kDrop: the message is dropped; its QoS flow still ends normally for the publisher, as
//   for an ACL refusal: MQTT 5 QoS 1/2 get `reason_code` in PUBACK/PUBREC (0x80 Unspecified
//   error, 0x83 Implementation specific error, 0x87 Not authorized, 0x90 Topic Name invalid,
//   0x97 Quota exceeded, 0x99 Payload format invalid; any other code becomes 0x80); MQTT
//   3.1.1 has no reason code, so QoS 1/2 are acknowledged as if delivered (Mosquitto's
//   MOSQ_ERR_ACL_DENIED does the same).
// - kDisconnect: the client is disconnected (MQTT 5: DISCONNECT with `reason_code`, 0x80 by
//   default; Mosquitto ends the client for any other plugin error) and its will published.
//
// A rewritten topic is checked as a client's would be (not empty, valid UTF-8, no '+' or
// '#', no more than Options::max_topic_levels levels, at most 65535 bytes); a rewrite that
// fails is a bug of the host: the message is dropped with 0x83, counted
// (interceptor_rewrites_invalid) and logged.
//
// - kDefer: answered later (include/coremq/async_hooks.h): the hook called deferral.defer()
//   and answers through that handle from any thread (allow() passes unchanged, deny(code)
//   drops, complete(verdict, rewrite) says everything). Only this client's input waits,
//   bounded by Options::hook_timeout_ms (then the message is dropped with 0x80) and
//   Options::max_pending_hook_decisions (past it: dropped with 0x97 Quota exceeded).
//
// Threads: called on the shard thread that received the PUBLISH, several shards at once,
// with no lock held: implementations must be thread-safe and must not block (every client of
// that shard waits while it runs); a slow decision is deferred. The views of
// InterceptedMessage are valid during the call only (copy what a deferred decision needs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "coremq/async_hooks.h"
#include "coremq/authorization.h"
#include "coremq/local_client.h"

namespace coremq {

// The MQTT 5 user properties of an InterceptedMessage, in order (a name may repeat). A view
// (the headers stay C++17, so no std::span): valid during the call only.
struct UserPropertiesView {
  using Entry = std::pair<std::string_view, std::string_view>;
  const Entry* entries = nullptr;
  size_t count = 0;
  const Entry* begin() const { return entries; }
  const Entry* end() const { return entries + count; }
  size_t size() const { return count; }
  bool empty() const { return count == 0; }
  const Entry& operator[](size_t index) const { return entries[index]; }
};

// A PUBLISH as the broker received it. MQTT 3.1/3.1.1 messages have no properties.
struct InterceptedMessage {
  ClientIdentity client;
  uint8_t protocol_version = 5;  // 3 (3.1), 4 (3.1.1) or 5
  std::string_view topic;        // the aliased topic resolved
  std::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
  std::optional<uint8_t> payload_format_indicator;
  std::optional<uint32_t> message_expiry_interval_seconds;
  std::optional<std::string_view> content_type;
  std::optional<std::string_view> response_topic;
  std::optional<std::string_view> correlation_data;
  UserPropertiesView user_properties;
};

// What the interceptor changes, filled in place. The broker hands the same object (reset, its
// strings' capacity kept) to every call on a shard, so a pass costs no allocation and a
// rewrite allocates only what the host writes.
struct MessageRewrite {
  std::optional<std::string> topic;
  std::optional<std::string> payload;
  // Replaces every MQTT 5 property of the message (the expiry restarts from now); subscribers
  // on MQTT 3.1.1 never see properties.
  std::optional<MessageProperties> properties;
  void reset() {
    topic.reset();
    payload.reset();
    properties.reset();
  }
  bool empty() const { return !topic && !payload && !properties; }
};

struct InterceptionVerdict {
  enum class Action : uint8_t { kPass, kDrop, kDisconnect, kDefer };
  Action action = Action::kPass;
  // kDrop: what an MQTT 5 publisher's PUBACK/PUBREC says; kDisconnect: the DISCONNECT's reason.
  uint8_t reason_code = 0x80;

  static InterceptionVerdict pass() { return {}; }
  static InterceptionVerdict drop(uint8_t reason = 0x87) { return {Action::kDrop, reason}; }
  static InterceptionVerdict disconnect(uint8_t reason = 0x80) { return {Action::kDisconnect, reason}; }
  // After deferral.defer(): the answer comes through the handle.
  static InterceptionVerdict defer() { return {Action::kDefer, 0}; }
};

class MessageInterceptor {
 public:
  virtual ~MessageInterceptor() = default;
  // Every PUBLISH the client's ACL and the authorization hook allowed. `rewrite` is empty on
  // entry; what the call sets in it applies when it returns kPass (ignored otherwise).
  virtual InterceptionVerdict on_publish(const InterceptedMessage& message, MessageRewrite& rewrite,
                                         HookDeferral& deferral) = 0;
};

}  // namespace coremq
