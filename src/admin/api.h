// The admin API's routes (docs/API.md): GET /metrics, GET /api/v1/stats, clients (list,
// detail, DELETE), subscriptions, retained topics and POST /api/v1/publish. Every read of
// shard state goes through shard::ShardAccess (a callback on the shard's own thread that
// copies what it needs); publishing goes through an in-process client (Broker::connect_local).
// Owned by AdminServer; handle() runs on the admin thread only, one request at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "admin/http_server.h"
#include "coremq/local_client.h"
#include "shard/shard_access.h"

namespace coremq::admin {

// How the API makes its in-process client (BrokerImpl::connect_local).
using ConnectLocal = std::function<std::unique_ptr<LocalClient>(const LocalClientOptions&, std::string*)>;

class AdminApi {
 public:
  // Longest wait for the shards' answers to one request.
  static constexpr std::chrono::milliseconds kShardTimeout{2000};
  // Longest wait for a publish's PUBACK/PUBCOMP: a retained QoS 1/2 message waits for every
  // shard's copy, and a loaded machine may take a while.
  static constexpr std::chrono::milliseconds kPublishTimeout{10000};
  static constexpr uint32_t kPageDefault = 100;
  static constexpr uint32_t kPageMax = 1000;

  AdminApi(shard::ShardAccess& shards, ConnectLocal connect_local,
           std::function<HttpCountersCopy()> http_counters);
  ~AdminApi();

  HttpResponse handle(const HttpRequest& request);

 private:
  // A 503 for a shard that did not answer within kShardTimeout: counted and logged.
  HttpResponse shard_timeout(std::string_view message);
  HttpResponse metrics();
  HttpResponse stats();
  HttpResponse list_clients(const HttpRequest& request);
  HttpResponse client(const std::string& client_id);
  HttpResponse disconnect(const std::string& client_id, const HttpRequest& request);
  HttpResponse list_subscriptions(const HttpRequest& request);
  HttpResponse list_topics(const HttpRequest& request);
  HttpResponse publish(const HttpRequest& request);
  HttpResponse recent_logs(const HttpRequest& request);

  shard::ShardAccess& shards_;
  ConnectLocal connect_local_;
  std::function<HttpCountersCopy()> http_counters_;
  // Requests that waited kShardTimeout for a shard (or a publish acknowledgement) in vain.
  std::atomic<uint64_t> shard_timeouts_{0};
};

}  // namespace coremq::admin
