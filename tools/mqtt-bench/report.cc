// Summary table, JSON and progress line; see report.h. Main thread only.
#include "report.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_format.h"
#include "mqtt/reason_code.h"

namespace coremq::bench {

namespace {

struct LatencySummary {
  const char* name;
  double percent;  // 0 for the maximum
};
constexpr LatencySummary kLatencyRows[] = {{"p50", 50}, {"p90", 90}, {"p99", 99}, {"p99.9", 99.9}, {"max", 0}};

uint64_t latency_value(const Histogram& histogram, double percent) {
  if (percent == 0) return histogram.max();
  // A bucket midpoint can lie above the largest value seen; never report more than that.
  return std::min(histogram.percentile(percent), histogram.max());
}

std::string format_latency(uint64_t ns) {
  if (ns < 1'000) return absl::StrFormat("%u ns", ns);
  if (ns < 1'000'000) return absl::StrFormat("%.1f us", ns / 1e3);
  if (ns < 1'000'000'000) return absl::StrFormat("%.2f ms", ns / 1e6);
  return absl::StrFormat("%.2f s", ns / 1e9);
}

std::string format_count(double value) {
  std::string digits = absl::StrFormat("%.0f", value);
  std::string grouped;
  int since_group = 0;
  for (size_t i = digits.size(); i-- > 0;) {
    if (since_group == 3 && digits[i] != '-') {
      grouped.insert(grouped.begin(), ',');
      since_group = 0;
    }
    grouped.insert(grouped.begin(), digits[i]);
    since_group++;
  }
  return grouped;
}

std::string json_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

void row(std::FILE* out, const char* name, const std::string& value) {
  std::fprintf(out, "  %-26s %s\n", name, value.c_str());
}

const char* transport_name(const Options& options) {
  if (options.ws) return options.tls ? "WebSocket over TLS" : "WebSocket";
  return options.tls ? "TLS" : "TCP";
}

// "TLSv1.3 TLS_AES_256_GCM_SHA384, certificate checked (name 127.0.0.1), 100 handshakes, 0 resumed"
std::string tls_summary(const Report& report) {
  const Options& options = *report.options;
  std::string check = options.tls_insecure
                          ? std::string("certificate not checked (--tls-insecure)")
                          : absl::StrFormat("certificate checked against %s for %s",
                                            options.tls_ca_file.empty() ? "the system's CAs" : options.tls_ca_file,
                                            options.tls_server_name);
  return absl::StrFormat("%s, %s, %u handshakes, %u resumed",
                         report.tls_protocol.empty() ? "no handshake completed" : report.tls_protocol, check,
                         report.tls_handshakes, report.tls_resumed);
}

// "uniform, 1,000 msgs/s (each publisher every 10.0 ms); fell behind: 12 msgs late by more
// than 10.0 ms, max lag 1.52 s, 0 due but never sent"
std::string schedule_summary(const Report& report) {
  const Options& options = *report.options;
  std::string pace = options.interval_s > 0
                         ? absl::StrFormat("each publisher every %s", format_latency(static_cast<uint64_t>(options.period_ns)))
                         : absl::StrFormat("%s msgs/s (each publisher every %s)", format_count(options.rate_total),
                                           format_latency(static_cast<uint64_t>(options.period_ns)));
  std::string behind = report.fell_behind()
                           ? absl::StrFormat("FELL BEHIND: %s msgs late by more than %s, max lag %s, %s due but "
                                             "never sent",
                                             format_count(report.schedule_late),
                                             format_latency(static_cast<uint64_t>(options.lag_threshold_ns)),
                                             format_latency(static_cast<uint64_t>(report.schedule_lag_max_ns)),
                                             format_count(report.schedule_unsent))
                           : absl::StrFormat("kept up (max lag %s)", format_latency(static_cast<uint64_t>(report.schedule_lag_max_ns)));
  return absl::StrFormat("%s, %s; %s", arrival_name(options.arrival), pace, behind);
}

// "64" or "64-16384 uniform"
std::string size_text(const Options& options) {
  if (options.payload_bytes == options.payload_bytes_max) return absl::StrFormat("%u", options.payload_bytes);
  return absl::StrFormat("%u-%u %s", options.payload_bytes, options.payload_bytes_max,
                         options.size_exponential ? "exponential" : "uniform");
}

const char* protocol_name(const Options& options) {
  return options.protocol_level == 3 ? "3.1" : options.protocol_level == 5 ? "5" : "3.1.1";
}

// "0x00 Success x20, 0x10 No matching subscribers x3"; "none" when no code came.
std::string reason_counts(const std::array<uint64_t, 256>& counts) {
  std::string text;
  for (size_t code = 0; code < counts.size(); ++code) {
    if (counts[code] == 0) continue;
    text += absl::StrFormat("%s0x%02x %s x%s", text.empty() ? "" : ", ", code,
                            mqtt::reason_code_name(static_cast<mqtt::ReasonCode>(code)), format_count(counts[code]));
  }
  return text.empty() ? "none" : text;
}

// {"0x00": 20, "0x10": 3}
std::string reason_json(const std::array<uint64_t, 256>& counts) {
  std::string text = "{";
  for (size_t code = 0; code < counts.size(); ++code) {
    if (counts[code] == 0) continue;
    text += absl::StrFormat("%s\"0x%02x\": %u", text.size() > 1 ? ", " : "", code, counts[code]);
  }
  return text + "}";
}

void print_mqtt5(const Report& report, std::FILE* out) {
  const Options& options = *report.options;
  row(out, "CONNACK reasons", absl::StrFormat("%s; broker allows Receive Maximum %u, Topic Alias Maximum %u",
                                              reason_counts(report.connack_reasons), report.server_receive_maximum,
                                              report.server_topic_alias_maximum));
  if (options.qos > 0) row(out, "ack reasons", reason_counts(report.ack_reasons));
  if (std::any_of(report.disconnect_reasons.begin(), report.disconnect_reasons.end(), [](uint64_t n) { return n > 0; })) {
    row(out, "DISCONNECT reasons", reason_counts(report.disconnect_reasons));
  }
  if (options.topic_alias) {
    row(out, "topic alias", report.server_topic_alias_maximum > 0
                                ? absl::StrFormat("%s PUBLISH packets with the alias alone",
                                                  format_count(report.topic_alias_publishes))
                                : std::string("not used: the broker's CONNACK allows no topic alias"));
  }
}

bool publishes(const Options& options) { return options.command == Command::kPub || options.command == Command::kRun; }
bool subscribes(const Options& options) { return options.command == Command::kSub || options.command == Command::kRun; }

}  // namespace

double Report::broker_rss_per_connection_bytes() const {
  if (!has_broker || connections_up == 0 || broker_rss_after_kb < broker_rss_before_kb) return 0;
  return static_cast<double>(broker_rss_after_kb - broker_rss_before_kb) * 1024.0 / connections_up;
}

// Exit code rules: any connection error, a connection that never came up, a duplicate, an
// out-of-order delivery or a message from a publisher the subscriber did not ask for fails the
// run at every QoS. Loss and missing PUBACK/PUBCOMP fail it at QoS 1 and 2; at QoS 0 the
// protocol allows loss, so it is reported but does not fail the run.
int Report::exit_code() const {
  if (aborted || errors > 0 || connections_up < connections_target) return 1;
  if (duplicates > 0 || reordered > 0 || unexpected > 0) return 1;
  if (options->qos > 0 && (lost > 0 || unacknowledged > 0)) return 1;
  return 0;
}

void print_report(const Report& report, std::FILE* out) {
  const Options& options = *report.options;
  absl::FPrintF(out, "\nmqtt-bench %s", command_name(options.command));
  if (options.scenario != Scenario::kNone) absl::FPrintF(out, " --scenario %s", scenario_name(options.scenario));
  absl::FPrintF(out, " against %s (%s, MQTT %s, QoS %u, %s-byte payload%s): %s\n", broker_url(options),
               transport_name(options), protocol_name(options), options.qos, size_text(options),
               options.retain ? ", retained" : "", report.outcome.c_str());
  row(out, "connections", absl::StrFormat("%u of %u up, %u errors", report.connections_up,
                                          report.connections_target, report.errors));
  if (options.tls) row(out, "TLS", tls_summary(report));
  if (options.protocol_level == 5) print_mqtt5(report, out);
  if (options.source_local_count > 0) {
    row(out, "source addresses", absl::StrFormat("%u of %s", options.source_local_count, options.source_addresses.text));
  }
  if (options.process_count > 1) {
    row(out, "process", absl::StrFormat("%u of %u (this report covers its share of the clients)",
                                        options.process_index, options.process_count));
  }
  if (report.connect_elapsed_s > 0) {
    row(out, "connect rate", absl::StrFormat("%s connects/s (%.2f s for all)", format_count(report.connects_per_s),
                                             report.connect_elapsed_s));
  }
  row(out, "measured for", absl::StrFormat("%.2f s", report.window_s));
  if (publishes(options)) {
    row(out, "sent", absl::StrFormat("%s msgs (%s msgs/s measured)", format_count(report.sent),
                                     format_count(report.sent_per_s())));
  }
  if (publishes(options) && options.period_ns > 0) row(out, "schedule", schedule_summary(report));
  if (publishes(options) && options.payload_bytes != options.payload_bytes_max && report.sent > 0) {
    row(out, "payload sizes", absl::StrFormat("%s bytes on average (%s)", format_count(static_cast<double>(
                                                  report.payload_bytes_sent) / report.sent), size_text(options)));
  }
  if (options.reconnect_messages > 0 || options.reconnect_s > 0) {
    row(out, "reconnects", absl::StrFormat("%s (every %s)", format_count(report.reconnects),
                                           options.reconnect_messages > 0
                                               ? absl::StrFormat("%u messages", options.reconnect_messages)
                                               : format_latency(static_cast<uint64_t>(options.reconnect_s * 1e9))));
  }
  if (subscribes(options)) {
    row(out, "delivered", absl::StrFormat("%s msgs (%s msgs/s measured)", format_count(report.received),
                                          format_count(report.delivered_per_s())));
    if (report.exact_expectation) {
      row(out, "expected", absl::StrFormat("%s deliveries", format_count(report.expected)));
    }
    row(out, report.exact_expectation ? "lost" : "lost (sequence gaps)",
        absl::StrFormat("%s%s", format_count(report.lost),
                        report.lost > 0 && options.qos == 0 ? " (allowed at QoS 0)" : ""));
    row(out, "duplicates / reordered", absl::StrFormat("%s / %s", format_count(report.duplicates),
                                                       format_count(report.reordered)));
    if (report.shared && report.exact_expectation) {
      row(out, "share group", absl::StrFormat("%u members, each message to one: %s to the least served, %s to "
                                              "the most; %s also to a second member%s",
                                              options.subscribers, format_count(report.shared_member_min),
                                              format_count(report.shared_member_max),
                                              format_count(report.shared_duplicates),
                                              report.shared_untracked > 0
                                                  ? absl::StrFormat(" (%s past the tracked bound not checked)",
                                                                    format_count(report.shared_untracked))
                                                  : ""));
    }
    if (report.unexpected > 0) row(out, "unexpected publisher", format_count(report.unexpected));
    if (report.foreign > 0) row(out, "not from this run", format_count(report.foreign));
    if (report.granted_qos_lower > 0) {
      row(out, "granted below --qos", absl::StrFormat("%u subscriptions", report.granted_qos_lower));
    }
  }
  if (publishes(options) && options.qos > 0) {
    row(out, options.qos == 1 ? "PUBACK missing" : "PUBCOMP missing", format_count(report.unacknowledged));
    std::string latency;
    for (const LatencySummary& summary : kLatencyRows) {
      latency += absl::StrFormat("%s%s %s", latency.empty() ? "" : ", ", summary.name,
                                 format_latency(latency_value(report.ack_latency_ns, summary.percent)));
    }
    row(out, options.qos == 1 ? "PUBACK latency" : "PUBREC latency",
        report.ack_latency_ns.count() > 0 ? latency : "no measured acknowledgements");
  }
  if (subscribes(options)) {
    std::string latency;
    for (const LatencySummary& summary : kLatencyRows) {
      latency += absl::StrFormat("%s%s %s", latency.empty() ? "" : ", ", summary.name,
                                 format_latency(latency_value(report.latency_ns, summary.percent)));
    }
    row(out, "latency", report.latency_ns.count() > 0 ? latency : "no measured deliveries");
  }
  double wall_s = report.window_s > 0 ? report.window_s : 1;
  row(out, "mqtt-bench CPU", absl::StrFormat("%.2f s (%.0f%% of %u thread%s)", report.tool_cpu_s,
                                             100 * report.tool_cpu_s / wall_s / options.threads, options.threads,
                                             options.threads == 1 ? "" : "s"));
  if (report.has_broker) {
    row(out, "broker CPU", absl::StrFormat("%.2f s (%.0f%% of one CPU)", report.broker_cpu_s,
                                           100 * report.broker_cpu_s / wall_s));
    row(out, "broker RSS", absl::StrFormat("%s kB before, %s kB after", format_count(report.broker_rss_before_kb),
                                           format_count(report.broker_rss_after_kb)));
    if (subscribes(options) && report.broker_cpu_s > 0) {
      row(out, "msgs per broker CPU-second", format_count(report.messages_per_broker_cpu_s()));
    }
    if (options.command == Command::kConn) {
      row(out, "broker RSS per connection", absl::StrFormat("%s bytes", format_count(report.broker_rss_per_connection_bytes())));
    }
  } else if (!report.broker_error.empty()) {
    row(out, "broker", report.broker_error);
  }
  if (report.receive_buffers_exhausted > 0 || report.publish_paused_staged_full > 0) {
    row(out, "bounds hit", absl::StrFormat("receive buffers exhausted %u, publisher paused on full output %u",
                                           report.receive_buffers_exhausted, report.publish_paused_staged_full));
  }
  if (report.window_s > 0 && report.tool_cpu_s / report.window_s / options.threads > 0.9) {
    absl::FPrintF(out, "  note: mqtt-bench was busy %.0f%% of the time: the tool, not the broker, may be the limit "
                 "(try more --threads)\n", 100 * report.tool_cpu_s / report.window_s / options.threads);
  }
  for (const std::string& message : report.error_messages) std::fprintf(out, "  error: %s\n", message.c_str());
  if (report.errors > report.error_messages.size()) {
    absl::FPrintF(out, "  ... and %u more errors\n", report.errors - report.error_messages.size());
  }
  std::fprintf(out, "  result: %s\n", report.exit_code() == 0 ? "PASS" : "FAIL");
}

bool write_json(const Report& report, const std::string& path, std::string* error) {
  const Options& options = *report.options;
  std::string json = "{\n";
  auto field = [&json](const char* name, const std::string& value, bool last = false) {
    json += absl::StrFormat("  \"%s\": %s%s\n", name, value, last ? "" : ",");
  };
  auto number = [](double value) { return absl::StrFormat("%.6g", value); };
  auto integer = [](uint64_t value) { return absl::StrFormat("%u", value); };
  field("command", absl::StrFormat("\"%s\"", command_name(options.command)));
  field("scenario", absl::StrFormat("\"%s\"", scenario_name(options.scenario)));
  field("host", absl::StrFormat("\"%s\"", json_escape(options.host)));
  field("port", integer(options.port));
  field("transport", absl::StrFormat("\"%s\"", transport_scheme(options)));
  field("url", absl::StrFormat("\"%s\"", json_escape(broker_url(options))));
  field("tls_protocol", options.tls ? absl::StrFormat("\"%s\"", json_escape(report.tls_protocol)) : "null");
  field("tls_handshakes", integer(report.tls_handshakes));
  field("tls_resumed", integer(report.tls_resumed));
  field("mqtt", absl::StrFormat("\"%s\"", protocol_name(options)));
  field("connack_reason_codes", reason_json(report.connack_reasons));
  field("ack_reason_codes", reason_json(report.ack_reasons));
  field("disconnect_reason_codes", reason_json(report.disconnect_reasons));
  field("server_receive_maximum", integer(report.server_receive_maximum));
  field("server_topic_alias_maximum", integer(report.server_topic_alias_maximum));
  field("topic_alias_publishes", integer(report.topic_alias_publishes));
  field("shared", report.shared && report.exact_expectation
                      ? absl::StrFormat("{\"members\": %u, \"member_min\": %u, \"member_max\": %u, "
                                        "\"delivered_twice\": %u, \"untracked\": %u}",
                                        options.subscribers, report.shared_member_min, report.shared_member_max,
                                        report.shared_duplicates, report.shared_untracked)
                      : "null");
  field("qos", integer(options.qos));
  field("payload_bytes", integer(options.payload_bytes));
  field("payload_bytes_max", integer(options.payload_bytes_max));
  field("size_dist", absl::StrFormat("\"%s\"", options.size_exponential ? "exponential" : "uniform"));
  field("payload_bytes_sent", integer(report.payload_bytes_sent));
  field("retain", options.retain ? "true" : "false");
  field("will_topic", options.will_topic.empty() ? "null" : absl::StrFormat("\"%s\"", json_escape(options.will_topic)));
  field("reconnects", integer(report.reconnects));
  field("publishers", integer(options.publishers));
  field("subscribers", integer(options.subscribers));
  field("threads", integer(options.threads));
  field("rate", integer(options.rate_total));
  field("window", integer(options.window));
  field("arrival", options.period_ns > 0 ? absl::StrFormat("\"%s\"", arrival_name(options.arrival)) : "null");
  field("interval_seconds", number(options.interval_s));
  field("schedule_period_us", number(options.period_ns / 1e3));
  field("schedule_late", integer(report.schedule_late));
  field("schedule_lag_max_us", number(static_cast<double>(report.schedule_lag_max_ns) / 1e3));
  field("schedule_unsent", integer(report.schedule_unsent));
  field("fell_behind", report.fell_behind() ? "true" : "false");
  field("source_addresses", integer(options.source_local_count));
  field("process_index", integer(options.process_index));
  field("process_count", integer(options.process_count));
  field("outcome", absl::StrFormat("\"%s\"", json_escape(report.outcome)));
  field("connections_target", integer(report.connections_target));
  field("connections_up", integer(report.connections_up));
  field("errors", integer(report.errors));
  field("connect_seconds", number(report.connect_elapsed_s));
  field("connects_per_second", number(report.connects_per_s));
  field("measured_seconds", number(report.window_s));
  field("sent", integer(report.sent));
  field("sent_per_second", number(report.sent_per_s()));
  field("delivered", integer(report.received));
  field("delivered_per_second", number(report.delivered_per_s()));
  field("expected", report.exact_expectation ? integer(report.expected) : "null");
  field("lost", integer(report.lost));
  field("duplicates", integer(report.duplicates));
  field("reordered", integer(report.reordered));
  field("unexpected", integer(report.unexpected));
  field("unacknowledged", integer(report.unacknowledged));
  std::string latency = "{";
  for (const LatencySummary& summary : kLatencyRows) {
    latency += absl::StrFormat("%s\"%s\": %.3f", latency.size() > 1 ? ", " : "", summary.name,
                               latency_value(report.latency_ns, summary.percent) / 1e3);
  }
  field("latency_us", latency + "}");
  std::string ack_latency = "{";
  for (const LatencySummary& summary : kLatencyRows) {
    ack_latency += absl::StrFormat("%s\"%s\": %.3f", ack_latency.size() > 1 ? ", " : "", summary.name,
                                   latency_value(report.ack_latency_ns, summary.percent) / 1e3);
  }
  field("ack_latency_us", ack_latency + "}");
  field("latency_samples", integer(report.latency_ns.count()));
  field("tool_cpu_seconds", number(report.tool_cpu_s));
  field("broker_cpu_seconds", report.has_broker ? number(report.broker_cpu_s) : "null");
  field("broker_rss_kb_before", report.has_broker ? integer(report.broker_rss_before_kb) : "null");
  field("broker_rss_kb_after", report.has_broker ? integer(report.broker_rss_after_kb) : "null");
  field("messages_per_broker_cpu_second", report.has_broker ? number(report.messages_per_broker_cpu_s()) : "null");
  field("broker_rss_bytes_per_connection",
        report.has_broker ? number(report.broker_rss_per_connection_bytes()) : "null");
  std::string messages = "[";
  for (const std::string& message : report.error_messages) {
    messages += absl::StrFormat("%s\"%s\"", messages.size() > 1 ? ", " : "", json_escape(message));
  }
  field("error_messages", messages + "]");
  field("exit_code", integer(static_cast<uint64_t>(report.exit_code())), true);
  json += "}\n";

  std::FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) {
    *error = absl::StrFormat("cannot write --json file %s", path);
    return false;
  }
  bool written = std::fwrite(json.data(), 1, json.size(), file) == json.size();
  written = std::fclose(file) == 0 && written;
  if (!written) *error = absl::StrFormat("writing --json file %s failed", path);
  return written;
}

void print_progress(const Progress& progress, bool terminal) {
  std::string line = absl::StrFormat("[%6.1fs] %-10s conns %u/%u  sent %s/s  recv %s/s  p99 %s  errors %u",
                                     progress.elapsed_s, progress.phase, progress.connections_up,
                                     progress.connections_target, format_count(progress.sent_per_s),
                                     format_count(progress.received_per_s),
                                     progress.p99_ns > 0 ? format_latency(progress.p99_ns) : "-", progress.errors);
  if (progress.open_loop) line += absl::StrFormat("  behind %s", format_count(progress.behind));
  if (terminal) {
    std::printf("\r%s\x1b[K", line.c_str());
  } else {
    std::printf("%s\n", line.c_str());
  }
  std::fflush(stdout);
}

void end_progress(bool terminal) {
  if (terminal) std::printf("\n");
  std::fflush(stdout);
}

}  // namespace coremq::bench
