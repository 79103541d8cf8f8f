#include "transport/listener_factory.h"

#include <openssl/crypto.h>

#include "base/log.h"
#include "transport/stacked_transport.h"
#include "transport/tls_transport.h"
#include "transport/websocket_transport.h"

namespace coremq::transport {

ShardLibraryContexts::~ShardLibraryContexts() {
  for (OSSL_LIB_CTX* context : contexts_) OSSL_LIB_CTX_free(context);
}

bool ShardLibraryContexts::make(uint32_t shard_count, std::string* error) {
  while (contexts_.size() < shard_count) {
    OSSL_LIB_CTX* context = OSSL_LIB_CTX_new();
    if (context == nullptr) {
      *error = "cannot make an OpenSSL library context (out of memory)";
      return false;
    }
    contexts_.push_back(context);
  }
  return true;
}

std::unique_ptr<ListenerTransportFactory> ListenerTransportFactory::create(
    const ListenerOptions& listener, uint32_t max_packet_size, const ListenerTransportFactory* first_shard,
    OSSL_LIB_CTX* shard_library_context, std::string* error) {
  error->clear();
  bool websocket = listener.transport == ListenerOptions::Transport::kWebSockets;
  if (!listener.tls && !websocket) return nullptr;
  std::unique_ptr<TlsContext> tls;
  if (listener.tls) {
    tls = TlsContext::create(listener.tls_options, error, shard_library_context);
    if (tls == nullptr) return nullptr;
    if (first_shard != nullptr && first_shard->tls_ != nullptr &&
        !tls->use_ticket_keys_of(*first_shard->tls_)) {
      LOG_WARNING("TLS session tickets of port %u stay per shard: OpenSSL refused to share their keys",
                  listener.port);
    }
  }
  return std::unique_ptr<ListenerTransportFactory>(
      new ListenerTransportFactory(std::move(tls), websocket, max_packet_size));
}

std::unique_ptr<Transport> ListenerTransportFactory::make() {
  std::unique_ptr<Transport> tls;
  if (tls_ != nullptr) {
    std::string error;
    tls = TlsTransport::create(*tls_, &error);
    if (tls == nullptr) {
      // Out of memory inside OpenSSL: the connection is refused (see Shard::attach_channel).
      LOG_WARNING_LIMITED("no TLS session for a new connection: %s", error);
      return nullptr;
    }
  }
  if (!websocket_) return tls;
  auto framing = std::make_unique<WebSocketTransport>(max_packet_size_);
  if (tls == nullptr) return framing;
  return std::make_unique<StackedTransport>(std::move(tls), std::move(framing));
}

}  // namespace coremq::transport
