// HttpAuthenticator (see http_auth.h).
#include "admin/http_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fstream>

#include "auth/password_hash.h"
#include "base/assert.h"
#include "base/log.h"

namespace coremq::admin {

namespace {
std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() &&
         (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' || text.back() == '\n')) {
    text.remove_suffix(1);
  }
  return text;
}

// Case-insensitive "Scheme " prefix (RFC 9110: the scheme is case-insensitive).
bool take_scheme(std::string_view* header, std::string_view scheme) {
  if (header->size() <= scheme.size() || (*header)[scheme.size()] != ' ') return false;
  for (size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>((*header)[i])) !=
        std::tolower(static_cast<unsigned char>(scheme[i]))) {
      return false;
    }
  }
  *header = trim(header->substr(scheme.size() + 1));
  return true;
}
}  // namespace

HttpAuthenticator::Digest HttpAuthenticator::sha256(std::string_view a, std::string_view b) {
  Digest digest{};
  unsigned int length = 0;
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  COREMQ_ASSERT_MSG(context != nullptr, "out of memory");
  uint8_t separator = 0;
  bool ok = EVP_DigestInit_ex(context, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(context, a.data(), a.size()) == 1 &&
            EVP_DigestUpdate(context, &separator, 1) == 1 &&
            EVP_DigestUpdate(context, b.data(), b.size()) == 1 &&
            EVP_DigestFinal_ex(context, digest.data(), &length) == 1;
  EVP_MD_CTX_free(context);
  COREMQ_ASSERT_MSG(ok && length == digest.size(), "SHA-256 failed");
  return digest;
}

std::unique_ptr<HttpAuthenticator> HttpAuthenticator::load(const Options& options, std::string* error) {
  error->clear();
  bool basic = !options.http_user.empty() || !options.http_password_file.empty();
  bool bearer = !options.http_token_file.empty();
  if (!basic && !bearer) return nullptr;
  if (basic && bearer) {
    *error = "--http-user/--http-password-file and --http-token-file exclude each other";
    return nullptr;
  }
  auto authenticator = std::unique_ptr<HttpAuthenticator>(new HttpAuthenticator());
  if (bearer) {
    std::ifstream file(options.http_token_file);
    std::string line;
    if (!file || !std::getline(file, line)) {
      *error = "--http-token-file " + options.http_token_file + ": cannot be read";
      return nullptr;
    }
    std::string_view token = trim(line);
    if (token.size() < 16) {
      *error = "--http-token-file " + options.http_token_file + ":1: the token is shorter than 16 characters";
      return nullptr;
    }
    authenticator->bearer_ = true;
    authenticator->token_digest_ = sha256(token, "");
    return authenticator;
  }
  if (options.http_user.empty() || options.http_password_file.empty()) {
    *error = "--http-user and --http-password-file go together";
    return nullptr;
  }
  std::vector<config::Diagnostic> diagnostics;
  authenticator->password_file_ = auth::load_password_file(options.http_password_file, {}, &diagnostics);
  for (const config::Diagnostic& diagnostic : diagnostics) {
    if (diagnostic.severity == config::Severity::kWarning)
      LOG_WARNING("%s", config::format_diagnostic(diagnostic));
  }
  if (authenticator->password_file_ == nullptr) {
    *error = "--http-password-file: ";
    for (const config::Diagnostic& diagnostic : diagnostics) {
      if (diagnostic.severity == config::Severity::kError) *error += config::format_diagnostic(diagnostic);
    }
    return nullptr;
  }
  if (authenticator->password_file_->find(options.http_user) == nullptr) {
    *error = "--http-password-file " + options.http_password_file + " has no usable entry for --http-user '" +
             options.http_user + "'";
    return nullptr;
  }
  authenticator->user_ = options.http_user;
  return authenticator;
}

bool HttpAuthenticator::allowed(std::string_view authorization) {
  authorization = trim(authorization);
  if (bearer_) {
    if (!take_scheme(&authorization, "Bearer")) return false;
    Digest offered = sha256(authorization, "");
    return CRYPTO_memcmp(offered.data(), token_digest_.data(), offered.size()) == 0;
  }
  if (!take_scheme(&authorization, "Basic")) return false;
  return basic_allowed(authorization);
}

bool HttpAuthenticator::basic_allowed(std::string_view credentials) {
  std::string decoded;
  if (credentials.size() > 4096 || !auth::base64_decode(credentials, &decoded)) return false;
  size_t colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  std::string_view user = std::string_view(decoded).substr(0, colon);
  std::string_view password = std::string_view(decoded).substr(colon + 1);
  if (user != user_ || password.empty()) return false;
  Digest digest = sha256(user, password);
  std::string key(reinterpret_cast<const char*>(digest.data()), digest.size());
  if (auto found = verdicts_.find(key); found != verdicts_.end()) return found->second;
  bool accepted = password_file_->verify(user, password) == auth::PasswordFile::Result::kAccepted;
  if (verdicts_.size() >= kCacheEntriesMax) verdicts_.clear();
  verdicts_.emplace(std::move(key), accepted);
  return accepted;
}

}  // namespace coremq::admin
