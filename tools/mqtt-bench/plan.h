// Plan: every client of the run (role, index, client id, topic) and, when publishers and
// subscribers share this process, which publishers each subscriber must hear from. Built once
// by the main thread from Options; read-only and shared by all workers afterwards.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "options.h"

namespace coremq::bench {

enum class Role : uint8_t { kIdle, kPublisher, kSubscriber };

struct ClientSpec {
  Role role = Role::kIdle;
  uint32_t index = 0;       // within its role in this process (indexes the Plan's tables)
  uint32_t number = 0;      // within its role over all --process-count processes: names and phases
  uint32_t ordinal = 0;     // position in Plan::clients: picks the --source-address
  std::string client_id;
  std::string topic;        // publisher: topic name; subscriber: filter; idle: empty
  std::string will_topic;   // --will-topic expanded for this client; empty: no will
};

struct Plan {
  std::vector<ClientSpec> clients;  // subscribers first, so they are up before anything is published
  uint32_t publishers = 0;
  uint32_t subscribers = 0;
  bool in_process = false;          // `run`: every publisher's sent count is known exactly
  // Subscribers share subscriptions ($share/GROUP/filter): a group, not each member, receives a
  // message once, so loss and duplicates are counted across the group (SharedState::shared_seen).
  bool shared = false;
  // in_process only: per publisher, subscribers whose filter matches its topic (its fan-out),
  // and per subscriber, the publishers it must receive from (ascending).
  std::vector<uint32_t> fanout;     // deliveries per message: per subscriber, or per share group
  std::vector<std::vector<uint32_t>> sources;
};

// Expands %i (index), %c (client id) and %% in a topic template.
std::string expand_topic(const std::string& pattern, uint32_t index, const std::string& client_id);

[[nodiscard]] bool build_plan(const Options& options, Plan* plan, std::string* error);

}  // namespace coremq::bench
