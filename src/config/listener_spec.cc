// Listener specs and listener option values; see listener_spec.h.
#include "config/listener_spec.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdint>
#include <vector>

#include "absl/strings/str_format.h"
#include "io/resolve.h"

namespace coremq::config {

namespace {

constexpr std::string_view kKeys =
    "allow_anonymous, password_file, acl_file, certfile, keyfile, cafile, capath, crlfile, ciphers, "
    "ciphersuites, tls_version, require_certificate, use_identity_as_username, use_subject_as_username";

bool parse_bool(std::string_view key, std::string_view value, bool* out, std::string* error) {
  if (value == "true" || value == "1") {
    *out = true;
    return true;
  }
  if (value == "false" || value == "0") {
    *out = false;
    return true;
  }
  *error = absl::StrFormat("%s: '%s' is not true or false", key, value);
  return false;
}

bool is_numeric(const std::string& address, int family) {
  unsigned char buffer[16];
  return inet_pton(family, address.c_str(), buffer) == 1;
}

// Whether any TLS-only option is set; its name for the error.
std::string_view tls_option_set(const TlsOptions& tls) {
  if (!tls.certfile.empty()) return "certfile";
  if (!tls.keyfile.empty()) return "keyfile";
  if (!tls.cafile.empty()) return "cafile";
  if (!tls.capath.empty()) return "capath";
  if (!tls.crlfile.empty()) return "crlfile";
  if (!tls.ciphers.empty()) return "ciphers";
  if (!tls.ciphersuites.empty()) return "ciphersuites";
  if (tls.require_certificate) return "require_certificate";
  if (tls.use_identity_as_username) return "use_identity_as_username";
  if (tls.use_subject_as_username) return "use_subject_as_username";
  return {};
}

}  // namespace

bool parse_listener_address(std::string_view text, bool bracketed_ipv6, std::string* address,
                            std::string* error) {
  if (text.empty() || text == "localhost") {
    address->clear();
    return true;
  }
  if (text == "*") {
    address->assign(1, '*');  // not = "*": GCC 12 warns falsely (-Wrestrict) on that
    return true;
  }
  std::string candidate(text);
  if (candidate.size() >= 2 && candidate.front() == '[' && candidate.back() == ']') {
    candidate = candidate.substr(1, candidate.size() - 2);
    if (is_numeric(candidate, AF_INET6)) {
      *address = candidate;
      return true;
    }
  } else if (is_numeric(candidate, AF_INET) || (!bracketed_ipv6 && is_numeric(candidate, AF_INET6))) {
    *address = candidate;
    return true;
  } else if (io::is_host_name(candidate)) {
    // Kept as written: Broker::start resolves it once (io/resolve.h), and a name that does not
    // resolve is its start-up error.
    *address = candidate;
    return true;
  }
  *error = absl::StrFormat(
      "'%s' is not an address: write a numeric IPv4 address, %s, a host name, `localhost` or nothing for "
      "loopback only (127.0.0.1 and ::1), or `*` for every interface",
      text, bracketed_ipv6 ? "an IPv6 address in brackets ([::1])" : "a numeric IPv6 address");
  return false;
}

bool set_listener_option(std::string_view key, std::string_view value, ListenerOptions* listener,
                         std::string* error) {
  TlsOptions& tls = listener->tls_options;
  if (value.empty()) {
    *error = absl::StrFormat("%s needs a value", key);
    return false;
  }
  // Paths and cipher lists end up in C strings.
  if (value.find('\0') != std::string_view::npos) {
    *error = absl::StrFormat("%s: NUL byte in the value", key);
    return false;
  }
  std::string* text = key == "password_file"  ? &listener->password_file
                      : key == "acl_file"     ? &listener->acl_file
                      : key == "certfile"     ? &tls.certfile
                      : key == "keyfile"      ? &tls.keyfile
                      : key == "cafile"       ? &tls.cafile
                      : key == "capath"       ? &tls.capath
                      : key == "crlfile"      ? &tls.crlfile
                      : key == "ciphers"      ? &tls.ciphers
                      : key == "ciphersuites" ? &tls.ciphersuites
                                              : nullptr;
  if (text != nullptr) {
    *text = std::string(value);
    return true;
  }
  bool* flag = key == "require_certificate"        ? &tls.require_certificate
               : key == "use_identity_as_username" ? &tls.use_identity_as_username
               : key == "use_subject_as_username"  ? &tls.use_subject_as_username
                                                   : nullptr;
  if (flag != nullptr) return parse_bool(key, value, flag, error);
  if (key == "allow_anonymous") {
    bool allow = false;
    if (!parse_bool(key, value, &allow, error)) return false;
    listener->allow_anonymous =
        allow ? ListenerOptions::Anonymous::kAllow : ListenerOptions::Anonymous::kDeny;
    return true;
  }
  if (key == "tls_version") {
    if (value != "tlsv1.2" && value != "tlsv1.3") {
      *error = absl::StrFormat("tls_version: '%s' is not tlsv1.2 or tlsv1.3 (older versions are not offered)",
                               value);
      return false;
    }
    tls.min_version = std::string(value);
    return true;
  }
  *error = absl::StrFormat("unknown key '%s' (keys: %s)", key, kKeys);
  return false;
}

bool check_listener(const ListenerOptions& listener, std::string* error) {
  const TlsOptions& tls = listener.tls_options;
  if (!listener.tls) {
    std::string_view option = tls_option_set(tls);
    if (!option.empty()) {
      *error = absl::StrFormat(
          "%s is a TLS option: the listener needs TLS (mqtts:// or wss://, or certfile and "
          "keyfile in a config file)",
          option);
      return false;
    }
    if (tls.min_version != TlsOptions{}.min_version) {
      *error = "tls_version is a TLS option: the listener needs TLS";
      return false;
    }
    return true;
  }
  if (tls.certfile.empty() || tls.keyfile.empty()) {
    *error = absl::StrFormat("a TLS listener needs certfile and keyfile (%s is missing)",
                             tls.certfile.empty() ? "certfile" : "keyfile");
    return false;
  }
  if (tls.require_certificate && tls.cafile.empty() && tls.capath.empty()) {
    *error = "require_certificate needs cafile or capath (the CAs client certificates must chain to)";
    return false;
  }
  return true;
}

bool parse_listener_spec(std::string_view spec, ListenerOptions* listener, std::string* error) {
  if (spec.size() > kListenerSpecBytesMax) {
    *error = absl::StrFormat("longer than %u bytes", kListenerSpecBytesMax);
    return false;
  }
  size_t scheme_end = spec.find("://");
  if (scheme_end == std::string_view::npos) {
    *error = "expected SCHEME://ADDRESS:PORT[,key=value...] with SCHEME mqtt, mqtts, ws or wss";
    return false;
  }
  std::string_view scheme = spec.substr(0, scheme_end);
  if (scheme == "mqtt" || scheme == "mqtts") {
    listener->transport = ListenerOptions::Transport::kMqtt;
  } else if (scheme == "ws" || scheme == "wss") {
    listener->transport = ListenerOptions::Transport::kWebSockets;
  } else {
    *error = absl::StrFormat("unknown scheme '%s' (mqtt, mqtts, ws or wss)", scheme);
    return false;
  }
  listener->tls = scheme == "mqtts" || scheme == "wss";
  std::string_view rest = spec.substr(scheme_end + 3);
  size_t options_start = rest.find(',');
  std::string_view host_port = rest.substr(0, options_start);
  // The port follows the last ':' (an IPv6 address is in brackets, so its colons come before).
  size_t colon = host_port.rfind(':');
  if (colon == std::string_view::npos ||
      (host_port.find(']') != std::string_view::npos && colon < host_port.find(']'))) {
    *error = absl::StrFormat("'%s' has no :PORT", host_port);
    return false;
  }
  std::string_view port_text = host_port.substr(colon + 1);
  uint32_t port = 0;
  auto [end, status] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || status != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    *error = absl::StrFormat("port '%s' is not a number in [0, 65535]", port_text);
    return false;
  }
  listener->port = static_cast<uint16_t>(port);
  if (!parse_listener_address(host_port.substr(0, colon), /*bracketed_ipv6=*/true, &listener->address,
                              error)) {
    return false;
  }
  std::vector<std::string_view> seen;
  while (options_start != std::string_view::npos) {
    rest.remove_prefix(options_start + 1);
    options_start = rest.find(',');
    std::string_view pair = rest.substr(0, options_start);
    size_t equals = pair.find('=');
    if (equals == std::string_view::npos) {
      *error = absl::StrFormat("'%s' is not key=value", pair);
      return false;
    }
    std::string_view key = pair.substr(0, equals);
    for (std::string_view earlier : seen) {
      if (earlier == key) {
        *error = absl::StrFormat("key '%s' given twice", key);
        return false;
      }
    }
    seen.push_back(key);
    if (!set_listener_option(key, pair.substr(equals + 1), listener, error)) return false;
  }
  return check_listener(*listener, error);
}

}  // namespace coremq::config
