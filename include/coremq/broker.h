// The embeddable coremq broker. Create one with Options, start() it, and it runs its
// shards on their own threads until stop() (or a signal handled by the embedding
// program) tells it to shut down. Thread-safety: start/stop/wait/port may be called
// from any one controlling thread; the broker's internals run only on shard threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "coremq/local_client.h"
#include "coremq/options.h"
#include "coremq/stats.h"

// The library is built with hidden symbols (src/meson.build): what a host may call is
// marked here, so the shared library exports this surface and none of its internals.
#ifndef COREMQ_API
#define COREMQ_API __attribute__((visibility("default")))
#endif

namespace coremq {

class BrokerImpl;

class COREMQ_API Broker {
 public:
  explicit Broker(Options options);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Binds the listeners and starts every shard. On failure returns false and sets *error.
  [[nodiscard]] bool start(std::string* error);
  // Asks every shard to finish: stop accepting, close connections, publish nothing more.
  // Safe to call from a signal-handling thread; returns at once.
  void stop();
  // Blocks until every shard thread has exited.
  void wait();

  // The port actually bound (useful with Options::port == 0): the first listener's.
  uint16_t port() const;
  // The port listener `index` (of Options::listeners, or 0 for bind_address/port) bound;
  // 0 before start() or for an index past the last listener.
  uint16_t listener_port(size_t index) const;
  uint32_t shard_count() const;
  // The port the HTTP admin listener bound (Options::http_listener); 0 when there is none.
  uint16_t http_port() const;

  // Every shard's counters and gauges and their sums (include/coremq/stats.h), copied on each
  // shard's own thread; a shard that does not answer within `timeout` reports answered=false.
  // Any host thread while the broker runs (not inside a LocalClient callback run inline).
  BrokerStats stats(std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) const;

  // Reads every listener's password, ACL and TLS files again (what SIGHUP does to the coremq
  // binary): new connections see the new files, connected clients keep theirs. A file that
  // fails to load keeps the previous one. Returns false if any failed; *report has a line
  // per file. Call from the controlling thread, while the broker runs.
  bool reload(std::string* report);

  // An in-process MQTT 5 client (include/coremq/local_client.h), connected on the shard that
  // owns its client id; blocks until the broker answered its CONNECT. Any host thread, once
  // start() has returned, but not inside a callback of another LocalClient (the answer comes
  // through the delivery thread that runs them). On failure returns null and sets *error.
  [[nodiscard]] std::unique_ptr<LocalClient> connect_local(const LocalClientOptions& options, std::string* error);

 private:
  std::unique_ptr<BrokerImpl> impl_;
};

}  // namespace coremq
