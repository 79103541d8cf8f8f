// Client: one MQTT connection of the load tool and its protocol state machine (CONNECT ->
// CONNACK -> SUBSCRIBE -> SUBACK for subscribers, then publishing with a window, or receiving
// and verifying). It does no I/O: it consumes bytes the worker received and stages the bytes
// to send in `staging`; the worker owns the socket and the io_uring requests (fields in
// ClientIo). Owned by one worker for the whole run and touched only by that worker's thread.
#pragma once

#include <cstdint>
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
  // Feeds bytes received from the broker. False on a protocol error or refusal (error() says).
  [[nodiscard]] bool on_bytes(std::span<const uint8_t> bytes, int64_t now_ns);
  // Marks the client failed with a message (connect error, broker closed the socket).
  void fail(std::string message);
  void mark_closed() { state_ = ClientState::kClosed; }

  // Publisher: encodes up to `budget` messages, each stamped with the current time. Returns how
  // many were encoded (0 when the window, the staging bound, --count or the end of the
  // measurement window stops it).
  uint32_t publish(uint32_t budget);
  void stage_pingreq();
  void stage_disconnect();

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
  // Parses whole packets from the front of `bytes`; returns the bytes consumed, or -1 on error.
  int64_t parse_packets(std::span<const uint8_t> bytes, int64_t now_ns);
  void record_delivery(uint32_t publisher, int64_t send_ns, int64_t now_ns);
  uint32_t window_room() const;
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
  // QoS 1/2: bit per packet identifier awaiting PUBACK/PUBREC, and (QoS 2) awaiting PUBCOMP.
  std::vector<uint64_t> awaiting_ack_;
  std::vector<uint64_t> awaiting_complete_;

  // Subscriber.
  absl::flat_hash_map<uint32_t, SequenceTracker> trackers_;
  uint64_t unexpected_ = 0;
  uint64_t foreign_ = 0;
  uint64_t received_ = 0;
  uint8_t granted_qos_ = 0;
};

}  // namespace coremq::bench
