// Tests of the shard event loop itself (src/shard/shard.cc): one or two real Shards, each with
// its own io_uring, provided-buffer ring and loopback listener, wired with real SPSC rings, and
// driven turn by turn on the test thread (ShardTestPeer reaches the private loop; no shard
// thread runs). Clients are real TCP sockets to 127.0.0.1. Tiny buffer counts and ring sizes
// make -ENOBUFS, input pauses and full peer rings happen on purpose; a shard that is not
// turned stands for a slow peer. The shards' clock is manual, so keep-alive and connect
// timeouts fire exactly when a test moves it.
// Deterministic: a test waits only for turns and for bytes on its sockets, each wait bounded
// (kWaitSeconds of wall clock, never a sleep).
// Single-threaded: everything runs on the test thread.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../unit/broker/shard_harness.h"
#include "broker/connection.h"
#include "broker/shard_state.h"
#include "coremq/authentication.h"
#include "coremq/options.h"
#include "io/listener.h"
#include "mqtt/encoder.h"
#include "mqtt/properties.h"
#include "persist/store.h"
#include "shard/shard.h"
#include "loopback_bridge_address.h"

namespace coremq::shard {

// The test's way into a Shard's private loop (a friend of Shard).
class ShardTestPeer {
 public:
  static bool set_up(Shard& shard) { return shard.set_up(); }
  static bool turn(Shard& shard) { return shard.turn(); }
  static void finish(Shard& shard) { shard.finish_loop(); }
  static void set_clock(Shard& shard, int64_t now_ms) { shard.manual_clock_ms_ = now_ms; }
  static int64_t clock(const Shard& shard) { return shard.manual_clock_ms_; }
  static broker::ShardState& state(Shard& shard) { return *shard.state_; }
  // --persistence: the store's journal given to a shard already set up (Cluster sets up in its
  // constructor; BrokerImpl sets the store before).
  static void attach_store(Shard& shard, persist::Store* store,
                           const std::vector<persist::LoadedSession>* sessions = nullptr) {
    static const broker::ShardState::RestoredBodies kNoBodies;
    shard.set_store(store, nullptr, sessions, &kNoBodies);
    shard.restore_from_store();
  }
  static void exchange_restored_interest(Shard& shard) { shard.exchange_restored_interest(); }
  // Bridges given to a shard already set up (Cluster sets up in its constructor; BrokerImpl
  // gives them before), started as set_up starts them.
  static void start_bridges(Shard& shard, std::vector<BridgeSetup> setups) {
    shard.set_bridges(std::move(setups));
    shard.start_bridges();
  }
  static bool paused(const Shard& shard) { return shard.input_paused_; }
  static size_t starved(const Shard& shard) { return shard.starved_.size(); }
  static size_t parked(const Shard& shard) {
    size_t live = 0;
    for (const auto& entry : shard.parked_) live += entry.connection != nullptr ? 1 : 0;
    return live;
  }
  static size_t parked_bytes(const Shard& shard, const broker::Connection* connection) {
    size_t bytes = 0;
    for (const auto& entry : shard.parked_) {
      if (entry.connection == connection && entry.buffer_id < 0x8000) bytes += entry.length;
    }
    return bytes;
  }
  static bool has_staged(const Shard& shard) { return shard.has_staged_items(); }
  // The connection of the session `client_id`, or null.
  static broker::Connection* find(Shard& shard, std::string_view client_id) {
    for (broker::Connection* connection : shard.connections_) {
      if (connection->session != nullptr && connection->session->client_id == client_id) return connection;
    }
    return nullptr;
  }
  static size_t connection_count(const Shard& shard) { return shard.connections_.size(); }
  static size_t delayed_hand_offs(const Shard& shard) { return shard.delayed_hand_offs_.size(); }
  static bool send_in_flight(const Shard& shard) {
    for (const broker::Connection* connection : shard.connections_) {
      if (connection->send_in_flight) return true;
    }
    return false;
  }
};

namespace {

using coremq::testing::connect_bytes;
using coremq::testing::ConnectOptions;
using coremq::testing::disconnect_bytes;
using coremq::testing::pingreq_bytes;
using coremq::testing::publish_bytes;
using coremq::testing::subscribe_bytes;
using Clock = std::chrono::steady_clock;

constexpr auto kWaitSeconds = std::chrono::seconds(10);
constexpr int64_t kStartMs = 1'000'000;

// One packet read from a client socket.
struct Packet {
  mqtt::PacketType type;
  std::string body;
  std::string topic() const {  // of a PUBLISH (QoS 0)
    size_t length = (uint8_t(body[0]) << 8) | uint8_t(body[1]);
    return body.substr(2, length);
  }
  std::string payload() const { return body.substr(2 + topic().size()); }
};

// One or two shards driven on this thread.
class Cluster {
 public:
  Cluster(uint32_t count, Options options) : options_(std::move(options)) {
    options_.bind_address = "127.0.0.1";
    for (uint32_t from = 0; from < count; ++from) {
      for (uint32_t to = 0; to < count; ++to) {
        rings_.push_back(from == to ? nullptr : std::make_unique<CrossShardRing>(options_.cross_shard_queue_capacity));
      }
    }
    for (uint32_t i = 0; i < count; ++i) {
      std::string error;
      uint16_t port = 0;
      int fd = io::open_listener("127.0.0.1", 0, 64, /*join_group=*/false, &port, &error);
      EXPECT_GE(fd, 0) << error;
      ports_.push_back(port);
      shards_.push_back(std::make_unique<Shard>(i, count, options_, shared_, fd));
    }
    for (uint32_t i = 0; i < count; ++i) {
      std::vector<Peer> peers(count);
      std::vector<CrossShardRing*> inbound(count, nullptr);
      for (uint32_t j = 0; j < count; ++j) {
        if (j == i) continue;
        peers[j] = Peer{rings_[i * count + j].get(), shards_[j].get()};
        inbound[j] = rings_[j * count + i].get();
      }
      shards_[i]->set_peers(std::move(peers), std::move(inbound));
      ShardTestPeer::set_clock(*shards_[i], kStartMs);
      EXPECT_TRUE(ShardTestPeer::set_up(*shards_[i])) << shards_[i]->startup_error();
    }
    stopped_.resize(count, false);
    driven_.resize(count, true);
  }

  ~Cluster() {
    for (uint32_t i = 0; i < shards_.size(); ++i) stop(i, 1000);
    for (auto& shard : shards_) shard->release_leftovers();
  }

  Shard& shard(uint32_t i) { return *shards_[i]; }
  uint16_t port(uint32_t i) const { return ports_[i]; }
  // A shard that is not driven is never turned: a peer that does not drain its ring.
  void set_driven(uint32_t i, bool driven) { driven_[i] = driven; }

  // One turn of every driven, running shard.
  void turn() {
    for (uint32_t i = 0; i < shards_.size(); ++i) {
      if (driven_[i] && !stopped_[i]) {
        EXPECT_TRUE(ShardTestPeer::turn(*shards_[i]));
      }
    }
  }

  // Turns until `done` holds; false if it did not within kWaitSeconds.
  bool turn_until(const std::function<bool()>& done) {
    auto deadline = Clock::now() + kWaitSeconds;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      turn();
    }
    return true;
  }

  // Stops shard i; true if its loop ended within max_turns turns (its clock stands still, so
  // only an ended loop counts, never the grace period).
  bool stop(uint32_t i, int max_turns) {
    if (stopped_[i]) return true;
    shards_[i]->request_stop();
    for (int turns = 0; turns < max_turns; ++turns) {
      if (!ShardTestPeer::turn(*shards_[i])) {
        ShardTestPeer::finish(*shards_[i]);
        stopped_[i] = true;
        return true;
      }
    }
    return false;
  }

  void advance_clock(uint32_t i, int64_t ms) {
    ShardTestPeer::set_clock(*shards_[i], ShardTestPeer::clock(*shards_[i]) + ms);
  }

  const Options& options() const { return options_; }

 private:
  Options options_;
  SharedState shared_;
  std::vector<std::unique_ptr<CrossShardRing>> rings_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::vector<uint16_t> ports_;
  std::vector<bool> stopped_;
  std::vector<bool> driven_;
};

// A client socket to one shard's listener; non-blocking, so the test can turn the shards while
// it writes and reads.
class Client {
 public:
  Client(Cluster& cluster, uint32_t shard) : cluster_(cluster) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(cluster.port(shard));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // A loopback connect completes in the kernel's backlog, before the shard accepts.
    EXPECT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0) << std::strerror(errno);
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~Client() { close(); }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Closes with a reset (SO_LINGER 0), as a crashed client would.
  void reset() {
    linger option{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &option, sizeof(option));
    close();
  }
  void shut_down_write() { ::shutdown(fd_, SHUT_WR); }

  // Writes all of `bytes`, turning the shards while the socket buffer is full.
  void send(std::string_view bytes) {
    auto deadline = Clock::now() + kWaitSeconds;
    while (!bytes.empty()) {
      ssize_t written = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (written > 0) {
        bytes.remove_prefix(static_cast<size_t>(written));
        continue;
      }
      ASSERT_TRUE(written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) << std::strerror(errno);
      ASSERT_LT(Clock::now(), deadline) << "socket buffer stayed full";
      cluster_.turn();
    }
  }

  // Turns the shards until a whole packet is here; nullopt on end of stream or timeout.
  std::optional<Packet> read_packet() {
    auto deadline = Clock::now() + kWaitSeconds;
    for (;;) {
      if (auto packet = take_packet()) return packet;
      if (eof_ || Clock::now() > deadline) return std::nullopt;
      if (!fill()) cluster_.turn();
    }
  }
  // True once the broker closed the socket (bytes before the end are read and kept).
  bool wait_closed() {
    auto deadline = Clock::now() + kWaitSeconds;
    while (!eof_) {
      if (Clock::now() > deadline) return false;
      if (!fill()) cluster_.turn();
    }
    return true;
  }
  // What the socket brings goes through `transform` before packets are read out of it (a
  // client of a test transport undoes its wire form).
  void set_receive_transform(std::function<std::string(std::string_view)> transform) {
    transform_ = std::move(transform);
  }
  // Bytes received and not read as packets yet.
  const std::string& received() const { return buffer_; }
  // Bytes already here now, without turning: true if none.
  bool nothing_received() {
    fill();
    return buffer_.empty() && !eof_;
  }

  void connect_as(std::string_view client_id, ConnectOptions options = {}) {
    send(connect_bytes(client_id, options));
    auto connack = read_packet();
    ASSERT_TRUE(connack.has_value());
    ASSERT_EQ(connack->type, mqtt::PacketType::kConnack);
    ASSERT_EQ(connack->body[1], 0) << "connection refused";
  }
  void subscribe(std::string_view filter) {
    send(subscribe_bytes(1, {{filter, 0}}));
    auto suback = read_packet();
    ASSERT_TRUE(suback.has_value());
    ASSERT_EQ(suback->type, mqtt::PacketType::kSuback);
  }
  // A PINGREQ round trip: everything the broker sent before the PINGRESP is returned.
  std::vector<Packet> ping() {
    send(pingreq_bytes());
    std::vector<Packet> before;
    for (;;) {
      auto packet = read_packet();
      EXPECT_TRUE(packet.has_value()) << "no PINGRESP";
      if (!packet || packet->type == mqtt::PacketType::kPingresp) return before;
      before.push_back(*packet);
    }
  }

 private:
  // Reads what is there; false if nothing was.
  bool fill() {
    char chunk[65536];
    pollfd readable{fd_, POLLIN, 0};
    if (::poll(&readable, 1, 0) <= 0) return false;
    ssize_t got = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (got > 0) {
      std::string_view bytes(chunk, static_cast<size_t>(got));
      buffer_ += transform_ ? transform_(bytes) : std::string(bytes);
      return true;
    }
    if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) eof_ = true;
    return got == 0;
  }
  std::optional<Packet> take_packet() {
    if (buffer_.size() < 2) return std::nullopt;
    size_t remaining = 0;
    size_t index = 1;
    for (int shift = 0;; shift += 7, ++index) {
      if (index >= buffer_.size()) return std::nullopt;
      remaining |= size_t(uint8_t(buffer_[index]) & 0x7F) << shift;
      if ((uint8_t(buffer_[index]) & 0x80) == 0) break;
    }
    size_t header = index + 1;
    if (buffer_.size() < header + remaining) return std::nullopt;
    Packet packet{static_cast<mqtt::PacketType>(uint8_t(buffer_[0]) >> 4), buffer_.substr(header, remaining)};
    buffer_.erase(0, header + remaining);
    return packet;
  }

  Cluster& cluster_;
  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
  std::function<std::string(std::string_view)> transform_;
};

// A client id whose session lives on `shard` of `count`.
std::string id_on(uint32_t shard, uint32_t count, std::string_view prefix) {
  for (int i = 0;; ++i) {
    std::string id = std::string(prefix) + std::to_string(i);
    if (broker::owner_shard_of(id, count) == shard) return id;
  }
}

// A RocksDB store under dir for the cluster's shards, its committer waking the shard it
// answered; null (with the reason as a test failure) if it cannot open.
std::unique_ptr<persist::Store> open_store(const std::string& dir, Cluster& cluster, uint32_t shards) {
  PersistenceOptions persistence;
  persistence.engine = PersistenceOptions::Engine::kRocksDb;
  persistence.data_dir = dir;
  std::string error;
  std::unique_ptr<persist::Store> store = persist::Store::open(
      persistence, shards, [&cluster](uint32_t shard) { cluster.shard(shard).wake_from_outside(); }, &error);
  EXPECT_NE(store, nullptr) << error;
  return store;
}

Options tiny_options() {
  Options options;
  options.threads = 2;
  options.ring_entries = 64;
  options.receive_buffer_count = 16;
  options.receive_buffer_size = 1024;
  options.cross_shard_queue_capacity = 64;
  options.connect_timeout_seconds = 10;
  options.log_level = "warning";
  return options;
}

// Count QoS 0 PUBLISHes of `topic` numbered from `first`, each payload its number.
std::string numbered_publishes(std::string_view topic, int first, int count) {
  std::string bytes;
  for (int i = first; i < first + count; ++i) bytes += publish_bytes(topic, "message-" + std::to_string(i));
  return bytes;
}

// Shard A (0) and B (1) of `count`. `subscriber` on B subscribes to "t"; `publisher` on A
// connects. Then B is no longer turned, and the publisher floods "t" until A has paused its
// input (more items staged for B than --cross-shard-queue-capacity); with exhaust_buffers,
// until its own receive has run out of buffers too (all of them parked). Returns how many
// messages the publisher sent.
int pause_shard_a(Cluster& cluster, uint32_t count, Client& subscriber, Client& publisher, bool exhaust_buffers) {
  subscriber.connect_as(id_on(1, count, "subscriber"));
  subscriber.subscribe("t");
  publisher.connect_as(id_on(0, count, "publisher"));
  publisher.ping();  // A has now drained B's interest in "t" (B pushed it before its SUBACK)
  cluster.set_driven(1, false);
  Shard& a = cluster.shard(0);
  int sent = 0;
  auto deadline = Clock::now() + kWaitSeconds;
  // 300 messages of 16 bytes: about 5 of A's 16 receive buffers, past the bound of 64 items.
  while (!(ShardTestPeer::paused(a) && (!exhaust_buffers || ShardTestPeer::starved(a) > 0))) {
    EXPECT_LT(Clock::now(), deadline) << "shard A never paused";
    if (Clock::now() > deadline) break;
    if (sent == 0 || exhaust_buffers) {
      publisher.send(numbered_publishes("t", sent, 300));
      sent += 300;
    }
    cluster.turn();
  }
  return sent;
}

// The subscriber reads `count` messages of "t", numbered 0.. in order.
void expect_all_in_order(Client& subscriber, int count) {
  for (int i = 0; i < count; ++i) {
    auto packet = subscriber.read_packet();
    ASSERT_TRUE(packet.has_value()) << "message " << i << " of " << count << " missing";
    ASSERT_EQ(packet->type, mqtt::PacketType::kPublish);
    ASSERT_EQ(packet->payload(), "message-" + std::to_string(i));
  }
}

// ---- a full peer ring --------------------------------------------------------------------

TEST(ShardLoop, FullPeerRingPausesInputAndLosesNothing) {
  Cluster cluster(2, tiny_options());
  Client subscriber(cluster, 1);
  Client publisher(cluster, 0);
  int sent = pause_shard_a(cluster, 2, subscriber, publisher, /*exhaust_buffers=*/true);
  EXPECT_GE(ShardTestPeer::state(cluster.shard(0)).counters().cross_shard_queue_full, 1u);
  EXPECT_GT(ShardTestPeer::parked(cluster.shard(0)), 0u);
  cluster.set_driven(1, true);
  expect_all_in_order(subscriber, sent);
  EXPECT_TRUE(cluster.turn_until([&] { return !ShardTestPeer::paused(cluster.shard(0)); }));
  EXPECT_EQ(ShardTestPeer::parked(cluster.shard(0)), 0u);
  EXPECT_EQ(ShardTestPeer::starved(cluster.shard(0)), 0u);
}

// ---- defect 2: a starved receive of a connection that is closed meanwhile ------------------

TEST(ShardLoop, StarvedReceiveOfClosedConnectionIsNotRearmed) {
  Cluster cluster(2, tiny_options());
  Client subscriber(cluster, 1);
  Client publisher(cluster, 0);
  int sent = pause_shard_a(cluster, 2, subscriber, publisher, /*exhaust_buffers=*/true);
  Shard& a = cluster.shard(0);
  // A new connection's first receive finds no buffer: it is starved until the pause ends.
  size_t starved_before = ShardTestPeer::starved(a);
  Client late(cluster, 0);
  late.send(connect_bytes(id_on(0, 2, "late")));
  ASSERT_TRUE(cluster.turn_until([&] { return ShardTestPeer::starved(a) > starved_before; }));
  // It sent no whole CONNECT the broker could read: the connect timeout closes it.
  cluster.advance_clock(0, 11'000);
  ASSERT_TRUE(late.wait_closed());
  EXPECT_EQ(ShardTestPeer::state(a).counters().connect_timeouts, 1u);
  // The pause ends: re-arming the starved receives must not touch the freed connection
  // (AddressSanitizer reports a heap-use-after-free here without the fix).
  cluster.set_driven(1, true);
  expect_all_in_order(subscriber, sent);
  EXPECT_TRUE(cluster.turn_until([&] { return !ShardTestPeer::paused(a) && ShardTestPeer::starved(a) == 0; }));
  EXPECT_TRUE(publisher.ping().empty());
}

// ---- defect 8: parked input and timers -------------------------------------------------------

// A client with a will to "will" whose DISCONNECT is parked behind the pause; `watcher` (on A)
// subscribes to "will" first.
void connect_with_will(Client& client, std::string_view client_id, uint16_t keep_alive_seconds) {
  ConnectOptions options;
  options.keep_alive_seconds = keep_alive_seconds;
  options.has_will = true;
  options.will.topic = "will";
  options.will.payload = "gone";
  client.connect_as(client_id, options);
}

// The scene of the parked-DISCONNECT tests: shard A (0) paused by a flood for B (1, not
// driven), a client "leaving" with a will on A whose DISCONNECT is parked there, and a
// watcher on A subscribed to the will's topic.
struct ParkedDisconnect {
  ParkedDisconnect(Cluster& the_cluster, uint32_t shards)
      : cluster(the_cluster),
        shard_count(shards),
        subscriber(the_cluster, 1),
        publisher(the_cluster, 0),
        watcher(the_cluster, 0),
        leaving(the_cluster, 0),
        leaving_id(id_on(0, shards, "leaving")) {}

  void set_up(uint16_t keep_alive_seconds) {
    watcher.connect_as(id_on(0, shard_count, "watcher"));
    watcher.subscribe("will");
    connect_with_will(leaving, leaving_id, keep_alive_seconds);
    sent = pause_shard_a(cluster, shard_count, subscriber, publisher, /*exhaust_buffers=*/false);
    connection = ShardTestPeer::find(cluster.shard(0), leaving_id);
    ASSERT_NE(connection, nullptr);
    leaving.send(disconnect_bytes());
    ASSERT_TRUE(cluster.turn_until([&] { return ShardTestPeer::parked_bytes(cluster.shard(0), connection) == 2; }));
  }

  // Lets B drain: every flooded message arrives in order, and the leaving client is closed.
  void finish() {
    cluster.set_driven(1, true);
    expect_all_in_order(subscriber, sent);
    EXPECT_TRUE(leaving.wait_closed());
  }

  // After finish(): the taker got its CONNACK, and no will went out (the DISCONNECT, parked
  // before the taker's CONNECT arrived, was read first).
  void finish_takeover(Client& taker) {
    finish();
    auto connack = taker.read_packet();
    ASSERT_TRUE(connack.has_value());
    EXPECT_EQ(connack->type, mqtt::PacketType::kConnack);
    EXPECT_TRUE(watcher.ping().empty()) << "the will was published: the takeover beat the parked DISCONNECT";
  }

  Cluster& cluster;
  uint32_t shard_count;
  Client subscriber;
  Client publisher;
  Client watcher;
  Client leaving;
  std::string leaving_id;
  int sent = 0;
  broker::Connection* connection = nullptr;
};

TEST(ShardLoop, ParkedDisconnectIsNotLostToKeepAlive) {
  Cluster cluster(2, tiny_options());
  ParkedDisconnect scene(cluster, 2);
  ASSERT_NO_FATAL_FAILURE(scene.set_up(/*keep_alive_seconds=*/2));
  // Twice the keep-alive passes while the DISCONNECT is parked: the client was not idle.
  cluster.advance_clock(0, 4'000);
  cluster.turn();
  cluster.turn();
  scene.finish();
  EXPECT_TRUE(scene.watcher.ping().empty()) << "the will was published: the parked DISCONNECT was lost";
  EXPECT_EQ(ShardTestPeer::state(cluster.shard(0)).counters().keep_alive_expiries, 0u);
}

TEST(ShardLoop, ParkedDisconnectIsReadBeforeATakeover) {
  Cluster cluster(2, tiny_options());
  ParkedDisconnect scene(cluster, 2);
  ASSERT_NO_FATAL_FAILURE(scene.set_up(/*keep_alive_seconds=*/0));
  // A new connection takes the session over: its CONNECT arrived after the DISCONNECT.
  Client taker(cluster, 0);
  taker.send(connect_bytes(scene.leaving_id));
  for (int i = 0; i < 4; ++i) cluster.turn();
  scene.finish_takeover(taker);
}

// The taker connects to another shard (C), which hands it to the session's owner (A) while A
// has input parked; A adopts it with its CONNECT still unread.
TEST(ShardLoop, ParkedDisconnectIsReadBeforeATakeoverFromAnotherShard) {
  Options options = tiny_options();
  options.threads = 3;
  Cluster cluster(3, options);
  ParkedDisconnect scene(cluster, 3);
  ASSERT_NO_FATAL_FAILURE(scene.set_up(/*keep_alive_seconds=*/0));
  Shard& a = cluster.shard(0);
  Client taker(cluster, 2);
  taker.send(connect_bytes(scene.leaving_id));
  size_t connections_before = ShardTestPeer::connection_count(a);
  ASSERT_TRUE(cluster.turn_until([&] { return ShardTestPeer::connection_count(a) > connections_before; }));
  for (int i = 0; i < 4; ++i) cluster.turn();
  EXPECT_TRUE(ShardTestPeer::paused(a));
  scene.finish_takeover(taker);
}

// A CONNECT parked on A (it arrived while A was paused) names a client id owned by B: when it
// is replayed the connection moves to B with every byte that came after the CONNECT.
TEST(ShardLoop, ParkedConnectIsHandedOffWithWhatFollowedIt) {
  Cluster cluster(2, tiny_options());
  Client subscriber(cluster, 1);
  Client publisher(cluster, 0);
  int sent = pause_shard_a(cluster, 2, subscriber, publisher, /*exhaust_buffers=*/false);
  Shard& a = cluster.shard(0);
  size_t parked_before = ShardTestPeer::parked(a);
  Client mover(cluster, 0);
  mover.send(connect_bytes(id_on(1, 2, "mover")) + subscribe_bytes(7, {{"moved", 0}}) + pingreq_bytes());
  ASSERT_TRUE(cluster.turn_until([&] { return ShardTestPeer::parked(a) > parked_before; }));
  EXPECT_EQ(ShardTestPeer::connection_count(cluster.shard(1)), 1u);  // the subscriber only
  cluster.set_driven(1, true);
  expect_all_in_order(subscriber, sent);
  for (mqtt::PacketType expected : {mqtt::PacketType::kConnack, mqtt::PacketType::kSuback, mqtt::PacketType::kPingresp}) {
    auto packet = mover.read_packet();
    ASSERT_TRUE(packet.has_value());
    EXPECT_EQ(packet->type, expected);
  }
  EXPECT_EQ(ShardTestPeer::connection_count(cluster.shard(1)), 2u);
  EXPECT_EQ(ShardTestPeer::parked(a), 0u);
}

// A connection closed while its own parked input is being replayed (a protocol error in the
// first entry): the rest of its entries are dropped under the replay's feet, their buffers
// recycled and never replayed, and everyone else's input still goes through in order.
TEST(ShardLoop, CloseDuringReplayDropsTheRestOfItsParkedInput) {
  Cluster cluster(2, tiny_options());
  Client subscriber(cluster, 1);
  Client publisher(cluster, 0);
  Client broken(cluster, 0);
  std::string broken_id = id_on(0, 2, "broken");
  broken.connect_as(broken_id);
  int sent = pause_shard_a(cluster, 2, subscriber, publisher, /*exhaust_buffers=*/false);
  Shard& a = cluster.shard(0);
  broker::Connection* connection = ShardTestPeer::find(a, broken_id);
  ASSERT_NE(connection, nullptr);
  std::string reserved_type("\x00\x00", 2);  // packet type 0 is reserved: a protocol error
  broken.send(reserved_type);
  ASSERT_TRUE(cluster.turn_until([&] { return connection->parked_count == 1; }));
  broken.send(pingreq_bytes());
  ASSERT_TRUE(cluster.turn_until([&] { return connection->parked_count == 2; }));
  publisher.send(numbered_publishes("t", sent, 10));  // parked after the broken client's input
  sent += 10;
  cluster.set_driven(1, true);
  expect_all_in_order(subscriber, sent);
  EXPECT_TRUE(broken.wait_closed());
  auto answer = broken.read_packet();  // the PINGREQ after the error is never answered
  EXPECT_FALSE(answer.has_value() && answer->type == mqtt::PacketType::kPingresp);
  EXPECT_TRUE(cluster.turn_until([&] { return ShardTestPeer::parked(a) == 0 && !ShardTestPeer::paused(a); }));
  EXPECT_TRUE(publisher.ping().empty());
}

// ---- closes in each state while input is parked or starved ----------------------------------

class SecondStepHook final : public AuthenticationHook {
 public:
  bool supports_method(std::string_view method) const override { return method == "two-step"; }
  Step begin(std::string_view, std::string_view, std::string_view) override {
    return Step{Step::Result::kContinue, "challenge"};
  }
  Step next(std::string_view, std::string_view, std::string_view data) override {
    return Step{data == "response" ? Step::Result::kSuccess : Step::Result::kFailure, ""};
  }
};

std::string auth_connect_bytes(std::string_view client_id) {
  mqtt::ConnectPacket connect;
  connect.client_id = client_id;
  connect.protocol_level = 5;
  connect.properties.authentication_method = "two-step";
  return coremq::testing::encoded([&](base::ByteBuffer& out) { mqtt::encode_connect(out, connect); });
}

std::string auth_bytes(std::string_view data) {
  mqtt::Properties properties;
  properties.authentication_method = "two-step";
  properties.authentication_data = data;
  base::ByteBuffer property_block;
  mqtt::encode_property_bytes(property_block, mqtt::PropertyContext::kAuth, properties);
  return coremq::testing::encoded([&](base::ByteBuffer& out) { mqtt::encode_auth(out, 0x18, property_block.span()); });
}

// Stopping a shard whose input is paused ends every connection, whatever its state and
// whatever it has parked or starved, and the loop ends without waiting for the pause.
TEST(ShardLoop, ShutdownWhilePausedEndsConnectionsInEveryState) {
  Options options = tiny_options();
  options.authentication_hook = std::make_shared<SecondStepHook>();
  Cluster cluster(2, options);
  Client subscriber(cluster, 1);
  Client publisher(cluster, 0);
  Client authenticating(cluster, 0);
  authenticating.send(auth_connect_bytes(id_on(0, 2, "auth")));
  auto challenge = authenticating.read_packet();
  ASSERT_TRUE(challenge.has_value());
  ASSERT_EQ(challenge->type, mqtt::PacketType::kAuth);
  Client connected(cluster, 0);
  connected.connect_as(id_on(0, 2, "connected"));
  pause_shard_a(cluster, 2, subscriber, publisher, /*exhaust_buffers=*/true);
  Shard& a = cluster.shard(0);
  size_t parked_before = ShardTestPeer::parked(a);
  size_t starved_before = ShardTestPeer::starved(a);
  connected.send(pingreq_bytes());  // parked or starved
  authenticating.send(auth_bytes("response"));
  Client awaiting(cluster, 0);
  awaiting.send(connect_bytes(id_on(0, 2, "awaiting")));
  Client reset(cluster, 0);
  reset.send(connect_bytes(id_on(0, 2, "reset")));
  for (int i = 0; i < 4; ++i) cluster.turn();
  EXPECT_GT(ShardTestPeer::parked(a) + ShardTestPeer::starved(a), parked_before + starved_before);
  reset.reset();
  cluster.turn();
  // A stands still (manual clock): only a loop that really ends its connections stops.
  EXPECT_TRUE(cluster.stop(0, 50)) << "shard A kept turning after its stop";
  for (Client* client : {&publisher, &connected, &authenticating, &awaiting}) EXPECT_TRUE(client->wait_closed());
}

// ---- MQTT 5 enhanced authentication: the AUTH reply is read ---------------------------------

TEST(ShardLoop, AuthenticatingConnectionKeepsBeingRead) {
  Options options = tiny_options();
  options.threads = 1;
  options.authentication_hook = std::make_shared<SecondStepHook>();
  Cluster cluster(1, options);
  Client client(cluster, 0);
  client.send(auth_connect_bytes("auth-client"));
  auto challenge = client.read_packet();
  ASSERT_TRUE(challenge.has_value());
  ASSERT_EQ(challenge->type, mqtt::PacketType::kAuth);
  client.send(auth_bytes("response"));
  auto connack = client.read_packet();
  ASSERT_TRUE(connack.has_value()) << "the AUTH reply was never read";
  EXPECT_EQ(connack->type, mqtt::PacketType::kConnack);
  EXPECT_EQ(connack->body[1], 0);  // Success
}

// ---- holding one connection's input ----------------------------------------------------------

TEST(ShardLoop, HeldInputIsParkedAndReplayedInOrderOnResume) {
  Options options = tiny_options();
  options.threads = 1;
  Cluster cluster(1, options);
  Shard& shard = cluster.shard(0);
  Client held(cluster, 0);
  Client other(cluster, 0);
  held.connect_as("held");
  held.subscribe("t");
  other.connect_as("other");
  broker::Connection* connection = ShardTestPeer::find(shard, "held");
  ASSERT_NE(connection, nullptr);
  // What ShardState does while a SUBACK waits for the other shards.
  connection->input_held = true;
  std::string bytes = numbered_publishes("t", 0, 3) + pingreq_bytes();
  held.send(bytes);
  ASSERT_TRUE(cluster.turn_until([&] { return ShardTestPeer::parked_bytes(shard, connection) == bytes.size(); }));
  // Other connections carry on meanwhile.
  EXPECT_TRUE(other.ping().empty());
  EXPECT_TRUE(held.nothing_received());
  connection->input_held = false;
  shard.resume_input(connection);
  for (int i = 0; i < 3; ++i) {
    auto packet = held.read_packet();
    ASSERT_TRUE(packet.has_value());
    ASSERT_EQ(packet->type, mqtt::PacketType::kPublish);
    EXPECT_EQ(packet->payload(), "message-" + std::to_string(i));
  }
  auto pingresp = held.read_packet();
  ASSERT_TRUE(pingresp.has_value());
  EXPECT_EQ(pingresp->type, mqtt::PacketType::kPingresp);
  EXPECT_EQ(connection->parked_count, 0u);
  // Held again: the end of the stream is parked like data, and the connection stays open.
  connection->input_held = true;
  held.shut_down_write();
  ASSERT_TRUE(cluster.turn_until([&] { return connection->parked_count == 1; }));
  cluster.turn();
  EXPECT_TRUE(held.nothing_received());
  EXPECT_EQ(ShardTestPeer::connection_count(shard), 2u);
  connection->input_held = false;
  shard.resume_input(connection);
  EXPECT_TRUE(held.wait_closed());
  EXPECT_EQ(ShardTestPeer::parked(shard), 0u);
}

// ---- defect 10: the staging bound on every path, and no spin at shutdown -------------------

std::string subscribe_many(int count, std::string_view prefix) {
  std::vector<std::string> filters;
  for (int i = 0; i < count; ++i) filters.push_back(std::string(prefix) + std::to_string(i));
  std::vector<mqtt::SubscribeTopic> topics(filters.size());
  for (size_t i = 0; i < filters.size(); ++i) topics[i].filter = filters[i];
  return coremq::testing::encoded([&](base::ByteBuffer& out) { mqtt::encode_subscribe(out, 1, topics); });
}

// Two clients each subscribe to 200 new filters, read in the same turn: each filter stages an
// interest change for B, which does not drain. The first SUBSCRIBE passes the bound (what
// B's ring takes, plus --cross-shard-queue-capacity), so the input pauses at once and the
// second is parked, not handled in the same turn (the bound held only at a turn's end).
TEST(ShardLoop, StagingPastTheBoundPausesInputAtOnce) {
  Cluster cluster(2, tiny_options());
  Shard& a = cluster.shard(0);
  Client first(cluster, 0);
  Client second(cluster, 0);
  first.connect_as(id_on(0, 2, "first"));
  second.connect_as(id_on(0, 2, "second"));
  cluster.set_driven(1, false);
  first.send(subscribe_many(200, "first/"));
  second.send(subscribe_many(200, "second/"));
  ASSERT_TRUE(cluster.turn_until([&] { return ShardTestPeer::paused(a); }));
  for (int i = 0; i < 4; ++i) cluster.turn();
  EXPECT_GT(ShardTestPeer::parked(a), 0u);
  // Each SUBSCRIBE handled holds its SUBACK for B's barrier acknowledgement: one, not two.
  EXPECT_EQ(ShardTestPeer::state(a).counters().answers_held_for_peers, 1u)
      << "both SUBSCRIBEs were handled past the bound";
  EXPECT_EQ(ShardTestPeer::state(a).counters().cross_shard_queue_full, 1u);
  cluster.set_driven(1, true);
  for (Client* client : {&first, &second}) {
    auto suback = client->read_packet();
    ASSERT_TRUE(suback.has_value());
    EXPECT_EQ(suback->type, mqtt::PacketType::kSuback);
  }
  EXPECT_TRUE(cluster.turn_until([&] { return !ShardTestPeer::paused(a) && !ShardTestPeer::has_staged(a); }));
}

// Items staged for a peer whose loop has ended are released, so a stopping shard sleeps
// instead of turning until its grace period ends.
TEST(ShardLoop, ItemsForAStoppedPeerAreReleased) {
  Cluster cluster(2, tiny_options());
  Shard& a = cluster.shard(0);
  Client client(cluster, 0);
  client.connect_as(id_on(0, 2, "filters"));
  ASSERT_TRUE(cluster.stop(1, 50));
  client.send(subscribe_many(100, "filter/"));
  auto suback = client.read_packet();
  ASSERT_TRUE(suback.has_value());
  cluster.turn();
  EXPECT_FALSE(ShardTestPeer::has_staged(a)) << "items for a stopped peer keep the shard turning";
}

// Both shards run the start-up exchange (on two threads, as in Shard::run); then shard 1 never
// turns while a client owned by shard 0 publishes a QoS 1 message on `topic`: how many shards
// shard 0 forwarded it to, which it can know of only through the exchange. Stops both shards.
uint64_t forwarded_after_the_exchange(Cluster& cluster, const std::string& topic) {
  std::thread peer([&] { ShardTestPeer::exchange_restored_interest(cluster.shard(1)); });
  ShardTestPeer::exchange_restored_interest(cluster.shard(0));
  peer.join();
  cluster.set_driven(1, false);
  Client publisher(cluster, 0);
  publisher.connect_as(id_on(0, 2, "publisher"));  // owned by shard 0: no hand-off
  publisher.send(publish_bytes(topic, "first", 1, 5));
  broker::ShardState& state = ShardTestPeer::state(cluster.shard(0));
  EXPECT_TRUE(cluster.turn_until([&] { return state.counters().messages_received >= 1; }));
  uint64_t forwarded = state.counters().messages_forwarded_to_shards;
  cluster.set_driven(1, true);
  EXPECT_TRUE(cluster.stop(0, 1000));
  EXPECT_TRUE(cluster.stop(1, 1000));
  return forwarded;
}

// A restart: shard 1 restores a persistent session subscribed to s/#. Before any shard serves a
// client, every shard applies the others' restored interest (Shard::run calls
// exchange_restored_interest after set-up): a message published on shard 0 before shard 1 ever
// turned still goes to shard 1. Without the exchange it was routed to nobody and acknowledged.
TEST(ShardPersistence, RestoredSubscriptionsAreKnownToEveryShardBeforeAnyServesAClient) {
  char pattern[] = "/tmp/coremq-shard-store-XXXXXX";
  std::string dir = ::mkdtemp(pattern);
  Cluster cluster(2, tiny_options());
  std::unique_ptr<persist::Store> store = open_store(dir, cluster, 2);
  ASSERT_NE(store, nullptr);
  std::string keeper = id_on(1, 2, "keeper");
  std::vector<persist::LoadedSession> restored(1);
  restored[0].record.client_id = keeper;
  restored[0].record.session_number = (uint64_t{1} << 48) | 1;
  restored[0].record.expiry_seconds = broker::kSessionNeverExpires;
  restored[0].record.subscriptions.push_back(persist::SubscriptionRecord{"s/#", 1});
  ShardTestPeer::attach_store(cluster.shard(0), store.get());
  ShardTestPeer::attach_store(cluster.shard(1), store.get(), &restored);
  store->start();
  EXPECT_EQ(forwarded_after_the_exchange(cluster, "s/1"), 1u) << "routed without shard 1's restored subscriber";
  store->stop();
  store.reset();
  std::filesystem::remove_all(dir);
}

// A bridge on shard 1 started (Shard::set_up starts bridges, with a store when `durable`), then
// the start-up exchange on both shards, then a QoS 1 message published on shard 0 while shard 1
// never turns: whether shard 0 forwarded it to shard 1, i.e. knew the bridge's subscription.
bool first_message_reaches_the_bridges_shard(bool durable) {
  char pattern[] = "/tmp/coremq-shard-store-XXXXXX";
  std::string dir = ::mkdtemp(pattern);
  Cluster cluster(2, tiny_options());
  std::unique_ptr<persist::Store> store;
  if (durable) {
    store = open_store(dir, cluster, 2);
    EXPECT_NE(store, nullptr);
    if (store == nullptr) return false;
    ShardTestPeer::attach_store(cluster.shard(0), store.get());
    ShardTestPeer::attach_store(cluster.shard(1), store.get());
    store->start();
  }
  // The remote: a listener that never accepts (the bridge's CONNECT waits in its backlog).
  std::string error;
  uint16_t remote_port = 0;
  int remote = io::open_listener("127.0.0.1", 0, 4, /*join_group=*/false, &remote_port, &error);
  EXPECT_GE(remote, 0) << error;
  BridgeSetup setup;
  setup.options.name = "b";
  setup.options.topics.push_back(BridgeTopic{"data/#", BridgeTopic::Direction::kOut, 1, "", ""});
  setup.addresses.push_back(loopback_bridge_address(remote_port));
  setup.local_clientid = id_on(1, 2, "local.b");  // the bridge lives on its local id's owner
  setup.remote_clientid = "edge.b";
  setup.notification_topic = "$SYS/broker/connection/edge.b/state";
  std::vector<BridgeSetup> setups;
  setups.push_back(std::move(setup));
  ShardTestPeer::start_bridges(cluster.shard(1), std::move(setups));
  bool forwarded = forwarded_after_the_exchange(cluster, "data/1") == 1;
  if (store != nullptr) store->stop();
  store.reset();
  ::close(remote);
  std::filesystem::remove_all(dir);
  return forwarded;
}

// A bridge subscribes during its shard's set-up and the interest goes out with the start-up
// exchange (without it, the message is routed to nobody).
TEST(ShardBridgeStart, ABridgesSubscriptionsAreKnownToEveryShardBeforeAnyServesAClient) {
  EXPECT_TRUE(first_message_reaches_the_bridges_shard(/*durable=*/false)) << "routed without the bridge's subscription";
}

// The same on a first start with a durable bridge, whose local session is new: its CONNACK does
// not wait for the store (Connection::connack_without_store_wait), so its SUBSCRIBE is handled
// during set-up too. With the CONNACK waiting for the session's record, the SUBSCRIBE waited
// behind it and the message was routed to nobody and acknowledged: test_32's kill -9 test lost
// its very first message that way under TSan.
TEST(ShardPersistence, ADurableBridgesNewSubscriptionsAreKnownToEveryShardBeforeAnyServesAClient) {
  EXPECT_TRUE(first_message_reaches_the_bridges_shard(/*durable=*/true)) << "routed without the bridge's subscription";
}

}  // namespace
}  // namespace coremq::shard

// ---- connections through a transport (TLS, WebSocket) --------------------------------------

namespace coremq::shard {
namespace {

// A transport with the shape of TLS: the client opens with "HELLO", the server answers with
// a handshake reply (kReplySize bytes of 'R'); after that every byte is XORed with 0x5A both
// ways. Input that does not open with "HELLO" is refused with "NO"; the server's last words
// are "BYE".
class XorTransport final : public transport::Transport {
 public:
  explicit XorTransport(size_t reply_size) : reply_size_(reply_size) {}
  Status decode(std::span<const uint8_t> wire, base::ByteBuffer& plain, base::ByteBuffer& wire_out) override {
    while (!wire.empty() && hello_seen_ < kHello.size()) {
      if (wire[0] != uint8_t(kHello[hello_seen_])) {
        wire_out.append(std::span(reinterpret_cast<const uint8_t*>("NO"), 2));
        return Status::kError;
      }
      ++hello_seen_;
      wire = wire.subspan(1);
      if (hello_seen_ == kHello.size()) {
        std::string reply(reply_size_, 'R');
        wire_out.append(std::span(reinterpret_cast<const uint8_t*>(reply.data()), reply.size()));
      }
    }
    for (uint8_t byte : wire) plain.append(std::span<const uint8_t>(std::array<uint8_t, 1>{uint8_t(byte ^ 0x5A)}));
    return Status::kOk;
  }
  Status encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) override {
    for (uint8_t byte : plain) wire_out.append(std::span<const uint8_t>(std::array<uint8_t, 1>{uint8_t(byte ^ 0x5A)}));
    return Status::kOk;
  }
  void encode_close(uint16_t, base::ByteBuffer& wire_out) override {
    wire_out.append(std::span(reinterpret_cast<const uint8_t*>("BYE"), 3));
  }
  bool established() const override { return hello_seen_ == kHello.size(); }
  std::string_view error() const override { return "no HELLO"; }

 private:
  static constexpr std::string_view kHello = "HELLO";
  size_t reply_size_;
  size_t hello_seen_ = 0;
};

class XorFactory final : public transport::TransportFactory {
 public:
  explicit XorFactory(size_t reply_size) : reply_size_(reply_size) {}
  std::unique_ptr<transport::Transport> make() override { return std::make_unique<XorTransport>(reply_size_); }

 private:
  size_t reply_size_;
};

void use_xor_transport(Cluster& cluster, uint32_t count, size_t reply_size) {
  for (uint32_t i = 0; i < count; ++i) {
    std::vector<std::unique_ptr<transport::TransportFactory>> factories;
    factories.push_back(std::make_unique<XorFactory>(reply_size));
    cluster.shard(i).set_transport_factories(std::move(factories));
  }
}

std::string xored(std::string_view bytes) {
  std::string out(bytes);
  for (char& c : out) c = char(uint8_t(c) ^ 0x5A);
  return out;
}

// The client side of XorTransport: the handshake reply is checked and dropped, the rest XORed.
void undo_xor_after_reply(Client& client, size_t reply_size) {
  auto reply_left = std::make_shared<size_t>(reply_size);
  client.set_receive_transform([reply_left](std::string_view bytes) {
    size_t raw = std::min(*reply_left, bytes.size());
    *reply_left -= raw;
    EXPECT_EQ(bytes.substr(0, raw).find_first_not_of('R'), std::string_view::npos);
    return xored(bytes.substr(raw));
  });
}

TEST(ShardChannel, ConnectionMovesToTheOwnerShardWithItsTransport) {
  Cluster cluster(2, tiny_options());
  use_xor_transport(cluster, 2, /*reply_size=*/2);
  Client client(cluster, 0);
  undo_xor_after_reply(client, 2);
  // HELLO and the CONNECT in one write: the accepting shard decodes both, then hands the
  // connection (and its transport, mid-stream) to the owner, which answers through it.
  client.send("HELLO" + xored(connect_bytes(id_on(1, 2, "device"))));
  auto connack = client.read_packet();
  ASSERT_TRUE(connack.has_value());
  EXPECT_EQ(client.received().size(), 0u);
  EXPECT_EQ(connack->type, mqtt::PacketType::kConnack);
  client.send(xored(subscribe_bytes(1, {{"t", 0}})));
  auto suback = client.read_packet();
  ASSERT_TRUE(suback.has_value());
  EXPECT_EQ(suback->type, mqtt::PacketType::kSuback);
  client.send(xored(publish_bytes("t", "through the transport")));
  auto message = client.read_packet();
  ASSERT_TRUE(message.has_value());
  EXPECT_EQ(message->payload(), "through the transport");
  EXPECT_EQ(ShardTestPeer::state(cluster.shard(0)).counters().transport_handshakes, 1u);
}

TEST(ShardChannel, HandOffWaitsForTheHandshakeSendStillInTheKernel) {
  // A handshake reply far larger than the socket buffers: its send stays in the kernel while
  // the client, not reading, sends its CONNECT for the other shard. The connection may move
  // only once the send completes (it points into this connection's buffer).
  constexpr size_t kReplySize = 32 << 20;
  Cluster cluster(2, tiny_options());
  use_xor_transport(cluster, 2, kReplySize);
  Client client(cluster, 0);
  undo_xor_after_reply(client, kReplySize);
  client.send("HELLO");
  ASSERT_TRUE(cluster.turn_until([&] { return ShardTestPeer::state(cluster.shard(0)).counters().transport_handshakes == 1; }));
  // Short sends fill the socket buffers; then one waits in the kernel for room.
  for (int turns = 0; turns < 5; ++turns) cluster.turn();
  ASSERT_TRUE(ShardTestPeer::send_in_flight(cluster.shard(0)));
  client.send(xored(connect_bytes(id_on(1, 2, "device"))));
  ASSERT_TRUE(cluster.turn_until([&] { return ShardTestPeer::delayed_hand_offs(cluster.shard(0)) == 1; }));
  auto connack = client.read_packet();  // reads the whole reply, then the CONNACK from shard 1
  ASSERT_TRUE(connack.has_value());
  EXPECT_EQ(connack->type, mqtt::PacketType::kConnack);
  EXPECT_EQ(ShardTestPeer::delayed_hand_offs(cluster.shard(0)), 0u);
  EXPECT_EQ(ShardTestPeer::connection_count(cluster.shard(0)), 0u);
}

TEST(ShardChannel, RefusedTransportInputGetsItsAnswerThenTheClose) {
  Cluster cluster(1, tiny_options());
  use_xor_transport(cluster, 1, 2);
  Client client(cluster, 0);
  client.send("GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(client.wait_closed());
  EXPECT_EQ(client.received(), "NO");
  EXPECT_EQ(ShardTestPeer::state(cluster.shard(0)).counters().transport_errors, 1u);
}

TEST(ShardChannel, BrokerCloseEndsWithTheTransportsLastWords) {
  Cluster cluster(1, tiny_options());
  use_xor_transport(cluster, 1, 2);
  Client client(cluster, 0);
  undo_xor_after_reply(client, 2);
  ConnectOptions options;
  options.protocol_level = 9;  // refused with CONNACK 0x01, then closed after the flush
  client.send("HELLO" + xored(connect_bytes("device", options)));
  ASSERT_TRUE(client.wait_closed());
  // The CONNACK, then the transport's close ("BYE", which the client's transform XORed).
  ASSERT_EQ(client.received().size(), 4u + 3u);
  EXPECT_EQ(uint8_t(client.received()[0]) >> 4, uint8_t(mqtt::PacketType::kConnack));
  EXPECT_EQ(client.received().substr(4), xored("BYE"));
}

}  // namespace
}  // namespace coremq::shard

namespace coremq::shard {
namespace {

TEST(ShardChannel, HandshakesPastTheTurnsBudgetWaitForLaterTurns) {
  Options options = tiny_options();
  options.max_handshakes_per_turn = 1;
  Cluster cluster(1, options);
  use_xor_transport(cluster, 1, 2);
  // An established client first: its traffic never waits for the handshake budget.
  Client established(cluster, 0);
  undo_xor_after_reply(established, 2);
  established.send("HELLO" + xored(connect_bytes("established")));
  ASSERT_TRUE(established.read_packet().has_value());
  const broker::ShardCounters& counters = ShardTestPeer::state(cluster.shard(0)).counters();
  ASSERT_EQ(counters.transport_handshakes, 1u);

  std::vector<std::unique_ptr<Client>> storm;
  for (int i = 0; i < 4; ++i) {
    storm.push_back(std::make_unique<Client>(cluster, 0));
    storm.back()->send("HELLO");
  }
  uint64_t before = counters.transport_handshakes;
  ASSERT_TRUE(cluster.turn_until([&] {
    uint64_t now = counters.transport_handshakes;
    EXPECT_LE(now - before, 1u) << "more handshakes in one turn than --max-handshakes-per-turn";
    before = now;
    return now == 5;
  }));
  EXPECT_GE(counters.handshakes_deferred, 1u);
  // Meanwhile and after, the established client is served.
  established.send(xored(pingreq_bytes()));
  auto pong = established.read_packet();
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->type, mqtt::PacketType::kPingresp);
}

}  // namespace
}  // namespace coremq::shard

namespace coremq::shard {
namespace {

// A verifier that answers only once released (a slow hash, a busy checker).
class GatedVerifier final : public auth::PasswordVerifier {
 public:
  bool verify(std::string_view, bool, std::string_view password) const override {
    while (!open.load()) std::this_thread::yield();
    return password == "right";
  }
  mutable std::atomic<bool> open{false};
};

std::string connect_as_user(std::string_view client_id, std::string_view username, std::string_view password) {
  mqtt::ConnectPacket connect;
  connect.protocol_level = 4;
  connect.client_id = client_id;
  connect.clean_session = true;
  connect.has_username = true;
  connect.username = username;
  connect.has_password = true;
  connect.password = password;
  base::ByteBuffer out;
  mqtt::encode_connect(out, connect);
  return std::string(out.view());
}

// One shard whose listener has a password file (anonymous clients allowed) and a password checker
// whose verdicts wait for the test (GatedVerifier), with client A connected to it.
struct PasswordHoldScene {
  static Options options_with_password_file() {
    Options options = tiny_options();
    ListenerOptions listener;
    listener.password_file = "passwords";
    listener.allow_anonymous = ListenerOptions::Anonymous::kAllow;
    options.listeners = {listener};
    return options;
  }
  PasswordHoldScene()
      : cluster(1, options_with_password_file()),
        verifier(std::make_shared<GatedVerifier>()),
        checker(1, 1, 16, {verifier}, [this](uint32_t) { cluster.shard(0).wake_from_outside(); }),
        a(cluster, 0) {
    cluster.shard(0).set_password_checker(&checker);
    checker.start();
  }
  ~PasswordHoldScene() {
    verifier->open = true;
    checker.stop();
    cluster.shard(0).set_password_checker(nullptr);  // the checker goes before the cluster
  }
  // A sends its CONNECT (held for its check), then a PINGREQ, parked behind it.
  bool park_a_pingreq_behind_its_connect() {
    a.send(connect_as_user("a", "alice", "right"));
    if (!cluster.turn_until([&] { return ShardTestPeer::state(cluster.shard(0)).counters().password_checks == 1; })) {
      return false;
    }
    a.send(pingreq_bytes());
    return cluster.turn_until([&] { return ShardTestPeer::parked(cluster.shard(0)) > 0; });
  }

  Cluster cluster;
  std::shared_ptr<GatedVerifier> verifier;
  auth::PasswordChecker checker;
  Client a;
};

TEST(ShardPasswordHold, ConnectWaitingForItsPasswordHoldsOnlyItself) {
  PasswordHoldScene scene;
  Cluster& cluster = scene.cluster;
  Client& a = scene.a;
  ASSERT_TRUE(scene.park_a_pingreq_behind_its_connect());
  // B (anonymous, no check) connects meanwhile: it must not wait behind A's verdict.
  Client b(cluster, 0);
  b.connect_as("b");
  EXPECT_TRUE(a.nothing_received());
  scene.verifier->open = true;
  auto connack = a.read_packet();
  ASSERT_TRUE(connack.has_value());
  EXPECT_EQ(connack->type, mqtt::PacketType::kConnack);
  EXPECT_EQ(connack->body[1], 0);
  auto pong = a.read_packet();  // the PINGREQ held behind the CONNECT, answered after it
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->type, mqtt::PacketType::kPingresp);
}

// The bytes parked behind a held CONNECT are replayed once the connection is connected; it
// had no receive armed while they were parked (one receive at a time before CONNECT), so the
// replay must arm one, or the client is never read again (a PUBLISH larger than one read,
// pipelined behind a CONNECT with a password, never got its PUBACK).
TEST(ShardPasswordHold, ReadsOnAfterTheInputParkedBehindItsConnect) {
  PasswordHoldScene scene;
  Client& a = scene.a;
  ASSERT_TRUE(scene.park_a_pingreq_behind_its_connect());
  scene.verifier->open = true;
  for (const char* what : {"CONNACK", "the parked PINGREQ's PINGRESP"}) {
    auto answer = a.read_packet();
    ASSERT_TRUE(answer.has_value()) << what;
  }
  // Sent after the replay: read only if a receive was armed again.
  a.send(pingreq_bytes());
  auto pong = a.read_packet();
  EXPECT_TRUE(pong.has_value()) << "the connection is not read after its parked input was replayed";
  EXPECT_EQ(pong.has_value() ? pong->type : mqtt::PacketType::kConnect, mqtt::PacketType::kPingresp);
}

// --persistence=rocksdb through the real loop: a retained QoS 1 PUBLISH is answered only after
// the committer (its own thread) wrote the shard's batch and woke the shard; until the
// committer runs, the client gets nothing, not even the PINGRESP pipelined behind it.
TEST(ShardPersistence, RetainedPubackLeavesOnlyAfterTheCommitterWroteItsBatch) {
  char pattern[] = "/tmp/coremq-shard-store-XXXXXX";
  std::string dir = ::mkdtemp(pattern);
  Cluster cluster(1, tiny_options());
  std::unique_ptr<persist::Store> store = open_store(dir, cluster, 1);
  ASSERT_NE(store, nullptr);
  ShardTestPeer::attach_store(cluster.shard(0), store.get());
  Client a(cluster, 0);
  a.connect_as("a");
  a.send(publish_bytes("state/a", "on", 1, 9, /*retain=*/true) + pingreq_bytes());
  broker::ShardState& state = ShardTestPeer::state(cluster.shard(0));
  ASSERT_TRUE(cluster.turn_until([&] { return state.counters().answers_held_for_store >= 1; }));
  for (int i = 0; i < 2; ++i) cluster.turn();  // each an idle wait of up to a tick
  EXPECT_TRUE(a.nothing_received());
  store->start();
  auto puback = a.read_packet();
  ASSERT_TRUE(puback.has_value());
  EXPECT_EQ(puback->type, mqtt::PacketType::kPuback);
  auto pong = a.read_packet();
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->type, mqtt::PacketType::kPingresp);
  EXPECT_EQ(store->batches_written(), 1u);
  EXPECT_TRUE(cluster.stop(0, 1000));
  store->stop();
  store.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace coremq::shard
