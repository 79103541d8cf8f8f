// Tests of a bridge's state machine in its shard's loop (src/shard/bridge.h): one real Shard
// (io_uring, loopback listener) driven turn by turn on the test thread with a manual clock, a
// bridge pointed at a fake remote broker the test plays byte by byte on a loopback socket, and a
// local client on the shard's own listener. Checked: the CONNECT (bridge bit, will), the remote
// SUBSCRIBE with No Local under MQTT 5, forwarding with prefixes, a lost connection's in-flight
// message resent with DUP after restart_timeout, start_type once, the in-flight window refilled in
// batches, the QoS 2 bound, MQTT 5 properties forwarded with the expiry as the time left, and the
// durable mode (--persistence) acknowledging locally only what the remote acknowledged, and the
// remote only what is durable locally.
// Single-threaded: everything runs on the test thread; every wait is bounded (kWaitSeconds).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "io/listener.h"
#include "persist/store.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/properties.h"
#include "shard/shard.h"
#include "loopback_bridge_address.h"

namespace coremq::shard {

class ShardTestPeer {
 public:
  static bool set_up(Shard& shard) { return shard.set_up(); }
  static bool turn(Shard& shard) { return shard.turn(); }
  static void finish(Shard& shard) { shard.finish_loop(); }
  static void set_clock(Shard& shard, int64_t now_ms) { shard.manual_clock_ms_ = now_ms; }
};

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kWaitSeconds = std::chrono::seconds(10);
constexpr int64_t kStartMs = 1'000'000;

struct Packet {
  uint8_t first = 0;  // type and flags
  std::string body;
};

// A non-blocking socket whose MQTT packets the test reads while turning the shard.
class Wire {
 public:
  explicit Wire(int fd) : fd_(fd) { ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK); }
  ~Wire() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void send(const base::ByteBuffer& bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
  }
  // Nothing has arrived (nor is buffered) yet.
  bool nothing_arrived() {
    char byte = 0;
    return buffer_.empty() && ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN;
  }
  std::optional<Packet> read(const std::function<void()>& turn) {
    auto deadline = Clock::now() + kWaitSeconds;
    for (;;) {
      if (auto packet = take()) return packet;
      if (Clock::now() > deadline) return std::nullopt;
      char chunk[4096];
      ssize_t got = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (got > 0) {
        buffer_.append(chunk, static_cast<size_t>(got));
      } else if (got == 0) {
        return std::nullopt;
      } else {
        turn();
      }
    }
  }

 private:
  std::optional<Packet> take() {
    if (buffer_.size() < 2) return std::nullopt;
    size_t length = 0;
    size_t shift = 0;
    size_t index = 1;
    for (;; ++index) {
      if (index >= buffer_.size()) return std::nullopt;
      uint8_t byte = static_cast<uint8_t>(buffer_[index]);
      length |= size_t{byte & 0x7Fu} << shift;
      shift += 7;
      if ((byte & 0x80) == 0) break;
    }
    if (buffer_.size() < index + 1 + length) return std::nullopt;
    Packet packet{static_cast<uint8_t>(buffer_[0]), buffer_.substr(index + 1, length)};
    buffer_.erase(0, index + 1 + length);
    return packet;
  }

  int fd_;
  std::string buffer_;
};

class BridgeHarness {
 public:
  explicit BridgeHarness(uint8_t version = 4,
                         BridgeOptions::StartType start = BridgeOptions::StartType::kAutomatic,
                         const std::function<void(BridgeOptions&)>& adjust = {}, bool durable = false,
                         persist::Store* store = nullptr)
      : durable_(durable) {
    std::string error;
    remote_listener_ = io::open_listener("127.0.0.1", 0, 16, /*join_group=*/false, &remote_port_, &error);
    EXPECT_GE(remote_listener_, 0) << error;
    ::fcntl(remote_listener_, F_SETFL, ::fcntl(remote_listener_, F_GETFL) | O_NONBLOCK);
    int fd = io::open_listener("127.0.0.1", 0, 16, false, &local_port_, &error);
    EXPECT_GE(fd, 0) << error;
    options_.bind_address = "127.0.0.1";
    shard_ = std::make_unique<Shard>(0, 1, options_, shared_, fd);
    BridgeSetup setup;
    setup.options.name = "b";
    setup.options.protocol_version = version;
    setup.options.start_type = start;
    setup.options.restart_timeout_seconds = 2;
    setup.options.restart_timeout_cap_seconds = 0;
    setup.options.topics.push_back(BridgeTopic{"#", BridgeTopic::Direction::kOut, 1, "up/", "site/"});
    setup.options.topics.push_back(BridgeTopic{"cmd/#", BridgeTopic::Direction::kIn, 1, "", ""});
    if (adjust) adjust(setup.options);
    setup.addresses.push_back(loopback_bridge_address(remote_port_));
    setup.local_clientid = "local.b";
    setup.remote_clientid = "edge.b";
    setup.notification_topic = "$SYS/broker/connection/edge.b/state";
    setup.durable = durable_;
    std::vector<BridgeSetup> setups;
    setups.push_back(std::move(setup));
    shard_->set_bridges(std::move(setups));
    // As BrokerImpl does: the store before set_up, which gives the shard its journal.
    if (store != nullptr) shard_->set_store(store, nullptr, nullptr, nullptr);
    ShardTestPeer::set_clock(*shard_, now_ms_);
    EXPECT_TRUE(ShardTestPeer::set_up(*shard_)) << shard_->startup_error();
  }
  ~BridgeHarness() {
    shard_->request_stop();
    for (int turns = 0; turns < 1000; ++turns) {
      if (!ShardTestPeer::turn(*shard_)) {
        ShardTestPeer::finish(*shard_);
        break;
      }
    }
    shard_->release_leftovers();
    ::close(remote_listener_);
  }

  void turn() { EXPECT_TRUE(ShardTestPeer::turn(*shard_)); }
  void advance(int64_t ms) {
    now_ms_ += ms;
    ShardTestPeer::set_clock(*shard_, now_ms_);
  }
  // Whether the bridge has connected to the fake remote (accepts it then).
  std::unique_ptr<Wire> try_accept_remote() {
    int fd = ::accept(remote_listener_, nullptr, nullptr);
    return fd >= 0 ? std::make_unique<Wire>(fd) : nullptr;
  }
  // The bridge's next connection to the fake remote.
  std::unique_ptr<Wire> accept_remote() {
    auto deadline = Clock::now() + kWaitSeconds;
    while (Clock::now() < deadline) {
      int fd = ::accept(remote_listener_, nullptr, nullptr);
      if (fd >= 0) return std::make_unique<Wire>(fd);
      turn();
    }
    return nullptr;
  }
  std::unique_ptr<Wire> connect_local(const std::string& client_id, uint8_t version = 4, bool clean = true) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(local_port_);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    auto wire = std::make_unique<Wire>(fd);
    base::ByteBuffer bytes;
    mqtt::ConnectPacket connect;
    connect.client_id = client_id;
    connect.protocol_level = version;
    connect.clean_session = clean;
    mqtt::encode_connect(bytes, connect);
    wire->send(bytes);
    auto connack = wire->read([this] { turn(); });
    EXPECT_TRUE(connack && connack->first == 0x20);
    return wire;
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
  std::function<void()> turner() {
    return [this] { turn(); };
  }
  BridgeStats stats() { return shard_->bridge_stats().at(0); }
  Shard& shard() { return *shard_; }

 private:
  bool durable_ = false;
  Options options_;
  SharedState shared_;
  std::unique_ptr<Shard> shard_;
  int remote_listener_ = -1;
  uint16_t remote_port_ = 0;
  uint16_t local_port_ = 0;
  int64_t now_ms_ = kStartMs;
};

base::ByteBuffer connack(uint8_t version) {
  base::ByteBuffer bytes;
  if (version == 5) {
    mqtt::encode_connack_v5(bytes, false, 0, {});
  } else {
    mqtt::encode_connack(bytes, false, mqtt::ConnectReturnCode::kAccepted);
  }
  return bytes;
}

base::ByteBuffer publish_qos1(std::string_view topic, std::string_view payload, uint16_t packet_id,
                              uint8_t qos = 1) {
  mqtt::PublishPacket publish;
  publish.topic = topic;
  publish.payload = payload;
  publish.qos = qos;
  publish.packet_id = packet_id;
  base::ByteBuffer bytes;
  mqtt::encode_publish(bytes, publish, mqtt::ProtocolVersion::kV311, {});
  return bytes;
}

std::string string_at(const std::string& body, size_t offset) {
  size_t length = (uint8_t(body[offset]) << 8) | uint8_t(body[offset + 1]);
  return body.substr(offset + 2, length);
}

// A QoS 1/2 PUBLISH's packet identifier: after the topic.
uint16_t packet_id_of(const Packet& publish) {
  size_t offset = 2 + string_at(publish.body, 0).size();
  return static_cast<uint16_t>((uint8_t(publish.body[offset]) << 8) | uint8_t(publish.body[offset + 1]));
}

TEST(BridgeShard, ConnectsWithTheBridgeBitAndForwardsWithPrefixes) {
  BridgeHarness harness;
  auto remote = harness.accept_remote();
  ASSERT_NE(remote, nullptr);
  auto connect = remote->read(harness.turner());
  ASSERT_TRUE(connect.has_value());
  EXPECT_EQ(connect->first, 0x10);
  EXPECT_EQ(string_at(connect->body, 0), "MQTT");
  EXPECT_EQ(uint8_t(connect->body[6]), 0x84) << "3.1.1 with the bridge bit (try_private)";
  uint8_t flags = uint8_t(connect->body[7]);
  EXPECT_EQ(flags & 0x02, 0) << "cleansession false";
  EXPECT_EQ(flags & 0x24, 0x24) << "a retained will";
  EXPECT_EQ(string_at(connect->body, 10), "edge.b");
  EXPECT_EQ(harness.stats().state, BridgeState::kConnecting);
  remote->send(connack(4));
  auto subscribe = remote->read(harness.turner());
  ASSERT_TRUE(subscribe.has_value());
  EXPECT_EQ(subscribe->first, 0x82);
  EXPECT_EQ(string_at(subscribe->body, 2), "cmd/#");
  auto notification = remote->read(harness.turner());
  ASSERT_TRUE(notification.has_value());
  EXPECT_EQ(notification->first, 0x31) << "QoS 0, retained";
  EXPECT_EQ(string_at(notification->body, 0), "$SYS/broker/connection/edge.b/state");
  EXPECT_EQ(harness.stats().state, BridgeState::kConnected);

  auto publisher = harness.connect_local("pub");
  publisher->send(publish_qos1("up/a/b", "hello", 7));
  auto puback = publisher->read(harness.turner());
  ASSERT_TRUE(puback && puback->first == 0x40);
  auto forwarded = remote->read(harness.turner());
  ASSERT_TRUE(forwarded.has_value());
  EXPECT_EQ(forwarded->first, 0x32) << "QoS 1";
  EXPECT_EQ(string_at(forwarded->body, 0), "site/a/b");
  EXPECT_EQ(forwarded->body.substr(forwarded->body.size() - 5), "hello");
  EXPECT_EQ(harness.stats().inflight, 1u);
}

TEST(BridgeShard, ALostConnectionResendsItsInflightMessageWithDupAfterTheRestartTimeout) {
  BridgeHarness harness;
  auto remote = harness.accept_remote();
  ASSERT_NE(remote, nullptr);
  ASSERT_TRUE(remote->read(harness.turner()).has_value());  // CONNECT
  remote->send(connack(4));
  ASSERT_TRUE(remote->read(harness.turner()).has_value());  // SUBSCRIBE
  ASSERT_TRUE(remote->read(harness.turner()).has_value());  // notification
  auto publisher = harness.connect_local("pub");
  publisher->send(publish_qos1("up/x", "m1", 1));
  auto first = remote->read(harness.turner());
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->first, 0x32);
  uint16_t packet_id = packet_id_of(*first);
  remote->close();  // no PUBACK: the message stays in flight
  auto waiting = [&] { return harness.stats().state == BridgeState::kWaitingToRestart; };
  ASSERT_TRUE(harness.turn_until(waiting));
  EXPECT_EQ(harness.stats().reconnects, 1u);
  // Before the restart timeout nothing connects; after it the bridge does.
  harness.advance(1000);
  for (int i = 0; i < 4; ++i) harness.turn();
  EXPECT_EQ(harness.stats().state, BridgeState::kWaitingToRestart);
  harness.advance(1500);
  auto again = harness.accept_remote();
  ASSERT_NE(again, nullptr);
  ASSERT_TRUE(again->read(harness.turner()).has_value());  // CONNECT
  again->send(connack(4));
  ASSERT_TRUE(again->read(harness.turner()).has_value());  // SUBSCRIBE
  ASSERT_TRUE(again->read(harness.turner()).has_value());  // notification
  auto resent = again->read(harness.turner());
  ASSERT_TRUE(resent.has_value());
  EXPECT_EQ(resent->first, 0x3A) << "QoS 1 with DUP";
  EXPECT_EQ(string_at(resent->body, 0), "site/x");
  EXPECT_EQ(packet_id_of(*resent), packet_id);
  base::ByteBuffer ack;
  mqtt::encode_ack(ack, mqtt::PacketType::kPuback, packet_id);
  again->send(ack);
  auto delivered = [&] { return harness.stats().messages_out == 1; };
  EXPECT_TRUE(harness.turn_until(delivered)) << harness.stats().messages_out;
  EXPECT_EQ(harness.stats().inflight, 0u);
}

TEST(BridgeShard, Mqtt5SubscribesWithNoLocalAndStartTypeOnceDoesNotRestart) {
  BridgeHarness harness(5, BridgeOptions::StartType::kOnce);
  auto remote = harness.accept_remote();
  ASSERT_NE(remote, nullptr);
  auto connect = remote->read(harness.turner());
  ASSERT_TRUE(connect.has_value());
  EXPECT_EQ(uint8_t(connect->body[6]), 5) << "MQTT 5 has no bridge bit";
  remote->send(connack(5));
  auto subscribe = remote->read(harness.turner());
  ASSERT_TRUE(subscribe.has_value());
  // packet id, property length 0, the filter, then the options byte: QoS 1 | No Local | RAP.
  ASSERT_EQ(subscribe->body.size(), 2u + 1u + 2u + 5u + 1u);
  EXPECT_EQ(uint8_t(subscribe->body.back()), 0x01 | 0x04 | 0x08);
  remote->close();
  auto stopped = [&] { return harness.stats().state == BridgeState::kStopped; };
  EXPECT_TRUE(harness.turn_until(stopped));
  harness.advance(60000);
  for (int i = 0; i < 4; ++i) harness.turn();
  EXPECT_EQ(harness.stats().state, BridgeState::kStopped);
}

TEST(BridgeShard, LazyStartConnectsOnceTheThresholdOfMessagesWaits) {
  BridgeHarness harness(4, BridgeOptions::StartType::kLazy);  // threshold: 10 (Mosquitto's default)
  auto publisher = harness.connect_local("pub");
  for (uint16_t i = 1; i <= 9; ++i) {
    publisher->send(publish_qos1("up/lazy", std::to_string(i), i));
    auto puback = publisher->read(harness.turner());
    ASSERT_TRUE(puback && puback->first == 0x40);
  }
  harness.advance(1000);  // ticks: the bridge looks at its queue
  for (int i = 0; i < 4; ++i) harness.turn();
  EXPECT_EQ(harness.try_accept_remote(), nullptr) << "connected below the threshold";
  EXPECT_EQ(harness.stats().state, BridgeState::kIdle);
  EXPECT_EQ(harness.stats().queued, 9u);
  publisher->send(publish_qos1("up/lazy", "10", 10));
  ASSERT_TRUE(publisher->read(harness.turner()).has_value());
  harness.advance(1000);
  auto remote = harness.accept_remote();
  ASSERT_NE(remote, nullptr);
  ASSERT_TRUE(remote->read(harness.turner()).has_value());  // CONNECT
  remote->send(connack(4));
  ASSERT_TRUE(remote->read(harness.turner()).has_value());  // SUBSCRIBE
  ASSERT_TRUE(remote->read(harness.turner()).has_value());  // notification
  // All ten, in order (the window is 1000).
  for (int i = 1; i <= 10; ++i) {
    auto forwarded = remote->read(harness.turner());
    ASSERT_TRUE(forwarded.has_value());
    EXPECT_EQ(string_at(forwarded->body, 0), "site/lazy");
    EXPECT_EQ(forwarded->body.substr(2 + 9 + 2), std::to_string(i));
  }
}

// Connects the bridge to the fake remote: CONNECT, CONNACK, then the SUBSCRIBE and notification.
void bring_up(BridgeHarness& harness, Wire& remote) {
  ASSERT_TRUE(remote.read(harness.turner()).has_value());  // CONNECT
  remote.send(connack(4));
  ASSERT_TRUE(remote.read(harness.turner()).has_value());  // SUBSCRIBE
  ASSERT_TRUE(remote.read(harness.turner()).has_value());  // notification
}

base::ByteBuffer ack(mqtt::PacketType type, uint16_t packet_id) {
  base::ByteBuffer bytes;
  mqtt::encode_ack(bytes, type, packet_id);
  return bytes;
}

TEST(BridgeShard, AFullWindowRefillsInBatchesNotOneMessagePerAcknowledgement) {
  // A window of 4 refills 2 at a time: one PUBACK frees a slot that stays free; the second
  // sends two messages at once.
  BridgeHarness harness(4, BridgeOptions::StartType::kAutomatic, [](BridgeOptions& options) { options.max_inflight = 4; });
  auto remote = harness.accept_remote();
  ASSERT_NE(remote, nullptr);
  bring_up(harness, *remote);
  auto publisher = harness.connect_local("pub");
  for (uint16_t i = 1; i <= 8; ++i) {
    publisher->send(publish_qos1("up/w", std::to_string(i), i));
    ASSERT_TRUE(publisher->read(harness.turner()).has_value());  // PUBACK
  }
  std::vector<uint16_t> ids;
  for (int i = 1; i <= 4; ++i) {
    auto forwarded = remote->read(harness.turner());
    ASSERT_TRUE(forwarded.has_value());
    EXPECT_EQ(forwarded->body.substr(2 + 6 + 2), std::to_string(i));
    ids.push_back(packet_id_of(*forwarded));
  }
  EXPECT_EQ(harness.stats().inflight, 4u);
  EXPECT_EQ(harness.stats().queued, 4u);
  remote->send(ack(mqtt::PacketType::kPuback, ids[0]));
  ASSERT_TRUE(harness.turn_until([&] { return harness.stats().messages_out == 1; }));
  for (int i = 0; i < 4; ++i) harness.turn();
  EXPECT_EQ(harness.stats().inflight, 3u) << "refilled one slot at a time";
  EXPECT_EQ(harness.stats().queued, 4u);
  remote->send(ack(mqtt::PacketType::kPuback, ids[1]));
  for (int i = 5; i <= 6; ++i) {
    auto forwarded = remote->read(harness.turner());
    ASSERT_TRUE(forwarded.has_value());
    EXPECT_EQ(forwarded->body.substr(2 + 6 + 2), std::to_string(i));
  }
  EXPECT_EQ(harness.stats().inflight, 4u);
  EXPECT_EQ(harness.stats().queued, 2u);
}

TEST(BridgeShard, QoS2MessagesInFlightStayWithinTheirOwnBound) {
  BridgeHarness harness(4, BridgeOptions::StartType::kAutomatic, [](BridgeOptions& options) {
    options.max_inflight_qos2 = 2;
    options.topics[0].qos = 2;
  });
  auto remote = harness.accept_remote();
  ASSERT_NE(remote, nullptr);
  bring_up(harness, *remote);
  auto publisher = harness.connect_local("pub");
  for (uint16_t i = 1; i <= 3; ++i) {
    publisher->send(publish_qos1("up/q2", std::to_string(i), i, 2));
    auto pubrec = publisher->read(harness.turner());
    ASSERT_TRUE(pubrec && pubrec->first == 0x50);
    publisher->send(ack(mqtt::PacketType::kPubrel, i));
    ASSERT_TRUE(publisher->read(harness.turner()).has_value());  // PUBCOMP
  }
  std::vector<uint16_t> ids;
  for (int i = 1; i <= 2; ++i) {
    auto forwarded = remote->read(harness.turner());
    ASSERT_TRUE(forwarded.has_value());
    EXPECT_EQ(forwarded->first, 0x34) << "QoS 2";
    ids.push_back(packet_id_of(*forwarded));
  }
  for (int i = 0; i < 4; ++i) harness.turn();
  EXPECT_EQ(harness.stats().inflight, 2u);
  EXPECT_EQ(harness.stats().queued, 1u);
  EXPECT_GT(harness.stats().qos2_window_full, 0u);
  // PUBREC: the first is released (still in flight); PUBCOMP ends it and the third goes.
  remote->send(ack(mqtt::PacketType::kPubrec, ids[0]));
  auto pubrel = remote->read(harness.turner());
  ASSERT_TRUE(pubrel && pubrel->first == 0x62);
  EXPECT_EQ(harness.stats().queued, 1u);
  remote->send(ack(mqtt::PacketType::kPubcomp, ids[0]));
  auto third = remote->read(harness.turner());
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->first, 0x34);
  EXPECT_EQ(third->body.substr(2 + 7 + 2), "3");
}

TEST(BridgeShard, Mqtt5PropertiesCrossAndAMessageThatExpiresInTheQueueIsDropped) {
  BridgeHarness harness(5);
  auto remote = harness.accept_remote();
  ASSERT_NE(remote, nullptr);
  ASSERT_TRUE(remote->read(harness.turner()).has_value());  // CONNECT; no CONNACK yet: messages queue
  auto publisher = harness.connect_local("pub5", 5);
  auto publish5 = [&](std::string_view payload, uint32_t expiry_seconds, uint16_t packet_id) {
    mqtt::Properties properties;
    properties.message_expiry_interval_seconds = expiry_seconds;
    properties.content_type = "text/plain";
    mqtt::UserProperty users[] = {{"k", "v1"}, {"k", "v2"}};
    base::ByteBuffer property_bytes;
    mqtt::encode_property_bytes(property_bytes, mqtt::PropertyContext::kPublish, properties, users);
    mqtt::PublishPacket publish;
    publish.topic = "up/e";
    publish.payload = payload;
    publish.qos = 1;
    publish.packet_id = packet_id;
    base::ByteBuffer bytes;
    mqtt::encode_publish(bytes, publish, mqtt::ProtocolVersion::kV5, property_bytes.span());
    publisher->send(bytes);
    auto puback = publisher->read(harness.turner());
    ASSERT_TRUE(puback && puback->first == 0x40);
  };
  publish5("short", 1, 1);
  publish5("long", 600, 2);
  ASSERT_TRUE(harness.turn_until([&] { return harness.stats().queued == 2; }));
  harness.advance(2500);  // the first one's second runs out while the remote is not there
  remote->send(connack(5));
  ASSERT_TRUE(remote->read(harness.turner()).has_value());  // SUBSCRIBE
  ASSERT_TRUE(remote->read(harness.turner()).has_value());  // notification
  auto forwarded = remote->read(harness.turner());
  ASSERT_TRUE(forwarded.has_value());
  mqtt::PublishPacket publish;
  std::span<const uint8_t> body(reinterpret_cast<const uint8_t*>(forwarded->body.data()), forwarded->body.size());
  ASSERT_EQ(mqtt::decode_publish_from_server(body, forwarded->first & 0x0F, mqtt::ProtocolVersion::kV5, &publish),
            mqtt::DecodeStatus::kOk);
  EXPECT_EQ(publish.topic, "site/e");
  EXPECT_EQ(publish.payload, "long");
  EXPECT_EQ(publish.properties.content_type, std::optional<std::string_view>("text/plain"));
  ASSERT_TRUE(publish.properties.message_expiry_interval_seconds.has_value());
  EXPECT_EQ(*publish.properties.message_expiry_interval_seconds, 598u) << "600 s less the 2.5 s queued, rounded up";
  mqtt::UserProperty users[4];
  ASSERT_EQ(mqtt::copy_user_properties(publish.properties, users), 2u);
  EXPECT_EQ(users[0].value, "v1");
  EXPECT_EQ(users[1].value, "v2");
  EXPECT_EQ(harness.stats().dropped_expired, 1u);
  EXPECT_EQ(harness.stats().queued, 0u);
}

// Durable mode (--persistence): the bridge's local session holds each QoS 1/2 message until the
// remote acknowledged it, and the remote packet id is the local one. The shard here has no store:
// the local session's in-flight window shows what the store would keep.
TEST(BridgeShard, DurableModeAcknowledgesLocallyOnlyWhatTheRemoteAcknowledged) {
  BridgeHarness harness(
      4, BridgeOptions::StartType::kAutomatic, [](BridgeOptions& options) { options.topics[0].qos = 2; },
      /*durable=*/true);
  auto remote = harness.accept_remote();
  ASSERT_NE(remote, nullptr);
  ASSERT_TRUE(remote->read(harness.turner()).has_value());  // CONNECT; no CONNACK yet: messages wait
  auto publisher = harness.connect_local("pub");
  // More than --max-inflight (64, the window of any other client): the bridge's is its Receive Maximum.
  constexpr uint16_t kCount = 100;
  for (uint16_t i = 1; i <= kCount; ++i) {
    publisher->send(publish_qos1("up/d", std::to_string(i), i));
    auto puback = publisher->read(harness.turner());
    ASSERT_TRUE(puback && puback->first == 0x40) << "the publisher's PUBACK does not wait for the remote";
  }
  ASSERT_TRUE(harness.turn_until([&] { return harness.stats().queued == kCount; })) << harness.stats().queued;
  EXPECT_EQ(harness.stats().held_local_acks, kCount) << "nothing acknowledged to the local session yet";
  remote->send(connack(4));
  ASSERT_TRUE(remote->read(harness.turner()).has_value());  // SUBSCRIBE
  ASSERT_TRUE(remote->read(harness.turner()).has_value());  // notification
  std::vector<uint16_t> ids;
  for (int i = 1; i <= kCount; ++i) {
    auto forwarded = remote->read(harness.turner());
    ASSERT_TRUE(forwarded.has_value());
    ASSERT_EQ(forwarded->first, 0x32) << "QoS 1, no DUP";
    EXPECT_EQ(forwarded->body.substr(2 + 6 + 2), std::to_string(i)) << "in order";
    ids.push_back(packet_id_of(*forwarded));
  }
  // The remote id is the local session's: the broker numbers a session's messages 1, 2, 3 ...
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(ids[i], i + 1);
  EXPECT_EQ(harness.stats().inflight, kCount);
  EXPECT_EQ(harness.stats().held_local_acks, kCount);
  // A PUBACK from the remote frees the local message: the held count falls one by one.
  for (int i = 0; i < 10; ++i) remote->send(ack(mqtt::PacketType::kPuback, ids[i]));
  ASSERT_TRUE(harness.turn_until([&] { return harness.stats().held_local_acks == kCount - 10; }))
      << harness.stats().held_local_acks;
  EXPECT_EQ(harness.stats().messages_out, 10u);
  // A lost connection keeps the other 90 unacknowledged locally; they go again with DUP and their ids.
  remote->close();
  ASSERT_TRUE(harness.turn_until([&] { return harness.stats().state == BridgeState::kWaitingToRestart; }));
  EXPECT_EQ(harness.stats().held_local_acks, kCount - 10);
  harness.advance(2500);
  auto again = harness.accept_remote();
  ASSERT_NE(again, nullptr);
  bring_up(harness, *again);
  for (int i = 10; i < kCount; ++i) {
    auto resent = again->read(harness.turner());
    ASSERT_TRUE(resent.has_value());
    EXPECT_EQ(resent->first, 0x3A) << "QoS 1 with DUP";
    EXPECT_EQ(packet_id_of(*resent), ids[i]);
    again->send(ack(mqtt::PacketType::kPuback, ids[i]));
  }
  ASSERT_TRUE(harness.turn_until([&] { return harness.stats().held_local_acks == 0; }))
      << harness.stats().held_local_acks;
  EXPECT_EQ(harness.stats().messages_out, kCount);

  // QoS 2: the remote's PUBREC becomes the local PUBREC; the remote's PUBREL waits for the local
  // one; the remote's PUBCOMP ends the local exchange.
  publisher->send(publish_qos1("up/q", "two", 500, 2));
  ASSERT_TRUE(publisher->read(harness.turner()).has_value());  // PUBREC
  publisher->send(ack(mqtt::PacketType::kPubrel, 500));
  ASSERT_TRUE(publisher->read(harness.turner()).has_value());  // PUBCOMP
  auto qos2 = again->read(harness.turner());
  ASSERT_TRUE(qos2.has_value());
  EXPECT_EQ(qos2->first, 0x34);
  uint16_t id = packet_id_of(*qos2);
  EXPECT_EQ(harness.stats().held_local_acks, 1u);
  again->send(ack(mqtt::PacketType::kPubrec, id));
  auto pubrel = again->read(harness.turner());
  ASSERT_TRUE(pubrel.has_value());
  EXPECT_EQ(pubrel->first, 0x62) << "the local PUBREL came back and went on";
  EXPECT_EQ(packet_id_of(Packet{0, std::string(2, 0) + pubrel->body}), id);
  EXPECT_EQ(harness.stats().held_local_acks, 1u) << "until the remote's PUBCOMP";
  again->send(ack(mqtt::PacketType::kPubcomp, id));
  ASSERT_TRUE(harness.turn_until([&] { return harness.stats().held_local_acks == 0; }));
  EXPECT_EQ(harness.stats().inflight, 0u);
}

// The scene of the durable inbound tests: a bridge with a RocksDB store in a fresh directory,
// up with its fake remote, and a persistent local subscriber to cmd/# at QoS 2 (what reaches it
// must be durable before it is acknowledged). ready() says whether all of it came up.
class DurableInboundScene {
 public:
  DurableInboundScene() {
    char pattern[] = "/tmp/coremq-bridge-store-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    PersistenceOptions persistence;
    persistence.engine = PersistenceOptions::Engine::kRocksDb;
    persistence.data_dir = dir_;
    std::string error;
    store_ = persist::Store::open(
        persistence, 1, [this](uint32_t) { if (Shard* shard = woken_.load()) shard->wake_from_outside(); }, &error);
    EXPECT_NE(store_, nullptr) << error;
    if (store_ == nullptr) return;
    harness_ = std::make_unique<BridgeHarness>(4, BridgeOptions::StartType::kAutomatic, nullptr, /*durable=*/true,
                                               store_.get());
    woken_ = &harness_->shard();
    store_->start();
    remote_ = harness_->accept_remote();
    EXPECT_NE(remote_, nullptr);
    if (remote_ == nullptr) return;
    bring_up(*harness_, *remote_);
    keeper_ = harness_->connect_local("keeper", 4, /*clean=*/false);
    base::ByteBuffer subscribe;
    mqtt::SubscribeTopic filter{"cmd/#", 2};
    mqtt::encode_subscribe(subscribe, 1, std::span(&filter, 1));
    keeper_->send(subscribe);
    auto suback = keeper_->read(harness_->turner());
    ready_ = suback && suback->first == 0x90;
  }
  ~DurableInboundScene() {
    keeper_.reset();
    remote_.reset();
    // The committer wakes the harness's shard: stopped before the harness goes.
    if (store_ != nullptr) store_->stop();
    harness_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  DurableInboundScene(const DurableInboundScene&) = delete;
  DurableInboundScene& operator=(const DurableInboundScene&) = delete;

  bool ready() const { return ready_; }
  BridgeHarness& harness() { return *harness_; }
  persist::Store& store() { return *store_; }
  Wire& remote() { return *remote_; }
  Wire& keeper() { return *keeper_; }
  // The remote's next packet is this acknowledgement (0x40 PUBACK, 0x50 PUBREC) of packet_id.
  void expect_remote_ack(uint8_t first, uint16_t packet_id) {
    auto ack = remote_->read(harness_->turner());
    ASSERT_TRUE(ack.has_value());
    EXPECT_EQ(ack->first, first);
    EXPECT_EQ(ack->body, std::string({char(packet_id >> 8), char(packet_id & 0xFF)}));
  }

 private:
  std::string dir_;
  std::atomic<Shard*> woken_{nullptr};
  std::unique_ptr<persist::Store> store_;
  std::unique_ptr<BridgeHarness> harness_;
  std::unique_ptr<Wire> remote_;
  std::unique_ptr<Wire> keeper_;
  bool ready_ = false;
};

// Durable, inbound: the remote's QoS 1 and QoS 2 messages are acknowledged to it only once the
// local broker acknowledged them, which it does once they are durable for the local persistent
// session that took them: while the store's writes fail the local subscriber has the messages
// and the remote has no PUBACK or PUBREC; once writes succeed again both come.
TEST(BridgeShard, DurableModeAcknowledgesTheRemoteOnlyOnceItsMessagesAreDurableLocally) {
  DurableInboundScene scene;
  ASSERT_TRUE(scene.ready());
  BridgeHarness& harness = scene.harness();
  scene.store().fail_next_writes_for_test(1u << 30);  // a full disk, until the test says otherwise
  scene.remote().send(publish_qos1("cmd/a", "one", 7));
  scene.remote().send(publish_qos1("cmd/b", "two", 8, 2));
  // The QoS 1 one goes to the subscriber at once; the QoS 2 one waits for its record (a QoS 2
  // PUBLISH to a persistent session leaves once durable).
  auto first = scene.keeper().read(harness.turner());
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->first & 0xF6, 0x32);
  for (int i = 0; i < 20; ++i) harness.turn();
  EXPECT_TRUE(scene.remote().nothing_arrived()) << "the remote was acknowledged before the messages were durable";
  EXPECT_EQ(harness.stats().remote_acks_waiting, 2u);

  scene.store().fail_next_writes_for_test(0);
  ASSERT_NO_FATAL_FAILURE(scene.expect_remote_ack(0x40, 7));
  ASSERT_NO_FATAL_FAILURE(scene.expect_remote_ack(0x50, 8));
  EXPECT_EQ(harness.stats().remote_acks_waiting, 0u);
  auto second = scene.keeper().read(harness.turner());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->first & 0xF6, 0x34);
}

// Durable, inbound: an acknowledgement the bridge could give at once (a topic no line maps, a
// QoS 2 resend whose PUBREC already went) waits behind those still waiting for the store, so the
// remote gets them in the order it sent the PUBLISHes (MQTT-4.6.0-2, -3). Given at once, as
// before, it overtook them: the PUBACK of 9 came while 7 waited.
TEST(BridgeShard, DurableModeAnswersTheRemoteInTheOrderItsMessagesCame) {
  DurableInboundScene scene;
  ASSERT_TRUE(scene.ready());
  BridgeHarness& harness = scene.harness();
  Wire& remote = scene.remote();

  // A topic no line maps, behind a message waiting for the store.
  scene.store().fail_next_writes_for_test(1u << 30);
  remote.send(publish_qos1("cmd/a", "one", 7));
  remote.send(publish_qos1("other/x", "unmapped", 9));
  for (int i = 0; i < 20; ++i) harness.turn();
  EXPECT_TRUE(remote.nothing_arrived()) << "an acknowledgement overtook one waiting for the store";
  scene.store().fail_next_writes_for_test(0);
  ASSERT_NO_FATAL_FAILURE(scene.expect_remote_ack(0x40, 7));
  ASSERT_NO_FATAL_FAILURE(scene.expect_remote_ack(0x40, 9));

  // A QoS 2 resend whose first PUBREC went, behind a message waiting for the store.
  remote.send(publish_qos1("cmd/b", "two", 8, 2));
  ASSERT_NO_FATAL_FAILURE(scene.expect_remote_ack(0x50, 8));
  scene.store().fail_next_writes_for_test(1u << 30);
  remote.send(publish_qos1("cmd/c", "three", 10));
  mqtt::PublishPacket resend;
  resend.topic = "cmd/b";
  resend.payload = "two";
  resend.qos = 2;
  resend.dup = true;
  resend.packet_id = 8;
  base::ByteBuffer resend_bytes;
  mqtt::encode_publish(resend_bytes, resend, mqtt::ProtocolVersion::kV311, {});
  remote.send(resend_bytes);
  for (int i = 0; i < 20; ++i) harness.turn();
  EXPECT_TRUE(remote.nothing_arrived()) << "a resend's PUBREC overtook an acknowledgement waiting for the store";
  EXPECT_EQ(harness.stats().remote_acks_waiting, 2u);
  scene.store().fail_next_writes_for_test(0);
  ASSERT_NO_FATAL_FAILURE(scene.expect_remote_ack(0x40, 10));
  ASSERT_NO_FATAL_FAILURE(scene.expect_remote_ack(0x50, 8));
  EXPECT_EQ(harness.stats().remote_acks_waiting, 0u);
}

}  // namespace
}  // namespace coremq::shard
