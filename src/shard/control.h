// What the controlling thread (Broker::reload, later the admin API) asks of a running shard.
// Items travel on one bounded SPSC ring per shard (the controller is the single producer,
// serialised by BrokerImpl's control mutex) and are applied on the shard's own thread at its
// next turn, so no other thread ever touches a shard's structures.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "auth/acl_file.h"
#include "transport/factory.h"

namespace coremq::shard {

class Shard;

struct ControlItem {
  enum class Kind : uint8_t {
    // New connections on `listener` get transports from `factory` (new certificates, CRL);
    // established ones keep theirs.
    kReplaceTransportFactory,
    // New sessions on `listener` compile `acl` (a reloaded ACL file).
    kReplaceAcl,
    // Runs `run` on the shard's thread at its next turn: how another thread reads shard state
    // (counters, sessions, subscriptions) or acts on it (the admin API, $SYS, metrics). `run`
    // must not block the loop.
    kRun,
  };
  Kind kind = Kind::kReplaceTransportFactory;
  uint8_t listener = 0;
  std::unique_ptr<transport::TransportFactory> factory;
  std::shared_ptr<const auth::AclFile> acl;
  std::function<void(Shard&)> run;
};

}  // namespace coremq::shard
