// TopicTree::match, the lookup every PUBLISH does on its shard.
//
// Filters look like an IoT deployment: "tenant<t>/device<d>/sensor<s>", 10 devices per
// tenant and 10 sensors per device, with 1k or 100k filters. In the wildcard mix a share of
// them becomes "tenant<t>/+/sensor<s>" or "tenant<t>/device<d>/#". Topics are drawn from the
// same space, so each matches about one filter (a few more in the wildcard mix); the visitor
// only counts. Reported: time per match() and matches per call.
//
// Expected magnitude: three levels cost three string_view hash lookups, so some tens of ns
// per match at 1k filters (everything in L1/L2; ~35 ns on a 2020s x86 core) and up to a
// hundred or two at 100k, where the tenant level's map and the nodes fall out of cache
// (~80 ns). The wildcard mix adds a second walk down the '+' branch and a second visit
// (~1.5-2x). A miss stops at the first absent level (~35 ns). Nothing allocates inside
// the timed loop.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "topic/topic_tree.h"

namespace coremq::topic {
namespace {

using Tree = TopicTree<uint32_t, uint8_t>;

constexpr int kDevicesPerTenant = 10;
constexpr int kSensorsPerDevice = 10;

std::string exact_name(int tenant, int device, int sensor) {
  return "tenant" + std::to_string(tenant) + "/device" + std::to_string(device) + "/sensor" + std::to_string(sensor);
}

void build_tree(Tree& tree, int filters, int wildcard_percent, std::mt19937& rng) {
  std::uniform_int_distribution<int> percent(0, 99);
  int tenants = filters / (kDevicesPerTenant * kSensorsPerDevice);
  uint32_t subscriber = 0;
  for (int tenant = 0; tenant < tenants; tenant++) {
    for (int device = 0; device < kDevicesPerTenant; device++) {
      for (int sensor = 0; sensor < kSensorsPerDevice; sensor++) {
        std::string filter;
        if (percent(rng) >= wildcard_percent) {
          filter = exact_name(tenant, device, sensor);
        } else if (percent(rng) < 50) {
          filter = "tenant" + std::to_string(tenant) + "/+/sensor" + std::to_string(sensor);
        } else {
          filter = "tenant" + std::to_string(tenant) + "/device" + std::to_string(device) + "/#";
        }
        tree.insert(filter, subscriber++, 1);
      }
    }
  }
}

// Args: number of filters, percentage of them with a wildcard.
void BM_TopicMatch(benchmark::State& state) {
  const int filters = static_cast<int>(state.range(0));
  const int wildcard_percent = static_cast<int>(state.range(1));
  std::mt19937 rng(42);
  Tree tree;
  build_tree(tree, filters, wildcard_percent, rng);

  // A fixed ring of topics, shuffled, so the loop does not hit the same node every time.
  const int tenants = filters / (kDevicesPerTenant * kSensorsPerDevice);
  std::uniform_int_distribution<int> tenant_of(0, tenants - 1);
  std::uniform_int_distribution<int> device_of(0, kDevicesPerTenant - 1);
  std::uniform_int_distribution<int> sensor_of(0, kSensorsPerDevice - 1);
  std::vector<std::string> topics;
  for (int i = 0; i < 4096; i++) topics.push_back(exact_name(tenant_of(rng), device_of(rng), sensor_of(rng)));

  size_t next = 0;
  uint64_t visits = 0;
  for (auto _ : state) {
    tree.match(topics[next], [&visits](uint32_t, uint8_t) { visits++; });
    next = (next + 1) & (topics.size() - 1);
  }
  benchmark::DoNotOptimize(visits);
  state.SetItemsProcessed(state.iterations());
  state.counters["matches_per_call"] =
      benchmark::Counter(static_cast<double>(visits) / static_cast<double>(state.iterations()));
  state.counters["filters"] = static_cast<double>(tree.filter_count());
}
BENCHMARK(BM_TopicMatch)
    ->ArgNames({"filters", "wildcard_percent"})
    ->Args({1000, 0})
    ->Args({1000, 10})
    ->Args({100000, 0})
    ->Args({100000, 10});

// A topic nobody subscribed to: the cost of routing a PUBLISH that goes nowhere.
void BM_TopicMatchMiss(benchmark::State& state) {
  std::mt19937 rng(42);
  Tree tree;
  build_tree(tree, static_cast<int>(state.range(0)), 10, rng);
  const std::string topic = "tenant5/device3/unknown";
  uint64_t visits = 0;
  for (auto _ : state) tree.match(topic, [&visits](uint32_t, uint8_t) { visits++; });
  benchmark::DoNotOptimize(visits);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TopicMatchMiss)->ArgName("filters")->Arg(1000)->Arg(100000);

}  // namespace
}  // namespace coremq::topic
