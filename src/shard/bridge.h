// One bridge (docs/BRIDGING.md): an outbound MQTT client to a remote broker that lives inside the
// loop of the shard owning its local client id, never on a thread of its own.
//
// Two sides, both on this shard's thread:
// - Local: an in-process Connection (Connection::in_process, MQTT 5) fed encoded packets, so the
//   broker treats the bridge as a client: it subscribes to the out filters with No Local (what it
//   publishes itself never comes back to it) and Retain As Published; messages from other shards
//   reach it over the rings like any delivery. What the remote sends on the in filters is
//   published through it, as if by a local client, and routed like any publish.
// - Remote: a socket connected with IORING_OP_CONNECT on this shard's ring, read into the
//   bridge's own buffer and written with one send in flight, speaking MQTT 3.1.1 (with the
//   bridge bit when try_private) or 5.0 through the same codec (src/mqtt) as inbound clients,
//   through the shared TLS client transport (src/transport/tls_client_transport.h) when the
//   bridge has TLS options.
//
// Store and forward: outbound messages wait in `queue_` (bounded by max_queued_messages) while
// the remote is down or slow and go out in order, at most max_inflight QoS 1/2 unacknowledged.
// QoS 0 past the bound is dropped and counted. Two ways to acknowledge a QoS 1/2 message to the
// local session:
// - In memory (no persistence): once it is in the queue; past the bound its acknowledgement waits
//   (so the broker keeps it in the bridge's session, where its own --max-queued-messages bound and
//   counters apply). A crash of this broker loses what the queue held.
// - Durable (BridgeSetup::durable, --persistence): the local session is persistent (clean start
//   0, expiry never, Receive Maximum max_queued_messages, exempt from --max-inflight) and a
//   message is acknowledged to it only once the remote acknowledged it: PUBACK on the remote's
//   PUBACK; PUBREC on the remote's PUBREC, the remote's PUBREL only after the local PUBREL (whose
//   record is durable by then), PUBCOMP on the remote's PUBCOMP. Until then the message is in the
//   session's in-flight window, which the store keeps; a restarted broker resends it with DUP
//   when the bridge's local side reconnects at start. The remote packet id IS the local one
//   (unique: the remote's in flight is a subset of the local session's), so no mapping has to
//   survive a crash, and a QoS 2 resend reaches a persistent remote session with the id it
//   already holds, which it recognises as a duplicate.
//
// Lifetime: made by the Shard at set-up from a BridgeSetup, lives until the Shard is destroyed.
// Its operation records are fields, so a completion that arrives after the socket closed still
// points at live memory; a socket is closed only once no operation refers to it.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "base/byte_buffer.h"
#include "broker/connection.h"
#include "coremq/options.h"
#include "io/ring.h"
#include "shard/bridge_topics.h"
#include "transport/tls_client_transport.h"

namespace coremq::broker {
class ShardState;
}

namespace coremq::shard {

// What the broker resolved for one bridge at start (names -> addresses, defaults filled in).
struct BridgeSetup {
  BridgeOptions options;
  struct Resolved {
    sockaddr_storage address{};
    socklen_t length = 0;
    std::string text;  // HOST:PORT as configured, for logs
    // TLS towards this address (bridge_cafile ...; SNI and the name checked are its host):
    // made at start on the controlling thread (it reads files), used only on the bridge's shard.
    std::shared_ptr<transport::TlsClientContext> tls;
  };
  std::vector<Resolved> addresses;  // in the configured order; hosts that did not resolve are left out
  std::string local_clientid;
  std::string remote_clientid;
  std::string notification_topic;
  // Durable store and forward (--persistence, set by the Shard; tests set it directly): the local
  // session is persistent and a QoS 1/2 message is acknowledged to it only once the remote
  // acknowledged it, so the broker's store keeps it until then (see "Store and forward" above).
  bool durable = false;
};

// Controlling thread, at start: each bridge with its defaults and resolved addresses, by the
// shard that owns its local client id (a bridge whose TLS files do not load is left out, logged).
std::vector<std::vector<BridgeSetup>> resolve_bridges(const std::vector<BridgeOptions>& bridges,
                                                      uint32_t shard_count);

enum class BridgeState : uint8_t { kIdle, kWaitingToRestart, kConnecting, kConnected, kStopped };
const char* bridge_state_name(BridgeState state);

// Per-bridge counters and gauges, copied by collect_shard_snapshots.
struct BridgeStats {
  std::string name;
  BridgeState state = BridgeState::kIdle;
  std::string remote;              // the address connected to (or last tried)
  uint64_t queued = 0;             // outbound messages waiting for the remote
  uint64_t inflight = 0;           // sent to the remote, not yet acknowledged
  uint64_t held_local_acks = 0;    // local QoS 1/2 not yet acknowledged (past the bound; durable: all)
  uint64_t remote_acks_waiting = 0;  // durable: remote QoS 1/2 messages whose acknowledgement waits for the local one
  uint64_t messages_out = 0;       // sent to the remote (QoS 1/2: acknowledged by it)
  uint64_t messages_in = 0;        // received from the remote and published locally
  uint64_t dropped_qos0 = 0;       // QoS 0 past max_queued_messages
  uint64_t dropped_too_large = 0;  // over bridge_max_packet_size or the remote's Maximum Packet Size
  uint64_t queue_full = 0;         // QoS 1/2 whose local acknowledgement waited for room
  uint64_t qos2_window_full = 0;   // times a QoS 2 message waited for bridge_max_inflight_qos2
  uint64_t dropped_expired = 0;    // MQTT 5 messages whose Message Expiry Interval ran out in the queue
  uint64_t connects = 0;           // successful CONNACKs
  uint64_t reconnects = 0;         // connections lost (or refused) after which the bridge tries again
  uint64_t connect_failures = 0;
};

class Bridge {
 public:
  // The Tag value (low 3 bits of user_data) the Shard routes to on_completion.
  static constexpr uint64_t kUserDataTag = 5;

  Bridge(BridgeSetup setup, io::Ring& ring, broker::ShardState& state, size_t max_packet_size);
  ~Bridge();
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // At the shard's set-up: opens the local side, subscribes, starts the remote side.
  void start(int64_t now_ms);
  // A completion whose user_data is one of this bridge's operation records.
  static void on_completion(uint64_t user_data, int result, int64_t now_ms);
  // Every tick: keep-alive, restart timers, lazy start/stop, connect timeout.
  void on_tick(int64_t now_ms);
  // The local connection's output (encoded MQTT 5 packets the broker sent the bridge).
  void on_local_output(base::ByteBuffer bytes, int64_t now_ms);
  // The local connection's answer that held its input was sent: feed what waited.
  void on_local_resumed();
  // The broker closed the local connection (shutdown): the bridge stops.
  void on_local_closed();
  // Shutdown: stop reconnecting, close the socket (the remote then publishes our will).
  void stop();
  // After the loop ended: close the socket whatever is in flight (the ring is going away).
  void close_at_exit();

  broker::Connection* local_connection() const { return local_; }
  BridgeStats stats() const;

 private:
  enum class OperationKind : uint8_t { kConnect, kReceive, kSend };
  struct alignas(8) Operation {
    Bridge* bridge;
    OperationKind kind;
  };
  struct OutboundMessage {
    std::string topic;
    std::string payload;
    // MQTT 5: the properties that travel with the message (encoded, without a Message Expiry
    // Interval, which is kept as a deadline and sent as the time left); empty under 3.1.1.
    std::string properties;
    int64_t expires_at_ms = 0;  // 0: never
    // Durable: the local session's packet id, acknowledged once the remote acknowledged it (and
    // the remote packet id too); 0 in memory.
    uint16_t local_packet_id = 0;
    uint8_t qos = 0;
    bool retain = false;
  };
  struct InflightMessage {
    OutboundMessage message;
    uint16_t packet_id = 0;
    bool released = false;  // QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP
    // Durable QoS 2: the remote's PUBREC came and was passed on; its PUBREL waits for the local
    // one (so a crash before the local PUBREC is durable resends a PUBLISH the remote still holds).
    bool remote_received = false;
  };
  struct HeldAck {
    uint16_t packet_id;
    mqtt::PacketType type;  // PUBACK or PUBREC
  };
  // Durable: a QoS 1/2 message the bridge published to the local broker (from the remote, or
  // its own connection notice), whose remote acknowledgement waits for the broker's, which
  // comes once the message is durable for every persistent session that took it; or, ready at
  // once, an acknowledgement with nothing local to wait for, queued behind the waiting ones. Kept
  // in the order the remote's PUBLISHes came (the local publish order, the order the broker
  // answers in), which is the order the remote gets its acknowledgements in.
  struct InboundAck {
    uint16_t local_packet_id = 0;
    uint16_t remote_packet_id = 0;  // 0: the bridge's own notice, nothing to answer
    mqtt::PacketType type = mqtt::PacketType::kPuback;  // to the remote: PUBACK or PUBREC
    uint64_t remote_connection = 0;  // remote_connections_ when it came: answered on that one only
    // The broker answered (or nothing local to wait for): sent once every one ahead is too.
    bool ready = false;
  };

  void handle(OperationKind kind, int result, int64_t now_ms);
  void open_local(int64_t now_ms);
  void feed_local(const base::ByteBuffer& bytes);
  // Returns the packet id it used (0 at QoS 0). Durable: a QoS 1/2 one is recorded in
  // inbound_acks_ with remote_packet_id (0: nothing to answer the remote).
  uint16_t publish_local(std::string_view topic, std::string_view payload, uint8_t qos, bool retain,
                         std::span<const uint8_t> property_bytes = {}, uint16_t remote_packet_id = 0);
  // Durable: the broker answered the local PUBLISH local_packet_id; its remote one is answered
  // in turn.
  void take_local_answer(uint16_t local_packet_id);
  // Durable: the remote's acknowledgements at the front of inbound_acks_ that are ready go.
  void send_ready_remote_acks();
  // The properties of a received MQTT 5 PUBLISH that cross the bridge: all but this hop's own
  // (Topic Alias, Subscription Identifiers) and, unless keep_expiry, the Message Expiry Interval.
  void encode_crossing_properties(const mqtt::Properties& received, bool keep_expiry, base::ByteBuffer& out);
  void notify_local(bool connected);
  void take_local_publish(const mqtt::PublishPacket& publish, base::ByteBuffer& acks);
  void release_held_acks();
  // Durable: the local PUBREL of a QoS 2 message (known, or restored from the last run).
  void take_local_pubrel(uint16_t packet_id, base::ByteBuffer& acks);
  // Durable: a local message that will not reach the remote (not routed, too large, expired) is
  // acknowledged at once (QoS 2: an error PUBREC ends the exchange).
  void acknowledge_dropped_local(const OutboundMessage& message);
  // Durable, at start: the restored session's subscriptions no topic line names any more are
  // removed, and its QoS 2 messages received but not released are released.
  void tidy_restored_local_session(base::ByteBuffer& bytes);
  void send_remote_ack(mqtt::PacketType type, uint16_t packet_id);
  void flush_local_acks();

  void begin_connect(int64_t now_ms);
  void on_connected(int result, int64_t now_ms);
  void on_received(int result, int64_t now_ms);
  void on_sent(int result);
  void arm_receive();
  void send_remote(base::ByteBuffer& bytes);
  void flush_remote();
  void handle_remote_packets(int64_t now_ms);
  [[nodiscard]] bool handle_remote_packet(const mqtt::FixedHeader& header, std::span<const uint8_t> body,
                                          int64_t now_ms);
  void send_connect();
  void after_connack(int64_t now_ms);
  void pump();
  // Appends the PUBLISH to output_; false (nothing appended) when its MQTT 5 expiry has passed
  // and `drop_expired` (a message not yet sent; one in flight goes again with a second left).
  [[nodiscard]] bool encode_publish_remote(const OutboundMessage& message, uint16_t packet_id, bool dup,
                                           bool drop_expired);
  uint16_t next_packet_id();
  void lose_connection(const char* why, int64_t now_ms);
  void finish_close(int64_t now_ms);
  void schedule_restart(int64_t now_ms);
  void set_state(BridgeState state, const char* why);

  const BridgeSetup setup_;
  const BridgeTopics topics_;
  io::Ring& ring_;
  broker::ShardState& state_;
  const size_t max_packet_size_;
  mqtt::ProtocolVersion version_;

  // ---- local side ----
  broker::Connection* local_ = nullptr;
  uint16_t local_packet_id_ = 0;
  std::deque<HeldAck> held_acks_;
  std::deque<InboundAck> inbound_acks_;  // durable; bounded by kInboundAcksMax
  base::ByteBuffer local_acks_;  // durable: acknowledgements for the local session, fed once per batch

  // ---- remote side ----
  BridgeState state_now_ = BridgeState::kIdle;
  int fd_ = -1;
  uint32_t operations_in_flight_ = 0;
  bool closing_ = false;  // the socket is being torn down: no new operation
  bool stopped_ = false;  // shutdown or start_type once: no restart
  size_t address_index_ = 0;
  Operation connect_operation_{this, OperationKind::kConnect};
  Operation receive_operation_{this, OperationKind::kReceive};
  Operation send_operation_{this, OperationKind::kSend};
  std::vector<uint8_t> receive_buffer_;
  base::ByteBuffer input_;    // bytes of an incomplete packet from the remote
  base::ByteBuffer output_;   // to send next
  base::ByteBuffer sending_;  // in the kernel now
  // TLS (null on plain TCP): output_ holds plain MQTT bytes, encoded into wire_pending_ once the
  // handshake is done; wire_pending_ also holds what the handshake itself must send.
  std::unique_ptr<transport::TlsClientTransport> tls_;
  base::ByteBuffer wire_pending_;
  base::ByteBuffer decoded_;
  bool send_in_flight_ = false;
  bool connack_received_ = false;
  int64_t connect_started_ms_ = 0;
  int64_t restart_at_ms_ = 0;
  uint32_t restart_delay_seconds_ = 0;
  int64_t now_ms_ = 0;  // the shard's clock at the current entry point
  int64_t last_sent_ms_ = 0;
  int64_t last_received_ms_ = 0;
  int64_t last_traffic_ms_ = 0;  // lazy: last message either way
  bool ping_outstanding_ = false;
  uint32_t remote_receive_maximum_ = 65535;
  uint64_t remote_connections_ = 0;  // CONNACKs so far: which connection an InboundAck came on
  uint32_t remote_maximum_packet_size_ = 0;
  uint64_t random_state_;
  std::vector<mqtt::UserProperty> user_property_scratch_;
  base::ByteBuffer property_scratch_;

  // ---- store and forward ----
  std::deque<OutboundMessage> queue_;
  std::deque<InflightMessage> inflight_;
  bool refill_waits_ = false;   // the window was full: refill once a batch of it is free (pump)
  uint32_t inflight_qos2_ = 0;  // of inflight_, the QoS 2 messages
  std::vector<bool> packet_id_used_;
  uint16_t last_packet_id_ = 0;
  std::vector<uint16_t> remote_qos2_received_;  // QoS 2 from the remote between PUBREC and PUBREL

  BridgeStats stats_;
};

}  // namespace coremq::shard
