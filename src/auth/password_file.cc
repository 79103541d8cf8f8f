// Mosquitto password files: parsing (any thread, pure), lookup (any thread), verification
// (verifier pool only) and reading from disk (start-up and reload only). See password_file.h.
#include "auth/password_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_format.h"
#include "base/assert.h"

namespace coremq::auth {

namespace {

using config::Diagnostic;
using config::Severity;

// Mosquitto trims with isspace(); in a line that has lost its "\n" these are the ones left.
bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  return text;
}

// Same bound as the MQTT username field: a longer name can never log in.
constexpr size_t kUsernameBytesMax = 65535;

}  // namespace

bool split_password_line(std::string_view line, std::string_view* username, std::string_view* hash,
                         bool* extra) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (line.empty() || line.front() == '#') return false;
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return false;
  *username = trim(line.substr(0, colon));
  std::string_view rest = line.substr(colon + 1);
  size_t second = rest.find(':');
  *extra = second != std::string_view::npos;
  *hash = trim(rest.substr(0, second));
  return true;
}

std::string_view PasswordFile::result_name(Result result) {
  switch (result) {
    case Result::kAccepted:
      return "accepted";
    case Result::kWrongPassword:
      return "wrong password";
    case Result::kUnknownUser:
      return "unknown user";
    case Result::kPasswordTooLong:
      return "password too long";
    case Result::kHashOverLimit:
      return "hash over limit";
    case Result::kInternalError:
      return "internal error";
  }
  return "?";
}

std::shared_ptr<const PasswordFile> PasswordFile::parse(std::string_view text, std::string_view path,
                                                        const PasswordFileLimits& limits,
                                                        std::vector<Diagnostic>* diagnostics) {
  // make_shared cannot reach the private constructor; the file is built here and then frozen.
  std::shared_ptr<PasswordFile> file(new PasswordFile());
  file->path_ = std::string(path);
  file->limits_ = limits;
  if (text.size() > limits.file_bytes_max) {
    diagnostics->push_back({Severity::kError, file->path_,
                            absl::StrFormat("password file is %u bytes, above the limit %u", text.size(),
                                            limits.file_bytes_max)});
    return nullptr;
  }
  // Which line each kept user came from, for the duplicate warning.
  base::StringMap<uint32_t> user_lines;
  uint32_t line_number = 0;
  size_t position = 0;
  while (position < text.size()) {
    size_t end = text.find('\n', position);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(position, end - position);
    position = end + 1;
    ++line_number;
    std::string where = absl::StrFormat("%s:%u", path, line_number);
    auto warn = [&](std::string message) {
      diagnostics->push_back({Severity::kWarning, where, std::move(message)});
      ++file->stats_.entries_dropped;
    };
    if (line.size() > limits.line_bytes_max) {
      diagnostics->push_back(
          {Severity::kError, where,
           absl::StrFormat("line of %u bytes is above the limit %u", line.size(), limits.line_bytes_max)});
      return nullptr;  // the first error ends the parse: a binary file must not flood the log
    }
    if (line.find('\0') != std::string_view::npos) {
      diagnostics->push_back({Severity::kError, where, "NUL byte in line (not a text file?)"});
      return nullptr;
    }
    std::string_view username;
    std::string_view hash_text;
    bool extra = false;
    if (!split_password_line(line, &username, &hash_text, &extra)) continue;
    if (username.empty()) {
      warn("empty username before ':': entry dropped");
      continue;
    }
    if (username.size() > kUsernameBytesMax) {
      warn(absl::StrFormat("username of %u bytes is above MQTT's %u: entry dropped", username.size(),
                           kUsernameBytesMax));
      continue;
    }
    if (hash_text.empty()) {
      warn(absl::StrFormat("no password hash for user '%s': entry dropped", username));
      continue;
    }
    ParsedHash hash;
    std::string reason;
    HashParse parsed = parse_hash(hash_text, limits.hash, &hash, &reason);
    if (parsed != HashParse::kOk) {
      if (parsed == HashParse::kOverLimit) ++file->stats_.entries_over_limit;
      warn(absl::StrFormat("user '%s': %s: entry dropped", username, reason));
      continue;
    }
    if (extra) {
      diagnostics->push_back({Severity::kWarning, where,
                              absl::StrFormat("user '%s': text after a second ':' ignored", username)});
    }
    std::string name(username);
    auto [existing, inserted] = user_lines.try_emplace(name, line_number);
    if (!inserted) {
      diagnostics->push_back({Severity::kWarning, where,
                              absl::StrFormat("user '%s' again (first on line %u): this later line wins",
                                              username, existing->second)});
      existing->second = line_number;
      ++file->stats_.duplicate_users;
    } else if (user_lines.size() > limits.users_max) {
      diagnostics->push_back({Severity::kError, where,
                              absl::StrFormat("more than %u users in the password file", limits.users_max)});
      return nullptr;
    }
    file->users_.insert_or_assign(std::move(name), std::move(hash));
  }
  file->stats_.lines = line_number;
  file->stats_.users = static_cast<uint32_t>(file->users_.size());
  COREMQ_ASSERT(file->users_.size() <= limits.users_max);
  return file;
}

const ParsedHash* PasswordFile::find(std::string_view username) const {
  auto it = users_.find(username);
  return it == users_.end() ? nullptr : &it->second;
}

PasswordFile::Result PasswordFile::verify(std::string_view username, std::string_view password) const {
  const ParsedHash* hash = find(username);
  if (hash == nullptr) return Result::kUnknownUser;
  switch (verify_password(*hash, password, limits_.hash)) {
    case Verdict::kMatch:
      return Result::kAccepted;
    case Verdict::kMismatch:
      return Result::kWrongPassword;
    case Verdict::kPasswordTooLong:
      return Result::kPasswordTooLong;
    case Verdict::kHashOverLimit:
      return Result::kHashOverLimit;
    case Verdict::kMalformedHash:
      // parse() kept only hashes that parse_hash accepted; libargon2 refusing one later is a
      // disagreement between the two parsers, so the login fails closed.
    case Verdict::kInternalError:
      return Result::kInternalError;
  }
  return Result::kInternalError;
}

std::shared_ptr<const PasswordFile> load_password_file(const std::string& path,
                                                       const PasswordFileLimits& limits,
                                                       std::vector<Diagnostic>* diagnostics) {
  int descriptor = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (descriptor < 0) {
    diagnostics->push_back(
        {Severity::kError, path, absl::StrFormat("cannot open: %s", std::strerror(errno))});
    return nullptr;
  }
  struct stat status {};
  if (fstat(descriptor, &status) != 0 || !S_ISREG(status.st_mode)) {
    close(descriptor);
    diagnostics->push_back({Severity::kError, path, "not a regular file"});
    return nullptr;
  }
  if (static_cast<uint64_t>(status.st_size) > limits.file_bytes_max) {
    close(descriptor);
    diagnostics->push_back({Severity::kError, path,
                            absl::StrFormat("password file is %d bytes, above the limit %u", status.st_size,
                                            limits.file_bytes_max)});
    return nullptr;
  }
  // Read to the end (the file may grow between fstat and read), one byte past the limit at most.
  std::string text;
  size_t capacity = static_cast<size_t>(status.st_size) + 1;
  for (;;) {
    size_t offset = text.size();
    text.resize(offset + capacity);
    ssize_t got = read(descriptor, text.data() + offset, capacity);
    if (got < 0 && errno == EINTR) {
      text.resize(offset);
      continue;
    }
    if (got < 0) {
      int error = errno;
      close(descriptor);
      diagnostics->push_back(
          {Severity::kError, path, absl::StrFormat("cannot read: %s", std::strerror(error))});
      return nullptr;
    }
    text.resize(offset + static_cast<size_t>(got));
    if (got == 0) break;
    if (text.size() > limits.file_bytes_max) break;  // parse() reports the size
    capacity = 64 * 1024;
  }
  close(descriptor);
  return PasswordFile::parse(text, path, limits, diagnostics);
}

}  // namespace coremq::auth
