// Unit tests of mqtt-bench's WebSocket client (tools/mqtt-bench/ws_client_transport) and of
// its StackedTransport: the upgrade request and the checks on the 101 answer, server frames
// of every length form split at every byte, control frames, the refusals RFC 6455 asks a
// client for, and one masked frame per MQTT packet on the way out. No sockets.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/byte_buffer.h"
#include "mqtt/encoder.h"
// mqtt-bench is a program, not a library: its headers are reached from here by path.
#include "../../../tools/mqtt-bench/bounds.h"
#include "../../../tools/mqtt-bench/stacked_transport.h"
#include "../../../tools/mqtt-bench/ws_client_transport.h"

namespace coremq::bench {
namespace {

using Status = transport::Transport::Status;

std::span<const uint8_t> bytes_of(std::string_view text) {
  return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
}

std::string key_of(std::string_view request) {
  size_t at = request.find("Sec-WebSocket-Key: ");
  EXPECT_NE(at, std::string_view::npos);
  size_t end = request.find("\r\n", at);
  return std::string(request.substr(at + 19, end - at - 19));
}

std::string response_for(std::string_view request,
                         std::string_view extra = "Sec-WebSocket-Protocol: mqtt\r\n") {
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
         "Sec-WebSocket-Accept: " +
         WsClientTransport::accept_for_key(key_of(request)) + "\r\n" + std::string(extra) + "\r\n";
}

// An unmasked server frame.
std::vector<uint8_t> server_frame(uint8_t first_byte, const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> frame{first_byte};
  size_t size = payload.size();
  if (size < 126) {
    frame.push_back(static_cast<uint8_t>(size));
  } else if (size <= 0xFFFF) {
    frame.push_back(126);
    frame.push_back(static_cast<uint8_t>(size >> 8));
    frame.push_back(static_cast<uint8_t>(size));
  } else {
    frame.push_back(127);
    for (int i = 7; i >= 0; --i) frame.push_back(static_cast<uint8_t>(uint64_t{size} >> (8 * i)));
  }
  frame.insert(frame.end(), payload.begin(), payload.end());
  return frame;
}

std::vector<uint8_t> pattern(size_t size) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3);
  return bytes;
}

struct ClientFrame {
  uint8_t opcode = 0;
  bool fin = false;
  std::vector<uint8_t> payload;  // unmasked
  uint32_t mask = 0;
};

// Parses the masked frames a client wrote; every one must be masked.
std::vector<ClientFrame> client_frames(std::span<const uint8_t> wire) {
  std::vector<ClientFrame> frames;
  size_t at = 0;
  while (at < wire.size()) {
    ClientFrame frame;
    frame.fin = (wire[at] & 0x80) != 0;
    frame.opcode = wire[at] & 0x0F;
    EXPECT_EQ(wire[at + 1] & 0x80, 0x80) << "client frames are masked";
    uint64_t size = wire[at + 1] & 0x7F;
    at += 2;
    if (size == 126) {
      size = uint64_t{wire[at]} << 8 | wire[at + 1];
      at += 2;
    } else if (size == 127) {
      size = 0;
      for (int i = 0; i < 8; ++i) size = size << 8 | wire[at + i];
      at += 8;
    }
    uint8_t mask[4];
    std::memcpy(mask, &wire[at], 4);
    std::memcpy(&frame.mask, mask, 4);
    at += 4;
    for (uint64_t i = 0; i < size; ++i) frame.payload.push_back(wire[at + i] ^ mask[i % 4]);
    at += size;
    frames.push_back(std::move(frame));
  }
  EXPECT_EQ(at, wire.size());
  return frames;
}

// A client transport taken through its upgrade; also used outside the fixture for fresh ones.
struct WsClientHarness {
  // Writes the request and answers it with a 101 carrying `extra` headers; returns the status.
  Status open(std::string_view extra = "Sec-WebSocket-Protocol: mqtt\r\n") {
    EXPECT_EQ(transport.decode({}, plain, wire_out), Status::kOk);
    request = std::string(wire_out.view());
    wire_out.clear();
    std::string response = response_for(request, extra);
    return transport.decode(bytes_of(response), plain, wire_out);
  }

  WsClientTransport transport{"127.0.0.1:8080", "/mqtt", 42};
  base::ByteBuffer plain;
  base::ByteBuffer wire_out;
  std::string request;
};

class WsClientTest : public ::testing::Test, public WsClientHarness {};

TEST(WsClientTransportStatic, AcceptMatchesRfc6455Example) {
  // RFC 6455 section 1.3.
  EXPECT_EQ(WsClientTransport::accept_for_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsClientTransportStatic, MaskCopyMatchesTheByteLoop) {
  const uint8_t mask[4] = {0x12, 0x34, 0xAB, 0xCD};
  for (size_t size = 0; size < 70; ++size) {
    std::vector<uint8_t> in = pattern(size);
    std::vector<uint8_t> out(size);
    WsClientTransport::mask_copy(in.data(), size, out.data(), mask);
    for (size_t i = 0; i < size; ++i) ASSERT_EQ(out[i], in[i] ^ mask[i % 4]) << size << " " << i;
    WsClientTransport::mask_copy(out.data(), size, out.data(), mask);  // in place, back again
    ASSERT_EQ(out, in);
  }
}

TEST_F(WsClientTest, RequestCarriesTheRfcHeadersAndTheMqttSubprotocol) {
  ASSERT_EQ(open(), Status::kOk);
  EXPECT_TRUE(transport.established());
  EXPECT_EQ(request.rfind("GET /mqtt HTTP/1.1\r\n", 0), 0u);
  for (const char* header : {"Host: 127.0.0.1:8080\r\n", "Upgrade: websocket\r\n", "Connection: Upgrade\r\n",
                             "Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Protocol: mqtt\r\n"}) {
    EXPECT_NE(request.find(header), std::string::npos) << header;
  }
  EXPECT_EQ(key_of(request).size(), 24u);  // base64 of 16 bytes
  EXPECT_TRUE(request.ends_with("\r\n\r\n"));
  EXPECT_TRUE(wire_out.empty());
}

TEST_F(WsClientTest, ResponseSplitAtEveryByteWithAFrameBehindIt) {
  ASSERT_EQ(transport.decode({}, plain, wire_out), Status::kOk);
  request = std::string(wire_out.view());
  std::string response = response_for(request);
  std::vector<uint8_t> frame = server_frame(0x82, {0x20, 0x02, 0x00, 0x00});  // a CONNACK
  response.append(frame.begin(), frame.end());
  for (size_t i = 0; i < response.size(); ++i) {
    ASSERT_EQ(transport.decode(bytes_of(std::string_view(response).substr(i, 1)), plain, wire_out),
              Status::kOk)
        << transport.error();
    EXPECT_EQ(transport.established(), i >= response.size() - frame.size() - 1) << i;
  }
  EXPECT_EQ(plain.size(), 4u);
  EXPECT_EQ(plain.data()[0], 0x20);
}

TEST_F(WsClientTest, AbsentSubprotocolIsAccepted) {
  EXPECT_EQ(open(""), Status::kOk);
}

TEST_F(WsClientTest, RefusedOrWrongUpgradesFail) {
  struct Case {
    const char* response;
    const char* error;
  };
  const Case cases[] = {
      {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
       "refused the WebSocket upgrade of /mqtt: 'HTTP/1.1 404"},
      // A status code has three digits: 1010 is not 101.
      {"HTTP/1.1 1010 Odd\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
       "refused the WebSocket upgrade of /mqtt: 'HTTP/1.1 1010"},
      {"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n",
       "wrong Sec-WebSocket-Accept"},
      {"HTTP/1.1 101 OK\r\nConnection: Upgrade\r\n\r\n", "lacks Upgrade: websocket"},
      {"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nno colon\r\n\r\n", "malformed header line"},
  };
  for (const Case& test : cases) {
    WsClientTransport fresh("h:1", "/mqtt", 1);
    base::ByteBuffer out;
    ASSERT_EQ(fresh.decode({}, plain, out), Status::kOk);
    EXPECT_EQ(fresh.decode(bytes_of(test.response), plain, out), Status::kError) << test.response;
    EXPECT_NE(fresh.error().find(test.error), std::string::npos) << fresh.error();
    EXPECT_FALSE(fresh.established());
  }
}

TEST_F(WsClientTest, OtherSubprotocolOrAnExtensionFails) {
  EXPECT_EQ(open("Sec-WebSocket-Protocol: mqttv3.1\r\n"), Status::kError);
  EXPECT_NE(transport.error().find("subprotocol 'mqttv3.1'"), std::string::npos) << transport.error();
  WsClientHarness other;
  EXPECT_EQ(other.open("Sec-WebSocket-Extensions: permessage-deflate\r\n"), Status::kError);
}

TEST_F(WsClientTest, EndlessResponseHitsTheBound) {
  ASSERT_EQ(transport.decode({}, plain, wire_out), Status::kOk);
  std::string line = "HTTP/1.1 101 OK\r\nX-Padding: " + std::string(kWebSocketResponseBytesMax, 'a');
  EXPECT_EQ(transport.decode(bytes_of(line), plain, wire_out), Status::kError);
  EXPECT_NE(transport.error().find("longer than 4096 bytes"), std::string::npos) << transport.error();
  // Also when the whole over-long head arrives in one read, terminator included.
  WsClientHarness whole;
  ASSERT_EQ(whole.transport.decode({}, whole.plain, whole.wire_out), Status::kOk);
  std::string response = response_for(whole.wire_out.view(), "X-Padding: " + std::string(4096, 'a') + "\r\n");
  EXPECT_EQ(whole.transport.decode(bytes_of(response), whole.plain, whole.wire_out), Status::kError);
}

TEST_F(WsClientTest, EveryLengthFormSplitAtEveryByte) {
  ASSERT_EQ(open(), Status::kOk);
  for (size_t size :
       {size_t{0}, size_t{1}, size_t{125}, size_t{126}, size_t{65535}, size_t{65536}, size_t{70000}}) {
    std::vector<uint8_t> payload = pattern(size);
    std::vector<uint8_t> frame = server_frame(0x82, payload);
    plain.clear();
    // Whole, then in pieces of 1 and 7 bytes: the stream out is the same.
    for (size_t piece : {frame.size(), size_t{1}, size_t{7}}) {
      if (piece == 1 && size > 200) continue;  // byte by byte only for the short ones
      plain.clear();
      for (size_t at = 0; at < frame.size(); at += piece) {
        size_t count = std::min(piece, frame.size() - at);
        ASSERT_EQ(transport.decode(std::span<const uint8_t>(&frame[at], count), plain, wire_out), Status::kOk)
            << transport.error();
      }
      ASSERT_EQ(plain.size(), size);
      EXPECT_TRUE(std::equal(payload.begin(), payload.end(), plain.data())) << size;
    }
  }
  EXPECT_TRUE(wire_out.empty());
}

TEST_F(WsClientTest, FragmentedMessageAndPacketsAcrossFrames) {
  ASSERT_EQ(open(), Status::kOk);
  std::vector<uint8_t> wire;
  for (const auto& frame : {server_frame(0x02, {1, 2}), server_frame(0x89, {9}), server_frame(0x00, {3}),
                            server_frame(0x80, {4, 5})}) {
    wire.insert(wire.end(), frame.begin(), frame.end());
  }
  ASSERT_EQ(transport.decode(wire, plain, wire_out), Status::kOk) << transport.error();
  EXPECT_EQ(std::vector<uint8_t>(plain.data(), plain.data() + plain.size()),
            (std::vector<uint8_t>{1, 2, 3, 4, 5}));
  // The ping in the middle was answered with a masked pong carrying its payload.
  std::vector<ClientFrame> frames = client_frames(wire_out.span());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0xA);
  EXPECT_EQ(frames[0].payload, std::vector<uint8_t>{9});
}

TEST_F(WsClientTest, CloseIsEchoedAndEndsTheStream) {
  ASSERT_EQ(open(), Status::kOk);
  std::vector<uint8_t> close = server_frame(0x88, {0x03, 0xE9, 'b', 'y', 'e'});  // 1001 "bye"
  EXPECT_EQ(transport.decode(close, plain, wire_out), Status::kClosed);
  EXPECT_NE(transport.error().find("code 1001: bye"), std::string::npos) << transport.error();
  std::vector<ClientFrame> frames = client_frames(wire_out.span());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0x8);
  EXPECT_EQ(frames[0].payload, (std::vector<uint8_t>{0x03, 0xE9}));
  EXPECT_FALSE(transport.established());
  EXPECT_EQ(transport.decode(server_frame(0x82, {1}), plain, wire_out), Status::kClosed);
}

TEST_F(WsClientTest, FramesAClientMustRefuse) {
  const std::vector<std::vector<uint8_t>> bad = {
      {0x82, 0x81, 0, 0, 0, 0, 7},                       // masked server frame
      server_frame(0x81, {'a'}),                         // text
      server_frame(0xC2, {1}),                           // RSV1 without an extension
      server_frame(0x00, {1}),                           // continuation outside a message
      server_frame(0x09, {1}),                           // fragmented ping
      server_frame(0x89, std::vector<uint8_t>(126, 0)),  // long control frame
      server_frame(0x83, {1}),                           // reserved opcode
      {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0},            // 64-bit length with its top bit set
  };
  for (const std::vector<uint8_t>& frame : bad) {
    WsClientHarness fresh;
    ASSERT_EQ(fresh.open(), Status::kOk);
    EXPECT_EQ(fresh.transport.decode(frame, fresh.plain, fresh.wire_out), Status::kError) << int{frame[0]};
    EXPECT_FALSE(fresh.transport.error().empty());
    EXPECT_EQ(fresh.transport.decode(server_frame(0x82, {1}), fresh.plain, fresh.wire_out), Status::kError);
  }
  // A new binary frame inside a fragmented message.
  WsClientHarness fresh;
  ASSERT_EQ(fresh.open(), Status::kOk);
  std::vector<uint8_t> wire = server_frame(0x02, {1});
  std::vector<uint8_t> second = server_frame(0x82, {2});
  wire.insert(wire.end(), second.begin(), second.end());
  EXPECT_EQ(fresh.transport.decode(wire, fresh.plain, fresh.wire_out), Status::kError);
}

TEST_F(WsClientTest, EachMqttPacketGoesInItsOwnMaskedFrame) {
  ASSERT_EQ(open(), Status::kOk);
  base::ByteBuffer packets;
  mqtt::encode_pingreq(packets);
  size_t first = packets.size();
  std::vector<uint8_t> body = pattern(70000);
  mqtt::encode_publish_header(packets, "t", 0, false, false, 0, static_cast<uint32_t>(body.size()));
  packets.append(body.data(), body.size());
  size_t second_end = packets.size();
  mqtt::encode_disconnect(packets);
  ASSERT_EQ(transport.encode(packets.span(), wire_out), Status::kOk);
  std::vector<ClientFrame> frames = client_frames(wire_out.span());
  ASSERT_EQ(frames.size(), 3u);
  std::vector<uint8_t> joined;
  for (const ClientFrame& frame : frames) {
    EXPECT_EQ(frame.opcode, 0x2);
    EXPECT_TRUE(frame.fin);
    joined.insert(joined.end(), frame.payload.begin(), frame.payload.end());
  }
  EXPECT_EQ(frames[0].payload.size(), first);
  EXPECT_EQ(frames[1].payload.size(), second_end - first);
  EXPECT_EQ(joined, std::vector<uint8_t>(packets.data(), packets.data() + packets.size()));
  EXPECT_NE(frames[0].mask, frames[1].mask);  // a fresh mask per frame
  // And the close after them.
  wire_out.clear();
  transport.encode_close(WsClientTransport::kCloseNormal, wire_out);
  frames = client_frames(wire_out.span());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].opcode, 0x8);
  EXPECT_EQ(frames[0].payload, (std::vector<uint8_t>{0x03, 0xE8}));
  EXPECT_EQ(transport.encode(packets.span(), wire_out), Status::kClosed);
}

// An outer layer that passes bytes through, established after it has seen `handshake_bytes`.
class PassThrough final : public transport::Transport {
 public:
  explicit PassThrough(size_t handshake_bytes) : handshake_left_(handshake_bytes) {}
  Status decode(std::span<const uint8_t> wire, base::ByteBuffer& plain, base::ByteBuffer& wire_out) override {
    if (!started_) {
      wire_out.append(bytes_of("HELLO"));
      started_ = true;
    }
    size_t taken = std::min(handshake_left_, wire.size());
    handshake_left_ -= taken;
    plain.append(wire.subspan(taken));
    return Status::kOk;
  }
  Status encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) override {
    wire_out.append(plain);
    return Status::kOk;
  }
  void encode_close(uint16_t, base::ByteBuffer& wire_out) override { wire_out.append(bytes_of("BYE")); }
  bool established() const override { return started_ && handshake_left_ == 0; }
  std::string_view error() const override { return ""; }

 private:
  size_t handshake_left_;
  bool started_ = false;
};

TEST(StackedTransportTest, InnerStartsOnceOuterIsEstablished) {
  StackedTransport stacked(std::make_unique<PassThrough>(3),
                           std::make_unique<WsClientTransport>("h:1", "/mqtt", 7));
  base::ByteBuffer plain;
  base::ByteBuffer wire_out;
  ASSERT_EQ(stacked.decode({}, plain, wire_out), Status::kOk);
  EXPECT_EQ(wire_out.view(), "HELLO");  // the outer handshake only
  wire_out.clear();
  ASSERT_EQ(stacked.decode(bytes_of("abc"), plain, wire_out), Status::kOk);  // outer done
  ASSERT_TRUE(wire_out.view().starts_with("GET /mqtt HTTP/1.1\r\n")) << wire_out.view();
  std::string request(wire_out.view());
  wire_out.clear();
  EXPECT_FALSE(stacked.established());
  std::string response = response_for(request);
  std::vector<uint8_t> frame = server_frame(0x82, {0xD0, 0x00});  // PINGRESP
  response.append(frame.begin(), frame.end());
  ASSERT_EQ(stacked.decode(bytes_of(response), plain, wire_out), Status::kOk) << stacked.error();
  EXPECT_TRUE(stacked.established());
  EXPECT_EQ(plain.size(), 2u);
  base::ByteBuffer packet;
  mqtt::encode_pingreq(packet);
  ASSERT_EQ(stacked.encode(packet.span(), wire_out), Status::kOk);
  std::vector<ClientFrame> frames = client_frames(wire_out.span());
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].payload, (std::vector<uint8_t>{0xC0, 0x00}));
  wire_out.clear();
  stacked.encode_close(1000, wire_out);
  EXPECT_TRUE(wire_out.view().ends_with("BYE"));  // the inner close, then the outer's
  EXPECT_EQ(client_frames(wire_out.span().first(wire_out.size() - 3)).at(0).opcode, 0x8);
}

TEST(StackedTransportTest, InnerErrorIsReported) {
  StackedTransport stacked(std::make_unique<PassThrough>(0),
                           std::make_unique<WsClientTransport>("h:1", "/", 7));
  base::ByteBuffer plain;
  base::ByteBuffer wire_out;
  ASSERT_EQ(stacked.decode({}, plain, wire_out), Status::kOk);
  EXPECT_EQ(stacked.decode(bytes_of("HTTP/1.1 500 Oops\r\n\r\n"), plain, wire_out), Status::kError);
  EXPECT_NE(stacked.error().find("500 Oops"), std::string_view::npos) << stacked.error();
}

}  // namespace
}  // namespace coremq::bench
