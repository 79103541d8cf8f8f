// TLS client contexts and connections (mqtt-bench, bridges); see tls_client_transport.h. A
// context and its transports run on one thread.
#include "transport/tls_client_transport.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "base/assert.h"
#include "transport/tls_errors.h"

namespace coremq::transport {

namespace {

bool is_ip_literal(const std::string& name) {
  in_addr v4{};
  in6_addr v6{};
  return inet_pton(AF_INET, name.c_str(), &v4) == 1 || inet_pton(AF_INET6, name.c_str(), &v6) == 1;
}

// OpenSSL hands a client each session it may resume (at the end of a TLS 1.2 handshake, with
// each TLS 1.3 NewSessionTicket): the context keeps the latest one for its next connections.
int on_new_session(SSL* ssl, SSL_SESSION* session);

}  // namespace


namespace {

int on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* keeper = static_cast<SSL_SESSION**>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (keeper == nullptr) return 0;
  if (*keeper != nullptr) SSL_SESSION_free(*keeper);
  *keeper = session;
  return 1;  // the reference is ours now
}

}  // namespace

std::unique_ptr<TlsClientContext> TlsClientContext::create(const TlsClientSettings& settings, std::string* error) {
  std::unique_ptr<TlsClientContext> context(new TlsClientContext(settings));
  ERR_clear_error();
  // A library context of its own per worker: OpenSSL 3 serialises algorithm fetches and
  // caches per library context, so workers sharing the default one contend on its locks.
  context->library_ = OSSL_LIB_CTX_new();
  if (context->library_ != nullptr) {
    context->ssl_context_ = SSL_CTX_new_ex(context->library_, nullptr, TLS_client_method());
  }
  SSL_CTX* ssl_context = context->ssl_context_;
  if (ssl_context == nullptr) {
    *error = "cannot make a TLS client context: " + take_openssl_errors();
    return nullptr;
  }
  if (SSL_CTX_set_min_proto_version(ssl_context, settings.version_min) != 1 ||
      SSL_CTX_set_max_proto_version(ssl_context, settings.version_max) != 1) {
    *error = settings.version_name + ": " + take_openssl_errors();
    return nullptr;
  }
  if (settings.insecure) {
    SSL_CTX_set_verify(ssl_context, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(ssl_context, SSL_VERIFY_PEER, nullptr);
    if (!settings.ca_file.empty()) {
      if (SSL_CTX_load_verify_file(ssl_context, settings.ca_file.c_str()) != 1) {
        *error = absl::StrFormat("%s %s: cannot load it: %s", settings.ca_file_name, settings.ca_file,
                                 take_openssl_errors());
        return nullptr;
      }
    } else if (SSL_CTX_set_default_verify_paths(ssl_context) != 1) {
      *error = absl::StrFormat("cannot load the system's CA certificates (give %s): %s", settings.ca_file_name,
                               take_openssl_errors());
      return nullptr;
    }
  }
  if (!settings.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ssl_context, settings.cert_file.c_str()) != 1) {
      *error = absl::StrFormat("%s %s: cannot load it: %s", settings.cert_file_name, settings.cert_file,
                               take_openssl_errors());
      return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(ssl_context, settings.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      *error = absl::StrFormat("%s %s: cannot load it: %s", settings.key_file_name, settings.key_file,
                               take_openssl_errors());
      return nullptr;
    }
    if (SSL_CTX_check_private_key(ssl_context) != 1) {
      *error = absl::StrFormat("%s %s does not belong to %s %s: %s", settings.key_file_name, settings.key_file,
                               settings.cert_file_name, settings.cert_file, take_openssl_errors());
      return nullptr;
    }
  }
  // Many idle connections (mqtt-bench conn): give each one's record buffers back between reads.
  // A publishing run keeps them (freeing and reallocating per read costs throughput).
  if (settings.release_buffers) SSL_CTX_set_mode(ssl_context, SSL_MODE_RELEASE_BUFFERS);
  if (settings.resume) {
    SSL_CTX_set_app_data(ssl_context, &context->session_);
    SSL_CTX_set_session_cache_mode(ssl_context, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ssl_context, on_new_session);
  } else {
    SSL_CTX_set_session_cache_mode(ssl_context, SSL_SESS_CACHE_OFF);
  }
  return context;
}

TlsClientContext::~TlsClientContext() {
  if (session_ != nullptr) SSL_SESSION_free(session_);
  SSL_CTX_free(ssl_context_);
  OSSL_LIB_CTX_free(library_);
}

SSL* TlsClientContext::new_ssl() {
  SSL* ssl = SSL_new(ssl_context_);
  if (ssl == nullptr) return nullptr;
  const std::string& name = settings_.server_name;
  bool ok = true;
  if (!name.empty() && !is_ip_literal(name)) {
    // SNI carries DNS names only (RFC 6066 section 3); an address is checked below instead.
    // SSL_set_tlsext_host_name without its macro's old-style cast.
    ok = SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                  const_cast<char*>(name.c_str())) == 1;
    if (ok && !settings_.insecure) ok = SSL_set1_host(ssl, name.c_str()) == 1;
  } else if (!name.empty() && !settings_.insecure) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
  }
  if (ok && session_ != nullptr) ok = SSL_set_session(ssl, session_) == 1;
  if (!ok) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  return ssl;
}

std::unique_ptr<TlsClientTransport> TlsClientTransport::create(TlsClientContext& context,
                                                               std::string* error) {
  ERR_clear_error();
  SSL* ssl = context.new_ssl();
  if (ssl == nullptr) {
    *error = "cannot make a TLS connection: " + take_openssl_errors();
    return nullptr;
  }
  std::unique_ptr<TlsClientTransport> transport(new TlsClientTransport(ssl, context.settings().verify_hint));
  if (!transport->attach_bio(nullptr)) {
    *error = "cannot make a TLS connection: " + take_openssl_errors();
    return nullptr;  // the transport frees the SSL
  }
  return transport;
}

std::string TlsClientTransport::protocol_and_cipher() const {
  if (!handshake_done()) return {};
  return absl::StrFormat("%s %s", SSL_get_version(ssl()), SSL_get_cipher_name(ssl()));
}

bool TlsClientTransport::resumed() const {
  return handshake_done() && SSL_session_reused(ssl()) == 1;
}

}  // namespace coremq::transport
