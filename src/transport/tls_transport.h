// TLS server side of one connection as a sans-I/O Transport (transport.h): the shard feeds
// it the bytes it read and sends what it writes; OpenSSL never sees a socket.
//
// OpenSSL talks to it through a BIO whose read and write callbacks point, for the length of
// one decode/encode call, at that call's input span and output buffer: input is handed to
// OpenSSL without a copy into a BIO buffer, output is appended straight to `wire_out`, and
// between calls the connection holds no I/O buffer at all (with SSL_MODE_RELEASE_BUFFERS
// OpenSSL also gives back its record buffers when idle). What bounds the bytes held inside:
// decode returns only when OpenSSL asks for more input, that is when the whole input span has
// been consumed (asserted), so nothing waits in the BIO; OpenSSL itself keeps at most one
// incomplete record (<= 16 KiB + record overhead, read_ahead off) and, during the handshake,
// one incomplete handshake message, which it caps at max_cert_list (100 KiB by default).
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
#include "transport/call_bio.h"
#include "transport/transport.h"

namespace coremq::transport {

class TlsTransport final : public Transport {
 public:
  // A transport for a newly accepted connection on `context`'s listener. Null with `error`
  // set only when OpenSSL cannot allocate.
  [[nodiscard]] static std::unique_ptr<TlsTransport> create(const TlsContext& context, std::string* error);
  ~TlsTransport() override;
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  // Drives the handshake with the bytes read, then decrypts every complete record into
  // `plain`. Handshake records, alerts, session tickets and the answer to a close go to
  // `wire_out`. kError: a failed handshake or a bad record (error() says why, e.g.
  // "certificate verify failed: certificate has expired"), with the alert in `wire_out`;
  // kClosed: the peer sent close_notify, ours is in `wire_out`. After kError or kClosed,
  // further calls return the same status and touch nothing.
  [[nodiscard]] Status decode(std::span<const uint8_t> wire, base::ByteBuffer& plain,
                              base::ByteBuffer& wire_out) override;
  // Encrypts all of `plain` (records of up to 16 KiB) into `wire_out`. Only after established().
  [[nodiscard]] Status encode(std::span<const uint8_t> plain, base::ByteBuffer& wire_out) override;
  // close_notify, once, if the handshake is over and the stream still open; nothing otherwise
  // (the code is WebSocket's and unused here).
  void encode_close(uint16_t websocket_close_code, base::ByteBuffer& wire_out) override;

  // The handshake finished (stays true after a close or error that followed it).
  bool established() const override { return handshake_done_; }
  // Set at the end of the handshake: with use_identity_as_username the first subject CN of
  // the client certificate, with use_subject_as_username the whole subject in RFC 2253 form
  // (as Mosquitto prints it: X509_NAME_print_ex with XN_FLAG_RFC2253, "CN=dev1,O=Acme,C=NL").
  // Empty without a client certificate, without either option, or when the CN holds a NUL
  // byte (Mosquitto refuses those); the broker must then refuse a listener that wants a
  // certificate username.
  std::string_view certificate_username() const override { return username_; }
  std::string_view error() const override { return error_; }

  // The negotiated protocol ("TLSv1.3", "TLSv1.2"), for logs; empty before the handshake ends.
  std::string_view protocol_version() const;

 private:
  enum class State : uint8_t { kOpen, kClosed, kError };

  TlsTransport(SSL* ssl, TlsContext::LibraryRef library);
  Status drive(base::ByteBuffer& plain);
  Status read_records(base::ByteBuffer& plain);
  Status fail(int ssl_error);
  void compute_username();

  // The BIO's side: the current call's input not yet given to OpenSSL, and where its output goes.
  CallWindow window_;  // what the BIO reads and writes during the current call

  SSL* ssl_;
  TlsContext::LibraryRef library_;  // outlives ssl_ (freed after it in the destructor)
  State state_ = State::kOpen;
  bool handshake_done_ = false;
  bool close_sent_ = false;
  std::string username_;
  std::string error_;
};

}  // namespace coremq::transport
