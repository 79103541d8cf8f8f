// See test_pki.h. Certificates are made with the OpenSSL API rather than the `openssl`
// command so that an expired certificate (validity entirely in the past) and a CRL need no
// `openssl ca` database, and so the fuzzer and benchmark can make the same files.
#include "test_pki.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string_view>

namespace coremq::testing {
namespace {

void require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "test PKI: %s failed\n", what);
  ERR_print_errors_fp(stderr);
  std::abort();
}

struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertificateDeleter {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using Certificate = std::unique_ptr<X509, CertificateDeleter>;

Key make_key(ServerKey type) {
  EVP_PKEY* key = type == ServerKey::kRsa2048 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  require(key != nullptr, "key generation");
  return Key(key);
}

void add_extension(X509* certificate, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
  require(extension != nullptr && X509_add_ext(certificate, extension, -1) == 1, "certificate extension");
  X509_EXTENSION_free(extension);
}

struct CertificateSpec {
  std::vector<std::pair<std::string, std::string>> subject;  // field name, value (bytes)
  long serial = 1;
  long not_before_seconds = -3600;  // relative to now
  long not_after_seconds = 86400;
  bool is_ca = false;
};

// Signs with `issuer_key` as `issuer` (null: self-signed with `key`).
Certificate make_certificate(const CertificateSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
  Certificate certificate(X509_new());
  X509* x = certificate.get();
  require(X509_set_version(x, 2) == 1, "X509_set_version");
  ASN1_INTEGER_set(X509_get_serialNumber(x), spec.serial);
  X509_gmtime_adj(X509_getm_notBefore(x), spec.not_before_seconds);
  X509_gmtime_adj(X509_getm_notAfter(x), spec.not_after_seconds);
  X509_NAME* name = X509_get_subject_name(x);
  for (const auto& [field, value] : spec.subject) {
    require(X509_NAME_add_entry_by_txt(name, field.c_str(), MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>(value.data()),
                                       static_cast<int>(value.size()), -1, 0) == 1,
            "subject entry");
  }
  X509* signer = issuer != nullptr ? issuer : x;
  require(X509_set_issuer_name(x, X509_get_subject_name(signer)) == 1, "issuer name");
  require(X509_set_pubkey(x, key) == 1, "public key");
  if (spec.is_ca) {
    add_extension(x, signer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(x, signer, NID_basic_constraints, "CA:FALSE");
    add_extension(x, signer, NID_subject_alt_name, "DNS:localhost");
  }
  require(X509_sign(x, issuer_key != nullptr ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
  return certificate;
}

void write_certificate(const std::string& path, X509* certificate) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  require(file != nullptr && PEM_write_X509(file, certificate) == 1, "writing a certificate");
  std::fclose(file);
}

void write_key(const std::string& path, EVP_PKEY* key) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  require(file != nullptr && PEM_write_PrivateKey(file, key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "writing a key");
  std::fclose(file);
}

void write_crl(const std::string& path, X509* ca, EVP_PKEY* ca_key, long revoked_serial) {
  X509_CRL* crl = X509_CRL_new();
  require(crl != nullptr && X509_CRL_set_version(crl, 1) == 1, "X509_CRL_new");
  require(X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) == 1, "CRL issuer");
  ASN1_TIME* last = X509_gmtime_adj(nullptr, -3600);
  ASN1_TIME* next = X509_gmtime_adj(nullptr, 86400);
  require(X509_CRL_set1_lastUpdate(crl, last) == 1 && X509_CRL_set1_nextUpdate(crl, next) == 1, "CRL dates");
  X509_REVOKED* revoked = X509_REVOKED_new();
  ASN1_INTEGER* serial = ASN1_INTEGER_new();
  ASN1_INTEGER_set(serial, revoked_serial);
  require(X509_REVOKED_set_serialNumber(revoked, serial) == 1, "revoked serial");
  require(X509_REVOKED_set_revocationDate(revoked, last) == 1, "revocation date");
  require(X509_CRL_add0_revoked(crl, revoked) == 1, "X509_CRL_add0_revoked");
  require(X509_CRL_sort(crl) == 1 && X509_CRL_sign(crl, ca_key, EVP_sha256()) > 0, "X509_CRL_sign");
  std::FILE* file = std::fopen(path.c_str(), "w");
  require(file != nullptr && PEM_write_X509_CRL(file, crl) == 1, "writing the CRL");
  std::fclose(file);
  ASN1_INTEGER_free(serial);
  ASN1_TIME_free(last);
  ASN1_TIME_free(next);
  X509_CRL_free(crl);
}

}  // namespace

TestPki::TestPki(ServerKey server_key) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/coremq-pki-XXXXXX";
  require(mkdtemp(pattern.data()) != nullptr, "mkdtemp");
  directory_ = pattern;

  Key ca_key = make_key(ServerKey::kEcdsaP256);
  Certificate ca =
      make_certificate({{{"CN", "coremq test CA"}}, 1, -3600, 86400, true}, ca_key.get(), nullptr, nullptr);
  write_certificate(path("ca.pem"), ca.get());
  Key other_ca_key = make_key(ServerKey::kEcdsaP256);
  Certificate other_ca = make_certificate({{{"CN", "coremq other CA"}}, 1, -3600, 86400, true},
                                          other_ca_key.get(), nullptr, nullptr);
  write_certificate(path("other_ca.pem"), other_ca.get());

  auto issue = [&](const std::string& name, const CertificateSpec& spec, X509* issuer, EVP_PKEY* issuer_key,
                   ServerKey type) {
    Key key = make_key(type);
    Certificate certificate = make_certificate(spec, key.get(), issuer, issuer_key);
    write_certificate(path(name + ".pem"), certificate.get());
    write_key(path(name + ".key"), key.get());
  };
  issue("server", {{{"CN", "localhost"}}, 10}, ca.get(), ca_key.get(), server_key);
  issue("client", {{{"C", "NL"}, {"O", "coremq test"}, {"CN", "client-1"}}, 100}, ca.get(), ca_key.get(),
        ServerKey::kEcdsaP256);
  issue("expired", {{{"CN", "expired-1"}}, 101, -2 * 86400, -86400}, ca.get(), ca_key.get(),
        ServerKey::kEcdsaP256);
  issue("revoked", {{{"CN", "revoked-1"}}, 102}, ca.get(), ca_key.get(), ServerKey::kEcdsaP256);
  issue("nul_cn", {{{"CN", std::string("admin\0.evil", 11)}}, 103}, ca.get(), ca_key.get(),
        ServerKey::kEcdsaP256);
  issue("stranger", {{{"CN", "stranger-1"}}, 200}, other_ca.get(), other_ca_key.get(), ServerKey::kEcdsaP256);
  write_crl(path("crl.pem"), ca.get(), ca_key.get(), 102);
}

TestPki::~TestPki() {
  std::error_code ignored;
  std::filesystem::remove_all(directory_, ignored);
}

TlsOptions TestPki::server_options() const {
  TlsOptions options;
  options.certfile = path("server.pem");
  options.keyfile = path("server.key");
  return options;
}

// --- TestClient ---

TestClient::TestClient(const TestClientOptions& options) {
  context_ = SSL_CTX_new(TLS_client_method());
  require(context_ != nullptr, "SSL_CTX_new");
  SSL_CTX_set_min_proto_version(context_, options.min_version);
  SSL_CTX_set_max_proto_version(context_, options.max_version);
  if (!options.certificate.empty()) {
    require(SSL_CTX_use_certificate_file(context_, options.certificate.c_str(), SSL_FILETYPE_PEM) == 1,
            "client certificate");
    require(SSL_CTX_use_PrivateKey_file(context_, options.key.c_str(), SSL_FILETYPE_PEM) == 1, "client key");
  }
  if (!options.ca_file.empty()) {
    require(SSL_CTX_load_verify_file(context_, options.ca_file.c_str()) == 1, "client CA");
    SSL_CTX_set_verify(context_, SSL_VERIFY_PEER, nullptr);
  }
  ssl_ = SSL_new(context_);
  from_server_ = BIO_new(BIO_s_mem());
  to_server_ = BIO_new(BIO_s_mem());
  require(ssl_ != nullptr && from_server_ != nullptr && to_server_ != nullptr, "client SSL");
  // Memory BIOs answer "retry" when empty instead of end of file.
  BIO_set_mem_eof_return(from_server_, -1);
  SSL_set_bio(ssl_, from_server_, to_server_);
  SSL_set_connect_state(ssl_);
}

TestClient::~TestClient() {
  SSL_free(ssl_);
  SSL_CTX_free(context_);
}

std::string TestClient::take_output() {
  std::string bytes;
  char buffer[16384];
  int count;
  while ((count = BIO_read(to_server_, buffer, sizeof(buffer))) > 0)
    bytes.append(buffer, static_cast<size_t>(count));
  return bytes;
}

void TestClient::give(const base::ByteBuffer& wire) {
  if (!wire.empty()) BIO_write(from_server_, wire.data(), static_cast<int>(wire.size()));
}

transport::Transport::Status TestClient::handshake(transport::TlsTransport& server,
                                                   std::string* first_flight) {
  using Status = transport::Transport::Status;
  Status status = Status::kOk;
  for (int round = 0; round < 10; ++round) {
    ERR_clear_error();
    int result = SSL_do_handshake(ssl_);
    if (result != 1 && SSL_get_error(ssl_, result) != SSL_ERROR_WANT_READ) {
      error_ = ERR_reason_error_string(ERR_peek_last_error()) ? ERR_reason_error_string(ERR_peek_last_error())
                                                              : "?";
      ERR_clear_error();
    }
    std::string bytes = take_output();
    if (round == 0 && first_flight != nullptr) *first_flight = bytes;
    if (bytes.empty() && (result == 1 || !error_.empty())) break;
    base::ByteBuffer plain;
    base::ByteBuffer wire_out;
    status = server.decode({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, plain, wire_out);
    give(wire_out);
    if (status != Status::kOk) {
      // Let the client read the alert (a TLS 1.3 client may already count itself done).
      ERR_clear_error();
      char none[1];
      size_t count = 0;
      if (SSL_is_init_finished(ssl_)) {
        SSL_read_ex(ssl_, none, sizeof(none), &count);
      } else {
        SSL_do_handshake(ssl_);
      }
      if (error_.empty() && ERR_peek_last_error() != 0)
        error_ = ERR_reason_error_string(ERR_peek_last_error());
      ERR_clear_error();
      break;
    }
    if (result == 1 && server.established()) {
      // Read the session tickets the server sent after its Finished.
      char none[1];
      size_t count = 0;
      SSL_read_ex(ssl_, none, sizeof(none), &count);
      ERR_clear_error();
      break;
    }
  }
  return status;
}

transport::Transport::Status TestClient::send(transport::TlsTransport& server, const std::string& text,
                                              base::ByteBuffer& server_plain) {
  size_t written = 0;
  require(text.empty() || SSL_write_ex(ssl_, text.data(), text.size(), &written) == 1, "client SSL_write");
  std::string bytes = take_output();
  base::ByteBuffer wire_out;
  auto status =
      server.decode({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, server_plain, wire_out);
  give(wire_out);
  return status;
}

bool TestClient::receive(const base::ByteBuffer& server_wire, std::string* text, bool* closed) {
  give(server_wire);
  char buffer[16384];
  for (;;) {
    size_t count = 0;
    ERR_clear_error();
    int result = SSL_read_ex(ssl_, buffer, sizeof(buffer), &count);
    if (result == 1) {
      text->append(buffer, count);
      continue;
    }
    int error = SSL_get_error(ssl_, result);
    if (error == SSL_ERROR_WANT_READ) return true;
    if (error == SSL_ERROR_ZERO_RETURN) {
      if (closed != nullptr) *closed = true;
      return true;
    }
    error_ =
        ERR_peek_last_error() != 0 ? ERR_reason_error_string(ERR_peek_last_error()) : "client read error";
    ERR_clear_error();
    return false;
  }
}

}  // namespace coremq::testing
