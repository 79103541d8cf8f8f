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
  // The window lives in the transport, on the heap: its address stays put while the
  // connection moves between shards inside its unique_ptr.
  BIO* bio = new_call_bio(context.library_context(), &transport->window_);
  if (bio == nullptr) {
    *error = "cannot make a TLS connection: " + take_openssl_errors();
    return nullptr;  // the transport frees the SSL
  }
  SSL_set_bio(ssl, bio, bio);  // one BIO both ways: SSL takes the one reference
  SSL_set_accept_state(ssl);
  return transport;
}

TlsTransport::TlsTransport(SSL* ssl, TlsContext::LibraryRef library)
    : ssl_(ssl), library_(std::move(library)) {}

TlsTransport::~TlsTransport() {
  // Before library_ drops its reference: the SSL uses the SSL_CTX and library context.
  SSL_free(ssl_);
}

Transport::Status TlsTransport::decode(std::span<const uint8_t> wire, base::ByteBuffer& plain,
                                       base::ByteBuffer& wire_out) {
  if (state_ == State::kError) return Status::kError;
  if (state_ == State::kClosed) return Status::kClosed;
  window_.input = wire.data();
  window_.input_size = wire.size();
  window_.output = &wire_out;
  Status status = drive(plain);
  // kOk means OpenSSL asked for more input, which it does only once the BIO has none left:
  // no byte waits outside OpenSSL between calls.
  COREMQ_ASSERT(status != Status::kOk || window_.input_size == 0);
  window_.input = nullptr;
  window_.input_size = 0;
  window_.output = nullptr;
  return status;
}

Transport::Status TlsTransport::drive(base::ByteBuffer& plain) {
  ERR_clear_error();
  if (!handshake_done_) {
    int result = SSL_do_handshake(ssl_);
    if (result != 1) {
      int ssl_error = SSL_get_error(ssl_, result);
      if (ssl_error == SSL_ERROR_WANT_READ) return Status::kOk;
      return fail(ssl_error);
    }
    // The server's last flight (and TLS 1.3 session tickets) is already in wire_out.
    handshake_done_ = true;
    compute_username();
  }
  return read_records(plain);
}

Transport::Status TlsTransport::read_records(base::ByteBuffer& plain) {
  // One record's plaintext at most per call; on the stack so `plain` grows only by what
  // was decrypted.
  uint8_t chunk[16384];
  for (;;) {
    size_t count = 0;
    int result = SSL_read_ex(ssl_, chunk, sizeof(chunk), &count);
    if (result == 1) {
      plain.append(chunk, count);
      continue;
    }
    int ssl_error = SSL_get_error(ssl_, result);
    if (ssl_error == SSL_ERROR_WANT_READ) return Status::kOk;
    if (ssl_error == SSL_ERROR_ZERO_RETURN) {
      // The peer's close_notify: answer with ours (a clean two-way close), then stop.
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

Transport::Status TlsTransport::fail(int ssl_error) {
  state_ = State::kError;
  if (ssl_error == SSL_ERROR_SSL) {
    error_ = take_openssl_errors();
    long verify_result = SSL_get_verify_result(ssl_);
    // "certificate verify failed" alone does not say which check: add the verifier's reason.
    if (verify_result != X509_V_OK && error_.find("certificate verify failed") != std::string::npos) {
      error_ += ": ";
      error_ += X509_verify_cert_error_string(verify_result);
    }
  } else {
    // SSL_ERROR_SYSCALL cannot come from this BIO (it never reports end of file); anything
    // else is a state OpenSSL should not reach with a server SSL and no callbacks.
    error_ = "TLS error " + std::to_string(ssl_error) + ": " + take_openssl_errors();
  }
  // The alert, if OpenSSL sent one, is already in the output.
  return Status::kError;
}

Transport::Status TlsTransport::encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) {
  COREMQ_ASSERT(handshake_done_);
  if (state_ == State::kError) return Status::kError;
  if (state_ == State::kClosed || close_sent_) return Status::kClosed;
  if (plain.empty()) return Status::kOk;
  window_.output = &wire_out;
  ERR_clear_error();
  Status status = Status::kOk;
  // The BIO never blocks, so each SSL_write_ex takes all it is given (no partial writes).
  while (!plain.empty()) {
    size_t piece = std::min<size_t>(plain.size(), size_t{1} << 30);
    size_t written = 0;
    int result = SSL_write_ex(ssl_, plain.data(), piece, &written);
    if (result != 1) {
      status = fail(SSL_get_error(ssl_, result));
      break;
    }
    plain = plain.subspan(written);
  }
  window_.output = nullptr;
  return status;
}

void TlsTransport::encode_close(uint16_t, base::ByteBuffer& wire_out) {
  // No close_notify during the handshake or after a fatal error (OpenSSL forbids
  // SSL_shutdown then; the alert already said it).
  if (!handshake_done_ || state_ != State::kOpen || close_sent_) return;
  window_.output = &wire_out;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // 0: ours sent, the peer's not yet seen; that is all a server waits for
  ERR_clear_error();
  window_.output = nullptr;
  close_sent_ = true;
}

std::string_view TlsTransport::protocol_version() const {
  return handshake_done_ ? std::string_view(SSL_get_version(ssl_)) : std::string_view();
}

void TlsTransport::compute_username() {
  const TlsOptions& options = library_->options();
  if (!options.use_identity_as_username && !options.use_subject_as_username) return;
  X509* certificate = SSL_get0_peer_certificate(ssl_);  // a resumed session keeps its peer's
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
