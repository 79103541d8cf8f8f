// Listening sockets: one per shard with SO_REUSEPORT, so the kernel spreads new
// connections across shards without a shared accept queue; yet a second process asking
// for the same address and port fails with EADDRINUSE instead of joining the group.
// Called by BrokerImpl::start on the controlling thread, before any shard runs.
#pragma once

#include <cstdint>
#include <string>

namespace coremq::io {

// Opens a non-blocking TCP listener on address:port with SO_REUSEADDR. Returns the fd,
// or -1 with *error set. *bound_port receives the port actually bound (port 0 picks one;
// later shards then bind that same port).
//
// The first listener of a process (join_group false) binds and listens WITHOUT
// SO_REUSEPORT and sets it only once listening; the others (join_group true) set it
// before binding and so join its group. Why this is exclusive, from the kernel's bind
// conflict rule (inet_csk_bind_conflict, checked at bind() and again at listen()): two
// sockets on one address and port conflict unless both have SO_REUSEADDR and the one
// already there is not listening, or both have SO_REUSEPORT (and the same owner uid).
// - A running coremq has listening sockets: another process's first listener has no
//   SO_REUSEPORT, so its bind() fails with EADDRINUSE. So does any other program's.
// - Two coremq starting at once: both first listeners may bind (SO_REUSEADDR, neither
//   listening yet), but whichever calls listen() second meets the other one listening
//   and fails, and the shards' SO_REUSEPORT sockets never bind before their process's
//   first listener listens. No interleaving lets two processes share the port.
// - A restart: connections of the previous run left in TIME_WAIT do not conflict with
//   a socket that has SO_REUSEADDR, so a restart right after a stop succeeds.
//
// An IPv6 socket is IPV6_V6ONLY, so 127.0.0.1 and ::1 (or 0.0.0.0 and ::) on one port are two
// sockets that do not clash, whatever net.ipv6.bindv6only says. *error_number (when given)
// receives the errno of a failure (EADDRNOTAVAIL or EAFNOSUPPORT: no IPv6 on this machine).
[[nodiscard]] int open_listener(const std::string& address, uint16_t port, int backlog, bool join_group,
                                uint16_t* bound_port, std::string* error, int* error_number = nullptr);

}  // namespace coremq::io
