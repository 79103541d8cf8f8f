// The shard tests' bridges connect to a fake remote on a loopback port: its resolved address,
// as resolve_bridges would make it at start.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "shard/bridge.h"

namespace coremq::shard {

inline BridgeSetup::Resolved loopback_bridge_address(uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  BridgeSetup::Resolved resolved;
  std::memcpy(&resolved.address, &address, sizeof(address));
  resolved.length = sizeof(address);
  resolved.text = "127.0.0.1:" + std::to_string(port);
  return resolved;
}

}  // namespace coremq::shard
