// The TransportFactory of one listener on one shard: TLS sessions from this shard's own
// TlsContext (its own OpenSSL library context and SSL_CTX), WebSocket framers bounded by the
// broker's maximum packet size, or both stacked for wss. Plain MQTT listeners have none.
// Built on the controlling thread at start-up (it reads the certificate files), then used
// only by its shard's thread; a reload builds new ones for new connections.
#pragma once

#include <memory>
#include <string>

#include "coremq/options.h"
#include "transport/factory.h"
#include "transport/tls_context.h"

namespace coremq::transport {

class ListenerTransportFactory final : public TransportFactory {
 public:
  // Null with *error set when a file or option is wrong; null with *error empty for a plain
  // MQTT listener (it needs no factory). `first_shard`: this listener's factory on shard 0,
  // whose session-ticket keys every other shard shares (null on shard 0 itself).
  [[nodiscard]] static std::unique_ptr<ListenerTransportFactory> create(const ListenerOptions& listener,
                                                                        uint32_t max_packet_size,
                                                                        const ListenerTransportFactory* first_shard,
                                                                        std::string* error);
  std::unique_ptr<Transport> make() override;

 private:
  ListenerTransportFactory(std::unique_ptr<TlsContext> tls, bool websocket, uint32_t max_packet_size)
      : tls_(std::move(tls)), websocket_(websocket), max_packet_size_(max_packet_size) {}
  std::unique_ptr<TlsContext> tls_;  // null without TLS
  bool websocket_;
  uint32_t max_packet_size_;
};

}  // namespace coremq::transport
