// libFuzzer target for the WebSocket transport (src/transport/websocket_*): the upgrade request
// parser and the frame decoder on arbitrary bytes. Built with ASan + UBSan (tests/fuzz/meson.build);
// a crash, a sanitizer report or a failed COREMQ_ASSERT is a bug.
//
// Input: byte 0 bit 0 set puts a valid upgrade request before the rest, so the frame decoder is
// reached at once (bit 0 clear fuzzes the request itself); bits 1-7 give the size of the reads
// the input is cut into (1 to 128 bytes). Byte 1 is the frame bound (0: 1 MiB, else 8 x byte 1).
// The rest is what the client sends.
//
// Oracles beyond "no crash":
//   - split invariance: the input fed in one read and fed in small reads gives the same status,
//     error, MQTT bytes and answer bytes (the decoder keeps no state that depends on where reads
//     end);
//   - the MQTT bytes out never outnumber the bytes in;
//   - kError comes with a reason, kOk and kClosed without one; once the transport has said kError
//     or kClosed, it keeps saying it and reads and writes nothing more;
//   - the answer is empty while the request is incomplete, starts with a 101 once the handshake
//     succeeded and is a 4xx status when it was refused; kError always answers something;
//   - encode() after an established handshake wraps the bytes in one frame of the right size.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "base/assert.h"
#include "base/byte_buffer.h"
#include "transport/websocket_transport.h"

namespace {

using coremq::base::ByteBuffer;
using coremq::transport::Transport;
using coremq::transport::WebSocketTransport;

constexpr std::string_view kRequest =
    "GET /mqtt HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

struct Outcome {
  Transport::Status status = Transport::Status::kOk;
  ByteBuffer plain;
  ByteBuffer wire_out;
  bool was_established = false;
};

void check_status(const WebSocketTransport& transport, Transport::Status status) {
  COREMQ_ASSERT_MSG((status == Transport::Status::kError) == !transport.error().empty(),
                    "a reason must come with kError and only with it");
  COREMQ_ASSERT(status == Transport::Status::kOk || !transport.established());
}

// Feeds `wire` in reads of `read_size` bytes, stopping at the first status other than kOk.
void run(std::span<const uint8_t> wire, size_t read_size, uint32_t frame_max, Outcome* outcome) {
  WebSocketTransport transport(frame_max);
  size_t fed = 0;
  while (fed < wire.size()) {
    size_t count = wire.size() - fed < read_size ? wire.size() - fed : read_size;
    outcome->status = transport.decode(wire.subspan(fed, count), outcome->plain, outcome->wire_out);
    fed += count;
    check_status(transport, outcome->status);
    COREMQ_ASSERT_MSG(outcome->plain.size() <= fed, "more MQTT bytes out than bytes in");
    outcome->was_established |= transport.established();
    if (outcome->status != Transport::Status::kOk) break;
  }
  if (outcome->status != Transport::Status::kOk) {
    // Ended for good: more input changes nothing.
    size_t plain_size = outcome->plain.size();
    size_t wire_out_size = outcome->wire_out.size();
    Transport::Status again = transport.decode(wire, outcome->plain, outcome->wire_out);
    COREMQ_ASSERT(again == outcome->status);
    COREMQ_ASSERT(outcome->plain.size() == plain_size && outcome->wire_out.size() == wire_out_size);
  }
  // The answer is nothing yet, or a 101 (then frames), or a refusal; an error always says
  // something (an HTTP status or a close frame).
  std::string_view answer = outcome->wire_out.view();
  if (answer.empty()) {
    COREMQ_ASSERT(outcome->status == Transport::Status::kOk && !outcome->was_established);
  } else if (answer.substr(0, 13) != "HTTP/1.1 101 ") {
    COREMQ_ASSERT(answer.substr(0, 10) == "HTTP/1.1 4" && outcome->status == Transport::Status::kError);
    COREMQ_ASSERT(!outcome->was_established);
  }
  if (transport.established()) {
    uint8_t payload[300];
    std::memset(payload, 0x5a, sizeof payload);
    ByteBuffer framed;
    COREMQ_ASSERT(transport.encode(std::span<const uint8_t>(payload, sizeof payload), framed) ==
                  Transport::Status::kOk);
    COREMQ_ASSERT(framed.size() == 4 + sizeof payload);
  }
}

bool same(const ByteBuffer& a, const ByteBuffer& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  bool with_request = (data[0] & 1) != 0;
  size_t read_size = 1 + (data[0] >> 1);
  uint32_t frame_max = data[1] == 0 ? uint32_t{1} << 20 : uint32_t{8} * data[1];
  ByteBuffer wire;
  if (with_request) wire.append(kRequest);
  wire.append(data + 2, size - 2);

  Outcome whole;
  run(wire.span(), wire.size() + 1, frame_max, &whole);
  Outcome pieces;
  run(wire.span(), read_size, frame_max, &pieces);
  COREMQ_ASSERT_MSG(whole.status == pieces.status, "status depends on where reads end");
  COREMQ_ASSERT_MSG(same(whole.plain, pieces.plain), "MQTT bytes depend on where reads end");
  COREMQ_ASSERT_MSG(same(whole.wire_out, pieces.wire_out), "answers depend on where reads end");
  return 0;
}
