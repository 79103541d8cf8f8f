// The BIO between OpenSSL and a sans-I/O TLS transport (the broker's TlsTransport, mqtt-bench's
// client): during one call of the transport OpenSSL reads from the bytes the caller handed in
// and writes straight into the caller's output buffer, so no record is copied through a memory
// BIO pair. Reading with no input left asks OpenSSL to retry (SSL_ERROR_WANT_READ, never end of
// file); writing never blocks. Single-threaded, like the transport that owns the window.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/byte_buffer.h"

typedef struct bio_st BIO;
typedef struct ossl_lib_ctx_st OSSL_LIB_CTX;

namespace coremq::transport {

// What the BIO reads and writes during the current call; empty between calls (OpenSSL then
// reads nothing and a write fails).
struct CallWindow {
  const uint8_t* input = nullptr;
  size_t input_size = 0;
  base::ByteBuffer* output = nullptr;
};

// A BIO over *window, which must outlive it (its address is stable: the transports keep it in
// themselves and live on the heap). Null when OpenSSL is out of memory.
BIO* new_call_bio(OSSL_LIB_CTX* library_context, CallWindow* window);

}  // namespace coremq::transport
