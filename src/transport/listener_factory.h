// The TransportFactory of one listener on one shard: TLS sessions from this shard's own
// TlsContext (its own OpenSSL library context and SSL_CTX), WebSocket framers bounded by the
// broker's maximum packet size, or both stacked for wss. Plain MQTT listeners have none.
// Built on the controlling thread at start-up (it reads the certificate files), then used
// only by its shard's thread; a reload builds new ones for new connections.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "coremq/options.h"
#include "transport/factory.h"
#include "transport/tls_context.h"

namespace coremq::transport {

// One OpenSSL library context per shard, made at start-up when some listener has TLS and
// freed only with this object, which the broker destroys after every shard thread has exited.
class ShardLibraryContexts {
 public:
  ShardLibraryContexts() = default;
  ~ShardLibraryContexts();
  ShardLibraryContexts(const ShardLibraryContexts&) = delete;
  ShardLibraryContexts& operator=(const ShardLibraryContexts&) = delete;
  [[nodiscard]] bool make(uint32_t shard_count, std::string* error);
  OSSL_LIB_CTX* get(size_t shard) const { return shard < contexts_.size() ? contexts_[shard] : nullptr; }

 private:
  std::vector<OSSL_LIB_CTX*> contexts_;
};

class ListenerTransportFactory final : public TransportFactory {
 public:
  // Null with *error set when a file or option is wrong; null with *error empty for a plain
  // MQTT listener (it needs no factory). `first_shard`: this listener's factory on shard 0,
  // whose session-ticket keys every other shard shares (null on shard 0 itself).
  // `shard_library_context`: the shard's OpenSSL library context, which the broker keeps for
  // its whole run (see TlsContext::create), so a reload makes only new SSL_CTXs.
  [[nodiscard]] static std::unique_ptr<ListenerTransportFactory> create(
      const ListenerOptions& listener, uint32_t max_packet_size, const ListenerTransportFactory* first_shard,
      OSSL_LIB_CTX* shard_library_context, std::string* error);
  std::unique_ptr<Transport> make() override;

 private:
  ListenerTransportFactory(std::unique_ptr<TlsContext> tls, bool websocket, uint32_t max_packet_size)
      : tls_(std::move(tls)), websocket_(websocket), max_packet_size_(max_packet_size) {}
  std::unique_ptr<TlsContext> tls_;  // null without TLS
  bool websocket_;
  uint32_t max_packet_size_;
};

}  // namespace coremq::transport
