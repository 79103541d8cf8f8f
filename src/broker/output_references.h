// Large payloads a plain-TCP connection sends straight from their Message instead of a copy
// in its output buffer. A fan-out of a 64 KiB message to 100 subscribers then costs the
// kernel's copy into each socket and no copy of ours: the output buffer holds the headers,
// and the send gathers headers and payloads with one sendmsg (src/shard/shard_output.cc).
// Made on a connection's first large payload and dropped with the connection; written by
// ShardState (delivery.cc) and read by the shard loop, both on the owning shard's thread.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "broker/message.h"

namespace coremq::broker {

// Payloads one connection may have staged by reference for one send: a send gathers at most
// 2 * this + 1 pieces, under the kernel's UIO_MAXIOV (1024). Past it payloads are copied.
inline constexpr size_t kPayloadReferencesPerSendMax = 256;

// One payload of the logical byte stream: it goes `offset` bytes into the buffer it belongs
// to (Connection::output while gathered, Connection::sending once given to the kernel), right
// after the header bytes written before it.
struct PayloadReference {
  uint32_t offset = 0;
  MessageRef message;
};

struct OutputReferences {
  // Gathered this turn, in the order of their offsets into Connection::output.
  std::vector<PayloadReference> pending;
  uint64_t pending_bytes = 0;
  // The send the kernel has (or, after a short send, the rest to send before anything
  // gathered since): its payloads by offset into Connection::sending, and how much of it
  // went out already.
  std::vector<PayloadReference> sending;
  uint64_t sending_bytes = 0;
  uint64_t sent = 0;
  // The gather list and message header of the send in the kernel: they must stay put until
  // its completion (io_uring reads them when the send is issued, which may be later).
  std::vector<iovec> gather;
  msghdr header{};

  bool idle() const { return pending.empty() && sending.empty(); }
};

}  // namespace coremq::broker
