// Shared subscription groups of one shard; see shared_subscriptions.h.
#include "broker/shared_subscriptions.h"

#include <algorithm>

#include "base/assert.h"
#include "topic/topic.h"

namespace coremq::broker {

bool parse_shared_filter(std::string_view text, std::string_view* key, std::string_view* filter) {
  if (!is_shared_filter(text)) return false;
  std::string_view rest = text.substr(kSharePrefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return false;  // MQTT-4.8.2-1: a non-empty group
  std::string_view group = rest.substr(0, slash);
  if (group.find_first_of("+#") != std::string_view::npos) return false;  // MQTT-4.8.2-2
  std::string_view rest_filter = rest.substr(slash + 1);
  if (rest_filter.empty() || !topic::is_valid_topic_filter(rest_filter)) return false;
  *key = rest;
  *filter = rest_filter;
  return true;
}

SharedSubscriptions::Group* SharedSubscriptions::find(std::string_view key) {
  auto found = groups_.find(key);
  return found == groups_.end() ? nullptr : found->second.get();
}

SharedSubscriptions::Group* SharedSubscriptions::find_or_create(std::string_view key, std::string_view filter) {
  if (Group* group = find(key)) return group;
  auto group = std::make_unique<Group>();
  group->key = std::string(key);
  group->filter = std::string(filter);
  Group* raw = group.get();
  groups_.emplace(raw->key, std::move(group));
  tree_.insert(raw->filter, raw, 0);
  return raw;
}

void SharedSubscriptions::drop_if_unused(Group* group) {
  if (!group->local_members.empty() || !group->remote_shards.empty()) return;
  tree_.remove(group->filter, group);
  groups_.erase(group->key);
}

bool SharedSubscriptions::add_local(std::string_view key, std::string_view filter, Session* session,
                                    SubscriptionOptions options) {
  Group* group = find_or_create(key, filter);
  for (Member& member : group->local_members) {
    if (member.session == session) {
      member.options = options;
      return false;
    }
  }
  group->local_members.push_back(Member{session, options});
  return group->local_members.size() == 1;
}

bool SharedSubscriptions::remove_local(std::string_view key, Session* session) {
  Group* group = find(key);
  if (group == nullptr) return false;
  auto& members = group->local_members;
  auto found = std::find_if(members.begin(), members.end(), [&](const Member& m) { return m.session == session; });
  if (found == members.end()) return false;
  members.erase(found);
  bool last = members.empty();
  drop_if_unused(group);
  return last;
}

void SharedSubscriptions::add_remote(std::string_view key, std::string_view filter, uint32_t shard) {
  Group* group = find_or_create(key, filter);
  if (std::find(group->remote_shards.begin(), group->remote_shards.end(), shard) == group->remote_shards.end()) {
    group->remote_shards.push_back(shard);
  }
}

void SharedSubscriptions::remove_remote(std::string_view key, uint32_t shard) {
  Group* group = find(key);
  if (group == nullptr) return;
  auto& shards = group->remote_shards;
  shards.erase(std::remove(shards.begin(), shards.end(), shard), shards.end());
  drop_if_unused(group);
}

const SharedSubscriptions::Member* SharedSubscriptions::pick_local_member(Group& group) {
  auto& members = group.local_members;
  if (members.empty()) return nullptr;
  size_t count = members.size();
  for (size_t i = 0; i < count; ++i) {
    const Member& member = members[(group.next_member + i) % count];
    if (member.session->connection != nullptr) {
      group.next_member = static_cast<uint32_t>((group.next_member + i + 1) % count);
      return &member;
    }
  }
  const Member& member = members[group.next_member % count];
  group.next_member = static_cast<uint32_t>((group.next_member + 1) % count);
  return &member;
}

}  // namespace coremq::broker
