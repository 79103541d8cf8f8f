// The protocol half of one shard: everything MQTT about the connections, sessions,
// subscriptions and retained messages this shard owns. It does no I/O itself: the
// shard loop (src/shard/) feeds it bytes and events and gives it an IoPort to ask for
// sends, closes, hand-offs and cross-shard posts. That split lets a test or a fuzzer
// drive the whole state machine in-process without sockets.
// Single-threaded: every method runs on the owning shard's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/string_map.h"
#include "absl/container/flat_hash_set.h"
#include "broker/connection.h"
#include "broker/cross_shard.h"
#include "broker/message.h"
#include "broker/retained_store.h"
#include "broker/session.h"
#include "broker/shard_counters.h"
#include "coremq/options.h"
#include "mqtt/packet.h"
#include "topic/topic_tree.h"

namespace coremq::broker {

// What the protocol side asks of the I/O side.
class IoPort {
 public:
  virtual ~IoPort() = default;
  // The connection has new bytes in `output`; send them at the end of this loop turn.
  virtual void request_flush(Connection* connection) = 0;
  // The protocol is done with the connection (state is already kClosing). With
  // flush_first, pending output (a CONNACK with an error code) is sent before the close.
  virtual void close_connection(Connection* connection, bool flush_first) = 0;
  // Moves the socket and its unread bytes to another shard; the Connection is freed here.
  virtual void hand_off_connection(Connection* connection, uint32_t target_shard) = 0;
  // Queues an item for another shard (delivered in order, in a batch, at the end of the turn).
  virtual void post(uint32_t target_shard, CrossShardItem item) = 0;
  virtual int64_t now_ms() const = 0;
};

// FNV-1a over the client id's bytes: which shard owns the id's session. Documented so
// tests and operators can predict placement.
uint32_t owner_shard_of(std::string_view client_id, uint32_t shard_count);

class ShardState {
 public:
  ShardState(uint32_t shard_id, uint32_t shard_count, const Options& options, IoPort& io);
  ~ShardState();
  ShardState(const ShardState&) = delete;
  ShardState& operator=(const ShardState&) = delete;

  // Events from the shard loop.
  void on_connection_opened(Connection* connection);
  void on_bytes(Connection* connection, std::span<const uint8_t> bytes);
  void on_transport_closed(Connection* connection);
  void on_output_drained(Connection* connection);
  void on_cross_shard(CrossShardItem item);
  void on_tick(int64_t now_ms);
  // Graceful stop: closes every connection; wills are not published.
  void on_shutdown();

  uint32_t shard_id() const { return shard_id_; }
  const ShardCounters& counters() const { return counters_; }
  ShardCounters& counters() { return counters_; }
  size_t session_count() const { return sessions_.size(); }
  // Connections this shard's protocol side knows (attached or awaiting CONNECT).
  size_t connection_count() const { return connections_.size(); }

 private:
  // Packet loop and dispatch (shard_state.cc).
  // What the packet loop does after one packet.
  enum class Next { kContinue, kStop, kHandOff };
  Next process_input(Connection* connection, std::span<const uint8_t> bytes, size_t* consumed);
  Next handle_packet(Connection* connection, const mqtt::FixedHeader& header, std::span<const uint8_t> body);
  void close_for_protocol_error(Connection* connection, std::string_view reason);
  // Ends the protocol side of a connection once: detaches its session, publishes the
  // will if it is due, and asks the I/O side to close.
  void end_connection(Connection* connection, bool publish_will, bool flush_first);

  // CONNECT (handle_connect.cc).
  Next handle_connect(Connection* connection, std::span<const uint8_t> body, uint8_t flags);
  void refuse_connect(Connection* connection, mqtt::ConnectReturnCode code, std::string_view reason);
  std::string assign_client_id();
  void resume_session(Session* session);

  // PUBLISH and its acknowledgements (handle_publish.cc).
  bool handle_publish(Connection* connection, std::span<const uint8_t> body, uint8_t flags);
  bool handle_puback(Connection* connection, std::span<const uint8_t> body, uint8_t flags);
  bool handle_pubrec(Connection* connection, std::span<const uint8_t> body, uint8_t flags);
  bool handle_pubrel(Connection* connection, std::span<const uint8_t> body, uint8_t flags);
  bool handle_pubcomp(Connection* connection, std::span<const uint8_t> body, uint8_t flags);

  // SUBSCRIBE / UNSUBSCRIBE (handle_subscribe.cc).
  bool handle_subscribe(Connection* connection, std::span<const uint8_t> body, uint8_t flags);
  bool handle_unsubscribe(Connection* connection, std::span<const uint8_t> body, uint8_t flags);
  void add_local_interest(std::string_view filter);
  void remove_local_interest(std::string_view filter);
  void remove_all_subscriptions(Session* session);

  // Routing and delivery (delivery.cc).
  // A message entering the broker on this shard (a PUBLISH or a will).
  void publish_from_here(MessageRef message);
  // Matches against this shard's own subscribers and delivers.
  void deliver_locally(const MessageRef& message);
  void deliver_to_session(Session* session, const MessageRef& message, uint8_t qos, bool retain_flag);
  void send_publish(Session* session, const MessageRef& message, uint8_t qos, bool retain_flag, bool dup,
                    uint16_t packet_id);
  void pump_queue(Session* session);
  void enqueue(Session* session, const MessageRef& message, uint8_t qos, bool retain_flag);
  void start_inflight(Session* session, const MessageRef& message, uint8_t qos, bool retain_flag);
  OutgoingInflight* find_inflight(Session* session, uint16_t packet_id);
  void finish_inflight(Session* session, uint16_t packet_id);
  uint16_t next_packet_id(Session* session);
  bool output_over_limit(const Connection* connection) const;

  Session* find_session(std::string_view client_id);
  void destroy_session(Session* session);

  const uint32_t shard_id_;
  const uint32_t shard_count_;
  const Options& options_;
  IoPort& io_;
  ShardCounters counters_;

  base::StringMap<std::unique_ptr<Session>> sessions_;
  // Every live connection this shard's protocol side knows about, for ticks and shutdown.
  absl::flat_hash_set<Connection*> connections_;

  // This shard's subscriptions: filter -> (session, granted QoS).
  topic::TopicTree<Session*, uint8_t> subscriptions_;
  // Which other shards have subscribers for which filters (their local filters, as they told us).
  topic::TopicTree<uint32_t, uint8_t> remote_interest_;
  RetainedStore retained_;

  // Scratch for one dispatch: sessions matched and their highest QoS; shards to forward to.
  struct Match {
    Session* session;
    uint8_t qos;
  };
  std::vector<Match> match_scratch_;
  uint64_t match_epoch_ = 0;
  std::vector<uint64_t> shard_match_epoch_;
  uint64_t assigned_id_counter_ = 0;
  std::vector<mqtt::SubscribeTopic> subscribe_scratch_;
  std::vector<std::string_view> unsubscribe_scratch_;
  std::vector<uint8_t> suback_scratch_;
  int64_t now_ms_ = 0;
};

}  // namespace coremq::broker
