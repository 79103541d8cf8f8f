// Every bound of mqtt-bench, in one place. The load tool must itself stay bounded in memory and
// time whatever the broker does, so each queue, buffer and count it keeps has its limit here.
// Constants only; included from any thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace coremq::bench {

inline constexpr uint32_t kThreadsMax = 256;
// Descriptors besides the clients' sockets: io_uring rings, standard streams, /proc files, the
// --json file and what OpenSSL opens.
inline constexpr uint32_t kDescriptorsReserved = 64;
inline constexpr uint32_t kClientsMax = 1'000'000;          // connections of all roles in one process
inline constexpr uint32_t kClientsTotalMax = 64'000'000;    // one role over all --process-count processes
inline constexpr uint32_t kPayloadBytesMax = 1024 * 1024;   // --size
inline constexpr uint32_t kWindowMax = 65'000;              // QoS 1/2 packet identifiers are 16 bits
inline constexpr uint64_t kPairsMax = 50'000'000;           // publisher x subscriber matches checked in `run`
// --scenario shared: messages whose exactly-once delivery across the group is checked, one bit
// each (8 MiB); later ones are delivered and counted as untracked.
inline constexpr uint64_t kSharedTrackedBitsMax = uint64_t{1} << 26;
inline constexpr uint32_t kTrackedPublishersMax = 1'000'000;  // distinct publishers one subscriber tracks

// Output staged on one connection before its publisher pauses until the socket drains: the
// tool never queues more than this per connection, however slow the broker reads.
inline constexpr size_t kStagedBytesMax = 256 * 1024;
// Messages one publisher encodes per loop turn, so one fast publisher cannot starve the rest
// of its thread.
inline constexpr uint32_t kPublishesPerTurnMax = 256;
// TCP handshakes one thread keeps in progress at once when --connect-rate is 0, so a burst
// of thousands of connects does not overflow the broker's listen backlog.
inline constexpr uint32_t kConnectsInFlightMax = 128;

inline constexpr uint32_t kRingEntries = 4096;
inline constexpr uint32_t kReceiveBufferCount = 1024;       // provided buffers per thread
inline constexpr uint32_t kReceiveBufferBytes = 16 * 1024;
// The largest packet accepted from the broker: a full-size PUBLISH with a long topic.
inline constexpr uint32_t kIncomingPacketBytesMax = kPayloadBytesMax + 70 * 1024;

// The longest WebSocket upgrade response (status line and headers) a client reads before it
// gives up on the connection (an error, counted and reported like any other); mosquitto's
// is about 150 bytes.
inline constexpr uint32_t kWebSocketResponseBytesMax = 4096;

inline constexpr size_t kErrorMessagesMax = 16;  // kept per thread; the rest are only counted

}  // namespace coremq::bench
