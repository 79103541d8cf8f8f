// The client side of TLS for mqtt-bench (--tls): TlsClientContext is one worker thread's
// OpenSSL library context and SSL_CTX (CA, client certificate, protocol versions, the session
// kept for --tls-resume), and TlsClientTransport one connection's SSL behind the Transport
// interface of src/transport/transport.h. Sans-I/O: OpenSSL reads the bytes the worker
// received and writes its records straight into the worker's buffers through a BIO over them,
// so it never touches a socket and never blocks.
// Threads: the main thread makes one context to check the flags before the run; each worker
// makes its own (no OpenSSL lock is shared between workers) and owns it and every transport
// made from it; a transport never outlives its context.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/byte_buffer.h"
#include "options.h"
#include "transport/call_bio.h"
#include "transport/transport.h"

typedef struct ossl_lib_ctx_st OSSL_LIB_CTX;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

namespace coremq::bench {

class TlsClientContext {
 public:
  // Loads the CA file (or the system's default CA paths), the client certificate and key, and
  // sets the protocol versions. Null with a message naming the file on any error.
  static std::unique_ptr<TlsClientContext> create(const Options& options, std::string* error);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  // A new client SSL with SNI, the host name check and (with --tls-resume) the kept session.
  // Null when OpenSSL is out of memory.
  SSL* new_ssl();
  const Options& options() const { return options_; }

 private:
  explicit TlsClientContext(const Options& options) : options_(options) {}

  const Options& options_;
  OSSL_LIB_CTX* library_ = nullptr;
  SSL_CTX* ssl_context_ = nullptr;
  // --tls-resume: the latest session the broker gave (set by OpenSSL's new-session callback).
  SSL_SESSION* session_ = nullptr;
};

class TlsClientTransport final : public transport::Transport {
 public:
  // Null with a message when OpenSSL cannot make the connection (out of memory).
  static std::unique_ptr<TlsClientTransport> create(TlsClientContext& context, std::string* error);
  ~TlsClientTransport() override;

  // An empty `wire` before anything was received starts the handshake (the ClientHello goes
  // to `wire_out`); after that, records in, application bytes out.
  [[nodiscard]] Status decode(std::span<const uint8_t> wire, base::ByteBuffer& plain,
                              base::ByteBuffer& wire_out) override;
  [[nodiscard]] Status encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) override;
  // A close_notify (the WebSocket close code means nothing to TLS).
  void encode_close(uint16_t websocket_close_code, base::ByteBuffer& wire_out) override;
  bool established() const override { return state_ == State::kOpen && handshake_done_; }
  std::string_view error() const override { return error_; }

  // After the handshake: "TLSv1.3 TLS_AES_256_GCM_SHA384", and whether a kept session was
  // resumed.
  std::string protocol_and_cipher() const;
  bool resumed() const;

 private:
  enum class State : uint8_t { kOpen, kClosed, kError };

  explicit TlsClientTransport(SSL* ssl) : ssl_(ssl) {}
  Status drive(base::ByteBuffer& plain);
  Status read_records(base::ByteBuffer& plain);
  Status fail(int ssl_error);

  SSL* ssl_;
  // What the BIO reads from and writes to, set only for the length of one call.
  transport::CallWindow window_;  // what the BIO reads and writes during the current call
  std::string error_;
  State state_ = State::kOpen;
  bool handshake_done_ = false;
  bool close_sent_ = false;
};

}  // namespace coremq::bench
