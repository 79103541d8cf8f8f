// MQTT over WebSocket (RFC 6455; MQTT 3.1.1 and 5.0 section 6), server side, as a sans-I/O
// Transport: the opening handshake (WebSocketHandshake), then frames in, MQTT bytes out, and
// MQTT bytes wrapped in binary frames on the way back. MQTT packets and frames are independent:
// a frame may carry part of a packet or several, and `plain` is one byte stream the MQTT codec
// reassembles, so frames are never reassembled here and payload bytes are unmasked straight
// into `plain`, without a per-frame allocation.
// Single-threaded: owned by one connection's Channel on one shard; moves with the connection.
//
// State per established connection: sizeof(WebSocketTransport), 80 bytes (a static_assert in
// the .cc holds it), plus the control-frame buffer, which holds memory only while a ping or
// close frame arrives split across reads. The handshake's request buffer (up to 4 KiB) is freed
// once the handshake is over.
//
// Close codes sent (RFC 6455 section 7.4.1): 1002 a protocol error (unmasked client frame,
// reserved bits or opcodes, a fragmented or long control frame, a 64-bit length with its top
// bit set, a continuation out of place), 1003 a text frame (MQTT is binary), 1009 a frame
// larger than the bound given at construction; the client's own close is echoed.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "base/byte_buffer.h"
#include "transport/transport.h"
#include "transport/websocket_handshake.h"

namespace coremq::transport {

class WebSocketTransport final : public Transport {
 public:
  // RFC 6455 section 7.4.1 close codes.
  static constexpr uint16_t kCloseNormal = 1000;
  static constexpr uint16_t kCloseProtocolError = 1002;
  static constexpr uint16_t kCloseUnsupportedData = 1003;
  static constexpr uint16_t kCloseMessageTooBig = 1009;
  // RFC 6455 section 5.5: a control frame's payload is at most this long.
  static constexpr uint32_t kControlPayloadBytesMax = 125;

  // Which bound made decode() refuse the connection, for the shard's counters.
  enum class LimitHit : uint8_t { kNone, kUpgradeRequestTooLarge, kFrameTooLarge };

  // frame_payload_bytes_max: the largest frame payload a client may send (larger: close 1009).
  // The broker passes its --max-packet-size (which counts the fixed header), so a client that
  // sends each MQTT packet in its own frame (paho, MQTT.js, browsers) always fits; a larger
  // frame could only carry a packet the broker refuses anyway, or several packets batched.
  explicit WebSocketTransport(uint32_t frame_payload_bytes_max);
  ~WebSocketTransport() override;

  [[nodiscard]] Status decode(std::span<const uint8_t> wire, base::ByteBuffer& plain,
                              base::ByteBuffer& wire_out) override;
  [[nodiscard]] Status encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) override;
  void encode_close(uint16_t websocket_close_code, base::ByteBuffer& wire_out) override;
  bool established() const override { return state_ == State::kOpen; }
  std::string_view error() const override { return error_; }

  // The subprotocol agreed ("mqtt", "mqttv3.1", or empty when the client asked for none).
  std::string_view subprotocol() const;
  LimitHit limit_hit() const { return limit_hit_; }

  // The frame header for `payload_size` bytes of a server frame (unmasked, FIN set): 2, 4 or 10
  // bytes written to `header`, their count returned.
  static size_t encode_frame_header(uint8_t opcode, uint64_t payload_size, uint8_t (&header)[10]);

 private:
  enum class State : uint8_t {
    kHandshake,  // reading the upgrade request
    kOpen,       // frames both ways
    kClosed,     // a close was sent or received, or the handshake was refused: nothing more flows
  };

  Status decode_handshake(std::span<const uint8_t> wire, base::ByteBuffer& plain, base::ByteBuffer& wire_out);
  Status decode_frames(std::span<const uint8_t> wire, base::ByteBuffer& plain, base::ByteBuffer& wire_out);
  // Takes header bytes from `wire` until the header is whole; false while it is not.
  bool take_header(std::span<const uint8_t>& wire);
  // Checks a whole header and sets up the payload; kOk to go on.
  Status begin_frame(base::ByteBuffer& wire_out);
  // The whole payload of a control frame is in control_payload_: answer it.
  Status finish_control_frame(base::ByteBuffer& wire_out);
  Status fail(uint16_t close_code, const char* reason, base::ByteBuffer& wire_out);
  void unmask_into(const uint8_t* from, size_t count, uint8_t* to);

  // Only during the handshake; null afterwards so an established connection does not carry it.
  std::unique_ptr<WebSocketHandshake> handshake_;
  // A ping's or close's payload while it arrives (at most 125 bytes; empty between them).
  base::ByteBuffer control_payload_;
  const char* error_ = "";
  uint32_t frame_payload_bytes_max_;
  // Payload bytes of the current frame still to come (a frame's length is at most the bound,
  // itself a uint32_t, once its header has been checked).
  uint32_t payload_remaining_ = 0;
  // The current frame's header while it arrives: 2 bytes, up to 8 of extended length, 4 of mask.
  uint8_t header_[14] = {};
  uint8_t header_size_ = 0;
  uint8_t mask_[4] = {};
  uint8_t mask_offset_ = 0;             // index into mask_ of the next payload byte
  uint8_t opcode_ = 0;                  // of the frame whose payload is being read
  bool in_payload_ = false;             // the header is done, payload_remaining_ bytes follow
  bool in_fragmented_message_ = false;  // a binary frame without FIN came: continuations follow
  State state_ = State::kHandshake;
  LimitHit limit_hit_ = LimitHit::kNone;
  uint8_t subprotocol_ = 0;  // 0 none, 1 "mqtt", 2 "mqttv3.1"
};

}  // namespace coremq::transport
