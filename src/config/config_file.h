// The Mosquitto-compatible config file: mosquitto.conf syntax (`name value...` lines) read into
// settings of coremq's flags, with a warning for each Mosquitto option coremq ignores and an
// error for each unknown option or malformed value, both naming FILE:LINE.
//
// Pure: it takes each file's text and name and never touches the file system. The files of an
// include_dir are listed and read through FileSource, which the binary implements on the real
// file system (src/app/config_flags.cc) and tests implement in memory. Which flags exist, their
// types and ranges come in a FlagCatalog built from the binary's flags, so the file accepts
// every flag the binary has and nothing else. Runs once at start, on the main thread.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "coremq/options.h"

namespace coremq::config {

// Files and included files: a config file larger than this, or an include_dir with more
// .conf files, is an error (a typo such as `include_dir /dev` must not read forever).
inline constexpr size_t kFileBytesMax = 1 << 20;
inline constexpr size_t kIncludedFilesMax = 1000;

enum class Severity { kWarning, kError };

struct Diagnostic {
  Severity severity;
  std::string where;  // "FILE:LINE", or "COREMQ_NAME" for an environment variable
  std::string message;
};
// "FILE:LINE: warning: message" / "FILE:LINE: error: message".
std::string format_diagnostic(const Diagnostic& diagnostic);
bool has_errors(const std::vector<Diagnostic>& diagnostics);

// One `name value...` line of a file.
struct Directive {
  std::string where;               // "FILE:LINE"
  std::string name;                // as written
  std::string value;               // everything after the name, blanks around it removed
  std::vector<std::string> words;  // value split on blanks
};

// Splits text into directives. Blank lines and lines whose first non-blank character is '#'
// are skipped; blanks are spaces and tabs, and a trailing '\r' is dropped. A NUL byte is an
// error (values end up in C strings).
std::vector<Directive> parse_lines(std::string_view text, std::string_view file_name,
                                   std::vector<Diagnostic>* diagnostics);

// What the binary's flags are: name (underscore spelling) -> type and accepted range.
enum class FlagType { kBool, kUint32, kString };
struct FlagSpec {
  FlagType type = FlagType::kString;
  uint32_t low = 0;
  uint32_t high = std::numeric_limits<uint32_t>::max();
};
using FlagCatalog = std::map<std::string, FlagSpec, std::less<>>;

// Checks value against spec; *canonical is the value as the flag parser takes it ("true" for
// "1" ...). On failure *error says why, e.g. "--max-connections=0 is out of range [1, 50000000]".
[[nodiscard]] bool check_flag_value(const FlagCatalog& catalog, std::string_view flag, std::string_view value,
                                    std::string* canonical, std::string* error);

// One flag value and where it came from ("FILE:LINE" or "COREMQ_NAME").
struct Setting {
  std::string flag;
  std::string value;
  std::string where;
};

// Lists and reads files for include_dir. Implemented by the binary and by tests.
class FileSource {
 public:
  virtual ~FileSource() = default;
  // Names (not paths) of the entries of directory, in any order.
  [[nodiscard]] virtual bool list_directory(const std::string& directory, std::vector<std::string>* names,
                                            std::string* error) = 0;
  [[nodiscard]] virtual bool read_file(const std::string& path, std::string* text, std::string* error) = 0;
};

// Which entries of an include_dir are read, in which order, as Mosquitto does: names longer than
// ".conf" that end in ".conf", sorted case-insensitively with upper case first on a tie
// ("A.conf" < "a.conf" < "B.conf"); returned as "directory/name".
std::vector<std::string> included_files(const std::string& directory, std::vector<std::string> names);

// A `listener PORT [ADDRESS]` section: the listener with the options that followed the line.
struct ConfigListener {
  ListenerOptions options;
  std::string where;  // the `listener` line
};

// A `connection NAME` section: the bridge with the options that followed the line.
struct ConfigBridge {
  BridgeOptions options;
  std::string where;  // the `connection` line
};

struct ConfigResult {
  std::vector<Setting> settings;  // in file order; a later one for the same flag wins
  std::vector<Diagnostic> diagnostics;
  std::vector<std::string> files;  // every file read, the main one first
  // No listener, port or bind_address anywhere: Mosquitto 2 then listens on loopback only,
  // and so does coremq (--bind's default, 127.0.0.1 and ::1).
  bool local_only = false;
  // Mosquitto's default listener is opened (a `port` or `bind_address` line, or no listener at
  // all): its address and port are the --bind and --port flags (set by those lines among the
  // settings, so the environment and the command line override them), and its other options
  // are default_listener's (the listener options before the first `listener` line, and the
  // security options as per_listener_settings says).
  bool default_listener_opened = true;
  ListenerOptions default_listener;
  // The `listener` sections in file order, complete and checked (check_listener).
  std::vector<ConfigListener> listeners;
  // The `connection` sections in file order, checked (check_bridge).
  std::vector<ConfigBridge> bridges;
};

// Reads the main file's text (named file_name) and, through files, its include_dir files.
ConfigResult read_config(std::string_view text, const std::string& file_name, const FlagCatalog& catalog,
                         FileSource* files);

// COREMQ_<FLAG> variables (COREMQ_MAX_CONNECTIONS for max_connections) of every catalog flag,
// looked up through getenv; a malformed value is an error naming the variable.
std::vector<Setting> settings_from_environment(const FlagCatalog& catalog,
                                               const std::function<const char*(const char*)>& getenv,
                                               std::vector<Diagnostic>* diagnostics);
// "max_connections" -> "COREMQ_MAX_CONNECTIONS".
std::string environment_name(std::string_view flag);

}  // namespace coremq::config
