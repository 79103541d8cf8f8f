// One shard: a thread pinned to a CPU running one io_uring event loop that owns a set
// of connections and everything MQTT about them (its ShardState). Each turn of the
// loop enters the kernel once (submit + wait), reaps every completion, drains the
// rings from the other shards, then sends each connection's gathered output with one
// send and pushes staged cross-shard items in one batch per peer.
// A Shard is created and started by BrokerImpl; every method other than the
// constructor, request_stop() and wake_from_outside() runs on the shard's own thread
// (tests/shard/ instead drives unstarted Shards turn by turn on its one thread).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "auth/password_checker.h"
#include "base/log_histogram.h"
#include "base/spsc_ring.h"
#include "broker/connection.h"
#include "broker/cross_shard.h"
#include "broker/shard_state.h"
#include "coremq/options.h"
#include "io/buffer_ring.h"
#include "io/ring.h"
#include "persist/store.h"
#include "shard/control.h"
#include "transport/factory.h"
#include "shard/hook_channel.h"
#include "shard/local_hub.h"
#include "shard/bridge.h"

namespace coremq::shard {

using CrossShardRing = base::SpscRing<broker::CrossShardItem>;

// What a shard knows of each other shard: the ring it writes to it, and how to wake it.
struct Peer {
  CrossShardRing* outbound = nullptr;
  class Shard* shard = nullptr;
};

// One listening socket of a shard: its fd and the index of its listener (Connection::listener
// of what it accepts). Its multishot accept's user_data points at it, so it is 8-aligned (the
// low bits carry the Tag); the Shard owns it and closes the fd.
struct alignas(8) ListenSocket {
  int fd = -1;
  uint8_t listener = 0;
  bool accept_armed = false;
};

// Shared by all shards, owned by BrokerImpl, outliving every shard thread.
struct SharedState {
  std::atomic<uint32_t> connections_total{0};
  std::atomic<uint32_t> shards_ready{0};
  // Shards that pushed every cross-shard item their start-up posted (restored sessions' interest).
  std::atomic<uint32_t> shards_restore_posted{0};
  std::atomic<uint32_t> shards_failed{0};
};

class Shard final : public broker::IoPort {
 public:
  Shard(uint32_t shard_id, uint32_t shard_count, const Options& options, SharedState& shared,
        std::vector<ListenSocket> listen_sockets);
  // One socket of listener 0 (tests/shard/).
  Shard(uint32_t shard_id, uint32_t shard_count, const Options& options, SharedState& shared, int listen_fd);
  ~Shard() override;
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Wiring, before start(): rings between every ordered pair of shards.
  void set_peers(std::vector<Peer> peers, std::vector<CrossShardRing*> inbound);
  // Before start(): the checker of password-file listeners (none: no listener has a file).
  void set_password_checker(auth::PasswordChecker* checker) { password_checker_ = checker; }
  // The controlling thread (one at a time): queues an item for the shard's next turn and
  // wakes it; false when its control ring is full (nothing queued).
  [[nodiscard]] bool post_control(ControlItem&& item);
  // Before start(): per listener index, what makes its connections' transports (null: plain TCP).
  void set_transport_factories(std::vector<std::unique_ptr<transport::TransportFactory>> factories);
  // Wiring, before start(): each listener's security settings (ACL file ...), given to the
  // ShardState the thread makes.
  void set_listener_security(broker::ListenerSecurityList listeners) { listener_security_ = std::move(listeners); }

  // Starts the thread; it sets up its ring, then waits until every shard is ready.
  void start(int cpu);
  void join();

  // Any thread: ask the loop to stop (graceful close of every connection).
  void request_stop();
  // After every shard thread has joined: frees the items this shard staged or was sent
  // but never handled (the last shards to stop may still have posted to stopped ones).
  void release_leftovers();

  // IoPort (shard thread only).
  void request_flush(broker::Connection* connection) override;
  void close_connection(broker::Connection* connection, bool flush_first) override;
  void hand_off_connection(broker::Connection* connection, uint32_t target_shard) override;
  void post(uint32_t target_shard, broker::CrossShardItem item) override;
  void resume_input(broker::Connection* connection) override;
  int64_t now_ms() const override { return now_ms_; }
  broker::PeerAddress peer_address(const broker::Connection& connection) override;
  [[nodiscard]] bool check_password(uint64_t token, uint8_t listener, std::string_view username, bool has_password,
                                    std::string_view password) override;
  HookCompletion defer_decision(uint64_t token, uint32_t index) override;

  // In-process clients (shard_local.cc). Wiring, before start(): the hub and this shard's link.
  void attach_local(LocalHub* hub, LocalShardLink* link);
  // Any thread: something was pushed into this shard's local intake; wakes the shard if it is
  // (about to be) asleep.
  void wake_from_outside();

  // Wiring, before start(): the bridges this shard runs (src/shard/bridge.h).
  void set_bridges(std::vector<BridgeSetup> setups) { bridge_setups_ = std::move(setups); }
  // Shard thread only (a ControlItem::Kind::kRun callback): each bridge's counters.
  std::vector<BridgeStats> bridge_stats() const;

  uint32_t id() const { return shard_id_; }
  // Shard thread only (a ControlItem::Kind::kRun callback): the broker state it owns.
  broker::ShardState& state() { return *state_; }
  // Shard thread only, for metrics: how long each loop turn's work took (kernel wait left
  // out), items waiting in the rings from every peer, and whether input is paused now.
  const base::LogHistogram& turn_duration_us() const { return turn_duration_us_; }
  size_t inbound_ring_depth() const;
  size_t socket_count() const { return connections_.size(); }
  bool input_paused() const { return input_paused_; }
  // The durable store (--persistence), or null: its journal for this shard is this thread's.
  const persist::Store* store() const { return store_; }
  // Wiring, before start() (--persistence): the store, and what this shard takes from it as
  // it starts (every retained message, the sessions it owns); both outlive start().
  void set_store(persist::Store* store, const std::vector<broker::MessageRef>* retained,
                 const std::vector<persist::LoadedSession>* sessions,
                 const broker::ShardState::RestoredBodies* bodies) {
    store_ = store;
    restore_retained_ = retained;
    restore_sessions_ = sessions;
    restore_bodies_ = bodies;
  }
  // Set during start-up: an error message if the ring could not be made.
  const std::string& startup_error() const { return startup_error_; }

 private:
  // Parked "buffer ids" that are not buffers (ids stop at 32767): the end of the stream, and
  // an adopted connection's first bytes, kept in its input while parked.
  static constexpr uint16_t kFirstParkedMarker = 0xFFFE;
  static constexpr uint16_t kParkedInput = 0xFFFE;
  static constexpr uint16_t kParkedEndOfStream = 0xFFFF;

  // kDiscard: a closing connection's receive into discard_buffer_ (see begin_linger);
  // kWakeSent: this shard's MSG_RING to a peer (the pointer is the peer), whose result is checked.
  enum class Tag : uint64_t {
    kAccept = 0, kReceive = 1, kSend = 2, kEventfd = 3, kWake = 4, kIgnore = 5, kDiscard = 6, kWakeSent = 7
  };
  static uint64_t user_data(void* pointer, Tag tag) { return reinterpret_cast<uint64_t>(pointer) | uint64_t(tag); }

  // tests/shard/ drives a Shard on its own thread, turn by turn, without start().
  friend class ShardTestPeer;

  void run(int cpu);
  [[nodiscard]] bool set_up();
  void loop();
  // One turn of the loop: kernel, completions, peers' items, tick, end of turn. Returns
  // false once a stopping shard is done (then finish_loop()).
  bool turn();
  void finish_loop();
  void enter_kernel();
  void handle_completion(const io_uring_cqe* cqe);
  void on_accept(ListenSocket* socket, int result, bool more);
  void on_receive(broker::Connection* connection, const io_uring_cqe* cqe);
  void on_send(broker::Connection* connection, int result);
  void on_eventfd();

  void cancel_operation(void* pointer, Tag tag);
  void arm_accept(ListenSocket& socket);
  void arm_idle_accepts();  // every socket whose accept is not in the kernel
  void arm_eventfd();
  void arm_receive(broker::Connection* connection);
  void start_send(broker::Connection* connection);
  // A send that gathers headers and payloads sent by reference (one sendmsg), and the end of
  // one (broker/output_references.h).
  void submit_gathered_send(broker::Connection* connection);
  static void drop_gathered_send(broker::OutputReferences* references);
  void shut_down_socket(broker::Connection* connection);
  void maybe_release(broker::Connection* connection);
  broker::Connection* open_connection(int fd, int64_t accepted_at_ms);

  void drain_inbound();
  void drain_inbound_from(uint32_t from, size_t max_items);
  // Start-up, after every shard set up and before any loop turn: pushes what restore_from_store
  // posted to the peers and applies what they posted, so every shard knows every restored
  // session's interest before any shard handles a client.
  void exchange_restored_interest();
  void drain_password_verdicts();
  bool password_verdicts_ready() const;
  // The store's side (shard_store.cc); each returns at once without a store.
  void restore_from_store();
  void drain_store_answers();
  bool store_answers_ready() const;
  void submit_to_store();
  void tick_store();
  // Answers of asynchronous hook decisions (hook_channel.h), handed to ShardState.
  void drain_hook_answers();
  bool hook_answers_ready() const { return !hook_channel_->answers.empty(); }
  void drain_control();
  // Input pause: set where items are staged (post), lifted at the end of a turn.
  void pause_input(size_t staged);
  void update_input_pause();
  void deliver_received(broker::Connection* connection, uint16_t buffer_id, uint32_t length);
  bool wants_receive(const broker::Connection* connection) const;
  bool should_park(const broker::Connection* connection) const;
  void park(broker::Connection* connection, uint16_t buffer_id, uint32_t length);
  struct ParkedReceive;
  ParkedReceive take_parked(size_t index);
  void recycle_parked(const ParkedReceive& entry);
  void replay(const ParkedReceive& entry);
  void replay_parked();
  void compact_parked();
  // A connection moving to another shard: appends its parked bytes to `into`, in order, and
  // recycles their buffers (a parked end of stream is dropped: the socket reports it again).
  void move_parked_input(broker::Connection* connection, base::ByteBuffer& into);
  void starve(broker::Connection* connection);
  void unstarve(broker::Connection* connection);
  // A connection that closes or moves leaves starved_ and parked_: at once for a hand-off
  // (its parked bytes go along), by the end of the turn for a close.
  void forget_deferred_input(broker::Connection* connection, base::ByteBuffer* moved_input);
  void purge_closed_parked();
  void release_items_for_stopped_peer(uint32_t target);
  void adopt(broker::ConnectionHandoff* handoff);
  void flush_sends();
  void flush_cross_shard();
  // Pushes what the peer's ring takes of the items staged for it (or releases them all if
  // its loop has ended); the wake waits for flush_cross_shard.
  void push_staged(uint32_t target);
  void wake(Shard* peer);
  void end_of_turn();
  void tick();
  void begin_shutdown();
  bool inbound_empty() const;
  bool has_staged_items() const;
  void update_clock();

  // Closing (see close_connection): the deadline, the linger after the flush, the stats line.
  void begin_linger(broker::Connection* connection);
  void arm_discard(broker::Connection* connection);
  void on_discard(broker::Connection* connection, int result);
  void force_close(broker::Connection* connection);
  void check_close_deadlines();
  void on_wake_sent(Shard* peer, int result);
  void submit_prepared_wakes_before_exit();
  void log_stats() const;

  // TLS and WebSocket connections (shard_channel.cc).
  // False when the listener's transport could not be made (OpenSSL out of memory).
  [[nodiscard]] bool attach_channel(broker::Connection* connection);
  static bool has_unsent_output(const broker::Connection* connection);
  void deliver_through_channel(broker::Connection* connection, std::span<const uint8_t> wire);
  void prepare_channel_send(broker::Connection* connection);
  void keep_unsent_wire_bytes(broker::Connection* connection, size_t sent);
  void encode_transport_close(broker::Connection* connection);
  void complete_delayed_hand_off(broker::Connection* connection);
  bool handshake_waits(const broker::Connection* connection) const;
  void start_turn_handshakes();
  // In-process clients (shard_local.cc): the intake is read once per turn; a local
  // connection's output goes to the delivery thread instead of a socket, and its close
  // releases it at once (there is no socket to linger on).
  void drain_local_intake();
  void handle_local_command(LocalCommand& command);
  void open_local_connection(LocalClientCore* core, std::span<const uint8_t> connect);
  bool local_work_ready() const;
  void take_local_output(broker::Connection* connection);
  // A client with inline callbacks: PUBLISH and PUBREL are handled here, on the shard thread
  // (callbacks, then PUBACK/PUBREC/PUBCOMP fed back at once); the rest goes to the delivery thread.
  void deliver_inline(broker::Connection* connection, LocalClientCore* core, base::ByteBuffer bytes);
  void update_inline_subscriptions(LocalCommand& command);
  void close_local_connection(broker::Connection* connection);
  void resume_local_input(broker::Connection* connection);
  // Sends what waits (items, blocked connections' output) first; false while anything still waits.
  bool retry_local_output();
  void emit_local(LocalOutput&& item);
  void tick_local();
  void release_local_leftovers();

  const uint32_t shard_id_;
  const uint32_t shard_count_;
  const Options& options_;
  SharedState& shared_;
  // Never resized once built: each accept's user_data points into it.
  std::vector<ListenSocket> listen_sockets_;
  int event_fd_ = -1;
  std::string startup_error_;

  // Connections still open when the loop ended: freed only after ring_ is torn down,
  // since until then the kernel may still touch their buffers.
  std::vector<std::unique_ptr<broker::Connection>> closed_at_exit_;
  io::Ring ring_;
  io::BufferRing buffers_;
  std::unique_ptr<broker::ShardState> state_;
  broker::ListenerSecurityList listener_security_;
  std::thread thread_;

  std::vector<Peer> peers_;                        // indexed by shard id (own slot unused)
  std::vector<CrossShardRing*> inbound_;           // indexed by sending shard id
  std::vector<std::vector<broker::CrossShardItem>> staged_;  // per target shard
  std::vector<bool> peer_needs_wake_;
  bool wake_pending_ = false;  // some peer_needs_wake_ is set

  absl::flat_hash_set<broker::Connection*> connections_;  // every connection with an open fd here
  std::vector<broker::Connection*> flush_list_;
  std::vector<broker::Connection*> rearm_list_;
  std::vector<broker::Connection*> release_list_;

  // Back-pressure: while this shard has more cross-shard items staged than the peers'
  // rings can take (--cross-shard-queue-capacity), received data is parked, unread, in
  // its receive buffers. Once the buffer ring runs dry the kernel stops receiving and
  // TCP pushes back on the publishers; memory stays bounded by the buffer ring. A held
  // connection (Connection::input_held) parks its own input the same way.
  // Lifetimes: a connection stays alive while it has entries on parked_ (each counts in
  // operations_in_flight) or is starved, and leaves both lists when it closes or moves, by
  // the end of that turn (forget_deferred_input), so neither ever points at a freed one.
  struct ParkedReceive {
    broker::Connection* connection;  // null once replayed or dropped (compacted away)
    uint16_t buffer_id;              // or kParkedInput / kParkedEndOfStream
    uint32_t length;
  };
  bool input_paused_ = false;
  std::vector<ParkedReceive> parked_;  // in arrival order
  size_t parked_live_ = 0;             // entries of parked_ not yet replayed or dropped
  bool replay_wanted_ = false;         // parked input may be replayable: try at the turn's end
  uint32_t replay_depth_ = 0;          // > 0 while a replay walks parked_ by index
  bool buffers_returned_ = false;      // a receive buffer was recycled this turn
  bool parked_purge_wanted_ = false;   // a connection with parked entries closed this turn
  bool starved_stale_ = false;         // starved_ holds a connection closed or moved this turn
  std::vector<broker::Connection*> starved_;  // receives that ended on -ENOBUFS while buffers were parked

  // The cross-shard wake protocol (Seastar's): a shard about to block sets sleeping_,
  // then looks at its inbound rings once more; a producer that pushed checks it after
  // a full fence and wakes the shard only if it is (about to be) asleep.
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> stop_requested_{false};
  // Set when this shard's loop has ended: peers then release what they staged for it.
  std::atomic<bool> loop_ended_{false};
  bool stopping_ = false;
  int64_t now_ms_ = 0;
  int64_t manual_clock_ms_ = -1;  // tests only: >= 0 replaces CLOCK_MONOTONIC_COARSE
  base::LogHistogram turn_duration_us_;
  int64_t next_tick_ms_ = 0;
  int64_t next_idle_sweep_ms_ = 0;
  int64_t next_refusal_log_ms_ = 0;
  int64_t shutdown_deadline_ms_ = 0;
  uint64_t eventfd_value_ = 0;

  // ---- closing, wake-ups and stats (close path) ----
  // A broker-initiated close that has something to tell the client (flush_first with
  // output) flushes it, shuts the write side (the client reads the DISCONNECT, then EOF),
  // then reads and discards what the client still sends until it closes its side, so the
  // kernel never answers the client's late writes with RST before it read the DISCONNECT.
  // The whole close is bounded by --close-linger (then the socket is reset, which frees it
  // even when the client never reads) and the discarding by --close-linger-bytes. Entries
  // live from close_connection until the connection is released (maybe_release).
  struct Closing {
    int64_t deadline_ms = 0;
    uint64_t discarded_bytes = 0;
    bool lingering = false;      // output flushed, write side shut, discarding input
    bool discard_armed = false;  // a kDiscard receive is in the kernel
  };
  absl::flat_hash_map<broker::Connection*, Closing> closing_;
  // Where lingering receives put what they discard: never read, so every lingering
  // connection of the shard may share it (no provided buffer is taken from the ring).
  std::array<uint8_t, 4096> discard_buffer_{};
  // Peers woken by a MSG_RING prepared this turn and not yet submitted: when the loop
  // leaves before the next submit they are woken through their eventfd instead.
  std::vector<Shard*> wakes_prepared_;
  int64_t next_stats_ms_ = 0;
  int64_t next_wake_warning_ms_ = 0;

  // ---- transports (shard_channel.cc) ----
  std::vector<std::unique_ptr<transport::TransportFactory>> transport_factories_;  // by listener
  base::ByteBuffer decoded_;  // plain bytes of one decode, handed to ShardState at once
  // Connections whose CONNECT moves them to another shard while a send of their handshake
  // bytes is still in the kernel: they move once it completes (target shard by connection).
  absl::flat_hash_map<broker::Connection*, uint32_t> delayed_hand_offs_;
  auth::PasswordChecker* password_checker_ = nullptr;
  static constexpr size_t kControlRingCapacity = 256;
  base::SpscRing<ControlItem> control_{kControlRingCapacity};
  // Handshake steps left this turn (--max-handshakes-per-turn); past it, a connection whose
  // transport is still in its handshake parks its input until a later turn.
  uint32_t handshake_budget_ = 0;
  bool handshakes_deferred_ = false;  // such input is parked: replay it next turn
  // Where host threads answer this shard's asynchronous hook decisions.
  std::shared_ptr<internal::HookChannel> hook_channel_;
  // In-process clients; see ShardLocalSide.
  ShardLocalSide local_;
  persist::Store* store_ = nullptr;
  const std::vector<broker::MessageRef>* restore_retained_ = nullptr;
  const std::vector<persist::LoadedSession>* restore_sessions_ = nullptr;
  const broker::ShardState::RestoredBodies* restore_bodies_ = nullptr;
  // Bridges (shard_bridge.cc): made at set-up from bridge_setups_; each one's local side is an
  // in-process connection whose output and close come here instead of the delivery thread.
  std::vector<BridgeSetup> bridge_setups_;
  std::vector<std::unique_ptr<Bridge>> bridges_;
  Bridge* bridge_of(const broker::Connection* connection) const;
  void start_bridges();
};

}  // namespace coremq::shard
