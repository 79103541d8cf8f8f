// Everything that tunes a coremq broker. The library never reads command-line flags:
// an embedding program fills this struct; the coremq binary fills it from its flags.
// Every bound the broker enforces lives here, so each one has a name and a default.
#pragma once

#include <cstdint>
#include <string>

namespace coremq {

struct Options {
  // Where to listen. port 0 asks the kernel for a free port (see Broker::port()).
  std::string bind_address = "0.0.0.0";
  uint16_t port = 1883;

  // Number of shards (event-loop threads); 0 means one per online CPU.
  uint32_t threads = 0;
  // Pin shard i to the i-th CPU this process may run on.
  bool pin_threads = true;

  // Connections the whole broker holds at once; more are accepted and closed at once.
  uint32_t max_connections = 100000;
  // Largest MQTT packet (fixed header included) accepted from a client.
  uint32_t max_packet_size = 1024 * 1024;
  // QoS 1/2 messages sent to one client and not yet acknowledged.
  uint32_t max_inflight = 64;
  // Messages waiting for one session beyond the in-flight window, online or offline.
  uint32_t max_queued_messages = 1000;
  // Bytes staged for one connection's socket; past this QoS 0 messages to it are dropped
  // and, past twice this, the connection is closed as a slow consumer.
  uint32_t max_client_output_bytes = 8 * 1024 * 1024;
  // Seconds a new connection may take to send CONNECT.
  uint32_t connect_timeout_seconds = 10;
  // Longest client id accepted (the spec allows 65535; most fleets use < 64).
  uint32_t max_client_id_length = 256;
  // Subscriptions one session may hold.
  uint32_t max_subscriptions_per_session = 1000;
  // Retained messages the broker keeps (each shard keeps a copy of the index).
  uint32_t max_retained_messages = 100000;
  // Persistent sessions (clean session 0) kept while their clients are offline, per shard.
  uint32_t max_sessions = 1000000;

  // io_uring sizing per shard.
  uint32_t ring_entries = 4096;
  uint32_t receive_buffer_size = 16384;
  uint32_t receive_buffer_count = 1024;
  // Messages one shard may have waiting in the queue to each other shard.
  uint32_t cross_shard_queue_capacity = 65536;

  // Log level name: debug, info, warning, error, none.
  std::string log_level = "info";
};

}  // namespace coremq
