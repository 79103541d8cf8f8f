// The hook an embedding program implements to be told what happens to clients, their
// subscriptions and their messages: connected, disconnected (and why), a subscription added
// or removed, a message dropped (and why). Set it in Options::event_hook; without one each
// place that could report pays one branch. Every method has an empty default, so a host
// overrides only what it wants.
//
// Threads: called on shard threads, several shards at once, with no lock held:
// implementations must be thread-safe and must NOT block, not even briefly (a lock another
// thread holds for long, a file write, a network call): every client of that shard waits while
// one runs, and on_message_dropped can run once per message under overload. Copy what you
// need into a queue of your own and return. Debug builds time each call and count those over
// 1 ms (counter event_hook_slow) with a log line. The views are valid during the call only.
//
// Each event is reported once, on the shard that owns the client's session:
// on_client_connected after the CONNACK that accepts the client, on_client_disconnected once
// for each connected client that goes (never for a connection refused before its CONNACK),
// subscription events for each filter of a SUBSCRIBE the broker granted or each filter an
// UNSUBSCRIBE removed (not for subscriptions ending with their session), and a dropped message
// for each message not delivered to a client for one of the DropReason reasons (one event per
// subscriber that misses it, or one for the publisher for kAuthorization and kInterceptor).
#pragma once

#include <cstdint>
#include <string_view>

#include "coremq/authorization.h"

#ifndef COREMQ_API
#define COREMQ_API __attribute__((visibility("default")))
#endif

namespace coremq {

struct ClientConnectedEvent {
  ClientIdentity client;
  // The peer's numeric address and port ("192.0.2.1:50123", "[2001:db8::1]:50123"); empty
  // for in-process clients.
  std::string_view address;
  uint8_t protocol_version = 4;  // 3 (3.1), 4 (3.1.1) or 5
  bool clean_start = true;
  bool session_present = false;
  uint16_t keep_alive_seconds = 0;  // as granted
};

enum class DisconnectReason : uint8_t {
  kClientDisconnect,  // the client sent DISCONNECT (reason_code is its code; 3.1.1: 0)
  kConnectionLost,    // the socket closed (or reset) without a DISCONNECT
  kKeepAliveTimeout,  // nothing from the client for 1.5 times its keep-alive
  kProtocolError,     // the client broke a rule; reason_code is the DISCONNECT's (0x81 ...)
  kTakenOver,         // a new connection with the same client id took the session
  kShutdown,          // the broker stopped
  kSlowConsumer,      // it did not read what it was sent (twice --max-client-output-bytes)
  kTransportError,    // its TLS or WebSocket layer refused what it sent
  kAuthentication,    // an MQTT 5 re-authentication failed
  kAdministrative,    // closed by the host: the message interceptor's kDisconnect, or the admin API
                      // (DELETE /api/v1/clients/{id})
};
COREMQ_API const char* disconnect_reason_name(DisconnectReason reason);

struct ClientDisconnectedEvent {
  ClientIdentity client;
  DisconnectReason reason = DisconnectReason::kConnectionLost;
  // The MQTT 5 reason code of the DISCONNECT the client sent, or the one that names the
  // broker's cause (0x8D keep-alive, 0x8E taken over, 0x8B shutdown, the protocol error's ...)
  // also for MQTT 3.1.1 clients, which are not sent it; 0 when none (connection lost).
  uint8_t reason_code = 0;
  // The will is published (now or after its delay) because of this disconnect.
  bool will_published = false;
};

struct SubscriptionEvent {
  ClientIdentity client;
  // As the client wrote it ("$share/group/filter" for a shared subscription).
  std::string_view filter;
  // Added: the granted QoS and options; removed: zero.
  uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;
  uint32_t subscription_identifier = 0;
};

enum class DropReason : uint8_t {
  kQueueFull,           // the subscriber's queue was full (--max-queued-messages)
  kSlowConsumer,        // QoS 0 to a subscriber whose output is over --max-client-output-bytes
  kOffline,             // QoS 0 to a subscriber whose session is offline
  kAuthorization,       // the publisher's ACL or the authorization hook refused the PUBLISH
  kReceiveDenied,       // the subscriber's ACL or the authorization hook refused the delivery
  kInterceptor,         // the message interceptor dropped it (or its rewrite was invalid)
  kExpired,             // its Message Expiry Interval passed before it could be sent
  kOverClientMaximum,   // larger than the subscriber's Maximum Packet Size
};
COREMQ_API const char* drop_reason_name(DropReason reason);

struct MessageDroppedEvent {
  // The client that missed the message: the subscriber, or the publisher for kAuthorization
  // and kInterceptor.
  ClientIdentity client;
  std::string_view topic;
  uint8_t qos = 0;
  DropReason reason = DropReason::kQueueFull;
};

class EventHook {
 public:
  virtual ~EventHook() = default;
  virtual void on_client_connected(const ClientConnectedEvent&) {}
  virtual void on_client_disconnected(const ClientDisconnectedEvent&) {}
  virtual void on_subscription_added(const SubscriptionEvent&) {}
  virtual void on_subscription_removed(const SubscriptionEvent&) {}
  virtual void on_message_dropped(const MessageDroppedEvent&) {}
};

}  // namespace coremq
