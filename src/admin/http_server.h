// The HTTP admin listener: libmicrohttpd (Debian's libmicrohttpd) running one internal
// thread - the admin thread - that accepts, reads requests, checks credentials
// (http_auth.h) and calls one handler per complete request. Bounds, each counted:
// connections open at once (refused at accept past it), idle time per connection, request
// body size (413). Created and owned by AdminServer (admin_server.h); the handler runs on
// the admin thread only, one request at a time.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "admin/http_auth.h"
#include "admin/metrics.h"

struct MHD_Daemon;
struct MHD_Connection;

namespace coremq::admin {

struct HttpRequest {
  std::string method;
  std::string path;                                        // without the query string
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::string body;
  std::optional<std::string_view> query_value(std::string_view name) const {
    for (const auto& [key, value] : query) {
      if (key == name) return value;
    }
    return std::nullopt;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  std::string listener;  // "ADDRESS:PORT" (see Options::http_listener)
  uint32_t max_connections = 32;
  uint32_t timeout_seconds = 10;
  uint32_t max_body_bytes = 256 * 1024;
};

// Splits "ADDRESS:PORT", "[IPV6]:PORT" or ":PORT" (address empty: loopback). False with
// *error on anything else.
[[nodiscard]] bool split_http_listener(std::string_view text, std::string* address, uint16_t* port,
                                       std::string* error);

class HttpServer {
 public:
  // Binds and starts the admin thread; null with *error (naming the address) on failure.
  static std::unique_ptr<HttpServer> start(const HttpServerOptions& options,
                                           std::unique_ptr<HttpAuthenticator> authenticator,
                                           HttpHandler handler, std::string* error);
  ~HttpServer();  // stops the thread and closes every connection
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const { return port_; }
  const std::string& url() const { return url_; }
  HttpCountersCopy counters() const;

  // libmicrohttpd's callbacks (public for the C trampolines in http_server.cc).
  struct RequestState;
  int on_request(MHD_Connection* connection, const char* url, const char* method, const char* upload_data,
                 size_t* upload_data_size, void** request_state);
  void on_completed(void* request_state, int termination);
  void on_connection(bool opened);
  bool on_accept();

 private:
  HttpServer() = default;
  int respond(MHD_Connection* connection, const HttpResponse& response);

  HttpServerOptions options_;
  std::unique_ptr<HttpAuthenticator> authenticator_;
  HttpHandler handler_;
  MHD_Daemon* daemon_ = nullptr;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::string url_;
  // Written by the admin thread, read by anyone (metrics, tests).
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> connections_open_{0};
  std::atomic<uint64_t> connections_refused_limit_{0};
  std::atomic<uint64_t> timeouts_{0};
  std::atomic<uint64_t> bodies_too_large_{0};
  std::atomic<uint64_t> authentication_failures_{0};
};

}  // namespace coremq::admin
