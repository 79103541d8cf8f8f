// TlsContext and TlsTransport against a real OpenSSL client, entirely in memory: handshakes
// (TLS 1.2 and 1.3), data both ways, client certificates (required, missing, wrong CA,
// expired, revoked by CRL), certificate usernames, protocol floor, close_notify both ways,
// garbage input, the context's file errors, and per-shard contexts used from two threads.
// Suites are named Tls* (--gtest_filter='Tls*').
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "test_pki.h"
#include "transport/tls_context.h"
#include "transport/tls_transport.h"

namespace coremq::transport {
namespace {

using testing::TestClient;
using testing::TestClientOptions;
using testing::TestPki;
using Status = Transport::Status;

class TlsTransportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new TestPki(); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  static std::unique_ptr<TlsContext> make_context(const TlsOptions& options) {
    std::string error;
    auto context = TlsContext::create(options, &error);
    EXPECT_NE(context, nullptr) << error;
    return context;
  }
  static std::unique_ptr<TlsTransport> make_transport(const TlsContext& context) {
    std::string error;
    auto transport = TlsTransport::create(context, &error);
    EXPECT_NE(transport, nullptr) << error;
    return transport;
  }
  static TlsOptions client_certificate_options() {
    TlsOptions options = pki_->server_options();
    options.cafile = pki_->path("ca.pem");
    options.require_certificate = true;
    return options;
  }
  static TestClientOptions client_with(const std::string& name) {
    TestClientOptions options;
    options.certificate = pki_->path(name + ".pem");
    options.key = pki_->path(name + ".key");
    options.ca_file = pki_->path("ca.pem");
    return options;
  }

  // Sends `text` both ways over an established pair and checks it arrives unchanged.
  static void exchange(TestClient& client, TlsTransport& server, const std::string& text) {
    base::ByteBuffer plain;
    ASSERT_EQ(client.send(server, text, plain), Status::kOk) << server.error();
    ASSERT_EQ(plain.view(), text);
    base::ByteBuffer wire;
    ASSERT_EQ(server.encode(plain.span(), wire), Status::kOk) << server.error();
    std::string received;
    ASSERT_TRUE(client.receive(wire, &received)) << client.last_error();
    ASSERT_EQ(received, text);
  }

  static TestPki* pki_;
};

TestPki* TlsTransportTest::pki_ = nullptr;

TEST_F(TlsTransportTest, HandshakeTls13AndDataBothWays) {
  auto context = make_context(pki_->server_options());
  auto server = make_transport(*context);
  TestClient client({.ca_file = pki_->path("ca.pem")});
  EXPECT_FALSE(server->established());
  ASSERT_EQ(client.handshake(*server), Status::kOk) << server->error();
  ASSERT_TRUE(server->established());
  ASSERT_TRUE(client.handshake_done()) << client.last_error();
  EXPECT_EQ(server->protocol_version(), "TLSv1.3");
  EXPECT_EQ(server->certificate_username(), "");
  exchange(client, *server, std::string("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14));
  exchange(client, *server, "second message");
}

TEST_F(TlsTransportTest, HandshakeTls12AndDataBothWays) {
  auto context = make_context(pki_->server_options());
  auto server = make_transport(*context);
  TestClient client({.ca_file = pki_->path("ca.pem"), .max_version = TLS1_2_VERSION});
  ASSERT_EQ(client.handshake(*server), Status::kOk) << server->error();
  ASSERT_TRUE(server->established());
  EXPECT_EQ(server->protocol_version(), "TLSv1.2");
  exchange(client, *server, "hello over TLS 1.2");
}

TEST_F(TlsTransportTest, OneMebibyteBothWays) {
  auto context = make_context(pki_->server_options());
  auto server = make_transport(*context);
  TestClient client({.ca_file = pki_->path("ca.pem")});
  ASSERT_EQ(client.handshake(*server), Status::kOk);
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + (i >> 9));
  exchange(client, *server, big);
}

TEST_F(TlsTransportTest, RecordsSplitAcrossCallsAndSeveralInOneCall) {
  auto context = make_context(pki_->server_options());
  auto server = make_transport(*context);
  TestClient client({.ca_file = pki_->path("ca.pem")});
  ASSERT_EQ(client.handshake(*server), Status::kOk);
  size_t written = 0;
  ASSERT_EQ(SSL_write_ex(client.ssl(), "first", 5, &written), 1);
  ASSERT_EQ(SSL_write_ex(client.ssl(), "second", 6, &written), 1);
  std::string wire = client.take_output();
  base::ByteBuffer plain;
  base::ByteBuffer wire_out;
  // One byte at a time: nothing comes out until a record is complete, nothing is lost.
  for (size_t i = 0; i < wire.size(); ++i) {
    ASSERT_EQ(server->decode({reinterpret_cast<const uint8_t*>(wire.data()) + i, 1}, plain, wire_out),
              Status::kOk);
    if (i + 1 < wire.size() / 2) {
      EXPECT_TRUE(plain.empty());
    }
  }
  EXPECT_EQ(plain.view(), "firstsecond");
}

TEST_F(TlsTransportTest, RequireCertificateAcceptsAValidClient) {
  auto context = make_context(client_certificate_options());
  auto server = make_transport(*context);
  TestClient client(client_with("client"));
  ASSERT_EQ(client.handshake(*server), Status::kOk) << server->error();
  ASSERT_TRUE(server->established());
  exchange(client, *server, "with a certificate");
}

TEST_F(TlsTransportTest, RequireCertificateRefusesAClientWithout) {
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    auto context = make_context(client_certificate_options());
    auto server = make_transport(*context);
    TestClient client({.ca_file = pki_->path("ca.pem"), .max_version = version});
    ASSERT_EQ(client.handshake(*server), Status::kError);
    EXPECT_FALSE(server->established());
    EXPECT_NE(server->error().find("peer did not return a certificate"), std::string::npos)
        << server->error();
    // The alert reached the client.
    EXPECT_NE(client.last_error().find("alert"), std::string::npos) << client.last_error();
    // Later calls keep answering kError and write nothing.
    base::ByteBuffer plain;
    base::ByteBuffer wire_out;
    EXPECT_EQ(server->decode({}, plain, wire_out), Status::kError);
    EXPECT_TRUE(wire_out.empty());
  }
}

TEST_F(TlsTransportTest, ClientCertificateFailuresSayWhy) {
  TlsOptions with_crl = client_certificate_options();
  with_crl.crlfile = pki_->path("crl.pem");
  struct Case {
    const char* client;
    const char* reason;
  };
  for (Case c : {Case{"stranger", "certificate verify failed: unable to get local issuer certificate"},
                 Case{"expired", "certificate verify failed: certificate has expired"},
                 Case{"revoked", "certificate verify failed: certificate revoked"}}) {
    SCOPED_TRACE(c.client);
    auto context = make_context(with_crl);
    auto server = make_transport(*context);
    TestClient client(client_with(c.client));
    ASSERT_EQ(client.handshake(*server), Status::kError);
    EXPECT_EQ(server->error(), c.reason);
    EXPECT_NE(client.last_error().find("alert"), std::string::npos) << client.last_error();
  }
  // The CRL does not refuse a certificate it does not list.
  auto context = make_context(with_crl);
  auto server = make_transport(*context);
  TestClient client(client_with("client"));
  ASSERT_EQ(client.handshake(*server), Status::kOk) << server->error();
}

TEST_F(TlsTransportTest, ExpiredCertificateWithoutCrl) {
  auto context = make_context(client_certificate_options());
  auto server = make_transport(*context);
  TestClient client(client_with("expired"));
  ASSERT_EQ(client.handshake(*server), Status::kError);
  EXPECT_EQ(server->error(), "certificate verify failed: certificate has expired");
}

TEST_F(TlsTransportTest, CafileWithoutRequireCertificateAsksForNone) {
  // As Mosquitto: without require_certificate no CertificateRequest is sent, so even a
  // client holding a certificate connects without one and gives no username.
  TlsOptions options = pki_->server_options();
  options.cafile = pki_->path("ca.pem");
  options.use_identity_as_username = true;
  auto context = make_context(options);
  auto server = make_transport(*context);
  TestClient client(client_with("stranger"));
  ASSERT_EQ(client.handshake(*server), Status::kOk) << server->error();
  EXPECT_EQ(SSL_get0_peer_certificate(client.ssl()) != nullptr, true);
  EXPECT_EQ(server->certificate_username(), "");
}

TEST_F(TlsTransportTest, CertificateUsernames) {
  TlsOptions identity = client_certificate_options();
  identity.use_identity_as_username = true;
  TlsOptions subject = client_certificate_options();
  subject.use_subject_as_username = true;
  TlsOptions neither = client_certificate_options();
  struct Case {
    const TlsOptions* options;
    const char* client;
    std::string expected;
  };
  for (const Case& c :
       {Case{&identity, "client", "client-1"}, Case{&subject, "client", "CN=client-1,O=coremq test,C=NL"},
        Case{&identity, "nul_cn", ""}, Case{&neither, "client", ""}}) {
    SCOPED_TRACE(std::string(c.client) + " expects " + c.expected);
    auto context = make_context(*c.options);
    auto server = make_transport(*context);
    TestClient client(client_with(c.client));
    ASSERT_EQ(client.handshake(*server), Status::kOk) << server->error();
    EXPECT_EQ(server->certificate_username(), c.expected);
  }
}

TEST_F(TlsTransportTest, MinVersionTls13RefusesATls12Client) {
  TlsOptions options = pki_->server_options();
  options.min_version = "tlsv1.3";
  auto context = make_context(options);
  auto server = make_transport(*context);
  TestClient client({.ca_file = pki_->path("ca.pem"), .max_version = TLS1_2_VERSION});
  ASSERT_EQ(client.handshake(*server), Status::kError);
  EXPECT_NE(server->error().find("unsupported protocol"), std::string::npos) << server->error();
  EXPECT_NE(client.last_error().find("alert protocol version"), std::string::npos) << client.last_error();

  // A TLS 1.3 client is still welcome.
  auto second = make_transport(*context);
  TestClient modern({.ca_file = pki_->path("ca.pem")});
  ASSERT_EQ(modern.handshake(*second), Status::kOk) << second->error();
}

TEST_F(TlsTransportTest, CiphersuitesAreApplied) {
  TlsOptions options = pki_->server_options();
  options.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";
  options.ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305";
  auto context = make_context(options);
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    auto server = make_transport(*context);
    TestClient client({.ca_file = pki_->path("ca.pem"), .max_version = version});
    ASSERT_EQ(client.handshake(*server), Status::kOk) << server->error();
    EXPECT_NE(std::string(SSL_get_cipher_name(client.ssl())).find("CHACHA20"), std::string::npos);
  }
}

TEST_F(TlsTransportTest, CloseNotifyFromTheClient) {
  auto context = make_context(pki_->server_options());
  auto server = make_transport(*context);
  TestClient client({.ca_file = pki_->path("ca.pem")});
  ASSERT_EQ(client.handshake(*server), Status::kOk);
  ASSERT_EQ(SSL_shutdown(client.ssl()), 0);  // sent, not yet answered
  std::string wire = client.take_output();
  base::ByteBuffer plain;
  base::ByteBuffer wire_out;
  ASSERT_EQ(server->decode({reinterpret_cast<const uint8_t*>(wire.data()), wire.size()}, plain, wire_out),
            Status::kClosed);
  EXPECT_TRUE(plain.empty());
  ASSERT_FALSE(wire_out.empty());  // our close_notify
  client.give(wire_out);
  EXPECT_EQ(SSL_shutdown(client.ssl()), 1);  // both directions closed cleanly
  base::ByteBuffer more;
  EXPECT_EQ(server->encode({reinterpret_cast<const uint8_t*>("x"), 1}, more), Status::kClosed);
  server->encode_close(1000, more);
  EXPECT_TRUE(more.empty());
}

TEST_F(TlsTransportTest, CloseNotifyFromTheServer) {
  auto context = make_context(pki_->server_options());
  auto server = make_transport(*context);
  TestClient client({.ca_file = pki_->path("ca.pem")});
  ASSERT_EQ(client.handshake(*server), Status::kOk);
  base::ByteBuffer wire;
  server->encode_close(1000, wire);
  ASSERT_FALSE(wire.empty());
  std::string text;
  bool closed = false;
  ASSERT_TRUE(client.receive(wire, &text, &closed)) << client.last_error();
  EXPECT_TRUE(closed);
  base::ByteBuffer again;
  server->encode_close(1000, again);  // only once
  EXPECT_TRUE(again.empty());
  // The client's answering close_notify ends the stream; nothing more is sent back.
  ASSERT_EQ(SSL_shutdown(client.ssl()), 1);
  std::string answer = client.take_output();
  ASSERT_FALSE(answer.empty());
  base::ByteBuffer plain;
  base::ByteBuffer wire_out;
  EXPECT_EQ(server->decode({reinterpret_cast<const uint8_t*>(answer.data()), answer.size()}, plain, wire_out),
            Status::kClosed);
  EXPECT_TRUE(wire_out.empty());
  EXPECT_TRUE(plain.empty());
}

TEST_F(TlsTransportTest, EncodeCloseDuringTheHandshakeWritesNothing) {
  auto context = make_context(pki_->server_options());
  auto server = make_transport(*context);
  base::ByteBuffer wire;
  server->encode_close(1000, wire);
  EXPECT_TRUE(wire.empty());
}

TEST_F(TlsTransportTest, GarbageIsAnErrorWithAMessage) {
  auto context = make_context(pki_->server_options());
  // A plain MQTT CONNECT on a TLS port, an HTTP request, random-looking bytes.
  for (std::string garbage : {std::string("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", 14),
                              std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                              std::string("\x16\x03\x01\x00\x05\x01\x00\x00\x01\xff", 10)}) {
    auto server = make_transport(*context);
    base::ByteBuffer plain;
    base::ByteBuffer wire_out;
    EXPECT_EQ(
        server->decode({reinterpret_cast<const uint8_t*>(garbage.data()), garbage.size()}, plain, wire_out),
        Status::kError);
    EXPECT_FALSE(server->error().empty());
    EXPECT_EQ(server->error().find("unknown"), std::string::npos) << server->error();
    EXPECT_TRUE(plain.empty());
    EXPECT_FALSE(server->established());
  }
}

TEST_F(TlsTransportTest, CorruptRecordAfterTheHandshakeIsAnError) {
  auto context = make_context(pki_->server_options());
  auto server = make_transport(*context);
  TestClient client({.ca_file = pki_->path("ca.pem")});
  ASSERT_EQ(client.handshake(*server), Status::kOk);
  size_t written = 0;
  ASSERT_EQ(SSL_write_ex(client.ssl(), "payload", 7, &written), 1);
  std::string wire = client.take_output();
  wire[wire.size() - 3] ^= 0x40;  // inside the AEAD tag
  base::ByteBuffer plain;
  base::ByteBuffer wire_out;
  ASSERT_EQ(server->decode({reinterpret_cast<const uint8_t*>(wire.data()), wire.size()}, plain, wire_out),
            Status::kError);
  EXPECT_EQ(server->error(), "decryption failed or bad record mac");
  EXPECT_FALSE(wire_out.empty());  // the alert
  EXPECT_TRUE(plain.empty());
}

TEST_F(TlsTransportTest, SessionResumptionKeepsTheCertificateUsername) {
  TlsOptions options = client_certificate_options();
  options.use_identity_as_username = true;
  auto context = make_context(options);
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SCOPED_TRACE(version);
    TestClientOptions client_options = client_with("client");
    client_options.max_version = version;
    SSL_SESSION* session = nullptr;
    {
      auto server = make_transport(*context);
      TestClient client(client_options);
      ASSERT_EQ(client.handshake(*server), Status::kOk) << server->error();
      session = SSL_get1_session(client.ssl());
      ASSERT_NE(session, nullptr);
      // A clean close: OpenSSL marks the session of a connection freed without one as not
      // resumable (RFC 5246 section 7.2.1).
      SSL_shutdown(client.ssl());
      ASSERT_EQ(SSL_SESSION_is_resumable(session), 1);
    }
    auto server = make_transport(*context);
    TestClient client(client_options);
    ASSERT_EQ(SSL_set_session(client.ssl(), session), 1);
    SSL_SESSION_free(session);
    ASSERT_EQ(client.handshake(*server), Status::kOk) << server->error() << client.last_error();
    EXPECT_EQ(SSL_session_reused(client.ssl()), 1);
    EXPECT_EQ(server->certificate_username(), "client-1");
  }
}

TEST_F(TlsTransportTest, TicketsResumeOnAnotherShardWithSharedKeys) {
  auto first = make_context(pki_->server_options());
  auto second = make_context(pki_->server_options());
  auto third = make_context(pki_->server_options());
  ASSERT_TRUE(second->use_ticket_keys_of(*first));
  for (int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
    SCOPED_TRACE(version);
    TestClientOptions client_options{.ca_file = pki_->path("ca.pem"), .max_version = version};
    SSL_SESSION* session = nullptr;
    {
      auto server = make_transport(*first);
      TestClient client(client_options);
      ASSERT_EQ(client.handshake(*server), Status::kOk) << server->error();
      SSL_shutdown(client.ssl());
      session = SSL_get1_session(client.ssl());
    }
    // The server keeps no session state: resumption is by ticket alone.
    EXPECT_EQ(SSL_CTX_sess_number(first->ssl_context()), 0);
    for (const TlsContext* shard : {second.get(), third.get()}) {
      auto server = make_transport(*shard);
      TestClient client(client_options);
      ASSERT_EQ(SSL_set_session(client.ssl(), session), 1);
      ASSERT_EQ(client.handshake(*server), Status::kOk) << server->error();
      // Only the shard that shares the first one's ticket keys resumes; the other falls
      // back to a full handshake.
      EXPECT_EQ(SSL_session_reused(client.ssl()), shard == second.get() ? 1 : 0);
    }
    SSL_SESSION_free(session);
  }
}

TEST_F(TlsTransportTest, TransportOutlivesItsContext) {
  // A reload replaces a shard's context while old connections keep the one they were made with.
  auto context = make_context(pki_->server_options());
  auto server = make_transport(*context);
  TestClient client({.ca_file = pki_->path("ca.pem")});
  ASSERT_EQ(client.handshake(*server), Status::kOk);
  context.reset();
  exchange(client, *server, "still here");
}

TEST_F(TlsTransportTest, ContextsOnTwoThreadsAndAHandOff) {
  // Two shards, each with its own context, handshaking at once; each hands every third
  // connection to the other shard after the handshake (the owner shard), which then uses and
  // destroys it. Run under TSan this is the check that nothing is shared unsynchronised.
  auto first = make_context(pki_->server_options());
  auto second = make_context(pki_->server_options());
  constexpr int kHandshakes = 30;
  std::unique_ptr<TlsTransport> handed[2][kHandshakes];
  std::unique_ptr<TestClient> handed_clients[2][kHandshakes];
  int failures[2] = {0, 0};
  auto shard = [&](int index, const TlsContext& context) {
    for (int i = 0; i < kHandshakes; ++i) {
      std::string error;
      auto server = TlsTransport::create(context, &error);
      auto client = std::make_unique<TestClient>(TestClientOptions{.ca_file = pki_->path("ca.pem")});
      if (server == nullptr || client->handshake(*server) != Status::kOk || !server->established()) {
        ++failures[index];
        continue;
      }
      if (i % 3 == 0) {
        handed[index][i] = std::move(server);
        handed_clients[index][i] = std::move(client);
      }
    }
  };
  std::thread one(shard, 0, std::cref(*first));
  std::thread two(shard, 1, std::cref(*second));
  one.join();
  two.join();
  EXPECT_EQ(failures[0], 0);
  EXPECT_EQ(failures[1], 0);
  first.reset();  // the handed-off connections keep the first shard's OpenSSL objects alive
  // The receiving shard (another thread) owns them now.
  std::thread owner([&] {
    for (int from = 0; from < 2; ++from) {
      for (int i = 0; i < kHandshakes; ++i) {
        if (handed[from][i] == nullptr) continue;
        exchange(*handed_clients[from][i], *handed[from][i], "after the hand-off");
        handed[from][i].reset();
        handed_clients[from][i].reset();
      }
    }
  });
  owner.join();
}

TEST(TlsContextTest, ErrorsNameTheFileOrOption) {
  TestPki pki;
  struct Case {
    const char* what;
    TlsOptions options;
    const char* expected;
  };
  TlsOptions good = pki.server_options();
  auto with = [&](auto change) {
    TlsOptions options = good;
    change(options);
    return options;
  };
  std::string missing = pki.path("missing.pem");
  Case cases[] = {
      {"no certfile", with([](TlsOptions& o) { o.certfile.clear(); }), "needs both certfile and keyfile"},
      {"missing certfile", with([&](TlsOptions& o) { o.certfile = missing; }), "No such file or directory"},
      {"certfile not a certificate", with([&](TlsOptions& o) { o.certfile = pki.path("server.key"); }),
       "cannot load the certificate chain"},
      {"key of another certificate", with([&](TlsOptions& o) { o.keyfile = pki.path("client.key"); }),
       "does not match certfile"},
      {"keyfile not a key", with([&](TlsOptions& o) { o.keyfile = pki.path("ca.pem"); }),
       "cannot load the private key"},
      {"missing cafile", with([&](TlsOptions& o) { o.cafile = missing; }), "No such file or directory"},
      {"missing crlfile", with([&](TlsOptions& o) { o.crlfile = missing; }), "No such file or directory"},
      {"crlfile not a CRL", with([&](TlsOptions& o) { o.crlfile = pki.path("ca.pem"); }),
       "cannot load the CRL"},
      {"require_certificate without CA", with([](TlsOptions& o) { o.require_certificate = true; }),
       "require_certificate needs cafile or capath"},
      {"min_version", with([](TlsOptions& o) { o.min_version = "tlsv1.1"; }),
       "tls min_version \"tlsv1.1\": expected tlsv1.2 or tlsv1.3"},
      {"ciphers", with([](TlsOptions& o) { o.ciphers = "NOT-A-CIPHER"; }), "tls ciphers \"NOT-A-CIPHER\""},
      {"ciphersuites", with([](TlsOptions& o) { o.ciphersuites = "TLS_NOPE"; }),
       "tls ciphersuites \"TLS_NOPE\""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    std::string error;
    EXPECT_EQ(TlsContext::create(c.options, &error), nullptr);
    EXPECT_NE(error.find(c.expected), std::string::npos) << error;
    if (std::string(c.what).find("file") != std::string::npos && std::string(c.what) != "no certfile") {
      EXPECT_NE(error.find(pki.directory()), std::string::npos) << "names the file: " << error;
    }
    EXPECT_EQ(ERR_peek_error(), 0u) << "the error queue is left empty";
  }
  std::string error;
  EXPECT_NE(TlsContext::create(good, &error), nullptr) << error;
}

TEST_F(TlsTransportTest, CapathIsReadAtStartUp) {
  // A directory as `openssl rehash` leaves it: the CA under its subject hash.
  std::string directory = pki_->path("capath");
  std::filesystem::create_directory(directory);
  TlsOptions options = pki_->server_options();
  options.capath = directory;
  options.require_certificate = true;
  std::string error;
  EXPECT_EQ(TlsContext::create(options, &error), nullptr);
  EXPECT_NE(error.find("no hashed CA certificates"), std::string::npos) << error;

  FILE* file = std::fopen(pki_->path("ca.pem").c_str(), "r");
  ASSERT_NE(file, nullptr);
  X509* ca = PEM_read_X509(file, nullptr, nullptr, nullptr);
  std::fclose(file);
  ASSERT_NE(ca, nullptr);
  char name[32];
  std::snprintf(name, sizeof(name), "/%08lx.0", X509_subject_name_hash(ca));
  X509_free(ca);
  std::filesystem::copy_file(pki_->path("ca.pem"), directory + name);
  auto context = make_context(options);
  // The files are in memory now: the directory can go, verification still works.
  std::filesystem::remove_all(directory);
  auto server = make_transport(*context);
  TestClient client(client_with("client"));
  EXPECT_EQ(client.handshake(*server), Status::kOk) << server->error();
  auto refused = make_transport(*context);
  TestClient stranger(client_with("stranger"));
  EXPECT_EQ(stranger.handshake(*refused), Status::kError);
  EXPECT_EQ(refused->error(), "certificate verify failed: unable to get local issuer certificate");

  options.capath = pki_->path("no-such-directory");
  EXPECT_EQ(TlsContext::create(options, &error), nullptr);
  EXPECT_NE(error.find("No such file or directory"), std::string::npos) << error;
}

}  // namespace
}  // namespace coremq::transport
