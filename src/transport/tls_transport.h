// TLS server side of one connection as a sans-I/O Transport (transport.h): the shard feeds
// it the bytes it read and sends what it writes; OpenSSL never sees a socket. The record layer
// (decode, encode, close, errors, bounds) is TlsSession's (tls_session.h); this adds how the
// SSL is made from a listener's context and the certificate username. Between calls the
// connection holds no I/O buffer (with SSL_MODE_RELEASE_BUFFERS OpenSSL also gives back its
// record buffers when idle).
//
// Threads: one connection on one shard at a time. It is made on the shard that accepted the
// connection (from that shard's TlsContext), may be handed with its connection to the client
// id's owner shard after the handshake, and is then used and destroyed there; it keeps its
// context's OpenSSL objects alive through a counted reference (tls_context.h). OpenSSL's error
// queue is per thread: every call clears it first and drains it after, so nothing carries over
// from one connection to another.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "transport/tls_context.h"
#include "transport/tls_session.h"

namespace coremq::transport {

class TlsTransport final : public TlsSession {
 public:
  // A transport for a newly accepted connection on `context`'s listener. Null with `error`
  // set only when OpenSSL cannot allocate.
  [[nodiscard]] static std::unique_ptr<TlsTransport> create(const TlsContext& context, std::string* error);
  ~TlsTransport() override;

  // The handshake finished (stays true after a close or error that followed it).
  bool established() const override { return handshake_done(); }
  // Set at the end of the handshake: with use_identity_as_username the first subject CN of
  // the client certificate, with use_subject_as_username the whole subject in RFC 2253 form
  // (as Mosquitto prints it: X509_NAME_print_ex with XN_FLAG_RFC2253, "CN=dev1,O=Acme,C=NL").
  // Empty without a client certificate, without either option, or when the CN holds a NUL
  // byte (Mosquitto refuses those); the broker must then refuse a listener that wants a
  // certificate username.
  std::string_view certificate_username() const override { return username_; }

  // The negotiated protocol ("TLSv1.3", "TLSv1.2"), for logs; empty before the handshake ends.
  std::string_view protocol_version() const;

 private:
  TlsTransport(SSL* ssl, TlsContext::LibraryRef library);
  void on_handshake_done() override;

  TlsContext::LibraryRef library_;  // outlives the SSL (freed first in the destructor)
  std::string username_;
};

}  // namespace coremq::transport
