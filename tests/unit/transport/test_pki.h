// A throwaway PKI for the TLS tests, fuzzer and benchmark, made at run time with the OpenSSL
// API in a fresh temporary directory (nothing committed that can expire): a CA, a server
// certificate, client certificates (valid, expired, revoked, from a second CA) and a CRL.
// Also a test client: an OpenSSL client SSL over memory BIOs, for talking to a TlsTransport
// entirely in memory. Test code; any one thread per object.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "base/byte_buffer.h"
#include "transport/tls_transport.h"

namespace coremq::testing {

enum class ServerKey { kEcdsaP256, kRsa2048 };

class TestPki {
 public:
  // Makes every file below in a new directory under $TMPDIR (or /tmp); removed by the
  // destructor. Aborts the test program if OpenSSL fails (test setup, not code under test).
  explicit TestPki(ServerKey server_key = ServerKey::kEcdsaP256);
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  // A file of the PKI: "ca.pem", "server.pem" "server.key" (CN=localhost), "client.pem"
  // "client.key" (CN=client-1, O=coremq test, C=NL), "expired.pem"/"expired.key",
  // "revoked.pem"/"revoked.key" (on crl.pem), "crl.pem", "other_ca.pem", "stranger.pem"/
  // "stranger.key" (issued by other_ca), "nul_cn.pem"/"nul_cn.key" (a CN with a NUL byte).
  std::string path(const std::string& name) const { return directory_ + "/" + name; }
  const std::string& directory() const { return directory_; }

  // TlsOptions for a server with this PKI's server certificate and key.
  TlsOptions server_options() const;

 private:
  std::string directory_;
};

// A TLS client over memory BIOs. `certificate`/`key`: files for a client certificate, or
// empty. The client verifies the server against ca.pem when `ca_file` is given.
struct TestClientOptions {
  std::string certificate;
  std::string key;
  std::string ca_file;
  int min_version = TLS1_2_VERSION;
  int max_version = TLS1_3_VERSION;
};

class TestClient {
 public:
  explicit TestClient(const TestClientOptions& options);
  ~TestClient();
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  // Runs the handshake against `server` until both sides are done or one fails (bounded
  // rounds). Returns the server's last status. `first_flight`, if given, receives the client's
  // first bytes (the ClientHello).
  transport::Transport::Status handshake(transport::TlsTransport& server,
                                         std::string* first_flight = nullptr);
  bool handshake_done() const { return SSL_is_init_finished(ssl_) != 0; }

  // Client -> server: encrypts `text`, feeds it to the server, returns the server's status;
  // the server's plaintext lands in `server_plain`.
  transport::Transport::Status send(transport::TlsTransport& server, const std::string& text,
                                    base::ByteBuffer& server_plain);
  // Server -> client: gives the client the server's wire bytes and reads what it decrypts.
  // Returns false when the client saw an error; `closed` is set on close_notify.
  bool receive(const base::ByteBuffer& server_wire, std::string* text, bool* closed = nullptr);
  // Wire bytes the client has produced and not yet handed over (e.g. its close_notify).
  std::string take_output();
  // Feeds `wire` (server output) to the client without reading application data.
  void give(const base::ByteBuffer& wire);

  SSL* ssl() { return ssl_; }
  std::string last_error() const { return error_; }

 private:
  SSL_CTX* context_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* from_server_ = nullptr;  // the client's read BIO
  BIO* to_server_ = nullptr;    // the client's write BIO
  std::string error_;
};

}  // namespace coremq::testing
