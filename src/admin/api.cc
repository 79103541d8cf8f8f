// AdminApi (see api.h): routing, query parsing, and the JSON answers. Admin thread only.
#include "admin/api.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <mutex>

#include "absl/strings/numbers.h"
#include "admin/json_reader.h"
#include "admin/json_writer.h"
#include "admin/metrics.h"
#include "admin/stats.h"
#include "auth/password_hash.h"
#include "base/log.h"
#include "broker/admin_view.h"
#include "broker/shard_state.h"
#include "shard/shard.h"
#include "shard/shard_snapshot.h"

namespace coremq::admin {

namespace {

constexpr std::string_view kClientsPrefix = "/api/v1/clients/";

bool parse_u32(std::string_view text, uint32_t* value) {
  return absl::SimpleAtoi(absl::string_view(text.data(), text.size()), value);
}

HttpResponse json(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

HttpResponse error(int status, std::string_view message) {
  JsonWriter out;
  out.begin_object().key("error").string(message).end_object();
  return json(status, out.text());
}

// ?limit= (1..kPageMax, default kPageDefault); false with *response set on a bad value.
bool page_limit(const HttpRequest& request, uint32_t* limit, HttpResponse* response) {
  *limit = AdminApi::kPageDefault;
  if (auto text = request.query_value("limit")) {
    if (!parse_u32(*text, limit) || *limit < 1 || *limit > AdminApi::kPageMax) {
      *response = error(400, "limit must be a number from 1 to " + std::to_string(AdminApi::kPageMax));
      return false;
    }
  }
  return true;
}

// Shared with the shard callbacks, which may answer after the wait ended: each writes its
// own slot under the mutex.
template <typename Item>
struct Collected {
  std::mutex mutex;
  std::vector<std::vector<Item>> per_shard;
};

void write_client(JsonWriter& out, const broker::ClientView& client, bool detail) {
  out.begin_object();
  out.key("client_id").string(client.client_id);
  out.key("shard").number(client.shard);
  out.key("connected").boolean(client.connected);
  out.key("username");
  if (client.username) {
    out.string(*client.username);
  } else {
    out.null();
  }
  if (client.connected) {
    out.key("connection").begin_object();
    out.key("address").string(client.address);
    out.key("protocol_level").number(client.protocol_level);
    out.key("protocol")
        .string(client.protocol_level == 5   ? "mqtt5"
                : client.protocol_level == 4 ? "mqtt3.1.1"
                                             : "mqtt3.1");
    out.key("listener").number(client.listener);
    out.key("keep_alive_seconds").number(client.keep_alive_seconds);
    out.end_object();
  } else {
    out.key("connection").null();
  }
  out.key("session").begin_object();
  out.key("expiry_seconds").number(client.session_expiry_seconds);
  out.key("subscriptions").number(client.subscription_count);
  out.key("queued_messages").number(client.queued);
  out.key("inflight_messages").number(client.inflight);
  out.end_object();
  if (detail) {
    out.key("subscriptions").begin_array();
    for (const broker::SubscriptionView& subscription : client.subscriptions) {
      out.begin_object();
      out.key("filter").string(subscription.filter);
      out.key("qos").number(subscription.qos);
      out.key("no_local").boolean(subscription.no_local);
      out.key("retain_as_published").boolean(subscription.retain_as_published);
      out.key("retain_handling").number(subscription.retain_handling);
      if (subscription.identifier != 0) out.key("subscription_identifier").number(subscription.identifier);
      out.end_object();
    }
    out.end_array();
  }
  out.end_object();
}

}  // namespace

AdminApi::AdminApi(shard::ShardAccess& shards, ConnectLocal connect_local,
                   std::function<HttpCountersCopy()> http_counters)
    : shards_(shards), connect_local_(std::move(connect_local)), http_counters_(std::move(http_counters)) {}

AdminApi::~AdminApi() = default;

HttpResponse AdminApi::handle(const HttpRequest& request) {
  const std::string& path = request.path;
  const std::string& method = request.method;
  bool get = method == "GET" || method == "HEAD";
  if (path == "/metrics") return get ? metrics() : error(405, "GET /metrics");
  if (path == "/api/v1/stats") return get ? stats() : error(405, "GET /api/v1/stats");
  if (path == "/api/v1/clients") return get ? list_clients(request) : error(405, "GET /api/v1/clients");
  if (path.starts_with(kClientsPrefix) && path.size() > kClientsPrefix.size()) {
    std::string client_id = path.substr(kClientsPrefix.size());
    if (get) return client(client_id);
    if (method == "DELETE") return disconnect(client_id, request);
    return error(405, "GET or DELETE /api/v1/clients/{id}");
  }
  if (path == "/api/v1/subscriptions")
    return get ? list_subscriptions(request) : error(405, "GET /api/v1/subscriptions");
  if (path == "/api/v1/topics") return get ? list_topics(request) : error(405, "GET /api/v1/topics");
  if (path == "/api/v1/publish")
    return method == "POST" ? publish(request) : error(405, "POST /api/v1/publish");
  if (path == "/api/v1/logs") return get ? recent_logs(request) : error(405, "GET /api/v1/logs");
  return error(404, "no such endpoint (see docs/API.md)");
}

HttpResponse AdminApi::shard_timeout(std::string_view message) {
  shard_timeouts_.fetch_add(1, std::memory_order_relaxed);
  LOG_WARNING_LIMITED("http: %s (a shard took over %d ms)", message, static_cast<int>(kShardTimeout.count()));
  return error(503, message);
}

HttpResponse AdminApi::metrics() {
  HttpResponse response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  HttpCountersCopy http = http_counters_();
  http.shard_timeouts = shard_timeouts_.load(std::memory_order_relaxed);
  response.body = render_metrics(shard::collect_shard_snapshots(shards_, kShardTimeout), http);
  return response;
}

// The broker's recent log lines (base::recent_log_lines: a bounded copy the log thread keeps),
// oldest first; empty when the program did not start the log thread (an embedding host).
HttpResponse AdminApi::recent_logs(const HttpRequest& request) {
  HttpResponse bad;
  uint32_t limit = 0;
  if (!page_limit(request, &limit, &bad)) return bad;
  JsonWriter out;
  out.begin_object();
  out.key("lines").begin_array();
  for (const std::string& line : base::recent_log_lines(limit)) out.string(line);
  out.end_array();
  out.key("dropped").number(base::log_lines_dropped());
  out.end_object();
  return json(200, out.text());
}

HttpResponse AdminApi::stats() {
  BrokerStats stats = broker_stats(shard::collect_shard_snapshots(shards_, kShardTimeout));
  JsonWriter out;
  auto values = [&](const StatValues& list) {
    out.begin_object();
    for (const auto& [name, value] : list) out.key(name).number(value);
    out.end_object();
  };
  out.begin_object();
  out.key("shard_count").number(stats.shards.size());
  out.key("total");
  values(stats.total);
  out.key("shards").begin_array();
  for (const ShardStats& shard : stats.shards) {
    out.begin_object();
    out.key("shard").number(shard.shard);
    out.key("answered").boolean(shard.answered);
    out.key("values");
    values(shard.values);
    out.end_object();
  }
  out.end_array();
  out.end_object();
  return json(200, out.text());
}

HttpResponse AdminApi::list_clients(const HttpRequest& request) {
  HttpResponse bad;
  broker::ClientQuery query;
  if (!page_limit(request, &query.limit, &bad)) return bad;
  uint32_t limit = query.limit;
  query.limit = limit + 1;  // one more than asked says whether there is a next page
  if (auto cursor = request.query_value("cursor")) query.after = std::string(*cursor);
  if (auto prefix = request.query_value("prefix")) query.id_prefix = std::string(*prefix);
  if (auto username = request.query_value("username")) query.username = std::string(*username);
  std::optional<uint32_t> only_shard;
  if (auto text = request.query_value("shard")) {
    uint32_t shard = 0;
    if (!parse_u32(*text, &shard) || shard >= shards_.shard_count()) {
      return error(400, "shard must be a number below " + std::to_string(shards_.shard_count()));
    }
    only_shard = shard;
  }
  auto collected = std::make_shared<Collected<broker::ClientView>>();
  collected->per_shard.resize(shards_.shard_count());
  auto visit = [collected, query](shard::Shard& shard) {
    std::vector<broker::ClientView> found;
    shard.state().admin_list_clients(query, &found);
    std::lock_guard lock(collected->mutex);
    collected->per_shard[shard.id()] = std::move(found);
  };
  uint32_t expected = only_shard ? 1 : shards_.shard_count();
  uint32_t answered = only_shard ? (shards_.run_on_shard(*only_shard, visit, kShardTimeout) ? 1 : 0)
                                 : shards_.run_on_each_shard(visit, kShardTimeout);
  if (answered < expected) return shard_timeout("a shard did not answer in time; try again");
  std::vector<broker::ClientView> clients;
  {
    std::lock_guard lock(collected->mutex);
    for (auto& list : collected->per_shard) {
      for (auto& client : list) clients.push_back(std::move(client));
    }
  }
  std::sort(clients.begin(), clients.end(), [](const broker::ClientView& a, const broker::ClientView& b) {
    return a.client_id < b.client_id;
  });
  bool more = clients.size() > limit;
  if (more) clients.resize(limit);
  JsonWriter out;
  out.begin_object();
  out.key("clients").begin_array();
  for (const broker::ClientView& client : clients) write_client(out, client, false);
  out.end_array();
  out.key("next_cursor");
  if (more) {
    out.string(clients.back().client_id);
  } else {
    out.null();
  }
  out.end_object();
  return json(200, out.text());
}

HttpResponse AdminApi::client(const std::string& client_id) {
  uint32_t owner = broker::owner_shard_of(client_id, shards_.shard_count());
  struct Found {
    std::mutex mutex;
    bool exists = false;
    broker::ClientView view;
  };
  auto found = std::make_shared<Found>();
  bool answered = shards_.run_on_shard(
      owner,
      [found, client_id](shard::Shard& shard) {
        broker::ClientView view;
        bool exists = shard.state().admin_client(client_id, &view);
        std::lock_guard lock(found->mutex);
        found->exists = exists;
        found->view = std::move(view);
      },
      kShardTimeout);
  if (!answered) return shard_timeout("the client's shard did not answer in time; try again");
  std::lock_guard lock(found->mutex);
  if (!found->exists) return error(404, "no session with client id '" + client_id + "'");
  JsonWriter out;
  write_client(out, found->view, true);
  return json(200, out.text());
}

HttpResponse AdminApi::disconnect(const std::string& client_id, const HttpRequest& request) {
  bool discard = false;
  if (auto text = request.query_value("discard_session")) {
    if (*text != "0" && *text != "1" && *text != "true" && *text != "false") {
      return error(400, "discard_session must be 0 or 1");
    }
    discard = *text == "1" || *text == "true";
  }
  uint32_t owner = broker::owner_shard_of(client_id, shards_.shard_count());
  struct Result {
    std::mutex mutex;
    broker::AdminDisconnect outcome;
  };
  auto result = std::make_shared<Result>();
  bool answered = shards_.run_on_shard(
      owner,
      [result, client_id, discard](shard::Shard& shard) {
        broker::AdminDisconnect outcome = shard.state().admin_disconnect(client_id, discard);
        std::lock_guard lock(result->mutex);
        result->outcome = outcome;
      },
      kShardTimeout);
  if (!answered)
    return shard_timeout("the client's shard did not answer in time; the disconnect may still happen");
  broker::AdminDisconnect outcome;
  {
    std::lock_guard lock(result->mutex);
    outcome = result->outcome;
  }
  if (!outcome.found) return error(404, "no session with client id '" + client_id + "'");
  JsonWriter out;
  out.begin_object();
  out.key("client_id").string(client_id);
  out.key("disconnected").boolean(outcome.was_connected);
  out.key("session_ended").boolean(outcome.session_ended);
  out.end_object();
  return json(200, out.text());
}

HttpResponse AdminApi::list_subscriptions(const HttpRequest& request) {
  HttpResponse bad;
  uint32_t limit = 0;
  if (!page_limit(request, &limit, &bad)) return bad;
  std::string after;
  if (auto cursor = request.query_value("cursor")) {
    // The cursor is "CLIENT_ID FILTER" base64-encoded (both may hold any character but NUL).
    if (!auth::base64_decode(*cursor, &after)) return error(400, "cursor is not one this API gave");
  }
  auto collected = std::make_shared<Collected<broker::SubscriptionView>>();
  collected->per_shard.resize(shards_.shard_count());
  uint32_t answered = shards_.run_on_each_shard(
      [collected, after, limit](shard::Shard& shard) {
        std::vector<broker::SubscriptionView> found;
        shard.state().admin_list_subscriptions(after, limit + 1, &found);
        std::lock_guard lock(collected->mutex);
        collected->per_shard[shard.id()] = std::move(found);
      },
      kShardTimeout);
  if (answered < shards_.shard_count()) return shard_timeout("a shard did not answer in time; try again");
  std::vector<broker::SubscriptionView> subscriptions;
  {
    std::lock_guard lock(collected->mutex);
    for (auto& list : collected->per_shard) {
      for (auto& subscription : list) subscriptions.push_back(std::move(subscription));
    }
  }
  auto key = [](const broker::SubscriptionView& s) { return s.client_id + '\0' + s.filter; };
  std::sort(
      subscriptions.begin(), subscriptions.end(),
      [&](const broker::SubscriptionView& a, const broker::SubscriptionView& b) { return key(a) < key(b); });
  bool more = subscriptions.size() > limit;
  if (more) subscriptions.resize(limit);
  JsonWriter out;
  out.begin_object();
  out.key("subscriptions").begin_array();
  for (const broker::SubscriptionView& subscription : subscriptions) {
    out.begin_object();
    out.key("client_id").string(subscription.client_id);
    out.key("filter").string(subscription.filter);
    out.key("qos").number(subscription.qos);
    out.key("no_local").boolean(subscription.no_local);
    out.key("retain_as_published").boolean(subscription.retain_as_published);
    out.key("retain_handling").number(subscription.retain_handling);
    out.end_object();
  }
  out.end_array();
  out.key("next_cursor");
  if (more) {
    out.string(auth::base64_encode(key(subscriptions.back())));
  } else {
    out.null();
  }
  out.end_object();
  return json(200, out.text());
}

HttpResponse AdminApi::list_topics(const HttpRequest& request) {
  auto retained = request.query_value("retained");
  if (!retained || (*retained != "1" && *retained != "true")) {
    return error(400, "only retained topics are listed: add ?retained=1");
  }
  HttpResponse bad;
  uint32_t limit = 0;
  if (!page_limit(request, &limit, &bad)) return bad;
  std::string after;
  if (auto cursor = request.query_value("cursor")) after = std::string(*cursor);
  // Every shard holds a full copy of the retained store: shard 0's is read.
  auto collected = std::make_shared<Collected<broker::RetainedView>>();
  collected->per_shard.resize(1);
  bool answered = shards_.run_on_shard(
      0,
      [collected, after, limit](shard::Shard& shard) {
        std::vector<broker::RetainedView> found;
        shard.state().admin_list_retained(after, limit + 1, &found);
        std::lock_guard lock(collected->mutex);
        collected->per_shard[0] = std::move(found);
      },
      kShardTimeout);
  if (!answered) return shard_timeout("shard 0 did not answer in time; try again");
  std::vector<broker::RetainedView> topics;
  {
    std::lock_guard lock(collected->mutex);
    topics = std::move(collected->per_shard[0]);
  }
  bool more = topics.size() > limit;
  if (more) topics.resize(limit);
  JsonWriter out;
  out.begin_object();
  out.key("topics").begin_array();
  for (const broker::RetainedView& topic : topics) {
    out.begin_object();
    out.key("topic").string(topic.topic);
    out.key("qos").number(topic.qos);
    out.key("size").number(topic.payload.size());
    out.key("payload_base64").string(auth::base64_encode(topic.payload));
    out.end_object();
  }
  out.end_array();
  out.key("next_cursor");
  if (more) {
    out.string(topics.back().topic);
  } else {
    out.null();
  }
  out.end_object();
  return json(200, out.text());
}

HttpResponse AdminApi::publish(const HttpRequest& request) {
  FlatJsonObject body;
  std::string why;
  if (!body.parse(request.body, &why)) return error(400, "body is not a flat JSON object: " + why);
  for (const auto& [name, value] : body.members()) {
    if (name != "topic" && name != "payload" && name != "payload_base64" && name != "qos" &&
        name != "retain") {
      return error(400, "unknown member '" + name + "' (topic, payload, payload_base64, qos, retain)");
    }
  }
  const JsonValue* topic = body.find("topic");
  if (topic == nullptr || topic->kind != JsonValue::Kind::kString || topic->text.empty()) {
    return error(400, "topic: a non-empty string is required");
  }
  if (topic->text.find_first_of("+#") != std::string::npos)
    return error(400, "topic: no wildcards in a topic name");
  const JsonValue* text = body.find("payload");
  const JsonValue* encoded = body.find("payload_base64");
  if (text != nullptr && encoded != nullptr)
    return error(400, "payload and payload_base64 exclude each other");
  std::string payload;
  if (text != nullptr) {
    if (text->kind != JsonValue::Kind::kString) return error(400, "payload: a string");
    payload = text->text;
  } else if (encoded != nullptr) {
    if (encoded->kind != JsonValue::Kind::kString || !auth::base64_decode(encoded->text, &payload)) {
      return error(400, "payload_base64: standard base64 with padding");
    }
  }
  uint8_t qos = 0;
  if (const JsonValue* value = body.find("qos")) {
    if (value->kind != JsonValue::Kind::kInteger || value->integer < 0 || value->integer > 2) {
      return error(400, "qos: 0, 1 or 2");
    }
    qos = static_cast<uint8_t>(value->integer);
  }
  bool retain = false;
  if (const JsonValue* value = body.find("retain")) {
    if (value->kind != JsonValue::Kind::kBoolean) return error(400, "retain: true or false");
    retain = value->boolean;
  }
  // A client per request, gone when it returns: nothing of the API outlives a request, so
  // the broker's shutdown never waits for an idle admin session.
  LocalClientOptions options;
  options.client_id = "coremq-admin-api";
  std::string connect_error;
  std::unique_ptr<LocalClient> client = connect_local_(options, &connect_error);
  if (client == nullptr) return error(503, "cannot publish: " + connect_error);
  std::future<OperationResult> done = client->publish(topic->text, payload, qos, retain);
  if (done.wait_for(kPublishTimeout) != std::future_status::ready) {
    shard_timeouts_.fetch_add(1, std::memory_order_relaxed);
    LOG_WARNING_LIMITED("http: a publish was not acknowledged within %d ms",
                        static_cast<int>(kPublishTimeout.count()));
    return error(504, "the broker did not answer in time");
  }
  OperationResult result = done.get();
  if (result.status == LocalStatus::kInvalidArgument)
    return error(400, "the broker refused the topic or QoS");
  if (result.status != LocalStatus::kOk)
    return error(503, std::string("publish failed: ") + local_status_name(result.status));
  JsonWriter out;
  out.begin_object();
  out.key("published").boolean(result.ok());
  out.key("reason_code").number(result.reason_code);
  out.end_object();
  return json(result.ok() ? 200 : 403, out.text());
}

}  // namespace coremq::admin
