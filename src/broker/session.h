// The state MQTT keeps per client id: subscriptions, the QoS 1/2 exchanges in each
// direction, messages waiting for the client, and the will. A session lives on its
// client id's owner shard for its whole life (so takeover and packet-id state never
// cross threads) and outlives connections when clean session is 0.
// Owned by ShardState's session map; single-threaded.
#pragma once

#include <cstdint>
#include <string>

#include "base/ring_deque.h"
#include "base/string_map.h"
#include "absl/container/flat_hash_set.h"
#include "broker/message.h"

namespace coremq::broker {

struct Connection;

// A QoS 1/2 message sent to the client and not yet fully acknowledged.
struct OutgoingInflight {
  uint16_t packet_id = 0;
  uint8_t qos = 0;
  bool pubrec_received = false;  // QoS 2: PUBREL sent, waiting for PUBCOMP
  bool retain_flag = false;      // as first sent: 1 only for a retained message sent on subscribe
  MessageRef message;
};

// A message waiting for the client: offline, or behind a full in-flight window.
struct QueuedDelivery {
  uint8_t qos = 0;
  bool retain_flag = false;
  MessageRef message;
};

struct WillMessage {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
};

struct Session {
  std::string client_id;
  Connection* connection = nullptr;
  bool clean_session = true;
  bool has_will = false;
  WillMessage will;

  // filter -> granted QoS; mirrors this session's entries in the shard's topic tree.
  base::StringMap<uint8_t> subscriptions;

  uint16_t last_packet_id = 0;
  base::RingDeque<OutgoingInflight> inflight;  // in send order, for redelivery in order
  base::RingDeque<QueuedDelivery> queue;
  uint32_t queued_qos0 = 0;
  // QoS 2 packet ids received from the client whose PUBREL has not come yet.
  absl::flat_hash_set<uint16_t> incoming_qos2;

  // Scratch used while one message is matched, to deliver once per session at the
  // highest matching QoS without a set allocation.
  uint64_t match_epoch = 0;
  uint32_t match_slot = 0;
};

}  // namespace coremq::broker
