// What each listener asks of the clients that connect through it: for now its ACL file; the
// password file and the anonymous policy join it here. Built once at broker start (and, on a
// reload, built again and handed to every shard) from Options::listeners, indexed like them
// by Connection::listener. The files are immutable and shared by every shard; a shard only
// copies the shared_ptr into what it builds at CONNECT (a session's CompiledAcl), never on
// the publish path.
#pragma once

#include <memory>
#include <vector>

#include "auth/acl_file.h"

namespace coremq::broker {

struct ListenerSecurity {
  // Null: every client of this listener may publish and subscribe to everything.
  std::shared_ptr<const auth::AclFile> acl;
};

using ListenerSecurityList = std::vector<ListenerSecurity>;

}  // namespace coremq::broker
