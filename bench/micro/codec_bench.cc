// Micro benchmarks of the MQTT codec on the publish hot path.
//
// BM_DecodePublish64: frame and decode one 64-byte QoS 1 PUBLISH (fixed header, UTF-8 check of a
//   26-byte topic, packet id, payload view) from a receive buffer. Expected: ~10-30 ns per packet
//   on a current x86 core, i.e. tens of millions of packets per second per core. The UTF-8 check
//   of the topic (eight ASCII bytes per step) is about a quarter of it.
// BM_EncodePublishHeader64: write the fixed and variable header of the same packet into a warmed-up
//   ByteBuffer (no allocation after the first iteration). Expected: ~3-10 ns.
// BM_Utf8Topic: is_valid_utf8_string alone on the topic, to show what share of the decode it costs.
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "base/byte_buffer.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"

namespace coremq::mqtt {
namespace {

constexpr std::string_view kTopic = "sensors/room-1/temperature";
constexpr size_t kPacketSize = 64;
// 2 fixed header + 2 topic length + 26 topic + 2 packet id = 32 bytes before the payload.
constexpr size_t kPayloadSize = kPacketSize - 2 - 2 - kTopic.size() - 2;

void BM_DecodePublish64(benchmark::State& state) {
  const std::string payload(kPayloadSize, 'x');
  base::ByteBuffer packet;
  encode_publish(packet, PublishPacket{kTopic, payload, 1, false, false, 42});
  if (packet.size() != kPacketSize) {
    state.SkipWithError("packet is not 64 bytes");
    return;
  }
  for (auto _ : state) {
    std::span<const uint8_t> bytes = packet.span();
    benchmark::DoNotOptimize(bytes);
    FixedHeader header{};
    if (parse_fixed_header(bytes, 1 << 20, &header) != FrameStatus::kComplete) state.SkipWithError("frame");
    PublishPacket publish;
    const DecodeStatus status =
        decode_publish(bytes.subspan(header.header_length), header.flags, ProtocolVersion::kV311, &publish);
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(publish);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kPacketSize));
}
BENCHMARK(BM_DecodePublish64);

void BM_EncodePublishHeader64(benchmark::State& state) {
  base::ByteBuffer out;
  out.reserve(256);
  for (auto _ : state) {
    out.clear();
    encode_publish_header(out, kTopic, 1, false, false, 42, kPayloadSize);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_EncodePublishHeader64);

void BM_Utf8Topic(benchmark::State& state) {
  std::string_view topic = kTopic;
  for (auto _ : state) {
    benchmark::DoNotOptimize(topic);
    benchmark::DoNotOptimize(is_valid_utf8_string(topic));
  }
}
BENCHMARK(BM_Utf8Topic);

}  // namespace
}  // namespace coremq::mqtt
