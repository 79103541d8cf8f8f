// Mosquitto password hashes: check a password against one, and make one, in the three forms
// mosquitto_passwd writes:
//   $6$SALT$HASH              salted SHA-512: HASH = base64(sha512(password || salt)), the form
//                             of Mosquitto 1.x (`mosquitto_passwd -H sha512`);
//   $7$ITERATIONS$SALT$HASH   PBKDF2-HMAC-SHA512 with 64 bytes of output, the default of
//                             Mosquitto 2.0 (`-H sha512-pbkdf2`; 2.0.x writes 101 iterations);
//   $argon2id$v=19$m=M,t=T,p=P$SALT$HASH
//                             libargon2's encoded form, the default of Mosquitto 2.1.
// SALT and HASH of $6$/$7$ are standard base64 with padding; the salt is 12 bytes (what
// mosquitto_passwd 2.0 writes, the only length Mosquitto 2.0 reads) or 64 bytes (what
// Mosquitto 2.1 writes); the hash is 64 bytes. Anything else - another scheme, a hand-edited
// variant that Mosquitto's strtok/atoi parser happens to let through (`$7$+5$`, `$$`, a field
// after the hash), unpadded base64 - is malformed: it never matches a password.
//
// Cost bounds (HashLimits) keep one stored hash from turning a login into a denial of
// service: PBKDF2 iterations, argon2 memory, passes and lanes above the limits are refused
// before any hashing starts (verify says kHashOverLimit). The password itself is bounded too.
//
// Every function here is pure apart from the random salt of create_hash, and thread-safe.
// Verifying costs from microseconds ($6$) to tens of milliseconds (argon2id at Mosquitto's
// parameters), so the broker calls verify only from its verifier pool, never on a shard thread;
// parse_hash is cheap (no hashing) and may run anywhere.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace coremq::auth {

enum class HashScheme : uint8_t { kSha512, kSha512Pbkdf2, kArgon2id };

// "sha512", "sha512-pbkdf2", "argon2id" (mosquitto_passwd's -H names) <-> scheme.
std::string_view scheme_name(HashScheme scheme);
[[nodiscard]] bool scheme_from_name(std::string_view name, HashScheme* scheme);

// What coremq-passwd writes by default: Mosquitto 2.0's scheme, readable by every Mosquitto 2.x
// and coremq. Iterations: Mosquitto 2.1's default (2.0.x writes 101); about 0.4 ms per check on
// the development machine (docs/SECURITY.md has the measured costs).
inline constexpr HashScheme kDefaultScheme = HashScheme::kSha512Pbkdf2;
inline constexpr uint32_t kPbkdf2IterationsDefault = 1000;
// Mosquitto 2.1's argon2id parameters: one pass over 46 MiB, one lane, 64-byte salt and hash.
inline constexpr uint32_t kArgon2TimeCostDefault = 1;
inline constexpr uint32_t kArgon2MemoryKibDefault = 47104;
inline constexpr uint32_t kArgon2ParallelismDefault = 1;
inline constexpr size_t kSaltBytesShort = 12;  // mosquitto_passwd 2.0; what coremq-passwd writes for $6$/$7$
inline constexpr size_t kSaltBytesLong = 64;   // Mosquitto 2.1; what coremq-passwd writes for argon2id
inline constexpr size_t kDigestBytes = 64;     // SHA-512

// Upper bounds on what one check may cost. The defaults allow every hash any Mosquitto
// writes by default with a wide margin (OWASP's 210,000 PBKDF2 iterations: ~80 ms here) and
// refuse what would hold a verifier thread for seconds or allocate more than 256 MiB: the
// pool runs several checks at once and each argon2 check holds its m KiB for its duration.
struct HashLimits {
  // MQTT's own maximum for the password field: a longer one cannot come from a client, only
  // from a caller of this library (and coremq-passwd, which gives the same message).
  uint32_t password_bytes_max = 65535;
  uint32_t pbkdf2_iterations_max = 1'000'000;   // ~0.4 s per check here
  uint32_t argon2_memory_kib_max = 256 * 1024;  // 256 MiB per check in flight
  uint32_t argon2_time_cost_max = 16;           // passes over that memory
  uint32_t argon2_parallelism_max = 8;          // lanes; libargon2 starts one thread per lane
};

// A hash string taken apart (no hashing done). For argon2id the encoded string is kept whole
// for libargon2, with the cost parameters read out of it for the limits.
struct ParsedHash {
  HashScheme scheme = HashScheme::kSha512;
  uint32_t iterations = 0;   // $7$: PBKDF2 iterations; argon2id: passes (t)
  uint32_t memory_kib = 0;   // argon2id only (m)
  uint32_t parallelism = 0;  // argon2id only (p)
  std::string salt;          // $6$/$7$: decoded bytes
  std::string digest;        // $6$/$7$: decoded bytes (kDigestBytes)
  std::string encoded;       // argon2id: the whole string
};

enum class HashParse : uint8_t {
  kOk,
  kUnknownScheme,  // not $6$, $7$ or $argon2id$ (a plain-text password, crypt's $1$/$5$ ...)
  kMalformed,      // a known scheme, but the fields do not parse
  kOverLimit,      // well formed, but its cost is above HashLimits
};

// Takes text apart and checks it against limits. On anything but kOk, *reason says what is
// wrong in words fit for a log line ("PBKDF2 iteration count 5000000 is above the limit
// 1000000"); it never contains the hash or a password.
[[nodiscard]] HashParse parse_hash(std::string_view text, const HashLimits& limits, ParsedHash* hash,
                                   std::string* reason);

enum class Verdict : uint8_t {
  kMatch,
  kMismatch,
  kMalformedHash,    // parse_hash said kUnknownScheme or kMalformed
  kHashOverLimit,    // parse_hash said kOverLimit (counted: a hash nobody can log in with)
  kPasswordTooLong,  // above HashLimits::password_bytes_max (counted)
  kInternalError,    // OpenSSL or libargon2 failed (out of memory): refuse, log
};
std::string_view verdict_name(Verdict verdict);

// Hashes password the way `hash` says and compares in constant time (CRYPTO_memcmp; libargon2
// compares in constant time too). Slow: verifier pool only. The password is the bytes the
// client sent, all of them: Mosquitto stops at a NUL byte (strlen), so a binary MQTT 5
// password with a NUL that Mosquitto would accept on its prefix is refused here. (One
// exception is PBKDF2's own: HMAC pads the password to SHA-512's block with zero bytes, so
// trailing NUL bytes do not change a $7$ hash.)
[[nodiscard]] Verdict verify_password(const ParsedHash& hash, std::string_view password,
                                      const HashLimits& limits);
// parse_hash + verify; *reason is set for kMalformedHash/kHashOverLimit/kPasswordTooLong/kInternalError.
[[nodiscard]] Verdict verify_password(std::string_view hash_text, std::string_view password,
                                      const HashLimits& limits, std::string* reason);

struct HashParameters {
  HashScheme scheme = kDefaultScheme;
  uint32_t iterations = kPbkdf2IterationsDefault;  // $7$ only
};

// A new hash of password with a fresh random salt (OpenSSL's RAND_bytes), in the exact form
// mosquitto_passwd writes. Fails (with *error) on a RAND/OpenSSL/libargon2 failure, an
// iteration count of 0 or a password above HashLimits{}.password_bytes_max.
[[nodiscard]] bool create_hash(std::string_view password, const HashParameters& parameters, std::string* hash,
                               std::string* error);
// The same with a given salt (12 or 64 bytes for $6$/$7$, 8..64 for argon2id): for tests.
[[nodiscard]] bool create_hash_with_salt(std::string_view password, const HashParameters& parameters,
                                         std::string_view salt, std::string* hash, std::string* error);

// Standard base64 (RFC 4648 section 4) with padding, as Mosquitto writes salts and hashes.
std::string base64_encode(std::string_view bytes);
// Strict: length a multiple of 4, '=' only as the last one or two characters, no blanks.
[[nodiscard]] bool base64_decode(std::string_view text, std::string* bytes);

}  // namespace coremq::auth
