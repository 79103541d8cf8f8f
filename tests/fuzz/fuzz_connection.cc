// libFuzzer target for the broker's protocol state machine (src/broker/ShardState): one to four
// shards, each a ShardState with a FakeIo (tests/unit/broker/fake_io.h), driven in-process by a
// script of operations decoded from the input — connections opened on any shard, CONNECTs and
// other packets built by the src/mqtt encoders or raw bytes, fed whole or split, keep-alive and
// connect-timeout ticks, transport closes, sends completing, cross-shard items (both what the
// shards post to each other and items made up by the input), hand-offs adopted by the owner
// shard as the real loop adopts them. What the shards post waits in per-pair FIFO queues (the
// rings) and is delivered at the end of a turn or, by kDeliverSome, a few items of one pair at
// a time, so barrier requests and acks (SUBACK and retained PUBACK waiting for every peer)
// arrive late, in batches, and interleaved with the clients' packets. A connection whose input
// ShardState holds is served as the loop serves it: what arrives meanwhile (and its end of
// stream) is parked and replayed on resume_input; kCloseHeld ends one at once instead.
// MQTT 5 CONNECTs may name an Authentication Method and
// AUTH packets (Continue authentication, Re-authenticate, any method) may follow, answered by
// an AuthenticationHook whose every step (continue, success, failure and its reason code,
// data of any size) the input decides, so exchanges while connecting and re-authentications
// of connected clients are both explored. With bit 0x20 of the first byte every shard's listener
// has an ACL file (kFuzzAcl) refusing some publishes, subscriptions, deliveries and wills, so
// the refusal paths run among everything else. Built with ASan + UBSan; LeakSanitizer checks that
// every Message reference and posted item is released.
//
// Half the connections send large payloads by reference (as plain-TCP ones do; the threshold is
// 16 bytes here), and a large PUBLISH may become its message in place.
//
// Oracles beyond "no crash, no leak, no failed COREMQ_ASSERT":
//   - every byte the broker writes to a connection (headers with the payloads staged by
//     reference between them) frames and decodes as a server-to-client packet of MQTT 3.1.1,
//     and the first packet of a connection is a CONNACK;
//   - each shard's connection_count() and connections_current counter equal the number of
//     connections the fuzzer holds on that shard that are neither closed nor handed off;
//   - a connection the broker closed or handed off gets no new output;
//   - no input reaches a held connection, and once everything posted has been delivered no
//     connection is still held (every waiting answer was sent);
//   - MQTT 5: before CONNACK only AUTH Continue authentication, never DISCONNECT
//     (MQTT-3.14.0-1); every AUTH names the CONNECT's method and fits the client's Maximum
//     Packet Size.
//
// Input format (tests/fuzz/make_corpus.py writes seeds in it):
//   byte 0: bits 0-1 shard count - 1; bit 2 on_shutdown() at the end; bits 3-7 all set = debug logs
//   byte 1: option presets: bits 0-1 --max-inflight, 2-3 --max-queued-messages, 4-5
//           --max-client-output-bytes, bit 6 --max-packet-size 128 (else 8192), bit 7 small per-session and
//           per-shard limits (subscriptions, sessions, retained messages, client id length)
//   then operations, each an opcode byte (modulo kOperationCount) and its arguments; a read past
//   the end yields zeros, so any input is a valid script.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/acl_file.h"
#include "base/assert.h"
#include "base/byte_buffer.h"
#include "base/log.h"
#include "broker/connection.h"
#include "broker/cross_shard.h"
#include "broker/message.h"
#include "broker/shard_state.h"
#include "coremq/authentication.h"
#include "coremq/options.h"
#include "fake_io.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/packet.h"
#include "topic/topic.h"

namespace {

using namespace coremq;
using broker::Connection;
using broker::ConnectionState;
using broker::CrossShardItem;
using mqtt::PacketType;
using testing::FakeIo;

constexpr size_t kConnectionsMax = 48;
// Rounds of cross-shard delivery quiesce() allows before it calls the traffic a livelock: a
// few, plus one per two bytes ever fed, since each round trip of a barrier may release just
// one held packet (a client's input can hold a long run of retained QoS 1 PUBLISHes, each
// waiting for every peer in turn), and no packet is shorter than two bytes.
constexpr size_t kRoundsToQuiesceMin = 16;

// Topic names and filters the scripts pick by index; index kRawString reads one from the input.
constexpr std::string_view kTopics[] = {"a", "a/b", "a/b/c", "b", "$SYS/x", "/", "a//b", "will/c", "x/y/z/w", "c0"};
constexpr std::string_view kFilters[] = {"a",     "a/b", "a/+",  "a/#",    "#",      "+",     "+/b",
                                         "$SYS/#", "/",   "a//b", "will/#", "+/+/+", "a/#/b", "a+",
                                         "",      "x/#"};
constexpr std::string_view kClientIds[] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "",
                                           "client-id-longer-than-twenty-three-bytes"};
constexpr uint8_t kRawString = 0xFF;
// Authentication Methods: the hook supports the first two; the last slot means "none".
constexpr std::string_view kMethods[] = {"m1", "m2", "unsupported"};

enum Operation : uint8_t {
  kOpenRaw,
  kOpenConnect,
  kFeedRaw,
  kFeedPacket,
  kTick,
  kTransportClosed,
  kSendBegin,
  kSendComplete,
  kEndOfTurn,
  kCrossShard,
  kDeliverSome,
  kCloseHeld,
  kOpenConnectV5,
  kFeedAuth,
  kOperationCount,
};

class Script {
 public:
  explicit Script(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  bool done() const { return position_ >= bytes_.size(); }
  uint8_t byte() { return done() ? 0 : bytes_[position_++]; }
  uint16_t u16() { return static_cast<uint16_t>(byte() << 8 | byte()); }
  std::span<const uint8_t> take(size_t count) {
    count = std::min(count, bytes_.size() - std::min(position_, bytes_.size()));
    std::span<const uint8_t> taken = bytes_.subspan(position_, count);
    position_ += count;
    return taken;
  }
  std::string_view string(size_t count) {
    std::span<const uint8_t> taken = take(count);
    return {reinterpret_cast<const char*>(taken.data()), taken.size()};
  }
  std::string_view topic() {
    uint8_t index = byte();
    if (index == kRawString) return string(byte());
    return kTopics[index % std::size(kTopics)];
  }
  std::string_view filter() {
    uint8_t index = byte();
    if (index == kRawString) return string(byte());
    return kFilters[index % std::size(kFilters)];
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t position_ = 0;
};

// Enhanced authentication answered by the script: each call reads a result byte (continue,
// success, failure), the length and bytes of the data to send (up to 95 bytes, so some
// steps pass a small Maximum Packet Size) and, for a failure, the reason code byte (any
// value: the broker must map what a packet cannot carry to Not authorized).
class ScriptedHook final : public AuthenticationHook {
 public:
  void set_script(Script* script) { script_ = script; }
  bool supports_method(std::string_view method) const override {
    return method == kMethods[0] || method == kMethods[1];
  }
  Step begin(std::string_view, std::string_view, std::string_view) override { return answer(); }
  Step next(std::string_view, std::string_view, std::string_view) override { return answer(); }
  Step begin_reauthentication(std::string_view, std::string_view, std::string_view) override { return answer(); }

 private:
  Step answer() {
    COREMQ_ASSERT(script_ != nullptr);
    Step step;
    uint8_t result = script_->byte() % 3;
    step.result = result == 0 ? Step::Result::kContinue : result == 1 ? Step::Result::kSuccess : Step::Result::kFailure;
    step.data = std::string(script_->string(script_->byte() % 96));
    if (step.result == Step::Result::kFailure) step.failure_reason_code = script_->byte();
    return step;
  }
  Script* script_ = nullptr;
};

std::string payload_of_size(size_t size) {
  std::string payload(size, '\0');
  for (size_t i = 0; i < size; ++i) payload[i] = static_cast<char>('a' + i % 26);
  return payload;
}

// Grants and denies over kTopics/kFilters for anonymous clients and the CONNECTs' "user".
constexpr std::string_view kFuzzAcl =
    "topic read a/#\n"
    "topic deny a/b/c\n"
    "topic write will/#\n"
    "user user\n"
    "topic readwrite #\n"
    "topic deny x/#\n"
    "pattern readwrite c0/%c/#\n"
    "pattern read %u/#\n";

Options options_from(uint8_t presets) {
  Options options;
  constexpr uint32_t kInflight[] = {64, 1, 2, 5};
  constexpr uint32_t kQueued[] = {1000, 1, 3, 10};
  constexpr uint32_t kOutputBytes[] = {8 * 1024 * 1024, 1024, 1500, 4096};
  options.max_inflight = kInflight[presets & 3];
  options.max_queued_messages = kQueued[(presets >> 2) & 3];
  options.max_client_output_bytes = kOutputBytes[(presets >> 4) & 3];
  // Not the 1 MiB default: ShardState sizes its SUBSCRIBE scratch array from this (16384 entries
  // at 1 MiB), and allocating that in every input costs most of the fuzzer's speed. The scripts
  // never build a packet over 4.2 KB.
  options.max_packet_size = (presets & 0x40) ? 128 : 8192;
  // Low, so the fuzzer's short payloads take the by-reference and in-place paths too.
  options.payload_reference_min_bytes = 16;
  if (presets & 0x80) {
    options.max_subscriptions_per_session = 2;
    options.max_sessions = 3;
    options.max_retained_messages = 2;
    options.max_client_id_length = 23;
  }
  return options;
}

// One connection the fuzzer made; owned here for the whole input, like the shard loop owns
// its Connection objects until their operations end. A handed-off connection is one the real
// loop has freed: it is never fed again. What its client sends or does next reaches its
// successor, the connection the owner shard adopts, once the hand-off has arrived there; until
// then it waits "in the socket".
struct Client {
  std::unique_ptr<Connection> connection;
  uint32_t shard = 0;
  bool handed_off = false;
  int successor = -1;
  std::vector<uint8_t> unread;
  bool closed_while_moving = false;
  bool saw_connack = false;
  bool refused = false;  // got a CONNACK with a non-zero code
  bool mqtt5 = false;    // answered in MQTT 5 form
  // MQTT 5 CONNECT built by kOpenConnectV5 (not raw bytes): its Authentication Method, if any.
  bool built_v5 = false;
  std::string method;
  // Output staged when the broker closed the connection: nothing may be added after that.
  bool closing_seen = false;
  size_t closing_output_size = 0;
  // What the loop parked while ShardState held this connection's input, in arrival order,
  // and an end of stream parked behind it.
  std::vector<std::vector<uint8_t>> parked;
  bool parked_close = false;
};

class Cluster {
 public:
  Cluster(uint32_t shard_count, const Options& options, std::shared_ptr<const auth::AclFile> acl = nullptr)
      : options_(options) {
    for (uint32_t shard = 0; shard < shard_count; ++shard) {
      ios_.push_back(std::make_unique<FakeIo>(shard, shard_count));
      shards_.push_back(std::make_unique<broker::ShardState>(shard, shard_count, options_, *ios_[shard]));
      if (acl != nullptr) shards_.back()->set_listener_security({broker::ListenerSecurity{acl}});
    }
    in_rings_.resize(size_t{shard_count} * shard_count);
  }
  ~Cluster() {
    // The shards first (their sessions hold Message references), then the fakes (they release
    // the items still posted), then the connections, as the loop frees them last.
    shards_.clear();
    ios_.clear();
    for (auto& ring : in_rings_) {
      for (const CrossShardItem& item : ring) testing::release_cross_shard_item(item);
    }
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  uint32_t shard_count() const { return static_cast<uint32_t>(shards_.size()); }

  // Returns the new client's index, or -1 past the cap.
  int open(uint32_t shard, int64_t accepted_at_ms) {
    if (clients_.size() >= kConnectionsMax) return -1;
    return add_client(shard, accepted_at_ms);
  }

  // The method a client's CONNECT named, for the AUTH checks (an adopted successor inherits it).
  void set_method(int index, std::string_view method) {
    if (index < 0) return;
    clients_[index].built_v5 = true;
    clients_[index].method = std::string(method);
  }

  // The client the byte names (following hand-offs to the connection that now serves it).
  int pick(uint8_t selector) const {
    if (clients_.empty()) return -1;
    return resolve(static_cast<int>(selector % clients_.size()));
  }

  void feed(int index, std::span<const uint8_t> bytes) {
    if (index < 0 || bytes.empty()) return;
    bytes_fed_ += bytes.size();
    index = resolve(index);
    Client& client = clients_[index];
    if (client.handed_off) {
      client.unread.insert(client.unread.end(), bytes.begin(), bytes.end());
      return;
    }
    if (client.connection->input_held || !client.parked.empty()) {
      // The loop parks it, unread, behind what is parked already.
      if (client.connection->state == ConnectionState::kConnected) client.parked.emplace_back(bytes.begin(), bytes.end());
      return;
    }
    shards_[client.shard]->on_bytes(client.connection.get(), bytes);
    after_event(index);
  }

  void transport_closed(int index) {
    if (index < 0) return;
    index = resolve(index);
    Client& client = clients_[index];
    if (client.handed_off) {
      client.closed_while_moving = true;
      return;
    }
    if (client.connection->input_held || !client.parked.empty()) {
      client.parked_close = true;  // the end of stream waits behind the parked input
      return;
    }
    shards_[client.shard]->on_transport_closed(client.connection.get());
    after_event(index);
  }

  // The connection ends while its input is held (a reset the loop does not park).
  void close_held(int index) {
    if (index < 0) return;
    index = resolve(index);
    Client& client = clients_[index];
    if (client.handed_off || !client.connection->input_held) return;
    shards_[client.shard]->on_transport_closed(client.connection.get());
    after_event(index);
  }

  // The kernel takes the staged output (the real loop swaps output into sending).
  void send_begin(int index) {
    if (index < 0 || clients_[index].handed_off) return;
    Client& client = clients_[index];
    Connection* connection = client.connection.get();
    if (!connection->sending.empty() || connection->output.empty()) return;
    check_output(client, staged_stream(*connection));
    connection->sending.swap(connection->output);
    if (connection->references) {
      connection->references->sending.swap(connection->references->pending);
      connection->references->sending_bytes = std::exchange(connection->references->pending_bytes, 0);
    }
    client.closing_output_size = connection->output.size();
  }

  // Everything staged is sent; the protocol side may refill the output.
  void send_complete(int index) {
    if (index < 0 || clients_[index].handed_off) return;
    Client& client = clients_[index];
    Connection* connection = client.connection.get();
    check_output(client, staged_stream(*connection));
    connection->output.clear();
    connection->sending.clear();
    if (connection->references) *connection->references = broker::OutputReferences();
    client.closing_output_size = 0;
    if (connection->state == ConnectionState::kConnected) {
      shards_[client.shard]->on_output_drained(connection);
      after_event(index);
    }
  }

  void tick(int64_t now_ms) {
    for (auto& io : ios_) io->now = now_ms;
    for (auto& shard : shards_) shard->on_tick(now_ms);
    check_counts();
  }

  void set_clock(int64_t now_ms) {
    for (auto& io : ios_) io->now = now_ms;
  }

  // The end of a loop turn: each shard's posts reach their targets, hand-offs are adopted.
  // Returns false when there was nothing to do.
  bool end_of_turn() {
    bool any = false;
    for (uint32_t shard = 0; shard < shard_count(); ++shard) {
      collect_posts();
      std::vector<FakeIo::HandOff> handoffs = std::exchange(ios_[shard]->handoffs, {});
      any |= !handoffs.empty();
      for (uint32_t to = 0; to < shard_count(); ++to) {
        if (to != shard) any |= deliver(shard, to, SIZE_MAX) > 0;
      }
      for (FakeIo::HandOff& handoff : handoffs) adopt(handoff);
    }
    check_counts();
    return any;
  }

  // A few items of one ring: barrier requests and acks (and the rest) arrive late or in batches.
  void deliver_some(uint32_t from, uint32_t to, size_t count) {
    if (shard_count() < 2) return;
    from %= shard_count();
    to %= shard_count();
    if (from == to) to = (to + 1) % shard_count();
    collect_posts();
    deliver(from, to, count);
    check_counts();
  }

  void quiesce() {
    for (size_t round = 0; round < kRoundsToQuiesceMin + bytes_fed_ / 2; ++round) {
      if (!end_of_turn()) {
        // Every barrier was answered: no answer still waits, no input is still held.
        for (Client& client : clients_) {
          if (client.handed_off) continue;
          COREMQ_ASSERT_MSG(!client.connection->input_held, "connection still held with nothing in flight");
          // A connection that a tick or a takeover closed: the loop recycles what it parked.
          if (client.connection->state != ConnectionState::kConnected) continue;
          COREMQ_ASSERT_MSG(client.parked.empty() && !client.parked_close, "parked input never replayed");
        }
        return;
      }
    }
    COREMQ_ASSERT_MSG(false, "cross-shard traffic did not settle");
  }

  void cross_shard(uint32_t from, uint32_t to, CrossShardItem::Kind kind, std::string_view text, uint8_t qos,
                   bool retain, size_t payload_size) {
    if (shard_count() < 2) return;
    from %= shard_count();
    to %= shard_count();
    if (from == to) to = (to + 1) % shard_count();
    CrossShardItem item{kind, from, nullptr};
    if (kind == CrossShardItem::Kind::kPublish) {
      // Shards only forward messages that entered through a decoded PUBLISH or will.
      if (!mqtt::is_valid_utf8_string(text) || !topic::is_valid_topic_name(text)) return;
      item.pointer = testing::make_message(text, payload_of_size(payload_size), qos % 3, retain, from);
    } else {
      if (!mqtt::is_valid_utf8_string(text) || !topic::is_valid_topic_filter(text)) return;
      item.pointer = new broker::InterestChange{std::string(text)};
    }
    shards_[to]->on_cross_shard(item);
    check_counts();
  }

  void shutdown() {
    for (auto& shard : shards_) shard->on_shutdown();
    check_counts();
  }

  // What is still staged at the end (what is in `sending` was checked when the send began).
  void check_all_output() {
    for (Client& client : clients_) check_output(client, staged_stream(*client.connection));
  }

  // The bytes a gathered send of the staged output would write: its headers with each payload
  // staged by reference at its offset (broker/output_references.h).
  static std::vector<uint8_t> staged_stream(const Connection& connection) {
    std::span<const uint8_t> headers = connection.output.span();
    std::vector<uint8_t> stream;
    size_t at = 0;
    if (connection.references) {
      for (const broker::PayloadReference& reference : connection.references->pending) {
        stream.insert(stream.end(), headers.begin() + static_cast<ptrdiff_t>(at),
                      headers.begin() + static_cast<ptrdiff_t>(reference.offset));
        std::string_view payload = reference.message->payload();
        stream.insert(stream.end(), payload.begin(), payload.end());
        at = reference.offset;
      }
    }
    stream.insert(stream.end(), headers.begin() + static_cast<ptrdiff_t>(at), headers.end());
    return stream;
  }

 private:
  int add_client(uint32_t shard, int64_t accepted_at_ms) {
    Client& client = clients_.emplace_back();
    client.connection = std::make_unique<Connection>();
    client.connection->fd = static_cast<int>(clients_.size());
    client.connection->accepted_at_ms = accepted_at_ms;
    // Half the clients are plain TCP as the loop sees them: payloads by reference.
    client.connection->payloads_by_reference = clients_.size() % 2 == 0;
    client.shard = shard;
    shards_[shard]->on_connection_opened(client.connection.get());
    return static_cast<int>(clients_.size() - 1);
  }

  // What the shards posted joins the per-pair FIFO queues (the rings).
  void collect_posts() {
    for (uint32_t shard = 0; shard < shard_count(); ++shard) {
      for (FakeIo::Post& post : ios_[shard]->take_posts()) {
        in_rings_[size_t{shard} * shard_count() + post.target_shard].push_back(post.item);
      }
    }
  }

  size_t deliver(uint32_t from, uint32_t to, size_t count) {
    auto& ring = in_rings_[size_t{from} * shard_count() + to];
    size_t delivered = 0;
    while (delivered < count && !ring.empty()) {
      CrossShardItem item = ring.front();
      ring.pop_front();
      shards_[to]->on_cross_shard(item);
      ++delivered;
      serve_resumes();
    }
    return delivered;
  }

  // As the loop does on resume_input: the parked input of that connection, in order, until
  // it is held again; then its parked end of stream.
  void serve_resumes() {
    for (bool any = true; any;) {
      any = false;
      for (uint32_t shard = 0; shard < shard_count(); ++shard) {
        std::vector<Connection*> resumes = std::exchange(ios_[shard]->resumes, {});
        for (Connection* connection : resumes) {
          any = true;
          int index = -1;
          for (size_t i = 0; i < clients_.size(); ++i) {
            if (clients_[i].connection.get() == connection) index = static_cast<int>(i);
          }
          COREMQ_ASSERT(index >= 0 && !clients_[index].handed_off && clients_[index].shard == shard);
          replay_parked(index);
        }
      }
    }
  }

  void replay_parked(int index) {
    Client& client = clients_[index];
    Connection* connection = client.connection.get();
    while (!client.parked.empty() && !connection->input_held && connection->state == ConnectionState::kConnected) {
      std::vector<uint8_t> bytes = std::move(client.parked.front());
      client.parked.erase(client.parked.begin());
      shards_[client.shard]->on_bytes(connection, bytes);
      after_event(index);
    }
    if (connection->state != ConnectionState::kConnected) {
      // Closed meanwhile: the loop recycles what was parked.
      client.parked.clear();
      client.parked_close = false;
      return;
    }
    if (client.parked.empty() && client.parked_close && !connection->input_held) {
      client.parked_close = false;
      shards_[client.shard]->on_transport_closed(connection);
      after_event(index);
    }
  }

  int resolve(int index) const {
    while (clients_[index].successor >= 0) index = clients_[index].successor;
    return index;
  }

  // As Shard::adopt: a new Connection on the owner shard, fed every byte the old one had read.
  void adopt(const FakeIo::HandOff& handoff) {
    int from = -1;
    for (size_t i = 0; i < clients_.size(); ++i) {
      if (clients_[i].connection.get() == handoff.connection) from = static_cast<int>(i);
    }
    COREMQ_ASSERT(from >= 0 && clients_[from].handed_off && clients_[from].successor < 0);
    // The cap does not apply: the client already exists.
    int adopted = add_client(handoff.target_shard, handoff.accepted_at_ms);
    clients_[from].successor = adopted;
    clients_[adopted].built_v5 = clients_[from].built_v5;
    clients_[adopted].method = clients_[from].method;
    shards_[handoff.target_shard]->on_bytes(clients_[adopted].connection.get(), handoff.input);
    after_event(adopted);
    std::vector<uint8_t> unread = std::exchange(clients_[from].unread, {});
    feed(adopted, unread);
    if (clients_[from].closed_while_moving) transport_closed(adopted);
  }

  void after_event(int index) {
    Client& client = clients_[index];
    Connection* connection = client.connection.get();
    if (connection->state == ConnectionState::kHandingOff) {
      COREMQ_ASSERT(ios_[client.shard]->was_handed_off(connection));
      COREMQ_ASSERT_MSG(connection->output.empty(), "output written to a connection being handed off");
      client.handed_off = true;
    }
    if (connection->state == ConnectionState::kClosing) {
      COREMQ_ASSERT(ios_[client.shard]->was_closed(connection));
      COREMQ_ASSERT_MSG(!connection->input_held, "a closed connection is still held");
      client.parked.clear();  // the loop recycles parked input of a closed connection
      client.parked_close = false;
    }
    check_counts();
    serve_resumes();
  }

  // Every shard's idea of its live connections matches the connections' states.
  void check_counts() {
    std::vector<size_t> live(shard_count(), 0);
    for (Client& client : clients_) {
      if (client.handed_off) continue;
      ConnectionState state = client.connection->state;
      if (state == ConnectionState::kClosing) {
        if (!client.closing_seen) {
          client.closing_seen = true;
          client.closing_output_size = client.connection->output.size();
        }
        COREMQ_ASSERT_MSG(client.connection->output.size() == client.closing_output_size,
                          "output written to a closed connection");
      }
      if (state == ConnectionState::kAwaitingConnect || state == ConnectionState::kAuthenticating ||
          state == ConnectionState::kConnected) {
        ++live[client.shard];
      }
    }
    for (uint32_t shard = 0; shard < shard_count(); ++shard) {
      COREMQ_ASSERT_MSG(shards_[shard]->connection_count() == live[shard], "connection set out of step");
      COREMQ_ASSERT_MSG(shards_[shard]->counters().connections_current == live[shard],
                        "connections_current out of step");
    }
  }

  // The bytes are whole server-to-client packets of MQTT 3.1.1.
  void check_output(Client& client, std::span<const uint8_t> bytes) {
    size_t offset = 0;
    while (offset < bytes.size()) {
      mqtt::FixedHeader header{};
      mqtt::FrameStatus status = mqtt::parse_fixed_header(bytes.subspan(offset), mqtt::kRemainingLengthMax + 5, &header);
      COREMQ_ASSERT_MSG(status == mqtt::FrameStatus::kComplete, "broker output does not frame");
      size_t size = size_t{header.header_length} + header.remaining_length;
      COREMQ_ASSERT_MSG(bytes.size() - offset >= size, "broker output ends inside a packet");
      check_packet(client, header, bytes.subspan(offset + header.header_length, header.remaining_length));
      offset += size;
    }
  }

  // Shows the offending packet before an assertion about it fails.
  static void dump_packet(const Client& client, const mqtt::FixedHeader& header, std::span<const uint8_t> body,
                          std::string_view why) {
    std::fprintf(stderr, "fuzz_connection: to fd %d: %s (%.*s), flags 0x%x, body of %zu bytes:", client.connection->fd,
                 std::string(mqtt::packet_type_name(header.type)).c_str(), static_cast<int>(why.size()), why.data(),
                 header.flags, body.size());
    for (size_t i = 0; i < body.size() && i < 64; ++i) std::fprintf(stderr, " %02x", body[i]);
    std::fprintf(stderr, "\n");
  }

  // MQTT 5: only the framing, what may come before CONNACK, and AUTH are checked.
  void check_packet_v5(Client& client, const mqtt::FixedHeader& header, std::span<const uint8_t> body) {
    if (header.type == PacketType::kAuth) {
      mqtt::AuthPacket auth;
      COREMQ_ASSERT_MSG(mqtt::decode_auth(body, header.flags, &auth) == mqtt::DecodeStatus::kOk,
                        "broker sent a bad AUTH");
      COREMQ_ASSERT_MSG(auth.properties.authentication_method.has_value(), "AUTH without a method");
      bool same_method = !client.method.empty() && auth.properties.authentication_method == client.method;
      COREMQ_ASSERT_MSG(!client.built_v5 || same_method, "AUTH without the CONNECT's method (MQTT-4.12.0-5, -6)");
      COREMQ_ASSERT_MSG(client.saw_connack || auth.reason_code == 0x18, "AUTH before CONNACK is not Continue");
      COREMQ_ASSERT_MSG(auth.reason_code != 0x19, "the broker never asks to re-authenticate");
      uint32_t limit = client.connection->client_maximum_packet_size;
      COREMQ_ASSERT_MSG(limit == 0 || size_t{header.header_length} + header.remaining_length <= limit,
                        "AUTH over the client's Maximum Packet Size (MQTT-3.1.2-24)");
      return;
    }
    COREMQ_ASSERT_MSG(client.saw_connack || header.type == PacketType::kConnack,
                      "first packet is neither CONNACK nor AUTH (no DISCONNECT before CONNACK: MQTT-3.14.0-1)");
    client.saw_connack = true;
  }

  void check_packet(Client& client, const mqtt::FixedHeader& header, std::span<const uint8_t> body) {
    using mqtt::DecodeStatus;
    constexpr auto kVersion = mqtt::ProtocolVersion::kV311;
    COREMQ_ASSERT_MSG(!client.refused, "output after a refusing CONNACK");
    // An MQTT 5 session (raw CONNECT bytes can ask for one) gets MQTT 5 packets: only their
    // framing and the CONNACK-first rule are checked here.
    if (client.mqtt5 || client.connection->version == mqtt::ProtocolVersion::kV5) {
      check_packet_v5(client, header, body);
      return;
    }
    if (!client.saw_connack) {
      COREMQ_ASSERT_MSG(header.type == PacketType::kConnack, "first packet to a client is not CONNACK");
      mqtt::ConnackPacket connack;
      if (mqtt::decode_connack(body, header.flags, kVersion, &connack) != DecodeStatus::kOk) {
        // A refusal of an MQTT 5 CONNECT is an MQTT 5 CONNACK even though no session started.
        COREMQ_ASSERT_MSG(mqtt::decode_connack(body, header.flags, mqtt::ProtocolVersion::kV5, &connack) ==
                              DecodeStatus::kOk,
                          "first packet is not a valid CONNACK");
        client.mqtt5 = true;
      }
      client.saw_connack = true;
      client.refused = connack.return_code != mqtt::ConnectReturnCode::kAccepted;
      return;
    }
    switch (header.type) {
      case PacketType::kPublish: {
        mqtt::PublishPacket publish;
        DecodeStatus status = mqtt::decode_publish(body, header.flags, kVersion, &publish);
        if (status != DecodeStatus::kOk) dump_packet(client, header, body, mqtt::decode_status_name(status));
        COREMQ_ASSERT_MSG(status == DecodeStatus::kOk, "broker sent a bad PUBLISH");
        break;
      }
      case PacketType::kPuback:
      case PacketType::kPubrec:
      case PacketType::kPubrel:
      case PacketType::kPubcomp: {
        uint16_t packet_id = 0;
        COREMQ_ASSERT(mqtt::decode_packet_id_only(body, header.flags, header.type, &packet_id) == DecodeStatus::kOk);
        break;
      }
      case PacketType::kSuback: {
        mqtt::SubackPacket suback;
        COREMQ_ASSERT(mqtt::decode_suback(body, header.flags, kVersion, &suback) == DecodeStatus::kOk);
        break;
      }
      case PacketType::kUnsuback: {
        mqtt::UnsubackPacket unsuback;
        COREMQ_ASSERT(mqtt::decode_unsuback(body, header.flags, kVersion, &unsuback) == DecodeStatus::kOk);
        break;
      }
      case PacketType::kPingresp:
        COREMQ_ASSERT(mqtt::decode_empty(body, header.flags, header.type) == DecodeStatus::kOk);
        break;
      default:
        COREMQ_ASSERT_MSG(false, "broker sent a packet a server never sends");
    }
  }

  const Options options_;
  std::vector<std::unique_ptr<FakeIo>> ios_;
  std::vector<std::unique_ptr<broker::ShardState>> shards_;
  // Items posted and not yet delivered, per (from, to) pair, in order: the rings.
  std::vector<std::deque<CrossShardItem>> in_rings_;
  // Referred to by index: adoption appends while a caller may hold an index.
  std::vector<Client> clients_;
  size_t bytes_fed_ = 0;  // every byte fed to any connection, for quiesce()'s livelock bound
};

void build_connect(Script& script, base::ByteBuffer& out) {
  mqtt::ConnectPacket connect;
  connect.client_id = kClientIds[script.byte() % std::size(kClientIds)];
  uint8_t flags = script.byte();
  connect.clean_session = flags & 0x01;
  connect.protocol_level = (flags & 0x20) ? 3 : 4;
  connect.has_will = flags & 0x02;
  if (connect.has_will) {
    connect.will.qos = ((flags >> 2) & 3) % 3;
    connect.will.retain = flags & 0x10;
    connect.will.topic = script.topic();
    connect.will.payload = script.string(script.byte() % 16);
    // A will topic the decoder refuses closes the connection: a fine path, but keep it rare.
    if (!topic::is_valid_topic_name(connect.will.topic)) connect.will.topic = "will/c";
  }
  if (flags & 0x40) {
    connect.has_username = true;
    connect.username = "user";
    connect.has_password = true;
    connect.password = "secret";
  }
  if (flags & 0x80) connect.keep_alive_seconds = script.byte();
  mqtt::encode_connect(out, connect);
}

void build_packet(Script& script, base::ByteBuffer& out) {
  uint8_t kind = script.byte() % 9;
  switch (kind) {
    case 0: {
      mqtt::PublishPacket publish;
      uint8_t flags = script.byte();
      publish.topic = script.topic();
      if (publish.topic.empty() || publish.topic.size() > mqtt::kStringLengthMax) publish.topic = "a";
      publish.qos = (flags & 3) % 3;
      publish.retain = flags & 0x04;
      publish.dup = publish.qos > 0 && (flags & 0x08);
      publish.packet_id = publish.qos > 0 ? std::max<uint16_t>(1, script.byte()) : 0;
      std::string payload = payload_of_size((flags & 0x10) ? script.u16() % 4096 : script.byte() % 64);
      publish.payload = payload;
      mqtt::encode_publish(out, publish);
      return;
    }
    case 1: {
      mqtt::SubscribeTopic topics[3];
      size_t count = 1 + script.byte() % 3;
      for (size_t i = 0; i < count; ++i) {
        topics[i].filter = script.filter();
        topics[i].qos = script.byte() % 3;
      }
      mqtt::encode_subscribe(out, std::max<uint16_t>(1, script.byte()), std::span(topics, count));
      return;
    }
    case 2: {
      std::string_view filters[3];
      size_t count = 1 + script.byte() % 3;
      for (size_t i = 0; i < count; ++i) filters[i] = script.filter();
      mqtt::encode_unsubscribe(out, std::max<uint16_t>(1, script.byte()), std::span(filters, count));
      return;
    }
    case 3:
    case 4:
    case 5:
    case 6: {
      // Small ids, so they hit the broker's in-flight window (it numbers from 1); 0 is a
      // protocol error and closes the connection, a path worth keeping.
      constexpr PacketType kAcks[] = {PacketType::kPuback, PacketType::kPubrec, PacketType::kPubrel,
                                      PacketType::kPubcomp};
      uint16_t packet_id = script.byte();
      if (packet_id == 0) {
        out.append_u8(static_cast<uint8_t>(static_cast<uint8_t>(kAcks[kind - 3]) << 4 | (kind == 5 ? 2 : 0)));
        out.append_u8(2);
        out.append_u16(0);
        return;
      }
      mqtt::encode_ack(out, kAcks[kind - 3], packet_id);
      return;
    }
    case 7: mqtt::encode_pingreq(out); return;
    default: mqtt::encode_disconnect(out); return;
  }
}

// An MQTT 5 CONNECT, with or without an Authentication Method; returns the method.
std::string_view build_connect_v5(Script& script, base::ByteBuffer& out) {
  mqtt::ConnectPacket connect;
  connect.protocol_level = 5;
  connect.client_id = kClientIds[script.byte() % std::size(kClientIds)];
  uint8_t flags = script.byte();
  connect.clean_session = flags & 0x01;
  size_t method_index = (flags >> 1) & 3;
  std::string_view method = method_index < std::size(kMethods) ? kMethods[method_index] : std::string_view();
  if (!method.empty()) connect.properties.authentication_method = method;
  std::string_view data = script.string(script.byte() % 32);
  if (!method.empty() && !data.empty()) connect.properties.authentication_data = data;
  // 16 to 271 bytes: some AUTH steps (up to 95 bytes of data) pass it.
  if (flags & 0x08) connect.properties.maximum_packet_size = 16 + script.byte();
  if (flags & 0x10) connect.properties.request_problem_information = 0;
  if (flags & 0x20) {
    connect.has_will = true;
    connect.will.topic = "will/c";
    connect.will.payload = "gone";
  }
  if (flags & 0x40) connect.keep_alive_seconds = script.byte();
  if (flags & 0x80) connect.properties.session_expiry_interval_seconds = script.byte();
  mqtt::encode_connect(out, connect);
  return method;
}

// AUTH as a client sends it: Continue authentication, Re-authenticate, or (wrongly) Success,
// with a method of the table (the CONNECT's or another one), or the empty short form.
void build_auth(Script& script, base::ByteBuffer& out) {
  uint8_t reason_selector = script.byte();
  constexpr uint8_t kReasons[] = {0x18, 0x19, 0x18, 0x19, 0x00, 0x00};
  size_t reason_index = reason_selector % std::size(kReasons);
  uint8_t reason = kReasons[reason_index];
  if (reason_index == std::size(kReasons) - 1) {
    mqtt::encode_auth(out, 0x00, {});  // Success, no properties: an empty body, no method
    return;
  }
  mqtt::Properties properties;
  properties.authentication_method = kMethods[script.byte() % std::size(kMethods)];
  std::string_view data = script.string(script.byte() % 32);
  if (!data.empty()) properties.authentication_data = data;
  base::ByteBuffer property_bytes;
  mqtt::encode_property_bytes(property_bytes, mqtt::PropertyContext::kAuth, properties);
  mqtt::encode_auth(out, reason, property_bytes.span());
}

// Feeds `bytes` in one piece or split in two at a point the script picks.
void feed_split(Cluster& cluster, int client, std::span<const uint8_t> bytes, uint8_t split) {
  if (split == 0 || bytes.size() < 2) {
    cluster.feed(client, bytes);
    return;
  }
  size_t at = 1 + split % (bytes.size() - 1);
  cluster.feed(client, bytes.first(at));
  cluster.feed(client, bytes.subspan(at));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Script script({data, size});
  const uint8_t shape = script.byte();
  const uint32_t shard_count = 1 + (shape & 3);
  const bool shutdown_at_end = shape & 0x04;
  base::set_log_level((shape >> 3) == 0x1F ? base::LogLevel::kDebug : base::LogLevel::kNone);
  Options options = options_from(script.byte());
  auto hook = std::make_shared<ScriptedHook>();
  hook->set_script(&script);
  options.authentication_hook = hook;

  std::shared_ptr<const auth::AclFile> acl;
  if (shape & 0x20) {
    static const std::shared_ptr<const auth::AclFile> fuzz_acl = [] {
      std::string error;
      auto file = auth::AclFile::parse(kFuzzAcl, "fuzz", &error);
      COREMQ_ASSERT_MSG(file != nullptr, "kFuzzAcl must parse");
      return file;
    }();
    acl = fuzz_acl;
  }
  Cluster cluster(shard_count, options, acl);
  int64_t now_ms = 1;  // the real clock is CLOCK_MONOTONIC: never zero
  cluster.set_clock(now_ms);
  base::ByteBuffer packet;
  while (!script.done()) {
    const auto operation = static_cast<Operation>(script.byte() % kOperationCount);
    switch (operation) {
      case kOpenRaw: cluster.open(script.byte() % shard_count, now_ms); break;
      case kOpenConnect: {
        int client = cluster.open(script.byte() % shard_count, now_ms);
        packet.clear();
        build_connect(script, packet);
        uint8_t split = script.byte();
        if (client >= 0) feed_split(cluster, client, packet.span(), split);
        break;
      }
      case kFeedRaw: {
        int client = cluster.pick(script.byte());
        std::span<const uint8_t> bytes = script.take(script.byte());
        cluster.feed(client, bytes);
        break;
      }
      case kFeedPacket: {
        int client = cluster.pick(script.byte());
        packet.clear();
        build_packet(script, packet);
        feed_split(cluster, client, packet.span(), script.byte());
        break;
      }
      case kTick: {
        uint8_t step = script.byte();
        now_ms += step == 0xFF ? 3'600'000 : int64_t{step} * 250;
        cluster.tick(now_ms);
        break;
      }
      case kTransportClosed: cluster.transport_closed(cluster.pick(script.byte())); break;
      case kSendBegin: cluster.send_begin(cluster.pick(script.byte())); break;
      case kSendComplete: cluster.send_complete(cluster.pick(script.byte())); break;
      case kEndOfTurn: cluster.end_of_turn(); break;
      case kCrossShard: {
        uint8_t selector = script.byte();
        uint32_t from = script.byte();
        uint32_t to = script.byte();
        constexpr CrossShardItem::Kind kKinds[] = {CrossShardItem::Kind::kPublish, CrossShardItem::Kind::kInterestAdd,
                                                   CrossShardItem::Kind::kInterestRemove};
        CrossShardItem::Kind kind = kKinds[selector % 3];
        std::string_view text = kind == CrossShardItem::Kind::kPublish ? script.topic() : script.filter();
        uint8_t payload_size = script.byte();
        cluster.cross_shard(from, to, kind, text, selector >> 2, selector & 0x80, payload_size % 32);
        break;
      }
      case kDeliverSome: {
        uint32_t from = script.byte();
        uint32_t to = script.byte();
        cluster.deliver_some(from, to, 1 + script.byte() % 4);
        break;
      }
      case kCloseHeld: cluster.close_held(cluster.pick(script.byte())); break;
      case kOpenConnectV5: {
        int client = cluster.open(script.byte() % shard_count, now_ms);
        packet.clear();
        std::string_view method = build_connect_v5(script, packet);
        uint8_t split = script.byte();
        if (client >= 0) {
          cluster.set_method(client, method);
          feed_split(cluster, client, packet.span(), split);
        }
        break;
      }
      case kFeedAuth: {
        int client = cluster.pick(script.byte());
        packet.clear();
        build_auth(script, packet);
        feed_split(cluster, client, packet.span(), script.byte());
        break;
      }
      case kOperationCount: break;
    }
  }
  cluster.quiesce();
  if (shutdown_at_end) {
    cluster.shutdown();
    cluster.quiesce();
  }
  cluster.check_all_output();
  return 0;
}
