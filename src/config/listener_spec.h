// Listener settings in text: the `--listener=SCHEME://ADDRESS:PORT[,key=value...]` spec of the
// binary's flag, and the per-key setter that the config file's listener sections use too, so
// both fill the same ListenerOptions with the same names, values and checks. Pure (no I/O);
// runs once at start on the main thread, and under tests/fuzz/fuzz_listener_spec.
//
// Spec grammar (docs/CONFIG.md and README.md show it to users):
//   SCHEME   mqtt | mqtts | ws | wss             (TLS: mqtts, wss; WebSocket: ws, wss)
//   ADDRESS  empty or `localhost`               loopback only: 127.0.0.1 and ::1
//            `*`                                 every interface, IPv4 and IPv6
//            a numeric IPv4 address, or a numeric IPv6 address in brackets ([::1], [::])
//            a host name (RFC 1123), resolved once when the broker starts: every address it has
//   PORT     0..65535 (0: the kernel picks one; Broker::listener_port tells which)
//   keys     allow_anonymous=true|false, password_file=, acl_file=, certfile=, keyfile=,
//            cafile=, capath=, crlfile=, ciphers=, ciphersuites=, tls_version=tlsv1.2|tlsv1.3,
//            require_certificate=, use_identity_as_username=, use_subject_as_username=
// A value runs to the next ',' (so a path cannot hold one); each key at most once.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "coremq/options.h"

namespace coremq::config {

// A longer spec is refused before it is looked at (paths are at most 4096 bytes each).
inline constexpr size_t kListenerSpecBytesMax = 16384;

// An address as a listener spec, --bind or bind_address write it, into ListenerOptions::address
// form: "" for loopback (also from "localhost"), "*", a numeric address without brackets, or a
// host name as written (io::is_host_name; resolved by Broker::start).
// `bracketed_ipv6`: IPv6 must be written in brackets (the spec, where a ':' ends the address);
// --bind and bind_address take it bare.
[[nodiscard]] bool parse_listener_address(std::string_view text, bool bracketed_ipv6, std::string* address,
                                          std::string* error);

// One key=value of a spec, or one option line of a config file's listener section (the file's
// `ciphers_tls1.3` is the key `ciphersuites`). On failure *error says why, naming the key.
[[nodiscard]] bool set_listener_option(std::string_view key, std::string_view value,
                                       ListenerOptions* listener, std::string* error);

// Whether the settings make sense together: TLS options need a TLS listener, a TLS listener
// needs certfile and keyfile, require_certificate needs cafile or capath.
[[nodiscard]] bool check_listener(const ListenerOptions& listener, std::string* error);

// A whole spec into *listener (which starts from a default ListenerOptions); checked with
// check_listener. *error does not repeat the spec: the caller names it.
[[nodiscard]] bool parse_listener_spec(std::string_view spec, ListenerOptions* listener, std::string* error);

}  // namespace coremq::config
