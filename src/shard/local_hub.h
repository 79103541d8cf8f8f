// The in-process clients of one Broker (include/coremq/local_client.h): what travels between
// host threads, the shards and the delivery thread, and who owns what.
//
//   host threads --LocalCommand--> MpscRing (one intake per shard) --> shard: ShardState::on_bytes
//   shard: Connection::output at flush --LocalOutput--> SpscRing (one per shard) --> delivery
//   thread: decodes, runs callbacks, completes futures, sends PUBACK/PUBREC/PUBREL/PUBCOMP
//   back through the intake.
//
// An in-process client is a real session: a broker::Connection without a socket
// (Connection::in_process) on the shard that owns its client id, fed encoded MQTT 5 packets, so
// the protocol side (src/broker) runs unchanged. See docs/EMBEDDING.md and ARCHITECTURE.md
// ("In-process clients").
//
// Threads, per object:
// - LocalHub: made by BrokerImpl::start before the shards start, stopped by BrokerImpl::wait
//   after they joined (then the delivery thread ends and finish() fails what is left); freed
//   when the Broker and every LocalClientCore (each holds a shared_ptr) are gone.
// - LocalClientCore: owned by the host's LocalClient; each field says which thread touches it.
// - ShardLocalSide: its shard's thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "base/byte_buffer.h"
#include "base/spsc_ring.h"
#include "coremq/local_client.h"
#include "coremq/options.h"
#include "mqtt/packet.h"
#include "shard/local_intake.h"

namespace coremq::broker {
struct Connection;
}

namespace coremq::shard {
class Shard;
class LocalHub;

// One subscription of an in-process client and its callback. Made by the host thread that
// subscribes; shared (immutable) by the client's tables and a dispatch under way.
struct LocalSubscription {
  std::string filter;
  std::string match_filter;  // without "$share/group/"
  uint32_t internal_identifier = 0;
  uint32_t host_identifier = 0;
  MessageCallback callback;
};

// Host (or delivery thread) -> shard: whole MQTT packets of one in-process client.
struct LocalCommand {
  enum class Kind : uint8_t { kNone, kConnect, kPackets, kDisconnect };
  LocalClientCore* core = nullptr;
  Kind kind = Kind::kNone;
  // The pending operation a refusal fails (a packet for a session that has ended); 0: none.
  uint16_t packet_id = 0;
  base::ByteBuffer bytes;
  // A client with inline callbacks: its shard's own table of subscriptions takes this one (a
  // SUBSCRIBE) or drops `unsubscribe` (an UNSUBSCRIBE) before the packet is handled, so the
  // shard thread dispatches without a lock.
  std::shared_ptr<LocalSubscription> subscribe;
  std::string unsubscribe;
};
using LocalIntake = MpscRing<LocalCommand>;

// Shard -> delivery thread.
struct LocalOutput {
  enum class Kind : uint8_t {
    kNone,
    kBytes,           // what the broker sent the client (whole packets)
    kClosed,          // the broker ended the session; reason_code says why (0: a normal end)
    kRejected,        // a command for an ended session: fail packet_id
    kDisconnectDone,  // the host's disconnect is done: the last item for this core
  };
  LocalClientCore* core = nullptr;
  Kind kind = Kind::kNone;
  uint8_t reason_code = 0;
  uint16_t packet_id = 0;
  base::ByteBuffer bytes;
};
using LocalOutputRing = base::SpscRing<LocalOutput>;

// What one shard shares with the host threads and the delivery thread.
struct LocalShardLink {
  LocalShardLink(size_t intake_capacity, size_t output_capacity)
      : intake(intake_capacity), output(output_capacity) {}
  LocalIntake intake;      // consumer: the shard
  LocalOutputRing output;  // producer: the shard; consumer: the delivery thread
  Shard* shard = nullptr;
  // Pushes the intake refused (host side; the shard folds it into its counters at each tick).
  std::atomic<uint64_t> intake_full{0};
  // Set by the shard when `output` was full: the delivery thread wakes it once it made room.
  std::atomic<bool> output_full{false};
};

}  // namespace coremq::shard

namespace coremq {

// One in-process client: the host's LocalClient owns it. See the file comment for lifetimes.
class LocalClientCore {
 public:
  using Subscription = shard::LocalSubscription;
  struct Pending {
    bool is_publish_qos = false;  // counts against the broker's Receive Maximum
    bool has_promise = false;
    // A SUBSCRIBE: the subscription to forget when the SUBACK refuses it.
    uint32_t subscription_identifier = 0;
    std::promise<OperationResult> promise;
    ResultCallback callback;
  };

  LocalClientCore(std::shared_ptr<shard::LocalHub> owner, std::string id, uint32_t owner_shard,
                  MessageCallback unmatched, bool callbacks_inline)
      : hub(std::move(owner)),
        client_id(std::move(id)),
        shard(owner_shard),
        on_unmatched(std::move(unmatched)),
        inline_callbacks(callbacks_inline) {}

  // Any thread: immutable.
  const std::shared_ptr<shard::LocalHub> hub;
  const std::string client_id;
  const uint32_t shard;
  const MessageCallback on_unmatched;  // LocalClientOptions::on_unmatched_message
  // LocalClientOptions::inline_callbacks: PUBLISH and PUBREL are handled on the owner shard.
  const bool inline_callbacks;
  // LocalClientOptions::manual_acknowledgement: set before the client connects.
  bool manual_acknowledgement = false;

  // Any thread.
  std::atomic<bool> connected{false};
  // Set when the host destroys its LocalClient: no callback of it runs from then on (not even
  // the rest of a batch under way when it was destroyed inside one of its own callbacks).
  std::atomic<bool> host_gone{false};

  // Host threads, the delivery thread and LocalHub::finish, under `mutex` (never on a shard).
  std::mutex mutex;
  uint16_t last_packet_id = 0;
  uint32_t publishes_in_flight = 0;
  absl::flat_hash_map<uint16_t, Pending> pending;
  uint32_t last_subscription_identifier = 0;
  absl::flat_hash_map<std::string, uint32_t> filter_identifiers;
  absl::flat_hash_map<uint32_t, std::shared_ptr<Subscription>> subscriptions;
  bool connack_signalled = false;
  bool closed_signalled = false;
  std::promise<OperationResult> connack;
  std::promise<void> closed;  // the host's disconnect is done: nothing refers to the core

  // The owner shard only.
  broker::Connection* connection = nullptr;
  // Inline callbacks: the subscriptions, by internal identifier and by filter.
  absl::flat_hash_map<uint32_t, std::shared_ptr<Subscription>> inline_subscriptions;
  absl::flat_hash_map<std::string, uint32_t> inline_filters;

  // The delivery thread only (the owner shard for a client with inline callbacks).
  absl::flat_hash_set<uint16_t> qos2_received;  // PUBREC sent, PUBREL not yet received

  // The delivery thread only.
  std::deque<shard::LocalCommand> unsent;  // acknowledgements the intake had no room for
  bool disconnect_requested = false;
  // Destroyed inside one of its callbacks (delivery thread or inline): the hub frees it at
  // kDisconnectDone. Set under the hub's mutex by disconnect(); the delivery thread reads it
  // after it took the disconnect request under that mutex.
  bool orphaned = false;
};

namespace shard {

class LocalHub : public std::enable_shared_from_this<LocalHub> {
 public:
  LocalHub(const Options& options, uint32_t shard_count);
  ~LocalHub();
  LocalHub(const LocalHub&) = delete;
  LocalHub& operator=(const LocalHub&) = delete;

  // Controlling thread: wiring, then the delivery thread, before and after the shards run.
  LocalShardLink& link(uint32_t shard) { return *links_[shard]; }
  void start();
  // After every shard thread has joined: ends the delivery thread (it first handles what the
  // shards sent), then fails every operation still pending and frees orphaned clients. The
  // completion callbacks of what fails run here, on the calling thread, under the hub's lock:
  // they must not destroy a LocalClient.
  void stop();

  // Any host thread.
  // Blocks until the CONNACK; null (and *error) when refused or the broker is stopped.
  std::unique_ptr<LocalClientCore> connect(const LocalClientOptions& options, std::string* error);
  // Hands a command to the core's shard and wakes it; kIntakeFull when there is no room.
  [[nodiscard]] LocalStatus push(LocalClientCore& core, LocalCommand&& command);
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }
  const Options& options() const { return options_; }
  // LocalClient's destructor: disconnects and waits (or, on the delivery thread, leaves the
  // core to the hub).
  void disconnect(std::unique_ptr<LocalClientCore> core);

  // Shards: something was pushed into a link's output ring.
  void wake_delivery();
  // True on the delivery thread (callbacks run there).
  static bool on_delivery_thread();

 private:
  void run_delivery();
  bool drain_outputs();
  void handle_output(LocalOutput& item);
  void handle_packets(LocalClientCore& core, std::span<const uint8_t> bytes);
  void handle_publish(LocalClientCore& core, std::span<const uint8_t> body, uint8_t flags);

 public:
  // What the thread that runs a client's callbacks reuses from message to message.
  struct DispatchScratch {
    std::vector<std::shared_ptr<LocalSubscription>> matches;
    ReceivedMessage message;
  };
  // The subscriptions of `subscriptions` a PUBLISH sent to `core` is for, into
  // scratch.matches: by the subscription identifiers the broker put on it, or by topic when
  // the broker uses none. The caller holds what protects the table.
  static void match_publish(
      const mqtt::PublishPacket& publish,
      const absl::flat_hash_map<uint32_t, std::shared_ptr<LocalSubscription>>& subscriptions,
      bool identifiers_available, DispatchScratch& scratch);
  // Runs the callbacks of scratch.matches (or on_unmatched_message) for the PUBLISH, with no
  // lock held. Returns the longest callback's duration in microseconds.
  static int64_t run_callbacks(const LocalClientCore& core, const mqtt::PublishPacket& publish,
                               DispatchScratch& scratch);
  // Marks the calling thread as one that runs callbacks (the delivery thread, a shard while it
  // runs inline callbacks): a LocalClient destroyed there does not wait for itself.
  static void set_running_callbacks(bool running);

 private:
  void handle_closed(LocalClientCore& core, uint8_t reason_code);
  static void run_callback(const LocalClientCore& core, const MessageCallback& callback,
                           const ReceivedMessage& message, std::string_view filter);
  void complete(LocalClientCore& core, uint16_t packet_id, OperationResult result);
  void fail_everything(LocalClientCore& core, LocalStatus status, uint8_t reason_code);
  // Delivery thread: queues a packet for the core's shard behind any it could not send yet.
  void send_from_delivery(LocalClientCore& core, LocalCommand&& command);
  bool flush_unsent();
  void take_disconnect_requests();
  void forget(LocalClientCore* core);

  // A copy: a LocalClient may outlive the Broker and its Options.
  const Options options_;
  const uint32_t shard_count_;
  std::vector<std::unique_ptr<LocalShardLink>> links_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> stop_delivery_{false};
  std::atomic<uint64_t> clients_made_{0};

  // The delivery thread and how it sleeps: as a shard does (see Shard::enter_kernel), it sets
  // delivery_sleeping_, fences, looks at its rings once more, then blocks on its eventfd; a
  // producer fences after its push and writes the eventfd only if it finds it set.
  std::thread delivery_thread_;
  int delivery_event_fd_ = -1;
  std::atomic<bool> delivery_sleeping_{false};

  // Every live core (connect to disconnect) and the disconnects asked for; under mutex_.
  std::mutex mutex_;
  absl::flat_hash_set<LocalClientCore*> cores_;
  std::vector<LocalClientCore*> disconnect_requests_;
  std::atomic<bool> disconnect_requested_{false};

  // Delivery thread only.
  std::vector<LocalClientCore*> cores_with_unsent_;
  DispatchScratch scratch_;
};

// A shard's own bookkeeping of its in-process connections (shard thread only).
struct ShardLocalSide {
  LocalShardLink* link = nullptr;
  LocalHub* hub = nullptr;
  absl::flat_hash_map<broker::Connection*, LocalClientCore*> connections;
  // Connections whose output did not fit `link->output`: flushed again once it has room.
  std::vector<broker::Connection*> blocked;
  // Items that must not be lost and did not fit (a close and the bytes before it, refusals):
  // sent before anything else; while any wait the intake is not read (back-pressure).
  std::deque<LocalOutput> waiting;
  // The intake's oldest command is for a connection whose input is held (an answer waits for
  // the peers): nothing more is read until resume_input.
  bool intake_blocked = false;
  // Inline callbacks (LocalClientOptions::inline_callbacks): reused from message to message.
  LocalHub::DispatchScratch scratch;
};

}  // namespace shard
}  // namespace coremq
