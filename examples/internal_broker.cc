// internal_broker: a host program that runs coremq inside itself (docs/EMBEDDING.md): it
// starts a coremq::Broker on the port given on its command line, lets MQTT clients (devices)
// connect over TCP, subscribes in process to sensors/#, and for every reading computes a
// command for that sensor's fan, published on commands/<sensor>/fan ("on" above SETPOINT,
// "off" otherwise; QoS 1), which the devices subscribed to commands/# receive. Runs until
// SIGINT or SIGTERM, then stops the broker cleanly and exits 0. Built against the installed
// library:
//
//   c++ -std=c++20 internal_broker.cc $(pkg-config --cflags --libs coremq)
//   c++ -std=c++20 -static internal_broker.cc $(pkg-config --static --cflags --libs coremq)
//
// Usage: internal_broker PORT [ADDRESS [SETPOINT]]
//   PORT      TCP port to listen on; 0 asks the kernel for a free one.
//   ADDRESS   numeric IPv4 or IPv6 address to listen on; 127.0.0.1 by default (use 0.0.0.0
//             to let devices on the network connect).
//   SETPOINT  the reading above which a fan is turned on; 25 by default.
// Prints "listening on ADDRESS:PORT" (the port actually bound) on stdout once clients can
// connect, and "command: SENSOR on|off" for each command. tests/install/run builds it and
// drives it with mosquitto_pub/mosquitto_sub as the devices.
//
// Threads: main() is the controlling thread (start, connect_local, wait) and takes the signals
// with sigwait(); the broker's shards run on threads of their own, and the subscription's
// callback runs on the broker's delivery thread, publishing from there without waiting.
#include <signal.h>

#include <coremq/broker.h>
#include <coremq/local_client.h>
#include <coremq/options.h>

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
  std::string copy(text);  // strtod needs a terminated string; readings are short
  char* end = nullptr;
  *value = std::strtod(copy.c_str(), &end);
  return !copy.empty() && end == copy.c_str() + copy.size();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: %s PORT [ADDRESS [SETPOINT]]\n", argv[0]);
    return 2;
  }
  double setpoint = 25;
  if (argc == 4 && !parse_number(argv[3], &setpoint)) {
    std::fprintf(stderr, "internal_broker: '%s' is not a number\n", argv[3]);
    return 2;
  }
  coremq::Options options;
  if (!parse_port(argv[1], &options.port)) {
    std::fprintf(stderr, "internal_broker: '%s' is not a port (0 to 65535)\n", argv[1]);
    return 2;
  }
  options.bind_address = argc >= 3 ? argv[2] : "127.0.0.1";
  // A host program shares its CPUs with its own work: two shards, not pinned, instead of the
  // binary's default of one pinned shard per CPU. Every other field keeps the default the
  // coremq binary's flag of the same name has (README.md, "Flags").
  options.threads = 2;
  options.pin_threads = false;

  // Signals are taken by sigwait() below, never by a shard thread: block them before start()
  // creates any thread, so that every shard inherits the mask. (The broker sends with
  // MSG_NOSIGNAL, so SIGPIPE needs no handling.)
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  coremq::Broker broker(options);
  std::string error;
  if (!broker.start(&error)) {
    // Nothing is running after a failed start(): report and leave.
    std::fprintf(stderr, "internal_broker: cannot start the broker: %s\n", error.c_str());
    return 1;
  }
  // The host's own MQTT session, inside the broker: it reads every reading and answers with a
  // command. The subscription is in place (SUBACK) before devices are told the port.
  coremq::LocalClientOptions client_options;
  client_options.client_id = "internal-broker-host";
  std::unique_ptr<coremq::LocalClient> host = broker.connect_local(client_options, &error);
  if (host == nullptr) {
    std::fprintf(stderr, "internal_broker: cannot connect in process: %s\n", error.c_str());
    return 1;
  }
  coremq::LocalClient* client = host.get();
  auto on_reading = [client, setpoint](const coremq::ReceivedMessage& message) {
    double value = 0;
    if (!parse_number(message.payload, &value)) return;  // not a reading: no command
    std::string sensor(message.topic.substr(message.topic.find('/') + 1));
    const char* command = value > setpoint ? "on" : "off";
    coremq::LocalStatus status =
        client->publish("commands/" + sensor + "/fan", command, 1, false, coremq::MessageProperties{}, nullptr);
    if (status != coremq::LocalStatus::kOk) {
      std::fprintf(stderr, "internal_broker: command for %s not sent: %s\n", sensor.c_str(),
                   coremq::local_status_name(status));
      return;
    }
    std::printf("command: %s %s\n", sensor.c_str(), command);
    std::fflush(stdout);
  };
  coremq::SubscribeOptions subscribe_options;
  subscribe_options.qos = 1;
  coremq::OperationResult subscribed = client->subscribe("sensors/#", subscribe_options, on_reading).get();
  if (!subscribed.ok()) {
    std::fprintf(stderr, "internal_broker: subscribe refused: %s, reason 0x%02x\n",
                 coremq::local_status_name(subscribed.status), subscribed.reason_code);
    return 1;
  }
  std::printf("listening on %s:%u with %u shards\n", options.bind_address.c_str(), broker.port(),
              broker.shard_count());
  std::fflush(stdout);

  int received = 0;
  // sigwait() fails only on an invalid set; stop all the same rather than leave shards running.
  const char* reason = sigwait(&signals, &received) != 0 ? "sigwait failed"
                       : received == SIGINT              ? "SIGINT"
                                                         : "SIGTERM";
  std::printf("%s: stopping\n", reason);
  std::fflush(stdout);
  host.reset();  // disconnects; no callback runs after this
  // stop() only asks the shards to finish (close every connection, accept no more);
  // wait() returns once every shard thread has exited.
  broker.stop();
  broker.wait();
  std::printf("stopped\n");
  return 0;
}
