// The admin API's view of one shard (see admin_view.h): copies of its sessions, connections,
// subscriptions and retained copy, and the administrative disconnect. Runs on the shard's
// own thread only, from a ShardAccess callback (never on the publish path); each call walks
// the shard's sessions once, so a page costs O(sessions) here and nothing more.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "broker/shard_state.h"

namespace coremq::broker {

namespace {

uint8_t protocol_level(mqtt::ProtocolVersion version) {
  return static_cast<uint8_t>(version);
}

}  // namespace

namespace {
void fill_client(const Session& session, uint32_t shard, ClientView* view) {
  view->client_id = session.client_id;
  view->shard = shard;
  view->connected = session.connection != nullptr;
  if (session.connection != nullptr) {
    const Connection& connection = *session.connection;
    view->address = format_peer(connection.peer, connection.in_process);
    view->protocol_level = protocol_level(connection.version);
    view->listener = connection.listener;
    view->keep_alive_seconds = connection.keep_alive_seconds;
  }
  if (session.username != nullptr) view->username = *session.username;
  view->session_expiry_seconds = session.expiry_seconds;
  view->subscription_count = session.subscriptions.size();
  view->queued = session.queue.size();
  view->inflight = session.inflight.size();
}
}  // namespace

void ShardState::admin_list_clients(const ClientQuery& query, std::vector<ClientView>* out) const {
  std::vector<const Session*> matching;
  for (const auto& [id, session] : sessions_) {
    if (id <= query.after && !query.after.empty()) continue;
    if (!id.starts_with(query.id_prefix)) continue;
    if (query.username && (session->username == nullptr || *session->username != *query.username)) continue;
    matching.push_back(session.get());
  }
  auto by_id = [](const Session* a, const Session* b) { return a->client_id < b->client_id; };
  size_t keep = std::min<size_t>(matching.size(), query.limit);
  std::partial_sort(matching.begin(), matching.begin() + static_cast<ptrdiff_t>(keep), matching.end(), by_id);
  for (size_t i = 0; i < keep; ++i) {
    ClientView view;
    fill_client(*matching[i], shard_id_, &view);
    out->push_back(std::move(view));
  }
}

bool ShardState::admin_client(std::string_view client_id, ClientView* out) const {
  auto found = sessions_.find(client_id);
  if (found == sessions_.end()) return false;
  const Session& session = *found->second;
  fill_client(session, shard_id_, out);
  for (const auto& [filter, options] : session.subscriptions) {
    out->subscriptions.push_back(SubscriptionView{session.client_id, std::string(filter), options.qos,
                                                  options.no_local, options.retain_as_published,
                                                  options.retain_handling, options.identifier});
  }
  std::sort(out->subscriptions.begin(), out->subscriptions.end(),
            [](const SubscriptionView& a, const SubscriptionView& b) { return a.filter < b.filter; });
  return true;
}

void ShardState::admin_list_subscriptions(std::string_view after, uint32_t limit,
                                          std::vector<SubscriptionView>* out) const {
  struct Entry {
    std::string key;  // client id, '\0', filter: the paging order
    const Session* session;
    const SubscriptionOptions* options;
    size_t filter_at;
  };
  std::vector<Entry> entries;
  for (const auto& [id, session] : sessions_) {
    for (const auto& [filter, options] : session->subscriptions) {
      std::string key;
      key.reserve(id.size() + 1 + filter.size());
      key.append(id);
      key.push_back('\0');
      key.append(filter);
      if (!after.empty() && key <= after) continue;
      entries.push_back(Entry{std::move(key), session.get(), &options, id.size() + 1});
    }
  }
  size_t keep = std::min<size_t>(entries.size(), limit);
  std::partial_sort(entries.begin(), entries.begin() + static_cast<ptrdiff_t>(keep), entries.end(),
                    [](const Entry& a, const Entry& b) { return a.key < b.key; });
  for (size_t i = 0; i < keep; ++i) {
    const Entry& entry = entries[i];
    const SubscriptionOptions& options = *entry.options;
    out->push_back(SubscriptionView{entry.session->client_id, entry.key.substr(entry.filter_at), options.qos,
                                    options.no_local, options.retain_as_published, options.retain_handling,
                                    options.identifier});
  }
}

void ShardState::admin_list_retained(std::string_view after, uint32_t limit,
                                     std::vector<RetainedView>* out) const {
  std::vector<const Message*> matching;
  auto visit = [&](const MessageRef& message) {
    if (after.empty() || message->topic() > after) matching.push_back(message.get());
  };
  // "#" matches every topic but those starting with '$'; "$#"-style topics are looked at
  // through their own filter, as MQTT has none that matches both.
  retained_.for_each_match("#", visit);
  retained_.for_each_match("$SYS/#", visit);
  size_t keep = std::min<size_t>(matching.size(), limit);
  std::partial_sort(matching.begin(), matching.begin() + static_cast<ptrdiff_t>(keep), matching.end(),
                    [](const Message* a, const Message* b) { return a->topic() < b->topic(); });
  for (size_t i = 0; i < keep; ++i) {
    out->push_back(RetainedView{std::string(matching[i]->topic()), std::string(matching[i]->payload()),
                                matching[i]->qos()});
  }
}

AdminDisconnect ShardState::admin_disconnect(std::string_view client_id, bool discard_session) {
  Session* session = find_session(client_id);
  AdminDisconnect result;
  if (session == nullptr) return result;
  result.found = true;
  // Kept: end_connection may end (and free) the session.
  std::string id(client_id);
  bool was_connected = session->connection != nullptr;
  if (was_connected) {
    Connection* connection = session->connection;
    if (connection->version == mqtt::ProtocolVersion::kV5) {
      send_disconnect(connection, mqtt::ReasonCode::kAdministrativeAction,
                      "disconnected by an administrator");
    }
    // The disconnect line (connection_log.cc) says reason "admin", the event kAdministrative.
    end_connection(connection, /*publish_will=*/true, /*flush_first=*/true,
                   {CloseReason::kAdmin, static_cast<int>(mqtt::ReasonCode::kAdministrativeAction),
                    discard_session ? "admin API, session discarded" : "admin API"});
  }
  result.was_connected = was_connected;
  if (discard_session) {
    session = find_session(id);
    if (session != nullptr) destroy_session(session);
  }
  // A session with expiry 0 ended with its connection.
  result.session_ended = find_session(id) == nullptr;
  return result;
}

}  // namespace coremq::broker
