// What one TLS connection does once its SSL exists, on either side: records in, application
// bytes out and back, through a BIO over the caller's buffers (call_bio.h). OpenSSL never sees a
// socket: decode() hands it the bytes read, and what it writes (handshake flights, records,
// alerts, close_notify) is appended straight to the caller's `wire_out`, with no memory-BIO copy.
// The server (TlsTransport, tls_transport.h) and the client (TlsClientTransport: mqtt-bench and
// bridges, tls_client_transport.h) differ only in how the SSL is made, which side it plays, and
// what happens when the handshake ends (on_handshake_done).
//
// Bounds: decode returns only when OpenSSL asks for more input, that is once the whole input
// span was consumed (asserted), so nothing waits in the BIO; OpenSSL keeps at most one
// incomplete record (<= 16 KiB + overhead, read_ahead off) and, during the handshake, one
// incomplete handshake message (max_cert_list, 100 KiB by default).
//
// Threads: one thread at a time (a session may move with its connection between shards). Every
// call clears OpenSSL's per-thread error queue first and drains it after.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "base/byte_buffer.h"
#include "transport/call_bio.h"
#include "transport/transport.h"

typedef struct ssl_st SSL;

namespace coremq::transport {

class TlsSession : public Transport {
 public:
  ~TlsSession() override;
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Drives the handshake with the bytes read, then decrypts every complete record into
  // `plain`. Handshake records, alerts, session tickets and the answer to a close go to
  // `wire_out`. kError: a failed handshake or a bad record (error() says why, e.g.
  // "certificate verify failed: certificate has expired"), with the alert in `wire_out`;
  // kClosed: the peer sent close_notify, ours is in `wire_out`. After kError or kClosed,
  // further calls return the same status and touch nothing. A client's first call, with
  // nothing read yet, writes its ClientHello.
  [[nodiscard]] Status decode(std::span<const uint8_t> wire, base::ByteBuffer& plain,
                              base::ByteBuffer& wire_out) override;
  // Encrypts all of `plain` (records of up to 16 KiB) into `wire_out`. Only after the handshake.
  [[nodiscard]] Status encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) override;
  // close_notify, once, if the handshake is over and the stream still open; nothing otherwise
  // (the code is WebSocket's and unused here).
  void encode_close(uint16_t websocket_close_code, base::ByteBuffer& wire_out) override;
  std::string_view error() const override { return error_; }

 protected:
  // `verify_hint` is added to a certificate verification failure ("--cafile or ...").
  TlsSession(SSL* ssl, std::string verify_hint);
  // Frees the SSL now: a subclass whose members keep the SSL's context alive calls it first
  // in its destructor, which runs before those members go (the base would free it too late).
  void free_ssl();
  // Wires the SSL to a BIO over window_; false when OpenSSL cannot allocate. Called by create()
  // once the session is at its final address (on the heap).
  [[nodiscard]] bool attach_bio(OSSL_LIB_CTX* library_context);
  // After the last handshake flight was written (server: certificate usernames).
  virtual void on_handshake_done() {}

  SSL* ssl() const { return ssl_; }
  bool handshake_done() const { return handshake_done_; }
  bool open() const { return state_ == State::kOpen; }

 private:
  enum class State : uint8_t { kOpen, kClosed, kError };

  Status drive(base::ByteBuffer& plain);
  Status read_records(base::ByteBuffer& plain);
  Status fail(int ssl_error);

  SSL* ssl_;
  std::string verify_hint_;
  // What the BIO reads and writes, set only for the length of one decode/encode call.
  CallWindow window_;
  std::string error_;
  State state_ = State::kOpen;
  bool handshake_done_ = false;
  bool close_sent_ = false;
};

}  // namespace coremq::transport
