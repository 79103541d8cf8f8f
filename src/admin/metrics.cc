// render_metrics (see metrics.h): Prometheus text exposition 0.0.4, written by hand.
// Admin thread only.
#include "admin/metrics.h"

#include <map>

#include "absl/strings/str_format.h"

namespace coremq::admin {

namespace {

// Counters whose name alone does not say what they are, or that share a family by reason.
struct Rename {
  std::string_view counter;
  std::string_view family;
  std::string_view reason;
};
constexpr Rename kRenames[] = {
    {"qos0_dropped_slow_consumer", "messages_dropped", "slow_consumer"},
    {"messages_dropped_queue_full", "messages_dropped", "queue_full"},
    {"qos0_dropped_offline", "messages_dropped", "offline"},
    {"retained_dropped_limit", "retained_dropped", "limit"},
    {"retained_dropped_hard_limit", "retained_dropped", "hard_limit"},
    {"connections_refused_limit", "connections_refused", "max_connections"},
    {"sessions_refused_limit", "sessions_refused", "max_sessions"},
    {"cross_shard_queue_full", "cross_shard_pauses", ""},
};

// HELP text of every family (the counter's meaning; README.md's stats table says more).
const std::map<std::string, std::string, std::less<>>& help_texts() {
  static const auto* texts = new std::map<std::string, std::string, std::less<>>{
      {"connections_accepted", "TCP connections accepted."},
      {"connections_refused", "Connections refused by a bound (reason)."},
      {"connections", "Connections open now (attached or awaiting CONNECT)."},
      {"protocol_errors", "Connections closed for an MQTT protocol violation."},
      {"messages_received", "PUBLISH packets received from clients."},
      {"messages_delivered", "PUBLISH packets delivered to subscribers."},
      {"messages_forwarded_to_shards", "Messages forwarded to another shard's subscribers."},
      {"messages_dropped", "Messages dropped (reason: slow_consumer, queue_full, offline)."},
      {"retained_dropped", "Retained messages not stored (reason: limit, hard_limit)."},
      {"cross_shard_pauses", "Times a shard paused its sockets because a peer's ring was full."},
      {"sessions_refused", "Sessions refused by --max-sessions."},
      {"store_batches_waiting",
       "Batches of changes not yet durable (with the committer, or open): grows while the disk refuses "
       "writes."},
  };
  return *texts;
}

std::string help_of(const std::string& family) {
  auto found = help_texts().find(family);
  if (found != help_texts().end()) return found->second;
  std::string text = family;
  for (char& c : text) c = c == '_' ? ' ' : c;
  text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
  return text + ".";
}

class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    absl::StrAppendFormat(&out_, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
  }
  void sample(std::string_view name, std::string_view labels, uint64_t value) {
    if (labels.empty()) {
      absl::StrAppendFormat(&out_, "%s %u\n", name, value);
    } else {
      absl::StrAppendFormat(&out_, "%s{%s} %u\n", name, labels, value);
    }
  }
  void sample_double(std::string_view name, std::string_view labels, double value) {
    if (labels.empty()) {
      absl::StrAppendFormat(&out_, "%s %.6f\n", name, value);
    } else {
      absl::StrAppendFormat(&out_, "%s{%s} %.6f\n", name, labels, value);
    }
  }
  // A histogram of microseconds, exposed in seconds (Prometheus' base unit).
  void histogram(std::string_view name, std::string_view labels, const base::LogHistogram& histogram) {
    std::string prefix = labels.empty() ? "" : std::string(labels) + ",";
    uint64_t cumulative = 0;
    for (uint32_t i = 0; i + 1 < base::LogHistogram::kBuckets; ++i) {
      cumulative += histogram.counts[i];
      absl::StrAppendFormat(&out_, "%s_bucket{%sle=\"%g\"} %u\n", name, prefix,
                            static_cast<double>(base::LogHistogram::upper_bound(i)) / 1e6, cumulative);
    }
    cumulative += histogram.counts[base::LogHistogram::kBuckets - 1];
    absl::StrAppendFormat(&out_, "%s_bucket{%sle=\"+Inf\"} %u\n", name, prefix, cumulative);
    sample_double(std::string(name) + "_sum", labels, static_cast<double>(histogram.sum) / 1e6);
    sample(std::string(name) + "_count", labels, cumulative);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string shard_label(uint32_t shard) {
  return absl::StrFormat("shard=\"%u\"", shard);
}
std::string join_labels(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  if (b.empty()) return std::string(a);
  return std::string(a) + "," + std::string(b);
}

// One counter family: the total and the per-shard series, each with its reasons.
struct Family {
  CounterName name;
  std::vector<std::pair<std::string, std::vector<uint64_t>>> by_reason;  // reason -> per shard
};

}  // namespace

CounterName prometheus_name(std::string_view counter) {
  for (const Rename& rename : kRenames) {
    if (rename.counter == counter)
      return CounterName{std::string(rename.family), std::string(rename.reason), false};
  }
  if (counter == "connections_current") return CounterName{"connections", "", true};
  return CounterName{std::string(counter), "", false};
}

std::string render_metrics(const std::vector<shard::ShardSnapshot>& shards, const HttpCountersCopy& http) {
  Exposition out;
  // Families in first-seen order; a family's reasons in first-seen order.
  std::vector<Family> families;
  auto family_of = [&](const CounterName& name) -> Family& {
    for (Family& family : families) {
      if (family.name.family == name.family) return family;
    }
    families.push_back(Family{name, {}});
    return families.back();
  };
  for (size_t index = 0; index < shards.size(); ++index) {
    broker::for_each_counter(shards[index].counters, [&](std::string_view counter, uint64_t value) {
      CounterName name = prometheus_name(counter);
      Family& family = family_of(name);
      auto reason = std::find_if(family.by_reason.begin(), family.by_reason.end(),
                                 [&](const auto& entry) { return entry.first == name.reason; });
      if (reason == family.by_reason.end()) {
        family.by_reason.emplace_back(name.reason, std::vector<uint64_t>(shards.size(), 0));
        reason = family.by_reason.end() - 1;
      }
      reason->second[index] = value;
    });
  }
  // Gauges that are not ShardCounters fields.
  auto gauge = [&](std::string family, auto field) {
    Family entry{CounterName{std::move(family), "", true}, {}};
    std::vector<uint64_t> values;
    for (const shard::ShardSnapshot& snapshot : shards) values.push_back(field(snapshot));
    entry.by_reason.emplace_back("", std::move(values));
    families.push_back(std::move(entry));
  };
  gauge("sessions", [](const shard::ShardSnapshot& s) { return s.sessions; });
  gauge("sessions_online", [](const shard::ShardSnapshot& s) { return s.sessions_online; });
  gauge("sessions_offline",
        [](const shard::ShardSnapshot& s) { return s.sessions - std::min(s.sessions, s.sessions_online); });
  gauge("subscriptions", [](const shard::ShardSnapshot& s) { return s.subscriptions; });
  gauge("retained_messages", [](const shard::ShardSnapshot& s) { return s.retained; });
  gauge("store_messages", [](const shard::ShardSnapshot& s) { return s.stored_messages; });
  gauge("store_message_bytes", [](const shard::ShardSnapshot& s) { return s.stored_message_bytes; });
  gauge("store_batches_waiting", [](const shard::ShardSnapshot& s) { return s.store_batches_waiting; });
  gauge("cross_shard_ring_depth", [](const shard::ShardSnapshot& s) { return s.inbound_ring_depth; });
  gauge("input_paused", [](const shard::ShardSnapshot& s) { return uint64_t{s.input_paused}; });
  gauge("shards_answered", [](const shard::ShardSnapshot& s) { return uint64_t{s.answered}; });

  for (const Family& family : families) {
    const char* type = family.name.gauge ? "gauge" : "counter";
    std::string suffix = family.name.gauge ? "" : "_total";
    std::string total_name = "coremq_" + family.name.family + suffix;
    std::string shard_name = "coremq_shard_" + family.name.family + suffix;
    std::string help = help_of(family.name.family);
    // The retained copy is one per shard: its total is a copy's size, not a sum.
    bool per_copy = family.name.family == "retained_messages";
    out.family(total_name, type, help + (per_copy ? " (shard 0's copy)" : ""));
    for (const auto& [reason, values] : family.by_reason) {
      uint64_t total = 0;
      for (uint64_t value : values) total += value;
      if (per_copy) total = values.empty() ? 0 : values[0];
      std::string reason_label = reason.empty() ? "" : "reason=\"" + reason + "\"";
      out.sample(total_name, reason_label, total);
    }
    out.family(shard_name, type, help + " Per shard.");
    for (const auto& [reason, values] : family.by_reason) {
      std::string reason_label = reason.empty() ? "" : "reason=\"" + reason + "\"";
      for (size_t index = 0; index < values.size(); ++index) {
        out.sample(shard_name, join_labels(shard_label(shards[index].shard), reason_label), values[index]);
      }
    }
  }

  base::LogHistogram latency_total;
  base::LogHistogram turn_total;
  for (const shard::ShardSnapshot& snapshot : shards) {
    latency_total.add(snapshot.delivery_latency_us);
    turn_total.add(snapshot.turn_duration_us);
  }
  const char* latency_help =
      "Publish-to-deliver latency: from the loop turn a message entered in to the turn it was delivered in.";
  const char* turn_help = "Work of one shard loop turn (waiting in the kernel left out).";
  out.family("coremq_delivery_latency_seconds", "histogram", latency_help);
  out.histogram("coremq_delivery_latency_seconds", "", latency_total);
  out.family("coremq_shard_delivery_latency_seconds", "histogram", std::string(latency_help) + " Per shard.");
  for (const shard::ShardSnapshot& snapshot : shards) {
    out.histogram("coremq_shard_delivery_latency_seconds", shard_label(snapshot.shard),
                  snapshot.delivery_latency_us);
  }
  out.family("coremq_loop_turn_duration_seconds", "histogram", turn_help);
  out.histogram("coremq_loop_turn_duration_seconds", "", turn_total);
  out.family("coremq_shard_loop_turn_duration_seconds", "histogram", std::string(turn_help) + " Per shard.");
  for (const shard::ShardSnapshot& snapshot : shards) {
    out.histogram("coremq_shard_loop_turn_duration_seconds", shard_label(snapshot.shard),
                  snapshot.turn_duration_us);
  }

  // The store's committer serves every shard: its figures are store-wide, read by every shard
  // alike, shown once (from the first shard that answered).
  const shard::ShardSnapshot* first_answered = nullptr;
  for (const shard::ShardSnapshot& snapshot : shards) {
    if (snapshot.answered && first_answered == nullptr) first_answered = &snapshot;
  }
  shard::ShardSnapshot none;
  const shard::ShardSnapshot& store = first_answered != nullptr ? *first_answered : none;
  out.family("coremq_store_write_failures_total", "counter",
             "Store writes that failed (disk full, I/O error) and were retried; answers waited meanwhile.");
  out.sample("coremq_store_write_failures_total", "", store.store_write_failures);
  out.family("coremq_store_batches_written_total", "counter",
             "Batches of shard changes written to the store.");
  out.sample("coremq_store_batches_written_total", "", store.store_batches_written);
  out.family("coremq_store_syncs_total", "counter", "fsyncs of the store's write-ahead log.");
  out.sample("coremq_store_syncs_total", "", store.store_syncs);

  // The journals' figures: how much of what the shards changed the committer had to write.
  uint64_t changes_written = 0;
  uint64_t changes_elided = 0;
  uint64_t changes_superseded = 0;
  uint64_t erases_coalesced = 0;
  for (const shard::ShardSnapshot& snapshot : shards) {
    erases_coalesced += snapshot.store_erases_coalesced;
    changes_written += snapshot.store_changes_written;
    changes_elided += snapshot.store_changes_elided;
    changes_superseded += snapshot.store_changes_superseded;
  }
  out.family("coremq_store_changes_total", "counter",
             "Store changes by outcome: written to RocksDB; elided (a record created and erased before its "
             "batch left: a message acknowledged by its persistent subscriber first); superseded (replaced by a "
             "later change of the same key in the batch); coalesced (erases of consecutive queue entries or bodies "
             "written as one range delete, which counts once in written).");
  out.sample("coremq_store_changes_total", "outcome=\"written\"", changes_written);
  out.sample("coremq_store_changes_total", "outcome=\"elided\"", changes_elided);
  out.sample("coremq_store_changes_total", "outcome=\"superseded\"", changes_superseded);
  out.sample("coremq_store_changes_total", "outcome=\"coalesced\"", erases_coalesced);

  out.family("coremq_shards", "gauge", "Shards (event-loop threads).");
  out.sample("coremq_shards", "", shards.size());
  out.family("coremq_http_requests_total", "counter", "HTTP requests answered by the admin listener.");
  out.sample("coremq_http_requests_total", "", http.requests);
  out.family("coremq_http_connections", "gauge", "HTTP connections open now.");
  out.sample("coremq_http_connections", "", http.connections_open);
  out.family("coremq_http_connections_refused_total", "counter",
             "HTTP connections refused by --http-max-connections.");
  out.sample("coremq_http_connections_refused_total", "reason=\"max_connections\"",
             http.connections_refused_limit);
  out.family("coremq_http_timeouts_total", "counter", "HTTP connections closed by --http-timeout.");
  out.sample("coremq_http_timeouts_total", "", http.timeouts);
  out.family("coremq_http_bodies_too_large_total", "counter",
             "HTTP requests refused by --http-max-body-bytes (413).");
  out.sample("coremq_http_bodies_too_large_total", "", http.bodies_too_large);
  out.family("coremq_http_authentication_failures_total", "counter", "HTTP requests refused with 401.");
  out.sample("coremq_http_authentication_failures_total", "", http.authentication_failures);
  out.family(
      "coremq_http_shard_timeouts_total", "counter",
      "Admin API requests that waited 2 s for a shard's answer (or a publish acknowledgement) in vain.");
  out.sample("coremq_http_shard_timeouts_total", "", http.shard_timeouts);
  return out.take();
}

}  // namespace coremq::admin
