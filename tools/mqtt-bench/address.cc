// --host resolution and --source-address ranges; see address.h. Main thread (parsing) and any
// worker (SourceAddresses::address, a pure function).
#include "address.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_format.h"
#include "base/assert.h"

namespace coremq::bench {

namespace {

bool parse_one(const std::string& text, int* family, uint8_t bytes[16]) {
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    *family = AF_INET;
    std::memset(bytes, 0, 16);
    std::memcpy(bytes, &v4, 4);
    return true;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    *family = AF_INET6;
    std::memcpy(bytes, &v6, 16);
    return true;
  }
  return false;
}

int address_bytes(int family) { return family == AF_INET ? 4 : 16; }

// The last 32 bits (host order) and everything before them.
uint32_t low32(int family, const uint8_t bytes[16]) {
  const uint8_t* low = bytes + address_bytes(family) - 4;
  return uint32_t{low[0]} << 24 | uint32_t{low[1]} << 16 | uint32_t{low[2]} << 8 | low[3];
}

void set_low32(int family, uint8_t bytes[16], uint32_t value) {
  uint8_t* low = bytes + address_bytes(family) - 4;
  low[0] = static_cast<uint8_t>(value >> 24);
  low[1] = static_cast<uint8_t>(value >> 16);
  low[2] = static_cast<uint8_t>(value >> 8);
  low[3] = static_cast<uint8_t>(value);
}

}  // namespace

socklen_t SourceAddresses::address(uint32_t k, sockaddr_storage* out) const {
  COREMQ_ASSERT(k < count);
  uint8_t bytes[16];
  std::memcpy(bytes, first, 16);
  set_low32(family, bytes, low32(family, first) + k);
  std::memset(out, 0, sizeof(*out));
  if (family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(out);
    v4->sin_family = AF_INET;
    std::memcpy(&v4->sin_addr, bytes, 4);
    return sizeof(sockaddr_in);
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(out);
  v6->sin6_family = AF_INET6;
  std::memcpy(&v6->sin6_addr, bytes, 16);
  return sizeof(sockaddr_in6);
}

bool resolve_host(const std::string& host, uint16_t port, sockaddr_storage* address, socklen_t* length,
                  std::string* numeric, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* results = nullptr;
  int status = getaddrinfo(host.c_str(), nullptr, &hints, &results);
  if (status != 0 || results == nullptr) {
    *error = absl::StrFormat("--host=%s: cannot resolve: %s", host, gai_strerror(status));
    return false;
  }
  const addrinfo* chosen = results;
  for (const addrinfo* entry = results; entry != nullptr; entry = entry->ai_next) {
    if (entry->ai_family == AF_INET) {
      chosen = entry;
      break;
    }
  }
  if (chosen->ai_family != AF_INET && chosen->ai_family != AF_INET6) {
    freeaddrinfo(results);
    *error = absl::StrFormat("--host=%s: resolves to no IPv4 or IPv6 address", host);
    return false;
  }
  std::memset(address, 0, sizeof(*address));
  std::memcpy(address, chosen->ai_addr, chosen->ai_addrlen);
  *length = static_cast<socklen_t>(chosen->ai_addrlen);
  freeaddrinfo(results);
  char text[INET6_ADDRSTRLEN] = {};
  if (address->ss_family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(address);
    v4->sin_port = htons(port);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(address);
    v6->sin6_port = htons(port);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
  }
  *numeric = text;
  return true;
}

bool parse_source_addresses(const std::string& text, SourceAddresses* out, std::string* error) {
  *out = SourceAddresses{};
  out->text = text;
  auto bad = [&](const char* why) {
    *error = absl::StrFormat("--source-address=%s: %s (examples: 127.0.0.2, 127.0.0.1-127.0.0.255, "
                             "127.0.0.0/24, fd00::1-fd00::ff)", text, why);
    return false;
  };
  size_t slash = text.find('/');
  size_t dash = text.find('-');
  if (slash != std::string::npos) {
    char* end = nullptr;
    std::string prefix_text = text.substr(slash + 1);
    long prefix = std::strtol(prefix_text.c_str(), &end, 10);
    if (prefix_text.empty() || *end != '\0') return bad("the prefix length is not a number");
    if (!parse_one(text.substr(0, slash), &out->family, out->first)) return bad("not an IPv4 or IPv6 address");
    int bits = address_bytes(out->family) * 8;
    if (prefix < bits - 32 || prefix > bits) return bad("the prefix leaves more than 32 bits (or is too long)");
    int host_bits = bits - static_cast<int>(prefix);
    uint32_t mask = host_bits == 32 ? 0 : ~((uint32_t{1} << host_bits) - 1);
    uint32_t network = low32(out->family, out->first) & mask;
    uint64_t count = uint64_t{1} << host_bits;
    if (out->family == AF_INET && host_bits >= 2) {
      network += 1;  // neither the network nor the broadcast address
      count -= 2;
    }
    set_low32(out->family, out->first, network);
    out->count = static_cast<uint32_t>(std::min<uint64_t>(count, UINT32_MAX));
    return true;
  }
  if (dash != std::string::npos) {
    int last_family = 0;
    uint8_t last[16];
    if (!parse_one(text.substr(0, dash), &out->family, out->first) ||
        !parse_one(text.substr(dash + 1), &last_family, last)) {
      return bad("not two IPv4 or IPv6 addresses");
    }
    int high_bytes = address_bytes(out->family) - 4;
    if (last_family != out->family || std::memcmp(out->first, last, high_bytes) != 0) {
      return bad("both ends must be of one family and differ only in the last 32 bits");
    }
    uint32_t low = low32(out->family, out->first);
    uint32_t high = low32(out->family, last);
    if (high < low) return bad("the range ends before it starts");
    out->count = high - low == UINT32_MAX ? UINT32_MAX : high - low + 1;
    return true;
  }
  if (!parse_one(text, &out->family, out->first)) return bad("not an IPv4 or IPv6 address");
  out->count = 1;
  return true;
}

std::string bracketed(const std::string& numeric) {
  return numeric.find(':') != std::string::npos ? absl::StrFormat("[%s]", numeric) : numeric;
}

}  // namespace coremq::bench
