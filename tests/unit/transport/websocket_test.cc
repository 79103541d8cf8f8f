// WebSocket transport (src/transport/websocket_*): the upgrade request split anywhere, every
// refusal with its HTTP status, RFC 6455's accept key example, frames split at every byte,
// masking, fragmentation, control frames and every close code the server sends.
// Suites are named WebSocket* so --gtest_filter='WebSocket*' selects them.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/byte_buffer.h"
#include "transport/websocket_handshake.h"
#include "transport/websocket_transport.h"

namespace coremq::transport {
namespace {

using Bytes = std::vector<uint8_t>;
using Status = Transport::Status;

constexpr uint32_t kFrameMax = 1 << 20;

const std::string kRequest =
    "GET /mqtt HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

const std::string kResponse =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n"
    "\r\n";

Bytes bytes_of(std::string_view text) {
  return Bytes(text.begin(), text.end());
}

std::span<const uint8_t> span_of(const Bytes& bytes) {
  return {bytes.data(), bytes.size()};
}

std::string text_of(const base::ByteBuffer& buffer) {
  return std::string(buffer.view());
}

Bytes payload_of_size(size_t size) {
  Bytes payload(size);
  for (size_t i = 0; i < size; ++i) payload[i] = static_cast<uint8_t>(i * 7 + 3);
  return payload;
}

struct FrameSpec {
  uint8_t opcode = 0x2;
  Bytes payload;
  bool fin = true;
  bool masked = true;
  uint8_t rsv = 0;        // placed in bits 4-6 of the first byte
  int length_bytes = -1;  // -1: the minimal form; 0, 2 or 8 to force one
  uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
};

// A client frame as RFC 6455 section 5.2 lays it out.
Bytes client_frame(const FrameSpec& spec) {
  Bytes frame;
  frame.push_back(static_cast<uint8_t>((spec.fin ? 0x80 : 0) | (spec.rsv << 4) | spec.opcode));
  uint64_t size = spec.payload.size();
  int length_bytes = spec.length_bytes >= 0 ? spec.length_bytes : size < 126 ? 0 : size <= 0xffff ? 2 : 8;
  uint8_t mask_bit = spec.masked ? 0x80 : 0;
  if (length_bytes == 0) {
    frame.push_back(static_cast<uint8_t>(mask_bit | size));
  } else {
    frame.push_back(static_cast<uint8_t>(mask_bit | (length_bytes == 2 ? 126 : 127)));
    for (int i = length_bytes - 1; i >= 0; --i) frame.push_back(static_cast<uint8_t>(size >> (8 * i)));
  }
  if (spec.masked) frame.insert(frame.end(), spec.mask, spec.mask + 4);
  for (size_t i = 0; i < spec.payload.size(); ++i) {
    frame.push_back(spec.masked ? spec.payload[i] ^ spec.mask[i % 4] : spec.payload[i]);
  }
  return frame;
}

Bytes binary(const Bytes& payload, bool fin = true) {
  return client_frame({.opcode = 0x2, .payload = payload, .fin = fin});
}
Bytes control(uint8_t opcode, const Bytes& payload) {
  return client_frame({.opcode = opcode, .payload = payload});
}
Bytes close_with(uint16_t code) {
  return control(0x8, Bytes{static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)});
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes all;
  for (const Bytes& part : parts) all.insert(all.end(), part.begin(), part.end());
  return all;
}

// A server frame read back: unmasked, FIN set.
struct ServerFrame {
  uint8_t opcode;
  Bytes payload;
};

std::vector<ServerFrame> server_frames(std::span<const uint8_t> wire) {
  std::vector<ServerFrame> frames;
  size_t at = 0;
  while (at < wire.size()) {
    EXPECT_GE(wire.size() - at, 2u);
    EXPECT_EQ(wire[at] & 0xf0, 0x80) << "server frames are final and use no reserved bit";
    EXPECT_EQ(wire[at + 1] & 0x80, 0) << "server frames are not masked";
    uint8_t opcode = wire[at] & 0x0f;
    uint64_t size = wire[at + 1] & 0x7f;
    at += 2;
    size_t length_bytes = size == 126 ? 2 : size == 127 ? 8 : 0;
    if (length_bytes > 0) {
      size = 0;
      for (size_t i = 0; i < length_bytes; ++i) size = (size << 8) | wire[at + i];
      at += length_bytes;
    }
    EXPECT_LE(at + size, wire.size());
    frames.push_back({opcode, Bytes(wire.begin() + at, wire.begin() + at + size)});
    at += size;
  }
  return frames;
}

uint16_t close_code_of(const ServerFrame& frame) {
  EXPECT_EQ(frame.opcode, 0x8);
  EXPECT_EQ(frame.payload.size(), 2u);
  if (frame.payload.size() < 2) return 0;
  return static_cast<uint16_t>(frame.payload[0] << 8 | frame.payload[1]);
}

// A transport past its handshake.
class Open {
 public:
  explicit Open(uint32_t frame_max = kFrameMax) : transport(frame_max) {
    Bytes request = bytes_of(kRequest);
    EXPECT_EQ(transport.decode(span_of(request), plain, wire_out), Status::kOk);
    EXPECT_TRUE(transport.established());
    EXPECT_EQ(text_of(wire_out), kResponse);
    wire_out.clear();
  }
  Status feed(const Bytes& wire) { return transport.decode(span_of(wire), plain, wire_out); }
  Bytes plain_bytes() const { return Bytes(plain.data(), plain.data() + plain.size()); }
  // Feeds a frame that must make the transport close with `code`.
  void expect_closes_with(const Bytes& wire, uint16_t code, std::string_view reason_part) {
    EXPECT_EQ(feed(wire), Status::kError);
    EXPECT_NE(transport.error().find(reason_part), std::string_view::npos) << transport.error();
    auto frames = server_frames(wire_out.span());
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(close_code_of(frames[0]), code);
    EXPECT_FALSE(transport.established());
    // Nothing more is read or sent after the close.
    wire_out.clear();
    EXPECT_EQ(feed(binary({1, 2, 3})), Status::kError);
    Bytes more = {1};
    EXPECT_EQ(transport.encode(span_of(more), wire_out), Status::kClosed);
    transport.encode_close(1000, wire_out);
    EXPECT_TRUE(wire_out.empty());
  }

  WebSocketTransport transport;
  base::ByteBuffer plain;
  base::ByteBuffer wire_out;
};

// ------------------------------------------------------------------ handshake

TEST(WebSocketHandshakeTest, AcceptKeyOfRfc6455Example) {
  char accept[28];
  WebSocketHandshake::accept_key("dGhlIHNhbXBsZSBub25jZQ==", accept);
  EXPECT_EQ(std::string(accept, sizeof accept), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketHandshakeTest, AnswersAValidRequestWith101AndMqtt) {
  Open open;
  EXPECT_EQ(open.transport.subprotocol(), "mqtt");
  EXPECT_TRUE(open.plain.empty());
}

TEST(WebSocketHandshakeTest, RequestSplitAtEveryByte) {
  Bytes request = bytes_of(kRequest);
  for (size_t split = 0; split <= request.size(); ++split) {
    WebSocketTransport transport(kFrameMax);
    base::ByteBuffer plain;
    base::ByteBuffer wire_out;
    std::span<const uint8_t> all = span_of(request);
    ASSERT_EQ(transport.decode(all.subspan(0, split), plain, wire_out), Status::kOk);
    EXPECT_EQ(transport.established(), split == request.size()) << split;
    ASSERT_EQ(transport.decode(all.subspan(split), plain, wire_out), Status::kOk);
    EXPECT_TRUE(transport.established()) << split;
    EXPECT_EQ(text_of(wire_out), kResponse) << split;
  }
}

TEST(WebSocketHandshakeTest, RequestOneByteAtATimeWithFramesRightBehind) {
  // A client that does not wait for the 101 (against section 4.1) is still understood.
  Bytes wire = concat({bytes_of(kRequest), binary({0x10, 0x00}), control(0x9, {'h', 'i'})});
  WebSocketTransport transport(kFrameMax);
  base::ByteBuffer plain;
  base::ByteBuffer wire_out;
  for (uint8_t byte : wire) {
    ASSERT_EQ(transport.decode(std::span<const uint8_t>(&byte, 1), plain, wire_out), Status::kOk);
  }
  EXPECT_EQ(Bytes(plain.data(), plain.data() + plain.size()), (Bytes{0x10, 0x00}));
  std::string out = text_of(wire_out);
  ASSERT_EQ(out.substr(0, kResponse.size()), kResponse);
  auto frames = server_frames(wire_out.span().subspan(kResponse.size()));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0xA);
  EXPECT_EQ(frames[0].payload, (Bytes{'h', 'i'}));
}

TEST(WebSocketHandshakeTest, HeaderNamesAndTokensAreCaseInsensitiveAndListsAreSearched) {
  std::string request =
      "GET / HTTP/1.1\r\n"
      "host: example\r\n"
      "upgrade: WebSocket\r\n"
      "connection: keep-alive, upgrade\r\n"
      "sec-websocket-key:   dGhlIHNhbXBsZSBub25jZQ==  \r\n"
      "sec-websocket-version: 13\r\n"
      "Sec-WebSocket-Protocol: chat, mqttv3.1\r\n"
      "Sec-WebSocket-Protocol: mqtt\r\n"
      "User-Agent: test\r\n"
      "\r\n";
  WebSocketTransport transport(kFrameMax);
  base::ByteBuffer plain;
  base::ByteBuffer wire_out;
  Bytes wire = bytes_of(request);
  ASSERT_EQ(transport.decode(span_of(wire), plain, wire_out), Status::kOk);
  EXPECT_TRUE(transport.established());
  EXPECT_EQ(transport.subprotocol(), "mqtt");
  EXPECT_EQ(text_of(wire_out), kResponse);
}

TEST(WebSocketHandshakeTest, OldMqttSubprotocolAndNoneAreAccepted) {
  struct Case {
    std::string protocol_line;
    std::string_view chosen;
  };
  for (const Case& c : {Case{"Sec-WebSocket-Protocol: mqttv3.1\r\n", "mqttv3.1"}, Case{"", ""}}) {
    std::string request =
        "GET /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
        c.protocol_line + "\r\n";
    WebSocketTransport transport(kFrameMax);
    base::ByteBuffer plain;
    base::ByteBuffer wire_out;
    Bytes wire = bytes_of(request);
    ASSERT_EQ(transport.decode(span_of(wire), plain, wire_out), Status::kOk);
    EXPECT_EQ(transport.subprotocol(), c.chosen);
    std::string out = text_of(wire_out);
    if (c.chosen.empty()) {
      EXPECT_EQ(out.find("Sec-WebSocket-Protocol"), std::string::npos) << out;
    } else {
      EXPECT_NE(out.find("Sec-WebSocket-Protocol: " + std::string(c.chosen) + "\r\n"), std::string::npos)
          << out;
    }
  }
}

struct BadRequest {
  const char* name;
  std::string request;
  int status;
  const char* reason_part;
  const char* header_part = "";  // a header the answer must carry
};

// kRequest with one line replaced (or removed when `with` is empty).
std::string replace_line(std::string_view starting_with, std::string_view with) {
  std::string request = kRequest;
  size_t at = request.find(starting_with);
  EXPECT_NE(at, std::string::npos);
  size_t end = request.find("\r\n", at) + 2;
  request.replace(at, end - at, with.empty() ? "" : std::string(with) + "\r\n");
  return request;
}

std::vector<BadRequest> bad_requests() {
  return {
      {"Post", replace_line("GET", "POST /mqtt HTTP/1.1"), 405, "only GET", "Allow: GET\r\n"},
      {"Http10", replace_line("GET", "GET /mqtt HTTP/1.0"), 400, "HTTP/1.1 required"},
      {"NoTarget", replace_line("GET", "GET  HTTP/1.1"), 400, "malformed request line"},
      {"RequestLineWithoutVersion", replace_line("GET", "GET /mqtt"), 400, "malformed request line"},
      {"NoHost", replace_line("Host:", ""), 400, "Host missing"},
      {"NoUpgrade", replace_line("Upgrade:", ""), 400, "Upgrade: websocket missing"},
      {"UpgradeToOther", replace_line("Upgrade:", "Upgrade: h2c"), 400, "Upgrade: websocket missing"},
      {"NoConnectionUpgrade", replace_line("Connection:", "Connection: keep-alive"), 400,
       "Connection: Upgrade"},
      {"NoKey", replace_line("Sec-WebSocket-Key:", ""), 400, "Sec-WebSocket-Key"},
      {"ShortKey", replace_line("Sec-WebSocket-Key:", "Sec-WebSocket-Key: dGhlIHNhbXBsZQ=="), 400,
       "Sec-WebSocket-Key"},
      {"KeyNotBase64", replace_line("Sec-WebSocket-Key:", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q=="), 400,
       "Sec-WebSocket-Key"},
      {"TwoKeys",
       replace_line(
           "Sec-WebSocket-Key:",
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="),
       400, "Sec-WebSocket-Key"},
      {"NoVersion", replace_line("Sec-WebSocket-Version:", ""), 400, "Sec-WebSocket-Version missing"},
      {"Version8", replace_line("Sec-WebSocket-Version:", "Sec-WebSocket-Version: 8"), 426,
       "Sec-WebSocket-Version 13", "Sec-WebSocket-Version: 13\r\n"},
      {"OtherProtocolOnly", replace_line("Sec-WebSocket-Protocol:", "Sec-WebSocket-Protocol: chat, MQTT"),
       400, "Sec-WebSocket-Protocol"},
      {"HeaderWithoutColon", replace_line("Host:", "Host 127.0.0.1"), 400, "malformed header line"},
      {"SpaceBeforeColon", replace_line("Host:", "Host : 127.0.0.1"), 400, "malformed header line"},
      {"FoldedHeader", replace_line("Host:", "Host: a\r\n b"), 400, "malformed header line"},
      {"ControlCharacter", replace_line("Host:", std::string("Host: a\x01z")), 400, "control character"},
      {"Body", replace_line("Host:", "Host: h\r\nContent-Length: 5"), 400, "no body"},
      {"TooLarge", "GET /" + std::string(5000, 'a'), 431, "too large"},
      {"HeadersTooLarge",
       replace_line("Host:", "Host: h\r\nCookie: " + std::string(WebSocketHandshake::kRequestBytesMax, 'c')),
       431, "too large"},
  };
}

TEST(WebSocketHandshakeTest, EveryBadRequestGetsItsStatusAndReason) {
  for (const BadRequest& bad : bad_requests()) {
    SCOPED_TRACE(bad.name);
    WebSocketTransport transport(kFrameMax);
    base::ByteBuffer plain;
    base::ByteBuffer wire_out;
    Bytes wire = bytes_of(bad.request);
    ASSERT_EQ(transport.decode(span_of(wire), plain, wire_out), Status::kError);
    EXPECT_FALSE(transport.established());
    EXPECT_TRUE(plain.empty());
    EXPECT_NE(transport.error().find(bad.reason_part), std::string_view::npos) << transport.error();
    EXPECT_EQ(transport.limit_hit() == WebSocketTransport::LimitHit::kUpgradeRequestTooLarge,
              bad.status == 431);
    std::string out = text_of(wire_out);
    std::string status_line = "HTTP/1.1 " + std::to_string(bad.status) + " ";
    EXPECT_EQ(out.substr(0, status_line.size()), status_line) << out;
    EXPECT_NE(out.find("\r\nConnection: close\r\n"), std::string::npos) << out;
    EXPECT_NE(out.find(bad.header_part), std::string::npos) << out;
    // The body is the reason, and Content-Length says how long it is.
    size_t body_at = out.find("\r\n\r\n") + 4;
    std::string body = out.substr(body_at);
    EXPECT_EQ(body, std::string(transport.error()) + "\n");
    EXPECT_NE(out.find("Content-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos) << out;
    // Refused for good: more bytes are not read, and there is no WebSocket to close.
    wire_out.clear();
    EXPECT_EQ(transport.decode(span_of(wire), plain, wire_out), Status::kError);
    transport.encode_close(1000, wire_out);
    EXPECT_TRUE(wire_out.empty());
  }
}

TEST(WebSocketHandshakeTest, BadRequestSplitAtEveryByteGetsTheSameAnswer) {
  Bytes wire = bytes_of(replace_line("Sec-WebSocket-Version:", "Sec-WebSocket-Version: 7"));
  for (size_t split = 0; split <= wire.size(); ++split) {
    WebSocketTransport transport(kFrameMax);
    base::ByteBuffer plain;
    base::ByteBuffer wire_out;
    std::span<const uint8_t> all = span_of(wire);
    Status first = transport.decode(all.subspan(0, split), plain, wire_out);
    Status second = split == wire.size() ? first : transport.decode(all.subspan(split), plain, wire_out);
    EXPECT_EQ(second, Status::kError) << split;
    EXPECT_EQ(text_of(wire_out).substr(0, 13), "HTTP/1.1 426 ") << split;
  }
}

TEST(WebSocketHandshakeTest, RequestOfExactlyTheBoundIsAccepted) {
  std::string request = kRequest;
  std::string filler = "X-Filler: ";
  size_t room = WebSocketHandshake::kRequestBytesMax - request.size() - filler.size() - 2;
  request.insert(request.size() - 2, filler + std::string(room, 'f') + "\r\n");
  ASSERT_EQ(request.size(), WebSocketHandshake::kRequestBytesMax);
  WebSocketTransport transport(kFrameMax);
  base::ByteBuffer plain;
  base::ByteBuffer wire_out;
  Bytes wire = bytes_of(request);
  ASSERT_EQ(transport.decode(span_of(wire), plain, wire_out), Status::kOk);
  EXPECT_TRUE(transport.established());
}

// ------------------------------------------------------------------ frames

TEST(WebSocketFrameTest, BinaryFrameIsUnmaskedIntoPlain) {
  Open open;
  Bytes payload = payload_of_size(50);
  EXPECT_EQ(open.feed(binary(payload)), Status::kOk);
  EXPECT_EQ(open.plain_bytes(), payload);
  EXPECT_TRUE(open.wire_out.empty());
}

TEST(WebSocketFrameTest, MaskingAtEveryLengthAndMask) {
  // Lengths around the 8-byte unmasking step, and masks whose bytes all differ.
  for (size_t size = 0; size < 40; ++size) {
    for (uint8_t seed : {0x00, 0x5a, 0xff}) {
      Open open;
      FrameSpec spec{.payload = payload_of_size(size)};
      for (int i = 0; i < 4; ++i) spec.mask[i] = static_cast<uint8_t>(seed + 61 * i);
      Bytes frame = client_frame(spec);
      // Split in the payload too, so the mask offset carries over between reads.
      size_t split = frame.size() - size / 2;
      EXPECT_EQ(open.feed(Bytes(frame.begin(), frame.begin() + split)), Status::kOk);
      EXPECT_EQ(open.feed(Bytes(frame.begin() + split, frame.end())), Status::kOk);
      EXPECT_EQ(open.plain_bytes(), spec.payload) << size;
    }
  }
}

// A stream with every kind of frame the server accepts.
Bytes mixed_stream() {
  return concat({
      binary({0x10, 0x01, 0x02}),
      control(0x9, {'p', 'i', 'n', 'g'}),
      binary(payload_of_size(300)),  // 16-bit length
      binary({0xa0}, false),         // a fragmented message ...
      control(0xA, {'x'}),           // ... with a pong ...
      client_frame({.opcode = 0x0, .payload = {0xa1, 0xa2}, .fin = false}),
      control(0x9, {}),  // ... and an empty ping inside
      client_frame({.opcode = 0x0, .payload = {0xa3}, .fin = true}),
      binary({}),
      client_frame({.opcode = 0x2, .payload = {0x30, 0x31}, .length_bytes = 8}),
  });
}

Bytes mixed_stream_plain() {
  Bytes expected = {0x10, 0x01, 0x02};
  Bytes big = payload_of_size(300);
  expected.insert(expected.end(), big.begin(), big.end());
  for (uint8_t byte : {0xa0, 0xa1, 0xa2, 0xa3, 0x30, 0x31}) expected.push_back(byte);
  return expected;
}

void expect_mixed_stream_answers(const base::ByteBuffer& wire_out) {
  auto frames = server_frames(wire_out.span());
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].opcode, 0xA);
  EXPECT_EQ(frames[0].payload, (Bytes{'p', 'i', 'n', 'g'}));
  EXPECT_EQ(frames[1].opcode, 0xA);
  EXPECT_TRUE(frames[1].payload.empty());
}

TEST(WebSocketFrameTest, FramesSplitAtEveryByte) {
  Bytes stream = mixed_stream();
  for (size_t split = 0; split <= stream.size(); ++split) {
    SCOPED_TRACE(split);
    Open open;
    EXPECT_EQ(open.feed(Bytes(stream.begin(), stream.begin() + split)), Status::kOk);
    EXPECT_EQ(open.feed(Bytes(stream.begin() + split, stream.end())), Status::kOk);
    EXPECT_EQ(open.plain_bytes(), mixed_stream_plain());
    expect_mixed_stream_answers(open.wire_out);
  }
}

TEST(WebSocketFrameTest, FramesOneByteAtATime) {
  Bytes stream = mixed_stream();
  Open open;
  for (uint8_t byte : stream) ASSERT_EQ(open.feed(Bytes{byte}), Status::kOk);
  EXPECT_EQ(open.plain_bytes(), mixed_stream_plain());
  expect_mixed_stream_answers(open.wire_out);
}

TEST(WebSocketFrameTest, LengthForms) {
  // 7-bit, 16-bit and 64-bit lengths, including non-minimal forms (accepted) and the edges.
  for (size_t size : {0u, 125u, 126u, 127u, 65535u, 65536u, 70000u}) {
    for (int length_bytes : {-1, 2, 8}) {
      if (length_bytes == 2 && size > 0xffff) continue;
      Open open;
      FrameSpec spec{.payload = payload_of_size(size), .length_bytes = length_bytes};
      EXPECT_EQ(open.feed(client_frame(spec)), Status::kOk) << size;
      EXPECT_EQ(open.plain_bytes(), spec.payload) << size;
    }
  }
}

TEST(WebSocketFrameTest, SixtyFourBitLengthWithTopBitIsAProtocolError) {
  Open open;
  Bytes frame = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
  open.expect_closes_with(frame, 1002, "top bit");
}

TEST(WebSocketFrameTest, FrameOverTheBoundClosesWith1009BeforeItsPayloadArrives) {
  {
    Open open(100);
    EXPECT_EQ(open.feed(binary(payload_of_size(100))), Status::kOk);
    EXPECT_EQ(open.transport.limit_hit(), WebSocketTransport::LimitHit::kNone);
    Bytes whole = binary(payload_of_size(101));
    Bytes frame(whole.begin(), whole.end() - 101);  // the header alone decides
    open.expect_closes_with(frame, 1009, "larger than the maximum");
    EXPECT_EQ(open.transport.limit_hit(), WebSocketTransport::LimitHit::kFrameTooLarge);
  }
  {
    // A continuation is bounded alike; a 64-bit length far over the bound too.
    Open open(100);
    EXPECT_EQ(open.feed(binary({1}, false)), Status::kOk);
    Bytes frame = {0x80, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};
    open.expect_closes_with(frame, 1009, "larger than the maximum");
  }
}

TEST(WebSocketFrameTest, UnmaskedClientFrameIsAProtocolError) {
  Open open;
  open.expect_closes_with(client_frame({.payload = {1, 2}, .masked = false}), 1002, "unmasked");
}

TEST(WebSocketFrameTest, TextFrameClosesWith1003) {
  Open open;
  open.expect_closes_with(client_frame({.opcode = 0x1, .payload = {'h', 'i'}}), 1003, "text frame");
}

TEST(WebSocketFrameTest, ReservedBitsAndOpcodesAreProtocolErrors) {
  for (uint8_t rsv : {1, 2, 4}) {
    Open open;
    open.expect_closes_with(client_frame({.payload = {1}, .rsv = rsv}), 1002, "reserved bits");
  }
  for (uint8_t opcode : {0x3, 0x7, 0xB, 0xF}) {
    Open open;
    open.expect_closes_with(client_frame({.opcode = opcode, .payload = {1}}), 1002, "reserved opcode");
  }
}

TEST(WebSocketFrameTest, FragmentationRules) {
  {
    Open open;
    open.expect_closes_with(client_frame({.opcode = 0x0, .payload = {1}}), 1002, "continuation");
  }
  {
    Open open;
    EXPECT_EQ(open.feed(binary({1}, false)), Status::kOk);
    open.expect_closes_with(binary({2}), 1002, "inside a fragmented");
  }
  {
    // A message whose fragments carry one MQTT packet in pieces, and packets across frames.
    Open open;
    Bytes pingreq_and_part = {0xc0, 0x00, 0x30};
    EXPECT_EQ(open.feed(concat({binary(pingreq_and_part, false),
                                client_frame({.opcode = 0x0, .payload = {0x02, 0x00}, .fin = true}),
                                binary({0x00})})),
              Status::kOk);
    EXPECT_EQ(open.plain_bytes(), (Bytes{0xc0, 0x00, 0x30, 0x02, 0x00, 0x00}));
  }
}

TEST(WebSocketFrameTest, PingIsAnsweredWithItsPayloadAndPongIsIgnored) {
  Open open;
  Bytes payload = payload_of_size(125);
  EXPECT_EQ(open.feed(control(0xA, {1, 2})), Status::kOk);
  EXPECT_TRUE(open.wire_out.empty());
  EXPECT_EQ(open.feed(control(0x9, payload)), Status::kOk);
  auto frames = server_frames(open.wire_out.span());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0xA);
  EXPECT_EQ(frames[0].payload, payload);
  EXPECT_TRUE(open.plain.empty());
}

TEST(WebSocketFrameTest, ControlFrameRules) {
  {
    Open open;
    open.expect_closes_with(control(0x9, payload_of_size(126)), 1002, "over 125");
  }
  {
    Open open;
    open.expect_closes_with(client_frame({.opcode = 0x9, .payload = {1}, .fin = false}), 1002,
                            "fragmented control");
  }
  {
    Open open;
    open.expect_closes_with(control(0x8, {3}), 1002, "1-byte");
  }
  for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 2000, 5000}) {
    Open open;
    open.expect_closes_with(close_with(code), 1002, "invalid close code");
  }
}

TEST(WebSocketFrameTest, CloseIsEchoedAndEndsTheStream) {
  for (uint16_t code : {1000, 1001, 1011, 3000, 4999}) {
    Open open;
    Bytes wire = concat({binary({7}), close_with(code), binary({8})});
    EXPECT_EQ(open.feed(wire), Status::kClosed);
    EXPECT_EQ(open.plain_bytes(), Bytes{7}) << "nothing after the close is read";
    auto frames = server_frames(open.wire_out.span());
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(close_code_of(frames[0]), code);
    EXPECT_TRUE(open.transport.error().empty());
    open.wire_out.clear();
    EXPECT_EQ(open.feed(binary({9})), Status::kClosed);
    Bytes more = {1};
    EXPECT_EQ(open.transport.encode(span_of(more), open.wire_out), Status::kClosed);
    open.transport.encode_close(1000, open.wire_out);
    EXPECT_TRUE(open.wire_out.empty());
  }
  {
    // An empty close gets an empty close; with a reason, the code is echoed without it.
    Open open;
    EXPECT_EQ(open.feed(control(0x8, {})), Status::kClosed);
    EXPECT_EQ(text_of(open.wire_out), std::string("\x88\x00", 2));
    Open with_reason;
    EXPECT_EQ(with_reason.feed(control(0x8, {0x03, 0xe8, 'b', 'y', 'e'})), Status::kClosed);
    EXPECT_EQ(text_of(with_reason.wire_out), std::string("\x88\x02\x03\xe8", 4));
  }
}

TEST(WebSocketFrameTest, EncodeWrapsInOneUnmaskedBinaryFrame) {
  for (size_t size : {1u, 125u, 126u, 65535u, 65536u, 200000u}) {
    Open open;
    Bytes payload = payload_of_size(size);
    ASSERT_EQ(open.transport.encode(span_of(payload), open.wire_out), Status::kOk);
    size_t header_size = size < 126 ? 2 : size <= 0xffff ? 4 : 10;
    EXPECT_EQ(open.wire_out.size(), header_size + size);
    auto frames = server_frames(open.wire_out.span());
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].opcode, 0x2);
    EXPECT_EQ(frames[0].payload, payload);
  }
  Open open;
  ASSERT_EQ(open.transport.encode({}, open.wire_out), Status::kOk);
  EXPECT_TRUE(open.wire_out.empty());
}

TEST(WebSocketFrameTest, EncodeCloseSendsOneCloseFrame) {
  Open open;
  open.transport.encode_close(1002, open.wire_out);
  open.transport.encode_close(1000, open.wire_out);
  EXPECT_EQ(text_of(open.wire_out), std::string("\x88\x02\x03\xea", 4));
  EXPECT_FALSE(open.transport.established());
  // Before the handshake there is nothing to close.
  WebSocketTransport fresh(kFrameMax);
  base::ByteBuffer wire_out;
  fresh.encode_close(1000, wire_out);
  EXPECT_TRUE(wire_out.empty());
}

TEST(WebSocketFrameTest, StateIsSmall) {
  // The figure docs/SECURITY.md quotes; the static_assert in the .cc holds the bound.
  EXPECT_LE(sizeof(WebSocketTransport), 80u);
  std::printf("sizeof(WebSocketTransport) = %zu\n", sizeof(WebSocketTransport));
}

}  // namespace
}  // namespace coremq::transport
