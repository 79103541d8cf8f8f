// Builds the client list and the publisher/subscriber match table; see plan.h. Main thread only.
#include "plan.h"

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "base/assert.h"
#include "bounds.h"
#include "topic/topic.h"

namespace coremq::bench {

std::string expand_topic(const std::string& pattern, uint32_t index, const std::string& client_id) {
  std::string topic;
  topic.reserve(pattern.size() + 16);
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '%' || i + 1 == pattern.size()) {
      topic.push_back(pattern[i]);
      continue;
    }
    char code = pattern[++i];
    if (code == 'i') {
      topic += std::to_string(index);
    } else if (code == 'c') {
      topic += client_id;
    } else if (code == '%') {
      topic.push_back('%');
    } else {
      topic.push_back('%');
      topic.push_back(code);
    }
  }
  return topic;
}

namespace {

bool add_clients(const Options& options, Role role, uint32_t count, const char* role_name,
                 const std::string& pattern, Plan* plan, std::string* error) {
  for (uint32_t index = 0; index < count; ++index) {
    ClientSpec spec;
    spec.role = role;
    spec.index = index;
    spec.number = options.process_index + index * options.process_count;
    spec.client_id = absl::StrFormat("%s%s-%u", options.client_id_prefix, role_name, spec.number);
    if (spec.client_id.size() > 65535) {
      *error = "--client-id-prefix is too long";
      return false;
    }
    if (role != Role::kIdle) {
      spec.topic = expand_topic(pattern, spec.number, spec.client_id);
      bool valid = role == Role::kPublisher ? topic::is_valid_topic_name(spec.topic)
                                            : topic::is_valid_topic_filter(spec.topic);
      if (!valid) {
        *error = absl::StrFormat("'%s' (from '%s') is not a valid topic %s", spec.topic, pattern,
                                 role == Role::kPublisher ? "name" : "filter");
        return false;
      }
    }
    if (!options.will_topic.empty()) {
      spec.will_topic = expand_topic(options.will_topic, spec.number, spec.client_id);
      if (!topic::is_valid_topic_name(spec.will_topic)) {
        *error = absl::StrFormat("--will-topic: '%s' (from '%s') is not a valid topic name", spec.will_topic,
                                 options.will_topic);
        return false;
      }
    }
    spec.ordinal = static_cast<uint32_t>(plan->clients.size());
    plan->clients.push_back(std::move(spec));
  }
  return true;
}

bool has_wildcard(std::string_view filter) { return filter.find_first_of("+#") != std::string_view::npos; }

// "$share/GROUP/filter" -> GROUP and filter; false for an ordinary filter.
bool split_shared(std::string_view filter, std::string_view* group, std::string_view* rest) {
  constexpr std::string_view kPrefix = "$share/";
  if (filter.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view after = filter.substr(kPrefix.size());
  size_t slash = after.find('/');
  if (slash == std::string_view::npos) return false;
  *group = after.substr(0, slash);
  *rest = after.substr(slash + 1);
  return true;
}

// Fills fanout and sources. Exact filters are looked up by topic; only wildcard filters are
// tried against every publisher, and the total number of matches is bounded.
bool match_publishers(Plan* plan, std::string* error) {
  plan->fanout.assign(plan->publishers, 0);
  plan->sources.assign(plan->subscribers, {});
  absl::flat_hash_map<std::string, std::vector<uint32_t>> publishers_by_topic;
  std::vector<const ClientSpec*> publishers;
  for (const ClientSpec& spec : plan->clients) {
    if (spec.role != Role::kPublisher) continue;
    publishers_by_topic[spec.topic].push_back(spec.index);
    publishers.push_back(&spec);
  }
  uint64_t pairs = 0;
  // A share group takes each message once, however many members it has.
  absl::flat_hash_set<std::pair<std::string, uint32_t>> group_publishers;
  absl::flat_hash_set<std::string> groups;
  for (const ClientSpec& spec : plan->clients) {
    if (spec.role != Role::kSubscriber) continue;
    std::vector<uint32_t>& sources = plan->sources[spec.index];
    std::string_view group;
    std::string_view filter = spec.topic;
    bool shared = split_shared(spec.topic, &group, &filter);
    plan->shared = plan->shared || shared;
    if (!has_wildcard(filter)) {
      auto found = publishers_by_topic.find(std::string(filter));
      if (found != publishers_by_topic.end()) sources = found->second;
    } else {
      for (const ClientSpec* publisher : publishers) {
        if (topic::topic_matches(filter, publisher->topic)) sources.push_back(publisher->index);
      }
    }
    if (shared) groups.emplace(group);
    if (groups.size() > 1) {
      *error = "the subscribers' filters name more than one share group: mqtt-bench checks exactly-once "
               "delivery for one group per run";
      return false;
    }
    for (uint32_t publisher : sources) {
      if (!shared || group_publishers.emplace(std::string(group), publisher).second) plan->fanout[publisher]++;
    }
    pairs += sources.size();
    if (pairs > kPairsMax) {
      *error = absl::StrFormat("more than %u publisher/subscriber matches to verify", kPairsMax);
      return false;
    }
  }
  return true;
}

}  // namespace

bool build_plan(const Options& options, Plan* plan, std::string* error) {
  plan->publishers = options.publishers;
  plan->subscribers = options.subscribers;
  plan->in_process = options.command == Command::kRun;
  plan->clients.reserve(options.idle_connections + options.publishers + options.subscribers);
  if (!add_clients(options, Role::kIdle, options.idle_connections, "conn", "", plan, error) ||
      !add_clients(options, Role::kSubscriber, options.subscribers, "sub", options.subscribe_filter, plan, error) ||
      !add_clients(options, Role::kPublisher, options.publishers, "pub", options.publish_topic, plan, error)) {
    return false;
  }
  std::string_view group;
  std::string_view filter;
  plan->shared = options.subscribers > 0 && split_shared(options.subscribe_filter, &group, &filter);
  if (plan->in_process && !match_publishers(plan, error)) return false;
  COREMQ_ASSERT(plan->clients.size() == uint64_t{options.idle_connections} + options.publishers + options.subscribers);
  return true;
}

}  // namespace coremq::bench
