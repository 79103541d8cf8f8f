// Phase driving and result merging; see runner.h. Main thread only.
#include "runner.h"

#include <signal.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/assert.h"
#include "clock.h"
#include "proc_stats.h"
#include "shared_state.h"
#include "worker.h"

namespace coremq::bench {

namespace {

constexpr int64_t kTickNs = 100'000'000;             // how often the main thread looks
constexpr int64_t kProgressIntervalNs = kNanosPerSecond;
constexpr int64_t kDrainQuietNs = kNanosPerSecond;   // drain ends after this long without progress

struct Totals {
  uint64_t connections_up = 0, subscribed = 0, errors = 0, sent = 0, expected_deliveries = 0, acknowledged = 0,
           received = 0, publishers_done = 0, subscribers_done = 0, schedule_late = 0;
  int64_t last_send_ns = 0;
};

class Controller {
 public:
  Controller(const Options& options, const Plan& plan, Report* report)
      : options_(options),
        plan_(plan),
        report_(report),
        shared_(options.threads, plan.publishers),
        terminal_(isatty(STDOUT_FILENO) == 1),
        live_sums_(kHistogramBuckets, 0),
        live_previous_(kHistogramBuckets, 0) {
    if (plan.shared && plan.in_process) shared_.track_shared(plan.publishers, options.count);
  }

  void run();

 private:
  Totals totals() const;
  // Sleeps until `deadline_ns` or the next tick; false when SIGINT/SIGTERM arrived.
  bool tick(int64_t deadline_ns);
  void progress(const char* phase, bool force);
  bool connect_phase();
  void hold_phase();
  void publish_phase();
  void drain_phase();
  void sample_broker(bool before);
  void merge_results();
  void merge_shared(const std::vector<uint64_t>& sent_by_publisher);
  bool abort_on_errors(const Totals& totals);

  const Options& options_;
  const Plan& plan_;
  Report* report_;
  SharedState shared_;
  std::vector<std::unique_ptr<Worker>> workers_;
  sigset_t signals_{};
  bool terminal_;
  int64_t start_ns_ = 0;
  int64_t last_progress_ns_ = 0;
  Totals last_progress_totals_;
  std::vector<uint64_t> live_sums_;
  std::vector<uint64_t> live_previous_;
  double cpu_at_measure_start_ = 0;
  ProcessSample broker_at_start_;
  int64_t window_end_ns_ = 0;
};

Totals Controller::totals() const {
  Totals sum;
  auto relaxed = std::memory_order_relaxed;
  for (uint32_t i = 0; i < shared_.worker_count; ++i) {
    const WorkerCounters& counters = shared_.counters[i];
    sum.connections_up += counters.connections_up.load(relaxed);
    sum.subscribed += counters.subscribed.load(relaxed);
    sum.errors += counters.errors.load(relaxed);
    sum.sent += counters.sent.load(relaxed);
    sum.expected_deliveries += counters.expected_deliveries.load(relaxed);
    sum.acknowledged += counters.acknowledged.load(relaxed);
    sum.received += counters.received.load(relaxed);
    sum.publishers_done += counters.publishers_done.load(relaxed);
    sum.subscribers_done += counters.subscribers_done.load(relaxed);
    sum.schedule_late += counters.schedule_late.load(relaxed);
    sum.last_send_ns = std::max(sum.last_send_ns, counters.last_send_ns.load(relaxed));
  }
  return sum;
}

bool Controller::tick(int64_t deadline_ns) {
  int64_t wait_ns = std::clamp<int64_t>(deadline_ns - monotonic_ns(), 0, kTickNs);
  timespec timeout{wait_ns / kNanosPerSecond, wait_ns % kNanosPerSecond};
  int signal_number = sigtimedwait(&signals_, nullptr, &timeout);
  if (signal_number == SIGINT || signal_number == SIGTERM) {
    report_->aborted = true;
    report_->outcome = absl::StrFormat("interrupted by %s", signal_number == SIGINT ? "SIGINT" : "SIGTERM");
    return false;
  }
  return true;
}

void Controller::progress(const char* phase, bool force) {
  int64_t now_ns = monotonic_ns();
  if (!force && now_ns - last_progress_ns_ < kProgressIntervalNs) return;
  Totals now = totals();
  double interval_s = static_cast<double>(now_ns - last_progress_ns_) / kNanosPerSecond;
  std::fill(live_sums_.begin(), live_sums_.end(), 0);
  for (uint32_t i = 0; i < shared_.worker_count; ++i) shared_.counters[i].latency.add_to(live_sums_);
  std::vector<uint64_t> interval(kHistogramBuckets);
  uint64_t interval_total = 0;
  for (size_t bucket = 0; bucket < kHistogramBuckets; ++bucket) {
    interval[bucket] = live_sums_[bucket] - live_previous_[bucket];
    interval_total += interval[bucket];
  }
  live_previous_.swap(live_sums_);
  if (!options_.quiet) {
    Progress line;
    line.elapsed_s = static_cast<double>(now_ns - start_ns_) / kNanosPerSecond;
    line.phase = phase;
    line.connections_up = now.connections_up;
    line.connections_target = report_->connections_target;
    line.sent_per_s = interval_s > 0 ? (now.sent - last_progress_totals_.sent) / interval_s : 0;
    line.received_per_s = interval_s > 0 ? (now.received - last_progress_totals_.received) / interval_s : 0;
    line.p99_ns = histogram_percentile(interval.data(), interval_total, 99);
    line.errors = now.errors;
    line.open_loop = options_.period_ns > 0;
    line.behind = now.schedule_late;
    print_progress(line, terminal_);
  }
  last_progress_ns_ = now_ns;
  last_progress_totals_ = now;
}

bool Controller::abort_on_errors(const Totals& totals) {
  if (totals.errors == 0) return false;
  report_->aborted = true;
  report_->outcome = "stopped early: connection errors (listed below)";
  return true;
}

void Controller::sample_broker(bool before) {
  if (options_.broker_pid == 0) return;
  ProcessSample sample;
  if (!sample_process(options_.broker_pid, &sample, &report_->broker_error)) {
    report_->has_broker = false;
    return;
  }
  if (before) {
    broker_at_start_ = sample;
    report_->has_broker = true;
    report_->broker_rss_before_kb = sample.rss_kb;
    return;
  }
  report_->broker_cpu_s = sample.cpu_s - broker_at_start_.cpu_s;
  report_->broker_rss_after_kb = sample.rss_kb;
}

bool Controller::connect_phase() {
  int64_t deadline_ns = start_ns_ + static_cast<int64_t>(options_.connect_timeout_s * kNanosPerSecond);
  for (;;) {
    Totals now = totals();
    if (abort_on_errors(now)) return false;
    if (now.connections_up == report_->connections_target && now.subscribed == plan_.subscribers) return true;
    if (monotonic_ns() >= deadline_ns) {
      report_->aborted = true;
      report_->outcome = absl::StrFormat(
          "stopped early: after --connect-timeout=%.1fs only %u of %u connections were up and %u of %u subscribed",
          options_.connect_timeout_s, now.connections_up, report_->connections_target, now.subscribed,
          plan_.subscribers);
      return false;
    }
    if (!tick(deadline_ns)) return false;
    progress("connecting", false);
  }
}

void Controller::hold_phase() {
  // Let the broker settle its per-connection memory before the RSS sample.
  int64_t settle_ns = monotonic_ns() + kNanosPerSecond / 2;
  while (monotonic_ns() < settle_ns && tick(settle_ns)) progress("holding", false);
  if (report_->aborted) return;
  int64_t hold_start_ns = monotonic_ns();
  int64_t end_ns = start_ns_ + static_cast<int64_t>(options_.duration_s * kNanosPerSecond);
  end_ns = std::max(end_ns, hold_start_ns);
  while (monotonic_ns() < end_ns) {
    if (abort_on_errors(totals()) || !tick(end_ns)) break;
    progress("holding", false);
  }
  window_end_ns_ = monotonic_ns();
  report_->window_s = static_cast<double>(window_end_ns_ - start_ns_) / kNanosPerSecond;
  sample_broker(false);
}

void Controller::publish_phase() {
  int64_t now_ns = monotonic_ns();
  shared_.publish_start_ns = now_ns;
  shared_.measure_start_ns = now_ns + static_cast<int64_t>(options_.warmup_s * kNanosPerSecond);
  shared_.measure_end_ns = options_.duration_s > 0
                               ? shared_.measure_start_ns + static_cast<int64_t>(options_.duration_s * kNanosPerSecond)
                               : std::numeric_limits<int64_t>::max();
  shared_.phase.store(Phase::kPublishing, std::memory_order_release);
  bool measuring = false;
  Totals previous = totals();
  int64_t last_change_ns = now_ns;
  int64_t stall_ns = static_cast<int64_t>(options_.stall_timeout_s * kNanosPerSecond);
  for (;;) {
    now_ns = monotonic_ns();
    if (!measuring && now_ns >= shared_.measure_start_ns) {
      measuring = true;
      cpu_at_measure_start_ = self_cpu_seconds();
      sample_broker(true);
    }
    Totals now = totals();
    if (abort_on_errors(now)) break;
    if (now_ns >= shared_.measure_end_ns) break;
    if (options_.count > 0 && plan_.publishers > 0 && now.publishers_done == plan_.publishers) break;
    if (options_.count > 0 && plan_.publishers == 0 && now.subscribers_done == plan_.subscribers) break;
    if (now.sent != previous.sent || now.received != previous.received || now.acknowledged != previous.acknowledged) {
      last_change_ns = now_ns;
    }
    previous = now;
    // A --count run has no end time of its own: a broker that stops answering must not hold it.
    if (options_.duration_s <= 0 && now_ns - last_change_ns >= stall_ns) {
      report_->aborted = true;
      report_->outcome = absl::StrFormat("stopped early: nothing sent, received or acknowledged for %.1f s "
                                         "(--stall-timeout)", options_.stall_timeout_s);
      break;
    }
    int64_t next_ns = measuring ? shared_.measure_end_ns : shared_.measure_start_ns;
    if (!tick(next_ns)) break;
    progress(measuring ? "measuring" : "warm-up", false);
  }
  if (!measuring) {  // stopped (or finished --count) inside the warm-up
    cpu_at_measure_start_ = self_cpu_seconds();
    sample_broker(true);
  }
  now_ns = monotonic_ns();
  window_end_ns_ = std::min(now_ns, shared_.measure_end_ns);
  if (options_.count > 0 && plan_.publishers > 0 && !report_->aborted) window_end_ns_ = totals().last_send_ns;
  report_->window_s = std::max<double>(0, static_cast<double>(window_end_ns_ - shared_.measure_start_ns) / kNanosPerSecond);
}

void Controller::drain_phase() {
  shared_.phase.store(Phase::kDraining, std::memory_order_release);
  int64_t deadline_ns = monotonic_ns() + static_cast<int64_t>(options_.drain_timeout_s * kNanosPerSecond);
  Totals previous = totals();
  int64_t last_change_ns = monotonic_ns();
  for (;;) {
    Totals now = totals();
    bool acknowledged = options_.qos == 0 || now.acknowledged == now.sent;
    bool delivered = !plan_.in_process || now.received >= now.expected_deliveries;
    if ((acknowledged && delivered) || now.errors > 0) return;
    int64_t now_ns = monotonic_ns();
    if (now.received != previous.received || now.acknowledged != previous.acknowledged) last_change_ns = now_ns;
    previous = now;
    if (now_ns >= deadline_ns || now_ns - last_change_ns >= kDrainQuietNs) return;
    if (!tick(deadline_ns)) return;
    progress("draining", false);
  }
}

void Controller::run() {
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGINT);
  sigaddset(&signals_, SIGTERM);
  // Blocked before any worker starts so that every thread inherits the mask and only
  // sigtimedwait() in tick() takes these signals.
  pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
  if (getrandom(&shared_.run_id, sizeof(shared_.run_id), 0) != sizeof(shared_.run_id)) {
    shared_.run_id = static_cast<uint32_t>(monotonic_ns()) ^ static_cast<uint32_t>(getpid());
  }
  report_->connections_target = plan_.clients.size();

  std::vector<std::vector<const ClientSpec*>> specs(options_.threads);
  for (size_t i = 0; i < plan_.clients.size(); ++i) specs[i % options_.threads].push_back(&plan_.clients[i]);
  if (options_.command == Command::kConn) sample_broker(true);
  double cpu_at_start = self_cpu_seconds();
  start_ns_ = monotonic_ns();
  last_progress_ns_ = start_ns_;
  for (uint32_t i = 0; i < options_.threads; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, options_, plan_, shared_, std::move(specs[i])));
    workers_.back()->start();
  }

  bool connected = connect_phase();
  if (connected && options_.command == Command::kConn) {
    cpu_at_measure_start_ = cpu_at_start;
    hold_phase();
  } else if (connected) {
    publish_phase();
    if (!report_->aborted) drain_phase();
  }
  if (connected && options_.command != Command::kConn) sample_broker(false);
  report_->tool_cpu_s = self_cpu_seconds() - (connected ? cpu_at_measure_start_ : cpu_at_start);
  progress(connected ? "done" : "stopped", true);
  end_progress(terminal_ || options_.quiet);

  shared_.phase.store(Phase::kStopping, std::memory_order_release);
  for (auto& worker : workers_) worker->join();
  merge_results();
}

void Controller::merge_results() {
  std::vector<uint64_t> sent_by_publisher(plan_.publishers, 0);
  int64_t first_connect_ns = 0;
  int64_t last_connack_ns = 0;
  for (auto& worker : workers_) {
    WorkerResult& result = worker->result();
    report_->latency_ns.merge(result.latency_ns);
    report_->ack_latency_ns.merge(result.ack_latency_ns);
    report_->sent += result.sent;
    report_->sent_in_window += result.sent_in_window;
    report_->received += result.received;
    report_->received_in_window += result.received_in_window;
    report_->acknowledged += result.acknowledged;
    report_->connections_up += result.connections_up;
    report_->errors += result.errors;
    for (std::string& message : result.error_messages) report_->error_messages.push_back(std::move(message));
    report_->receive_buffers_exhausted += result.receive_buffers_exhausted;
    report_->publish_paused_staged_full += result.publish_paused_staged_full;
    report_->pings += result.pings;
    report_->schedule_late += result.schedule_late;
    report_->schedule_lag_max_ns = std::max(report_->schedule_lag_max_ns, result.schedule_lag_max_ns);
    report_->schedule_unsent += result.schedule_unsent;
    for (size_t code = 0; code < 256; ++code) {
      report_->connack_reasons[code] += result.connack_reasons[code];
      report_->ack_reasons[code] += result.ack_reasons[code];
      report_->disconnect_reasons[code] += result.disconnect_reasons[code];
    }
    report_->server_topic_alias_maximum = std::max(report_->server_topic_alias_maximum,
                                                   result.server_topic_alias_maximum);
    report_->server_receive_maximum = std::max(report_->server_receive_maximum, result.server_receive_maximum);
    report_->topic_alias_publishes += result.topic_alias_publishes;
    report_->shared_untracked += result.shared_untracked;
    report_->payload_bytes_sent += result.payload_bytes_sent;
    report_->reconnects += result.reconnects;
    report_->tls_handshakes += result.tls_handshakes;
    report_->tls_resumed += result.tls_resumed;
    if (report_->tls_protocol.empty()) report_->tls_protocol = result.tls_protocol;
    if (result.first_connect_ns > 0 && (first_connect_ns == 0 || result.first_connect_ns < first_connect_ns)) {
      first_connect_ns = result.first_connect_ns;
    }
    last_connack_ns = std::max(last_connack_ns, result.last_connack_ns);
    for (const PublisherResult& publisher : result.publishers) {
      sent_by_publisher[publisher.index] = publisher.sent;
      report_->unacknowledged += publisher.unacknowledged;
    }
  }
  if (first_connect_ns > 0 && last_connack_ns > first_connect_ns) {
    report_->connect_elapsed_s = static_cast<double>(last_connack_ns - first_connect_ns) / kNanosPerSecond;
    report_->connects_per_s = report_->connections_up / report_->connect_elapsed_s;
  }
  report_->exact_expectation = plan_.in_process;
  report_->shared = plan_.shared;
  if (plan_.shared && plan_.in_process) {
    merge_shared(sent_by_publisher);
    return;
  }
  for (auto& worker : workers_) {
    for (const SubscriberResult& subscriber : worker->result().subscribers) {
      report_->unique += subscriber.unique;
      report_->duplicates += subscriber.duplicates;
      report_->reordered += subscriber.reordered;
      report_->unexpected += subscriber.unexpected;
      report_->foreign += subscriber.foreign;
      if (subscriber.granted_qos < options_.qos) report_->granted_qos_lower++;
      if (!plan_.in_process) {
        // A share group member skips what went to the other members: gaps are not loss there.
        if (!plan_.shared) report_->lost += subscriber.gaps;
        continue;
      }
      uint64_t expected = 0;
      for (uint32_t publisher : plan_.sources[subscriber.index]) expected += sent_by_publisher[publisher];
      report_->expected += expected;
      report_->lost += expected > subscriber.unique ? expected - subscriber.unique : 0;
    }
  }
  COREMQ_ASSERT(report_->connections_up <= report_->connections_target);
}

// A share group: every message once to the group. Expected is what the matched publishers sent;
// the group's unique deliveries are the members' own unique ones less those another member
// had already (found in SharedState::shared_seen).
void Controller::merge_shared(const std::vector<uint64_t>& sent_by_publisher) {
  for (uint32_t publisher = 0; publisher < plan_.publishers; ++publisher) {
    report_->expected += sent_by_publisher[publisher] * plan_.fanout[publisher];
  }
  uint64_t group_unique = 0;
  bool first = true;
  for (auto& worker : workers_) {
    for (const SubscriberResult& subscriber : worker->result().subscribers) {
      uint64_t own = subscriber.unique - subscriber.shared_duplicates;
      group_unique += own;
      report_->unique += own;
      report_->duplicates += subscriber.duplicates + subscriber.shared_duplicates;
      report_->shared_duplicates += subscriber.shared_duplicates;
      report_->reordered += subscriber.reordered;
      report_->unexpected += subscriber.unexpected;
      report_->foreign += subscriber.foreign;
      if (subscriber.granted_qos < options_.qos) report_->granted_qos_lower++;
      report_->shared_member_min = first ? own : std::min(report_->shared_member_min, own);
      report_->shared_member_max = std::max(report_->shared_member_max, own);
      first = false;
    }
  }
  report_->lost = report_->expected > group_unique ? report_->expected - group_unique : 0;
}

}  // namespace

void run_benchmark(const Options& options, const Plan& plan, Report* report) {
  report->options = &options;
  Controller controller(options, plan, report);
  controller.run();
}

}  // namespace coremq::bench
