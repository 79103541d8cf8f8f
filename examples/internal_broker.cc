// internal_broker: a host program that runs coremq inside itself, as an embedding program
// does today: it starts a coremq::Broker on the port given on its command line, lets MQTT
// clients (devices) connect over TCP, runs until SIGINT or SIGTERM, then stops the broker
// cleanly and exits 0. Built against the installed library (docs/EMBEDDING.md):
//
//   c++ -std=c++20 internal_broker.cc $(pkg-config --cflags --libs coremq)
//   c++ -std=c++20 -static internal_broker.cc $(pkg-config --static --cflags --libs coremq)
//
// Usage: internal_broker PORT [ADDRESS]
//   PORT     TCP port to listen on; 0 asks the kernel for a free one.
//   ADDRESS  numeric IPv4 or IPv6 address to listen on; 127.0.0.1 by default (use 0.0.0.0
//            to let devices on the network connect).
// Prints "listening on ADDRESS:PORT" (the port actually bound) on stdout once clients can
// connect. tests/install/run builds it and drives it with mosquitto_pub/mosquitto_sub.
//
// Issue 13 extends this program: the host will subscribe in process to sensors/#, compute
// something, and publish commands the devices receive. That needs the in-process client API,
// which does not exist yet, so today the host only starts, runs and stops the broker; it does
// not pretend to do more.
//
// Threads: main() is the controlling thread (start, wait) and takes the signals with
// sigwait(); the broker's shards run on threads of their own.
#include <signal.h>

#include <coremq/broker.h>
#include <coremq/options.h>

#include <charconv>
#include <cstdio>
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

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s PORT [ADDRESS]\n", argv[0]);
    return 2;
  }
  coremq::Options options;
  if (!parse_port(argv[1], &options.port)) {
    std::fprintf(stderr, "internal_broker: '%s' is not a port (0 to 65535)\n", argv[1]);
    return 2;
  }
  options.bind_address = argc == 3 ? argv[2] : "127.0.0.1";
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
  // stop() only asks the shards to finish (close every connection, accept no more);
  // wait() returns once every shard thread has exited.
  broker.stop();
  broker.wait();
  std::printf("stopped\n");
  return 0;
}
