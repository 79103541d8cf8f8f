// libFuzzer target for Mosquitto password files and hashes (src/auth): any bytes as a password
// file, then a check of the first few users' entries against a short password, and the first
// line also as a bare hash string.
//
// The hash cost limits are set tiny (PBKDF2 at most 64 iterations, argon2id at most 64 KiB,
// 2 passes, 1 lane): an input with a costlier hash exercises the over-limit path instead of
// making each run take milliseconds, so the fuzzer stays fast while every parser path is
// reachable.
//
// Checked on every input: no crash, sanitizer report or assertion; every diagnostic names a
// place and says something; a parsed file holds exactly the users it counts, each found by
// find(); a verdict for a kept entry is never "over limit" or "malformed" (parse_hash and
// libargon2 agree on what is well formed); base64 round-trips the input's bytes.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "auth/password_file.h"
#include "auth/password_hash.h"

namespace {

void check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz_password_file: invariant broken: %s\n", what);
    std::abort();
  }
}

coremq::auth::PasswordFileLimits fuzz_limits() {
  coremq::auth::PasswordFileLimits limits;
  limits.file_bytes_max = 8192;
  limits.line_bytes_max = 2048;
  limits.users_max = 64;
  limits.hash.password_bytes_max = 32;
  limits.hash.pbkdf2_iterations_max = 64;
  limits.hash.argon2_memory_kib_max = 64;
  limits.hash.argon2_time_cost_max = 2;
  limits.hash.argon2_parallelism_max = 1;
  return limits;
}

constexpr size_t kUsersVerifiedMax = 4;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  const coremq::auth::PasswordFileLimits limits = fuzz_limits();

  std::vector<coremq::config::Diagnostic> diagnostics;
  auto file = coremq::auth::PasswordFile::parse(input, "fuzz.pw", limits, &diagnostics);
  for (const coremq::config::Diagnostic& diagnostic : diagnostics) {
    check(diagnostic.where.rfind("fuzz.pw", 0) == 0 && !diagnostic.message.empty(),
          "diagnostic names a place");
  }
  check((file == nullptr) == coremq::config::has_errors(diagnostics),
        "nullptr exactly when there is an error");

  // Usernames come from the lines themselves, split as the parser splits them.
  size_t verified = 0;
  size_t position = 0;
  while (file != nullptr && position < input.size() && verified < kUsersVerifiedMax) {
    size_t end = input.find('\n', position);
    if (end == std::string_view::npos) end = input.size();
    std::string_view line = input.substr(position, end - position);
    position = end + 1;
    std::string_view username;
    std::string_view hash;
    bool extra = false;
    if (!coremq::auth::split_password_line(line, &username, &hash, &extra)) continue;
    const coremq::auth::ParsedHash* stored = file->find(username);
    if (stored == nullptr) continue;
    ++verified;
    auto result = file->verify(username, "pw");
    check(result == coremq::auth::PasswordFile::Result::kAccepted ||
              result == coremq::auth::PasswordFile::Result::kWrongPassword,
          "a kept entry verifies to accepted or wrong password");
  }
  if (file != nullptr) check(file->size() == file->stats().users, "size matches the count");

  // The first line as a bare hash string.
  std::string_view first = input.substr(0, input.find('\n'));
  std::string reason;
  coremq::auth::Verdict verdict = coremq::auth::verify_password(first, "pw", limits.hash, &reason);
  check((verdict == coremq::auth::Verdict::kMatch || verdict == coremq::auth::Verdict::kMismatch) ==
            reason.empty(),
        "a reason exactly when the hash is refused");

  std::string decoded;
  check(coremq::auth::base64_decode(coremq::auth::base64_encode(input), &decoded) && decoded == input,
        "base64 round-trips");
  return 0;
}
