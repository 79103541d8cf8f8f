// A bridge's topic lines as mosquitto.conf(5) defines them: which local filters the bridge
// subscribes to (out), which remote filters (in), and how a topic is renamed on the way. Pure and
// immutable once built; owned by its Bridge, on the bridge's shard thread.
//
// For a line `topic PATTERN DIRECTION QOS LOCAL_PREFIX REMOTE_PREFIX`: the local filter is
// LOCAL_PREFIX + PATTERN and the remote one REMOTE_PREFIX + PATTERN; a topic crossing the bridge
// loses one prefix and gains the other. With an empty PATTERN each prefix is a whole topic.
// The first line (in file order) whose filter matches a topic decides.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coremq/options.h"

namespace coremq::shard {

class BridgeTopics {
 public:
  explicit BridgeTopics(const std::vector<BridgeTopic>& topics) : topics_(topics) {}

  struct Filter {
    std::string filter;
    uint8_t qos = 0;
  };
  // The filters to subscribe to on this broker (out and both lines) and on the remote (in, both).
  std::vector<Filter> local_filters() const;
  std::vector<Filter> remote_filters() const;

  // A local topic the bridge received -> the remote topic it is published on; nullopt when no
  // out line matches (a message that reached the bridge through an overlapping filter).
  std::optional<std::string> to_remote(std::string_view local_topic) const;
  // A remote topic -> the local one; nullopt when no in line matches.
  std::optional<std::string> to_local(std::string_view remote_topic) const;

 private:
  std::vector<BridgeTopic> topics_;
};

}  // namespace coremq::shard
