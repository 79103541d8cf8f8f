// Bridge settings in text: the option lines of a mosquitto.conf `connection NAME` section and the
// compact `--bridge=NAME,key=value,...` spec of the binary's flag, both through one per-option
// setter, so the file and the flag take the same names, values and checks. Pure (no I/O, no name
// resolution: host names stay names until Broker::start resolves them); runs once at start on the
// main thread, and under tests/fuzz/fuzz_config.
//
// Spec grammar (docs/BRIDGING.md shows it to users):
//   NAME,key=value[,key=value...]
// where each key is a bridge option of mosquitto.conf (address, topic, bridge_protocol_version,
// cleansession, remote_clientid ...) and its value is what follows the option name in the file,
// words separated by blanks; `topic` may repeat. A value runs to the next ',', so a value cannot
// hold one. Example:
//   --bridge='edge,address=10.0.0.1:1883 10.0.0.2,topic=sensors/# out 1 "" site1/,try_private=true'
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "coremq/options.h"

namespace coremq::config {

// A longer spec is refused before it is looked at.
inline constexpr size_t kBridgeSpecBytesMax = 65536;
// Topic lines and addresses one bridge may have.
inline constexpr size_t kBridgeTopicsMax = 1000;
inline constexpr size_t kBridgeAddressesMax = 64;

enum class BridgeOptionStatus {
  kSet,          // taken
  kUnsupported,  // a Mosquitto bridge option coremq does not support: *message says why (a warning)
  kError,        // malformed or out of range: *message says why
  kUnknown,      // not a bridge option
};

// Whether name is a bridge option (supported or not): it then belongs in a `connection` section.
bool is_bridge_option(std::string_view name);

// One option line of a bridge section (name as written in the file, words its value split on
// blanks) applied to *bridge.
[[nodiscard]] BridgeOptionStatus set_bridge_option(std::string_view name,
                                                   const std::vector<std::string>& words,
                                                   BridgeOptions* bridge, std::string* message);

// Whether a complete bridge makes sense: a name, at least one address, at least one topic.
[[nodiscard]] bool check_bridge(const BridgeOptions& bridge, std::string* error);

// A whole spec into *bridge (which starts from a default BridgeOptions), checked with
// check_bridge. Options coremq does not support are errors here (a command line says what it
// wants); *error does not repeat the spec.
[[nodiscard]] bool parse_bridge_spec(std::string_view spec, BridgeOptions* bridge, std::string* error);

// The address words of `address` (`host[:port]`, `[v6]:port`) into *addresses.
[[nodiscard]] bool parse_bridge_addresses(const std::vector<std::string>& words,
                                          std::vector<BridgeOptions::Address>* addresses, std::string* error);

}  // namespace coremq::config
