// Host names in listener addresses (--bind, --listener, bind_address and `listener PORT HOST`):
// the syntax check the config readers use, and the one getaddrinfo call per name that turns it
// into the numeric addresses to bind. Like Mosquitto, a listener binds every address a name
// yields (IPv4 and IPv6). Resolution runs once, on the controlling thread in Broker::start,
// before any shard runs: it may block on the resolver (files, DNS), which no shard may do.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace coremq::io {

// A longer name is not a host name (RFC 1035: 253 characters written out).
inline constexpr size_t kHostNameBytesMax = 253;

// Whether text is written as a host name (RFC 1123): dot-separated labels of letters, digits and
// '-', each 1..63 long and not starting or ending with '-', an optional final '.', and a last
// label that is not all digits (so "1.2.3", which getaddrinfo would read as 1.2.0.3, is not one).
// Pure; numeric addresses are never host names.
bool is_host_name(std::string_view text);

// Every address getaddrinfo(host, AI_PASSIVE, SOCK_STREAM) gives for host, numeric, each once,
// in its order. False with *error ("cannot resolve host name 'x': Name or service not known")
// when it fails or gives none.
[[nodiscard]] bool resolve_host_addresses(const std::string& host, std::vector<std::string>* addresses,
                                          std::string* error);

// The message for a getaddrinfo failure (gai_strerror of `status`), naming the host.
std::string resolve_error_message(const std::string& host, int status);

}  // namespace coremq::io
