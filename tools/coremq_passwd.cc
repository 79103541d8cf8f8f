// coremq-passwd: creates, updates and deletes users of a Mosquitto password file, with the
// command line of mosquitto_passwd (`-c`, `-D`, `-b`, `-U`, `-H`, `-I`). The files it writes
// are read by coremq (src/auth/password_file.h) and by Mosquitto: $7$ (sha512-pbkdf2, the
// default, 12-byte salt) by every Mosquitto 2.x, $6$ (sha512) by every Mosquitto, $argon2id$
// by Mosquitto 2.1 and coremq only.
//
// Differences from mosquitto_passwd 2.0.11, each on purpose:
//   - the file is replaced atomically (a temporary file in the same directory, fsync, rename),
//     keeping an existing file's mode and, when allowed, its owner; a new file is mode 0600;
//   - -U leaves lines that already hold a hash alone (mosquitto_passwd hashes the hash again,
//     which locks the user out) and keeps comments and blank lines (2.0.11 stops with "Corrupt
//     password file" at a comment);
//   - a username that the broker would read differently (blanks around it, a leading '#', a
//     line break) is refused, as is an -I count above what coremq's broker accepts;
//   - -D and an update act on every line of the user, so duplicates cannot linger.
// A single-threaded command-line program; nothing here runs inside the broker.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/password_file.h"
#include "auth/password_hash.h"

namespace {

using coremq::auth::HashParameters;
using coremq::auth::HashScheme;

constexpr size_t kFieldBytesMax = 65535;  // MQTT's bound on a username and a password
constexpr uint64_t kFileBytesMax = coremq::auth::PasswordFileLimits{}.file_bytes_max;

constexpr char kUsage[] =
    "coremq-passwd " COREMQ_VERSION " manages password files for coremq and mosquitto.\n"
    "\n"
    "Usage: coremq-passwd [-H HASH] [-I iterations] [-c | -D] passwordfile username\n"
    "       coremq-passwd [-H HASH] [-I iterations] [-c] -b passwordfile username\n"
    "                     password\n"
    "       coremq-passwd -U passwordfile\n"
    "       coremq-passwd --help | --version\n"
    "\n"
    " -b : run in batch mode to allow passing passwords on the command line.\n"
    " -c : create a new password file. This will overwrite existing files.\n"
    "      With -b, a passwordfile of - writes the line to standard output.\n"
    " -D : delete the username rather than adding/updating its password.\n"
    " -H : the hashing algorithm: sha512-pbkdf2 (the default; read by every mosquitto\n"
    "      2.x and coremq), sha512 (for mosquitto 1.6 and earlier) or argon2id (for\n"
    "      mosquitto 2.1 and coremq).\n"
    " -I : PBKDF2 iterations for sha512-pbkdf2 (default 1000, at most 1000000).\n"
    " -U : update a plain text password file to use hashed passwords (lines that\n"
    "      already hold a hash are left as they are).\n"
    "\n"
    "New files are created with mode 0600; an existing file keeps its mode and is\n"
    "replaced atomically. See coremq-passwd(1).\n";

struct Arguments {
  bool batch = false;
  bool create = false;
  bool remove = false;
  bool upgrade = false;
  HashParameters hash;
  bool iterations_given = false;
  std::string file;
  std::string username;
  std::string password;
};

int fail(const std::string& message) {
  std::fprintf(stderr, "Error: %s\n", message.c_str());
  return 1;
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "Error: %s\nSee coremq-passwd --help.\n", message.c_str());
  return 1;
}

// Parses argv into *arguments; returns -1 to go on, or the exit code.
int parse_arguments(int argc, char** argv, Arguments* arguments) {
  int index = 1;
  for (; index < argc; ++index) {
    std::string_view argument = argv[index];
    if (argument.size() < 2 || argument[0] != '-') break;
    if (argument == "--help" || argument == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (argument == "--version") {
      std::printf("coremq-passwd %s\n", COREMQ_VERSION);
      return 0;
    }
    if (argument == "-b") {
      arguments->batch = true;
    } else if (argument == "-c") {
      arguments->create = true;
    } else if (argument == "-D") {
      arguments->remove = true;
    } else if (argument == "-U") {
      arguments->upgrade = true;
    } else if (argument == "-H" || argument == "-I") {
      if (index + 1 >= argc) return usage_error(std::string(argument) + " needs an argument.");
      std::string_view value = argv[++index];
      if (argument == "-H") {
        if (!coremq::auth::scheme_from_name(value, &arguments->hash.scheme)) {
          return usage_error("Unknown hash type '" + std::string(value) +
                             "' (use sha512, sha512-pbkdf2 or argon2id).");
        }
      } else {
        char* end = nullptr;
        errno = 0;
        unsigned long long iterations = std::strtoull(argv[index], &end, 10);
        uint32_t iterations_max = coremq::auth::HashLimits{}.pbkdf2_iterations_max;
        if (value.empty() || value[0] < '0' || value[0] > '9' || *end != '\0' || errno != 0 ||
            iterations < 1) {
          return usage_error("-I needs a number of iterations from 1.");
        }
        if (iterations > iterations_max) {
          return usage_error("-I " + std::string(value) + " is above " + std::to_string(iterations_max) +
                             ", the most coremq's broker accepts.");
        }
        arguments->hash.iterations = static_cast<uint32_t>(iterations);
        arguments->iterations_given = true;
      }
    } else {
      return usage_error("Unknown option '" + std::string(argument) + "'.");
    }
  }
  if (arguments->create && arguments->remove) return usage_error("-c and -D cannot be used together.");
  if (arguments->upgrade && (arguments->create || arguments->remove || arguments->batch)) {
    return usage_error("-U cannot be used with -b, -c or -D.");
  }
  if (arguments->remove && arguments->batch) return usage_error("-D cannot be used with -b.");
  if (arguments->iterations_given && arguments->hash.scheme != HashScheme::kSha512Pbkdf2) {
    return usage_error("-I applies to -H sha512-pbkdf2 only.");
  }
  size_t expected = arguments->upgrade ? 1 : arguments->batch ? 3 : 2;
  if (static_cast<size_t>(argc - index) != expected) {
    return usage_error(argc - index < static_cast<int>(expected) ? "Missing arguments."
                                                                 : "Too many arguments.");
  }
  arguments->file = argv[index];
  if (!arguments->upgrade) arguments->username = argv[index + 1];
  if (arguments->batch) arguments->password = argv[index + 2];
  return -1;
}

// The broker trims blanks around a username, treats a leading '#' as a comment and splits on
// ':' and line breaks: a name that would not come back the same is refused here.
std::optional<std::string> username_problem(std::string_view username) {
  if (username.empty()) return "Username must not be empty.";
  if (username.size() > kFieldBytesMax) return "Username must be less than 65536 characters long.";
  if (username.find(':') != std::string_view::npos) return "Username must not contain the ':' character.";
  if (username.find_first_of("\r\n") != std::string_view::npos)
    return "Username must not contain a line break.";
  if (username.front() == '#')
    return "Username must not start with '#' (the file would read it as a comment).";
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f'; };
  if (blank(username.front()) || blank(username.back())) {
    return "Username must not start or end with a blank (the broker trims them).";
  }
  return std::nullopt;
}

// Terminal echo is off while a password is typed; a signal in that window restores it.
struct termios saved_terminal;
int terminal_descriptor = -1;

void restore_terminal_and_exit(int signal_number) {
  if (terminal_descriptor >= 0) tcsetattr(terminal_descriptor, TCSANOW, &saved_terminal);
  signal(signal_number, SIG_DFL);
  raise(signal_number);
}

// Reads one line (without its "\n") from descriptor; false at end of input before any byte.
bool read_line(int descriptor, std::string* line) {
  line->clear();
  char c = 0;
  bool any = false;
  for (;;) {
    ssize_t got = read(descriptor, &c, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return any;
    any = true;
    if (c == '\n') return true;
    // Bounded: one byte past MQTT's limit is enough to say it is too long.
    if (line->size() <= kFieldBytesMax) line->push_back(c);
  }
}

// Prompts on the terminal with echo off; without a terminal, reads lines from standard input
// (as mosquitto_passwd does), prompting on standard error.
bool read_password(const char* prompt, std::string* password) {
  int tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (tty < 0 || !isatty(tty)) {
    if (tty >= 0) close(tty);
    std::fputs(prompt, stderr);
    bool ok = read_line(STDIN_FILENO, password);
    std::fputs("\n", stderr);
    return ok;
  }
  (void)!write(tty, prompt, std::strlen(prompt));
  bool echo_off = tcgetattr(tty, &saved_terminal) == 0;
  if (echo_off) {
    terminal_descriptor = tty;
    struct sigaction action {};
    action.sa_handler = restore_terminal_and_exit;
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGHUP, &action, nullptr);
    struct termios quiet = saved_terminal;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    tcsetattr(tty, TCSANOW, &quiet);
  }
  bool ok = read_line(tty, password);
  if (echo_off) {
    tcsetattr(tty, TCSANOW, &saved_terminal);
    terminal_descriptor = -1;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
  }
  close(tty);
  return ok;
}

int prompt_password(std::string* password) {
  std::string again;
  if (!read_password("Password: ", password)) return fail("No password given.");
  if (password->empty()) return fail("Empty password.");
  if (!read_password("Reenter password: ", &again)) return fail("No password given.");
  if (*password != again) return fail("Passwords do not match.");
  return -1;
}

bool read_file(const std::string& path, std::string* text, std::string* error) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    *error = "Unable to open password file " + path + ". " + std::strerror(errno) + ".";
    return false;
  }
  text->clear();
  char buffer[65536];
  size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, file)) > 0) {
    text->append(buffer, got);
    if (text->size() > kFileBytesMax) {
      std::fclose(file);
      *error = "Password file " + path + " is larger than " + std::to_string(kFileBytesMax) + " bytes.";
      return false;
    }
  }
  bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) *error = "Unable to read password file " + path + ".";
  return !failed;
}

bool write_all(int descriptor, std::string_view text) {
  while (!text.empty()) {
    ssize_t wrote = write(descriptor, text.data(), text.size());
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return false;
    text.remove_prefix(static_cast<size_t>(wrote));
  }
  return true;
}

// Replaces path with text atomically: a temporary file next to it, fsync, rename, fsync of the
// directory. A symbolic link is followed (the file it points to is replaced, the link stays).
bool write_file_atomically(const std::string& path, const std::string& text, std::string* error) {
  std::string target = path;
  if (char* resolved = realpath(path.c_str(), nullptr)) {
    target = resolved;
    std::free(resolved);
  }
  struct stat existing {};
  bool exists = stat(target.c_str(), &existing) == 0;
  if (exists && !S_ISREG(existing.st_mode)) {
    *error = path + " is not a regular file.";
    return false;
  }
  size_t slash = target.rfind('/');
  std::string directory = slash == std::string::npos ? "." : slash == 0 ? "/" : target.substr(0, slash);
  std::string base = slash == std::string::npos ? target : target.substr(slash + 1);
  std::string temporary =
      (slash == std::string::npos ? "" : target.substr(0, slash + 1)) + "." + base + ".XXXXXX";
  int descriptor = mkstemp(temporary.data());  // mode 0600
  if (descriptor < 0) {
    *error = "Unable to create a temporary file in " + directory + ": " + std::strerror(errno) + ".";
    return false;
  }
  auto give_up = [&](const std::string& what) {
    *error = what + ": " + std::strerror(errno) + ".";
    close(descriptor);
    unlink(temporary.c_str());
    return false;
  };
  if (exists) {
    if (fchmod(descriptor, existing.st_mode & 07777) != 0)
      return give_up("Unable to keep the mode of " + path);
    // Only root may give the file to another owner; anyone else keeps their own.
    if ((existing.st_uid != geteuid() || existing.st_gid != getegid()) &&
        fchown(descriptor, existing.st_uid, existing.st_gid) != 0 && errno != EPERM) {
      return give_up("Unable to keep the owner of " + path);
    }
  }
  if (!write_all(descriptor, text)) return give_up("Unable to write " + temporary);
  if (fsync(descriptor) != 0) return give_up("Unable to sync " + temporary);
  if (close(descriptor) != 0) {
    *error = "Unable to write " + temporary + ": " + std::strerror(errno) + ".";
    unlink(temporary.c_str());
    return false;
  }
  if (rename(temporary.c_str(), target.c_str()) != 0) {
    *error = "Unable to replace " + path + ": " + std::strerror(errno) + ".";
    unlink(temporary.c_str());
    return false;
  }
  int directory_descriptor = open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (directory_descriptor >= 0) {
    fsync(directory_descriptor);  // best effort: the rename is done either way
    close(directory_descriptor);
  }
  return true;
}

// The file's lines, each with its line break, so that untouched lines are written back as
// they were (comments, CRLF).
std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t position = 0;
  while (position < text.size()) {
    size_t end = text.find('\n', position);
    end = end == std::string::npos ? text.size() : end + 1;
    lines.push_back(text.substr(position, end - position));
    position = end;
  }
  if (!lines.empty() && lines.back().back() != '\n') lines.back().push_back('\n');
  return lines;
}

std::string line_username(const std::string& line) {
  std::string_view username;
  std::string_view hash;
  bool extra = false;
  if (!coremq::auth::split_password_line(line, &username, &hash, &extra)) return {};
  return std::string(username);
}

std::string join(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line;
  return text;
}

int upgrade(const Arguments& arguments) {
  std::string text;
  std::string error;
  if (!read_file(arguments.file, &text, &error)) return fail(error);
  std::vector<std::string> lines = split_lines(text);
  size_t hashed = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string_view username;
    std::string_view value;
    bool extra = false;
    if (!coremq::auth::split_password_line(lines[i], &username, &value, &extra)) continue;
    coremq::auth::ParsedHash parsed;
    std::string reason;
    if (coremq::auth::parse_hash(value, {}, &parsed, &reason) != coremq::auth::HashParse::kUnknownScheme) {
      continue;  // already a hash (or a broken one, which hashing again would not mend)
    }
    if (username.empty() || value.empty()) {
      std::fprintf(stderr, "Warning: line %zu has no username or no password; left as it is.\n", i + 1);
      continue;
    }
    std::string hash;
    if (!coremq::auth::create_hash(value, arguments.hash, &hash, &error)) return fail(error);
    lines[i] = std::string(username) + ":" + hash + "\n";
    ++hashed;
  }
  if (hashed > 0 && !write_file_atomically(arguments.file, join(lines), &error)) return fail(error);
  return 0;
}

int remove_user(const Arguments& arguments) {
  std::string text;
  std::string error;
  if (!read_file(arguments.file, &text, &error)) return fail(error);
  std::vector<std::string> lines = split_lines(text);
  size_t before = lines.size();
  std::erase_if(lines, [&](const std::string& line) { return line_username(line) == arguments.username; });
  if (lines.size() == before) {
    std::fprintf(stderr, "Warning: User %s not found in password file.\n", arguments.username.c_str());
    return 1;
  }
  if (!write_file_atomically(arguments.file, join(lines), &error)) return fail(error);
  return 0;
}

int set_password(const Arguments& arguments, const std::string& password) {
  std::string hash;
  std::string error;
  if (!coremq::auth::create_hash(password, arguments.hash, &hash, &error)) return fail(error);
  std::string entry = arguments.username + ":" + hash + "\n";
  if (arguments.create) {
    if (arguments.file == "-")
      return write_all(STDOUT_FILENO, entry) ? 0 : fail("Unable to write to stdout.");
    return write_file_atomically(arguments.file, entry, &error) ? 0 : fail(error);
  }
  std::string text;
  if (!read_file(arguments.file, &text, &error)) return fail(error);
  std::vector<std::string> lines = split_lines(text);
  bool found = false;
  for (std::string& line : lines) {
    if (line_username(line) == arguments.username) {
      line = entry;
      found = true;
    }
  }
  if (!found) lines.push_back(entry);
  return write_file_atomically(arguments.file, join(lines), &error) ? 0 : fail(error);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 1) {
    std::fputs(kUsage, stderr);
    return 1;
  }
  Arguments arguments;
  int parsed = parse_arguments(argc, argv, &arguments);
  if (parsed >= 0) return parsed;
  if (arguments.upgrade) return upgrade(arguments);
  if (auto problem = username_problem(arguments.username)) return fail(*problem);
  if (arguments.remove) return remove_user(arguments);
  if (!arguments.create) {
    // Fail before asking for a password when the file is missing, as mosquitto_passwd does.
    if (access(arguments.file.c_str(), F_OK) != 0) {
      return fail("Unable to open password file " + arguments.file + ". " + std::strerror(errno) + ".");
    }
  }
  std::string password = arguments.password;
  if (!arguments.batch) {
    int prompted = prompt_password(&password);
    if (prompted >= 0) return prompted;
  }
  if (password.size() > kFieldBytesMax) return fail("Password must be less than 65536 characters long.");
  return set_password(arguments, password);
}
