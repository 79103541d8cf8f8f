// Addresses: the broker's (--host, a name or an IPv4/IPv6 literal, resolved once with
// getaddrinfo before any worker starts) and the range of local source addresses clients bind to
// (--source-address: one address, a range "127.0.0.1-127.0.0.255" or a CIDR "127.0.0.0/24"),
// so one run can open more than the ~64k connections one source address has ports for.
// Parsed by the main thread; read-only afterwards and shared by every worker.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace coremq::bench {

// A run of consecutive addresses: `count` addresses from `first`, counting in the last 32 bits
// (the whole address for IPv4). count 0: no --source-address, the kernel picks.
struct SourceAddresses {
  int family = 0;  // AF_INET or AF_INET6
  uint8_t first[16] = {};
  uint32_t count = 0;
  std::string text;  // as given

  // The k-th address (k < count) with port 0, into `out`; returns its length.
  socklen_t address(uint32_t k, sockaddr_storage* out) const;
};

// --host: a name or a numeric address; the first IPv4 address of a name when it has one (as
// 'localhost' always meant 127.0.0.1 here), else its first IPv6 one.
[[nodiscard]] bool resolve_host(const std::string& host, uint16_t port, sockaddr_storage* address,
                                socklen_t* length, std::string* numeric, std::string* error);

// "A", "A-B" (B >= A, the same family, differing only in the last 32 bits) or "A/prefix". For
// an IPv4 CIDR of /30 or wider the network and broadcast addresses are left out.
[[nodiscard]] bool parse_source_addresses(const std::string& text, SourceAddresses* out, std::string* error);

// "127.0.0.1", "::1" -> "[::1]" for URLs and Host headers.
std::string bracketed(const std::string& numeric);

}  // namespace coremq::bench
