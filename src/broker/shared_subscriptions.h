// Shared subscriptions ($share/{group}/{filter}) as one shard sees them: its own
// members of each group, and which other shards have members (told by interest
// messages, like the routing view). A message matching a group goes to exactly one
// member broker-wide: the publishing shard picks one shard among those with members
// (round robin), and that shard picks one of its members (round robin, online first).
// Single-threaded (its shard's).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/string_map.h"
#include "broker/session.h"
#include "topic/topic_tree.h"

namespace coremq::broker {

inline constexpr std::string_view kSharePrefix = "$share/";

// Splits "$share/{group}/{filter}" into the group key "{group}/{filter}" and the
// filter. Returns false when the text is not a valid shared subscription (empty group,
// a wildcard in the group name, no filter).
[[nodiscard]] bool parse_shared_filter(std::string_view text, std::string_view* key, std::string_view* filter);
inline bool is_shared_filter(std::string_view text) { return text.starts_with(kSharePrefix); }

class SharedSubscriptions {
 public:
  struct Member {
    Session* session;
    SubscriptionOptions options;
  };
  struct Group {
    std::string key;     // "{group}/{filter}"
    std::string filter;  // the filter part
    std::vector<Member> local_members;
    std::vector<uint32_t> remote_shards;  // shards with at least one member, without this one
    uint32_t next_member = 0;
    uint32_t next_shard = 0;
  };

  // Returns true when this is the group's first member on this shard.
  bool add_local(std::string_view key, std::string_view filter, Session* session, SubscriptionOptions options);
  // Returns true when that was the group's last member on this shard.
  bool remove_local(std::string_view key, Session* session);
  void add_remote(std::string_view key, std::string_view filter, uint32_t shard);
  void remove_remote(std::string_view key, uint32_t shard);

  Group* find(std::string_view key);
  // Visits every group whose filter matches the topic.
  template <typename Visit>
  void match(std::string_view topic, Visit&& visit) {
    tree_.match(topic, [&](Group* group, uint8_t) { visit(*group); });
  }

  // The next local member to deliver to: an online one if any, else any (its session queues).
  const Member* pick_local_member(Group& group);

 private:
  Group* find_or_create(std::string_view key, std::string_view filter);
  void drop_if_unused(Group* group);

  base::StringMap<std::unique_ptr<Group>> groups_;
  topic::TopicTree<Group*, uint8_t> tree_;
};

}  // namespace coremq::broker
