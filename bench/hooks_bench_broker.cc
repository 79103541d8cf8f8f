// An embedded broker for scripts/bench-hooks: the cost of an installed no-op message
// interceptor and no-op event hook on the pairs benchmark. Starts coremq::Broker in this
// process (one shard, loopback, the port given or a free one) with the hooks named by the
// first argument (none, interceptor, events, both), prints "port N" and serves until stdin
// closes, so mqtt-bench (another process) measures it with --broker-pid this process.
// Expected: the hooks add a few tens of nanoseconds per message, within the run-to-run noise
// of a loaded 2-CPU machine.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "coremq/broker.h"
#include "coremq/events.h"
#include "coremq/interception.h"

namespace {

class NoOpInterceptor : public coremq::MessageInterceptor {
 public:
  coremq::InterceptionVerdict on_publish(const coremq::InterceptedMessage&, coremq::MessageRewrite&,
                                         coremq::HookDeferral&) override {
    return coremq::InterceptionVerdict::pass();
  }
};

// Overrides every event, so each one costs its virtual call (the defaults would too).
class NoOpEvents : public coremq::EventHook {
 public:
  void on_client_connected(const coremq::ClientConnectedEvent&) override {}
  void on_client_disconnected(const coremq::ClientDisconnectedEvent&) override {}
  void on_subscription_added(const coremq::SubscriptionEvent&) override {}
  void on_subscription_removed(const coremq::SubscriptionEvent&) override {}
  void on_message_dropped(const coremq::MessageDroppedEvent&) override {}
};

}  // namespace

int main(int argc, char** argv) {
  std::string variant = argc > 1 ? argv[1] : "none";
  coremq::Options options;
  options.bind_address = "127.0.0.1";
  options.port = argc > 2 ? static_cast<uint16_t>(std::stoi(argv[2])) : 0;
  options.threads = 1;
  options.pin_threads = false;
  options.log_level = "warning";
  if (variant == "interceptor" || variant == "both") options.message_interceptor = std::make_shared<NoOpInterceptor>();
  if (variant == "events" || variant == "both") options.event_hook = std::make_shared<NoOpEvents>();
  if (variant != "none" && !options.message_interceptor && !options.event_hook) {
    std::fprintf(stderr, "usage: hooks_bench_broker none|interceptor|events|both [port]\n");
    return 2;
  }
  coremq::Broker broker(options);
  std::string error;
  if (!broker.start(&error)) {
    std::fprintf(stderr, "cannot start: %s\n", error.c_str());
    return 1;
  }
  std::printf("port %u\n", broker.port());
  std::fflush(stdout);
  char buffer[64];
  while (::read(0, buffer, sizeof(buffer)) > 0) {
  }
  broker.stop();
  broker.wait();
  return 0;
}
