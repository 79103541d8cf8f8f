// Listener resolution and the anonymous policy; see listeners.h.
#include "broker/listeners.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/str_format.h"

namespace coremq::broker {

std::vector<ListenerOptions> effective_listeners(const Options& options) {
  if (!options.listeners.empty()) return options.listeners;
  ListenerOptions only;
  only.address = options.bind_address;
  only.port = options.port;
  only.acl_file = options.acl_file;
  return {only};
}

std::vector<BindAddress> bind_addresses(const std::string& address) {
  if (address.empty() || address == "localhost") return {{"127.0.0.1", false}, {"::1", true}};
  if (address == "*") return {{"0.0.0.0", false}, {"::", true}};
  if (address.size() >= 2 && address.front() == '[' && address.back() == ']') {
    return {{address.substr(1, address.size() - 2), false}};
  }
  return {{address, false}};
}

bool is_loopback_address(const std::string& address) {
  if (address.empty() || address == "localhost") return true;
  for (const BindAddress& bind : bind_addresses(address)) {
    in_addr v4{};
    in6_addr v6{};
    if (inet_pton(AF_INET, bind.numeric.c_str(), &v4) == 1) {
      if ((ntohl(v4.s_addr) >> 24) != 127) return false;
    } else if (inet_pton(AF_INET6, bind.numeric.c_str(), &v6) == 1) {
      bool mapped_loopback = IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
      if (!IN6_IS_ADDR_LOOPBACK(&v6) && !mapped_loopback) return false;
    } else {
      return false;  // not an address at all: never treated as safe
    }
  }
  return true;
}

bool anonymous_allowed(const ListenerOptions& listener) {
  switch (listener.allow_anonymous) {
    case ListenerOptions::Anonymous::kAllow:
      return true;
    case ListenerOptions::Anonymous::kDeny:
      return false;
    case ListenerOptions::Anonymous::kDefault:
      break;
  }
  // A password file means clients are expected to log in: Mosquitto 2 then refuses anonymous
  // ones unless told otherwise, wherever the listener is.
  if (!listener.password_file.empty()) return false;
  if (is_loopback_address(listener.address)) return true;
  return listener.tls && listener.tls_options.require_certificate;
}

const char* listener_scheme(const ListenerOptions& listener) {
  if (listener.transport == ListenerOptions::Transport::kWebSockets) return listener.tls ? "wss" : "ws";
  return listener.tls ? "mqtts" : "mqtt";
}

std::string listener_url(const ListenerOptions& listener, const std::string& numeric_address, uint16_t port) {
  bool v6 = numeric_address.find(':') != std::string::npos;
  return absl::StrFormat("%s://%s%s%s:%u", listener_scheme(listener), v6 ? "[" : "", numeric_address,
                         v6 ? "]" : "", port);
}

}  // namespace coremq::broker
