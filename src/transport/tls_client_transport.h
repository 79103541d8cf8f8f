// The client side of TLS, shared by mqtt-bench (--tls) and the broker's bridges (bridge_cafile
// ...): TlsClientContext is one thread's OpenSSL library context and SSL_CTX (CA, client
// certificate, protocol versions, the session kept for resumption), and TlsClientTransport one
// connection's SSL behind the Transport interface of transport.h. Sans-I/O: OpenSSL reads the
// bytes the caller received and writes its records straight into the caller's buffers through a
// BIO over them (call_bio.h), so it never touches a socket and never blocks.
// Threads: a context and every transport made from it belong to one thread (an mqtt-bench
// worker, a broker shard); a transport never outlives its context. Making a context reads files:
// the broker makes its bridges' contexts before the shards start.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/byte_buffer.h"
#include "transport/tls_session.h"

typedef struct ossl_lib_ctx_st OSSL_LIB_CTX;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

namespace coremq::transport {

// What a client context checks and presents. The *_name fields are how errors name each
// setting to the user ("--cafile" for mqtt-bench, "bridge_cafile" for a bridge).
struct TlsClientSettings {
  std::string ca_file;    // empty: the system's default CA paths
  std::string cert_file;  // client certificate chain (PEM); empty: none
  std::string key_file;   // its key (PEM)
  bool insecure = false;  // check neither the chain nor the name
  int version_min = 0;    // OpenSSL's TLS1_2_VERSION, TLS1_3_VERSION; 0 = no bound
  int version_max = 0;
  // SNI (when a DNS name) and the name or address the certificate must carry; empty: unchecked.
  std::string server_name;
  bool resume = false;           // keep the latest session and resume it on new connections
  bool release_buffers = false;  // SSL_MODE_RELEASE_BUFFERS (many idle connections)
  std::string ca_file_name = "--cafile";
  std::string cert_file_name = "--cert";
  std::string key_file_name = "--key";
  std::string version_name = "--tls-version";
  std::string verify_hint = "--cafile, --tls-server-name or --tls-insecure";
};

class TlsClientContext {
 public:
  // Loads the CA file (or the system's default CA paths), the client certificate and key, and
  // sets the protocol versions. Null with a message naming the file on any error.
  static std::unique_ptr<TlsClientContext> create(const TlsClientSettings& settings, std::string* error);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  // A new client SSL with SNI, the host name check and (with --tls-resume) the kept session.
  // Null when OpenSSL is out of memory.
  SSL* new_ssl();
  const TlsClientSettings& settings() const { return settings_; }

 private:
  explicit TlsClientContext(const TlsClientSettings& settings) : settings_(settings) {}

  const TlsClientSettings settings_;
  OSSL_LIB_CTX* library_ = nullptr;
  SSL_CTX* ssl_context_ = nullptr;
  // --tls-resume: the latest session the broker gave (set by OpenSSL's new-session callback).
  SSL_SESSION* session_ = nullptr;
};

// One client connection: the record layer is TlsSession's (tls_session.h).
class TlsClientTransport final : public TlsSession {
 public:
  // Null with a message when OpenSSL cannot make the connection (out of memory).
  static std::unique_ptr<TlsClientTransport> create(TlsClientContext& context, std::string* error);

  bool established() const override { return open() && handshake_done(); }

  // After the handshake: "TLSv1.3 TLS_AES_256_GCM_SHA384", and whether a kept session was
  // resumed.
  std::string protocol_and_cipher() const;
  bool resumed() const;

 private:
  TlsClientTransport(SSL* ssl, std::string verify_hint) : TlsSession(ssl, std::move(verify_hint)) {}
};

}  // namespace coremq::transport
