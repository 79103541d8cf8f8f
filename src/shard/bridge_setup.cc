// Resolving Options::bridges into BridgeSetups at start, on the controlling thread (getaddrinfo
// blocks, so it never runs on a shard): defaults filled in as Mosquitto fills them, host names
// resolved once, each bridge given to the shard that owns its local client id.
#include <netdb.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_format.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "shard/bridge.h"

namespace coremq::shard {

std::vector<std::vector<BridgeSetup>> resolve_bridges(const std::vector<BridgeOptions>& bridges, uint32_t shard_count) {
  std::vector<std::vector<BridgeSetup>> by_shard(shard_count);
  char hostname[256] = {};
  if (::gethostname(hostname, sizeof(hostname) - 1) != 0) std::strcpy(hostname, "coremq");
  for (const BridgeOptions& options : bridges) {
    if (!options.cafile.empty() || !options.certfile.empty() || !options.keyfile.empty() || options.insecure ||
        !options.tls_version.empty()) {
      LOG_ERROR("bridge %s: bridge TLS is not supported yet: not started", options.name);
      continue;
    }
    BridgeSetup setup;
    setup.options = options;
    setup.remote_clientid =
        options.remote_clientid.empty() ? absl::StrFormat("%s.%s", hostname, options.name) : options.remote_clientid;
    setup.local_clientid =
        options.local_clientid.empty() ? absl::StrFormat("local.%s", setup.remote_clientid) : options.local_clientid;
    setup.notification_topic = options.notification_topic.empty()
                                   ? absl::StrFormat("$SYS/broker/connection/%s/state", setup.remote_clientid)
                                   : options.notification_topic;
    for (const BridgeOptions::Address& address : options.addresses) {
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* found = nullptr;
      std::string port = std::to_string(address.port);
      int status = ::getaddrinfo(address.host.c_str(), port.c_str(), &hints, &found);
      std::string text = absl::StrFormat("%s:%u", address.host, address.port);
      if (status != 0 || found == nullptr) {
        LOG_ERROR("bridge %s: cannot resolve %s: %s (address left out)", options.name, text, gai_strerror(status));
        continue;
      }
      BridgeSetup::Resolved resolved;
      std::memcpy(&resolved.address, found->ai_addr, found->ai_addrlen);
      resolved.length = found->ai_addrlen;
      resolved.text = text;
      setup.addresses.push_back(resolved);
      ::freeaddrinfo(found);
    }
    uint32_t shard = broker::owner_shard_of(setup.local_clientid, shard_count);
    by_shard[shard].push_back(std::move(setup));
  }
  return by_shard;
}

}  // namespace coremq::shard
