// MQTT 5 packets for tests: a CONNECT (with or without an Authentication Method, a will,
// limits), AUTH packets, and a decoded view of what a server sends (CONNACK,
// AUTH, DISCONNECT) with owned copies of the fields the tests look at. Built on the src/mqtt
// encoders and decoders; shared by the ShardState unit tests (tests/unit/broker) and the
// in-process broker tests over real sockets (tests/embedded). Header-only, no gtest.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/byte_buffer.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"

namespace coremq::testing {

struct Connect5Options {
  std::optional<std::string_view> method;  // Authentication Method
  std::optional<std::string_view> data;    // Authentication Data
  bool clean_start = true;
  uint16_t keep_alive_seconds = 0;
  std::optional<uint32_t> session_expiry_seconds;
  std::optional<uint32_t> maximum_packet_size;
  std::optional<uint8_t> request_problem_information;
  std::optional<uint16_t> topic_alias_maximum;
  std::optional<std::string> will_topic;  // a will with payload "gone" at will_qos
  uint8_t will_qos = 0;
};

inline std::string connect5_bytes(std::string_view client_id, const Connect5Options& options = {}) {
  mqtt::ConnectPacket connect;
  connect.protocol_level = 5;
  connect.client_id = client_id;
  connect.clean_session = options.clean_start;
  connect.keep_alive_seconds = options.keep_alive_seconds;
  connect.properties.authentication_method = options.method;
  connect.properties.authentication_data = options.data;
  connect.properties.session_expiry_interval_seconds = options.session_expiry_seconds;
  connect.properties.maximum_packet_size = options.maximum_packet_size;
  connect.properties.request_problem_information = options.request_problem_information;
  connect.properties.topic_alias_maximum = options.topic_alias_maximum;
  if (options.will_topic) {
    connect.has_will = true;
    connect.will.topic = *options.will_topic;
    connect.will.payload = "gone";
    connect.will.qos = options.will_qos;
  }
  base::ByteBuffer out;
  mqtt::encode_connect(out, connect);
  return std::string(out.view());
}

inline std::string auth_bytes(uint8_t reason_code, std::string_view method, std::optional<std::string_view> data = {}) {
  mqtt::Properties properties;
  properties.authentication_method = method;
  properties.authentication_data = data;
  base::ByteBuffer property_bytes;
  mqtt::encode_property_bytes(property_bytes, mqtt::PropertyContext::kAuth, properties);
  base::ByteBuffer out;
  mqtt::encode_auth(out, reason_code, property_bytes.span());
  return std::string(out.view());
}

// One packet a server sent, as far as these tests care. `ok` is false when it did not
// decode as the MQTT 5 packet its type says.
struct ServerPacket {
  mqtt::PacketType type{};
  bool ok = false;
  uint8_t reason_code = 0;
  std::optional<std::string> method;
  std::optional<std::string> data;
  std::optional<std::string> reason_string;
  std::optional<std::string> assigned_client_id;
};

// `type_and_flags` is the packet's first byte; `body` what follows its Remaining Length.
inline ServerPacket decode_server_packet(uint8_t type_and_flags, std::span<const uint8_t> body) {
  ServerPacket packet;
  packet.type = static_cast<mqtt::PacketType>(type_and_flags >> 4);
  uint8_t flags = type_and_flags & 0x0F;
  mqtt::Properties properties;
  switch (packet.type) {
    case mqtt::PacketType::kConnack: {
      mqtt::ConnackPacket connack;
      packet.ok = mqtt::decode_connack(body, flags, mqtt::ProtocolVersion::kV5, &connack) == mqtt::DecodeStatus::kOk;
      packet.reason_code = connack.reason_code;
      properties = connack.properties;
      break;
    }
    case mqtt::PacketType::kAuth: {
      mqtt::AuthPacket auth;
      packet.ok = mqtt::decode_auth(body, flags, &auth) == mqtt::DecodeStatus::kOk;
      packet.reason_code = auth.reason_code;
      properties = auth.properties;
      break;
    }
    case mqtt::PacketType::kDisconnect: {
      mqtt::DisconnectPacket disconnect;
      packet.ok = mqtt::decode_disconnect(body, flags, mqtt::ProtocolVersion::kV5, &disconnect) ==
                  mqtt::DecodeStatus::kOk;
      packet.reason_code = disconnect.reason_code;
      properties = disconnect.properties;
      break;
    }
    case mqtt::PacketType::kPingresp:
      packet.ok = mqtt::decode_empty(body, flags, packet.type) == mqtt::DecodeStatus::kOk;
      break;
    default: packet.ok = true; break;  // not looked into
  }
  if (properties.authentication_method) packet.method = std::string(*properties.authentication_method);
  if (properties.authentication_data) packet.data = std::string(*properties.authentication_data);
  if (properties.reason_string) packet.reason_string = std::string(*properties.reason_string);
  if (properties.assigned_client_identifier) {
    packet.assigned_client_id = std::string(*properties.assigned_client_identifier);
  }
  return packet;
}

}  // namespace coremq::testing
