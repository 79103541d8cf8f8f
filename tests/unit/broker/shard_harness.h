// Test fixture for ShardState: one shard (of a configurable count) over a FakeIo, with helpers
// that feed packets built by the src/mqtt encoders through on_bytes and read back what the
// broker staged in a connection's output buffer. Deterministic: the clock is FakeIo::now and
// nothing touches a socket. Single-threaded; one per test.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/byte_buffer.h"
#include "base/log.h"
#include "broker/connection.h"
#include "broker/shard_state.h"
#include "coremq/options.h"
#include "fake_io.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/packet.h"

namespace coremq::testing {

// Packet builders: each returns the bytes of one packet as a std::string.
template <typename Encode>
std::string encoded(Encode&& encode) {
  base::ByteBuffer buffer;
  encode(buffer);
  return std::string(buffer.view());
}

struct ConnectOptions {
  bool clean_session = true;
  uint16_t keep_alive_seconds = 0;
  uint8_t protocol_level = 4;
  bool has_will = false;
  mqtt::Will will;
};

inline std::string connect_bytes(std::string_view client_id, const ConnectOptions& options = {}) {
  mqtt::ConnectPacket connect;
  connect.client_id = client_id;
  connect.clean_session = options.clean_session;
  connect.keep_alive_seconds = options.keep_alive_seconds;
  connect.protocol_level = options.protocol_level;
  connect.has_will = options.has_will;
  connect.will = options.will;
  return encoded([&](base::ByteBuffer& out) { mqtt::encode_connect(out, connect); });
}

inline std::string connack_bytes(bool session_present, mqtt::ConnectReturnCode code) {
  return encoded([&](base::ByteBuffer& out) { mqtt::encode_connack(out, session_present, code); });
}

inline std::string publish_bytes(std::string_view topic, std::string_view payload, uint8_t qos = 0,
                                 uint16_t packet_id = 0, bool retain = false, bool dup = false) {
  mqtt::PublishPacket publish;
  publish.topic = topic;
  publish.payload = payload;
  publish.qos = qos;
  publish.packet_id = packet_id;
  publish.retain = retain;
  publish.dup = dup;
  return encoded([&](base::ByteBuffer& out) { mqtt::encode_publish(out, publish); });
}

inline std::string subscribe_bytes(uint16_t packet_id,
                                   std::initializer_list<std::pair<std::string_view, uint8_t>> entries) {
  std::vector<mqtt::SubscribeTopic> topics;
  for (const auto& [filter, qos] : entries) {
    mqtt::SubscribeTopic topic;
    topic.filter = filter;
    topic.qos = qos;
    topics.push_back(topic);
  }
  return encoded([&](base::ByteBuffer& out) { mqtt::encode_subscribe(out, packet_id, topics); });
}

inline std::string suback_bytes(uint16_t packet_id, std::initializer_list<uint8_t> codes) {
  std::vector<uint8_t> return_codes(codes);
  return encoded([&](base::ByteBuffer& out) { mqtt::encode_suback(out, packet_id, return_codes); });
}

inline std::string unsubscribe_bytes(uint16_t packet_id, std::initializer_list<std::string_view> filters) {
  std::vector<std::string_view> list(filters);
  return encoded([&](base::ByteBuffer& out) { mqtt::encode_unsubscribe(out, packet_id, list); });
}

inline std::string unsuback_bytes(uint16_t packet_id) {
  return encoded([&](base::ByteBuffer& out) { mqtt::encode_unsuback(out, packet_id); });
}

inline std::string ack_bytes(mqtt::PacketType type, uint16_t packet_id) {
  return encoded([&](base::ByteBuffer& out) { mqtt::encode_ack(out, type, packet_id); });
}

inline std::string pingreq_bytes() {
  return encoded([](base::ByteBuffer& out) { mqtt::encode_pingreq(out); });
}
inline std::string pingresp_bytes() {
  return encoded([](base::ByteBuffer& out) { mqtt::encode_pingresp(out); });
}
inline std::string disconnect_bytes() {
  return encoded([](base::ByteBuffer& out) { mqtt::encode_disconnect(out); });
}

// One packet split out of a byte stream the broker wrote.
struct OutputPacket {
  mqtt::PacketType type;
  uint8_t flags;
  std::string bytes;  // the whole packet
  std::string body;
};

inline std::vector<OutputPacket> split_packets(std::string_view stream) {
  std::vector<OutputPacket> packets;
  auto span = std::span(reinterpret_cast<const uint8_t*>(stream.data()), stream.size());
  size_t offset = 0;
  while (offset < span.size()) {
    mqtt::FixedHeader header{};
    mqtt::FrameStatus status = mqtt::parse_fixed_header(span.subspan(offset), 1u << 28, &header);
    EXPECT_EQ(status, mqtt::FrameStatus::kComplete);
    if (status != mqtt::FrameStatus::kComplete) break;
    size_t size = size_t{header.header_length} + header.remaining_length;
    EXPECT_LE(offset + size, span.size());
    if (offset + size > span.size()) break;
    packets.push_back(OutputPacket{header.type, header.flags, std::string(stream.substr(offset, size)),
                                   std::string(stream.substr(offset + header.header_length, header.remaining_length))});
    offset += size;
  }
  return packets;
}

// The PUBLISH in `packet`; its views point into packet.body.
inline mqtt::PublishPacket decode_publish(const OutputPacket& packet) {
  mqtt::PublishPacket publish;
  EXPECT_EQ(packet.type, mqtt::PacketType::kPublish);
  auto body = std::span(reinterpret_cast<const uint8_t*>(packet.body.data()), packet.body.size());
  EXPECT_EQ(mqtt::decode_publish(body, packet.flags, mqtt::ProtocolVersion::kV311, &publish), mqtt::DecodeStatus::kOk);
  return publish;
}

class ShardHarness : public ::testing::Test {
 protected:
  // Options may be changed until the first call to shard(); the shard keeps a reference.
  Options options;

  void set_shards(uint32_t shard_id, uint32_t shard_count) {
    ASSERT_EQ(state_, nullptr) << "set_shards() before the shard is used";
    shard_id_ = shard_id;
    shard_count_ = shard_count;
  }

  broker::ShardState& shard() {
    if (!state_) {
      io_ = std::make_unique<FakeIo>(shard_id_, shard_count_);
      io_->now = 1;  // a monotonic clock never reads zero
      state_ = std::make_unique<broker::ShardState>(shard_id_, shard_count_, options, *io_);
    }
    return *state_;
  }

  void SetUp() override {
    // Arguments are still evaluated; only the lines about every connect and close are not written.
    base::set_log_level(base::LogLevel::kWarning);
  }

  FakeIo& io() {
    shard();
    return *io_;
  }

  void TearDown() override {
    // The shard first: its sessions point at connections.
    state_.reset();
    io_.reset();
    connections_.clear();
  }

  broker::Connection* open() {
    shard();
    auto connection = std::make_unique<broker::Connection>();
    connection->fd = static_cast<int>(connections_.size() + 100);
    connection->accepted_at_ms = io_->now;
    broker::Connection* raw = connection.get();
    connections_.push_back(std::move(connection));
    state_->on_connection_opened(raw);
    return raw;
  }

  void feed(broker::Connection* connection, std::string_view bytes) {
    shard().on_bytes(connection, std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  }

  // Everything staged for the connection since the last call, as if the kernel sent it.
  std::string take_output(broker::Connection* connection) {
    std::string bytes(connection->output.view());
    connection->output.clear();
    return bytes;
  }

  // Sends what is staged and tells the shard the socket drained.
  std::string drain(broker::Connection* connection) {
    std::string bytes = take_output(connection);
    connection->sending.clear();
    shard().on_output_drained(connection);
    return bytes;
  }

  // Opens a connection, sends CONNECT and checks the CONNACK; the output is left empty.
  broker::Connection* connect(std::string_view client_id, const ConnectOptions& connect_options = {},
                              bool session_present = false) {
    broker::Connection* connection = open();
    feed(connection, connect_bytes(client_id, connect_options));
    EXPECT_EQ(connection->state, broker::ConnectionState::kConnected);
    EXPECT_EQ(take_output(connection), connack_bytes(session_present, mqtt::ConnectReturnCode::kAccepted));
    return connection;
  }

  // Subscribes and checks the SUBACK; with several shards, the peers first confirm the
  // barrier the SUBACK waits for (acknowledge_barriers).
  void subscribe(broker::Connection* connection, std::string_view filter, uint8_t qos, uint16_t packet_id = 1) {
    feed(connection, subscribe_bytes(packet_id, {{filter, qos}}));
    acknowledge_barriers();
    EXPECT_EQ(take_output(connection), suback_bytes(packet_id, {qos}));
  }

  // Every peer answers the barrier requests posted so far, as a peer that has applied what
  // came before them would; the requests are taken out of the posts, the rest stay in order.
  void acknowledge_barriers() {
    std::vector<FakeIo::Post> posts = io().take_posts();
    std::vector<broker::CrossShardItem> acks;
    for (FakeIo::Post& post : posts) {
      if (post.item.kind == broker::CrossShardItem::Kind::kBarrierRequest) {
        broker::CrossShardItem ack{broker::CrossShardItem::Kind::kBarrierAck, post.target_shard};
        ack.sequence = post.item.sequence;
        acks.push_back(ack);
      } else {
        io().posts.push_back(post);
      }
    }
    for (const broker::CrossShardItem& ack : acks) shard().on_cross_shard(ack);
  }

  void tick(int64_t now_ms) {
    io().now = now_ms;
    shard().on_tick(now_ms);
  }

 private:
  uint32_t shard_id_ = 0;
  uint32_t shard_count_ = 1;
  std::unique_ptr<FakeIo> io_;
  std::unique_ptr<broker::ShardState> state_;
  std::vector<std::unique_ptr<broker::Connection>> connections_;
};

}  // namespace coremq::testing
