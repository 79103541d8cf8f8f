// A Mosquitto password file (`password_file` in mosquitto.conf, written by mosquitto_passwd or
// coremq-passwd): one `username:hash` per line. Read the way Mosquitto 2.0 reads it (checked
// against Debian's mosquitto 2.0.11):
//   - a line whose first byte is '#' is a comment; a line without ':' (a blank line) is
//     skipped; a trailing "\r" (CRLF files) and blanks around the username and the hash go;
//   - the username is everything before the first ':', the hash everything after it up to
//     the next ':' (Mosquitto's strtok; a second ':' and what follows are ignored, with a
//     warning here);
//   - a username that appears again later: the later line wins (Mosquitto's hash table finds
//     the last one added); a warning names both lines;
//   - a line with an empty hash, a hash Mosquitto cannot read (plain text, unknown scheme,
//     malformed) or, here also, a hash whose cost is above HashLimits: that entry is dropped
//     with a warning naming the line - the user cannot log in - and the rest of the file
//     stands, as Mosquitto's "removing entry" does. Where Mosquitto's strtok parsing lets a
//     hand-edited line through that coremq refuses (an empty username before a leading ':',
//     `$7$+5$`, `$$`, an extra field), coremq fails closed: the entry is dropped and named.
//   - Resource bounds (file size, line length, number of users, NUL bytes) are errors: the
//     whole file is refused (at start-up coremq stops; on reload the old file stays).
// Diagnostics use src/config's form: "FILE:LINE: warning: message" / "FILE:LINE: error: ...".
//
// A PasswordFile is immutable once parsed: shards and the verifier pool share one through a
// std::shared_ptr<const PasswordFile>, and a reload swaps the pointer. find() is a hash-map
// lookup and may run on a shard thread; verify() hashes (microseconds to tens of
// milliseconds per call) and runs only on the verifier pool, never on a shard thread.
// load_password_file reads the disk and runs only at start-up and on reload (main thread).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/password_hash.h"
#include "base/string_map.h"
#include "config/config_file.h"

namespace coremq::auth {

// Bounds on one password file; the defaults fit a fleet of a million devices. Each bound hit
// is an error naming FILE or FILE:LINE.
struct PasswordFileLimits {
  uint64_t file_bytes_max = 256ull << 20;  // 1,000,000 users of a 128-byte name and an argon2id hash
  uint32_t line_bytes_max = 70'000;        // a 65,535-byte MQTT username with its hash
  uint32_t users_max = 1'000'000;
  HashLimits hash;  // per-entry cost bounds: an entry above them is dropped with a warning
};

// What parsing found, for counters and the start-up/reload log line.
struct PasswordFileStats {
  uint32_t lines = 0;
  uint32_t users = 0;               // entries kept
  uint32_t entries_dropped = 0;     // warnings: empty, unknown or malformed hash, bad username
  uint32_t entries_over_limit = 0;  // of those, hashes whose cost is above HashLimits
  uint32_t duplicate_users = 0;     // lines that replaced an earlier line of the same user
};

class PasswordFile {
 public:
  // Parses text (the file's bytes) named path in diagnostics. Returns nullptr when a
  // diagnostic is an error; warnings are appended either way.
  static std::shared_ptr<const PasswordFile> parse(std::string_view text, std::string_view path,
                                                   const PasswordFileLimits& limits,
                                                   std::vector<config::Diagnostic>* diagnostics);

  // The stored hash of username, or nullptr if there is none. Cheap: any thread.
  const ParsedHash* find(std::string_view username) const;

  enum class Result : uint8_t {
    kAccepted,
    kWrongPassword,
    kUnknownUser,      // no such user (also: a user whose entry was dropped at load)
    kPasswordTooLong,  // above limits().hash.password_bytes_max
    kHashOverLimit,    // cannot happen for a parsed file (entries over the limit are dropped)
    kInternalError,    // OpenSSL or libargon2 failed (out of memory)
  };
  static std::string_view result_name(Result result);

  // Hashes password the way username's entry says and compares in constant time. SLOW: only
  // on the verifier pool, never on a shard thread. An unknown user returns at once, without
  // hashing: the caller may answer it on the shard from find() and skip the pool (the time to
  // the CONNACK then tells a prober that the user does not exist, as Mosquitto's does).
  [[nodiscard]] Result verify(std::string_view username, std::string_view password) const;

  size_t size() const { return users_.size(); }
  const PasswordFileStats& stats() const { return stats_; }
  const PasswordFileLimits& limits() const { return limits_; }
  const std::string& path() const { return path_; }

 private:
  PasswordFile() = default;

  std::string path_;
  PasswordFileLimits limits_;
  PasswordFileStats stats_;
  base::StringMap<ParsedHash> users_;
};

// Reads path (bounded by limits.file_bytes_max, read in one go) and parses it. An unreadable
// file is an error diagnostic naming the path and errno's text. Start-up and reload only (it
// reads the disk and hashes nothing): never on a shard thread.
std::shared_ptr<const PasswordFile> load_password_file(const std::string& path,
                                                       const PasswordFileLimits& limits,
                                                       std::vector<config::Diagnostic>* diagnostics);

// Splits one line of a password file the way the broker reads it: false if the line is a
// comment or has no ':'; otherwise *username and *hash are the blank-trimmed fields and
// *extra says a second ':' followed. Shared with coremq-passwd, which edits files line by line.
bool split_password_line(std::string_view line, std::string_view* username, std::string_view* hash,
                         bool* extra);

}  // namespace coremq::auth
