// The protocol half of one shard: everything MQTT about the connections, sessions,
// subscriptions and retained messages this shard owns. It does no I/O itself: the
// shard loop (src/shard/) feeds it bytes and events and gives it an IoPort to ask for
// sends, closes, hand-offs and cross-shard posts. That split lets a test or a fuzzer
// drive the whole state machine in-process without sockets.
// Single-threaded: every method runs on the owning shard's thread.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "base/log_histogram.h"
#include "base/random_pool.h"
#include "base/string_map.h"
#include "broker/admin_view.h"
#include "broker/connection.h"
#include "broker/cross_shard.h"
#include "broker/listener_security.h"
#include "broker/message.h"
#include "broker/retained_store.h"
#include "broker/session.h"
#include "broker/shard_counters.h"
#include "broker/shared_subscriptions.h"
#include "coremq/events.h"
#include "coremq/interception.h"
#include "coremq/options.h"
#include "mqtt/packet.h"
#include "mqtt/reason_code.h"
#include "topic/topic_tree.h"

namespace coremq::persist {
class ShardJournal;
struct LoadedSession;
}  // namespace coremq::persist

namespace coremq::broker {

// What the protocol side asks of the I/O side.
class IoPort {
 public:
  virtual ~IoPort() = default;
  // The connection has new bytes in `output`; send them at the end of this loop turn.
  virtual void request_flush(Connection* connection) = 0;
  // The protocol is done with the connection (state is already kClosing). With
  // flush_first, pending output (a CONNACK or DISCONNECT with a reason) is sent first.
  virtual void close_connection(Connection* connection, bool flush_first) = 0;
  // Moves the socket and its unread bytes to another shard; the Connection is freed here.
  virtual void hand_off_connection(Connection* connection, uint32_t target_shard) = 0;
  // The protocol side cleared connection->input_held: hand it what was parked for it while
  // held, in arrival order, before anything received later (stop again if it is held again).
  virtual void resume_input(Connection* connection) = 0;
  // Queues an item for another shard (delivered in order, in a batch, at the end of the turn).
  virtual void post(uint32_t target_shard, CrossShardItem item) = 0;
  virtual int64_t now_ms() const = 0;
  // Asks the password checker (a pool of threads: hashing never runs on a shard's thread)
  // whether `password` (none: has_password false) is right for `username` in the password
  // file of listener `listener`. The verdict comes back later, on this shard's thread, as
  // ShardState::on_password_verdict(token, ...). False when the checker's queue from this
  // shard is full: nothing was asked.
  [[nodiscard]] virtual bool check_password(uint64_t token, uint8_t listener, std::string_view username,
                                            bool has_password, std::string_view password) = 0;
  // The client's address, read once at CONNECT into Connection::peer: the connect and
  // disconnect log lines, the event hook and the admin API show it (format_peer).
  virtual PeerAddress peer_address(const Connection& connection) {
    (void)connection;
    return {};
  }
  // A handle a host thread answers an asynchronous hook decision with; the answer comes back
  // on this shard's thread as ShardState::on_hook_answer. Empty: this I/O side cannot carry
  // answers (the decision is refused as busy).
  virtual HookCompletion defer_decision(uint64_t /*token*/, uint32_t /*index*/) { return {}; }
};

// Why a connection ended: the disconnect log line's "reason" (close_reason_name) and, through
// disconnect_reason_of, the event hook's DisconnectReason. Finer than DisconnectReason where
// an operator reading the log wants to tell causes apart (a packet too large, an admin kick).
enum class CloseReason : uint8_t {
  kUnknown,
  kClientDisconnect,   // DISCONNECT from the client (its reason code)
  kConnectionLost,     // end of stream or reset without DISCONNECT
  kKeepAliveTimeout,   // 1.5x keep-alive without a packet
  kProtocolError,      // a malformed or forbidden packet (the detail says which)
  kTakeover,           // a new connection with the same client id
  kTransportError,     // TLS or WebSocket refused what the client sent
  kSlowConsumer,       // does not read what it is sent
  kPacketTooLarge,     // a packet for it over its Maximum Packet Size
  kAuthentication,     // re-authentication failed
  kShutdown,           // the broker is stopping
  kAdmin,              // an operator asked (admin API)
  kInterceptor,        // the message interceptor's kDisconnect
};
const char* close_reason_name(CloseReason reason);
// The event hook's name for it (several CloseReasons share one DisconnectReason).
DisconnectReason disconnect_reason_of(CloseReason reason);

// FNV-1a over the client id's bytes: which shard owns the id's session. Documented so
// tests and operators can predict placement.
uint32_t owner_shard_of(std::string_view client_id, uint32_t shard_count);

// Why a connection ends: the one record of it, given once by whoever ends the connection to
// ShardState::end_connection, which makes both the disconnect log line (connection_log.cc)
// and the event hook's ClientDisconnectedEvent (hooks.cc) from it, so they cannot disagree.
struct EndCause {
  CloseReason reason = CloseReason::kUnknown;
  // The client's DISCONNECT reason code, or the MQTT 5 code that names the broker's cause
  // (0x8D keep-alive, 0x8E takeover, the protocol error's ...), also for MQTT 3.1.1 clients,
  // which are not sent it. -1: none (the log line leaves it out, the event says 0).
  int reason_code = -1;
  // Why in words, for the log line; a view valid during end_connection only.
  std::string_view detail;
};

class ShardState {
 public:
  ShardState(uint32_t shard_id, uint32_t shard_count, const Options& options, IoPort& io);
  ~ShardState();
  ShardState(const ShardState&) = delete;
  ShardState& operator=(const ShardState&) = delete;

  // Events from the shard loop.
  void on_connection_opened(Connection* connection);
  void on_bytes(Connection* connection, std::span<const uint8_t> bytes);
  // The client's side ended (EOF, reset, a TLS close_notify, a WebSocket close). With
  // flush_answer the transport's answer (the echoed close frame) is sent before the close.
  void on_transport_closed(Connection* connection, bool flush_answer = false);
  // The password checker's answer to IoPort::check_password(token, ...). A token whose
  // connection went meanwhile is ignored.
  // `expired`: the checker did not run it, as it waited past the connect timeout in its queue.
  void on_password_verdict(uint64_t token, bool accepted, bool expired = false);
  // A host's answer to an asynchronous hook decision (async_hooks.cc). An answer whose
  // decision timed out, or whose connection went, is ignored.
  void on_hook_answer(HookAnswer answer);
  // The connection's TLS or WebSocket transport refused what the client sent: the client
  // goes (its will too), after the transport's alert or close frame is flushed.
  void on_transport_error(Connection* connection, std::string_view why);
  void on_output_drained(Connection* connection);
  void on_cross_shard(CrossShardItem item);
  void on_tick(int64_t now_ms);
  // Graceful stop: every connection is closed (MQTT 5 clients get DISCONNECT 0x8B);
  // wills are not published.
  void on_shutdown();

  // Each listener's security settings, indexed by Connection::listener; set before the first
  // connection (and swapped by a reload: connections made after it get the new files).
  void set_listener_security(ListenerSecurityList listeners) { listener_security_ = std::move(listeners); }
  // A reloaded ACL file for `listener`: sessions that connect from now on compile it; connected
  // ones keep the rules they compiled (their AclFile stays alive with them).
  void replace_listener_acl(uint8_t listener, std::shared_ptr<const auth::AclFile> acl) {
    if (listener < listener_security_.size()) listener_security_[listener].acl = std::move(acl);
  }

  // Durable persistence (persistence.cc): the shard's journal, set before the first connection
  // (null: --persistence=none, and nothing below costs anything). unix_offset_ms turns the
  // IoPort's monotonic clock into wall-clock Unix milliseconds for the store's deadlines.
  void set_journal(persist::ShardJournal* journal, int64_t unix_offset_ms) {
    journal_ = journal;
    unix_offset_ms_ = unix_offset_ms;
  }
  // Start-up, before the first connection: a retained message from the store into this copy;
  // a persistent session of a client id this shard owns, offline, its timers set from the
  // record's deadlines.
  // A session's outgoing messages come with it, their bodies looked up in `bodies` (by the
  // store's body id; each shard's sessions name bodies no other shard's do).
  void restore_retained(const MessageRef& message);
  using RestoredBodies = absl::flat_hash_map<uint64_t, MessageRef>;
  void restore_session(const persist::LoadedSession& loaded, const RestoredBodies& bodies);
  // The message bodies this shard's persistent sessions hold in the store, and their bytes.
  size_t stored_messages() const { return stored_bodies_.size(); }
  uint64_t stored_message_bytes() const { return stored_body_bytes_; }
  // The journal's durable batch moved: answers and peers' barrier acks waiting for it go.
  void on_durable();
  // End of the loop turn: hands the journal's open batch to the committer if it may leave now,
  // first writing into it the deferred records still needed (persistent_messages.cc).
  void submit_journal();
  // Tests and the store size bound: whether new durable state is refused (the store is full).
  void set_store_full(bool full) { store_full_ = full; }

  uint32_t shard_id() const { return shard_id_; }
  const ShardCounters& counters() const { return counters_; }
  ShardCounters& counters() { return counters_; }
  size_t session_count() const { return sessions_.size(); }
  // Connections this shard's protocol side knows (attached or awaiting CONNECT).
  size_t connection_count() const { return connections_.size(); }
  // Subscriptions of this shard's sessions (one per session and filter).
  size_t subscription_count() const { return subscriptions_.subscription_count(); }
  // Live retained messages in this shard's copy of the retained store.
  size_t retained_count() const { return retained_.size(); }
  // The shard loop's monotonic time (us) at the start of this turn: messages entering now are
  // stamped with it, and their delivery is measured against it (delivery_latency_us).
  void set_turn_time_us(int64_t now_us) {
    turn_time_us_ = now_us;
    header_cache_.message = MessageRef();  // a message is not kept alive past its turn
  }
  const base::LogHistogram& delivery_latency_us() const { return delivery_latency_us_; }
  // The admin API (admin_view.cc; from a ShardAccess callback on this shard's thread).
  // Sessions whose id is above query.after and match its filters, the smallest query.limit
  // of them in id order.
  void admin_list_clients(const ClientQuery& query, std::vector<ClientView>* out) const;
  // One session (with its subscriptions); false if this shard has none of that id.
  bool admin_client(std::string_view client_id, ClientView* out) const;
  // Subscriptions ordered by (client id, filter) after the cursor (client id + '\0' + filter).
  void admin_list_subscriptions(std::string_view after, uint32_t limit,
                                std::vector<SubscriptionView>* out) const;
  // Retained messages of this shard's copy, in topic order after `after`.
  void admin_list_retained(std::string_view after, uint32_t limit, std::vector<RetainedView>* out) const;
  // Disconnects the client (MQTT 5: DISCONNECT 0x98 Administrative action; its will is
  // published) and with discard_session ends its session too.
  AdminDisconnect admin_disconnect(std::string_view client_id, bool discard_session);
  // Sessions with a connection attached (a walk over the live connections: metrics only).
  size_t online_session_count() const {
    size_t online = 0;
    for (const Connection* connection : connections_) online += connection->session != nullptr ? 1 : 0;
    return online;
  }

 private:
  // What the packet loop does after one packet.
  enum class Next { kContinue, kStop, kHandOff };
  Next process_input(Connection* connection, std::span<const uint8_t> bytes, size_t* consumed);
  Next handle_packet(Connection* connection, const mqtt::FixedHeader& header, std::span<const uint8_t> body);
  // Ends the connection for a broken rule: MQTT 5 clients past CONNECT get a DISCONNECT
  // with `reason` first; the will is published.
  void close_for_protocol_error(Connection* connection, mqtt::ReasonCode reason, std::string_view why);
  void send_disconnect(Connection* connection, mqtt::ReasonCode reason, std::string_view why);
  // Leaves in property_scratch_ a Reason String property for `why` (nothing for an empty or
  // over-long one); stage_packet leaves it out again when the packet would not fit.
  void encode_reason_string(std::string_view why);
  // Encodes one packet into `out`, with its optional properties (Reason String, User
  // Properties) or without them.
  using PacketEncoder = absl::FunctionRef<void(base::ByteBuffer& out, bool with_optional_properties)>;
  // The one way every packet but PUBLISH goes to a client (PUBLISH is dropped instead, see
  // exceeds_client_packet_limit): staged in its output held to the client's Maximum Packet
  // Size (MQTT-3.1.2-24), with its optional properties when they fit and without them when
  // not (MQTT-3.1.2-25). A packet still too large is not sent and the connection is closed
  // (a DISCONNECT is only left out: its connection is closing anyway); then it returns false
  // and the caller must stop using the connection.
  [[nodiscard]] bool stage_packet(Connection* connection, mqtt::PacketType type, PacketEncoder encode);
  // The same into `out` (a waiting answer's buffer, see barrier.cc), with no flush asked.
  [[nodiscard]] bool stage_packet_into(base::ByteBuffer& out, Connection* connection, mqtt::PacketType type,
                                       PacketEncoder encode);
  // A CONNECT accepted: the client's address is read, the connect line logged and the event
  // hook told (before or after the CONNACK is staged, whichever comes first).
  void note_connected(Connection* connection, Session* session, const mqtt::ConnectPacket& connect,
                      bool session_present);
  // Ends the protocol side of a connection once: detaches its session, schedules or
  // publishes the will, ends or schedules the end of the session, asks the I/O side to close.
  // `cause` is logged (a connected client's disconnect line) and reported (the event hook).
  void end_connection(Connection* connection, bool publish_will, bool flush_first, EndCause cause);
  bool wants_problem_information(const Connection* connection) const;

  // CONNECT and AUTH (handle_connect.cc).
  Next handle_connect(Connection* connection, std::span<const uint8_t> body, uint8_t flags);
  Next accept_connect(Connection* connection, const mqtt::ConnectPacket& connect, std::string client_id,
                      bool client_id_assigned, std::string_view authentication_data);
  // Enhanced authentication (MQTT 5.0 section 4.12), connecting and re-authenticating.
  Next begin_authentication(Connection* connection, const mqtt::ConnectPacket& connect, std::span<const uint8_t> body,
                            uint8_t flags, std::string client_id, bool client_id_assigned);
  bool handle_auth(Connection* connection, std::span<const uint8_t> body, uint8_t flags);
  bool continue_authentication(Connection* connection, const mqtt::AuthPacket& auth, std::string_view data);
  bool handle_reauthentication(Connection* connection, const mqtt::AuthPacket& auth, std::string_view data);
  // What a step (answered now, or later for a deferred one) does: connecting, an AUTH Continue
  // or the CONNACK (the CONNECT waits in connection->authentication); connected, an AUTH.
  // False when the connection ended.
  bool apply_connecting_step(Connection* connection, const AuthenticationHook::Step& step);
  bool apply_reauthentication_step(Connection* connection, const AuthenticationHook::Step& step);
  // The hook's answer, made a failure (0x83) when its data is over the Binary Data limit.
  static AuthenticationHook::Step checked(AuthenticationHook::Step step);
  // The hook said no: CONNACK (connecting) or DISCONNECT (re-authenticating) with its reason.
  void refuse_authentication(Connection* connection, const AuthenticationHook::Step& step);
  // Password files (password_check.cc): the CONNECT waits, held, for the checker's verdict.
  bool needs_password_check(const Connection* connection, const mqtt::ConnectPacket& connect) const;
  // use_identity_as_username / use_subject_as_username: the client certificate's name replaces
  // the CONNECT's username (false, and the client refused, when the certificate gives none).
  [[nodiscard]] bool apply_certificate_username(Connection* connection, mqtt::ConnectPacket* connect);
  bool username_from_certificate(const Connection* connection) const;
  Next begin_password_check(Connection* connection, const mqtt::ConnectPacket& connect, std::span<const uint8_t> body,
                            uint8_t flags, std::string client_id, bool client_id_assigned);
  void forget_password_check(Connection* connection);
  // Ends an exchange with `reason` in the packet the connection's state calls for, and closes.
  void end_authentication(Connection* connection, mqtt::ReasonCode reason, std::string_view why);
  // AUTH with the agreed method and `data`; false (and the connection closed) when it would
  // pass the client's Maximum Packet Size.
  [[nodiscard]] bool send_auth(Connection* connection, mqtt::ReasonCode reason, std::string_view data);
  void refuse_connect(Connection* connection, mqtt::ProtocolVersion version, mqtt::ReasonCode reason,
                      std::string_view why);
  // The identity ACL rules (and later the password file) are checked against: the CONNECT's
  // username for now; the one place a certificate's identity (use_identity_as_username)
  // will take its place. nullopt: anonymous.
  std::optional<std::string_view> client_username(const Connection* connection,
                                                  const mqtt::ConnectPacket& connect) const;
  // The ACL file of the listener the connection came through; null when it has none.
  const auth::AclFile* listener_acl(const Connection* connection) const;
  // The ACL file's rules and the authorization hook together (authorization.cc): true only if
  // both allow (either may be absent). Counted and logged by the callers.
  bool may_publish(Session* session, std::string_view topic, uint8_t qos, bool retain);
  bool may_receive(Session* session, std::string_view topic);
  // $SYS...: written only by the broker's own $SYS publisher (an in-process client); a network
  // client's PUBLISH or will there is refused as Mosquitto refuses it (authorization.cc), except
  // $SYS/broker/connection/+/state, which Mosquitto lets a bridge write its notifications to.
  static bool reserved_for_broker(std::string_view topic) {
    if (!topic.starts_with("$SYS")) return false;
    constexpr std::string_view kBridgeStatePrefix = "$SYS/broker/connection/";
    constexpr std::string_view kBridgeStateSuffix = "/state";
    if (topic.size() > kBridgeStatePrefix.size() + kBridgeStateSuffix.size() && topic.starts_with(kBridgeStatePrefix) &&
        topic.ends_with(kBridgeStateSuffix)) {
      std::string_view name = topic.substr(kBridgeStatePrefix.size(),
                                           topic.size() - kBridgeStatePrefix.size() - kBridgeStateSuffix.size());
      if (name.find('/') == std::string_view::npos) return false;
    }
    return true;
  }
  ClientIdentity hook_identity(const Session* session) const;

  // The message interceptor and the event hook (hooks.cc); see the headers in include/coremq/.
  enum class Interception : uint8_t { kPass, kDropped, kStop, kHeld };
  // kPass: go on with *topic and publish.payload as the interceptor left them (and
  // rewrite_scratch_.properties when set); kDropped: refused and acknowledged; kStop: the
  // connection is closed; kHeld: the interceptor answers later (the input is held).
  Interception intercept_publish(Connection* connection, mqtt::PublishPacket& publish, std::string_view* topic);
  // Asks the interceptor; kDefer only when the connection is now held for its answer (a
  // deferral the broker cannot take is already turned into a drop).
  InterceptionVerdict call_interceptor(Connection* connection, const mqtt::PublishPacket& publish,
                                       std::string_view topic, MessageRewrite& rewrite);
  // Refuses a PUBLISH as refuse_publish does, with `reason` (MQTT 5), reporting `why`.
  [[nodiscard]] bool refuse_intercepted(Connection* connection, const mqtt::PublishPacket& publish,
                                        std::string_view topic, mqtt::ReasonCode reason,
                                        DropReason why = DropReason::kInterceptor);
  // The authorization hook's say on a PUBLISH (after the ACL file): kPass when allowed.
  Interception authorize_publish(Connection* connection, const mqtt::PublishPacket& publish, std::string_view topic);
  std::string_view encode_rewritten_properties(const MessageProperties& replaced);
  template <typename Call>
  void call_event_hook(Call&& call);
  void report_connected(Connection* connection, bool clean_start, bool session_present);
  void report_disconnected(Connection* connection, Session* session, const EndCause& cause,
                           bool will_published);
  // `added` null: removed.
  void report_subscription(Session* session, std::string_view filter, const SubscriptionOptions* added);
  void report_dropped(const Session* session, std::string_view topic, uint8_t qos, DropReason reason) {
    if (events_ != nullptr) [[unlikely]] report_dropped_now(session, topic, qos, reason);
  }
  void report_dropped_now(const Session* session, std::string_view topic, uint8_t qos, DropReason reason);

  // Asynchronous decisions (async_hooks.cc). A hook that may answer later gets a Deferral;
  // when it defers, hold_for_decision keeps the packet being handled (current_packet_) and
  // holds the connection's input until on_hook_answer (or the timeout) handles it again.
  class Deferral;
  enum class Held : uint8_t { kHeld, kBusy, kBroken };
  Held hold_for_decision(Connection* connection, Deferral& deferral, PendingDecision::Stage stage);
  void replay_decision(Connection* connection);
  // A deferred authentication step: holds the client's input until on_hook_answer applies the
  // answer (or ends the exchange: busy, or a hook that did not call defer()). False when the
  // connection ended.
  [[nodiscard]] bool hold_authentication(Connection* connection, Deferral& deferral);
  void apply_authentication_answer(Connection* connection, HookAnswer& answer);
  void forget_pending_decision(Connection* connection);
  void expire_pending_decisions(int64_t now_ms);
  // The answer a PUBLISH or SUBSCRIBE being handled again got for `stage`, or null.
  HookAnswer* stored_answer(Connection* connection, PendingDecision::Stage stage);
  std::string assign_client_id();
  // Whether a keep-alive is over --max-keepalive (see the definition for keep-alive 0).
  bool over_max_keep_alive(uint16_t keep_alive_seconds) const;
  void resume_session(Session* session);

  // PUBLISH and its acknowledgements (handle_publish.cc).
  bool handle_publish(Connection* connection, std::span<const uint8_t> body, uint8_t flags);
  bool handle_ack(Connection* connection, mqtt::PacketType type, std::span<const uint8_t> body, uint8_t flags);
  bool handle_disconnect(Connection* connection, std::span<const uint8_t> body, uint8_t flags);
  // `replaced_properties`: the interceptor's rewrite of every MQTT 5 property (null: as received).
  MessageRef make_message(Connection* connection, const mqtt::PublishPacket& publish, std::string_view topic,
                          const MessageProperties* replaced_properties = nullptr);
  // The received PUBLISH (or will) properties a subscriber gets, encoded into
  // property_scratch_ (valid until its next use).
  std::string_view encode_forwarded_properties(const mqtt::Properties& received);
  static void encode_ack(base::ByteBuffer& out, mqtt::ProtocolVersion version, mqtt::PacketType type,
                         uint16_t packet_id, uint8_t reason);
  [[nodiscard]] bool send_ack(Connection* connection, mqtt::PacketType type, uint16_t packet_id, uint8_t reason);
  // A PUBACK, PUBREC or PUBCOMP that does not fit the message's QoS flow: a protocol error.
  bool close_for_wrong_ack(Connection* connection, mqtt::PacketType type, const OutgoingInflight& inflight);
  // A PUBLISH the client's ACL does not let it make: dropped, and acknowledged as Mosquitto does.
  bool refuse_publish(Connection* connection, const mqtt::PublishPacket& publish, std::string_view topic,
                      std::string_view why = "ACL file or authorization hook");
  // PUBACK/PUBREC of a client's PUBLISH: a retained one waits for every peer (barrier.cc).
  [[nodiscard]] bool acknowledge_publish(Connection* connection, mqtt::PacketType type, uint16_t packet_id,
                                         bool retain);

  // SUBSCRIBE / UNSUBSCRIBE (handle_subscribe.cc).
  bool handle_subscribe(Connection* connection, std::span<const uint8_t> body, uint8_t flags);
  bool handle_unsubscribe(Connection* connection, std::span<const uint8_t> body, uint8_t flags);
  uint8_t subscribe_one(Session* session, const mqtt::SubscribeTopic& entry, uint32_t identifier, bool* existed);
  // The authorization hook's say on one filter: kAllow, kDeny, kTimedOut (a deferred answer
  // that did not come), kNone (deferred: the connection is now held), or kBusy
  // (max_pending_hook_decisions reached).
  HookAnswer::Kind authorize_subscribe(Session* session, std::string_view filter, uint8_t qos);
  bool unsubscribe_one(Session* session, std::string_view filter);
  void send_retained(Session* session, std::string_view filter, const SubscriptionOptions& options);
  void post_interest(CrossShardItem::Kind kind, std::string_view filter);
  void remove_all_subscriptions(Session* session);

  // Routing and delivery (delivery.cc).
  // A message entering the broker on this shard (a PUBLISH or a will).
  void publish_from_here(MessageRef message);
  // Applies a retained PUBLISH to this shard's copy of the retained store and, for one
  // that entered here, sends it to every other shard's copy (see RetainedStore).
  void update_retained(const MessageRef& message, bool from_here);
  uint64_t next_retain_stamp();
  // Matches against this shard's own subscribers and delivers.
  void deliver_locally(const MessageRef& message);
  void dispatch_shared(const MessageRef& message, SharedSubscriptions::Group& group, uint32_t hops);
  void deliver_shared_locally(const MessageRef& message, SharedSubscriptions::Group& group, uint32_t hops);
  void deliver_to_session(Session* session, const MessageRef& message, Delivery delivery);
  void send_publish(Session* session, const MessageRef& message, const Delivery& delivery, bool dup,
                    uint16_t packet_id);
  // Writes the header of `message` in `form` (PublishHeaderCache) with `packet_id` into `out`:
  // from the cache when the last header was this message's in this form, else by `encode`,
  // which then fills the cache. `property_block_size`: the MQTT 5 property block after the
  // packet id (0 for 3.1/3.1.1).
  template <typename Encode>
  void encode_publish_header_cached(base::ByteBuffer& out, const MessageRef& message, uint8_t form, uint16_t packet_id,
                                    size_t property_block_size, Encode&& encode);
  // The payload after its header: copied into the output, or, for a large one to a plain-TCP
  // client, sent later from the message itself (broker/output_references.h).
  void stage_payload(Connection* connection, const MessageRef& message, std::string_view payload);
  // True when `payload` is large and ends the connection's input buffer, which its message
  // may then take over (make_message).
  bool ends_input_buffer(const Connection* connection, std::string_view payload) const;
  // Bytes the packet kept in the connection's input still lacks; 0 when its fixed header is not
  // complete yet.
  size_t bytes_to_complete_buffered_packet(const Connection* connection) const;
  // Keeps the start of an incomplete packet (or more of it) until the rest arrives.
  void append_partial_packet(Connection* connection, std::span<const uint8_t> bytes);
  bool exceeds_client_packet_limit(const Connection* connection, const Message& message,
                                   const Delivery& delivery) const;
  void pump_queue(Session* session);
  void enqueue(Session* session, const MessageRef& message, Delivery delivery);
  // store_sequence: the message's record when it comes from the queue (0: none yet).
  void start_inflight(Session* session, const MessageRef& message, Delivery delivery, uint64_t store_sequence = 0);
  OutgoingInflight* find_inflight(Session* session, uint16_t packet_id);
  void finish_inflight(Session* session, uint16_t packet_id);
  uint16_t next_packet_id(Session* session);
  uint32_t send_window(const Session* session) const;
  bool output_over_limit(const Connection* connection) const;

  // The cross-shard barrier (barrier.cc): answers that promise something about every shard
  // (a SUBACK, the PUBACK/PUBREC of a retained PUBLISH) wait until every peer has applied
  // the changes this shard posted before them. Each change posted to every peer (interest
  // add/remove, retained update) takes the next change sequence number; a waiting answer
  // needs the number current when it was made; a kBarrierRequest for it goes to every peer
  // behind the changes, and each peer's kBarrierAck confirms them. Meanwhile the client's
  // input is held (Connection::input_held), so its later packets are answered after it.
  struct WaitingAnswer {
    Connection* connection = nullptr;
    uint64_t sequence = 0;
    base::ByteBuffer packet;  // the encoded answer
    // SUBACK: the filters whose retained messages follow the SUBACK, in SUBSCRIBE order.
    std::vector<std::string> retained_filters;
    // With a journal: the batch that must be durable first (what the answer acknowledges).
    uint64_t batch = 0;
    // A SUBACK or CONNACK holds the client's input until it leaves; an acknowledgement that
    // waits for the store does not (the client's next PUBLISH is handled meanwhile, so a
    // pipelining publisher's acks share batches), unless the client has too many waiting.
    bool holds_input = true;
  };
  // Counts a change just posted to every peer.
  void note_change_posted() { ++change_sequence_; }
  // True when some change of this shard is not yet confirmed by every peer: an answer made
  // now must wait. Never with one shard.
  bool answers_must_wait() const { return change_sequence_ > applied_by_all_ || !journal_caught_up(); }
  bool journal_caught_up() const;
  uint64_t journal_batch_needed() const;
  bool journal_durable(uint64_t batch) const;
  // Sends, in order, the waiting answers whose peers and batch are done.
  void release_waiting_answers();
  // Holds the connection's input and keeps `answer` until every peer has applied every
  // change posted so far.
  void wait_for_peers(WaitingAnswer answer);
  void on_barrier_ack(uint32_t peer, uint64_t sequence);
  // Sends the answer and its retained messages, then handles the input that waited.
  void send_waiting_answer(WaitingAnswer& answer);
  void resume_held_input(Connection* connection);
  // A connection that ends drops its waiting answers (the client will never read them).
  void drop_waiting_answers(Connection* connection);
  // With --persistence: an acknowledgement that promises durable state (the PUBACK/PUBREC of a
  // QoS 1/2 PUBLISH, a PUBREL to or PUBCOMP from a persistent session), sent once everything
  // this shard and, through the barrier, its peers changed before it is durable.
  bool send_durable_ack(Connection* connection, mqtt::PacketType type, uint16_t packet_id, uint8_t reason);
  // Puts an acknowledgement (or a PINGRESP) in the waiting list, behind the client's earlier ones.
  bool queue_ack(Connection* connection, mqtt::PacketType type, uint16_t packet_id, uint8_t reason);

  // Durable persistence (persistence.cc); every one is a no-op without a journal.
  // The session's record as it stands (a put), or its deletion when it is no longer persistent.
  void journal_session(Session* session);
  void journal_session_gone(Session* session);
  // This shard writes the retained record of the topics it owns (owner_shard_of(topic)), in
  // the order its copy applies them, so the store holds what the copies converged on.
  void journal_retained(const MessageRef& message, RetainedStore::Update update);
  // A peer's barrier request, answered once this shard's changes before it are durable.
  void answer_barrier_request(uint32_t peer, uint64_t sequence);
  // Outgoing QoS 1/2 messages of persistent sessions (persistent_messages.cc); each is a no-op
  // for a session the store does not hold, a QoS 0 delivery, or without a journal.
  bool stores_outgoing(const Session* session, uint8_t qos) const {
    return journal_ != nullptr && session->persisted && qos > 0;
  }
  // The message queued (packet_id 0) or sent with packet_id: its record, and a reference to
  // its body (written with the first one). *sequence names the record (0: make one); *slot is
  // its place in the open batch (Delivery::store_slot).
  void journal_outgoing(Session* session, uint64_t* sequence, persist::JournalSlot* slot, const MessageRef& message,
                        const Delivery& delivery, uint16_t packet_id);
  // QoS 2, PUBREC received: the record says PUBREL sent; the body is no longer needed.
  void journal_pubrel_sent(Session* session, OutgoingInflight& inflight);
  // The message is done (acknowledged, dropped, expired, handed to another member): its
  // record goes, and its body's reference (message: null once PUBREC came).
  void journal_outgoing_done(uint64_t* sequence, persist::JournalSlot* slot, const Session* session,
                             const Message* message);
  // Forgets (without deleting records) every body reference the session's messages hold.
  void release_stored_outgoing(Session* session);
  // The session just became persistent: what it already holds goes to the store too.
  void journal_existing_outgoing(Session* session);
  void journal_incoming_qos2(Session* session, uint16_t packet_id, bool received);
  // The session's queue sends nothing until the open batch is durable; on_durable pumps it.
  void hold_queue_for_store(Session* session);
  void pump_queues_held_for_store();
  // A queue entry's record (hold_body and create when `created`, else the new state of a record
  // already written).
  void write_outgoing_record(Session* session, uint64_t sequence, persist::JournalSlot* slot,
                             const MessageRef& message, const Delivery& delivery, uint16_t packet_id, bool created);
  // Writes the records of the session's entries deferred to this moment.
  void write_deferred_records();
  void write_deferred_records(Session* session);
  uint64_t hold_body(const MessageRef& message);
  void release_body(const Message* message);
  void restore_outgoing(Session* session, const persist::LoadedSession& loaded, const RestoredBodies& bodies);

  // Sessions, wills and their timers (sessions.cc).
  Session* find_session(std::string_view client_id);
  void destroy_session(Session* session);
  void publish_will_message(Session* session);
  void schedule(int64_t due_ms, bool is_will, Session* session);
  void run_due_timers(int64_t now_ms);
  void fail_over_shared_deliveries(Session* session);
  // The info lines of a client's connect and disconnect (connection_log.cc), rate-limited by
  // Options::log_connection_lines_per_second.
  void log_connected(const Connection* connection, const Session* session, std::optional<std::string_view> username,
                     bool clean_start, bool session_present);
  void log_disconnected(const Connection* connection, const Session* session, const EndCause& cause);

  const uint32_t shard_id_;
  const uint32_t shard_count_;
  const Options& options_;
  IoPort& io_;
  ShardCounters counters_;
  // effective_listeners(options_), indexed by Connection::listener, and whether each lets
  // clients without a username in (anonymous_allowed, resolved once).
  const std::vector<ListenerOptions> listeners_;
  std::vector<bool> anonymous_allowed_;
  ListenerSecurityList listener_security_;

  // Keyed by a view of the session's own client_id (a Session never moves), so an id is
  // stored once.
  absl::flat_hash_map<std::string_view, std::unique_ptr<Session>, base::StringViewHash, base::StringViewEqual>
      sessions_;
  // Every live connection this shard's protocol side knows about, for ticks and shutdown.
  absl::flat_hash_set<Connection*> connections_;

  // This shard's subscriptions: filter -> (session, options).
  topic::TopicTree<Session*, SubscriptionOptions> subscriptions_;
  // Which other shards have subscribers for which filters (their local filters, as they told us).
  topic::TopicTree<uint32_t, uint8_t> remote_interest_;
  SharedSubscriptions shared_;
  RetainedStore retained_;

  // Session expiry and delayed wills, earliest first; entries are checked against the
  // session's timer_generation when due, so cancelling one is free.
  struct Timer {
    int64_t due_ms;
    uint64_t generation;
    bool is_will;
    std::string client_id;
    bool operator>(const Timer& other) const { return due_ms > other.due_ms; }
  };
  // A min-heap (std::push_heap with std::greater). Stale entries are dropped when due, or
  // all at once when they outnumber the sessions (a client that reconnects often with a
  // long expiry would otherwise grow it without bound).
  std::vector<Timer> timers_;
  // Where every Session::timer_generation comes from: one count for the whole shard, so a
  // generation names one period of one session and never repeats, not even for a later
  // Session of the same client id (a per-session count restarting at 0 let an old
  // session's timer match the new one and end it at the old deadline).
  uint64_t timer_generation_last_ = 0;

  // Scratch for one dispatch: sessions matched with their merged delivery; shards to forward to.
  struct Match {
    Session* session;
    Delivery delivery;
  };
  std::vector<Match> match_scratch_;
  uint64_t match_epoch_ = 0;
  std::vector<uint64_t> shard_match_epoch_;
  // Client ids the broker assigns are this prefix and 32 hex digits of random_.
  static constexpr std::string_view kAssignedIdPrefix = "coremq-";
  // Largest packet whose input buffer is sized at its first bytes (append_partial_packet).
  static constexpr size_t kInputReserveAtOnceMax = 64 * 1024;

  base::RandomPool random_;
  int64_t now_ms_ = 0;
  int64_t turn_time_us_ = 0;
  base::LogHistogram delivery_latency_us_;
  uint32_t hand_off_target_ = 0;  // set by handle_connect for on_bytes
  uint64_t retain_clock_ = 0;
  // The barrier (see WaitingAnswer). peer_applied_[shard]: highest sequence that peer confirmed.
  uint64_t change_sequence_ = 0;
  uint64_t barrier_requested_ = 0;
  uint64_t applied_by_all_ = 0;
  std::vector<uint64_t> peer_applied_;
  // In sequence order (each is made with the sequence current then); one per held connection.
  std::deque<WaitingAnswer> waiting_answers_;
  // Persistence: the journal (null: none), the clock offset, and peers' barrier requests that
  // wait for this shard's batch (in arrival order, so acks to one peer keep theirs).
  persist::ShardJournal* journal_ = nullptr;
  int64_t unix_offset_ms_ = 0;
  bool store_full_ = false;
  struct DeferredBarrierAck {
    uint32_t peer;
    uint64_t sequence;
    uint64_t batch;
  };
  std::deque<DeferredBarrierAck> deferred_barrier_acks_;
  std::string record_scratch_;
  std::string key_scratch_;
  // Bodies in the store, by the message they hold; deleted with their last reference.
  struct StoredBody {
    uint64_t id = 0;
    uint32_t references = 0;
    persist::JournalSlot slot;  // its record's place in the open batch, while new there
  };
  absl::flat_hash_map<const Message*, StoredBody> stored_bodies_;
  // Client ids of sessions whose queue waits for a batch (Session::send_after_batch).
  std::vector<std::string> queues_held_for_store_;
  std::vector<std::string> queues_pumping_;  // pump_queues_held_for_store's: the list it works through
  // Client ids of sessions with records deferred to the open batch's departure (one entry per
  // session and batch: Session::records_deferred).
  std::vector<std::string> deferred_record_sessions_;
  uint64_t stored_body_bytes_ = 0;
  // CONNECTs waiting for the password checker, by the token it answers with.
  absl::flat_hash_map<uint64_t, Connection*> password_checks_;
  uint64_t password_check_last_ = 0;
  mqtt::PublishPacket publish_scratch_;
  std::vector<mqtt::SubscribeTopic> subscribe_scratch_;
  std::vector<std::string_view> unsubscribe_scratch_;
  std::vector<uint8_t> reason_code_scratch_;
  std::vector<mqtt::UserProperty> user_property_scratch_;
  base::ByteBuffer property_scratch_;
  // The last PUBLISH header encoded without per-delivery properties (any 3.1/3.1.1 client; an
  // MQTT 5 client with no expiry, subscription identifier or topic alias in it). A message
  // fanned out goes to many sessions in a row: each after the first copies these bytes and
  // patches its packet id instead of encoding again (encode_publish_header_cached).
  struct PublishHeaderCache {
    MessageRef message;  // held, so no other message can reuse its address meanwhile
    uint8_t form = 0;    // qos | retain << 2 | MQTT 5 << 3
    uint8_t size = 0;
    uint8_t packet_id_at = 0;  // 0: QoS 0, no packet id
    std::array<uint8_t, 128> bytes{};
  };
  PublishHeaderCache header_cache_;
  // Options' hooks, cached: the hot paths test these pointers.
  MessageInterceptor* const interceptor_;
  EventHook* const events_;
  MessageRewrite rewrite_scratch_;
  // The packet handle_packet is handling (for hold_for_decision).
  mqtt::PacketType current_packet_type_ = mqtt::PacketType::kPublish;
  uint8_t current_packet_flags_ = 0;
  std::span<const uint8_t> current_packet_body_;
  // Set by make_message when a message took the connection's input buffer over; read and
  // cleared by whoever called process_input on that buffer.
  bool input_taken_by_message_ = false;
  // Decisions this shard waits for, by token; the one being handled again.
  absl::flat_hash_map<uint64_t, Connection*> pending_decisions_;
  uint64_t decision_token_last_ = 0;
  PendingDecision* replaying_ = nullptr;
  std::vector<std::pair<std::string_view, std::string_view>> intercepted_user_properties_;
};

// What a hook that may answer later gets (HookDeferral): the first defer() takes a token
// and a handle, unless the shard already waits for Options::max_pending_hook_decisions.
class ShardState::Deferral final : public HookDeferral {
 public:
  explicit Deferral(ShardState& state) : state_(state) {}
  HookCompletion defer() override;
  uint64_t token() const { return token_; }
  bool over_bound() const { return over_bound_; }

 private:
  ShardState& state_;
  uint64_t token_ = 0;
  bool asked_ = false;
  bool over_bound_ = false;
};

}  // namespace coremq::broker
