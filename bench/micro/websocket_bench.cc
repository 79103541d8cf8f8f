// Micro benchmarks of the WebSocket transport's data path (src/transport/websocket_transport.h).
//
// BM_WebSocketDecode1MiB/<read bytes>: one masked 1 MiB binary frame, as a browser sends a large
//   PUBLISH, handed to decode() in reads of the given size (16 KiB: what the shard's provided
//   buffers deliver; 1 MiB: all at once) and unmasked into the MQTT byte stream, whose buffer is
//   reused. Expected: several GB/s, the order of memcpy, since unmasking is eight bytes per XOR;
//   this is the extra cost WebSocket puts on each received byte against plain TCP.
// BM_WebSocketEncode1MiB: wrap 1 MiB in one server frame (header + copy). Expected: memcpy speed.
// BM_Memcpy1MiB: the baseline both are measured against.
#include <benchmark/benchmark.h>

#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "base/assert.h"
#include "base/byte_buffer.h"
#include "transport/websocket_transport.h"

namespace coremq::transport {
namespace {

constexpr size_t kPayloadBytes = size_t{1} << 20;
constexpr std::string_view kRequest =
    "GET /mqtt HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";

std::vector<uint8_t> masked_frame(size_t payload_bytes) {
  std::vector<uint8_t> frame = {0x82, 0x80 | 127};
  for (int i = 7; i >= 0; --i) frame.push_back(static_cast<uint8_t>(payload_bytes >> (8 * i)));
  const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
  frame.insert(frame.end(), mask, mask + 4);
  for (size_t i = 0; i < payload_bytes; ++i) frame.push_back(static_cast<uint8_t>(i * 13) ^ mask[i % 4]);
  return frame;
}

// A transport past its handshake.
void open(WebSocketTransport& transport) {
  base::ByteBuffer plain;
  base::ByteBuffer wire_out;
  auto request = std::span(reinterpret_cast<const uint8_t*>(kRequest.data()), kRequest.size());
  COREMQ_ASSERT(transport.decode(request, plain, wire_out) == Transport::Status::kOk);
  COREMQ_ASSERT(transport.established());
}

void BM_WebSocketDecode1MiB(benchmark::State& state) {
  size_t read_bytes = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> frame = masked_frame(kPayloadBytes);
  WebSocketTransport transport(kPayloadBytes + 16);
  open(transport);
  base::ByteBuffer plain;
  base::ByteBuffer wire_out;
  for (auto _ : state) {
    plain.clear();
    std::span<const uint8_t> wire(frame);
    while (!wire.empty()) {
      size_t count = wire.size() < read_bytes ? wire.size() : read_bytes;
      if (transport.decode(wire.subspan(0, count), plain, wire_out) != Transport::Status::kOk) {
        state.SkipWithError("decode failed");
        return;
      }
      wire = wire.subspan(count);
    }
    benchmark::DoNotOptimize(plain.data());
  }
  COREMQ_ASSERT(plain.size() == kPayloadBytes && plain.data()[5] == static_cast<uint8_t>(5 * 13));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kPayloadBytes));
}
BENCHMARK(BM_WebSocketDecode1MiB)->Arg(16 << 10)->Arg(1 << 20);

void BM_WebSocketEncode1MiB(benchmark::State& state) {
  std::vector<uint8_t> payload(kPayloadBytes, 0x5a);
  WebSocketTransport transport(kPayloadBytes + 16);
  open(transport);
  base::ByteBuffer wire_out;
  for (auto _ : state) {
    wire_out.clear();
    if (transport.encode(payload, wire_out) != Transport::Status::kOk) {
      state.SkipWithError("encode failed");
      return;
    }
    benchmark::DoNotOptimize(wire_out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kPayloadBytes));
}
BENCHMARK(BM_WebSocketEncode1MiB);

void BM_Memcpy1MiB(benchmark::State& state) {
  std::vector<uint8_t> from(kPayloadBytes, 0x5a);
  std::vector<uint8_t> to(kPayloadBytes);
  for (auto _ : state) {
    std::memcpy(to.data(), from.data(), kPayloadBytes);
    benchmark::DoNotOptimize(to.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kPayloadBytes));
}
BENCHMARK(BM_Memcpy1MiB);

}  // namespace
}  // namespace coremq::transport
