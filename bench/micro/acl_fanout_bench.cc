// What an ACL file costs on fan-out, measured in the broker's own delivery path: one QoS 0
// PUBLISH of 64 bytes from one client, delivered by a ShardState (over a do-nothing IoPort) to
// 1000 subscribers of '#' on the same shard, per iteration; items are deliveries. No socket is
// involved, so this is the protocol side's share only (a real delivery also costs its part of a
// send(2) and the kernel's TCP work, several times more).
//
// BM_AclFanOut/0: no ACL file (each delivery tests a null pointer). Expected: ~50-150 ns per
//   delivery (topic tree match once, then encoding into each subscriber's output buffer).
// BM_AclFanOut/1: every client compiled from a 6-rule fleet-style file at CONNECT; each delivery
//   checks the subscriber's read access (user deny, two grants skipped or missed, the matching
//   grant). Expected: the /0 figure plus the ~40 ns of BM_AclCanReceiveAllowed (acl_bench.cc).
// BM_AclFanOut/2: as /1 but on a topic the clients may write and not read (telemetry/#): the
//   message is matched and every delivery refused, so this is the check alone plus the match.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "auth/acl_file.h"
#include "base/byte_buffer.h"
#include "base/log.h"
#include "broker/listener_security.h"
#include "broker/shard_state.h"
#include "shard_state_bench.h"
#include "mqtt/encoder.h"

namespace coremq::broker {
namespace {

using bench::bytes_of;
using bench::feed;
using bench::NullIo;

constexpr std::string_view kFleetAcl =
    "topic deny bench/secret/#\n"
    "topic read public/#\n"
    "topic write telemetry/#\n"
    "topic readwrite bench/#\n"
    "pattern readwrite devices/%c/#\n"
    "pattern deny devices/%c/locked/#\n";

void BM_AclFanOut(benchmark::State& bench) {
  constexpr int kSubscribers = 1000;
  base::set_log_level(base::LogLevel::kWarning);
  Options options;
  NullIo io;
  ShardState state(0, 1, options, io);
  if (bench.range(0) != 0) {
    std::string error;
    state.set_listener_security({ListenerSecurity{auth::AclFile::parse(kFleetAcl, "bench", &error)}});
  }
  std::vector<std::unique_ptr<Connection>> connections;
  auto connect = [&](const std::string& client_id) { return bench::connect_client(state, connections, client_id); };
  mqtt::SubscribeTopic topic;
  topic.filter = "#";
  std::string subscribe = bytes_of([&](base::ByteBuffer& out) { mqtt::encode_subscribe(out, 1, {&topic, 1}); });
  std::vector<Connection*> subscribers;
  for (int i = 0; i < kSubscribers; ++i) {
    subscribers.push_back(connect("sub-" + std::to_string(i)));
    feed(state, subscribers.back(), subscribe);
    subscribers.back()->output.clear();
  }
  Connection* publisher = connect("publisher");
  mqtt::PublishPacket publish;
  publish.topic = bench.range(0) == 2 ? "telemetry/fan-out" : "bench/fan-out";
  std::string payload(64 - 2 - 2 - publish.topic.size(), 'x');
  publish.payload = payload;
  std::string packet = bytes_of([&](base::ByteBuffer& out) { mqtt::encode_publish(out, publish); });
  for (auto _ : bench) {
    feed(state, publisher, packet);
    for (Connection* subscriber : subscribers) subscriber->output.clear();
  }
  bench.SetItemsProcessed(static_cast<int64_t>(bench.iterations()) * kSubscribers);
  if (bench.range(0) == 2 && state.counters().acl_deliveries_denied == 0) bench.SkipWithError("nothing refused");
  if (bench.range(0) != 2 && state.counters().messages_delivered == 0) bench.SkipWithError("nothing delivered");
  state.on_shutdown();
}

BENCHMARK(BM_AclFanOut)->Arg(0)->Arg(1)->Arg(2);

}  // namespace
}  // namespace coremq::broker
