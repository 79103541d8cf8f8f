// MQTT over WebSocket framing, server side. See websocket_transport.h.
#include "transport/websocket_transport.h"

#include <cstring>

#include "base/assert.h"
#include "base/log.h"

namespace coremq::transport {
namespace {

// RFC 6455 section 5.2 opcodes.
constexpr uint8_t kOpcodeContinuation = 0x0;
constexpr uint8_t kOpcodeText = 0x1;
constexpr uint8_t kOpcodeBinary = 0x2;
constexpr uint8_t kOpcodeClose = 0x8;
constexpr uint8_t kOpcodePing = 0x9;
constexpr uint8_t kOpcodePong = 0xA;

constexpr std::string_view kSubprotocols[] = {"", "mqtt", "mqttv3.1"};

bool is_control(uint8_t opcode) {
  return (opcode & 0x8) != 0;
}

// Codes a peer may put in a close frame (RFC 6455 section 7.4, and 1012-1014 registered since
// with IANA); 1004-1006 and 1015 are reserved for reports, never sent.
bool is_valid_close_code(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

uint64_t read_big_endian(const uint8_t* bytes, size_t count) {
  uint64_t value = 0;
  for (size_t i = 0; i < count; ++i) value = (value << 8) | bytes[i];
  return value;
}

void append_close_frame(uint16_t code, base::ByteBuffer& wire_out) {
  uint8_t header[10];
  size_t header_size = WebSocketTransport::encode_frame_header(kOpcodeClose, 2, header);
  wire_out.append(header, header_size);
  wire_out.append_u16(code);
}

}  // namespace

// The state an established connection keeps (the handshake pointer is null by then); see the
// header's note. Growing this is a decision about every WebSocket client's memory.
static_assert(sizeof(WebSocketTransport) <= 80, "WebSocketTransport grew past 80 bytes");

WebSocketTransport::WebSocketTransport(uint32_t frame_payload_bytes_max)
    : handshake_(std::make_unique<WebSocketHandshake>()), frame_payload_bytes_max_(frame_payload_bytes_max) {
  COREMQ_ASSERT(frame_payload_bytes_max > 0);
}

WebSocketTransport::~WebSocketTransport() = default;

std::string_view WebSocketTransport::subprotocol() const {
  return kSubprotocols[subprotocol_];
}

size_t WebSocketTransport::encode_frame_header(uint8_t opcode, uint64_t payload_size, uint8_t (&header)[10]) {
  header[0] = static_cast<uint8_t>(0x80 | opcode);  // FIN: server frames are never fragmented
  if (payload_size < 126) {
    header[1] = static_cast<uint8_t>(payload_size);
    return 2;
  }
  if (payload_size <= 0xffff) {
    header[1] = 126;
    header[2] = static_cast<uint8_t>(payload_size >> 8);
    header[3] = static_cast<uint8_t>(payload_size);
    return 4;
  }
  header[1] = 127;
  for (int i = 0; i < 8; ++i) header[2 + i] = static_cast<uint8_t>(payload_size >> (56 - 8 * i));
  return 10;
}

Transport::Status WebSocketTransport::decode(std::span<const uint8_t> wire, base::ByteBuffer& plain,
                                             base::ByteBuffer& wire_out) {
  switch (state_) {
    case State::kHandshake:
      return decode_handshake(wire, plain, wire_out);
    case State::kOpen:
      return decode_frames(wire, plain, wire_out);
    case State::kClosed:
      // Whatever follows a close is not read (RFC 6455 section 5.5.1).
      return *error_ != '\0' ? Status::kError : Status::kClosed;
  }
  COREMQ_ASSERT(false);
  return Status::kError;
}

Transport::Status WebSocketTransport::decode_handshake(std::span<const uint8_t> wire, base::ByteBuffer& plain,
                                                       base::ByteBuffer& wire_out) {
  COREMQ_ASSERT(handshake_ != nullptr);
  size_t consumed = 0;
  WebSocketHandshake::Result result = handshake_->feed(wire, &consumed, wire_out);
  COREMQ_ASSERT(consumed <= wire.size());
  switch (result) {
    case WebSocketHandshake::Result::kNeedMore:
      COREMQ_ASSERT(consumed == wire.size());
      return Status::kOk;
    case WebSocketHandshake::Result::kRefused:
      error_ = handshake_->error().data();  // a string literal, NUL-terminated
      if (handshake_->refused_too_large()) limit_hit_ = LimitHit::kUpgradeRequestTooLarge;
      handshake_.reset();
      state_ = State::kClosed;
      return Status::kError;
    case WebSocketHandshake::Result::kAccepted:
      break;
  }
  std::string_view chosen = handshake_->subprotocol();
  subprotocol_ = chosen == kSubprotocols[1] ? 1 : chosen == kSubprotocols[2] ? 2 : 0;
  handshake_.reset();
  state_ = State::kOpen;
  // A client should wait for the 101 before it sends frames (RFC 6455 section 4.1); one that
  // did not is still understood.
  return decode_frames(wire.subspan(consumed), plain, wire_out);
}

Transport::Status WebSocketTransport::decode_frames(std::span<const uint8_t> wire, base::ByteBuffer& plain,
                                                    base::ByteBuffer& wire_out) {
  while (!wire.empty()) {
    COREMQ_ASSERT(state_ == State::kOpen);
    if (!in_payload_) {
      if (!take_header(wire)) return Status::kOk;
      Status status = begin_frame(wire_out);
      if (status != Status::kOk) return status;
      continue;
    }
    size_t count = wire.size() < payload_remaining_ ? wire.size() : payload_remaining_;
    bool control = is_control(opcode_);
    COREMQ_ASSERT(!control || control_payload_.size() + count <= kControlPayloadBytesMax);
    unmask_into(wire.data(), count, control ? control_payload_.grow(count) : plain.grow(count));
    payload_remaining_ -= static_cast<uint32_t>(count);
    wire = wire.subspan(count);
    if (payload_remaining_ > 0) continue;
    in_payload_ = false;
    if (control) {
      Status status = finish_control_frame(wire_out);
      if (status != Status::kOk) return status;
    }
  }
  return Status::kOk;
}

bool WebSocketTransport::take_header(std::span<const uint8_t>& wire) {
  while (true) {
    size_t needed = 2;
    if (header_size_ >= 2) {
      uint8_t length7 = header_[1] & 0x7f;
      needed += length7 == 126 ? 2 : length7 == 127 ? 8 : 0;
      needed += (header_[1] & 0x80) != 0 ? 4 : 0;
    }
    COREMQ_ASSERT(header_size_ <= needed && needed <= sizeof header_);
    if (header_size_ == needed) return true;
    if (wire.empty()) return false;
    size_t count = needed - header_size_ < wire.size() ? needed - header_size_ : wire.size();
    std::memcpy(header_ + header_size_, wire.data(), count);
    header_size_ = static_cast<uint8_t>(header_size_ + count);
    wire = wire.subspan(count);
  }
}

Transport::Status WebSocketTransport::begin_frame(base::ByteBuffer& wire_out) {
  size_t header_size = header_size_;
  header_size_ = 0;
  bool fin = (header_[0] & 0x80) != 0;
  uint8_t opcode = header_[0] & 0x0f;
  uint8_t length7 = header_[1] & 0x7f;
  // No extension is ever agreed (we answer no Sec-WebSocket-Extensions), so RSV1-3 must be 0.
  if ((header_[0] & 0x70) != 0) return fail(kCloseProtocolError, "reserved bits set in a frame", wire_out);
  // RFC 6455 section 5.1: a server must close on an unmasked client frame.
  if ((header_[1] & 0x80) == 0) return fail(kCloseProtocolError, "unmasked client frame", wire_out);
  size_t length_bytes = length7 == 126 ? 2 : length7 == 127 ? 8 : 0;
  uint64_t length = length_bytes == 0 ? length7 : read_big_endian(header_ + 2, length_bytes);
  if (length_bytes == 8 && (length >> 63) != 0) {
    return fail(kCloseProtocolError, "64-bit frame length with its top bit set", wire_out);
  }
  COREMQ_ASSERT(header_size == 2 + length_bytes + 4);

  switch (opcode) {
    case kOpcodeContinuation:
      if (!in_fragmented_message_)
        return fail(kCloseProtocolError, "continuation frame outside a message", wire_out);
      in_fragmented_message_ = !fin;
      break;
    case kOpcodeText:
      return fail(kCloseUnsupportedData, "text frame (MQTT travels in binary frames)", wire_out);
    case kOpcodeBinary:
      if (in_fragmented_message_)
        return fail(kCloseProtocolError, "new message inside a fragmented one", wire_out);
      in_fragmented_message_ = !fin;
      break;
    case kOpcodeClose:
    case kOpcodePing:
    case kOpcodePong:
      // RFC 6455 section 5.5: control frames are never fragmented and carry at most 125 bytes.
      if (!fin) return fail(kCloseProtocolError, "fragmented control frame", wire_out);
      if (length > kControlPayloadBytesMax)
        return fail(kCloseProtocolError, "control frame over 125 bytes", wire_out);
      break;
    default:
      return fail(kCloseProtocolError, "reserved opcode", wire_out);
  }
  if (length > frame_payload_bytes_max_) {
    limit_hit_ = LimitHit::kFrameTooLarge;
    LOG_WARNING_LIMITED(
        "websocket: a client frame of %llu bytes is over the %u-byte bound; closing with 1009",
        static_cast<unsigned long long>(length), frame_payload_bytes_max_);
    return fail(kCloseMessageTooBig, "frame larger than the maximum", wire_out);
  }
  opcode_ = opcode;
  payload_remaining_ = static_cast<uint32_t>(length);
  std::memcpy(mask_, header_ + 2 + length_bytes, sizeof mask_);
  mask_offset_ = 0;
  if (length > 0) {
    in_payload_ = true;
    return Status::kOk;
  }
  return is_control(opcode) ? finish_control_frame(wire_out) : Status::kOk;
}

Transport::Status WebSocketTransport::finish_control_frame(base::ByteBuffer& wire_out) {
  std::span<const uint8_t> payload = control_payload_.span();
  uint8_t header[10];
  switch (opcode_) {
    case kOpcodePing: {
      // RFC 6455 section 5.5.2: a pong carries the ping's payload back.
      size_t header_size = encode_frame_header(kOpcodePong, payload.size(), header);
      wire_out.append(header, header_size);
      wire_out.append(payload);
      break;
    }
    case kOpcodePong:
      break;  // unsolicited, or an answer to a ping we never send: ignored (section 5.5.3)
    case kOpcodeClose: {
      if (payload.size() == 1)
        return fail(kCloseProtocolError, "close frame with a 1-byte payload", wire_out);
      if (payload.size() >= 2) {
        auto code = static_cast<uint16_t>(read_big_endian(payload.data(), 2));
        if (!is_valid_close_code(code)) return fail(kCloseProtocolError, "invalid close code", wire_out);
        // Section 5.5.1: the answering close typically echoes the code. The reason text is
        // not shown anywhere, so it is not checked for UTF-8.
        append_close_frame(code, wire_out);
      } else {
        size_t header_size = encode_frame_header(kOpcodeClose, 0, header);
        wire_out.append(header, header_size);
      }
      control_payload_.shrink();
      state_ = State::kClosed;
      return Status::kClosed;
    }
    default:
      COREMQ_ASSERT_MSG(false, "finish_control_frame on a data frame");
  }
  // A ping is rare (browsers never send one; MQTT has PINGREQ): give the memory back.
  control_payload_.shrink();
  return Status::kOk;
}

Transport::Status WebSocketTransport::fail(uint16_t close_code, const char* reason,
                                           base::ByteBuffer& wire_out) {
  COREMQ_ASSERT(state_ == State::kOpen);
  error_ = reason;
  append_close_frame(close_code, wire_out);
  control_payload_.shrink();
  state_ = State::kClosed;
  return Status::kError;
}

void WebSocketTransport::unmask_into(const uint8_t* from, size_t count, uint8_t* to) {
  // Eight bytes at a time with the mask repeated from the current offset (8 is a multiple of
  // the mask's 4), which runs at memory speed instead of a byte per cycle.
  uint8_t rotated[8];
  for (size_t i = 0; i < 8; ++i) rotated[i] = mask_[(mask_offset_ + i) & 3];
  uint64_t mask_word;
  std::memcpy(&mask_word, rotated, sizeof mask_word);
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    uint64_t word;
    std::memcpy(&word, from + i, sizeof word);
    word ^= mask_word;
    std::memcpy(to + i, &word, sizeof word);
  }
  for (; i < count; ++i) to[i] = from[i] ^ rotated[i & 7];
  mask_offset_ = static_cast<uint8_t>((mask_offset_ + count) & 3);
}

Transport::Status WebSocketTransport::encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) {
  COREMQ_ASSERT_MSG(state_ != State::kHandshake, "encode before the WebSocket handshake");
  // Nothing may follow a close frame (RFC 6455 section 5.5.1).
  if (state_ == State::kClosed) return Status::kClosed;
  if (plain.empty()) return Status::kOk;
  uint8_t header[10];
  size_t header_size = encode_frame_header(kOpcodeBinary, plain.size(), header);
  wire_out.reserve(wire_out.size() + header_size + plain.size());
  wire_out.append(header, header_size);
  wire_out.append(plain);
  return Status::kOk;
}

void WebSocketTransport::encode_close(uint16_t websocket_close_code, base::ByteBuffer& wire_out) {
  // Before the handshake there is no WebSocket to close; after a close, it was said already.
  if (state_ != State::kOpen) return;
  COREMQ_ASSERT_MSG(is_valid_close_code(websocket_close_code), "a close code no endpoint may send");
  append_close_frame(websocket_close_code, wire_out);
  state_ = State::kClosed;
}

}  // namespace coremq::transport
