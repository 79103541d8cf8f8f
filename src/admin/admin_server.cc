// AdminServer (see admin_server.h): wiring. The controlling thread runs start and the
// destructor; everything else runs on the admin thread.
#include "admin/admin_server.h"

#include "base/log.h"

namespace coremq::admin {

std::unique_ptr<AdminServer> AdminServer::start(const Options& options, shard::ShardAccess& shards,
                                                ConnectLocal connect_local, std::string* error) {
  std::unique_ptr<HttpAuthenticator> authenticator = HttpAuthenticator::load(options, error);
  if (authenticator == nullptr && !error->empty()) return nullptr;
  auto server = std::unique_ptr<AdminServer>(new AdminServer());
  AdminServer* self = server.get();
  server->api_ = std::make_unique<AdminApi>(shards, std::move(connect_local), [self] {
    const HttpServer* http = self->published_http_.load(std::memory_order_acquire);
    return http != nullptr ? http->counters() : HttpCountersCopy{};
  });
  HttpServerOptions http;
  http.listener = options.http_listener;
  http.max_connections = options.http_max_connections;
  http.timeout_seconds = options.http_timeout_seconds;
  http.max_body_bytes = options.http_max_body_bytes;
  bool authenticated = authenticator != nullptr;
  server->dashboard_ = Dashboard::load();
  server->http_ = HttpServer::start(
      http, std::move(authenticator),
      [self](const HttpRequest& request) {
        if (request.method == "GET" || request.method == "HEAD") {
          if (std::optional<HttpResponse> page = self->dashboard_.serve(request.path)) return *page;
        }
        return self->api_->handle(request);
      },
      error);
  if (server->http_ == nullptr) return nullptr;
  // The admin thread runs from inside HttpServer::start, before http_ is assigned here: it
  // reads the server's counters through this atomic, never through http_.
  server->published_http_.store(server->http_.get(), std::memory_order_release);
  LOG_INFO("http admin listening on %s (dashboard /, /metrics, /api/v1)%s", server->http_->url(),
           authenticated ? "" : " without authentication");
  return server;
}

AdminServer::~AdminServer() {
  // The admin thread first: it may be in the middle of a request that uses api_.
  http_.reset();
}

}  // namespace coremq::admin
