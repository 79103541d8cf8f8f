// What an installed no-op message interceptor and no-op event hook cost per message, measured
// in the broker's own publish path: one QoS 0 PUBLISH of 64 bytes from one client, decoded,
// routed and delivered by a ShardState (over a do-nothing IoPort) to one subscriber on the
// same shard, per iteration (the pairs benchmark's unit of work, without the sockets).
//
// BM_HooksPublish/0: no hook (each site tests a null pointer). Expected: ~100-300 ns of CPU.
// BM_HooksPublish/1: a no-op interceptor: the InterceptedMessage is filled and one virtual call
//   made. Expected: the /0 figure plus ~10-30 ns.
// BM_HooksPublish/2: a no-op event hook: nothing is reported on this path (no drop), so the
//   /0 figure. BM_HooksPublish/3: both.
// BM_HooksPublish/4: a no-op interceptor that rewrites the payload (same length): the rewrite's
//   copy and validation. Expected: /1 plus ~20-50 ns.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "base/byte_buffer.h"
#include "base/log.h"
#include "broker/shard_state.h"
#include "shard_state_bench.h"
#include "mqtt/encoder.h"

namespace coremq::broker {
namespace {

using bench::bytes_of;
using bench::feed;
using bench::NullIo;

class NoOpInterceptor final : public MessageInterceptor {
 public:
  explicit NoOpInterceptor(bool rewrite) : rewrite_(rewrite) {}
  InterceptionVerdict on_publish(const InterceptedMessage& message, MessageRewrite& rewrite,
                                 HookDeferral&) override {
    if (rewrite_) rewrite.payload = message.payload;
    return InterceptionVerdict::pass();
  }

 private:
  bool rewrite_;
};

class NoOpEvents final : public EventHook {
 public:
  void on_client_connected(const ClientConnectedEvent&) override {}
  void on_client_disconnected(const ClientDisconnectedEvent&) override {}
  void on_subscription_added(const SubscriptionEvent&) override {}
  void on_subscription_removed(const SubscriptionEvent&) override {}
  void on_message_dropped(const MessageDroppedEvent&) override {}
};

void BM_HooksPublish(benchmark::State& bench) {
  base::set_log_level(base::LogLevel::kWarning);
  Options options;
  int64_t variant = bench.range(0);
  if (variant == 1 || variant == 3) options.message_interceptor = std::make_shared<NoOpInterceptor>(false);
  if (variant == 4) options.message_interceptor = std::make_shared<NoOpInterceptor>(true);
  if (variant == 2 || variant == 3) options.event_hook = std::make_shared<NoOpEvents>();
  NullIo io;
  ShardState state(0, 1, options, io);
  std::vector<std::unique_ptr<Connection>> connections;
  auto connect = [&](const std::string& client_id) { return bench::connect_client(state, connections, client_id); };
  Connection* subscriber = connect("subscriber");
  mqtt::SubscribeTopic topic;
  topic.filter = "bench/pair/1";
  feed(state, subscriber, bytes_of([&](base::ByteBuffer& out) { mqtt::encode_subscribe(out, 1, {&topic, 1}); }));
  subscriber->output.clear();
  Connection* publisher = connect("publisher");
  std::string packet = bench::publish_64_bytes("bench/pair/1");
  for (auto _ : bench) {
    feed(state, publisher, packet);
    subscriber->output.clear();
  }
  bench.SetItemsProcessed(static_cast<int64_t>(bench.iterations()));
  if (state.counters().messages_delivered < static_cast<uint64_t>(bench.iterations())) {
    bench.SkipWithError("not every message was delivered");
  }
  state.on_shutdown();
}

BENCHMARK(BM_HooksPublish)->Arg(0)->Arg(1)->Arg(2)->Arg(3)->Arg(4);

}  // namespace
}  // namespace coremq::broker
