// Report: the outcome of one run, assembled by the main thread from the merged worker results
// and the process samples, then printed as a table, written as JSON, and turned into the exit
// code. Also the live progress line. Main thread only.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "histogram.h"
#include "options.h"

namespace coremq::bench {

struct Report {
  const Options* options = nullptr;
  std::string outcome = "completed";  // or why the run stopped early
  bool aborted = false;

  uint64_t connections_target = 0;
  uint64_t connections_up = 0;
  uint64_t errors = 0;
  std::vector<std::string> error_messages;
  double connect_elapsed_s = 0;   // first connect started .. last CONNACK
  double connects_per_s = 0;

  double window_s = 0;            // measurement window (conn: hold time)
  uint64_t sent = 0;
  uint64_t sent_in_window = 0;
  uint64_t received = 0;
  uint64_t received_in_window = 0;
  uint64_t acknowledged = 0;
  bool exact_expectation = false; // `run`: loss is measured against what was sent
  uint64_t expected = 0;
  uint64_t unique = 0;
  uint64_t lost = 0;
  uint64_t duplicates = 0;
  uint64_t reordered = 0;
  uint64_t unexpected = 0;
  uint64_t foreign = 0;
  uint64_t unacknowledged = 0;
  uint64_t granted_qos_lower = 0; // subscriptions granted below --qos
  Histogram latency_ns;
  Histogram ack_latency_ns;  // QoS 1/2: send to PUBACK (PUBREC)

  double tool_cpu_s = 0;
  bool has_broker = false;
  double broker_cpu_s = 0;
  uint64_t broker_rss_before_kb = 0;
  uint64_t broker_rss_after_kb = 0;
  std::string broker_error;

  uint64_t receive_buffers_exhausted = 0;
  uint64_t publish_paused_staged_full = 0;
  uint64_t pings = 0;
  // Open loop (--rate, --interval): see WorkerResult.
  uint64_t schedule_late = 0;
  int64_t schedule_lag_max_ns = 0;
  uint64_t schedule_unsent = 0;
  // MQTT 5 (see WorkerResult) and the share group's spread.
  std::array<uint64_t, 256> connack_reasons{};
  std::array<uint64_t, 256> ack_reasons{};
  std::array<uint64_t, 256> disconnect_reasons{};
  uint32_t server_topic_alias_maximum = 0;
  uint32_t server_receive_maximum = 0;
  uint64_t topic_alias_publishes = 0;
  uint64_t payload_bytes_sent = 0;
  uint64_t reconnects = 0;
  bool shared = false;
  uint64_t shared_duplicates = 0;  // across members (also in duplicates)
  uint64_t shared_untracked = 0;
  uint64_t shared_member_min = 0;  // messages the least and the most served member received
  uint64_t shared_member_max = 0;
  bool fell_behind() const { return schedule_late > 0 || schedule_unsent > 0; }
  uint64_t tls_handshakes = 0;
  uint64_t tls_resumed = 0;
  std::string tls_protocol;  // what the first handshake negotiated

  double sent_per_s() const { return window_s > 0 ? sent_in_window / window_s : 0; }
  double delivered_per_s() const { return window_s > 0 ? received_in_window / window_s : 0; }
  double messages_per_broker_cpu_s() const { return broker_cpu_s > 0 ? received_in_window / broker_cpu_s : 0; }
  double broker_rss_per_connection_bytes() const;
  // 0 clean, 1 loss or errors (see the rules in report.cc).
  int exit_code() const;
};

void print_report(const Report& report, std::FILE* out);
[[nodiscard]] bool write_json(const Report& report, const std::string& path, std::string* error);

// One progress line. `terminal`: rewrite the same line; otherwise print one line per call.
struct Progress {
  double elapsed_s = 0;
  uint64_t connections_up = 0;
  uint64_t connections_target = 0;
  double sent_per_s = 0;
  double received_per_s = 0;
  uint64_t p99_ns = 0;
  uint64_t errors = 0;
  bool open_loop = false;
  uint64_t behind = 0;  // messages written late so far
  const char* phase = "";
};
void print_progress(const Progress& progress, bool terminal);
void end_progress(bool terminal);

}  // namespace coremq::bench
