// The server side of TLS for one listener on one shard: an OpenSSL library context
// (OSSL_LIB_CTX) and an SSL_CTX built from the listener's TlsOptions, from which each
// accepted connection's TlsTransport makes its SSL.
//
// Why one per shard: OpenSSL 3 takes locks inside a library context (algorithm fetches,
// provider and name-map lookups, the session cache) on every handshake. Giving each shard its
// own library context and SSL_CTX means handshakes on different shards never contend on
// them (the issue asks for it; see ARCHITECTURE's TLS section).
//
// Threads and lifetime: created on the main thread at start-up (create() reads the
// certificate, key, CA and CRL files, which may block), then used only by its shard to make
// transports. A transport made here may be handed to another shard with its connection and
// outlive this TlsContext (a reload replaces the context for new connections while old
// connections keep theirs). So the library context and SSL_CTX live in a reference-counted
// Library that this context and every TlsTransport made from it hold: the last holder,
// on whichever shard it is, frees the SSL_CTX and then the library context (the OSSL_LIB_CTX
// is not reference counted by OpenSSL, and the SSL_CTX's own count alone would free the
// library context too early or never). The count is atomic and touched only when a
// connection is made or destroyed, never per message.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "coremq/options.h"

// OpenSSL's types, so this header does not pull in <openssl/ssl.h>.
typedef struct ossl_lib_ctx_st OSSL_LIB_CTX;
typedef struct ossl_provider_st OSSL_PROVIDER;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace coremq::transport {

class TlsContext {
 public:
  // The shared part: see the file comment. Held through LibraryRef.
  class Library {
   public:
    OSSL_LIB_CTX* library_context() const { return library_context_; }
    SSL_CTX* ssl_context() const { return ssl_context_; }
    const TlsOptions& options() const { return options_; }

   private:
    friend class TlsContext;
    friend class LibraryRef;
    Library() = default;
    ~Library();
    std::atomic<uint32_t> references_{1};
    OSSL_LIB_CTX* library_context_ = nullptr;
    OSSL_PROVIDER* default_provider_ = nullptr;
    bool owns_library_context_ = true;  // false: a shard's, which outlives every Library (see create)
    SSL_CTX* ssl_context_ = nullptr;
    TlsOptions options_;  // the few fields transports read (usernames)
  };

  // A counted reference to a Library; movable, not copyable (copy with share()).
  class LibraryRef {
   public:
    LibraryRef() = default;
    explicit LibraryRef(Library* library) : library_(library) {}
    LibraryRef(LibraryRef&& other) noexcept : library_(other.library_) { other.library_ = nullptr; }
    LibraryRef& operator=(LibraryRef&& other) noexcept;
    LibraryRef(const LibraryRef&) = delete;
    LibraryRef& operator=(const LibraryRef&) = delete;
    ~LibraryRef() { reset(); }

    LibraryRef share() const;
    void reset();
    const Library* operator->() const { return library_; }
    const Library* get() const { return library_; }

   private:
    Library* library_ = nullptr;
  };

  // Builds the context from `options` (server mode, TLS 1.2 and 1.3). On failure returns
  // null and sets `error` to a sentence naming the option or file at fault, e.g.
  // `keyfile "/etc/coremq/server.key" does not match certfile "/etc/coremq/server.crt"`.
  // Reads files: main thread only (start-up, or later a reload off the shard threads).
  // With `shard_library_context` the context is made in that library context, which the caller
  // keeps alive until every TlsContext and transport made in it is gone and every thread that
  // used it has exited (the broker keeps one per shard for its whole run, so reloads make only
  // a new SSL_CTX: OpenSSL 3.0 keeps per-thread state for each library context a thread used,
  // and freeing a library context while another thread still holds such state crashes that
  // thread's exit). Without it the context makes and owns its own (tests, benchmarks).
  [[nodiscard]] static std::unique_ptr<TlsContext> create(const TlsOptions& options, std::string* error,
                                                          OSSL_LIB_CTX* shard_library_context = nullptr);

  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  ~TlsContext() = default;

  // Makes this context accept the session tickets `other` issues and issue ones `other`
  // accepts. Each SSL_CTX draws random ticket keys, and SO_REUSEPORT sends a reconnecting
  // client to any shard, so without this a ticket resumes only on the shard that issued it.
  // Call at start-up for every shard's context of a listener with the first shard's, before
  // any connection; false only if OpenSSL refuses (then tickets stay per shard).
  [[nodiscard]] bool use_ticket_keys_of(const TlsContext& other);

  // A new server-side SSL for an accepted connection, with the caller's BIO attached by the
  // caller; null only when OpenSSL is out of memory. The owning shard's thread only.
  [[nodiscard]] SSL* new_ssl() const;
  // The reference a transport keeps so that the SSL_CTX and library context outlive its SSL.
  LibraryRef share() const { return library_.share(); }
  OSSL_LIB_CTX* library_context() const { return library_->library_context(); }
  SSL_CTX* ssl_context() const { return library_->ssl_context(); }

 private:
  explicit TlsContext(LibraryRef library) : library_(std::move(library)) {}
  LibraryRef library_;
};

}  // namespace coremq::transport
