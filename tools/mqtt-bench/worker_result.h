// WorkerResult: everything one worker measured and found, kept by the worker while it runs and
// handed to the main thread after join (no sharing while running). The main thread merges the
// results of all workers into the report.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "histogram.h"

namespace coremq::bench {

struct PublisherResult {
  uint32_t index = 0;
  uint64_t sent = 0;
  uint64_t unacknowledged = 0;  // QoS 1/2 in flight when the run ended
};

struct SubscriberResult {
  uint32_t index = 0;
  uint64_t received = 0;
  uint64_t unique = 0;
  uint64_t duplicates = 0;
  uint64_t reordered = 0;
  uint64_t gaps = 0;         // loss as seen from the sequence numbers alone
  uint64_t unexpected = 0;   // from a publisher whose topic its filter does not match (`run`)
  uint64_t foreign = 0;      // payload not from this run (another tool, a stale session)
  uint64_t shared_duplicates = 0;  // share group: a message another member of the group had too
  uint8_t granted_qos = 0;
};

struct WorkerResult {
  Histogram latency_ns;             // messages sent inside the measurement window
  Histogram ack_latency_ns;         // QoS 1/2: send to PUBACK/PUBREC, same window
  uint64_t sent = 0;
  uint64_t sent_in_window = 0;
  uint64_t received = 0;
  uint64_t received_in_window = 0;  // by send time: delivered messages that were sent in the window
  uint64_t acknowledged = 0;
  uint64_t expected_deliveries = 0;
  uint64_t connections_up = 0;
  uint64_t subscribed = 0;
  uint64_t publishers_done = 0;
  uint64_t subscribers_done = 0;
  uint64_t errors = 0;
  std::vector<std::string> error_messages;  // the first kErrorMessagesMax
  int64_t first_connect_ns = 0;
  int64_t last_connack_ns = 0;
  int64_t last_send_ns = 0;
  // Bounds hit (each counts one occurrence).
  uint64_t receive_buffers_exhausted = 0;  // multishot recv stopped on -ENOBUFS and was re-armed
  uint64_t publish_paused_staged_full = 0; // a publisher paused because kStagedBytesMax was staged
  uint64_t pings = 0;
  // Open loop: messages written more than --lag-threshold after their scheduled time, the
  // largest such lag, and messages still due when publishing ended (never written).
  uint64_t schedule_late = 0;
  int64_t schedule_lag_max_ns = 0;
  uint64_t schedule_unsent = 0;
  // MQTT 5: how many of each reason code came in CONNACK, PUBACK/PUBREC/PUBCOMP and a broker's
  // DISCONNECT; what the broker's CONNACK allowed; PUBLISH packets sent with the alias alone.
  std::array<uint64_t, 256> connack_reasons{};
  std::array<uint64_t, 256> ack_reasons{};
  std::array<uint64_t, 256> disconnect_reasons{};
  uint32_t server_topic_alias_maximum = 0;
  uint32_t server_receive_maximum = 0;
  uint64_t topic_alias_publishes = 0;
  uint64_t shared_untracked = 0;  // share group deliveries beyond kSharedTrackedBitsMax
  uint64_t payload_bytes_sent = 0;
  uint64_t reconnects = 0;        // --reconnect-every: connections closed and opened again (CONNACK seen)
  // --tls: handshakes completed, how many resumed a kept session, and what the first one
  // negotiated ("TLSv1.3 TLS_AES_256_GCM_SHA384").
  uint64_t tls_handshakes = 0;
  uint64_t tls_resumed = 0;
  std::string tls_protocol;
  std::vector<PublisherResult> publishers;
  std::vector<SubscriberResult> subscribers;
};

}  // namespace coremq::bench
