// TlsContext: builds a listener's per-shard OpenSSL library context and SSL_CTX from its
// TlsOptions (main thread, start-up), and the counted Library that keeps them alive while any
// SSL made from them lives (any shard). See tls_context.h.
#include "transport/tls_context.h"

#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/provider.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "base/assert.h"
#include "transport/tls_errors.h"

namespace coremq::transport {

TlsContext::Library::~Library() {
  // The SSL_CTX first: freeing it releases keys and certificates whose methods live in
  // the library context's providers.
  SSL_CTX_free(ssl_context_);
  // The provider loaded explicitly holds a reference that freeing the library context alone
  // does not drop (LeakSanitizer showed it in fuzz_tls_server).
  if (default_provider_ != nullptr) OSSL_PROVIDER_unload(default_provider_);
  if (owns_library_context_) {
    // This thread's OpenSSL state for the context goes with it (OpenSSL 3.0 would otherwise
    // clean it up at this thread's exit, after the context is gone).
    OPENSSL_thread_stop_ex(library_context_);
    OSSL_LIB_CTX_free(library_context_);
  }
}

TlsContext::LibraryRef& TlsContext::LibraryRef::operator=(LibraryRef&& other) noexcept {
  if (this != &other) {
    reset();
    library_ = other.library_;
    other.library_ = nullptr;
  }
  return *this;
}

TlsContext::LibraryRef TlsContext::LibraryRef::share() const {
  COREMQ_ASSERT(library_ != nullptr);
  // Relaxed is enough to take a reference from one already held (as for shared_ptr).
  library_->references_.fetch_add(1, std::memory_order_relaxed);
  return LibraryRef(library_);
}

void TlsContext::LibraryRef::reset() {
  if (library_ == nullptr) return;
  // acq_rel: the thread that frees must see every other holder's use of the SSL_CTX
  // (a connection closed on another shard) as done.
  if (library_->references_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete library_;
  library_ = nullptr;
}

namespace {

// Encrypted keys are not supported: without this OpenSSL would prompt on the terminal.
int refuse_passphrase(char*, int, int, void*) {
  return -1;
}

// "certfile \"path\": <why>" when the file cannot be opened, so the common mistakes (wrong
// path, wrong permissions) get the system's words rather than OpenSSL's "system lib".
bool check_readable(const char* option, const std::string& path, std::string* error) {
  std::FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) {
    *error = std::string(option) + " \"" + path + "\": " + std::strerror(errno);
    return false;
  }
  std::fclose(file);
  return true;
}

std::string file_error(const char* option, const std::string& path, const char* what) {
  return std::string(option) + " \"" + path + "\": " + what + ": " + take_openssl_errors();
}

bool set_min_version(SSL_CTX* context, const std::string& min_version, std::string* error) {
  int version = 0;
  if (min_version == "tlsv1.2") {
    version = TLS1_2_VERSION;
  } else if (min_version == "tlsv1.3") {
    version = TLS1_3_VERSION;
  } else {
    *error = "tls min_version \"" + min_version + "\": expected tlsv1.2 or tlsv1.3";
    return false;
  }
  if (SSL_CTX_set_min_proto_version(context, version) != 1 ||
      SSL_CTX_set_max_proto_version(context, TLS1_3_VERSION) != 1) {
    *error = "tls min_version \"" + min_version + "\": " + take_openssl_errors();
    return false;
  }
  return true;
}

bool load_server_identity(SSL_CTX* context, const TlsOptions& options, std::string* error) {
  if (options.certfile.empty() || options.keyfile.empty()) {
    *error = "a TLS listener needs both certfile and keyfile";
    return false;
  }
  if (!check_readable("certfile", options.certfile, error)) return false;
  if (!check_readable("keyfile", options.keyfile, error)) return false;
  // Both calls read through the SSL_CTX's own library context in OpenSSL 3
  // (X509_new_ex / PEM_read_bio_PrivateKey_ex with ctx->libctx), so the key's methods come
  // from this shard's providers.
  if (SSL_CTX_use_certificate_chain_file(context, options.certfile.c_str()) != 1) {
    *error = file_error("certfile", options.certfile, "cannot load the certificate chain");
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(context, options.keyfile.c_str(), SSL_FILETYPE_PEM) != 1) {
    std::string why = take_openssl_errors();
    if (why.find("key values mismatch") != std::string::npos) {
      *error = "keyfile \"" + options.keyfile + "\" does not match certfile \"" + options.certfile + "\"";
    } else {
      *error = "keyfile \"" + options.keyfile + "\": cannot load the private key: " + why;
    }
    return false;
  }
  if (SSL_CTX_check_private_key(context) != 1) {
    take_openssl_errors();
    *error = "keyfile \"" + options.keyfile + "\" does not match certfile \"" + options.certfile + "\"";
    return false;
  }
  return true;
}

// The hashed names OpenSSL's CA directory lookup reads: 8 hex digits of the subject hash, a
// dot, an optional "r" (a CRL) and a sequence number, as `openssl rehash` makes them.
bool is_hashed_name(const std::string& name) {
  size_t dot = name.find('.');
  if (dot != 8 || name.size() < 10) return false;
  for (size_t i = 0; i < 8; ++i) {
    if (!std::isxdigit(static_cast<unsigned char>(name[i]))) return false;
  }
  size_t digits = name[9] == 'r' ? 10 : 9;
  if (digits >= name.size()) return false;
  for (size_t i = digits; i < name.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return false;
  }
  return true;
}

// capath: every hashed certificate (and CRL) of the directory is read now, into the store.
// OpenSSL's own directory lookup (SSL_CTX_load_verify_dir) would read the files lazily,
// during a handshake, that is from disk on a shard thread; this reads them once, at start-up
// or reload. A file added to the directory later is seen at the next reload.
bool load_ca_directory(SSL_CTX* context, OSSL_LIB_CTX* library_context, const std::string& directory,
                       std::string* error) {
  std::error_code failure;
  std::vector<std::string> names;
  for (std::filesystem::directory_iterator it(directory, failure), end; !failure && it != end;
       it.increment(failure)) {
    std::string name = it->path().filename().string();
    if (is_hashed_name(name)) names.push_back(name);
  }
  if (failure) {
    *error = "capath \"" + directory + "\": " + failure.message();
    return false;
  }
  if (names.empty()) {
    *error = "capath \"" + directory +
             "\": no hashed CA certificates (files named like 1a2b3c4d.0, as `openssl rehash` makes)";
    return false;
  }
  std::sort(names.begin(), names.end());
  X509_LOOKUP* lookup = X509_STORE_add_lookup(SSL_CTX_get_cert_store(context), X509_LOOKUP_file());
  for (const std::string& name : names) {
    std::string path = directory + "/" + name;
    if (lookup == nullptr ||
        X509_load_cert_crl_file_ex(lookup, path.c_str(), X509_FILETYPE_PEM, library_context, nullptr) < 1) {
      *error = file_error("capath", path, "cannot load a CA certificate or CRL");
      return false;
    }
  }
  return true;
}

bool load_client_verification(SSL_CTX* context, OSSL_LIB_CTX* library_context, const TlsOptions& options,
                              std::string* error) {
  if (!options.cafile.empty()) {
    if (!check_readable("cafile", options.cafile, error)) return false;
    if (SSL_CTX_load_verify_file(context, options.cafile.c_str()) != 1) {
      *error = file_error("cafile", options.cafile, "cannot load CA certificates");
      return false;
    }
  }
  if (!options.capath.empty() && !load_ca_directory(context, library_context, options.capath, error))
    return false;
  if (options.require_certificate && options.cafile.empty() && options.capath.empty()) {
    *error = "require_certificate needs cafile or capath to check client certificates against";
    return false;
  }
  // As Mosquitto: a certificate is asked for only with require_certificate; a cafile alone
  // does not make the server send a CertificateRequest (Mosquitto's listener set-up in
  // src/net.c passes SSL_VERIFY_NONE unless require_certificate).
  SSL_CTX_set_verify(
      context,
      options.require_certificate ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE,
      nullptr);
  if (!options.crlfile.empty()) {
    if (!check_readable("crlfile", options.crlfile, error)) return false;
    X509_STORE* store = SSL_CTX_get_cert_store(context);
    X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
    if (lookup == nullptr || X509_load_crl_file(lookup, options.crlfile.c_str(), X509_FILETYPE_PEM) < 1) {
      *error = file_error("crlfile", options.crlfile, "cannot load the CRL");
      return false;
    }
    // The client's own certificate is checked against the CRL (Mosquitto's flag); every
    // client certificate's issuer then needs a CRL in the file, or verification fails with
    // "unable to get certificate CRL".
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  }
  return true;
}

bool set_ciphers(SSL_CTX* context, const TlsOptions& options, std::string* error) {
  if (!options.ciphers.empty() && SSL_CTX_set_cipher_list(context, options.ciphers.c_str()) != 1) {
    *error = "tls ciphers \"" + options.ciphers + "\": " + take_openssl_errors();
    return false;
  }
  if (!options.ciphersuites.empty() && SSL_CTX_set_ciphersuites(context, options.ciphersuites.c_str()) != 1) {
    *error = "tls ciphersuites \"" + options.ciphersuites + "\": " + take_openssl_errors();
    return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<TlsContext> TlsContext::create(const TlsOptions& options, std::string* error,
                                               OSSL_LIB_CTX* shard_library_context) {
  COREMQ_ASSERT(error != nullptr);
  ERR_clear_error();
  // Owned by `reference` from here on, so every early return frees what was made.
  auto* library = new Library();
  LibraryRef reference(library);
  library->options_ = options;
  library->owns_library_context_ = shard_library_context == nullptr;
  library->library_context_ = shard_library_context != nullptr ? shard_library_context : OSSL_LIB_CTX_new();
  // A fresh library context reads no configuration file and would load the default provider
  // on first use; load it now so a broken installation fails here, not on a handshake.
  if (library->library_context_ != nullptr) {
    library->default_provider_ = OSSL_PROVIDER_load(library->library_context_, "default");
  }
  if (library->default_provider_ == nullptr) {
    *error = "cannot make an OpenSSL library context: " + take_openssl_errors();
    return nullptr;
  }
  library->ssl_context_ = SSL_CTX_new_ex(library->library_context_, nullptr, TLS_server_method());
  if (library->ssl_context_ == nullptr) {
    *error = "cannot make an OpenSSL SSL_CTX: " + take_openssl_errors();
    return nullptr;
  }
  SSL_CTX* context = library->ssl_context_;
  SSL_CTX_set_default_passwd_cb(context, refuse_passphrase);
  // RELEASE_BUFFERS: an idle connection gives its 16 KiB read and write record buffers back
  // (the idle-memory goal). No renegotiation (a client-driven CPU sink) and the
  // server's cipher order, as Mosquitto.
  SSL_CTX_set_mode(context, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(context,
                      SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  // Resumption is by session ticket only (OpenSSL's defaults: stateless tickets, two after a
  // TLS 1.3 handshake, one in TLS 1.2), so the server keeps nothing per past session: the
  // stateful cache is off, otherwise every cleanly closed TLS 1.2 connection would leave an
  // entry (up to 20480 per SSL_CTX, that is per shard and listener). The session id context
  // is still needed: OpenSSL refuses to resume a session whose client certificate was
  // verified without one.
  SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
  static constexpr unsigned char kSessionContext[] = "coremq";
  SSL_CTX_set_session_id_context(context, kSessionContext, sizeof(kSessionContext) - 1);

  if (!set_min_version(context, options.min_version, error) || !set_ciphers(context, options, error) ||
      !load_server_identity(context, options, error) ||
      !load_client_verification(context, library->library_context_, options, error)) {
    ERR_clear_error();
    return nullptr;
  }
  // The creating thread (the controlling one) is done with the library context: its per-thread
  // OpenSSL state for it goes now, so that whichever thread frees the context last (a shard,
  // after a hand-off) leaves nothing dangling in this thread's exit handlers (OpenSSL 3.0).
  OPENSSL_thread_stop_ex(library->library_context_);
  return std::unique_ptr<TlsContext>(new TlsContext(std::move(reference)));
}

bool TlsContext::use_ticket_keys_of(const TlsContext& other) {
  // 80 bytes in OpenSSL 3: key name, HMAC secret, AES key. Copied once at start-up, on the
  // main thread, before either context serves a connection.
  unsigned char keys[80];
  ERR_clear_error();
  bool copied = SSL_CTX_ctrl(other.ssl_context(), SSL_CTRL_GET_TLSEXT_TICKET_KEYS, sizeof(keys), keys) == 1 &&
                SSL_CTX_ctrl(ssl_context(), SSL_CTRL_SET_TLSEXT_TICKET_KEYS, sizeof(keys), keys) == 1;
  OPENSSL_cleanse(keys, sizeof(keys));
  ERR_clear_error();
  return copied;
}

SSL* TlsContext::new_ssl() const {
  // SSL_new takes its own reference on the SSL_CTX; the library context is kept alive by the
  // LibraryRef the transport holds (share()).
  return SSL_new(library_->ssl_context());
}

}  // namespace coremq::transport
