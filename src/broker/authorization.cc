// Authorization: the listener's ACL file (compiled per session at CONNECT) and the embedding
// program's AuthorizationHook (include/coremq/authorization.h), both consulted wherever a client
// publishes, subscribes or is delivered to. Shard thread only.
#include "broker/shard_state.h"

namespace coremq::broker {

ClientIdentity ShardState::hook_identity(const Session* session) const {
  ClientIdentity identity;
  identity.client_id = session->client_id;
  if (session->username != nullptr) identity.username = *session->username;
  identity.listener = session->hook_listener;
  identity.in_process = session->hook_in_process;
  return identity;
}

bool ShardState::may_publish(Session* session, std::string_view topic, uint8_t qos, bool retain) {
  if (session->acl != nullptr && !session->acl->can_publish(topic)) return false;
  const auto& hook = options_.authorization_hook;
  return hook == nullptr || hook->allow_publish(hook_identity(session), topic, qos, retain);
}

bool ShardState::may_receive(Session* session, std::string_view topic) {
  if (session->acl != nullptr && !session->acl->can_receive(topic)) return false;
  const auto& hook = options_.authorization_hook;
  return hook == nullptr || hook->allow_receive(hook_identity(session), topic);
}

}  // namespace coremq::broker
