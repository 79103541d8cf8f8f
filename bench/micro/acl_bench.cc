// Micro benchmarks of the ACL check on the delivery path (src/auth/acl_file.h): the cost each
// subscriber pays per message when its listener has an ACL file, on a fleet-style file (an
// anonymous section, 1000 users with 3 rules each, 3 patterns with %c/%u).
//
// BM_AclCanReceiveAllowed: a device's compiled rules (its 3 user rules, 3 substituted patterns)
//   asked about a topic its pattern grants ("devices/<id>/cmd/reboot"): the walk passes the user
//   deny, the user grants, the pattern deny, and matches at the first pattern grant. Expected:
//   ~20-60 ns (a handful of level compares per rule; no allocation, no map lookup).
// BM_AclCanReceiveDenied: another device's topic: every rule is tried and fails, usually at the
//   first or second level. Expected: of the same order as the allowed case.
// BM_AclCanReceiveDeepTopic: a 7-level topic granted by the last rule, the worst common case.
// BM_AclCompile: compiling a client's rules at CONNECT (user lookup, 3 substitutions): ~0.3-1 us,
//   paid once per connection, never per message.
#include <benchmark/benchmark.h>

#include <string>

#include "auth/acl_file.h"

namespace coremq::auth {
namespace {

std::shared_ptr<const AclFile> fleet_file() {
  std::string text = "topic read public/#\n";
  for (int i = 0; i < 1000; ++i) {
    text += "user device-" + std::to_string(i) + "\n";
    text += "topic read fleet/config/#\n";
    text += "topic write telemetry/device-" + std::to_string(i) + "/#\n";
    text += "topic deny fleet/config/secret/#\n";
  }
  text += "pattern readwrite devices/%c/#\n";
  text += "pattern read groups/%u/+/events\n";
  text += "pattern deny devices/%c/locked/#\n";
  std::string error;
  auto file = AclFile::parse(text, "bench", &error);
  if (file == nullptr) std::abort();
  return file;
}

void run(benchmark::State& state, std::string_view topic, bool expected) {
  auto file = fleet_file();
  CompiledAcl acl = file->compile("device-42", "device-42-client");
  if (acl.can_receive(topic) != expected) std::abort();
  for (auto _ : state) {
    benchmark::DoNotOptimize(acl.can_receive(topic));
  }
}

void BM_AclCanReceiveAllowed(benchmark::State& state) { run(state, "devices/device-42-client/cmd/reboot", true); }
void BM_AclCanReceiveDenied(benchmark::State& state) { run(state, "devices/device-7-client/cmd/reboot", false); }
void BM_AclCanReceiveDeepTopic(benchmark::State& state) {
  run(state, "groups/device-42/north/events", true);
}

void BM_AclCompile(benchmark::State& state) {
  auto file = fleet_file();
  for (auto _ : state) {
    CompiledAcl acl = file->compile("device-42", "device-42-client");
    benchmark::DoNotOptimize(acl.rule_count());
  }
}

BENCHMARK(BM_AclCanReceiveAllowed);
BENCHMARK(BM_AclCanReceiveDenied);
BENCHMARK(BM_AclCanReceiveDeepTopic);
BENCHMARK(BM_AclCompile);

}  // namespace
}  // namespace coremq::auth
