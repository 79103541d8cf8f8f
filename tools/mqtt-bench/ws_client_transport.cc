// RFC 6455 client framing for mqtt-bench; see ws_client_transport.h. Runs on the owning
// worker's thread.
#include "ws_client_transport.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "base/assert.h"
#include "bounds.h"

namespace coremq::bench {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr uint8_t kOpContinuation = 0x0;
constexpr uint8_t kOpText = 0x1;
constexpr uint8_t kOpBinary = 0x2;
constexpr uint8_t kOpClose = 0x8;
constexpr uint8_t kOpPing = 0x9;
constexpr uint8_t kOpPong = 0xA;

std::string base64(const uint8_t* bytes, size_t count) {
  std::string text(4 * ((count + 2) / 3), '\0');
  int written =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()), bytes, static_cast<int>(count));
  COREMQ_ASSERT(written == static_cast<int>(text.size()));
  return text;
}

// Debian's abseil has its own string_view, so the few string helpers needed are here.
std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

bool equals_ignore_case(std::string_view left, std::string_view right) {
  if (left.size() != right.size()) return false;
  for (size_t i = 0; i < left.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(left[i]) != lower(right[i])) return false;
  }
  return true;
}

// What the broker sent, safe to print: at most `limit` bytes, anything unprintable as '?'.
std::string printable(std::string_view text, size_t limit) {
  std::string out(text.substr(0, limit));
  for (char& c : out) {
    if (c < ' ' || c > '~') c = '?';
  }
  return out;
}

// Whether a comma-separated header value holds `token` (case-insensitive), as Connection
// may be "keep-alive, Upgrade".
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (equals_ignore_case(trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// The header of one MQTT packet at the front of `bytes`: its total length, or 0 when the
// bytes do not start with a whole fixed header (never for what Client encodes).
size_t mqtt_packet_length(std::span<const uint8_t> bytes) {
  size_t remaining = 0;
  for (size_t i = 1; i < bytes.size() && i <= 4; ++i) {
    remaining |= size_t{bytes[i] & 0x7Fu} << (7 * (i - 1));
    if ((bytes[i] & 0x80) == 0) return 1 + i + remaining;
  }
  return 0;
}

}  // namespace

WsClientTransport::WsClientTransport(std::string_view host, std::string_view path, uint64_t random_seed)
    : host_(host), path_(path), random_state_(random_seed | 1) {}

std::string WsClientTransport::accept_for_key(std::string_view key) {
  std::string joined = absl::StrFormat("%s%s", key, kGuid);
  uint8_t digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(joined.data()), joined.size(), digest);
  return base64(digest, sizeof(digest));
}

void WsClientTransport::mask_copy(const uint8_t* from, size_t count, uint8_t* to, const uint8_t (&mask)[4]) {
  // Eight bytes per step through a 64-bit word of the mask repeated; the compiler turns the
  // memcpy pairs into plain loads and stores (and vectorises the loop).
  uint8_t repeated[8];
  for (size_t i = 0; i < 8; ++i) repeated[i] = mask[i % 4];
  uint64_t mask_word = 0;
  std::memcpy(&mask_word, repeated, sizeof(mask_word));
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    uint64_t word = 0;
    std::memcpy(&word, from + i, sizeof(word));
    word ^= mask_word;
    std::memcpy(to + i, &word, sizeof(word));
  }
  for (; i < count; ++i) to[i] = from[i] ^ mask[i % 4];
}

transport::Transport::Status WsClientTransport::fail(std::string message) {
  state_ = State::kError;
  error_ = std::move(message);
  return Status::kError;
}

transport::Transport::Status WsClientTransport::decode(std::span<const uint8_t> wire, base::ByteBuffer& plain,
                                                       base::ByteBuffer& wire_out) {
  switch (state_) {
    case State::kStart:
      if (!wire.empty()) return fail("the broker spoke before the WebSocket upgrade request");
      write_request(wire_out);
      state_ = State::kAwaitingResponse;
      return Status::kOk;
    case State::kAwaitingResponse:
      return decode_response(wire, plain, wire_out);
    case State::kOpen:
      return decode_frames(wire, plain, wire_out);
    case State::kClosed:
      return Status::kClosed;
    case State::kError:
      return Status::kError;
  }
  return Status::kError;
}

void WsClientTransport::write_request(base::ByteBuffer& wire_out) {
  uint8_t nonce[16];
  // RFC 6455 section 4.1: a random 16-byte nonce per connection.
  COREMQ_ASSERT_MSG(RAND_bytes(nonce, sizeof(nonce)) == 1, "no random bytes for Sec-WebSocket-Key");
  key_ = base64(nonce, sizeof(nonce));
  wire_out.append(absl::StrFormat(
      "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
      path_, host_, key_));
}

transport::Transport::Status WsClientTransport::decode_response(std::span<const uint8_t> wire,
                                                                base::ByteBuffer& plain,
                                                                base::ByteBuffer& wire_out) {
  size_t searched_from = response_.size() >= 3 ? response_.size() - 3 : 0;
  response_.append(wire);
  std::string_view text = response_.view();
  size_t end = text.find("\r\n\r\n", searched_from);
  // The bound is on the response's head however it arrives: whole in one read or in pieces.
  if ((end == std::string_view::npos && response_.size() > kWebSocketResponseBytesMax) ||
      (end != std::string_view::npos && end + 4 > kWebSocketResponseBytesMax)) {
    return fail(absl::StrFormat("the WebSocket upgrade response is longer than %u bytes",
                                kWebSocketResponseBytesMax));
  }
  if (end == std::string_view::npos) return Status::kOk;
  Status status = check_response(text.substr(0, end));
  if (status != Status::kOk) return status;
  state_ = State::kOpen;
  // Frames may follow the response in the same read.
  base::ByteBuffer rest;
  rest.append(text.substr(end + 4));
  response_.shrink();
  key_.clear();
  key_.shrink_to_fit();
  return rest.empty() ? Status::kOk : decode_frames(rest.span(), plain, wire_out);
}

transport::Transport::Status WsClientTransport::check_response(std::string_view head) {
  size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  // "HTTP/1.1 101 Switching Protocols"; the reason phrase is free text, after a space (not
  // "HTTP/1.1 1010": a status code has three digits).
  if (status_line.substr(0, 12) != "HTTP/1.1 101" || (status_line.size() > 12 && status_line[12] != ' ')) {
    return fail(absl::StrFormat("the broker refused the WebSocket upgrade of %s: '%s'", path_,
                                printable(status_line, 200)));
  }
  bool upgrade = false;
  bool connection = false;
  bool accept = false;
  std::string_view headers =
      line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
  while (!headers.empty()) {
    size_t next = headers.find("\r\n");
    std::string_view line = headers.substr(0, next);
    headers = next == std::string_view::npos ? std::string_view() : headers.substr(next + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos)
      return fail("a malformed header line in the WebSocket upgrade response");
    std::string_view name = trim(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    if (equals_ignore_case(name, "Upgrade")) {
      upgrade = equals_ignore_case(value, "websocket");
    } else if (equals_ignore_case(name, "Connection")) {
      connection = has_token(value, "upgrade");
    } else if (equals_ignore_case(name, "Sec-WebSocket-Accept")) {
      if (value != accept_for_key(key_)) {
        return fail(
            absl::StrFormat("wrong Sec-WebSocket-Accept '%s' in the upgrade response", printable(value, 64)));
      }
      accept = true;
    } else if (equals_ignore_case(name, "Sec-WebSocket-Protocol")) {
      // RFC 6455 section 4.1: a subprotocol the client did not offer fails the connection.
      if (value != "mqtt") {
        return fail(absl::StrFormat("the broker chose subprotocol '%s', not mqtt", printable(value, 64)));
      }
    } else if (equals_ignore_case(name, "Sec-WebSocket-Extensions")) {
      return fail("the broker chose a WebSocket extension mqtt-bench did not offer");
    }
  }
  if (!upgrade || !connection || !accept) {
    return fail(absl::StrFormat("the WebSocket upgrade response lacks %s", !upgrade ? "Upgrade: websocket"
                                                                           : !connection
                                                                               ? "Connection: Upgrade"
                                                                               : "Sec-WebSocket-Accept"));
  }
  return Status::kOk;
}

transport::Transport::Status WsClientTransport::decode_frames(std::span<const uint8_t> wire,
                                                              base::ByteBuffer& plain,
                                                              base::ByteBuffer& wire_out) {
  while (!wire.empty()) {
    if (!in_payload_) {
      // The header: 2 bytes, then 2 or 8 of extended length (server frames carry no mask).
      size_t needed = 2;
      for (;;) {
        if (header_size_ >= 2) {
          uint8_t length7 = header_[1] & 0x7F;
          needed = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0);
        }
        if (header_size_ == needed || wire.empty()) break;
        header_[header_size_++] = wire[0];
        wire = wire.subspan(1);
      }
      if (header_size_ < needed) return Status::kOk;
      Status status = begin_frame();
      if (status != Status::kOk) return status;
    }
    size_t take = static_cast<size_t>(std::min<uint64_t>(wire.size(), payload_remaining_));
    if (opcode_ == kOpBinary || opcode_ == kOpContinuation) {
      plain.append(wire.first(take));
    } else {
      control_payload_.append(wire.first(take));
    }
    wire = wire.subspan(take);
    payload_remaining_ -= take;
    if (payload_remaining_ > 0) continue;
    in_payload_ = false;
    header_size_ = 0;
    if (opcode_ >= kOpClose) {
      Status status = finish_control_frame(wire_out);
      if (status != Status::kOk) return status;
    }
  }
  return Status::kOk;
}

transport::Transport::Status WsClientTransport::begin_frame() {
  bool fin = (header_[0] & 0x80) != 0;
  uint8_t opcode = header_[0] & 0x0F;
  if ((header_[0] & 0x70) != 0)
    return fail("a server frame with reserved bits set (no extension was agreed)");
  // RFC 6455 section 5.1: a client closes the connection on a masked server frame.
  if ((header_[1] & 0x80) != 0) return fail("a masked server frame");
  uint64_t length = header_[1] & 0x7F;
  if (length == 126) {
    length = uint64_t{header_[2]} << 8 | header_[3];
  } else if (length == 127) {
    length = 0;
    for (int i = 2; i < 10; ++i) length = length << 8 | header_[i];
    if (length >> 63) return fail("a server frame length with its top bit set");
  }
  switch (opcode) {
    case kOpBinary:
      if (in_fragmented_message_) return fail("a new binary frame inside a fragmented message");
      in_fragmented_message_ = !fin;
      break;
    case kOpContinuation:
      if (!in_fragmented_message_) return fail("a continuation frame outside a fragmented message");
      in_fragmented_message_ = !fin;
      break;
    case kOpText:
      return fail("a text frame (MQTT over WebSocket is binary)");
    case kOpClose:
    case kOpPing:
    case kOpPong:
      if (!fin || length > kControlPayloadBytesMax) return fail("a fragmented or long control frame");
      control_payload_.clear();
      break;
    default:
      return fail(absl::StrFormat("a frame with reserved opcode %u", opcode));
  }
  opcode_ = opcode;
  payload_remaining_ = length;
  in_payload_ = true;
  // A data frame's payload streams straight into `plain`, so its size needs no bound here:
  // the MQTT parser bounds the packets it makes of them. An empty payload ends the frame in
  // decode_frames' same pass, before it looks at the next byte.
  return Status::kOk;
}

transport::Transport::Status WsClientTransport::finish_control_frame(base::ByteBuffer& wire_out) {
  if (opcode_ == kOpPing) {
    write_frame(kOpPong, control_payload_.span(), wire_out);
  } else if (opcode_ == kOpClose) {
    uint16_t code = control_payload_.size() >= 2
                        ? static_cast<uint16_t>(control_payload_.data()[0] << 8 | control_payload_.data()[1])
                        : 0;
    std::string_view reason =
        control_payload_.size() > 2 ? control_payload_.view().substr(2) : std::string_view();
    error_ = code == 0 ? std::string("the broker closed the WebSocket")
                       : absl::StrFormat("the broker closed the WebSocket with code %u%s%s", code,
                                         reason.empty() ? "" : ": ", printable(reason, 125));
    if (!close_sent_) {
      // Section 5.5.1: echo the status code.
      uint8_t echo[2] = {static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
      write_frame(kOpClose, std::span<const uint8_t>(echo, code == 0 ? 0 : 2), wire_out);
      close_sent_ = true;
    }
    state_ = State::kClosed;
    control_payload_.shrink();
    return Status::kClosed;
  }
  control_payload_.clear();
  return Status::kOk;
}

void WsClientTransport::write_frame(uint8_t opcode, std::span<const uint8_t> payload,
                                    base::ByteBuffer& wire_out) {
  // Section 5.3: a fresh mask per frame. xorshift64* is enough to keep a proxy from
  // predicting it; the tool needs speed, not secrecy.
  random_state_ ^= random_state_ >> 12;
  random_state_ ^= random_state_ << 25;
  random_state_ ^= random_state_ >> 27;
  auto mask_value = static_cast<uint32_t>((random_state_ * 2685821657736338717ull) >> 32);
  uint8_t mask[4] = {static_cast<uint8_t>(mask_value >> 24), static_cast<uint8_t>(mask_value >> 16),
                     static_cast<uint8_t>(mask_value >> 8), static_cast<uint8_t>(mask_value)};
  size_t size = payload.size();
  size_t header_size = 2 + (size < 126 ? 0 : size <= 0xFFFF ? 2 : 8) + 4;
  uint8_t* at = wire_out.grow(header_size + size);
  at[0] = static_cast<uint8_t>(0x80 | opcode);
  if (size < 126) {
    at[1] = static_cast<uint8_t>(0x80 | size);
  } else if (size <= 0xFFFF) {
    at[1] = 0x80 | 126;
    at[2] = static_cast<uint8_t>(size >> 8);
    at[3] = static_cast<uint8_t>(size);
  } else {
    at[1] = 0x80 | 127;
    for (int i = 0; i < 8; ++i) at[2 + i] = static_cast<uint8_t>(uint64_t{size} >> (56 - 8 * i));
  }
  std::memcpy(at + header_size - 4, mask, 4);
  mask_copy(payload.data(), size, at + header_size, mask);
}

transport::Transport::Status WsClientTransport::encode(std::span<const uint8_t> plain,
                                                       base::ByteBuffer& wire_out) {
  COREMQ_ASSERT(state_ != State::kStart && state_ != State::kAwaitingResponse);
  if (state_ == State::kError) return Status::kError;
  if (state_ == State::kClosed || close_sent_) return Status::kClosed;
  // One frame per MQTT packet. What Client stages is always whole packets; should the bytes
  // not start with a whole fixed header, the rest goes in one frame (still valid framing).
  while (!plain.empty()) {
    size_t length = mqtt_packet_length(plain);
    if (length == 0 || length > plain.size()) length = plain.size();
    write_frame(kOpBinary, plain.first(length), wire_out);
    plain = plain.subspan(length);
  }
  return Status::kOk;
}

void WsClientTransport::encode_close(uint16_t websocket_close_code, base::ByteBuffer& wire_out) {
  if (state_ != State::kOpen || close_sent_) return;
  uint8_t code[2] = {static_cast<uint8_t>(websocket_close_code >> 8),
                     static_cast<uint8_t>(websocket_close_code)};
  write_frame(kOpClose, code, wire_out);
  close_sent_ = true;
}

}  // namespace coremq::bench
