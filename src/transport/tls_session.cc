// TlsSession: OpenSSL's record layer behind the Transport interface, on either side, fed through a
// BIO over the caller's buffers. See tls_session.h for the bounds and threads.
#include "transport/tls_session.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <utility>

#include "base/assert.h"
#include "transport/tls_errors.h"

namespace coremq::transport {

TlsSession::TlsSession(SSL* ssl, std::string verify_hint) : ssl_(ssl), verify_hint_(std::move(verify_hint)) {}

TlsSession::~TlsSession() { free_ssl(); }

void TlsSession::free_ssl() {
  SSL_free(ssl_);  // null-safe
  ssl_ = nullptr;
}

bool TlsSession::attach_bio(OSSL_LIB_CTX* library_context) {
  // The window lives in the session, on the heap: its address stays put while the connection
  // moves between shards inside its unique_ptr.
  BIO* bio = new_call_bio(library_context, &window_);
  if (bio == nullptr) return false;
  SSL_set_bio(ssl_, bio, bio);  // one BIO both ways: the SSL takes its one reference
  return true;
}

Transport::Status TlsSession::decode(std::span<const uint8_t> wire, base::ByteBuffer& plain,
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

Transport::Status TlsSession::drive(base::ByteBuffer& plain) {
  ERR_clear_error();
  if (!handshake_done_) {
    int result = SSL_do_handshake(ssl_);
    if (result != 1) {
      int ssl_error = SSL_get_error(ssl_, result);
      if (ssl_error == SSL_ERROR_WANT_READ) return Status::kOk;
      return fail(ssl_error);
    }
    // The last flight (and TLS 1.3 session tickets) is already in wire_out.
    handshake_done_ = true;
    on_handshake_done();
  }
  return read_records(plain);
}

Transport::Status TlsSession::read_records(base::ByteBuffer& plain) {
  // One record's plaintext at most per call; on the stack so `plain` (a connection's input,
  // kept while idle) grows only by what was decrypted, never by a whole record's room.
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

Transport::Status TlsSession::fail(int ssl_error) {
  state_ = State::kError;
  if (ssl_error == SSL_ERROR_SSL) {
    error_ = take_openssl_errors();
    long verify_result = SSL_get_verify_result(ssl_);
    // "certificate verify failed" alone does not say which check: add the verifier's reason.
    if (verify_result != X509_V_OK && error_.find("certificate verify failed") != std::string::npos) {
      error_ += ": ";
      error_ += X509_verify_cert_error_string(verify_result);
      if (!verify_hint_.empty()) error_ += " (" + verify_hint_ + ")";
    }
  } else {
    // SSL_ERROR_SYSCALL cannot come from this BIO (it never reports end of file); anything
    // else is a state OpenSSL should not reach without callbacks.
    error_ = "TLS error " + std::to_string(ssl_error) + ": " + take_openssl_errors();
  }
  // The alert, if OpenSSL sent one, is already in the output.
  return Status::kError;
}

Transport::Status TlsSession::encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) {
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

void TlsSession::encode_close(uint16_t, base::ByteBuffer& wire_out) {
  // No close_notify during the handshake or after a fatal error (OpenSSL forbids
  // SSL_shutdown then; the alert already said it).
  if (!handshake_done_ || state_ != State::kOpen || close_sent_) return;
  window_.output = &wire_out;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // 0: ours sent, the peer's not yet seen; that is all either side waits for
  ERR_clear_error();
  window_.output = nullptr;
  close_sent_ = true;
}

}  // namespace coremq::transport
