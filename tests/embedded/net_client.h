// A raw MQTT 5 network client for the embedded tests: a blocking loopback TCP socket, packets
// built with src/mqtt's encoders and read back frame by frame. Every read waits at most
// kNetReadTimeoutMs (poll), so a broker that stops sending fails the test instead of hanging
// it. Test thread only (one client per thread).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/byte_buffer.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"

namespace coremq::testing {

// Generous for a loaded 2-CPU machine; only a broker that stopped answering gets near it.
constexpr int kNetReadTimeoutMs = 10000;

struct NetPacket {
  mqtt::PacketType type{};
  uint8_t flags = 0;
  std::string body;
  std::span<const uint8_t> span() const {
    return {reinterpret_cast<const uint8_t*>(body.data()), body.size()};
  }
};

// A PUBLISH as received, with owned copies.
struct NetPublish {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  uint16_t packet_id = 0;
  std::vector<std::pair<std::string, std::string>> user_properties;
};

class NetClient {
 public:
  explicit NetClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    int on = 1;
    if (connected_) ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  }
  ~NetClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  NetClient(const NetClient&) = delete;
  NetClient& operator=(const NetClient&) = delete;

  bool send(const base::ByteBuffer& bytes) {
    std::string_view rest = bytes.view();
    while (!rest.empty()) {
      ssize_t sent = ::send(fd_, rest.data(), rest.size(), MSG_NOSIGNAL);
      if (sent <= 0) return false;
      rest.remove_prefix(static_cast<size_t>(sent));
    }
    return true;
  }

  // The next packet, or nullopt (with `why`) on timeout, end of stream or bad framing.
  std::optional<NetPacket> read(std::string* why) {
    for (;;) {
      mqtt::FixedHeader header{};
      auto span = std::span(reinterpret_cast<const uint8_t*>(buffer_.data()), buffer_.size());
      mqtt::FrameStatus status = mqtt::parse_fixed_header(span, 1u << 24, &header);
      if (status == mqtt::FrameStatus::kComplete &&
          buffer_.size() >= size_t{header.header_length} + header.remaining_length) {
        NetPacket packet{header.type, header.flags,
                         buffer_.substr(header.header_length, header.remaining_length)};
        buffer_.erase(0, size_t{header.header_length} + header.remaining_length);
        return packet;
      }
      if (status != mqtt::FrameStatus::kComplete && status != mqtt::FrameStatus::kNeedMore) {
        *why = "the broker sent bytes that do not frame";
        return std::nullopt;
      }
      pollfd poll_fd{fd_, POLLIN, 0};
      int ready = ::poll(&poll_fd, 1, kNetReadTimeoutMs);
      if (ready == 0) {
        *why = "no packet within " + std::to_string(kNetReadTimeoutMs) + " ms";
        return std::nullopt;
      }
      char chunk[4096];
      ssize_t received = ready > 0 ? ::recv(fd_, chunk, sizeof(chunk), 0) : -1;
      if (received <= 0) {
        *why = received == 0 ? "end of stream" : "receive failed";
        return std::nullopt;
      }
      buffer_.append(chunk, static_cast<size_t>(received));
    }
  }

  // CONNECT (MQTT 5, clean start) and its CONNACK; true on reason code 0.
  bool connect(std::string_view client_id, std::string* why) {
    mqtt::ConnectPacket connect;
    connect.protocol_level = 5;
    connect.client_id = client_id;
    connect.clean_session = true;
    base::ByteBuffer out;
    mqtt::encode_connect(out, connect);
    if (!connected_ || !send(out)) {
      *why = "cannot send CONNECT";
      return false;
    }
    std::optional<NetPacket> packet = read(why);
    if (!packet) return false;
    mqtt::ConnackPacket connack;
    if (packet->type != mqtt::PacketType::kConnack ||
        mqtt::decode_connack(packet->span(), packet->flags, mqtt::ProtocolVersion::kV5, &connack) !=
            mqtt::DecodeStatus::kOk ||
        connack.reason_code != 0) {
      *why = "no CONNACK 0";
      return false;
    }
    return true;
  }

  // SUBSCRIBE one filter and wait for its SUBACK; returns the granted QoS / reason code, or -1.
  int subscribe(std::string_view filter, uint8_t qos, std::string* why, bool no_local = false) {
    mqtt::SubscribeTopic topic;
    topic.filter = filter;
    topic.qos = qos;
    topic.no_local = no_local;
    base::ByteBuffer out;
    uint16_t packet_id = next_packet_id();
    mqtt::encode_subscribe(out, packet_id, std::span(&topic, 1), mqtt::ProtocolVersion::kV5, {});
    if (!send(out)) return -1;
    std::optional<NetPacket> packet = read(why);
    if (!packet) return -1;
    mqtt::SubackPacket suback;
    if (packet->type != mqtt::PacketType::kSuback ||
        mqtt::decode_suback(packet->span(), packet->flags, mqtt::ProtocolVersion::kV5, &suback) !=
            mqtt::DecodeStatus::kOk ||
        suback.packet_id != packet_id || suback.return_codes.size() != 1) {
      *why = "no SUBACK for the SUBSCRIBE";
      return -1;
    }
    return suback.return_codes[0];
  }

  // PUBLISH and its whole QoS flow (PUBACK, or PUBREC/PUBREL/PUBCOMP); the broker's reason code
  // (PUBACK or PUBREC), or -1. Any PUBLISH that arrives meanwhile is an error (keep publishers
  // and subscribers apart in the tests).
  int publish(std::string_view topic, std::string_view payload, uint8_t qos, bool retain, std::string* why,
              const std::vector<std::pair<std::string, std::string>>& user_properties = {}) {
    mqtt::PublishPacket publish;
    publish.topic = topic;
    publish.payload = payload;
    publish.qos = qos;
    publish.retain = retain;
    publish.packet_id = qos > 0 ? next_packet_id() : 0;
    std::vector<mqtt::UserProperty> properties;
    for (const auto& [name, value] : user_properties) properties.push_back({name, value});
    base::ByteBuffer property_bytes;
    mqtt::encode_property_bytes(property_bytes, mqtt::PropertyContext::kPublish, mqtt::Properties{},
                                properties);
    base::ByteBuffer out;
    mqtt::encode_publish(out, publish, mqtt::ProtocolVersion::kV5, property_bytes.span());
    if (!send(out)) return -1;
    if (qos == 0) return 0;
    mqtt::AckPacket ack;
    if (!read_ack(qos == 1 ? mqtt::PacketType::kPuback : mqtt::PacketType::kPubrec, &ack, why)) return -1;
    if (qos == 1 || ack.reason_code >= 0x80) return ack.reason_code;
    base::ByteBuffer pubrel;
    mqtt::encode_ack_v5(pubrel, mqtt::PacketType::kPubrel, publish.packet_id, 0, {});
    if (!send(pubrel)) return -1;
    mqtt::AckPacket pubcomp;
    if (!read_ack(mqtt::PacketType::kPubcomp, &pubcomp, why)) return -1;
    return ack.reason_code;
  }

  // The next PUBLISH, acknowledged as its QoS asks (QoS 2: PUBREC now; the PUBREL that
  // follows, maybe after other PUBLISHes, is answered with PUBCOMP when read).
  std::optional<NetPublish> receive_publish(std::string* why) {
    std::optional<NetPacket> packet;
    for (;;) {
      packet = read(why);
      if (!packet) return std::nullopt;
      if (packet->type != mqtt::PacketType::kPubrel) break;
      mqtt::AckPacket pubrel;
      if (mqtt::decode_ack(packet->span(), packet->flags, mqtt::PacketType::kPubrel,
                           mqtt::ProtocolVersion::kV5, &pubrel) != mqtt::DecodeStatus::kOk) {
        *why = "a PUBREL that does not decode";
        return std::nullopt;
      }
      base::ByteBuffer out;
      mqtt::encode_ack_v5(out, mqtt::PacketType::kPubcomp, pubrel.packet_id, 0, {});
      if (!send(out)) return std::nullopt;
    }
    mqtt::PublishPacket publish;
    if (packet->type != mqtt::PacketType::kPublish ||
        mqtt::decode_publish_from_server(packet->span(), packet->flags, mqtt::ProtocolVersion::kV5,
                                         &publish) != mqtt::DecodeStatus::kOk) {
      *why = "expected a PUBLISH, got packet type " + std::to_string(static_cast<int>(packet->type));
      return std::nullopt;
    }
    NetPublish result{std::string(publish.topic),
                      std::string(publish.payload),
                      publish.qos,
                      publish.retain,
                      publish.packet_id,
                      {}};
    mqtt::PropertyCursor cursor(publish.properties);
    mqtt::PropertyCursor::Entry entry;
    while (cursor.next(&entry)) {
      if (entry.id == mqtt::PropertyId::kUserProperty) {
        result.user_properties.emplace_back(std::string(entry.text), std::string(entry.pair_value));
      }
    }
    if (publish.qos > 0) {
      base::ByteBuffer out;
      mqtt::encode_ack_v5(out, publish.qos == 1 ? mqtt::PacketType::kPuback : mqtt::PacketType::kPubrec,
                          publish.packet_id, 0, {});
      if (!send(out)) return std::nullopt;
    }
    return result;
  }

  // PINGREQ/PINGRESP: everything the broker sent this client before it is read by then.
  bool ping(std::string* why) {
    base::ByteBuffer out;
    mqtt::encode_pingreq(out);
    if (!send(out)) return false;
    std::optional<NetPacket> packet = read(why);
    if (!packet) return false;
    if (packet->type != mqtt::PacketType::kPingresp) {
      *why = "expected PINGRESP, got packet type " + std::to_string(static_cast<int>(packet->type));
      return false;
    }
    return true;
  }

 private:
  bool read_ack(mqtt::PacketType type, mqtt::AckPacket* ack, std::string* why) {
    std::optional<NetPacket> packet = read(why);
    if (!packet) return false;
    if (packet->type != type ||
        mqtt::decode_ack(packet->span(), packet->flags, type, mqtt::ProtocolVersion::kV5, ack) !=
            mqtt::DecodeStatus::kOk) {
      *why = "expected packet type " + std::to_string(static_cast<int>(type)) + ", got " +
             std::to_string(static_cast<int>(packet->type));
      return false;
    }
    return true;
  }

  uint16_t next_packet_id() {
    if (++last_packet_id_ == 0) last_packet_id_ = 1;
    return last_packet_id_;
  }

  int fd_ = -1;
  bool connected_ = false;
  uint16_t last_packet_id_ = 0;
  std::string buffer_;
};

}  // namespace coremq::testing
