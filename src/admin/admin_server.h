// The admin subsystem: the HTTP listener (http_server.h) and the API it serves (api.h).
// Created and owned by BrokerImpl when Options::http_listener is set, started after the
// shards and destroyed before them (its destructor stops the admin thread, which waits for
// the request in progress). It reads the shards only through shard::ShardAccess.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "admin/api.h"
#include "admin/dashboard.h"
#include "admin/http_server.h"
#include "coremq/options.h"
#include "shard/shard_access.h"

namespace coremq::admin {

class AdminServer {
 public:
  // Null with *error (the address, a credentials file) on failure.
  static std::unique_ptr<AdminServer> start(const Options& options, shard::ShardAccess& shards,
                                            ConnectLocal connect_local, std::string* error);
  ~AdminServer();

  uint16_t port() const { return http_->port(); }

 private:
  AdminServer() = default;
  // Declared first, destroyed last: the admin thread (in http_) uses it until it stops.
  std::unique_ptr<AdminApi> api_;
  Dashboard dashboard_;
  std::unique_ptr<HttpServer> http_;
  std::atomic<const HttpServer*> published_http_{nullptr};
};

}  // namespace coremq::admin
