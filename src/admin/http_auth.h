// Who may use the HTTP admin listener: nobody needs credentials (no option set), HTTP basic
// authentication of one user against a Mosquitto password file (--http-user,
// --http-password-file), or a bearer token read from a file (--http-token-file). Hashing a
// password costs up to tens of milliseconds (argon2id), so verdicts are cached by a SHA-256
// of the credentials (never the password itself); the cache is bounded and starts over when
// full. Tokens are compared as SHA-256 digests with CRYPTO_memcmp: constant time whatever
// their lengths. Loaded at start on the controlling thread; checked on the admin thread only.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "auth/password_file.h"
#include "coremq/options.h"

namespace coremq::admin {

class HttpAuthenticator {
 public:
  // Verdicts kept before the cache starts over.
  static constexpr size_t kCacheEntriesMax = 1024;

  // From Options' http_* fields. Null with *error empty: no authentication configured;
  // null with *error set: a file could not be read or the options do not go together.
  static std::unique_ptr<HttpAuthenticator> load(const Options& options, std::string* error);

  // `authorization`: the request's Authorization header (empty if none). Admin thread only.
  bool allowed(std::string_view authorization);
  // The WWW-Authenticate value a 401 carries.
  const char* challenge() const {
    return bearer_ ? "Bearer realm=\"coremq\"" : "Basic realm=\"coremq\", charset=\"UTF-8\"";
  }

 private:
  using Digest = std::array<uint8_t, 32>;
  static Digest sha256(std::string_view a, std::string_view b);
  bool basic_allowed(std::string_view credentials);

  bool bearer_ = false;
  Digest token_digest_{};
  std::string user_;
  std::shared_ptr<const auth::PasswordFile> password_file_;
  absl::flat_hash_map<std::string, bool> verdicts_;  // key: the digest's bytes
};

}  // namespace coremq::admin
