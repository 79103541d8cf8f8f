// The config file and environment as flag values; see config_flags.h. This file does the I/O
// (reading files, listing include_dir) that src/config leaves out.
#include "app/config_flags.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"

namespace coremq::app {

namespace {

// The real file system, for include_dir.
class DiskFiles final : public config::FileSource {
 public:
  bool list_directory(const std::string& directory, std::vector<std::string>* names,
                      std::string* error) override {
    DIR* handle = opendir(directory.c_str());
    if (handle == nullptr) {
      *error = std::strerror(errno);
      return false;
    }
    while (dirent* entry = readdir(handle)) names->emplace_back(entry->d_name);
    closedir(handle);
    return true;
  }

  bool read_file(const std::string& path, std::string* text, std::string* error) override {
    struct stat status {};
    if (stat(path.c_str(), &status) != 0) {
      *error = std::strerror(errno);
      return false;
    }
    // Not a directory, a FIFO or /dev/zero: a config file is a regular file of bounded size.
    if (!S_ISREG(status.st_mode)) {
      *error = "not a regular file";
      return false;
    }
    if (static_cast<size_t>(status.st_size) > config::kFileBytesMax) {
      *error = "larger than 1 MiB";
      return false;
    }
    std::ifstream stream(path, std::ios::binary);
    if (!stream) {
      *error = std::strerror(errno);
      return false;
    }
    std::ostringstream contents;
    contents << stream.rdbuf();
    *text = contents.str();
    return true;
  }
};

bool is_own_flag(const absl::CommandLineFlag& flag) {
  return flag.Filename().find("app/flags") != std::string::npos && flag.Name() != "config";
}

// The value of --config in arguments (after normalize_config_arguments), as absl will parse it.
std::string config_argument(const std::vector<std::string>& arguments) {
  std::string path;
  for (size_t i = 1; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument == "--") break;
    for (std::string_view prefix : {"--config=", "-config="}) {
      if (argument.starts_with(prefix)) path = argument.substr(prefix.size());
    }
    if ((argument == "--config" || argument == "-config") && i + 1 < arguments.size()) path = arguments[++i];
  }
  return path;
}

void print(const config::Diagnostic& diagnostic) {
  std::fprintf(stderr, "coremq: %s\n", config::format_diagnostic(diagnostic).c_str());
}

// Sets each flag; the values were checked against the catalog already, so absl takes them.
bool apply_settings(const std::vector<config::Setting>& settings, FlagOrigins* origins) {
  for (const config::Setting& setting : settings) {
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(setting.flag);
    std::string error;
    if (flag == nullptr || !flag->ParseFrom(setting.value, &error)) {
      std::fprintf(stderr, "coremq: %s: --%s=%s: %s\n", setting.where.c_str(), setting.flag.c_str(),
                   setting.value.c_str(), error.c_str());
      return false;
    }
    (*origins)[setting.flag] = setting.where;
  }
  return true;
}

}  // namespace

config::FlagCatalog flag_catalog() {
  config::FlagCatalog catalog;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!is_own_flag(*flag)) continue;
    config::FlagSpec spec;
    if (flag->IsOfType<bool>()) {
      spec.type = config::FlagType::kBool;
    } else if (flag->IsOfType<uint32_t>()) {
      spec.type = config::FlagType::kUint32;
    } else {
      spec.type = config::FlagType::kString;
    }
    catalog.emplace(std::string(name), spec);
  }
  for (const FlagRange& range : flag_ranges()) {
    auto it = catalog.find(range.flag);
    if (it == catalog.end()) continue;
    it->second.low = range.low;
    it->second.high = range.high;
  }
  return catalog;
}

void normalize_config_arguments(std::vector<std::string>* arguments) {
  for (size_t i = 1; i < arguments->size(); ++i) {
    std::string& argument = (*arguments)[i];
    if (argument == "--") break;
    if (argument == "-c" || argument == "--config_file") {
      argument = "--config";
    } else if (argument.starts_with("-c=")) {
      argument = "--config=" + argument.substr(3);
    } else if (argument.starts_with("--config_file=")) {
      argument = "--config=" + argument.substr(std::string_view("--config_file=").size());
    }
  }
}

bool apply_config_and_environment(const std::vector<std::string>& arguments, FlagOrigins* origins,
                                  FileListeners* listeners) {
  const config::FlagCatalog catalog = flag_catalog();
  std::string path = config_argument(arguments);
  if (path.empty()) {
    const char* from_environment = std::getenv("COREMQ_CONFIG");
    if (from_environment != nullptr) path = from_environment;
  }
  if (!path.empty()) {
    DiskFiles files;
    std::string text;
    std::string error;
    if (!files.read_file(path, &text, &error)) {
      std::fprintf(stderr, "coremq: cannot read config file %s: %s\n", path.c_str(), error.c_str());
      return false;
    }
    config::ConfigResult result = config::read_config(text, path, catalog, &files);
    for (const config::Diagnostic& diagnostic : result.diagnostics) print(diagnostic);
    if (config::has_errors(result.diagnostics)) {
      std::fprintf(stderr, "coremq: errors in config file %s; not starting\n", path.c_str());
      return false;
    }
    if (!apply_settings(result.settings, origins)) return false;
    listeners->read = true;
    listeners->default_listener_opened = result.default_listener_opened;
    listeners->default_listener = std::move(result.default_listener);
    listeners->listeners = std::move(result.listeners);
    listeners->bridges = std::move(result.bridges);
    for (size_t i = 1; i < result.files.size(); ++i) {
      std::fprintf(stderr, "coremq: read config file %s (include_dir)\n", result.files[i].c_str());
    }
    if (result.local_only) {
      std::fprintf(stderr,
                   "coremq: %s has no listener, port or bind_address: listening on loopback only "
                   "(127.0.0.1 and ::1), as Mosquitto 2 does (--bind or --listener override)\n",
                   path.c_str());
    }
  }
  std::vector<config::Diagnostic> diagnostics;
  std::vector<config::Setting> settings =
      config::settings_from_environment(catalog, std::getenv, &diagnostics);
  for (const config::Diagnostic& diagnostic : diagnostics) print(diagnostic);
  if (config::has_errors(diagnostics)) return false;
  return apply_settings(settings, origins);
}

void forget_command_line_origins(const std::vector<std::string>& arguments, FlagOrigins* origins) {
  for (size_t i = 1; i < arguments.size(); ++i) {
    std::string_view argument = arguments[i];
    if (argument == "--") break;
    if (!argument.starts_with("-")) continue;
    argument.remove_prefix(argument.starts_with("--") ? 2 : 1);
    std::string_view name = argument.substr(0, argument.find('='));
    origins->erase(std::string(name));
    if (name.starts_with("no")) origins->erase(std::string(name.substr(2)));  // --nopin_threads
  }
}

}  // namespace coremq::app
