// The hook an embedding program implements to decide, in process, what each client may
// publish, subscribe to and receive, next to (after) the listeners' ACL files: a message or
// filter goes through only if the ACL file (when its listener has one) and the hook both allow
// it. Set it in Options::authorization_hook; without one, only ACL files decide.
//
// What a refusal does, as for an ACL file: a PUBLISH (or a will) is dropped, and QoS 1/2 is
// acknowledged (MQTT 5 with 0x87 Not authorized); a SUBSCRIBE filter gets 0x80 (3.1.1) / 0x87
// (MQTT 5); a delivery is skipped for that subscriber (a shared group passes the message to
// another member on that shard). The hook also sees the host's own in-process clients
// (Broker::connect_local), which answer to no listener's ACL file.
//
// Threads: called on shard threads, several at once, with no lock held: implementations must be
// thread-safe and must not block (allow_receive runs once per delivery, on the publish path).
// The views are valid during the call only.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "coremq/async_hooks.h"

namespace coremq {

struct ClientIdentity {
  std::string_view client_id;
  // The CONNECT's username, or the client certificate's name on a listener that takes usernames
  // from certificates; none for an anonymous client.
  std::optional<std::string_view> username;
  // Index of the listener the client connected through (Options::listeners); in-process
  // clients: in_process is true.
  uint8_t listener = 0;
  bool in_process = false;
};

class AuthorizationHook {
 public:
  virtual ~AuthorizationHook() = default;
  // A PUBLISH from the client, or its will when it goes out.
  virtual bool allow_publish(const ClientIdentity& client, std::string_view topic, uint8_t qos, bool retain) = 0;
  // One filter of a SUBSCRIBE (for $share/GROUP/FILTER: the FILTER part).
  virtual bool allow_subscribe(const ClientIdentity& client, std::string_view filter, uint8_t qos) = 0;
  // A message about to be delivered to the client (live, queued, retained or shared).
  virtual bool allow_receive(const ClientIdentity& client, std::string_view topic) = 0;

  // The forms the broker calls for a client's PUBLISH and for each SUBSCRIBE filter. Their
  // default asks allow_publish / allow_subscribe; a hook that must answer later overrides
  // them, calls deferral.defer() and returns kDefer, then answers through the handle
  // (include/coremq/async_hooks.h: the client's input waits meanwhile, bounded by
  // Options::hook_timeout_ms). Wills are decided by allow_publish alone (nothing waits for
  // them).
  enum class Decision : uint8_t { kAllow, kDeny, kDefer };
  virtual Decision decide_publish(const ClientIdentity& client, std::string_view topic, uint8_t qos, bool retain,
                                  HookDeferral& /*deferral*/) {
    return allow_publish(client, topic, qos, retain) ? Decision::kAllow : Decision::kDeny;
  }
  virtual Decision decide_subscribe(const ClientIdentity& client, std::string_view filter, uint8_t qos,
                                    HookDeferral& /*deferral*/) {
    return allow_subscribe(client, filter, qos) ? Decision::kAllow : Decision::kDeny;
  }
};

}  // namespace coremq
