// Host names of listeners; see resolve.h.
#include "io/resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

#include "base/assert.h"

namespace coremq::io {

bool is_host_name(std::string_view text) {
  if (text.empty() || text.size() > kHostNameBytesMax) return false;
  if (text.back() == '.') text.remove_suffix(1);
  if (text.empty()) return false;
  std::string_view last_label;
  while (!text.empty()) {
    size_t dot = text.find('.');
    std::string_view label = text.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!allowed) return false;
    }
    last_label = label;
    if (dot == std::string_view::npos) break;
    text.remove_prefix(dot + 1);
    if (text.empty()) return false;  // "a..": an empty label after a dot
  }
  return !std::all_of(last_label.begin(), last_label.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string resolve_error_message(const std::string& host, int status) {
  return "cannot resolve host name '" + host + "': " + gai_strerror(status);
}

bool resolve_host_addresses(const std::string& host, std::vector<std::string>* addresses,
                            std::string* error) {
  COREMQ_ASSERT(addresses->empty());
  // AI_PASSIVE as Mosquitto asks; no AI_ADDRCONFIG, which would drop ::1 (and so "localhost"'s
  // IPv6 half) on a machine whose only IPv6 address is loopback.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* results = nullptr;
  int status = getaddrinfo(host.c_str(), nullptr, &hints, &results);
  if (status != 0) {
    *error = resolve_error_message(host, status);
    return false;
  }
  for (addrinfo* result = results; result != nullptr; result = result->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* address = nullptr;
    if (result->ai_family == AF_INET) {
      address = &reinterpret_cast<const sockaddr_in*>(result->ai_addr)->sin_addr;
    } else if (result->ai_family == AF_INET6) {
      address = &reinterpret_cast<const sockaddr_in6*>(result->ai_addr)->sin6_addr;
    } else {
      continue;
    }
    if (inet_ntop(result->ai_family, address, text, sizeof(text)) == nullptr) continue;
    // getaddrinfo lists an address once per socket type and protocol it fits; bind it once.
    if (std::find(addresses->begin(), addresses->end(), text) == addresses->end()) addresses->push_back(text);
  }
  freeaddrinfo(results);
  if (addresses->empty()) {
    *error = "cannot resolve host name '" + host + "': it has no IPv4 or IPv6 address";
    return false;
  }
  return true;
}

}  // namespace coremq::io
