// gateway: a host program that runs coremq inside itself and takes part in the traffic as an
// in-process client (docs/EMBEDDING.md, "In-process clients"). Devices connect over TCP and
// publish temperatures on sensors/<room>/temperature; the gateway subscribes to
// sensors/+/temperature in process, and for every reading above a threshold publishes an
// alert on alerts/<room>/temperature (QoS 1, with a user property naming the threshold),
// which any device subscribed to alerts/# receives. Two hooks guard it:
// - an authorization hook: only the gateway itself (an in-process client) may publish on
//   alerts/#, so a device cannot forge an alert (its PUBLISH is dropped, MQTT 5: 0x87);
// - a message interceptor: readings on sensors/... are normalised before anyone sees them
//   ("35.5C" and " 35.5 " become "35.5"), and a reading that is not a number is dropped
//   (MQTT 5 publishers get 0x99 Payload format invalid) and counted.
// Both run on the broker's shard threads, so they only look at their arguments and an atomic
// counter: nothing there blocks. Built against the installed library:
//
//   c++ -std=c++20 gateway.cc $(pkg-config --cflags --libs coremq)
//
// Usage: gateway PORT [THRESHOLD]
//   PORT       TCP port on 127.0.0.1; 0 asks the kernel for a free one.
//   THRESHOLD  degrees above which a reading raises an alert; 30 by default.
// Prints "listening on 127.0.0.1:PORT" once devices can connect and "alert: ROOM VALUE" for
// each alert it publishes; on SIGINT or SIGTERM prints "dropped N invalid readings", stops
// cleanly and exits 0.
// tests/install/run drives it with mosquitto_pub and mosquitto_sub.
//
// Threads: main() is the controlling thread (start, connect_local, sigwait, stop); the
// subscription's callback runs on the broker's delivery thread, and publishes from there
// (publishing never blocks: it returns a status, or a future the callback does not wait for).
#include <signal.h>

#include <coremq/authorization.h>
#include <coremq/broker.h>
#include <coremq/interception.h>
#include <coremq/local_client.h>
#include <coremq/options.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace {

bool parse_port(std::string_view text, uint16_t* port) {
  unsigned value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value > 65535) return false;
  *port = static_cast<uint16_t>(value);
  return true;
}

bool parse_number(std::string_view text, double* value) {
  std::string copy(text);  // strtod needs a terminated string; payloads are short
  char* end = nullptr;
  *value = std::strtod(copy.c_str(), &end);
  return !copy.empty() && end == copy.c_str() + copy.size();
}

// "sensors/<room>/temperature" -> "<room>".
std::string_view room_of(std::string_view topic) {
  std::string_view rest = topic.substr(topic.find('/') + 1);
  return rest.substr(0, rest.find('/'));
}

// Devices may publish anything but alerts; the gateway (in process) publishes those.
class AlertsOnlyFromTheGateway : public coremq::AuthorizationHook {
 public:
  bool allow_publish(const coremq::ClientIdentity& client, std::string_view topic, uint8_t, bool) override {
    return client.in_process || topic.substr(0, 7) != "alerts/";
  }
  bool allow_subscribe(const coremq::ClientIdentity&, std::string_view, uint8_t) override { return true; }
  bool allow_receive(const coremq::ClientIdentity&, std::string_view) override { return true; }
};

// Readings as numbers only: surrounding blanks and a trailing unit ("C") are cut off (a
// rewrite of the payload), anything else that is not a number is dropped.
class NormaliseReadings : public coremq::MessageInterceptor {
 public:
  coremq::InterceptionVerdict on_publish(const coremq::InterceptedMessage& message, coremq::MessageRewrite& rewrite,
                                         coremq::HookDeferral&) override {
    if (message.topic.substr(0, 8) != "sensors/") return coremq::InterceptionVerdict::pass();
    std::string_view text = message.payload;
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == 'C')) text.remove_suffix(1);
    double value = 0;
    if (!parse_number(text, &value)) {
      dropped.fetch_add(1, std::memory_order_relaxed);
      return coremq::InterceptionVerdict::drop(0x99);  // Payload format invalid
    }
    if (text.size() != message.payload.size()) rewrite.payload = std::string(text);
    return coremq::InterceptionVerdict::pass();
  }
  std::atomic<uint64_t> dropped{0};
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s PORT [THRESHOLD]\n", argv[0]);
    return 2;
  }
  coremq::Options options;
  double threshold = 30;
  if (!parse_port(argv[1], &options.port) || (argc == 3 && !parse_number(argv[2], &threshold))) {
    std::fprintf(stderr, "gateway: bad arguments (PORT is 0 to 65535, THRESHOLD a number)\n");
    return 2;
  }
  options.bind_address = "127.0.0.1";
  options.threads = 2;
  options.pin_threads = false;
  options.authorization_hook = std::make_shared<AlertsOnlyFromTheGateway>();
  auto interceptor = std::make_shared<NormaliseReadings>();
  options.message_interceptor = interceptor;

  // Signals go to sigwait() below, never to a broker thread: block them before start().
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  coremq::Broker broker(options);
  std::string error;
  if (!broker.start(&error)) {
    std::fprintf(stderr, "gateway: cannot start the broker: %s\n", error.c_str());
    return 1;
  }
  coremq::LocalClientOptions client_options;
  client_options.client_id = "gateway";
  std::unique_ptr<coremq::LocalClient> gateway = broker.connect_local(client_options, &error);
  if (gateway == nullptr) {
    std::fprintf(stderr, "gateway: cannot connect in process: %s\n", error.c_str());
    return 1;
  }
  coremq::LocalClient* client = gateway.get();
  coremq::SubscribeOptions subscribe_options;
  subscribe_options.qos = 1;
  coremq::MessageProperties alert_properties;
  alert_properties.content_type = "text/plain";
  alert_properties.user_properties.push_back({"threshold", std::to_string(threshold)});
  auto on_reading = [client, threshold, alert_properties](const coremq::ReceivedMessage& message) {
    double value = 0;
    if (!parse_number(message.payload, &value) || value <= threshold) return;
    std::string room(room_of(message.topic));
    std::string alert = "high: " + std::string(message.payload);
    // The callback form: nothing to wait for here, and a full intake is reported at once.
    coremq::LocalStatus status =
        client->publish("alerts/" + room + "/temperature", alert, 1, false, alert_properties, nullptr);
    if (status != coremq::LocalStatus::kOk) {
      std::fprintf(stderr, "gateway: alert for %s not sent: %s\n", room.c_str(),
                   coremq::local_status_name(status));
      return;
    }
    std::printf("alert: %s %s\n", room.c_str(), std::string(message.payload).c_str());
    std::fflush(stdout);
  };
  coremq::OperationResult subscribed =
      client->subscribe("sensors/+/temperature", subscribe_options, on_reading).get();
  if (!subscribed.ok()) {
    std::fprintf(stderr, "gateway: subscribe refused: %s, reason 0x%02x\n",
                 coremq::local_status_name(subscribed.status), subscribed.reason_code);
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u with %u shards\n", broker.port(), broker.shard_count());
  std::fflush(stdout);

  int received = 0;
  const char* reason = sigwait(&signals, &received) != 0 ? "sigwait failed"
                       : received == SIGINT              ? "SIGINT"
                                                         : "SIGTERM";
  std::printf("%s: stopping\n", reason);
  std::fflush(stdout);
  std::printf("dropped %llu invalid readings\n",
              static_cast<unsigned long long>(interceptor->dropped.load(std::memory_order_relaxed)));
  gateway.reset();  // disconnects; no callback runs after this
  broker.stop();
  broker.wait();
  std::printf("stopped\n");
  return 0;
}
