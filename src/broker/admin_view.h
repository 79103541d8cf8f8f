// What the admin API (src/admin/api.cc) reads of and does to one shard's clients, sessions
// and retained copy. Filled on the shard's own thread by ShardState::admin_* (admin_view.cc),
// called from a ShardAccess callback; the admin thread only ever sees these copies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace coremq::broker {

struct SubscriptionView {
  std::string client_id;
  std::string filter;  // shared subscriptions keep their "$share/group/filter" text
  uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;
  uint32_t identifier = 0;
};

struct ClientView {
  std::string client_id;
  uint32_t shard = 0;
  bool connected = false;
  // Connected clients: the peer's "address:port" ("in-process" for a LocalClient), the MQTT
  // protocol level (3, 4, 5), the listener index and the keep-alive in force.
  std::string address;
  uint8_t protocol_level = 0;
  uint8_t listener = 0;
  uint16_t keep_alive_seconds = 0;
  std::optional<std::string> username;
  uint32_t session_expiry_seconds = 0;  // 4294967295: never
  uint64_t subscription_count = 0;
  uint64_t queued = 0;                          // messages waiting for the client
  uint64_t inflight = 0;                        // QoS 1/2 messages sent and not yet acknowledged
  std::vector<SubscriptionView> subscriptions;  // only for one client's detail
};

struct ClientQuery {
  std::string after;      // paging cursor: ids strictly greater than this
  std::string id_prefix;  // empty: any
  std::optional<std::string> username;
  uint32_t limit = 100;
};

struct RetainedView {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
};

// What DELETE /api/v1/clients/{id} did: the client was connected (and was disconnected) or
// offline, and its session was ended or kept.
struct AdminDisconnect {
  bool found = false;
  bool was_connected = false;
  bool session_ended = false;
};

}  // namespace coremq::broker
