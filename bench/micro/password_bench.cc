// Cost of one password check (src/auth/password_hash.h) per hash form, at the parameters each
// writer uses by default: what one verifier-pool thread spends per CONNECT with a password, and
// so how many logins per second per pool thread a reconnect storm gets.
//
// BM_VerifySha512: $6$, one SHA-512 of password+salt. Expected ~1 us (about a million checks
//   per second per thread: no defence against offline guessing, Mosquitto 1.x's form).
// BM_VerifyPbkdf2/101: $7$ as Debian's mosquitto_passwd 2.0.11 writes it. ~40-100 us.
// BM_VerifyPbkdf2/1000: $7$ as coremq-passwd (and Mosquitto 2.1) write it. ~0.4 ms.
// BM_VerifyPbkdf2/210000: OWASP's 2023 advice for PBKDF2-SHA512. ~80 ms.
// BM_VerifyArgon2id: $argon2id$ at Mosquitto 2.1's parameters (t=1, 46 MiB, p=1). Tens of ms,
//   dominated by filling 46 MiB once; it also holds that memory while it runs.
// BM_ParseHash: parse_hash alone on a $7$ string (no hashing): what a reload costs per user.
// Compare with --benchmark_repetitions on a quiet machine; a shared VM varies run to run.
#include <benchmark/benchmark.h>

#include <string>

#include "auth/password_hash.h"

namespace coremq::auth {
namespace {

std::string make(HashScheme scheme, uint32_t iterations) {
  std::string hash;
  std::string error;
  if (!create_hash("correct horse", {scheme, iterations}, &hash, &error)) std::abort();
  return hash;
}

void verify_loop(benchmark::State& state, const std::string& text) {
  ParsedHash hash;
  std::string reason;
  if (parse_hash(text, {}, &hash, &reason) != HashParse::kOk) std::abort();
  for (auto _ : state) {
    Verdict verdict = verify_password(hash, "correct horse", {});
    if (verdict != Verdict::kMatch) std::abort();
    benchmark::DoNotOptimize(verdict);
  }
}

void BM_VerifySha512(benchmark::State& state) {
  verify_loop(state, make(HashScheme::kSha512, 0));
}
BENCHMARK(BM_VerifySha512);

void BM_VerifyPbkdf2(benchmark::State& state) {
  verify_loop(state, make(HashScheme::kSha512Pbkdf2, static_cast<uint32_t>(state.range(0))));
}
BENCHMARK(BM_VerifyPbkdf2)->Arg(101)->Arg(1000)->Arg(210000)->Unit(benchmark::kMicrosecond);

void BM_VerifyArgon2id(benchmark::State& state) {
  verify_loop(state, make(HashScheme::kArgon2id, 0));
}
BENCHMARK(BM_VerifyArgon2id)->Unit(benchmark::kMillisecond);

void BM_ParseHash(benchmark::State& state) {
  std::string text = make(HashScheme::kSha512Pbkdf2, 1000);
  ParsedHash hash;
  std::string reason;
  for (auto _ : state) {
    benchmark::DoNotOptimize(parse_hash(text, {}, &hash, &reason));
  }
}
BENCHMARK(BM_ParseHash);

}  // namespace
}  // namespace coremq::auth
