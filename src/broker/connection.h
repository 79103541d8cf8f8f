// One client's TCP connection on the shard that owns it. Created by the shard's I/O
// loop on accept (or on adoption from another shard), destroyed by that loop once the
// socket is closed and no io_uring operation refers to it any more. The protocol
// fields are driven by ShardState; the I/O fields only by the shard loop.
// Single-threaded: only the owning shard's thread touches a Connection.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/byte_buffer.h"
#include "base/string_map.h"
#include "broker/output_references.h"
#include "broker/pending_decision.h"
#include "mqtt/packet.h"
#include "transport/channel.h"

namespace coremq::broker {

struct Session;

enum class ConnectionState : uint8_t {
  kAwaitingConnect,  // accepted, reading CONNECT
  kAuthenticating,   // MQTT 5 enhanced authentication: CONNECT read, AUTH exchange under way
  kHandingOff,       // CONNECT read, moving to the client id's owner shard
  kConnected,        // CONNACK sent, attached to a session
  kClosing,          // protocol side finished; waiting for the socket's operations to end
};

// MQTT 5 topic aliases of one connection, made on first use.
struct TopicAliases {
  // Client -> broker: alias - 1 -> topic, sized by Options::topic_alias_maximum.
  std::vector<std::string> inbound;
  // Broker -> client: topic -> alias, up to the client's Topic Alias Maximum. The policy
  // is first come, first aliased, never replaced: cheap, and a fleet publishes on a
  // small fixed set of topics per device.
  base::StringMap<uint16_t> outbound;
};

// MQTT 5 enhanced authentication of a connection whose CONNECT named an Authentication
// Method, or a CONNECT waiting for its password check (most connections hold no such object). While connecting the CONNECT waits here
// until the exchange succeeds; once connected only the method is kept, for
// re-authentication (AUTH Re-authenticate must name the same method, MQTT-4.12.1-1).
struct EnhancedAuthentication {
  std::string method;
  // While connecting: the client id given to the hook (an assigned one must not change
  // between steps) and the CONNECT's body, decoded again on success. Emptied on CONNACK.
  std::string client_id;
  base::ByteBuffer connect_body;
  uint8_t connect_flags = 0;
  // Connected: an AUTH Re-authenticate was answered with Continue authentication and the
  // exchange has not ended yet.
  bool reauthenticating = false;
  // A CONNECT waiting for the password checker's verdict (method empty then) holds its
  // client id, body and flags above, and the token the verdict comes with; 0: none.
  bool client_id_assigned = false;
  uint64_t password_check = 0;
};

// The client's address (IPv4, or IPv6 with `is_ipv6`), read once at CONNECT for the connect and
// disconnect log lines; port 0 and family 0: unknown (in-process, or the socket already reset).
struct PeerAddress {
  uint8_t bytes[16] = {};
  uint16_t port = 0;
  uint8_t family = 0;  // 0 unknown, 4, 6
};
// "ip:port", "[ipv6]:port", "in-process", or "unknown" (connection_log.cc).
std::string format_peer(const PeerAddress& peer, bool in_process);

struct Connection {
  // Fields are ordered by size, so the struct packs (an idle fleet pays for every byte).
  int fd = -1;
  // I/O bookkeeping, owned by the shard loop.
  uint32_t operations_in_flight = 0;
  // MQTT 5: what the client announced in CONNECT.
  uint32_t client_maximum_packet_size = 0;  // 0: no limit beyond the protocol's
  uint16_t client_receive_maximum = 65535;
  uint16_t client_topic_alias_maximum = 0;
  uint16_t keep_alive_seconds = 0;
  // Receives parked for this connection, unread (src/shard: input paused or held; at most
  // one per receive buffer); kept by the shard loop. A connection with parked input is not
  // idle: keep-alive spares it.
  uint16_t parked_count = 0;
  ConnectionState state = ConnectionState::kAwaitingConnect;
  // Index in the broker's listeners of the one this client connected through (its
  // transport and authentication settings).
  uint8_t listener = 0;
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kV311;
  bool request_problem_information = true;
  // Set once DISCONNECT arrived: the will is discarded and the close is not an error.
  bool clean_disconnect = false;
  bool receive_armed = false;
  bool send_in_flight = false;
  bool queued_for_flush = false;
  bool close_after_flush = false;
  bool socket_shut_down = false;
  // Shard loop: its receive ran out of buffers while they were parked; re-armed once some return.
  bool receive_starved = false;
  // Set by ShardState while an answer to this client waits for other shards (a SUBACK until
  // every peer has applied the new filter): the loop parks what arrives meanwhile, unread.
  bool input_held = false;
  // Answers to this client in ShardState's waiting list (barrier.cc): a SUBACK or CONNACK that
  // holds input, and, with --persistence, acknowledgements that wait for the store without
  // holding input. While any waits, every later PUBACK/PUBREC/PUBREL/PUBCOMP queues behind
  // it, so they leave in order.
  uint32_t answers_waiting = 0;
  // An in-process client (coremq::LocalClient): no socket (fd -1); the shard loop hands its
  // output to the delivery thread and feeds it packets from its local intake (src/shard/local_hub.h).
  bool in_process = false;
  // A bridge's local side with --persistence (src/shard/bridge.h): its in-flight window is the
  // Receive Maximum it announced, not --max-inflight (it holds each message until the remote has it).
  bool own_inflight_window = false;
  // The same bridge's local side: its CONNACK does not wait for a new session's record to be
  // durable, so its SUBSCRIBE is handled at once, during its shard's set-up, and that interest
  // reaches every shard before any serves a client. Nothing relies on the record before its
  // batch: the SUBACK and every acknowledgement of a message the session takes wait for that
  // batch or a later one.
  bool connack_without_store_wait = false;
  // The CONNECT's protocol level had the bridge bit (a Mosquitto bridge with try_private): its
  // subscriptions get No Local and Retain As Published (handle_subscribe.cc).
  bool bridge_client = false;
  // The event hook was told this client connected: it is told once when it goes.
  bool connect_reported = false;
  // Set by the shard loop for plain TCP sockets: large payloads may go out by reference
  // (`references`) instead of copied into `output`. Off for TLS and WebSocket (their
  // transport encodes the bytes), in-process clients and the sans-I/O tests.
  bool payloads_by_reference = false;

  Session* session = nullptr;
  std::unique_ptr<TopicAliases> topic_aliases;
  std::unique_ptr<EnhancedAuthentication> authentication;  // null unless CONNECT named a method
  std::unique_ptr<transport::Channel> channel;             // null on plain TCP listeners
  // An asynchronous hook decision this connection's input waits for (async_hooks.cc); null
  // nearly always.
  std::unique_ptr<PendingDecision> pending_decision;

  int64_t accepted_at_ms = 0;
  int64_t last_packet_at_ms = 0;
  PeerAddress peer;

  // Bytes of an incomplete packet, kept until the rest arrives.
  base::ByteBuffer input;
  // Bytes waiting for the next send, gathered from every message of this loop turn.
  base::ByteBuffer output;
  // Bytes the kernel is sending now; never touched until that send completes.
  base::ByteBuffer sending;
  // Payloads sent from their Message, between the bytes of `output` and `sending`; null
  // until the first one (most connections never have one).
  std::unique_ptr<OutputReferences> references;

  // Everything staged for this client and not yet sent: what the output bounds count.
  size_t unsent_output_bytes() const {
    size_t bytes = output.size() + sending.size();
    if (references) bytes += references->pending_bytes + references->sending_bytes - references->sent;
    return bytes;
  }
};

}  // namespace coremq::broker
