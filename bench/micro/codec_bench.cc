// Micro benchmarks of the MQTT codec on the publish hot path.
//
// BM_DecodePublish64: frame and decode one 64-byte MQTT 3.1.1 QoS 1 PUBLISH (fixed header, UTF-8
//   check of a 26-byte topic, packet id, payload view) from a receive buffer into a PublishPacket
//   that is reused from packet to packet, as the broker's hot path should. Expected: ~10-30 ns per
//   packet on a current x86 core, i.e. tens of millions of packets per second per core. The UTF-8
//   check of the topic (eight ASCII bytes per step) is about a quarter of it.
// BM_DecodePublish64FreshPacket: the same with a PublishPacket constructed for every packet. Its
//   MQTT 5 Properties make the struct ~370 bytes, which the compiler zeroes (rep stos on x86-64)
//   at a cost of the same order as the decode itself: ~10-20 ns more. That is why the hot path
//   should reuse one.
// BM_DecodePublishV5_64: a 64-byte MQTT 5 QoS 1 PUBLISH with a Message Expiry Interval and a
//   2-byte Content Type, decoded into a reused PublishPacket: the property block (which resets the
//   Properties, checks the UTF-8 of the content type) adds ~10-30 ns to the 3.1.1 decode.
// BM_EncodePublishHeader64: write the fixed and variable header of the 3.1.1 packet into a
//   warmed-up ByteBuffer (no allocation after the first iteration). Expected: ~3-10 ns.
// BM_EncodePublishHeaderV5_64: the same for the MQTT 5 packet, property bytes given. ~3-10 ns.
// BM_Utf8Topic: is_valid_utf8_string alone on the topic, to show what share of the decode it costs.
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "base/byte_buffer.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/properties.h"

namespace coremq::mqtt {
namespace {

constexpr std::string_view kTopic = "sensors/room-1/temperature";
constexpr size_t kPacketSize = 64;
// 2 fixed header + 2 topic length + 26 topic + 2 packet id = 32 bytes before the payload.
constexpr size_t kPayloadSize = kPacketSize - 2 - 2 - kTopic.size() - 2;

// MQTT 5 properties of the v5 packet: Message Expiry Interval (5 bytes) and Content Type "js" (5).
constexpr uint8_t kPropertyBytesV5[] = {0x02, 0, 0, 0x0E, 0x10, 0x03, 0, 2, 'j', 's'};
// One Property Length byte and the properties come out of the payload, to keep the packet 64 bytes.
constexpr size_t kPayloadSizeV5 = kPayloadSize - 1 - sizeof(kPropertyBytesV5);

std::string_view payload_of(size_t size) {
  static const std::string payload(kPacketSize, 'x');
  return std::string_view(payload).substr(0, size);
}

// Frames and decodes `packet` once per iteration into `publish` (fresh when `fresh_packet`).
void run_decode(benchmark::State& state, const base::ByteBuffer& packet, ProtocolVersion version,
                bool fresh_packet) {
  if (packet.size() != kPacketSize) {
    state.SkipWithError("packet is not 64 bytes");
    return;
  }
  PublishPacket reused;
  for (auto _ : state) {
    std::span<const uint8_t> bytes = packet.span();
    benchmark::DoNotOptimize(bytes);
    FixedHeader header{};
    if (parse_fixed_header(bytes, 1 << 20, &header) != FrameStatus::kComplete) state.SkipWithError("frame");
    if (fresh_packet) {
      PublishPacket publish;
      const DecodeStatus status =
          decode_publish(bytes.subspan(header.header_length), header.flags, version, &publish);
      benchmark::DoNotOptimize(status);
      benchmark::DoNotOptimize(publish);
    } else {
      const DecodeStatus status =
          decode_publish(bytes.subspan(header.header_length), header.flags, version, &reused);
      benchmark::DoNotOptimize(status);
      benchmark::DoNotOptimize(reused);
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kPacketSize));
}

void BM_DecodePublish64(benchmark::State& state) {
  base::ByteBuffer packet;
  encode_publish(packet, PublishPacket{kTopic, payload_of(kPayloadSize), 1, false, false, 42});
  run_decode(state, packet, ProtocolVersion::kV311, /*fresh_packet=*/false);
}
BENCHMARK(BM_DecodePublish64);

void BM_DecodePublish64FreshPacket(benchmark::State& state) {
  base::ByteBuffer packet;
  encode_publish(packet, PublishPacket{kTopic, payload_of(kPayloadSize), 1, false, false, 42});
  run_decode(state, packet, ProtocolVersion::kV311, /*fresh_packet=*/true);
}
BENCHMARK(BM_DecodePublish64FreshPacket);

void BM_DecodePublishV5_64(benchmark::State& state) {
  base::ByteBuffer packet;
  encode_publish(packet, PublishPacket{kTopic, payload_of(kPayloadSizeV5), 1, false, false, 42},
                 ProtocolVersion::kV5, kPropertyBytesV5);
  run_decode(state, packet, ProtocolVersion::kV5, /*fresh_packet=*/false);
}
BENCHMARK(BM_DecodePublishV5_64);

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

void BM_EncodePublishHeaderV5_64(benchmark::State& state) {
  base::ByteBuffer out;
  out.reserve(256);
  for (auto _ : state) {
    out.clear();
    encode_publish_header_v5(out, kTopic, 1, false, false, 42, kPropertyBytesV5, kPayloadSizeV5);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_EncodePublishHeaderV5_64);

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
