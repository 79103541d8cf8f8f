// MQTT over WebSocket, client side, for mqtt-bench (--ws): RFC 6455 behind the Transport
// interface of src/transport/transport.h. The first decode() (with no bytes yet) writes the
// upgrade GET (Sec-WebSocket-Key, `Sec-WebSocket-Protocol: mqtt`); the 101 answer is checked
// (Upgrade, Connection, Sec-WebSocket-Accept, the subprotocol); then every MQTT packet goes out
// in its own masked binary frame, as paho, MQTT.js and browsers send them, so the broker pays
// the per-frame cost a real fleet costs it. Server frames are unwrapped straight into the MQTT
// byte stream without reassembly (MQTT over WebSocket lets a frame carry part of a packet or
// several); pings are answered, a close is echoed.
// Sans-I/O and single-threaded: owned by one client of one worker thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/byte_buffer.h"
#include "transport/transport.h"

namespace coremq::bench {

class WsClientTransport final : public transport::Transport {
 public:
  static constexpr uint16_t kCloseNormal = 1000;
  static constexpr uint16_t kCloseProtocolError = 1002;
  static constexpr uint32_t kControlPayloadBytesMax = 125;  // RFC 6455 section 5.5

  // `host` is the Host header ("127.0.0.1:8080"), `path` the request target ("/mqtt").
  // `random_seed` seeds the per-frame masks; the key comes from OpenSSL's random generator.
  WsClientTransport(std::string_view host, std::string_view path, uint64_t random_seed);

  [[nodiscard]] Status decode(std::span<const uint8_t> wire, base::ByteBuffer& plain,
                              base::ByteBuffer& wire_out) override;
  [[nodiscard]] Status encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) override;
  void encode_close(uint16_t websocket_close_code, base::ByteBuffer& wire_out) override;
  bool established() const override { return state_ == State::kOpen; }
  std::string_view error() const override { return error_; }

  // RFC 6455 section 4.2.2: base64(SHA-1(key + the protocol's GUID)).
  static std::string accept_for_key(std::string_view key);
  // XORs `count` bytes with the 4-byte `mask` (in wire order) from `from` into `to` (which may
  // be the same), the mask starting at `from[0]`.
  static void mask_copy(const uint8_t* from, size_t count, uint8_t* to, const uint8_t (&mask)[4]);

 private:
  enum class State : uint8_t { kStart, kAwaitingResponse, kOpen, kClosed, kError };

  void write_request(base::ByteBuffer& wire_out);
  Status decode_response(std::span<const uint8_t> wire, base::ByteBuffer& plain, base::ByteBuffer& wire_out);
  Status check_response(std::string_view head);
  Status decode_frames(std::span<const uint8_t> wire, base::ByteBuffer& plain, base::ByteBuffer& wire_out);
  Status begin_frame();
  Status finish_control_frame(base::ByteBuffer& wire_out);
  void write_frame(uint8_t opcode, std::span<const uint8_t> payload, base::ByteBuffer& wire_out);
  Status fail(std::string message);

  std::string host_;
  std::string path_;
  std::string key_;
  base::ByteBuffer response_;         // the upgrade response while it arrives; freed after
  base::ByteBuffer control_payload_;  // a ping's or close's payload while it arrives
  std::string error_;
  uint64_t random_state_;
  uint64_t payload_remaining_ = 0;  // of the current frame
  uint8_t header_[10] = {};         // a server frame's header while it arrives (no mask)
  uint8_t header_size_ = 0;
  uint8_t opcode_ = 0;
  bool in_payload_ = false;
  bool in_fragmented_message_ = false;
  bool close_sent_ = false;
  State state_ = State::kStart;
};

}  // namespace coremq::bench
