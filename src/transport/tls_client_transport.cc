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

namespace coremq::transport {

namespace {

// Every queued OpenSSL error as one line, oldest first; clears the queue.
std::string take_openssl_errors() {
  std::string text;
  char line[256];
  for (unsigned long code = ERR_get_error(); code != 0; code = ERR_get_error()) {
    ERR_error_string_n(code, line, sizeof(line));
    if (!text.empty()) text += "; ";
    text += line;
  }
  return text.empty() ? std::string("no OpenSSL error queued") : text;
}

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
  // The transport lives on the heap and never moves, so the BIO may point at its window.
  BIO* bio = new_call_bio(nullptr, &transport->window_);
  if (bio == nullptr) {
    *error = "cannot make a TLS connection: " + take_openssl_errors();
    return nullptr;  // the transport frees the SSL
  }
  SSL_set_bio(ssl, bio, bio);  // one BIO both ways: the SSL takes its one reference
  return transport;
}

TlsClientTransport::~TlsClientTransport() {
  SSL_free(ssl_);
}

Transport::Status TlsClientTransport::decode(std::span<const uint8_t> wire,
                                                        base::ByteBuffer& plain, base::ByteBuffer& wire_out) {
  if (state_ == State::kError) return Status::kError;
  if (state_ == State::kClosed) return Status::kClosed;
  window_.input = wire.data();
  window_.input_size = wire.size();
  window_.output = &wire_out;
  Status status = drive(plain);
  // kOk means OpenSSL asked for more input, which it does only once the BIO has none left.
  COREMQ_ASSERT(status != Status::kOk || window_.input_size == 0);
  window_.input = nullptr;
  window_.input_size = 0;
  window_.output = nullptr;
  return status;
}

Transport::Status TlsClientTransport::drive(base::ByteBuffer& plain) {
  ERR_clear_error();
  if (!handshake_done_) {
    int result = SSL_do_handshake(ssl_);
    if (result != 1) {
      int ssl_error = SSL_get_error(ssl_, result);
      if (ssl_error == SSL_ERROR_WANT_READ) return Status::kOk;
      return fail(ssl_error);
    }
    handshake_done_ = true;
  }
  return read_records(plain);
}

Transport::Status TlsClientTransport::read_records(base::ByteBuffer& plain) {
  // Decrypt straight into `plain` (no bounce buffer): room for one record, then trimmed.
  constexpr size_t kRecordBytesMax = 16384;
  for (;;) {
    size_t before = plain.size();
    uint8_t* at = plain.grow(kRecordBytesMax);
    size_t count = 0;
    int result = SSL_read_ex(ssl_, at, kRecordBytesMax, &count);
    plain.truncate(before + (result == 1 ? count : 0));
    if (result == 1) continue;
    int ssl_error = SSL_get_error(ssl_, result);
    if (ssl_error == SSL_ERROR_WANT_READ) return Status::kOk;
    if (ssl_error == SSL_ERROR_ZERO_RETURN) {
      // The broker's close_notify: answer with ours, then nothing more flows.
      state_ = State::kClosed;
      if (!close_sent_) {
        SSL_shutdown(ssl_);
        close_sent_ = true;
      }
      ERR_clear_error();
      return Status::kClosed;
    }
    return fail(ssl_error);
  }
}

Transport::Status TlsClientTransport::fail(int ssl_error) {
  state_ = State::kError;
  if (ssl_error == SSL_ERROR_SSL) {
    error_ = take_openssl_errors();
    long verify_result = SSL_get_verify_result(ssl_);
    // "certificate verify failed" alone does not say which check failed: add the reason.
    if (verify_result != X509_V_OK && error_.find("certificate verify failed") != std::string::npos) {
      error_ += absl::StrFormat(": %s (%s)", X509_verify_cert_error_string(verify_result), verify_hint_);
    }
  } else {
    error_ = absl::StrFormat("TLS error %d: %s", ssl_error, take_openssl_errors());
  }
  return Status::kError;
}

Transport::Status TlsClientTransport::encode(std::span<const uint8_t> plain,
                                                        base::ByteBuffer& wire_out) {
  COREMQ_ASSERT(handshake_done_);
  if (state_ == State::kError) return Status::kError;
  if (state_ == State::kClosed || close_sent_) return Status::kClosed;
  window_.output = &wire_out;
  ERR_clear_error();
  Status status = Status::kOk;
  // The BIO never blocks, so each SSL_write_ex takes everything it is given.
  while (!plain.empty()) {
    size_t written = 0;
    int result = SSL_write_ex(ssl_, plain.data(), plain.size(), &written);
    if (result != 1) {
      status = fail(SSL_get_error(ssl_, result));
      break;
    }
    plain = plain.subspan(written);
  }
  window_.output = nullptr;
  return status;
}

void TlsClientTransport::encode_close(uint16_t, base::ByteBuffer& wire_out) {
  // OpenSSL forbids SSL_shutdown during the handshake or after a fatal error.
  if (!handshake_done_ || state_ != State::kOpen || close_sent_) return;
  window_.output = &wire_out;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
  window_.output = nullptr;
  close_sent_ = true;
}

std::string TlsClientTransport::protocol_and_cipher() const {
  if (!handshake_done_) return {};
  return absl::StrFormat("%s %s", SSL_get_version(ssl_), SSL_get_cipher_name(ssl_));
}

bool TlsClientTransport::resumed() const {
  return handshake_done_ && SSL_session_reused(ssl_) == 1;
}

}  // namespace coremq::transport
