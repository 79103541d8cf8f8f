// The payload every benchmark PUBLISH carries: a 32-byte header (magic, run id, publisher
// index, sequence number, CLOCK_MONOTONIC send time) padded with a fixed pattern to --size.
// Subscribers use it to measure latency and to check loss, duplicates and per-publisher
// order. Host byte order: the timestamp is only meaningful on the host that wrote it.
// Pure functions; callable from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "base/assert.h"

namespace coremq::bench {

inline constexpr uint32_t kPayloadMagic = 0x42514d43;  // "CMQB" in memory
inline constexpr size_t kPayloadHeaderBytes = 32;

struct PayloadHeader {
  uint32_t run_id = 0;      // random per process: tells this run's messages from a stale session's
  uint32_t publisher = 0;   // publisher index within the run
  uint64_t sequence = 0;    // 0, 1, 2 ... per publisher
  int64_t send_ns = 0;      // monotonic_ns() when the message was encoded
};

// Writes the header and the padding: exactly `size` bytes (size >= kPayloadHeaderBytes).
inline void write_payload(uint8_t* out, size_t size, const PayloadHeader& header) {
  COREMQ_ASSERT(size >= kPayloadHeaderBytes);
  uint32_t reserved = 0;
  std::memcpy(out, &kPayloadMagic, 4);
  std::memcpy(out + 4, &header.run_id, 4);
  std::memcpy(out + 8, &header.publisher, 4);
  std::memcpy(out + 12, &reserved, 4);
  std::memcpy(out + 16, &header.sequence, 8);
  std::memcpy(out + 24, &header.send_ns, 8);
  // A repeating byte pattern rather than zeros, so compression anywhere on the path gains
  // little and a truncated payload shows.
  for (size_t i = kPayloadHeaderBytes; i < size; ++i) out[i] = static_cast<uint8_t>('a' + i % 26);
}

// False when the payload is too short or does not start with the magic (not ours).
[[nodiscard]] inline bool read_payload(std::string_view payload, PayloadHeader* header) {
  if (payload.size() < kPayloadHeaderBytes) return false;
  uint32_t magic = 0;
  std::memcpy(&magic, payload.data(), 4);
  if (magic != kPayloadMagic) return false;
  std::memcpy(&header->run_id, payload.data() + 4, 4);
  std::memcpy(&header->publisher, payload.data() + 8, 4);
  std::memcpy(&header->sequence, payload.data() + 16, 8);
  std::memcpy(&header->send_ns, payload.data() + 24, 8);
  return true;
}

}  // namespace coremq::bench
