// libFuzzer target for the TLS server side (src/transport/tls_transport.cc): arbitrary bytes
// as what a client sends first (the ClientHello and whatever follows), fed to a fresh
// TlsTransport in pieces whose sizes come from the input.
//
// Input: byte 0 picks the piece size (1 + byte0 % 64 bytes, or the whole rest when it is
// 0xff, to reach both the record reassembly and single-shot paths); the rest is the wire.
// The server context has a client-certificate CA and a CRL so verification code is loaded.
// The seed corpus (corpus/fuzz_tls_server/) holds real TLS 1.2 and 1.3 ClientHellos captured
// from TestClient::handshake's first flight in the unit tests, and a plain MQTT CONNECT.
//
// Checked on every input: no crash, sanitizer report or assertion (decode asserts that a kOk
// left no input unconsumed); kError comes with a message; no application bytes appear before
// a handshake (random bytes cannot finish one); after kError every call answers kError and
// writes nothing.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "test_pki.h"
#include "transport/tls_context.h"
#include "transport/tls_transport.h"

namespace {

using coremq::transport::TlsContext;
using coremq::transport::TlsTransport;
using Status = coremq::transport::Transport::Status;

void check(bool condition, const char* what) {
  if (!condition) {
    std::printf("fuzz_tls_server: invariant broken: %s\n", what);
    std::abort();
  }
}

const TlsContext& context() {
  // Made once per process; the PKI directory is removed at exit.
  static coremq::testing::TestPki pki;
  static std::unique_ptr<TlsContext> made = [] {
    coremq::TlsOptions options = pki.server_options();
    options.cafile = pki.path("ca.pem");
    options.crlfile = pki.path("crl.pem");
    options.use_subject_as_username = true;
    std::string error;
    auto built = TlsContext::create(options, &error);
    if (built == nullptr) {
      std::printf("fuzz_tls_server: %s\n", error.c_str());
      std::abort();
    }
    return built;
  }();
  return *made;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t piece = data[0] == 0xff ? size : 1 + data[0] % 64;
  std::string error;
  auto server = TlsTransport::create(context(), &error);
  check(server != nullptr, "TlsTransport::create");
  coremq::base::ByteBuffer plain;
  coremq::base::ByteBuffer wire_out;
  Status status = Status::kOk;
  for (size_t at = 1; at < size && status == Status::kOk;) {
    size_t count = piece < size - at ? piece : size - at;
    status = server->decode({data + at, count}, plain, wire_out);
    at += count;
  }
  check(!server->established(), "random bytes finished a handshake");
  check(plain.empty(), "application bytes before a handshake");
  if (status == Status::kError) {
    check(!server->error().empty(), "kError without a message");
    coremq::base::ByteBuffer more;
    check(server->decode({data, size}, plain, more) == Status::kError, "kError is final");
    check(more.empty(), "output after kError");
  }
  server->encode_close(1000, wire_out);
  return 0;
}
