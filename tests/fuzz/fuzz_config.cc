// libFuzzer target for the config file reader (src/config): any bytes as a main config file,
// with an in-memory include_dir "conf.d" whose files are cut from the same input.
//
// Input: the main file's text, then optionally "\n%%\n" and the text of conf.d/a.conf, then
// "\n%%\n" and conf.d/b.conf ... (at most four included files). The catalog is the unit tests'
// fixed one (tests/unit/config/test_catalog.h).
//
// Checked on every input: no crash, sanitizer report or assertion; every diagnostic names a
// place; every setting names a flag of the catalog with a value that passes the catalog's check
// (so the binary's flag parser always takes it) and a place; a file without errors gives only
// listeners that pass check_listener.
//
// Each line of the main file is also a --log-dest value (base::parse_log_destinations: taken
// with at least one destination, or refused with a reason), and a --listener spec
// (src/config/listener_spec.h), the other parser of listener text: a spec it takes passes
// check_listener, has TLS exactly for mqtts:// and wss://, and an address the broker can bind
// ("", "*", numeric, or a host name).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>

#include "base/log.h"
#include "config/config_file.h"
#include "config/bridge_spec.h"
#include "config/listener_spec.h"
#include "io/resolve.h"
#include "test_catalog.h"

namespace {

using coremq::config::FlagCatalog;
using coremq::config::FlagSpec;
using coremq::config::FlagType;

const FlagCatalog& catalog() { return coremq::testing::config_test_catalog(); }

class MemoryFiles final : public coremq::config::FileSource {
 public:
  std::map<std::string, std::string> files;  // name in conf.d -> text

  bool list_directory(const std::string& directory, std::vector<std::string>* names,
                      std::string* error) override {
    if (directory != "conf.d") {
      *error = "No such file or directory";
      return false;
    }
    for (const auto& [name, text] : files) names->push_back(name);
    names->push_back("ignored.txt");
    return true;
  }
  bool read_file(const std::string& path, std::string* text, std::string* error) override {
    auto it = files.find(path.substr(path.find('/') + 1));
    if (path.rfind("conf.d/", 0) != 0 || it == files.end()) {
      *error = "not a regular file";
      return false;
    }
    *text = it->second;
    return true;
  }
};

void check(bool condition, const char* what) {
  if (!condition) {
    __builtin_printf("fuzz_config: invariant broken: %s\n", what);
    std::abort();
  }
}

// An address the broker can bind: "", "*", numeric, or a host name Broker::start resolves.
bool bindable(const std::string& address) {
  unsigned char buffer[16];
  return address.empty() || address == "*" || inet_pton(AF_INET, address.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, address.c_str(), buffer) == 1 || coremq::io::is_host_name(address);
}

void check_spec(std::string_view spec) {
  coremq::ListenerOptions listener;
  std::string error;
  if (!coremq::config::parse_listener_spec(spec, &listener, &error)) {
    check(!error.empty(), "a refused spec says why");
    return;
  }
  check(coremq::config::check_listener(listener, &error), "a spec taken passes check_listener");
  check(listener.tls == (spec.starts_with("mqtts://") || spec.starts_with("wss://")), "TLS exactly for mqtts/wss");
  check(bindable(listener.address), "a spec's address is bindable");
}

void check_log_destinations(std::string_view spec) {
  coremq::base::LogDestinations destinations;
  std::string error;
  if (!coremq::base::parse_log_destinations(spec, &destinations, &error)) {
    check(!error.empty(), "a refused --log-dest says why");
    return;
  }
  check(destinations.to_stderr || destinations.to_syslog || !destinations.file_path.empty(),
        "a --log-dest taken names a destination");
}

// The --bridge form (src/config/bridge_spec.h): a spec taken passes check_bridge, and every topic
// line it holds has a QoS of at most 2.
void check_bridge_spec(std::string_view spec) {
  coremq::BridgeOptions bridge;
  std::string error;
  if (!coremq::config::parse_bridge_spec(spec, &bridge, &error)) {
    check(!error.empty(), "a refused bridge spec says why");
    return;
  }
  check(coremq::config::check_bridge(bridge, &error), "a bridge spec taken passes check_bridge");
  for (const coremq::BridgeTopic& topic : bridge.topics) check(topic.qos <= 2, "a bridge topic's QoS is 0-2");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kSeparator = "\n%%\n";
  std::vector<std::string_view> parts;
  while (parts.size() < 4) {
    size_t at = input.find(kSeparator);
    if (at == std::string_view::npos) break;
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + kSeparator.size());
  }
  parts.push_back(input);

  MemoryFiles files;
  const char* names[] = {"a.conf", "B.conf", "b.conf", "10.conf"};
  for (size_t i = 1; i < parts.size(); ++i) files.files[names[i - 1]] = std::string(parts[i]);

  for (std::string_view rest = parts[0]; !rest.empty();) {
    size_t end = rest.find('\n');
    check_spec(rest.substr(0, end));
    check_log_destinations(rest.substr(0, end));
    check_bridge_spec(rest.substr(0, end));
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
  }

  coremq::config::ConfigResult result = coremq::config::read_config(parts[0], "main.conf", catalog(), &files);
  if (!coremq::config::has_errors(result.diagnostics)) {
    std::string error;
    for (const coremq::config::ConfigListener& listener : result.listeners) {
      check(coremq::config::check_listener(listener.options, &error), "a file's listener passes check_listener");
      check(bindable(listener.options.address), "a file's listener address is bindable");
    }
    for (const coremq::config::ConfigBridge& bridge : result.bridges) {
      check(coremq::config::check_bridge(bridge.options, &error), "a file's bridge passes check_bridge");
    }
  }
  check(!result.files.empty() && result.files[0] == "main.conf", "main file first");
  for (const coremq::config::Diagnostic& diagnostic : result.diagnostics) {
    check(!diagnostic.where.empty() && !diagnostic.message.empty(), "diagnostic names a place");
  }
  for (const coremq::config::Setting& setting : result.settings) {
    check(!setting.where.empty(), "setting names a place");
    std::string canonical;
    std::string error;
    check(coremq::config::check_flag_value(catalog(), setting.flag, setting.value, &canonical, &error),
          "setting passes the catalog's check");
    check(canonical == setting.value, "setting is canonical");
    if (setting.flag == "log_dest") check_log_destinations(setting.value);
  }
  return 0;
}
