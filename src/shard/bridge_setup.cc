// Resolving Options::bridges into BridgeSetups at start, on the controlling thread (getaddrinfo
// blocks, so it never runs on a shard): defaults filled in as Mosquitto fills them, host names
// resolved once, each bridge given to the shard that owns its local client id.
#include <netdb.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <cstring>

#include "absl/strings/str_format.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "shard/bridge.h"

namespace coremq::shard {

std::vector<std::vector<BridgeSetup>> resolve_bridges(const std::vector<BridgeOptions>& bridges,
                                                      uint32_t shard_count) {
  std::vector<std::vector<BridgeSetup>> by_shard(shard_count);
  char hostname[256] = {};
  if (::gethostname(hostname, sizeof(hostname) - 1) != 0) std::strcpy(hostname, "coremq");
  for (const BridgeOptions& options : bridges) {
    bool tls = !options.cafile.empty() || !options.certfile.empty() || !options.keyfile.empty() ||
               options.insecure || !options.tls_version.empty();
    BridgeSetup setup;
    setup.options = options;
    setup.remote_clientid = options.remote_clientid.empty() ? absl::StrFormat("%s.%s", hostname, options.name)
                                                            : options.remote_clientid;
    setup.local_clientid = options.local_clientid.empty() ? absl::StrFormat("local.%s", setup.remote_clientid)
                                                          : options.local_clientid;
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
        LOG_ERROR("bridge %s: cannot resolve %s: %s (address left out)", options.name, text,
                  gai_strerror(status));
        continue;
      }
      BridgeSetup::Resolved resolved;
      std::memcpy(&resolved.address, found->ai_addr, found->ai_addrlen);
      resolved.length = found->ai_addrlen;
      resolved.text = text;
      ::freeaddrinfo(found);
      if (tls) {
        transport::TlsClientSettings settings;
        settings.ca_file = options.cafile;
        settings.cert_file = options.certfile;
        settings.key_file = options.keyfile;
        settings.insecure = options.insecure;
        // bridge_tls_version: the oldest version accepted (Mosquitto's default is TLS 1.2 too).
        settings.version_min = options.tls_version == "tlsv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
        settings.server_name = address.host;
        settings.ca_file_name = "bridge_cafile";
        settings.cert_file_name = "bridge_certfile";
        settings.key_file_name = "bridge_keyfile";
        settings.version_name = "bridge_tls_version";
        settings.verify_hint = "bridge_cafile, the address's host name or bridge_insecure";
        std::string error;
        std::unique_ptr<transport::TlsClientContext> context =
            transport::TlsClientContext::create(settings, &error);
        if (context == nullptr) {
          LOG_ERROR("bridge %s: %s: address %s left out", options.name, error, text);
          continue;
        }
        resolved.tls = std::move(context);
      }
      setup.addresses.push_back(resolved);
    }
    uint32_t shard = broker::owner_shard_of(setup.local_clientid, shard_count);
    by_shard[shard].push_back(std::move(setup));
  }
  return by_shard;
}

}  // namespace coremq::shard
