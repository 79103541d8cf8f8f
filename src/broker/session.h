// The state MQTT keeps per client id: subscriptions, the QoS 1/2 exchanges in each
// direction, messages waiting for the client, the will, and (MQTT 5) when the session
// expires. A session lives on its client id's owner shard for its whole life (so
// takeover and packet-id state never cross threads) and outlives connections while
// its expiry interval says so (3.1.1: clean session 0 means forever).
// Owned by ShardState's session map; single-threaded.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "auth/acl_file.h"
#include "base/ring_deque.h"
#include "base/string_map.h"
#include "broker/message.h"
#include "persist/journal_slot.h"

namespace coremq::broker {

struct Connection;

inline constexpr uint32_t kSessionNeverExpires = 0xFFFFFFFF;

// What a SUBSCRIBE asked for one filter (MQTT 5 options; 3.1.1 uses only qos).
struct SubscriptionOptions {
  uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;
  uint32_t identifier = 0;  // 0: none
};

// Subscription Identifiers to send with one message (usually none or one).
using SubscriptionIds = absl::InlinedVector<uint32_t, 1>;

// How one message goes to one session: decided once, when it matched.
struct Delivery {
  uint8_t qos = 0;
  bool retain_flag = false;  // 1 for retained messages sent on subscribe, or with Retain As Published
  // --persistence, a persistent session's QoS 1/2 message: where its record sits in the shard's
  // open batch while it is new there (persist::JournalSlot). Here so it moves with the message
  // from the queue to the in-flight window; it fills what would be padding.
  persist::JournalSlot store_slot;
  SubscriptionIds subscription_ids;
  // The shared subscription group ("group/filter") this came through, for failover;
  // empty for ordinary subscriptions.
  std::string shared_group;
};

// A QoS 1/2 message sent to the client and not yet fully acknowledged.
struct OutgoingInflight {
  uint16_t packet_id = 0;
  bool pubrec_received = false;  // QoS 2: PUBREL sent, waiting for PUBCOMP
  // --persistence, QoS 2: not sent yet, waiting for its record (Session::send_after_batch).
  bool awaiting_store = false;
  Delivery delivery;
  MessageRef message;
  // With --persistence, for a persistent session: this message's record in the store (its
  // key's sequence number); 0 when it has none.
  uint64_t store_sequence = 0;
};

// A message waiting for the client: offline, or behind a full in-flight window.
struct QueuedDelivery {
  Delivery delivery;
  MessageRef message;
  uint64_t store_sequence = 0;  // as OutgoingInflight::store_sequence
};

struct WillMessage {
  std::string topic;
  std::string payload;
  std::string property_bytes;  // MQTT 5 will properties to forward (as for PUBLISH)
  uint32_t message_expiry_seconds = 0;  // 0: none
  uint8_t qos = 0;
  bool retain = false;
};

// Fields are grouped by size so the struct packs: a shard may hold a million sessions.
struct Session {
  std::string client_id;
  Connection* connection = nullptr;
  // Null without a will; kept apart because most sessions have none.
  std::unique_ptr<WillMessage> will;
  // QoS 2 packet ids received from the client whose PUBREL has not come yet; made on the
  // first QoS 2 PUBLISH, since most devices never send one.
  std::unique_ptr<absl::flat_hash_set<uint16_t>> incoming_qos2;
  // The ACL rules of the client's last CONNECT (its listener's ACL file compiled for its
  // username and client id); null when that listener has no ACL file. Kept while the session
  // is offline: messages queued for it meanwhile are checked with it, as Mosquitto does.
  std::unique_ptr<auth::CompiledAcl> acl;
  // The username of the client's last CONNECT, for the admin API and the hooks; null for
  // anonymous clients (a pointer: most devices of a fleet have none or share a few, and
  // sessions pay per byte).
  std::unique_ptr<std::string> username;
  // Renewed from the shard-wide count (ShardState::timer_generation_last_) whenever the
  // session's timers change meaning (reconnect, new disconnect), so stale timer entries,
  // including those of an earlier session of the same client id, are recognised and ignored.
  uint64_t timer_generation = 0;
  // Scratch used while one message is matched, to deliver once per session at the
  // highest matching QoS without a set allocation.
  uint64_t match_epoch = 0;
  // With --persistence: the sequence number of this session's last outgoing message record, and
  // the journal batch that must be durable before its queue may send again (0: none): a QoS 2
  // PUBLISH leaves only once its record is durable, or a crash could lose the record of a
  // message the client has, and a resend from its publisher would reach the client twice.
  uint64_t last_store_sequence = 0;
  uint64_t send_after_batch = 0;
  // With --persistence, while `persisted`: the number the store keys this session's outgoing
  // and incoming QoS 2 records by (persist::SessionRecord::session_number); 0 otherwise.
  uint64_t store_number = 0;

  // filter -> options; mirrors this session's entries in the shard's topic tree (shared
  // subscriptions are kept under their full "$share/group/filter" text).
  base::StringMap<SubscriptionOptions> subscriptions;
  base::RingDeque<OutgoingInflight> inflight;  // in send order, for redelivery in order
  base::RingDeque<QueuedDelivery> queue;

  // MQTT 5 Session Expiry Interval in seconds; 3.1.1 maps clean session 1 to 0 and
  // clean session 0 to kSessionNeverExpires.
  uint32_t expiry_seconds = 0;
  uint32_t will_delay_seconds = 0;
  uint32_t queued_qos0 = 0;
  uint32_t match_slot = 0;
  uint16_t last_packet_id = 0;
  // The will waits for its delay (MQTT 5 Will Delay Interval) after the connection ended.
  bool will_pending = false;
  // With --persistence: the store holds a record of this session (deleted when it ends).
  bool persisted = false;
  // Who the hooks are told this client is, besides its id and username (set at CONNECT): the
  // listener it came through and whether it is in-process. Inline, in what would be padding:
  // a session of a fleet pays for every byte.
  uint8_t hook_listener = 0;
  bool hook_in_process = false;
  // With --persistence: some of its queue entries wait to be written when the open batch leaves
  // (ShardState::write_deferred_records); in what would be padding.
  bool records_deferred = false;
};

}  // namespace coremq::broker
