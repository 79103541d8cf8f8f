// Mosquitto password hashes: each form checked against hashes written by Debian's real
// mosquitto_passwd 2.0.11 (fixed strings below, made once with known passwords), against
// vectors computed independently with Python's hashlib and libargon2's reference test vector;
// made and checked back; every malformed shape and every cost bound refused with a reason.
// Suites are named PasswordHash* so --gtest_filter='Password*' selects them with the file tests.
#include "auth/password_hash.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace coremq::auth {
namespace {

// Written by `mosquitto_passwd` 2.0.11 (Debian bookworm): `-b f alice other` (default
// sha512-pbkdf2, 101 iterations), `-H sha512 -b f bob hunter2`, `-I 5 -b f x y`, `-b f ab ''`.
constexpr std::string_view kMosquittoPbkdf2Other =
    "$7$101$RgCqAUXb2UyNO1kB$fkJV/"
    "5jyvXmwsXL5FeKRPLtvIyblP2esMqekWw8XAyW1vrw6+zzUIfCKdiGIRamaDQrUNOCzhfEYXcmO+iGpEg==";
constexpr std::string_view kMosquittoSha512Hunter2 =
    "$6$E+NggzvX21QIy9oW$AyIuGz5L1DS+LoxrZSBJdiplGzn2x5vpv8KLampStzQunG4cDHcGVy+qRoH+nfhgAW2Dc/"
    "asB64FEUjdBTvy0g==";
constexpr std::string_view kMosquittoPbkdf2FiveIterationsY =
    "$7$5$hdD5Ext3HJDQrv5z$TX+fxX1Frb7XVtZnEipMHB+"
    "CMV8uvbQvtgWpTcW2cNGAOfjxvuGrq30srDlCzuoCJFDLdi6wd2stQ3M0HsfonQ==";
constexpr std::string_view kMosquittoPbkdf2Empty =
    "$7$101$1NOx+uTDBuU/gIWy$HUGVYbfw8SyhuXxEyG/i5d+ix2n0XffsRywu4BsK0m3cxBmtmFBRgHjlUDmVDi/cGopXI+Qq0WjFt/"
    "mNEFd3DQ==";
// Python: salt bytes 0..11 (or 0..63), password "coremq", hashlib.sha512 / hashlib.pbkdf2_hmac.
constexpr std::string_view kPythonSha512 =
    "$6$AAECAwQFBgcICQoL$WsvuUtoAxXfs0ynNKiK3zVRNv1WG5LE8/"
    "tCYOCEp2BTRMvFrqvHIQ0OmfY3m5alLin93LOQUifwNleKuNJWi3g==";
constexpr std::string_view kPythonPbkdf2 =
    "$7$1000$AAECAwQFBgcICQoL$pnBVyum1UH+"
    "Q6imM9Jz6LnoAS8CBojP40tQB6hRHqgBNzTY8PVUvvzmhShgskyXPU0LADZkN77rQhwFepM88BA==";
constexpr std::string_view kPythonPbkdf2LongSalt =
    "$7$3$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$"
    "3KfT5o+PgpeJ6ynIKLO/T4hoP6R2I2kWoTeT01FJWqaQMcELMr3L8k8vJh6DVVZD63n0u5PyUI0AW615p70Cgg==";
// phc-winner-argon2's src/test.c: password "password", salt "somesalt", t=2, m=64 MiB, p=1.
constexpr std::string_view kArgon2Reference =
    "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

std::string salt_bytes(size_t count) {
  std::string salt;
  for (size_t i = 0; i < count; ++i) salt.push_back(static_cast<char>(i));
  return salt;
}

Verdict check(std::string_view hash, std::string_view password, const HashLimits& limits = {}) {
  std::string reason;
  Verdict verdict = verify_password(hash, password, limits, &reason);
  if (verdict == Verdict::kMatch || verdict == Verdict::kMismatch) {
    EXPECT_TRUE(reason.empty()) << reason;
  } else {
    EXPECT_FALSE(reason.empty()) << "no reason for " << verdict_name(verdict);
  }
  return verdict;
}

TEST(PasswordHash, VerifiesWhatMosquittoPasswdWrote) {
  EXPECT_EQ(check(kMosquittoPbkdf2Other, "other"), Verdict::kMatch);
  EXPECT_EQ(check(kMosquittoPbkdf2Other, "Other"), Verdict::kMismatch);
  EXPECT_EQ(check(kMosquittoPbkdf2Other, "other "), Verdict::kMismatch);
  EXPECT_EQ(check(kMosquittoSha512Hunter2, "hunter2"), Verdict::kMatch);
  EXPECT_EQ(check(kMosquittoSha512Hunter2, "hunter3"), Verdict::kMismatch);
  EXPECT_EQ(check(kMosquittoPbkdf2FiveIterationsY, "y"), Verdict::kMatch);
  EXPECT_EQ(check(kMosquittoPbkdf2FiveIterationsY, ""), Verdict::kMismatch);
  EXPECT_EQ(check(kMosquittoPbkdf2Empty, ""), Verdict::kMatch);
  // PBKDF2's HMAC pads its key (the password) with zero bytes to SHA-512's block, so trailing
  // NUL bytes make no difference to a $7$ hash: a property of the algorithm, kept as it is.
  EXPECT_EQ(check(kMosquittoPbkdf2Empty, std::string_view("\0", 1)), Verdict::kMatch);
  EXPECT_EQ(check(kMosquittoPbkdf2Empty, std::string_view("\0x", 2)), Verdict::kMismatch);
}

TEST(PasswordHash, VerifiesIndependentVectors) {
  EXPECT_EQ(check(kPythonSha512, "coremq"), Verdict::kMatch);
  EXPECT_EQ(check(kPythonPbkdf2, "coremq"), Verdict::kMatch);
  EXPECT_EQ(check(kPythonPbkdf2LongSalt, "coremq"), Verdict::kMatch);
  EXPECT_EQ(check(kPythonPbkdf2LongSalt, "coremQ"), Verdict::kMismatch);
  EXPECT_EQ(check(kArgon2Reference, "password"), Verdict::kMatch);
  EXPECT_EQ(check(kArgon2Reference, "passwore"), Verdict::kMismatch);
}

TEST(PasswordHash, CreatesExactlyTheIndependentVectors) {
  std::string hash;
  std::string error;
  ASSERT_TRUE(create_hash_with_salt("coremq", {HashScheme::kSha512, 0}, salt_bytes(12), &hash, &error))
      << error;
  EXPECT_EQ(hash, kPythonSha512);
  ASSERT_TRUE(
      create_hash_with_salt("coremq", {HashScheme::kSha512Pbkdf2, 1000}, salt_bytes(12), &hash, &error));
  EXPECT_EQ(hash, kPythonPbkdf2);
  ASSERT_TRUE(create_hash_with_salt("coremq", {HashScheme::kSha512Pbkdf2, 3}, salt_bytes(64), &hash, &error));
  EXPECT_EQ(hash, kPythonPbkdf2LongSalt);
}

TEST(PasswordHash, CreatesEachSchemeInMosquittosFormAndVerifiesIt) {
  // The hash's shape: a fixed prefix, then '$'-separated base64 fields of these lengths.
  // (Checked by hand: std::regex trips a GCC 12 -Wmaybe-uninitialized false positive under ASan.)
  struct Case {
    HashScheme scheme;
    const char* prefix;
    std::vector<size_t> field_lengths;
  };
  const Case cases[] = {
      {HashScheme::kSha512, "$6$", {16, 88}},
      {HashScheme::kSha512Pbkdf2, "$7$1000$", {16, 88}},
      // Mosquitto 2.1: t=1, m=47104 KiB, p=1, 64-byte salt and hash (86 unpadded characters).
      {HashScheme::kArgon2id, "$argon2id$v=19$m=47104,t=1,p=1$", {86, 86}},
  };
  auto has_shape = [](const std::string& hash, const Case& c) {
    if (hash.rfind(c.prefix, 0) != 0) return false;
    std::string_view rest = std::string_view(hash).substr(std::string_view(c.prefix).size());
    for (size_t i = 0; i < c.field_lengths.size(); ++i) {
      size_t end = i + 1 < c.field_lengths.size() ? rest.find('$') : rest.size();
      if (end == std::string_view::npos || end != c.field_lengths[i]) return false;
      for (char ch : rest.substr(0, end)) {
        bool base64 = std::isalnum(static_cast<unsigned char>(ch)) || ch == '+' || ch == '/' || ch == '=';
        if (!base64) return false;
      }
      rest = i + 1 < c.field_lengths.size() ? rest.substr(end + 1) : std::string_view();
    }
    return true;
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(scheme_name(c.scheme)));
    std::string first;
    std::string second;
    std::string error;
    ASSERT_TRUE(create_hash("s3cret pw", {c.scheme, kPbkdf2IterationsDefault}, &first, &error)) << error;
    ASSERT_TRUE(create_hash("s3cret pw", {c.scheme, kPbkdf2IterationsDefault}, &second, &error)) << error;
    EXPECT_TRUE(has_shape(first, c)) << first;
    EXPECT_NE(first, second) << "two hashes of one password share a salt";
    EXPECT_EQ(check(first, "s3cret pw"), Verdict::kMatch);
    EXPECT_EQ(check(second, "s3cret pw"), Verdict::kMatch);
    EXPECT_EQ(check(first, "s3cret pW"), Verdict::kMismatch);
    EXPECT_EQ(check(first, ""), Verdict::kMismatch);
    // A binary password, all of its bytes: one that differs after a NUL does not match.
    std::string binary("ab\0cd", 5);
    ASSERT_TRUE(create_hash(binary, {c.scheme, 10}, &first, &error)) << error;
    EXPECT_EQ(check(first, binary), Verdict::kMatch);
    EXPECT_EQ(check(first, std::string("ab\0ce", 5)), Verdict::kMismatch);
    EXPECT_EQ(check(first, "ab"), Verdict::kMismatch);
  }
}

TEST(PasswordHash, ParsesCostParameters) {
  ParsedHash hash;
  std::string reason;
  ASSERT_EQ(parse_hash(kMosquittoPbkdf2Other, {}, &hash, &reason), HashParse::kOk) << reason;
  EXPECT_EQ(hash.scheme, HashScheme::kSha512Pbkdf2);
  EXPECT_EQ(hash.iterations, 101u);
  EXPECT_EQ(hash.salt.size(), 12u);
  EXPECT_EQ(hash.digest.size(), 64u);
  // Mosquitto's atoi reads "0101" as 101; so does coremq (only libargon2 refuses leading zeros).
  std::string padded_count(kMosquittoPbkdf2Other);
  padded_count.replace(3, 3, "0101");
  ASSERT_EQ(parse_hash(padded_count, {}, &hash, &reason), HashParse::kOk) << reason;
  EXPECT_EQ(hash.iterations, 101u);
  EXPECT_EQ(check(padded_count, "other"), Verdict::kMatch);
  ASSERT_EQ(parse_hash(kArgon2Reference, {}, &hash, &reason), HashParse::kOk) << reason;
  EXPECT_EQ(hash.scheme, HashScheme::kArgon2id);
  EXPECT_EQ(hash.memory_kib, 65536u);
  EXPECT_EQ(hash.iterations, 2u);
  EXPECT_EQ(hash.parallelism, 1u);
}

TEST(PasswordHash, RefusesMalformedHashesWithAReason) {
  const std::string salt = "RgCqAUXb2UyNO1kB";
  const std::string digest =
      "fkJV/5jyvXmwsXL5FeKRPLtvIyblP2esMqekWw8XAyW1vrw6+zzUIfCKdiGIRamaDQrUNOCzhfEYXcmO+iGpEg==";
  struct Case {
    std::string hash;
    HashParse expected;
  };
  const Case cases[] = {
      {"", HashParse::kUnknownScheme},
      {"other", HashParse::kUnknownScheme},  // plain text
      {"$1$abc$def", HashParse::kUnknownScheme},
      {"$5$" + salt + "$" + digest, HashParse::kUnknownScheme},
      {"$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
       HashParse::kUnknownScheme},
      {"$7$", HashParse::kMalformed},
      {"$7$101$" + salt, HashParse::kMalformed},
      {"$7$0$" + salt + "$" + digest, HashParse::kMalformed},
      {"$7$-1$" + salt + "$" + digest, HashParse::kMalformed},
      {"$7$+5$" + salt + "$" + digest, HashParse::kMalformed},  // Mosquitto's atoi takes it
      {"$7$5x$" + salt + "$" + digest, HashParse::kMalformed},
      {"$7$99999999999$" + salt + "$" + digest, HashParse::kMalformed},
      {"$7$101$$" + salt + "$" + digest, HashParse::kMalformed},  // Mosquitto's strtok takes it
      {"$7$101$" + salt + "$" + digest + "$zzz", HashParse::kMalformed},
      {"$7$101$" + salt + "$" + digest.substr(0, 86), HashParse::kMalformed},  // no padding
      {"$7$101$" + salt + "$" + digest.substr(4), HashParse::kMalformed},      // 61 bytes
      {"$7$101$" + salt + "=$" + digest, HashParse::kMalformed},
      {"$7$101$Rg*qAUXb2UyNO1kB$" + digest, HashParse::kMalformed},
      {"$7$101$RgCqAUXb2UyNO1k=$" + digest, HashParse::kMalformed},      // 11 bytes
      {"$7$101$RgCqAUXb2UyNO1kBRgCq$" + digest, HashParse::kMalformed},  // 15 bytes
      {"$7$101$ " + salt + "$" + digest, HashParse::kMalformed},
      {"$6$" + salt, HashParse::kMalformed},
      {"$6$" + salt + "$" + digest + "$", HashParse::kMalformed},
      {"$6$" + salt + "$AAAA", HashParse::kMalformed},
      {"$argon2id$", HashParse::kMalformed},
      {"$argon2id$v=16$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
       HashParse::kMalformed},
      {"$argon2id$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
       HashParse::kMalformed},
      {"$argon2id$v=19$t=2,m=65536,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
       HashParse::kMalformed},
      {"$argon2id$v=19$m=65536,t=2$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
       HashParse::kMalformed},
      {"$argon2id$v=19$m=65536,t=2,p=1,x=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
       HashParse::kMalformed},
      {"$argon2id$v=19$m=65536,t=0,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
       HashParse::kMalformed},
      {"$argon2id$v=19$m=7,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
       HashParse::kMalformed},
      {"$argon2id$v=19$m=65536,t=2,p=1$c29tZQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
       HashParse::kMalformed},
      {"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTF", HashParse::kMalformed},
      {"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ=$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
       HashParse::kMalformed},
      // libargon2 refuses a leading zero (found by fuzz_password_file), so parse_hash does.
      {"$argon2id$v=19$m=065536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
       HashParse::kMalformed},
      // Non-zero unused bits in the last character: libargon2 refuses them, so parse_hash does.
      {"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHR$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
       HashParse::kMalformed},
      {"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc$",
       HashParse::kMalformed},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.hash);
    ParsedHash hash;
    std::string reason;
    EXPECT_EQ(parse_hash(c.hash, {}, &hash, &reason), c.expected);
    EXPECT_FALSE(reason.empty());
    EXPECT_EQ(reason.find(digest), std::string::npos) << "the reason must not quote the hash";
    EXPECT_EQ(check(c.hash, "other"), Verdict::kMalformedHash);
  }
}

TEST(PasswordHash, RefusesCostsAboveTheLimitsBeforeHashing) {
  HashLimits limits;
  ParsedHash hash;
  std::string reason;
  // 2^31-1 PBKDF2 iterations would hold a verifier thread for about 15 minutes.
  std::string huge =
      "$7$2147483647$RgCqAUXb2UyNO1kB$"
      "fkJV/5jyvXmwsXL5FeKRPLtvIyblP2esMqekWw8XAyW1vrw6+zzUIfCKdiGIRamaDQrUNOCzhfEYXcmO+iGpEg==";
  EXPECT_EQ(parse_hash(huge, limits, &hash, &reason), HashParse::kOverLimit);
  EXPECT_EQ(reason, "PBKDF2 iteration count 2147483647 is above the limit 1000000");
  EXPECT_EQ(check(huge, "other"), Verdict::kHashOverLimit);
  // 64 GiB of argon2 memory, 1000 passes, 64 lanes.
  EXPECT_EQ(
      check("$argon2id$v=19$m=67108864,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "x"),
      Verdict::kHashOverLimit);
  EXPECT_EQ(
      check("$argon2id$v=19$m=65536,t=1000,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "x"),
      Verdict::kHashOverLimit);
  EXPECT_EQ(
      check("$argon2id$v=19$m=65536,t=2,p=64$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "x"),
      Verdict::kHashOverLimit);
  // Lower limits refuse what the defaults allow; the ParsedHash overload checks them again.
  limits.pbkdf2_iterations_max = 100;
  EXPECT_EQ(check(kMosquittoPbkdf2Other, "other", limits), Verdict::kHashOverLimit);
  ASSERT_EQ(parse_hash(kMosquittoPbkdf2Other, {}, &hash, &reason), HashParse::kOk);
  EXPECT_EQ(verify_password(hash, "other", limits), Verdict::kHashOverLimit);
  limits.argon2_memory_kib_max = 65535;
  EXPECT_EQ(check(kArgon2Reference, "password", limits), Verdict::kHashOverLimit);
}

TEST(PasswordHash, BoundsThePassword) {
  HashLimits limits;
  limits.password_bytes_max = 8;
  EXPECT_EQ(check(kMosquittoPbkdf2Other, "12345678", limits), Verdict::kMismatch);
  EXPECT_EQ(check(kMosquittoPbkdf2Other, "123456789", limits), Verdict::kPasswordTooLong);
  std::string hash;
  std::string error;
  EXPECT_TRUE(create_hash(std::string(65535, 'p'), {}, &hash, &error)) << error;
  EXPECT_EQ(check(hash, std::string(65535, 'p')), Verdict::kMatch);
  EXPECT_FALSE(create_hash(std::string(65536, 'p'), {}, &hash, &error));
  EXPECT_EQ(error, "Password must be less than 65536 characters long.");
  EXPECT_FALSE(create_hash("p", {HashScheme::kSha512Pbkdf2, 0}, &hash, &error));
}

TEST(PasswordHash, SchemeNamesAreMosquittoPasswdsHashNames) {
  HashScheme scheme = HashScheme::kSha512;
  ASSERT_TRUE(scheme_from_name("sha512-pbkdf2", &scheme));
  EXPECT_EQ(scheme, HashScheme::kSha512Pbkdf2);
  ASSERT_TRUE(scheme_from_name("argon2id", &scheme));
  EXPECT_EQ(scheme, HashScheme::kArgon2id);
  ASSERT_TRUE(scheme_from_name("sha512", &scheme));
  EXPECT_EQ(scheme, HashScheme::kSha512);
  EXPECT_FALSE(scheme_from_name("SHA512", &scheme));
  EXPECT_FALSE(scheme_from_name("pbkdf2", &scheme));
}

TEST(PasswordHash, Base64IsStrictAndRoundTrips) {
  std::string bytes;
  for (size_t length = 0; length < 70; ++length) {
    std::string input = salt_bytes(length);
    ASSERT_TRUE(base64_decode(base64_encode(input), &bytes));
    EXPECT_EQ(bytes, input);
  }
  EXPECT_EQ(base64_encode("\xfb\xff"), "+/8=");
  for (const char* bad :
       {"A", "AA", "AAA", "AA=", "A===", "AA=A", "=AAA", "AAAA=", "AA==AAAA", "AA A", "AA-_"}) {
    EXPECT_FALSE(base64_decode(bad, &bytes)) << bad;
  }
}

}  // namespace
}  // namespace coremq::auth
