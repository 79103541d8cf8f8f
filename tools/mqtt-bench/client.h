// Client: one MQTT connection of the load tool and its protocol state machine (CONNECT ->
// CONNACK -> SUBSCRIBE -> SUBACK for subscribers, then publishing with a window, or receiving
// and verifying). It does no I/O: it consumes bytes the worker received and stages the bytes
// to send in `staging`; the worker owns the socket and the io_uring requests (fields in
// ClientIo). Owned by one worker for the whole run and touched only by that worker's thread.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "base/byte_buffer.h"
#include "mqtt/packet.h"
#include "options.h"
#include "plan.h"
#include "sequence_tracker.h"
#include "shared_state.h"
#include "transport/transport.h"
#include "worker_result.h"

namespace coremq::bench {

// What a worker shares with all of its clients. Owned by the worker.
struct WorkerContext {
  const Options* options = nullptr;
  const Plan* plan = nullptr;
  SharedState* shared = nullptr;
  WorkerCounters* counters = nullptr;
  WorkerResult* result = nullptr;
  // The end-to-end window in `run`: deliveries counted this turn per publisher, added to
  // SharedState::delivered once per turn.
  std::vector<uint32_t> pending_delivered;
  std::vector<uint32_t> touched_publishers;
  int64_t measure_start_ns = 0;
  int64_t measure_end_ns = 0;
};

enum class ClientState : uint8_t {
  kNotStarted,
  kConnecting,       // TCP handshake in progress
  kAwaitingConnack,
  kAwaitingSuback,
  kReady,            // publishing, receiving, or holding an idle connection
  kDisconnecting,    // DISCONNECT staged; closing is expected
  kClosed,
  kFailed,
};

}  // namespace coremq::bench
namespace coremq::transport {
class TlsClientTransport;
}  // namespace coremq::transport
namespace coremq::bench {
using transport::TlsClientTransport;

// The worker's I/O bookkeeping for a client: one send in flight, bytes gathered in the
// client's staging buffer meanwhile, one (multishot) receive armed.
struct ClientIo {
  int fd = -1;
  bool send_in_flight = false;
  bool receive_armed = false;
  bool flush_queued = false;
  // --tls/--ws only: received bytes go through transport->decode() before the Client sees
  // them, and staged bytes through encode() into wire_staging, the next send. Plain TCP has
  // no transport and sends `staging` itself.
  bool transport_established = false;  // seen established once (counted in the report)
  bool close_after_staging = false;    // the transport's close follows the DISCONNECT
  std::unique_ptr<transport::Transport> transport;
  TlsClientTransport* tls = nullptr;  // the TLS layer inside `transport`, if any
  base::ByteBuffer wire_staging;
  base::ByteBuffer sending;
  size_t sending_offset = 0;
  std::unique_ptr<uint8_t[]> receive_buffer;  // only without provided buffers
  int64_t last_send_ns = 0;
  // Bumped whenever the socket is replaced (--reconnect-every) and carried in every request's
  // user data, so completions of the old socket are told apart and only release their buffer.
  uint16_t generation = 0;
  bool reconnect_after_send = false;  // the staged DISCONNECT is churn: connect again once sent
};

class Client {
 public:
  Client(const ClientSpec& spec, WorkerContext& context);
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const ClientSpec& spec() const { return spec_; }
  ClientState state() const { return state_; }
  const std::string& error() const { return error_; }
  bool publishing_done() const { return publishing_done_; }
  bool is_publisher() const { return spec_.role == Role::kPublisher; }

  void on_connecting() { state_ = ClientState::kConnecting; }
  // TCP is up: stages CONNECT.
  void on_connected();
  // A PUBACK (QoS 1) or PUBREC (QoS 2) for packet_id: its latency from the message's send stamp.
  void note_acknowledged(uint16_t packet_id);
  // Feeds bytes received from the broker. False on a protocol error or refusal (error() says).
  [[nodiscard]] bool on_bytes(std::span<const uint8_t> bytes, int64_t now_ns);
  // Marks the client failed with a message (connect error, broker closed the socket).
  void fail(std::string message);
  void mark_closed() { state_ = ClientState::kClosed; }

  // Publisher: encodes up to `budget` messages. Closed loop each is stamped with the current
  // time; open loop (--rate, --interval) only messages whose scheduled time has come are
  // written, each stamped with that time, not the moment it was written, so time spent waiting
  // for the window or a full socket counts as latency (no coordinated omission). Returns how
  // many were encoded (0 when the window, the staging bound, --count, the schedule or the end
  // of the measurement window stops it).
  uint32_t publish(uint32_t budget);
  // Open loop: sets the first scheduled time from the run's publishing start and this
  // publisher's number (its phase); called once when publishing starts.
  void start_schedule(int64_t publish_start_ns);
  int64_t next_due_ns() const { return next_due_ns_; }
  // Open loop: the schedule reached the end of the measurement window (nothing more is due).
  bool schedule_finished() const { return schedule_finished_; }
  // Open loop: messages scheduled before `until_ns` (the end of publishing) that were never
  // written because the tool was behind (exact for burst and uniform, the expectation for
  // Poisson).
  uint64_t due_unsent(int64_t until_ns) const;
  void stage_pingreq();
  void stage_disconnect();
  // --reconnect-every: true when this connection has served its messages or its time and may
  // go (nothing staged, no QoS 1/2 message in flight).
  bool reconnect_due(int64_t now_ns) const;
  // After the DISCONNECT went out and the socket closed: back to the start, keeping the
  // publisher's sequence and schedule; the next CONNACK counts as a reconnect.
  void reset_for_reconnect();

  uint64_t sent() const { return next_sequence_; }
  uint32_t inflight() const { return inflight_; }
  PublisherResult publisher_result() const;
  SubscriberResult subscriber_result() const;

  base::ByteBuffer staging;  // bytes waiting for the next send
  ClientIo io;

 private:
  [[nodiscard]] bool handle_packet(const mqtt::FixedHeader& header, std::span<const uint8_t> body, int64_t now_ns);
  [[nodiscard]] bool handle_connack(const mqtt::FixedHeader& header, std::span<const uint8_t> body);
  [[nodiscard]] bool handle_suback(const mqtt::FixedHeader& header, std::span<const uint8_t> body);
  [[nodiscard]] bool handle_publish(const mqtt::FixedHeader& header, std::span<const uint8_t> body, int64_t now_ns);
  [[nodiscard]] bool handle_ack(mqtt::PacketType type, const mqtt::FixedHeader& header, std::span<const uint8_t> body);
  [[nodiscard]] bool handle_disconnect(const mqtt::FixedHeader& header, std::span<const uint8_t> body);
  // MQTT 5: the property block of every PUBLISH (Topic Alias, User Properties), built once.
  void build_publish_properties();
  // Parses whole packets from the front of `bytes`; returns the bytes consumed, or -1 on error.
  int64_t parse_packets(std::span<const uint8_t> bytes, int64_t now_ns);
  void record_delivery(uint32_t publisher, int64_t send_ns, int64_t now_ns);
  uint32_t window_room() const;
  void advance_schedule();
  uint64_t next_random();
  uint16_t take_packet_id();
  bool protocol_error(std::string message);

  const ClientSpec& spec_;
  WorkerContext& context_;
  ClientState state_ = ClientState::kNotStarted;
  std::string error_;
  mqtt::ProtocolVersion version_;
  base::ByteBuffer partial_;  // the start of a packet whose rest has not arrived

  // Publisher.
  uint64_t next_sequence_ = 0;
  uint32_t inflight_ = 0;
  uint16_t last_packet_id_ = 0;
  bool publishing_done_ = false;
  // Open loop: when the next message is due (CLOCK_MONOTONIC ns); the schedule's origin and
  // this publisher's phase; splitmix64 state for Poisson gaps.
  int64_t next_due_ns_ = 0;
  bool schedule_finished_ = false;
  double schedule_origin_ns_ = 0;
  uint64_t random_state_ = 0;
  // QoS 1/2: bit per packet identifier awaiting PUBACK/PUBREC, and (QoS 2) awaiting PUBCOMP.
  std::vector<uint64_t> awaiting_ack_;
  std::vector<uint64_t> awaiting_complete_;
  // QoS 1/2: (packet id, send stamp) of messages awaiting PUBACK/PUBREC, in send order (a
  // broker acknowledges in order, MQTT-4.6.0-2), for the acknowledgement latency; at most the
  // window.
  std::deque<std::pair<uint16_t, int64_t>> ack_stamps_;

  // MQTT 5: what the broker's CONNACK allows, and whether this connection already sent the
  // topic with its alias (after that the alias goes alone).
  uint16_t server_receive_maximum_ = 65535;
  uint16_t server_topic_alias_maximum_ = 0;
  bool alias_sent_ = false;
  // --reconnect-every: when this connection's CONNACK came and what it has published since.
  int64_t connected_ns_ = 0;
  uint64_t sent_since_connect_ = 0;
  bool reconnecting_ = false;
  uint32_t next_payload_bytes();
  std::vector<uint8_t> publish_properties_;        // with the Topic Alias when --topic-alias
  std::vector<uint8_t> publish_properties_plain_;  // without it (the broker allows no alias)

  // Subscriber.
  uint64_t shared_duplicates_ = 0;
  absl::flat_hash_map<uint32_t, SequenceTracker> trackers_;
  uint64_t unexpected_ = 0;
  uint64_t foreign_ = 0;
  uint64_t received_ = 0;
  uint8_t granted_qos_ = 0;
};

}  // namespace coremq::bench
