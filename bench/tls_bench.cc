// What a TLS connection costs the broker, measured in memory on one core (no sockets):
//
//  1. Bytes per idle established server-side connection: OpenSSL's live allocations (counted
//     by a CRYPTO_set_mem_functions allocator installed before OpenSSL's first allocation)
//     after N handshakes and one small message each way, with every client freed, divided by
//     N, plus sizeof(TlsTransport). For TLS 1.3, TLS 1.3 with a client certificate (the
//     server keeps the peer certificate) and TLS 1.2 (the server's session cache keeps an
//     entry per full handshake). Expected: a few KiB (SSL_MODE_RELEASE_BUFFERS frees the
//     16 KiB record buffers; what remains is the SSL object, cipher contexts and session).
//     Also the bytes of a fresh SSL (before the first byte arrives), most of the total.
//  2. Full TLS 1.3 handshakes per second of one core's CPU time with RSA-2048 and ECDSA P-256 server keys:
//  the server
//     side alone (time inside TlsTransport::decode) and the client+server pair. Expected: on
//     the order of 1-2 thousand per second for RSA-2048 (one private-key signature each) and
//     several thousand for P-256, per core.
//
// Usage: build/bench/tls_bench [connections] [handshake-seconds]   (defaults 2000, 2)
// Bounded: at most `connections` live connections and 50000 handshakes per key type.
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "test_pki.h"
#include "transport/tls_context.h"
#include "transport/tls_transport.h"

namespace {

using coremq::testing::ServerKey;
using coremq::testing::TestClient;
using coremq::testing::TestClientOptions;
using coremq::testing::TestPki;
using coremq::transport::TlsContext;
using coremq::transport::TlsTransport;
using Status = coremq::transport::Transport::Status;

// CPU time of this thread: the machine may be shared (a 2-core box running builds), so wall
// time would measure the neighbours; the figures are per core of CPU actually used.
struct ThreadCpuClock {
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<ThreadCpuClock>;
  static time_point now() {
    timespec now{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return time_point(duration(int64_t{now.tv_sec} * 1000000000 + now.tv_nsec));
  }
};
using Clock = ThreadCpuClock;

// --- counting allocator: a 16-byte header in front of each block holds its size ---
std::atomic<int64_t> live_bytes{0};
std::atomic<int64_t> live_blocks{0};
constexpr size_t kHeader = 16;

void* counted_malloc(size_t size, const char*, int) {
  auto* block = static_cast<unsigned char*>(std::malloc(size + kHeader));
  if (block == nullptr) return nullptr;
  std::memcpy(block, &size, sizeof(size));
  live_bytes.fetch_add(static_cast<int64_t>(size), std::memory_order_relaxed);
  live_blocks.fetch_add(1, std::memory_order_relaxed);
  return block + kHeader;
}

void counted_free(void* pointer, const char*, int) {
  if (pointer == nullptr) return;
  unsigned char* block = static_cast<unsigned char*>(pointer) - kHeader;
  size_t size;
  std::memcpy(&size, block, sizeof(size));
  live_bytes.fetch_sub(static_cast<int64_t>(size), std::memory_order_relaxed);
  live_blocks.fetch_sub(1, std::memory_order_relaxed);
  std::free(block);
}

void* counted_realloc(void* pointer, size_t size, const char* file, int line) {
  if (pointer == nullptr) return counted_malloc(size, file, line);
  if (size == 0) {
    counted_free(pointer, file, line);
    return nullptr;
  }
  void* fresh = counted_malloc(size, file, line);
  if (fresh == nullptr) return nullptr;
  size_t old_size;
  std::memcpy(&old_size, static_cast<unsigned char*>(pointer) - kHeader, sizeof(old_size));
  std::memcpy(fresh, pointer, old_size < size ? old_size : size);
  counted_free(pointer, file, line);
  return fresh;
}

void fail(const char* what, const std::string& why) {
  std::fprintf(stderr, "tls_bench: %s: %s\n", what, why.c_str());
  std::exit(1);
}

std::unique_ptr<TlsContext> make_context(const coremq::TlsOptions& options) {
  std::string error;
  auto context = TlsContext::create(options, &error);
  if (context == nullptr) fail("TlsContext::create", error);
  return context;
}

void fresh_ssl(const TlsContext& context, int count) {
  std::vector<std::unique_ptr<TlsTransport>> servers;
  int64_t bytes_before = live_bytes.load();
  for (int i = 0; i < count; ++i) {
    std::string error;
    servers.push_back(TlsTransport::create(context, &error));
    if (servers.back() == nullptr) fail("TlsTransport::create", error);
  }
  std::printf("fresh TlsTransport before any byte %6.0f B OpenSSL per connection\n",
              static_cast<double>(live_bytes.load() - bytes_before) / count);
}

// Establishes `count` connections, exchanges a CONNECT-sized message each way, frees the
// clients and reports what the servers keep.
void idle_memory(const char* label, const TlsContext& context, const TestClientOptions& client_options,
                 int count) {
  std::vector<std::unique_ptr<TlsTransport>> servers;
  servers.reserve(static_cast<size_t>(count));
  int64_t bytes_before = live_bytes.load();
  int64_t blocks_before = live_blocks.load();
  std::string message(32, 'm');
  for (int i = 0; i < count; ++i) {
    std::string error;
    auto server = TlsTransport::create(context, &error);
    if (server == nullptr) fail("TlsTransport::create", error);
    TestClient client(client_options);
    if (client.handshake(*server) != Status::kOk || !server->established())
      fail("handshake", server->error().data());
    coremq::base::ByteBuffer plain;
    if (client.send(*server, message, plain) != Status::kOk) fail("client send", server->error().data());
    coremq::base::ByteBuffer wire;
    if (server->encode(plain.span(), wire) != Status::kOk) fail("server encode", server->error().data());
    std::string echoed;
    if (!client.receive(wire, &echoed) || echoed != message) fail("client receive", client.last_error());
    servers.push_back(std::move(server));
  }
  double per_connection = static_cast<double>(live_bytes.load() - bytes_before) / count;
  double blocks = static_cast<double>(live_blocks.load() - blocks_before) / count;
  std::printf("idle %-28s %6.0f B OpenSSL in %4.1f blocks + %zu B TlsTransport per connection\n", label,
              per_connection, blocks, sizeof(TlsTransport));
}

void handshake_rate(const char* label, const TlsContext& context, double seconds) {
  TestClientOptions client_options;  // full handshakes, no client certificate
  int done = 0;
  Clock::duration server_time{};
  Clock::time_point start = Clock::now();
  while (done < 50000 && Clock::now() - start < std::chrono::duration<double>(seconds)) {
    std::string error;
    auto server = TlsTransport::create(context, &error);
    TestClient client(client_options);
    // The client's flights are produced by TestClient::handshake; time the server's part by
    // driving the rounds by hand.
    Status status = Status::kOk;
    for (int round = 0; round < 4 && !server->established(); ++round) {
      SSL_do_handshake(client.ssl());
      std::string bytes = client.take_output();
      coremq::base::ByteBuffer plain;
      coremq::base::ByteBuffer wire_out;
      Clock::time_point before = Clock::now();
      status =
          server->decode({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, plain, wire_out);
      server_time += Clock::now() - before;
      if (status != Status::kOk) fail("handshake", server->error().data());
      client.give(wire_out);
    }
    if (!server->established()) fail("handshake", "did not finish");
    ++done;
  }
  double total = std::chrono::duration<double>(Clock::now() - start).count();
  double server_seconds = std::chrono::duration<double>(server_time).count();
  std::printf(
      "handshakes TLS 1.3 %-12s %6.0f/s server side alone, %6.0f/s client+server (%d in %.1f s of CPU)\n",
      label, done / server_seconds, done / total, done, total);
}

}  // namespace

int main(int argc, char** argv) {
  // Before anything makes OpenSSL allocate.
  if (CRYPTO_set_mem_functions(counted_malloc, counted_realloc, counted_free) != 1) {
    fail("CRYPTO_set_mem_functions", "OpenSSL allocated before main");
  }
  int connections = argc > 1 ? std::atoi(argv[1]) : 2000;
  double seconds = argc > 2 ? std::atof(argv[2]) : 2.0;
  if (connections < 1 || connections > 100000 || seconds <= 0 || seconds > 60) {
    std::fprintf(stderr, "usage: tls_bench [connections 1..100000] [handshake-seconds 0..60]\n");
    return 2;
  }

  TestPki ecdsa(ServerKey::kEcdsaP256);
  TestPki rsa(ServerKey::kRsa2048);
  {
    auto context = make_context(ecdsa.server_options());
    fresh_ssl(*context, connections);
    idle_memory("TLS 1.3", *context, {}, connections);
    idle_memory("TLS 1.2", *context, {.max_version = TLS1_2_VERSION}, connections);
  }
  {
    coremq::TlsOptions options = ecdsa.server_options();
    options.cafile = ecdsa.path("ca.pem");
    options.require_certificate = true;
    options.use_identity_as_username = true;
    auto context = make_context(options);
    idle_memory("TLS 1.3 with client cert", *context,
                {.certificate = ecdsa.path("client.pem"), .key = ecdsa.path("client.key")}, connections);
  }
  {
    auto context = make_context(ecdsa.server_options());
    handshake_rate("ECDSA P-256", *context, seconds);
  }
  {
    auto context = make_context(rsa.server_options());
    handshake_rate("RSA-2048", *context, seconds);
  }
  return 0;
}
