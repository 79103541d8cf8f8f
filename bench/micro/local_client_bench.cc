// In-process client throughput (include/coremq/local_client.h) through a real Broker started
// in the benchmark's process (one shard unless the argument says otherwise, 127.0.0.1, port
// 0): what a host program gets from Broker::connect_local.
//
// - LocalPublishQos0/threads: host threads publish QoS 0 with the status-returning form to a
//   topic nobody subscribes; a kIntakeFull answer is retried, so the figure is the sustained
//   rate at which the shard drains its intake (decode, route, drop), not just the push.
// - LocalPublishQos1/window: one host thread publishes QoS 1 with a completion callback,
//   keeping at most `window` unacknowledged: PUBACKs travel shard -> delivery thread, so this
//   is the full round trip.
// - LocalDeliveryQos0/inline: messages per second from an in-process publisher to an
//   in-process subscriber's callback (intake, routing, output, delivery ring, decode,
//   callback); with inline 1 the callback runs on the shard (no delivery ring, no wake-up).
//
// Expected magnitude on a 2-CPU VM (the shard, the delivery thread and the host threads share
// two cores): QoS 0 publish 0.5-3 M msg/s, QoS 1 with a window of 256 0.2-1 M msg/s,
// delivery to a callback 0.3-1.5 M msg/s. Compare with --benchmark_repetitions: a shared VM
// varies several-fold from run to run.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "coremq/broker.h"
#include "coremq/local_client.h"

namespace coremq {
namespace {

constexpr int64_t kMessagesPerIteration = 20000;
constexpr auto kWaitMax = std::chrono::seconds(30);
constexpr int64_t kRetriesMax = 100'000'000;

// A started broker for one benchmark function; stopped and waited for at the end.
struct RunningBroker {
  explicit RunningBroker(uint32_t threads) {
    Options options;
    options.bind_address = "127.0.0.1";
    options.port = 0;
    options.threads = threads;
    options.pin_threads = false;
    options.log_level = "error";
    options.ring_entries = 256;
    options.receive_buffer_count = 64;
    broker = std::make_unique<Broker>(options);
    started = broker->start(&error);
  }
  std::unique_ptr<LocalClient> client(const std::string& id, bool inline_callbacks = false) {
    LocalClientOptions options;
    options.client_id = id;
    options.inline_callbacks = inline_callbacks;
    options.receive_maximum = 65535;
    std::string ignored;
    return broker->connect_local(options, &ignored);
  }
  std::unique_ptr<Broker> broker;
  bool started = false;
  std::string error;
};

// Publishes `count` QoS 0 messages, retrying on kIntakeFull; false on any other refusal.
bool publish_qos0(LocalClient& client, const std::string& topic, int64_t count, int64_t* retries) {
  static const MessageProperties kNoProperties;
  for (int64_t i = 0; i < count; ++i) {
    for (;;) {
      LocalStatus status = client.publish(topic, "21.5", 0, false, kNoProperties, nullptr);
      if (status == LocalStatus::kOk) break;
      // A shard that stopped draining would make this spin: bounded, then a failure.
      if (status != LocalStatus::kIntakeFull || ++*retries > kRetriesMax) return false;
      std::this_thread::yield();
    }
  }
  return true;
}

void LocalPublishQos0(benchmark::State& state) {
  RunningBroker running(1);
  if (!running.started) {
    state.SkipWithError(running.error.c_str());
    return;
  }
  auto threads = static_cast<int>(state.range(0));
  std::vector<std::unique_ptr<LocalClient>> clients;
  for (int t = 0; t < threads; ++t) clients.push_back(running.client("bench-qos0-" + std::to_string(t)));
  int64_t per_thread = kMessagesPerIteration / threads;
  std::atomic<int64_t> retries{0};
  std::atomic<bool> failed{false};
  for (auto _ : state) {
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        int64_t own_retries = 0;
        if (!publish_qos0(*clients[t], "bench/nobody", per_thread, &own_retries)) failed = true;
        retries += own_retries;
      });
    }
    for (auto& worker : workers) worker.join();
  }
  if (failed) state.SkipWithError("a publish was refused");
  state.SetItemsProcessed(state.iterations() * per_thread * threads);
  state.counters["intake_full_retries"] = static_cast<double>(retries.load());
}
BENCHMARK(LocalPublishQos0)->Arg(1)->Arg(4)->UseRealTime()->Unit(benchmark::kMillisecond);

void LocalPublishQos1(benchmark::State& state) {
  RunningBroker running(1);
  if (!running.started) {
    state.SkipWithError(running.error.c_str());
    return;
  }
  auto client = running.client("bench-qos1");
  const int64_t window = state.range(0);
  std::atomic<int64_t> completed{0};
  std::atomic<bool> failed{false};
  ResultCallback on_complete = [&](OperationResult result) {
    if (!result.ok()) failed = true;
    completed.fetch_add(1, std::memory_order_release);
  };
  static const MessageProperties kNoProperties;
  int64_t sent = 0;
  for (auto _ : state) {
    int64_t target = sent + kMessagesPerIteration;
    auto give_up = std::chrono::steady_clock::now() + kWaitMax;
    while (sent < target && std::chrono::steady_clock::now() < give_up) {
      if (sent - completed.load(std::memory_order_acquire) >= window) {
        std::this_thread::yield();
        continue;
      }
      LocalStatus status = client->publish("bench/nobody", "21.5", 1, false, kNoProperties, on_complete);
      if (status == LocalStatus::kOk) {
        ++sent;
      } else if (status == LocalStatus::kIntakeFull || status == LocalStatus::kTooManyInFlight) {
        std::this_thread::yield();
      } else {
        failed = true;
        break;
      }
    }
    if (sent < target) failed = true;  // kWaitMax passed
    auto deadline = std::chrono::steady_clock::now() + kWaitMax;
    while (completed.load(std::memory_order_acquire) < sent && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    if (failed || completed.load() < sent) break;
  }
  if (failed || completed.load() < sent)
    state.SkipWithError("a QoS 1 publish failed or was never acknowledged");
  state.SetItemsProcessed(sent);
}
BENCHMARK(LocalPublishQos1)->Arg(16)->Arg(256)->UseRealTime()->Unit(benchmark::kMillisecond);

void LocalDeliveryQos0(benchmark::State& state) {
  RunningBroker running(1);
  if (!running.started) {
    state.SkipWithError(running.error.c_str());
    return;
  }
  auto subscriber = running.client("bench-sub", state.range(0) != 0);
  auto publisher = running.client("bench-pub");
  std::atomic<int64_t> delivered{0};
  SubscribeOptions options;
  if (!subscriber
           ->subscribe("bench/delivery", options,
                       [&](const ReceivedMessage&) { delivered.fetch_add(1, std::memory_order_relaxed); })
           .get()
           .ok()) {
    state.SkipWithError("subscribe failed");
    return;
  }
  int64_t sent = 0;
  int64_t retries = 0;
  for (auto _ : state) {
    // In slices the subscriber's output bound (max_client_output_bytes) never drops.
    for (int64_t slice = 0; slice < kMessagesPerIteration; slice += 1000) {
      if (!publish_qos0(*publisher, "bench/delivery", 1000, &retries)) break;
      sent += 1000;
      auto deadline = std::chrono::steady_clock::now() + kWaitMax;
      while (delivered.load(std::memory_order_relaxed) < sent &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
      }
    }
  }
  if (delivered.load() < sent) state.SkipWithError("messages were lost");
  state.SetItemsProcessed(delivered.load());
}
BENCHMARK(LocalDeliveryQos0)->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace coremq
