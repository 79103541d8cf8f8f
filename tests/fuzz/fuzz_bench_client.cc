// libFuzzer target for mqtt-bench's MQTT client state machine (tools/mqtt-bench/client.cc):
// what a broker sends one client after its CONNECT, under MQTT 3.1.1 or 5 — CONNACK with its
// properties (Receive Maximum, Topic Alias Maximum) and reason codes, SUBACK, PUBLISH in every
// QoS, the acknowledgements, a broker's DISCONNECT with its reason code. Built with ASan + UBSan
// (tests/fuzz/meson.build); a crash, a sanitizer report or a failed COREMQ_ASSERT is a bug.
//
// Input: byte 0 picks the set-up (bit 0: MQTT 5, else 3.1.1; bit 1: a publisher, else a
// subscriber; bit 2: --topic-alias; bits 3-4: QoS, 3 read as 2); byte 1 is the piece size
// (1-64) for the split run; the rest is what the broker sent.
//
// Oracles beyond "no crash":
//   - a subscriber (which only answers, so its output depends on the bytes alone) ends in the
//     same state, with the same error, the same answers staged and the same counts whether the
//     bytes come whole or in pieces;
//   - a publisher never has more in flight than the window, nor more acknowledged than sent;
//   - a failed client stays failed and consumes nothing more.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "../../tools/mqtt-bench/client.h"
#include "../../tools/mqtt-bench/shared_state.h"
#include "base/assert.h"

namespace {

using coremq::bench::Client;
using coremq::bench::ClientSpec;
using coremq::bench::ClientState;
using coremq::bench::Options;
using coremq::bench::Plan;
using coremq::bench::Role;
using coremq::bench::SharedState;
using coremq::bench::WorkerContext;
using coremq::bench::WorkerResult;

constexpr uint32_t kWindow = 8;
constexpr uint32_t kPublishesPerPiece = 3;

struct Outcome {
  ClientState state = ClientState::kNotStarted;
  std::string error;
  std::vector<uint8_t> staged;
  uint64_t received = 0;
  uint64_t subscribed = 0;
  uint64_t connections_up = 0;
};

Outcome run(const Options& options, const ClientSpec& spec, std::span<const uint8_t> bytes, size_t piece) {
  Plan plan;
  plan.publishers = spec.role == Role::kPublisher ? 1 : 0;
  plan.subscribers = spec.role == Role::kSubscriber ? 1 : 0;
  SharedState shared(1, 1);
  shared.run_id = 7;
  WorkerResult result;
  WorkerContext context;
  context.options = &options;
  context.plan = &plan;
  context.shared = &shared;
  context.counters = &shared.counters[0];
  context.result = &result;
  context.measure_start_ns = 0;
  context.measure_end_ns = std::numeric_limits<int64_t>::max();
  Client client(spec, context);
  client.on_connecting();
  client.on_connected();
  Outcome outcome;
  auto keep_staged = [&] {
    outcome.staged.insert(outcome.staged.end(), client.staging.data(), client.staging.data() + client.staging.size());
    client.staging.clear();
  };
  keep_staged();
  for (size_t offset = 0; offset < bytes.size(); offset += piece) {
    std::span<const uint8_t> part = bytes.subspan(offset, std::min(piece, bytes.size() - offset));
    bool failed_before = client.state() == ClientState::kFailed;
    bool ok = client.on_bytes(part, 1'000'000);
    COREMQ_ASSERT(ok || client.state() == ClientState::kFailed);
    COREMQ_ASSERT(!failed_before || client.state() == ClientState::kFailed);
    if (client.is_publisher()) {
      client.publish(kPublishesPerPiece);
      COREMQ_ASSERT(client.inflight() <= kWindow);
      COREMQ_ASSERT(result.acknowledged <= result.sent);
      client.staging.clear();  // the payloads carry the clock: not compared
    } else {
      keep_staged();
    }
  }
  outcome.state = client.state();
  outcome.error = client.error();
  outcome.received = result.received;
  outcome.subscribed = result.subscribed;
  outcome.connections_up = result.connections_up;
  return outcome;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Options options;
  options.protocol_level = (data[0] & 1) ? 5 : 4;
  bool publisher = (data[0] & 2) != 0;
  options.topic_alias = (data[0] & 4) != 0 && options.protocol_level == 5;
  options.qos = static_cast<uint8_t>(std::min((data[0] >> 3) & 3, 2));
  options.window = kWindow;
  options.publishers = publisher ? 1 : 0;
  options.publishers_total = options.publishers;
  options.subscribers = publisher ? 0 : 1;
  if (options.protocol_level == 5) options.user_properties.emplace_back("k", "v");
  ClientSpec spec;
  spec.role = publisher ? Role::kPublisher : Role::kSubscriber;
  spec.client_id = "fuzz";
  spec.topic = publisher ? "bench/0" : "bench/+";
  size_t piece = 1 + data[1] % 64;
  std::span<const uint8_t> bytes(data + 2, size - 2);

  Outcome whole = run(options, spec, bytes, bytes.empty() ? 1 : bytes.size());
  Outcome split = run(options, spec, bytes, piece);
  if (!publisher) {
    COREMQ_ASSERT(whole.state == split.state);
    COREMQ_ASSERT(whole.error == split.error);
    COREMQ_ASSERT(whole.staged == split.staged);
    COREMQ_ASSERT(whole.received == split.received && whole.subscribed == split.subscribed);
    COREMQ_ASSERT(whole.connections_up == split.connections_up);
  }
  return 0;
}
