// What the micro benchmarks that drive one ShardState directly share (acl_fanout_bench.cc,
// hooks_bench.cc): an IoPort that does nothing (no sockets, no peers), and feeding encoded
// packets to a connection.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/byte_buffer.h"
#include "broker/connection.h"
#include "broker/shard_state.h"
#include "mqtt/encoder.h"

namespace coremq::broker::bench {

class NullIo final : public IoPort {
 public:
  void request_flush(Connection*) override {}
  void close_connection(Connection*, bool) override {}
  void hand_off_connection(Connection*, uint32_t) override {}
  void resume_input(Connection*) override {}
  void post(uint32_t, CrossShardItem item) override { release_cross_shard_item(item); }
  int64_t now_ms() const override { return 1; }
  bool check_password(uint64_t, uint8_t, std::string_view, bool, std::string_view) override { return false; }
};

// The bytes `encode(buffer)` writes.
template <typename Encode>
std::string bytes_of(Encode&& encode) {
  base::ByteBuffer buffer;
  encode(buffer);
  return std::string(buffer.view());
}

inline void feed(ShardState& state, Connection* connection, const std::string& bytes) {
  state.on_bytes(connection, std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

// Opens a connection that CONNECTs (MQTT 3.1.1, clean session) as `client_id`; `connections`
// owns it. Its CONNACK is discarded.
inline Connection* connect_client(ShardState& state, std::vector<std::unique_ptr<Connection>>& connections,
                                  const std::string& client_id) {
  connections.push_back(std::make_unique<Connection>());
  Connection* connection = connections.back().get();
  connection->fd = static_cast<int>(connections.size());
  state.on_connection_opened(connection);
  mqtt::ConnectPacket packet;
  packet.client_id = client_id;
  packet.clean_session = true;
  feed(state, connection, bytes_of([&](base::ByteBuffer& out) { mqtt::encode_connect(out, packet); }));
  connection->output.clear();
  return connection;
}

// A QoS 0 PUBLISH of 64 bytes in all on `topic` (the unit of the pairs benchmark).
inline std::string publish_64_bytes(std::string_view topic) {
  mqtt::PublishPacket publish;
  publish.topic = topic;
  std::string payload(64 - 2 - 2 - topic.size(), 'x');
  publish.payload = payload;
  return bytes_of([&](base::ByteBuffer& out) { mqtt::encode_publish(out, publish); });
}

}  // namespace coremq::broker::bench
