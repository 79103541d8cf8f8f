// TlsTransport: OpenSSL's server state machine behind the Transport interface, fed through a
// BIO over the caller's buffers. See tls_transport.h for the threading and bounds.
#include "transport/tls_transport.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "base/assert.h"
#include "transport/tls_errors.h"

namespace coremq::transport {


std::unique_ptr<TlsTransport> TlsTransport::create(const TlsContext& context, std::string* error) {
  SSL* ssl = context.new_ssl();
  if (ssl == nullptr) {
    *error = "cannot make a TLS connection: " + take_openssl_errors();
    return nullptr;
  }
  std::unique_ptr<TlsTransport> transport(new TlsTransport(ssl, context.share()));
  if (!transport->attach_bio(context.library_context())) {
    *error = "cannot make a TLS connection: " + take_openssl_errors();
    return nullptr;  // the transport frees the SSL
  }
  SSL_set_accept_state(ssl);
  return transport;
}

TlsTransport::TlsTransport(SSL* ssl, TlsContext::LibraryRef library)
    : TlsSession(ssl, /*verify_hint=*/{}), library_(std::move(library)) {}

TlsTransport::~TlsTransport() {
  // Before library_ drops its reference: the SSL uses the SSL_CTX and library context.
  free_ssl();
}

std::string_view TlsTransport::protocol_version() const {
  return handshake_done() ? std::string_view(SSL_get_version(ssl())) : std::string_view();
}

void TlsTransport::on_handshake_done() {
  const TlsOptions& options = library_->options();
  if (!options.use_identity_as_username && !options.use_subject_as_username) return;
  X509* certificate = SSL_get0_peer_certificate(ssl());  // a resumed session keeps its peer's
  if (certificate == nullptr) return;
  X509_NAME* subject = X509_get_subject_name(certificate);
  if (options.use_identity_as_username) {
    int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index < 0) return;
    const ASN1_STRING* common_name = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    const auto* bytes = reinterpret_cast<const char*>(ASN1_STRING_get0_data(common_name));
    auto length = static_cast<size_t>(ASN1_STRING_length(common_name));
    // Mosquitto takes the CN's bytes as they are and refuses one with a NUL inside (a
    // certificate for "admin\0.evil.example" must not become "admin").
    if (std::memchr(bytes, 0, length) != nullptr) return;
    username_.assign(bytes, length);
    return;
  }
  BIO* text = BIO_new_ex(library_->library_context(), BIO_s_mem());
  if (text == nullptr) return;
  if (X509_NAME_print_ex(text, subject, 0, XN_FLAG_RFC2253) >= 0) {
    char* data = nullptr;
    long length = BIO_get_mem_data(text, &data);
    if (length > 0) username_.assign(data, static_cast<size_t>(length));
  }
  BIO_free(text);
  ERR_clear_error();
}

}  // namespace coremq::transport
