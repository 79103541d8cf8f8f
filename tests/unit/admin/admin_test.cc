// The admin subsystem against a real broker (src/admin/admin_server.h through Broker), HTTP
// credentials (http_auth.h) and the listener address (http_server.h). Loopback sockets only;
// each request is a blocking HTTP/1.1 exchange with "Connection: close", read to EOF.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>

#include "admin/http_auth.h"
#include "admin/http_server.h"
#include "auth/password_hash.h"
#include "coremq/broker.h"

namespace coremq::admin {
namespace {

struct Reply {
  int status = 0;
  std::string head;
  std::string body;
};

Reply http_raw(uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  std::string response;
  char buffer[4096];
  while (true) {
    ssize_t got = ::recv(fd, buffer, sizeof(buffer), 0);
    if (got <= 0) break;
    response.append(buffer, static_cast<size_t>(got));
  }
  ::close(fd);
  Reply reply;
  size_t end_of_head = response.find("\r\n\r\n");
  if (end_of_head == std::string::npos || response.size() < 12) return reply;
  reply.status = std::atoi(response.substr(9, 3).c_str());
  reply.head = response.substr(0, end_of_head);
  reply.body = response.substr(end_of_head + 4);
  return reply;
}

Reply http(uint16_t port, const std::string& method, const std::string& target, const std::string& body = "",
           const std::string& extra_headers = "") {
  return http_raw(port, method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" +
                            extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                            body);
}

class AdminServerTest : public ::testing::Test {
 protected:
  void start(Options options) {
    options.port = 0;
    options.threads = 2;
    options.pin_threads = false;
    options.log_level = "warning";
    options.http_listener = ":0";
    broker_ = std::make_unique<Broker>(std::move(options));
    std::string error;
    ASSERT_TRUE(broker_->start(&error)) << error;
    port_ = broker_->http_port();
    ASSERT_NE(port_, 0);
  }
  void TearDown() override {
    if (broker_) {
      broker_->stop();
      broker_->wait();
    }
  }
  std::unique_ptr<Broker> broker_;
  uint16_t port_ = 0;
};

TEST_F(AdminServerTest, MetricsAndStatsCountAnInProcessPublish) {
  start(Options{});
  std::string error;
  LocalClientOptions options;
  options.client_id = "admin-test-sub";
  std::unique_ptr<LocalClient> subscriber = broker_->connect_local(options, &error);
  ASSERT_NE(subscriber, nullptr) << error;
  std::promise<std::string> got;
  ASSERT_TRUE(
      subscriber
          ->subscribe("t/#", SubscribeOptions{},
                      [&](const ReceivedMessage& message) { got.set_value(std::string(message.payload)); })
          .get()
          .ok());

  Reply publish = http(port_, "POST", "/api/v1/publish", R"({"topic":"t/1","payload":"via http","qos":1})");
  EXPECT_EQ(publish.status, 200) << publish.body;
  auto future = got.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(future.get(), "via http");

  Reply metrics = http(port_, "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.head.find("text/plain; version=0.0.4"), std::string::npos);
  EXPECT_NE(metrics.body.find("\ncoremq_messages_received_total 1\n"), std::string::npos) << metrics.body;
  EXPECT_NE(metrics.body.find("\ncoremq_messages_delivered_total 1\n"), std::string::npos);
  EXPECT_NE(metrics.body.find("\ncoremq_delivery_latency_seconds_count 1\n"), std::string::npos);
  EXPECT_NE(metrics.body.find("coremq_shard_connections{shard=\"1\"}"), std::string::npos);

  BrokerStats stats = broker_->stats();
  ASSERT_EQ(stats.shards.size(), 2u);
  EXPECT_TRUE(stats.shards[0].answered && stats.shards[1].answered);
  uint64_t received = 0;
  for (const auto& [name, value] : stats.total) received = name == "messages_received" ? value : received;
  EXPECT_EQ(received, 1u);

  Reply client = http(port_, "GET", "/api/v1/clients/admin-test-sub");
  EXPECT_EQ(client.status, 200);
  EXPECT_NE(client.body.find(R"("address":"in-process")"), std::string::npos) << client.body;
  EXPECT_NE(client.body.find(R"("filter":"t/#")"), std::string::npos) << client.body;
}

TEST_F(AdminServerTest, BadRequestsGetJsonErrors) {
  start(Options{});
  EXPECT_EQ(http(port_, "GET", "/nothing").status, 404);
  EXPECT_EQ(http(port_, "POST", "/metrics").status, 405);
  EXPECT_EQ(http(port_, "GET", "/api/v1/clients?limit=0").status, 400);
  EXPECT_EQ(http(port_, "GET", "/api/v1/clients?shard=9").status, 400);
  EXPECT_EQ(http(port_, "GET", "/api/v1/topics").status, 400);
  EXPECT_EQ(http(port_, "GET", "/api/v1/clients/nobody").status, 404);
  EXPECT_EQ(http(port_, "DELETE", "/api/v1/clients/nobody").status, 404);
  Reply bad = http(port_, "POST", "/api/v1/publish", R"({"topic":"a/#"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("wildcards"), std::string::npos);
  EXPECT_EQ(http(port_, "POST", "/api/v1/publish", "not json").status, 400);
  EXPECT_EQ(http(port_, "POST", "/api/v1/publish", R"({"topic":"a","qos":3})").status, 400);
  EXPECT_EQ(http(port_, "POST", "/api/v1/publish", R"({"topic":"a","colour":"red"})").status, 400);
  EXPECT_EQ(http(port_, "POST", "/api/v1/publish", R"({"topic":"a","payload_base64":"!!"})").status, 400);
}

TEST_F(AdminServerTest, BodyOverTheLimitIs413AndCounted) {
  Options options;
  options.http_max_body_bytes = 1024;
  start(options);
  Reply reply = http(port_, "POST", "/api/v1/publish", std::string(2000, 'x'));
  EXPECT_EQ(reply.status, 413);
  // Chunked: no length to refuse up front, so the connection is closed once it passes the bound.
  std::string chunk(1500, 'y');
  char size[16];
  snprintf(size, sizeof(size), "%zx", chunk.size());
  Reply chunked = http_raw(port_,
                           "POST /api/v1/publish HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n" +
                               std::string(size) + "\r\n" + chunk + "\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.status, 0) << chunked.head;
  Reply metrics = http(port_, "GET", "/metrics");
  EXPECT_NE(metrics.body.find("\ncoremq_http_bodies_too_large_total 2\n"), std::string::npos);
}

class AdminCredentialsTest : public AdminServerTest {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/coremq-admin-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    directory_ = pattern;
  }
  void TearDown() override {
    AdminServerTest::TearDown();
    std::filesystem::remove_all(directory_);
  }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = directory_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::string directory_;
};

TEST_F(AdminCredentialsTest, BearerTokenIsRequired) {
  Options options;
  options.http_token_file = write("token", "0123456789abcdef-secret\n");
  start(options);
  Reply none = http(port_, "GET", "/metrics");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.head.find("WWW-Authenticate: Bearer"), std::string::npos) << none.head;
  EXPECT_EQ(http(port_, "GET", "/metrics", "", "Authorization: Bearer wrong\r\n").status, 401);
  EXPECT_EQ(http(port_, "GET", "/metrics", "", "Authorization: Bearer 0123456789abcdef-secret\r\n").status,
            200);
  Reply metrics = http(port_, "GET", "/metrics", "", "Authorization: bearer 0123456789abcdef-secret\r\n");
  EXPECT_NE(metrics.body.find("\ncoremq_http_authentication_failures_total 2\n"), std::string::npos);
}

TEST_F(AdminCredentialsTest, BasicAuthAgainstAPasswordFile) {
  std::string hash;
  std::string error;
  ASSERT_TRUE(auth::create_hash("s3cret", auth::HashParameters{}, &hash, &error)) << error;
  Options options;
  options.http_user = "admin";
  options.http_password_file = write("passwords", "admin:" + hash + "\n");
  start(options);
  auto basic = [](const std::string& credentials) {
    return "Authorization: Basic " + auth::base64_encode(credentials) + "\r\n";
  };
  Reply none = http(port_, "GET", "/api/v1/stats");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.head.find("WWW-Authenticate: Basic realm=\"coremq\""), std::string::npos);
  EXPECT_EQ(http(port_, "GET", "/api/v1/stats", "", basic("admin:wrong")).status, 401);
  EXPECT_EQ(http(port_, "GET", "/api/v1/stats", "", basic("other:s3cret")).status, 401);
  EXPECT_EQ(http(port_, "GET", "/api/v1/stats", "", basic("admin:s3cret")).status, 200);
  // Again: the cached verdict.
  EXPECT_EQ(http(port_, "GET", "/api/v1/stats", "", basic("admin:s3cret")).status, 200);
  EXPECT_EQ(http(port_, "GET", "/api/v1/stats", "", basic("admin:wrong")).status, 401);
}

TEST(AdminConfigTest, CredentialOptionsMustGoTogether) {
  std::string error;
  Options options;
  EXPECT_EQ(HttpAuthenticator::load(options, &error), nullptr);
  EXPECT_TRUE(error.empty());
  options.http_user = "admin";
  EXPECT_EQ(HttpAuthenticator::load(options, &error), nullptr);
  EXPECT_NE(error.find("go together"), std::string::npos);
  options.http_token_file = "/nonexistent";
  EXPECT_EQ(HttpAuthenticator::load(options, &error), nullptr);
  EXPECT_NE(error.find("exclude"), std::string::npos);
  options.http_user.clear();
  EXPECT_EQ(HttpAuthenticator::load(options, &error), nullptr);
  EXPECT_NE(error.find("cannot be read"), std::string::npos);
}

TEST(AdminConfigTest, SplitsListenerAddresses) {
  std::string address;
  uint16_t port = 0;
  std::string error;
  ASSERT_TRUE(split_http_listener(":8080", &address, &port, &error));
  EXPECT_EQ(address, "");
  EXPECT_EQ(port, 8080);
  ASSERT_TRUE(split_http_listener("localhost:9", &address, &port, &error));
  EXPECT_EQ(address, "localhost");
  ASSERT_TRUE(split_http_listener("[::1]:0", &address, &port, &error));
  EXPECT_EQ(address, "::1");
  EXPECT_FALSE(split_http_listener("8080", &address, &port, &error));
  EXPECT_FALSE(split_http_listener("host:70000", &address, &port, &error));
  EXPECT_FALSE(split_http_listener("host:x", &address, &port, &error));
}

TEST(AdminConfigTest, BrokerStartFailsOnABadListener) {
  Options options;
  options.port = 0;
  options.threads = 1;
  options.pin_threads = false;
  options.log_level = "none";
  options.http_listener = "no-such-host.invalid:0";
  Broker broker(options);
  std::string error;
  EXPECT_FALSE(broker.start(&error));
  EXPECT_NE(error.find("--http-listener"), std::string::npos) << error;
}

}  // namespace
}  // namespace coremq::admin
