// Mosquitto password hashes ($6$, $7$, $argon2id$): parsing, checking and making them with
// OpenSSL 3 (SHA-512, PBKDF2, RAND, CRYPTO_memcmp) and libargon2. See password_hash.h.
// Thread-safe; the verify and create functions are slow and belong on the verifier pool or in
// coremq-passwd, never on a shard thread.
#include "auth/password_hash.h"

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>
#include <memory>

#include "absl/strings/str_format.h"
#include "base/assert.h"

namespace coremq::auth {

namespace {

constexpr std::string_view kPrefixSha512 = "$6$";
constexpr std::string_view kPrefixPbkdf2 = "$7$";
constexpr std::string_view kPrefixArgon2id = "$argon2id$";
constexpr std::string_view kArgon2Version = "v=19";
constexpr char kBase64Alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
// libargon2's bounds on what it will verify; checked here so that a string passing parse_hash
// never fails inside libargon2 for its shape.
constexpr size_t kArgon2SaltBytesMin = 8;
constexpr size_t kArgon2DigestBytesMin = 4;
constexpr size_t kArgon2FieldBytesMax = 64;

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Decodes base64 with padding (padded) or without it (libargon2's form).
bool decode_base64(std::string_view text, bool padded, std::string* bytes) {
  bytes->clear();
  size_t padding = 0;
  if (padded) {
    if (text.size() % 4 != 0) return false;
    while (padding < 2 && !text.empty() && text.back() == '=') {
      text.remove_suffix(1);
      ++padding;
    }
  }
  // 4k+1 characters cannot come from any byte count.
  if (text.size() % 4 == 1) return false;
  if (padded && padding != (4 - text.size() % 4) % 4) return false;
  uint32_t accumulator = 0;
  int bits = 0;
  for (char c : text) {
    int value = base64_value(c);
    if (value < 0) return false;
    accumulator = (accumulator << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes->push_back(static_cast<char>((accumulator >> bits) & 0xff));
    }
  }
  // libargon2 refuses unpadded text whose unused low bits are not zero; OpenSSL's decoder,
  // which Mosquitto uses for the padded form, ignores them.
  if (!padded && (accumulator & ((1u << bits) - 1)) != 0) return false;
  return true;
}

std::string encode_base64(std::string_view bytes, bool padded) {
  std::string text;
  text.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t group = (static_cast<uint32_t>(static_cast<uint8_t>(bytes[i])) << 16) |
                     (static_cast<uint32_t>(static_cast<uint8_t>(bytes[i + 1])) << 8) |
                     static_cast<uint32_t>(static_cast<uint8_t>(bytes[i + 2]));
    for (int shift = 18; shift >= 0; shift -= 6) text.push_back(kBase64Alphabet[(group >> shift) & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t group = static_cast<uint32_t>(static_cast<uint8_t>(bytes[i])) << 16;
    if (rest == 2) group |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[i + 1])) << 8;
    text.push_back(kBase64Alphabet[(group >> 18) & 63]);
    text.push_back(kBase64Alphabet[(group >> 12) & 63]);
    if (rest == 2) text.push_back(kBase64Alphabet[(group >> 6) & 63]);
    if (padded) text.append(rest == 1 ? "==" : "=");
  }
  return text;
}

// A decimal uint32 of digits only (no sign, no blanks), as mosquitto_passwd and libargon2
// write it. libargon2 refuses a leading zero ("m=08"); Mosquitto's atoi takes it in "$7$0101$".
bool parse_decimal(std::string_view text, uint32_t* value, bool leading_zero_allowed) {
  if (text.empty() || text.size() > 10) return false;
  if (!leading_zero_allowed && text.size() > 1 && text.front() == '0') return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  uint64_t parsed = 0;
  auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  if (status != std::errc() || end != text.data() + text.size() || parsed > UINT32_MAX) return false;
  *value = static_cast<uint32_t>(parsed);
  return true;
}

// Splits text on '$' into exactly `count` fields; false if there are more or fewer.
template <size_t count>
bool split_fields(std::string_view text, std::array<std::string_view, count>* fields) {
  for (size_t i = 0; i < count; ++i) {
    size_t end = text.find('$');
    if (i + 1 < count) {
      if (end == std::string_view::npos) return false;
      (*fields)[i] = text.substr(0, end);
      text.remove_prefix(end + 1);
    } else {
      if (end != std::string_view::npos) return false;
      (*fields)[i] = text;
    }
  }
  return true;
}

bool valid_salt_length(size_t bytes) {
  return bytes == kSaltBytesShort || bytes == kSaltBytesLong;
}

HashParse parse_salted(HashScheme scheme, std::string_view salt_text, std::string_view digest_text,
                       ParsedHash* hash, std::string* reason) {
  if (!decode_base64(salt_text, true, &hash->salt)) {
    *reason = "the salt is not base64";
    return HashParse::kMalformed;
  }
  if (!valid_salt_length(hash->salt.size())) {
    *reason = absl::StrFormat("the salt is %u bytes, not %u or %u", hash->salt.size(), kSaltBytesShort,
                              kSaltBytesLong);
    return HashParse::kMalformed;
  }
  if (!decode_base64(digest_text, true, &hash->digest)) {
    *reason = "the hash is not base64";
    return HashParse::kMalformed;
  }
  if (hash->digest.size() != kDigestBytes) {
    *reason = absl::StrFormat("the hash is %u bytes, not %u", hash->digest.size(), kDigestBytes);
    return HashParse::kMalformed;
  }
  hash->scheme = scheme;
  return HashParse::kOk;
}

// $argon2id$v=19$m=M,t=T,p=P$SALT$HASH, salt and hash in unpadded base64.
HashParse parse_argon2id(std::string_view text, const HashLimits& limits, ParsedHash* hash,
                         std::string* reason) {
  std::array<std::string_view, 4> fields;
  if (!split_fields(text.substr(kPrefixArgon2id.size()), &fields)) {
    *reason = "an argon2id hash has 4 fields after $argon2id$ (v=19$m=M,t=T,p=P$SALT$HASH)";
    return HashParse::kMalformed;
  }
  if (fields[0] != kArgon2Version) {
    *reason = "an argon2id hash must say v=19";
    return HashParse::kMalformed;
  }
  std::string_view costs = fields[1];
  std::array<std::pair<std::string_view, uint32_t*>, 3> expected = {
      {{"m=", &hash->memory_kib}, {"t=", &hash->iterations}, {"p=", &hash->parallelism}}};
  for (size_t i = 0; i < expected.size(); ++i) {
    size_t end = costs.find(',');
    std::string_view field = i + 1 < expected.size() ? costs.substr(0, end) : costs;
    if ((i + 1 < expected.size() && end == std::string_view::npos) ||
        field.substr(0, 2) != expected[i].first ||
        !parse_decimal(field.substr(2), expected[i].second, false)) {
      *reason = "an argon2id hash's costs must read m=M,t=T,p=P";
      return HashParse::kMalformed;
    }
    if (end != std::string_view::npos) costs.remove_prefix(end + 1);
  }
  std::string salt;
  std::string digest;
  if (!decode_base64(fields[2], false, &salt) || !decode_base64(fields[3], false, &digest)) {
    *reason = "an argon2id salt or hash is not base64";
    return HashParse::kMalformed;
  }
  if (salt.size() < kArgon2SaltBytesMin || salt.size() > kArgon2FieldBytesMax ||
      digest.size() < kArgon2DigestBytesMin || digest.size() > kArgon2FieldBytesMax) {
    *reason =
        absl::StrFormat("an argon2id salt must be %u to %u bytes and its hash %u to %u", kArgon2SaltBytesMin,
                        kArgon2FieldBytesMax, kArgon2DigestBytesMin, kArgon2FieldBytesMax);
    return HashParse::kMalformed;
  }
  if (hash->iterations < 1 || hash->parallelism < 1 || hash->memory_kib < 8 * hash->parallelism) {
    *reason = "an argon2id hash needs t >= 1, p >= 1 and m >= 8 * p";
    return HashParse::kMalformed;
  }
  hash->scheme = HashScheme::kArgon2id;
  hash->encoded = std::string(text);
  if (hash->memory_kib > limits.argon2_memory_kib_max) {
    *reason = absl::StrFormat("argon2id memory cost %u KiB is above the limit %u KiB", hash->memory_kib,
                              limits.argon2_memory_kib_max);
    return HashParse::kOverLimit;
  }
  if (hash->iterations > limits.argon2_time_cost_max) {
    *reason = absl::StrFormat("argon2id time cost %u is above the limit %u", hash->iterations,
                              limits.argon2_time_cost_max);
    return HashParse::kOverLimit;
  }
  if (hash->parallelism > limits.argon2_parallelism_max) {
    *reason = absl::StrFormat("argon2id parallelism %u is above the limit %u", hash->parallelism,
                              limits.argon2_parallelism_max);
    return HashParse::kOverLimit;
  }
  return HashParse::kOk;
}

struct DigestContextFree {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};

bool sha512_salted(std::string_view password, std::string_view salt, unsigned char* digest) {
  std::unique_ptr<EVP_MD_CTX, DigestContextFree> context(EVP_MD_CTX_new());
  unsigned int length = 0;
  bool ok = context != nullptr && EVP_DigestInit_ex(context.get(), EVP_sha512(), nullptr) == 1 &&
            EVP_DigestUpdate(context.get(), password.data(), password.size()) == 1 &&
            EVP_DigestUpdate(context.get(), salt.data(), salt.size()) == 1 &&
            EVP_DigestFinal_ex(context.get(), digest, &length) == 1;
  return ok && length == kDigestBytes;
}

bool pbkdf2_sha512(std::string_view password, std::string_view salt, uint32_t iterations,
                   unsigned char* digest) {
  COREMQ_ASSERT(iterations >= 1 && iterations <= INT32_MAX);
  COREMQ_ASSERT(password.size() <= INT32_MAX && salt.size() <= INT32_MAX);
  // OpenSSL takes a NULL password only with length 0; an empty string_view may have no data.
  const char* password_bytes = password.empty() ? "" : password.data();
  return PKCS5_PBKDF2_HMAC(password_bytes, static_cast<int>(password.size()),
                           reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                           static_cast<int>(iterations), EVP_sha512(), static_cast<int>(kDigestBytes),
                           digest) == 1;
}

Verdict compare_digest(const unsigned char* computed, const std::string& stored) {
  COREMQ_ASSERT(stored.size() == kDigestBytes);
  return CRYPTO_memcmp(computed, stored.data(), kDigestBytes) == 0 ? Verdict::kMatch : Verdict::kMismatch;
}

}  // namespace

std::string_view scheme_name(HashScheme scheme) {
  switch (scheme) {
    case HashScheme::kSha512:
      return "sha512";
    case HashScheme::kSha512Pbkdf2:
      return "sha512-pbkdf2";
    case HashScheme::kArgon2id:
      return "argon2id";
  }
  return "?";
}

bool scheme_from_name(std::string_view name, HashScheme* scheme) {
  for (HashScheme candidate : {HashScheme::kSha512, HashScheme::kSha512Pbkdf2, HashScheme::kArgon2id}) {
    if (name == scheme_name(candidate)) {
      *scheme = candidate;
      return true;
    }
  }
  return false;
}

std::string_view verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::kMatch:
      return "match";
    case Verdict::kMismatch:
      return "mismatch";
    case Verdict::kMalformedHash:
      return "malformed hash";
    case Verdict::kHashOverLimit:
      return "hash over limit";
    case Verdict::kPasswordTooLong:
      return "password too long";
    case Verdict::kInternalError:
      return "internal error";
  }
  return "?";
}

std::string base64_encode(std::string_view bytes) {
  return encode_base64(bytes, true);
}

bool base64_decode(std::string_view text, std::string* bytes) {
  return decode_base64(text, true, bytes);
}

HashParse parse_hash(std::string_view text, const HashLimits& limits, ParsedHash* hash, std::string* reason) {
  *hash = ParsedHash{};
  reason->clear();
  if (text.substr(0, kPrefixSha512.size()) == kPrefixSha512) {
    std::array<std::string_view, 2> fields;
    if (!split_fields(text.substr(kPrefixSha512.size()), &fields)) {
      *reason = "a $6$ hash has 2 fields after $6$ (SALT$HASH)";
      return HashParse::kMalformed;
    }
    return parse_salted(HashScheme::kSha512, fields[0], fields[1], hash, reason);
  }
  if (text.substr(0, kPrefixPbkdf2.size()) == kPrefixPbkdf2) {
    std::array<std::string_view, 3> fields;
    if (!split_fields(text.substr(kPrefixPbkdf2.size()), &fields)) {
      *reason = "a $7$ hash has 3 fields after $7$ (ITERATIONS$SALT$HASH)";
      return HashParse::kMalformed;
    }
    if (!parse_decimal(fields[0], &hash->iterations, true) || hash->iterations == 0) {
      *reason = "a $7$ hash's iteration count must be a number from 1";
      return HashParse::kMalformed;
    }
    HashParse parsed = parse_salted(HashScheme::kSha512Pbkdf2, fields[1], fields[2], hash, reason);
    if (parsed != HashParse::kOk) return parsed;
    if (hash->iterations > limits.pbkdf2_iterations_max) {
      *reason = absl::StrFormat("PBKDF2 iteration count %u is above the limit %u", hash->iterations,
                                limits.pbkdf2_iterations_max);
      return HashParse::kOverLimit;
    }
    return HashParse::kOk;
  }
  if (text.substr(0, kPrefixArgon2id.size()) == kPrefixArgon2id)
    return parse_argon2id(text, limits, hash, reason);
  *reason = text.empty() || text.front() != '$'
                ? "not a password hash (plain text? run coremq-passwd -U on the file)"
                : "unknown hash scheme (coremq reads $6$, $7$ and $argon2id$)";
  return HashParse::kUnknownScheme;
}

Verdict verify_password(const ParsedHash& hash, std::string_view password, const HashLimits& limits) {
  if (password.size() > limits.password_bytes_max) return Verdict::kPasswordTooLong;
  std::array<unsigned char, kDigestBytes> computed;
  switch (hash.scheme) {
    case HashScheme::kSha512:
      if (!sha512_salted(password, hash.salt, computed.data())) return Verdict::kInternalError;
      return compare_digest(computed.data(), hash.digest);
    case HashScheme::kSha512Pbkdf2:
      // The limit is checked again here: a ParsedHash may come from parse_hash with other limits.
      if (hash.iterations == 0) return Verdict::kMalformedHash;
      if (hash.iterations > limits.pbkdf2_iterations_max) return Verdict::kHashOverLimit;
      if (!pbkdf2_sha512(password, hash.salt, hash.iterations, computed.data()))
        return Verdict::kInternalError;
      return compare_digest(computed.data(), hash.digest);
    case HashScheme::kArgon2id: {
      if (hash.encoded.empty()) return Verdict::kMalformedHash;
      if (hash.memory_kib > limits.argon2_memory_kib_max || hash.iterations > limits.argon2_time_cost_max ||
          hash.parallelism > limits.argon2_parallelism_max) {
        return Verdict::kHashOverLimit;
      }
      const char* password_bytes = password.empty() ? "" : password.data();
      int result = argon2id_verify(hash.encoded.c_str(), password_bytes, password.size());
      if (result == ARGON2_OK) return Verdict::kMatch;
      if (result == ARGON2_VERIFY_MISMATCH) return Verdict::kMismatch;
      if (result == ARGON2_MEMORY_ALLOCATION_ERROR || result == ARGON2_THREAD_FAIL)
        return Verdict::kInternalError;
      // parse_hash checked what libargon2 checks; anything else is a shape it still refused.
      return Verdict::kMalformedHash;
    }
  }
  return Verdict::kMalformedHash;
}

Verdict verify_password(std::string_view hash_text, std::string_view password, const HashLimits& limits,
                        std::string* reason) {
  reason->clear();
  if (password.size() > limits.password_bytes_max) {
    *reason = absl::StrFormat("password of %u bytes is above the limit %u", password.size(),
                              limits.password_bytes_max);
    return Verdict::kPasswordTooLong;
  }
  ParsedHash hash;
  switch (parse_hash(hash_text, limits, &hash, reason)) {
    case HashParse::kOk:
      break;
    case HashParse::kUnknownScheme:
    case HashParse::kMalformed:
      return Verdict::kMalformedHash;
    case HashParse::kOverLimit:
      return Verdict::kHashOverLimit;
  }
  Verdict verdict = verify_password(hash, password, limits);
  if (verdict == Verdict::kInternalError) *reason = "OpenSSL or libargon2 failed (out of memory?)";
  if (verdict == Verdict::kMalformedHash) *reason = "libargon2 refused the hash";
  return verdict;
}

bool create_hash_with_salt(std::string_view password, const HashParameters& parameters, std::string_view salt,
                           std::string* hash, std::string* error) {
  if (password.size() > HashLimits{}.password_bytes_max) {
    *error = absl::StrFormat("Password must be less than %u characters long.",
                             HashLimits{}.password_bytes_max + 1);
    return false;
  }
  std::array<unsigned char, kDigestBytes> digest;
  std::string_view digest_bytes(reinterpret_cast<const char*>(digest.data()), digest.size());
  switch (parameters.scheme) {
    case HashScheme::kSha512:
      COREMQ_ASSERT(valid_salt_length(salt.size()));
      if (!sha512_salted(password, salt, digest.data())) {
        *error = "OpenSSL SHA-512 failed";
        return false;
      }
      *hash = absl::StrFormat("%s%s$%s", kPrefixSha512, base64_encode(salt), base64_encode(digest_bytes));
      return true;
    case HashScheme::kSha512Pbkdf2:
      COREMQ_ASSERT(valid_salt_length(salt.size()));
      if (parameters.iterations == 0 || parameters.iterations > INT32_MAX) {
        *error = absl::StrFormat("iteration count %u is not in [1, %d]", parameters.iterations, INT32_MAX);
        return false;
      }
      if (!pbkdf2_sha512(password, salt, parameters.iterations, digest.data())) {
        *error = "OpenSSL PBKDF2 failed";
        return false;
      }
      *hash = absl::StrFormat("%s%u$%s$%s", kPrefixPbkdf2, parameters.iterations, base64_encode(salt),
                              base64_encode(digest_bytes));
      return true;
    case HashScheme::kArgon2id: {
      COREMQ_ASSERT(salt.size() >= kArgon2SaltBytesMin && salt.size() <= kArgon2FieldBytesMax);
      size_t encoded_bytes =
          argon2_encodedlen(kArgon2TimeCostDefault, kArgon2MemoryKibDefault, kArgon2ParallelismDefault,
                            static_cast<uint32_t>(salt.size()), kDigestBytes, Argon2_id);
      std::string encoded(encoded_bytes + 1, '\0');
      const char* password_bytes = password.empty() ? "" : password.data();
      int result = argon2id_hash_encoded(
          kArgon2TimeCostDefault, kArgon2MemoryKibDefault, kArgon2ParallelismDefault, password_bytes,
          password.size(), salt.data(), salt.size(), kDigestBytes, encoded.data(), encoded.size());
      if (result != ARGON2_OK) {
        *error = absl::StrFormat("libargon2 failed: %s", argon2_error_message(result));
        return false;
      }
      encoded.resize(encoded.find('\0'));
      *hash = std::move(encoded);
      return true;
    }
  }
  *error = "unknown hash scheme";
  return false;
}

bool create_hash(std::string_view password, const HashParameters& parameters, std::string* hash,
                 std::string* error) {
  std::array<unsigned char, kSaltBytesLong> salt;
  size_t salt_bytes = parameters.scheme == HashScheme::kArgon2id ? kSaltBytesLong : kSaltBytesShort;
  if (RAND_bytes(salt.data(), static_cast<int>(salt_bytes)) != 1) {
    *error = "OpenSSL RAND_bytes failed: no random salt";
    return false;
  }
  return create_hash_with_salt(password, parameters,
                               std::string_view(reinterpret_cast<const char*>(salt.data()), salt_bytes), hash,
                               error);
}

}  // namespace coremq::auth
