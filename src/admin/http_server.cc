// HttpServer (see http_server.h): the libmicrohttpd daemon and its callbacks, on the admin
// thread (libmicrohttpd's internal polling thread) except start and the destructor, which
// run on the broker's controlling thread.
#include "admin/http_server.h"

#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>

#include "absl/strings/numbers.h"
#include "admin/json_writer.h"
#include "base/assert.h"
#include "base/log.h"

namespace coremq::admin {

struct HttpServer::RequestState {
  std::string body;
  bool too_large = false;
  bool answered = false;
};

namespace {

MHD_Result access_trampoline(void* server, MHD_Connection* connection, const char* url, const char* method,
                             const char* /*version*/, const char* upload_data, size_t* upload_data_size,
                             void** request_state) {
  return static_cast<HttpServer*>(server)->on_request(connection, url, method, upload_data, upload_data_size,
                                                      request_state) == 1
             ? MHD_YES
             : MHD_NO;
}

void completed_trampoline(void* server, MHD_Connection* /*connection*/, void** request_state,
                          MHD_RequestTerminationCode code) {
  static_cast<HttpServer*>(server)->on_completed(*request_state, static_cast<int>(code));
  *request_state = nullptr;
}

void connection_trampoline(void* server, MHD_Connection* /*connection*/, void** /*socket_context*/,
                           MHD_ConnectionNotificationCode code) {
  static_cast<HttpServer*>(server)->on_connection(code == MHD_CONNECTION_NOTIFY_STARTED);
}

MHD_Result accept_trampoline(void* server, const sockaddr* /*address*/, socklen_t /*length*/) {
  return static_cast<HttpServer*>(server)->on_accept() ? MHD_YES : MHD_NO;
}

void log_trampoline(void* /*context*/, const char* format, va_list arguments) {
  char line[512];
  vsnprintf(line, sizeof(line), format, arguments);
  std::string_view text(line);
  // What follows our own refusal of an over-long chunked body (already logged).
  if (text.starts_with("Application reported internal error")) return;
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  LOG_WARNING_LIMITED("http: %s", text);
}

MHD_Result collect_argument(void* into, MHD_ValueKind /*kind*/, const char* key, const char* value) {
  static_cast<std::vector<std::pair<std::string, std::string>>*>(into)->emplace_back(
      key, value == nullptr ? "" : value);
  return MHD_YES;
}

// Resolves address (a host name or a number; empty: 127.0.0.1) and opens a listening TCP
// socket on it; -1 with *error otherwise.
int open_http_socket(const std::string& address, uint16_t port, uint16_t* bound, std::string* error) {
  std::string host = address.empty() || address == "localhost" ? "127.0.0.1" : address;
  if (host == "*") host = "::";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* results = nullptr;
  std::string service = std::to_string(port);
  int status = getaddrinfo(host.c_str(), service.c_str(), &hints, &results);
  if (status != 0) {
    *error = "--http-listener: cannot resolve '" + host + "': " + gai_strerror(status);
    return -1;
  }
  int fd = -1;
  for (addrinfo* result = results; result != nullptr && fd < 0; result = result->ai_next) {
    fd = ::socket(result->ai_family, result->ai_socktype | SOCK_CLOEXEC, result->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (result->ai_family == AF_INET6 && host == "::") {
      int zero = 0;  // "*": IPv4 too, through the one IPv6 socket
      (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    if (::bind(fd, result->ai_addr, result->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
      *error = "--http-listener " + host + ":" + service + ": " + std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(results);
  if (fd < 0) {
    if (error->empty()) *error = "--http-listener " + host + ":" + service + ": no usable address";
    return -1;
  }
  sockaddr_storage local{};
  socklen_t length = sizeof(local);
  (void)getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
  *bound = local.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  return fd;
}

}  // namespace

bool split_http_listener(std::string_view text, std::string* address, uint16_t* port, std::string* error) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    *error = "--http-listener '" + std::string(text) + "' is not ADDRESS:PORT (':PORT' for loopback only)";
    return false;
  }
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  uint32_t number = 0;
  if (!absl::SimpleAtoi(absl::string_view(text.data() + colon + 1, text.size() - colon - 1), &number) ||
      number > 65535) {
    *error = "--http-listener '" + std::string(text) + "': the port must be a number from 0 to 65535";
    return false;
  }
  *address = std::string(host);
  *port = static_cast<uint16_t>(number);
  return true;
}

std::unique_ptr<HttpServer> HttpServer::start(const HttpServerOptions& options,
                                              std::unique_ptr<HttpAuthenticator> authenticator,
                                              HttpHandler handler, std::string* error) {
  std::string address;
  uint16_t port = 0;
  if (!split_http_listener(options.listener, &address, &port, error)) return nullptr;
  auto server = std::unique_ptr<HttpServer>(new HttpServer());
  server->options_ = options;
  server->authenticator_ = std::move(authenticator);
  server->handler_ = std::move(handler);
  server->listen_fd_ = open_http_socket(address, port, &server->port_, error);
  if (server->listen_fd_ < 0) return nullptr;
  std::string shown = address.empty() ? "127.0.0.1" : address;
  if (shown.find(':') != std::string::npos) shown = "[" + shown + "]";
  server->url_ = "http://" + shown + ":" + std::to_string(server->port_) + "/";
  // One internal thread (the admin thread) polls every connection; libmicrohttpd's own
  // connection limit sits above ours so that ours, which counts, is the one that refuses.
  server->daemon_ = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG, 0, accept_trampoline, server.get(),
      access_trampoline, server.get(), MHD_OPTION_EXTERNAL_LOGGER, log_trampoline, nullptr,
      MHD_OPTION_LISTEN_SOCKET, server->listen_fd_, MHD_OPTION_CONNECTION_LIMIT,
      static_cast<unsigned int>(options.max_connections + 8), MHD_OPTION_CONNECTION_TIMEOUT,
      static_cast<unsigned int>(options.timeout_seconds), MHD_OPTION_NOTIFY_COMPLETED, completed_trampoline,
      server.get(), MHD_OPTION_NOTIFY_CONNECTION, connection_trampoline, server.get(), MHD_OPTION_END);
  if (server->daemon_ == nullptr) {
    ::close(server->listen_fd_);
    *error = "--http-listener: libmicrohttpd could not start";
    return nullptr;
  }
  return server;
}

HttpServer::~HttpServer() {
  if (daemon_ != nullptr) MHD_stop_daemon(daemon_);
  // MHD does not close a socket it was given.
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

HttpCountersCopy HttpServer::counters() const {
  HttpCountersCopy copy;
  copy.requests = requests_.load(std::memory_order_relaxed);
  copy.connections_open = connections_open_.load(std::memory_order_relaxed);
  copy.connections_refused_limit = connections_refused_limit_.load(std::memory_order_relaxed);
  copy.timeouts = timeouts_.load(std::memory_order_relaxed);
  copy.bodies_too_large = bodies_too_large_.load(std::memory_order_relaxed);
  copy.authentication_failures = authentication_failures_.load(std::memory_order_relaxed);
  return copy;
}

bool HttpServer::on_accept() {
  if (connections_open_.load(std::memory_order_relaxed) >= options_.max_connections) {
    connections_refused_limit_.fetch_add(1, std::memory_order_relaxed);
    LOG_WARNING_LIMITED("http: connection refused: %u open (--http-max-connections)",
                        options_.max_connections);
    return false;
  }
  return true;
}

void HttpServer::on_connection(bool opened) {
  if (opened) {
    connections_open_.fetch_add(1, std::memory_order_relaxed);
  } else {
    connections_open_.fetch_sub(1, std::memory_order_relaxed);
  }
}

void HttpServer::on_completed(void* request_state, int termination) {
  delete static_cast<RequestState*>(request_state);
  if (termination == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED) {
    timeouts_.fetch_add(1, std::memory_order_relaxed);
    LOG_INFO_LIMITED("http: a connection was idle for %u s (--http-timeout): closed",
                     options_.timeout_seconds);
  }
}

int HttpServer::respond(MHD_Connection* connection, const HttpResponse& response) {
  MHD_Response* reply = MHD_create_response_from_buffer(
      response.body.size(), const_cast<char*>(response.body.data()), MHD_RESPMEM_MUST_COPY);
  if (reply == nullptr) return 0;
  (void)MHD_add_response_header(reply, MHD_HTTP_HEADER_CONTENT_TYPE, response.content_type.c_str());
  (void)MHD_add_response_header(reply, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  for (const auto& [name, value] : response.headers)
    (void)MHD_add_response_header(reply, name.c_str(), value.c_str());
  MHD_Result queued = MHD_queue_response(connection, static_cast<unsigned int>(response.status), reply);
  MHD_destroy_response(reply);
  requests_.fetch_add(1, std::memory_order_relaxed);
  return queued == MHD_YES ? 1 : 0;
}

namespace {
HttpResponse json_error(int status, std::string_view message) {
  HttpResponse response;
  response.status = status;
  response.body = "{\"error\":";
  append_json_string(message, &response.body);
  response.body += "}";
  return response;
}
}  // namespace

int HttpServer::on_request(MHD_Connection* connection, const char* url, const char* method,
                           const char* upload_data, size_t* upload_data_size, void** request_state) {
  auto* state = static_cast<RequestState*>(*request_state);
  if (state == nullptr) {
    // First call: headers only. Credentials and the declared body size are checked before
    // any body is read (and before libmicrohttpd sends 100 Continue).
    state = new RequestState();
    *request_state = state;
    if (authenticator_ != nullptr) {
      const char* authorization =
          MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
      if (!authenticator_->allowed(authorization == nullptr ? "" : authorization)) {
        authentication_failures_.fetch_add(1, std::memory_order_relaxed);
        LOG_INFO_LIMITED("http: %s %s refused: no valid credentials (401)", method, url);
        HttpResponse response = json_error(401, "authentication required");
        response.headers.emplace_back(MHD_HTTP_HEADER_WWW_AUTHENTICATE, authenticator_->challenge());
        state->answered = true;
        return respond(connection, response);
      }
    }
    const char* length =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t declared = 0;
    if (length != nullptr && absl::SimpleAtoi(length, &declared) && declared > options_.max_body_bytes) {
      state->too_large = true;
    }
    if (!state->too_large) return 1;
  }
  if (state->answered) {
    *upload_data_size = 0;  // what follows a refusal is dropped
    return 1;
  }
  if (*upload_data_size != 0 && !state->too_large) {
    if (state->body.size() + *upload_data_size > options_.max_body_bytes) {
      // A body without a Content-Length (chunked) that grows past the bound: libmicrohttpd
      // cannot answer in the middle of an upload, so the connection is closed instead of
      // reading on (counted and logged like a 413).
      bodies_too_large_.fetch_add(1, std::memory_order_relaxed);
      LOG_WARNING_LIMITED("http: %s %s: body over %u bytes (--http-max-body-bytes): connection closed",
                          method, url, options_.max_body_bytes);
      return 0;
    }
    state->body.append(upload_data, *upload_data_size);
    *upload_data_size = 0;
    return 1;
  }
  if (state->too_large) {
    bodies_too_large_.fetch_add(1, std::memory_order_relaxed);
    LOG_WARNING_LIMITED("http: %s %s refused: body over %u bytes (--http-max-body-bytes)", method, url,
                        options_.max_body_bytes);
    *upload_data_size = 0;
    state->answered = true;
    HttpResponse response = json_error(413, "request body over " + std::to_string(options_.max_body_bytes) +
                                                " bytes (--http-max-body-bytes)");
    response.headers.emplace_back(MHD_HTTP_HEADER_CONNECTION, "close");
    return respond(connection, response);
  }
  HttpRequest request;
  request.method = method;
  request.path = url;
  request.body = std::move(state->body);
  (void)MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, collect_argument, &request.query);
  state->answered = true;
  return respond(connection, handler_(request));
}

}  // namespace coremq::admin
