// Listening sockets: one per shard with SO_REUSEPORT, so the kernel spreads new
// connections across shards without a shared accept queue.
#pragma once

#include <cstdint>
#include <string>

namespace coremq::io {

// Opens a non-blocking TCP listener on address:port with SO_REUSEADDR and
// SO_REUSEPORT. Returns the fd, or -1 with *error set. *bound_port receives the port
// actually bound (port 0 picks one; later shards then bind that same port).
[[nodiscard]] int open_listener(const std::string& address, uint16_t port, int backlog, uint16_t* bound_port,
                                std::string* error);

}  // namespace coremq::io
