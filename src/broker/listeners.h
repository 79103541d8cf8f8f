// Listeners as the broker runs them: which listeners Options asks for, which socket addresses
// each one binds, whether it lets clients without a username in, and how it is named in logs.
// Pure functions of Options; called on the controlling thread at start (BrokerImpl) and on a
// shard's thread when its ShardState is made.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "coremq/options.h"

namespace coremq::broker {

// Connection::listener and ConnectionHandoff::listener are a uint8_t: indexes 0..254.
inline constexpr size_t kListenersMax = 255;

// options.listeners, or, when it is empty, the one plain MQTT listener that bind_address and
// port make (anonymous policy kDefault).
std::vector<ListenerOptions> effective_listeners(const Options& options);

// One socket address a listener binds. `optional`: the listener still starts without it (the
// IPv6 half of the loopback default or of `*` on a machine without IPv6); start-up logs that.
struct BindAddress {
  std::string numeric;  // as inet_pton takes it: "127.0.0.1", "::1"
  bool optional = false;
};
// ""/"localhost": 127.0.0.1 and ::1 (optional); "*": 0.0.0.0 and :: (optional); "[::1]": ::1;
// anything else as it is: a host name (io::is_host_name) is resolved by BrokerImpl::open_listeners,
// and io::open_listener rejects what is not numeric.
std::vector<BindAddress> bind_addresses(const std::string& address);

// 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104, and ""/"localhost" (the loopback default). Never a
// host name, even one that resolves to loopback: its addresses may change under the broker, so
// the anonymous default is not widened for it (allow_anonymous says so explicitly).
bool is_loopback_address(const std::string& address);

// Whether a client without a username may connect through this listener (Mosquitto 2's rule):
// kAllow yes, kDeny no; kDefault: never with a password_file, else only on a loopback address
// or on TLS with require_certificate (the certificate identifies the client).
bool anonymous_allowed(const ListenerOptions& listener);

// "mqtt", "mqtts", "ws" or "wss".
const char* listener_scheme(const ListenerOptions& listener);
// "mqtt://127.0.0.1:1883", "wss://[::1]:8884" for one bound address.
std::string listener_url(const ListenerOptions& listener, const std::string& numeric_address, uint16_t port);

}  // namespace coremq::broker
