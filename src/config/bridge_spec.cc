// Bridge option lines and --bridge specs; see bridge_spec.h.
#include "config/bridge_spec.h"

#include <charconv>
#include <cstdint>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "topic/topic.h"

namespace coremq::config {

namespace {

// Mosquitto bridge options coremq reads but does not act on, and why.
struct Unsupported {
  std::string_view name;
  std::string_view why;
};
constexpr Unsupported kUnsupported[] = {
    {"bridge_alpn", "bridge TLS is not supported yet"},
    {"bridge_attempt_unsubscribe", "coremq never unsubscribes on the remote"},
    {"bridge_bind_address", "the kernel picks the source address"},
    {"bridge_capath", "bridge TLS is not supported yet"},
    {"bridge_identity", "TLS-PSK is not supported"},
    {"bridge_psk", "TLS-PSK is not supported"},
    {"bridge_require_ocsp", "bridge TLS is not supported yet"},
    {"local_cleansession", "the bridge's local session lives as long as coremq"},
    {"local_username", "the bridge's local side is in-process and needs no credentials"},
    {"local_password", "the bridge's local side is in-process and needs no credentials"},
    {"notifications_local_only", "notifications go to both brokers"},
    {"round_robin", "a lost connection always starts again from the first address"},
};

// TLS towards the remote (the client transport of src/transport).
constexpr std::string_view kTlsOptions[] = {"bridge_cafile", "bridge_certfile", "bridge_keyfile",
                                            "bridge_insecure", "bridge_tls_version"};

constexpr std::string_view kSupported[] = {"address",
                                           "addresses",
                                           "topic",
                                           "bridge_protocol_version",
                                           "try_private",
                                           "cleansession",
                                           "local_clientid",
                                           "remote_clientid",
                                           "clientid",
                                           "remote_username",
                                           "username",
                                           "remote_password",
                                           "password",
                                           "keepalive_interval",
                                           "notifications",
                                           "notification_topic",
                                           "restart_timeout",
                                           "start_type",
                                           "threshold",
                                           "idle_timeout",
                                           "bridge_max_packet_size",
                                           "bridge_outgoing_retain",
                                           "bridge_max_queued_messages",
                                           "bridge_max_inflight",
                                           "bridge_max_inflight_qos2"};

bool parse_uint(std::string_view text, uint64_t low, uint64_t high, uint64_t* value) {
  auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return !text.empty() && status == std::errc() && end == text.data() + text.size() && *value >= low &&
         *value <= high;
}

bool one_word(std::string_view name, const std::vector<std::string>& words, std::string* message) {
  if (words.size() == 1) return true;
  *message = absl::StrFormat("%s takes one value, not %u", name, words.size());
  return false;
}

BridgeOptionStatus boolean(std::string_view name, const std::vector<std::string>& words, bool* out,
                           std::string* message) {
  if (!one_word(name, words, message)) return BridgeOptionStatus::kError;
  const std::string& word = words[0];
  if (word == "true" || word == "1") {
    *out = true;
  } else if (word == "false" || word == "0") {
    *out = false;
  } else {
    *message = absl::StrFormat("%s must be true or false, not '%s'", name, word);
    return BridgeOptionStatus::kError;
  }
  return BridgeOptionStatus::kSet;
}

BridgeOptionStatus number(std::string_view name, const std::vector<std::string>& words, uint64_t low,
                          uint64_t high, uint64_t* out, std::string* message) {
  if (!one_word(name, words, message)) return BridgeOptionStatus::kError;
  if (!parse_uint(words[0], low, high, out)) {
    *message = absl::StrFormat("%s must be a number in [%u, %u], not '%s'", name, low, high, words[0]);
    return BridgeOptionStatus::kError;
  }
  return BridgeOptionStatus::kSet;
}

BridgeOptionStatus text(std::string_view name, const std::vector<std::string>& words, std::string* out,
                        std::string* message) {
  if (words.empty()) {
    *message = absl::StrFormat("%s needs a value", name);
    return BridgeOptionStatus::kError;
  }
  // A password or client id may not hold blanks in mosquitto.conf either (it splits on them).
  if (!one_word(name, words, message)) return BridgeOptionStatus::kError;
  *out = words[0];
  return BridgeOptionStatus::kSet;
}

// `""` in the file is the empty string (Mosquitto's spelling of "no pattern"/"no prefix").
std::string unquote(const std::string& word) {
  return word == "\"\"" ? std::string() : word;
}

BridgeOptionStatus topic_line(const std::vector<std::string>& words, BridgeOptions* bridge,
                              std::string* message) {
  if (words.empty() || words.size() > 5) {
    *message = "topic takes PATTERN [out|in|both] [QOS] [LOCAL_PREFIX] [REMOTE_PREFIX]";
    return BridgeOptionStatus::kError;
  }
  if (bridge->topics.size() >= kBridgeTopicsMax) {
    *message = absl::StrFormat("a bridge has at most %u topic lines", kBridgeTopicsMax);
    return BridgeOptionStatus::kError;
  }
  BridgeTopic topic;
  topic.pattern = unquote(words[0]);
  if (words.size() > 1) {
    if (words[1] == "out") {
      topic.direction = BridgeTopic::Direction::kOut;
    } else if (words[1] == "in") {
      topic.direction = BridgeTopic::Direction::kIn;
    } else if (words[1] == "both") {
      topic.direction = BridgeTopic::Direction::kBoth;
    } else {
      *message = absl::StrFormat("topic direction must be out, in or both, not '%s'", words[1]);
      return BridgeOptionStatus::kError;
    }
  }
  if (words.size() > 2) {
    uint64_t qos = 0;
    if (!parse_uint(words[2], 0, 2, &qos)) {
      *message = absl::StrFormat("topic QoS must be 0, 1 or 2, not '%s'", words[2]);
      return BridgeOptionStatus::kError;
    }
    topic.qos = static_cast<uint8_t>(qos);
  }
  if (words.size() > 3) topic.local_prefix = unquote(words[3]);
  if (words.size() > 4) topic.remote_prefix = unquote(words[4]);
  for (const std::string* prefix : {&topic.local_prefix, &topic.remote_prefix}) {
    if (prefix->find_first_of("+#") != std::string::npos) {
      *message = absl::StrFormat("topic prefix '%s' may not hold a wildcard", *prefix);
      return BridgeOptionStatus::kError;
    }
  }
  if (topic.pattern.empty()) {
    // Mosquitto: with no pattern each prefix is the whole topic on its side.
    if (topic.local_prefix.empty() || topic.remote_prefix.empty() ||
        !topic::is_valid_topic_name(topic.local_prefix) || !topic::is_valid_topic_name(topic.remote_prefix)) {
      *message = "a topic line with an empty pattern needs both prefixes, each a whole topic";
      return BridgeOptionStatus::kError;
    }
  } else if (!topic::is_valid_topic_filter(topic.local_prefix + topic.pattern) ||
             !topic::is_valid_topic_filter(topic.remote_prefix + topic.pattern)) {
    *message = absl::StrFormat("topic '%s' with its prefixes is not a valid topic filter", topic.pattern);
    return BridgeOptionStatus::kError;
  }
  bridge->topics.push_back(std::move(topic));
  return BridgeOptionStatus::kSet;
}

}  // namespace

bool parse_bridge_addresses(const std::vector<std::string>& words,
                            std::vector<BridgeOptions::Address>* addresses, std::string* error) {
  addresses->clear();
  if (words.empty() || words.size() > kBridgeAddressesMax) {
    *error = absl::StrFormat("address takes 1 to %u host[:port] words", kBridgeAddressesMax);
    return false;
  }
  for (const std::string& word : words) {
    BridgeOptions::Address address;
    std::string_view rest = word;
    std::string_view port;
    if (rest.starts_with('[')) {
      size_t close = rest.find(']');
      if (close == std::string_view::npos || (close + 1 < rest.size() && rest[close + 1] != ':')) {
        *error = absl::StrFormat("address '%s': write an IPv6 address as [ADDRESS]:PORT", word);
        return false;
      }
      address.host = std::string(rest.substr(1, close - 1));
      if (close + 1 < rest.size()) port = rest.substr(close + 2);
    } else {
      size_t colon = rest.rfind(':');
      if (colon != std::string_view::npos && rest.find(':') != colon)
        colon = std::string_view::npos;  // bare IPv6
      address.host = std::string(rest.substr(0, colon));
      if (colon != std::string_view::npos) port = rest.substr(colon + 1);
    }
    uint64_t number = 1883;
    if (address.host.empty() || (!port.empty() && !parse_uint(port, 1, 65535, &number)) ||
        (port.empty() && word.back() == ':')) {
      *error = absl::StrFormat("address '%s' is not host[:port] with a port in [1, 65535]", word);
      return false;
    }
    address.port = static_cast<uint16_t>(number);
    addresses->push_back(std::move(address));
  }
  return true;
}

bool is_bridge_option(std::string_view name) {
  for (std::string_view supported : kSupported) {
    if (supported == name) return true;
  }
  for (const Unsupported& unsupported : kUnsupported) {
    if (unsupported.name == name) return true;
  }
  for (std::string_view tls : kTlsOptions) {
    if (tls == name) return true;
  }
  return false;
}

BridgeOptionStatus set_bridge_option(std::string_view name, const std::vector<std::string>& words,
                                     BridgeOptions* bridge, std::string* message) {
  for (const Unsupported& unsupported : kUnsupported) {
    if (unsupported.name == name) {
      *message = absl::StrFormat("%s is not supported and is ignored: %s", name, unsupported.why);
      return BridgeOptionStatus::kUnsupported;
    }
  }
  uint64_t value = 0;
  BridgeOptionStatus status = BridgeOptionStatus::kSet;
  if (name == "bridge_cafile") {
    status = text(name, words, &bridge->cafile, message);
  } else if (name == "bridge_certfile") {
    status = text(name, words, &bridge->certfile, message);
  } else if (name == "bridge_keyfile") {
    status = text(name, words, &bridge->keyfile, message);
  } else if (name == "bridge_insecure") {
    status = boolean(name, words, &bridge->insecure, message);
  } else if (name == "bridge_tls_version") {
    status = text(name, words, &bridge->tls_version, message);
    if (status == BridgeOptionStatus::kSet && bridge->tls_version != "tlsv1.2" &&
        bridge->tls_version != "tlsv1.3") {
      *message =
          absl::StrFormat("bridge_tls_version must be tlsv1.2 or tlsv1.3, not '%s'", bridge->tls_version);
      return BridgeOptionStatus::kError;
    }
  }
  if (status != BridgeOptionStatus::kSet || name == "bridge_cafile" || name == "bridge_certfile" ||
      name == "bridge_keyfile" || name == "bridge_insecure" || name == "bridge_tls_version") {
    return status;
  }
  if (name == "address" || name == "addresses") {
    if (!parse_bridge_addresses(words, &bridge->addresses, message)) return BridgeOptionStatus::kError;
  } else if (name == "topic") {
    return topic_line(words, bridge, message);
  } else if (name == "bridge_protocol_version") {
    if (!one_word(name, words, message)) return BridgeOptionStatus::kError;
    if (words[0] == "mqttv311") {
      bridge->protocol_version = 4;
    } else if (words[0] == "mqttv50") {
      bridge->protocol_version = 5;
    } else {
      *message = absl::StrFormat("bridge_protocol_version must be mqttv311 or mqttv50, not '%s'", words[0]);
      return BridgeOptionStatus::kError;
    }
  } else if (name == "try_private") {
    status = boolean(name, words, &bridge->try_private, message);
  } else if (name == "cleansession") {
    status = boolean(name, words, &bridge->clean_session, message);
  } else if (name == "notifications") {
    status = boolean(name, words, &bridge->notifications, message);
  } else if (name == "bridge_outgoing_retain") {
    status = boolean(name, words, &bridge->outgoing_retain, message);
  } else if (name == "local_clientid") {
    status = text(name, words, &bridge->local_clientid, message);
  } else if (name == "remote_clientid" || name == "clientid") {
    status = text(name, words, &bridge->remote_clientid, message);
  } else if (name == "remote_username" || name == "username") {
    status = text(name, words, &bridge->remote_username, message);
  } else if (name == "remote_password" || name == "password") {
    status = text(name, words, &bridge->remote_password, message);
    bridge->has_remote_password = status == BridgeOptionStatus::kSet;
  } else if (name == "notification_topic") {
    status = text(name, words, &bridge->notification_topic, message);
    if (status == BridgeOptionStatus::kSet && !topic::is_valid_topic_name(bridge->notification_topic)) {
      *message = absl::StrFormat("notification_topic '%s' is not a topic name", bridge->notification_topic);
      return BridgeOptionStatus::kError;
    }
  } else if (name == "keepalive_interval") {
    // Mosquitto refuses less than 5 s for a bridge; 0 (none) is not offered either.
    status = number(name, words, 5, 65535, &value, message);
    bridge->keepalive_seconds = static_cast<uint16_t>(value);
  } else if (name == "restart_timeout") {
    if (words.empty() || words.size() > 2 || !parse_uint(words[0], 1, 86400, &value)) {
      *message = "restart_timeout takes SECONDS (constant) or BASE CAP (backoff), each in [1, 86400]";
      return BridgeOptionStatus::kError;
    }
    bridge->restart_timeout_seconds = static_cast<uint32_t>(value);
    bridge->restart_timeout_cap_seconds = 0;
    if (words.size() == 2) {
      if (!parse_uint(words[1], value, 86400, &value)) {
        *message = "restart_timeout BASE CAP: CAP must be a number in [BASE, 86400]";
        return BridgeOptionStatus::kError;
      }
      bridge->restart_timeout_cap_seconds = static_cast<uint32_t>(value);
    }
  } else if (name == "start_type") {
    if (!one_word(name, words, message)) return BridgeOptionStatus::kError;
    if (words[0] == "automatic") {
      bridge->start_type = BridgeOptions::StartType::kAutomatic;
    } else if (words[0] == "lazy") {
      bridge->start_type = BridgeOptions::StartType::kLazy;
    } else if (words[0] == "once") {
      bridge->start_type = BridgeOptions::StartType::kOnce;
    } else {
      *message = absl::StrFormat("start_type must be automatic, lazy or once, not '%s'", words[0]);
      return BridgeOptionStatus::kError;
    }
  } else if (name == "threshold") {
    status = number(name, words, 1, 1u << 24, &value, message);
    bridge->threshold = static_cast<uint32_t>(value);
  } else if (name == "idle_timeout") {
    status = number(name, words, 1, 86400, &value, message);
    bridge->idle_timeout_seconds = static_cast<uint32_t>(value);
  } else if (name == "bridge_max_packet_size") {
    status = number(name, words, 0, 268435460, &value, message);
    bridge->max_packet_size = static_cast<uint32_t>(value);
  } else if (name == "bridge_max_queued_messages") {
    status = number(name, words, 1, 1u << 24, &value, message);
    bridge->max_queued_messages = static_cast<uint32_t>(value);
  } else if (name == "bridge_max_inflight") {
    status = number(name, words, 1, 65535, &value, message);
    bridge->max_inflight = static_cast<uint32_t>(value);
  } else if (name == "bridge_max_inflight_qos2") {
    status = number(name, words, 1, 65535, &value, message);
    bridge->max_inflight_qos2 = static_cast<uint32_t>(value);
  } else {
    *message = absl::StrFormat("'%s' is not a bridge option", name);
    return BridgeOptionStatus::kUnknown;
  }
  return status;
}

bool check_bridge(const BridgeOptions& bridge, std::string* error) {
  if (bridge.name.empty()) {
    *error = "a bridge needs a name";
    return false;
  }
  if (bridge.addresses.empty()) {
    *error = absl::StrFormat("bridge '%s' has no address", bridge.name);
    return false;
  }
  if (bridge.topics.empty()) {
    *error = absl::StrFormat("bridge '%s' has no topic line", bridge.name);
    return false;
  }
  if (bridge.certfile.empty() != bridge.keyfile.empty()) {
    *error = absl::StrFormat("bridge '%s': bridge_certfile and bridge_keyfile go together", bridge.name);
    return false;
  }
  return true;
}

bool parse_bridge_spec(std::string_view spec, BridgeOptions* bridge, std::string* error) {
  if (spec.size() > kBridgeSpecBytesMax) {
    *error = absl::StrFormat("longer than %u bytes", kBridgeSpecBytesMax);
    return false;
  }
  size_t comma = spec.find(',');
  bridge->name = std::string(spec.substr(0, comma));
  if (bridge->name.empty() || bridge->name.find_first_of(" \t=") != std::string::npos) {
    *error = "the spec starts with the bridge's name (no blanks, no '=')";
    return false;
  }
  std::string_view rest = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
  while (!rest.empty()) {
    size_t end = rest.find(',');
    std::string_view item = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    size_t equals = item.find('=');
    if (equals == std::string_view::npos) {
      *error = absl::StrFormat("'%s' is not key=value", item);
      return false;
    }
    std::string key(item.substr(0, equals));
    std::vector<std::string> words;
    std::string_view value = item.substr(equals + 1);
    while (!value.empty()) {
      size_t start = value.find_first_not_of(" \t");
      if (start == std::string_view::npos) break;
      value.remove_prefix(start);
      size_t stop = value.find_first_of(" \t");
      words.emplace_back(value.substr(0, stop));
      value = stop == std::string_view::npos ? std::string_view() : value.substr(stop);
    }
    std::string message;
    BridgeOptionStatus status = set_bridge_option(key, words, bridge, &message);
    if (status != BridgeOptionStatus::kSet) {
      *error = message;
      return false;
    }
  }
  return check_bridge(*bridge, error);
}

}  // namespace coremq::config
