// Makes the Transport of each connection accepted on one listener of one shard: a TLS
// session from the shard's own SSL_CTX, a WebSocket framer, or both stacked. A listener
// without TLS or WebSocket has no factory (its connections carry no channel at all).
// Built on the main thread at start-up, then used only by its shard's thread.
#pragma once

#include <memory>

#include "transport/transport.h"

namespace coremq::transport {

class TransportFactory {
 public:
  virtual ~TransportFactory() = default;
  virtual std::unique_ptr<Transport> make() = 0;
};

}  // namespace coremq::transport
