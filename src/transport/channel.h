// What a connection on a TLS or WebSocket listener carries besides a plain one: its
// Transport and the wire bytes that transport produced while decoding (handshake records,
// pongs, close answers), which go out ahead of the next encoded output. Plain TCP
// connections hold none (Connection::channel is null), so an idle plain fleet pays 8 bytes.
// Single-threaded: owned by one Connection on one shard; moves with it on a hand-off.
#pragma once

#include <memory>

#include "base/byte_buffer.h"
#include "transport/transport.h"

namespace coremq::transport {

struct Channel {
  std::unique_ptr<Transport> transport;
  base::ByteBuffer wire_pending;
};

}  // namespace coremq::transport
