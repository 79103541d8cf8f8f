// What forwarding a message to another shard costs the broker's own code: one QoS 0 PUBLISH of
// 64 bytes from a client on shard 0 to its one subscriber on shard 1, per iteration: decode,
// route (shard 0's routing view names shard 1), stage the forward, then shard 1 matches its
// topic tree and delivers. The same work with both clients on one shard is BM_PairOnOneShard,
// so the difference is the cross-shard path per forwarded message (the SPSC ring's push and
// pop, batched in the real loop, are BM_SpscBatched; the wake-ups are not here).
//
// Expected: BM_PairOnOneShard ~100-300 ns; BM_PairAcrossShards that plus ~50-150 ns.
#include <benchmark/benchmark.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "base/byte_buffer.h"
#include "base/log.h"
#include "broker/cross_shard.h"
#include "broker/shard_state.h"
#include "mqtt/encoder.h"
#include "shard_state_bench.h"

namespace coremq::broker {
namespace {

using bench::bytes_of;
using bench::feed;

// An IoPort whose posts wait in a queue until the benchmark hands them to their shard.
class QueueingIo final : public IoPort {
 public:
  struct Post {
    uint32_t target;
    CrossShardItem item;
  };
  void request_flush(Connection*) override {}
  void close_connection(Connection*, bool) override {}
  void hand_off_connection(Connection*, uint32_t) override {}
  void resume_input(Connection*) override {}
  void post(uint32_t target, CrossShardItem item) override { posts.push_back(Post{target, item}); }
  int64_t now_ms() const override { return 1; }
  bool check_password(uint64_t, uint8_t, std::string_view, bool, std::string_view) override { return false; }

  std::deque<Post> posts;
};

// A client id owned by `shard` of `shard_count`.
std::string client_on(uint32_t shard, uint32_t shard_count, const std::string& prefix) {
  for (int i = 0;; ++i) {
    std::string id = prefix + std::to_string(i);
    if (owner_shard_of(id, shard_count) == shard) return id;
  }
}

void run_pair(benchmark::State& bench, uint32_t subscriber_shard) {
  base::set_log_level(base::LogLevel::kWarning);
  Options options;
  constexpr uint32_t kShards = 2;
  QueueingIo ios[kShards];
  std::unique_ptr<ShardState> states[kShards];
  for (uint32_t shard = 0; shard < kShards; ++shard) {
    states[shard] = std::make_unique<ShardState>(shard, kShards, options, ios[shard]);
  }
  // Hands every post to its target until none is left (barrier requests answer with acks).
  auto pump = [&] {
    for (bool moved = true; moved;) {
      moved = false;
      for (uint32_t shard = 0; shard < kShards; ++shard) {
        while (!ios[shard].posts.empty()) {
          QueueingIo::Post post = ios[shard].posts.front();
          ios[shard].posts.pop_front();
          states[post.target]->on_cross_shard(post.item);
          moved = true;
        }
      }
    }
  };
  std::vector<std::unique_ptr<Connection>> connections;
  Connection* subscriber = bench::connect_client(*states[subscriber_shard], connections,
                                                 client_on(subscriber_shard, kShards, "subscriber-"));
  mqtt::SubscribeTopic topic;
  topic.filter = "bench/pair/1";
  feed(*states[subscriber_shard], subscriber,
       bytes_of([&](base::ByteBuffer& out) { mqtt::encode_subscribe(out, 1, {&topic, 1}); }));
  pump();
  subscriber->output.clear();
  Connection* publisher = bench::connect_client(*states[0], connections, client_on(0, kShards, "publisher-"));
  pump();
  std::string packet = bench::publish_64_bytes("bench/pair/1");
  for (auto _ : bench) {
    feed(*states[0], publisher, packet);
    pump();
    subscriber->output.clear();
  }
  bench.SetItemsProcessed(static_cast<int64_t>(bench.iterations()));
  if (states[subscriber_shard]->counters().messages_delivered < static_cast<uint64_t>(bench.iterations())) {
    bench.SkipWithError("not every message was delivered");
  }
  for (auto& state : states) state->on_shutdown();
  pump();
  for (auto& io : ios) {
    for (QueueingIo::Post& post : io.posts) release_cross_shard_item(post.item);
  }
}

void BM_PairOnOneShard(benchmark::State& bench) { run_pair(bench, 0); }
void BM_PairAcrossShards(benchmark::State& bench) { run_pair(bench, 1); }

BENCHMARK(BM_PairOnOneShard);
BENCHMARK(BM_PairAcrossShards);

}  // namespace
}  // namespace coremq::broker
