// The whole path of MQTT 5 enhanced authentication through a real broker: a coremq::Broker
// started in this process (include/coremq/broker.h) on 127.0.0.1, port 0, with a small
// challenge-response AuthenticationHook, and clients that speak raw MQTT 5 over TCP sockets
// from the test thread. What the ShardState unit tests cannot see is covered here: the shard
// loop must keep reading a connection while its exchange runs (after a hand-off too, with
// --threads 4), and re-authentication must work on a live connection.
// Every read waits at most kReadTimeoutMs (poll), so a broker that stops reading fails the
// test instead of hanging it; nothing sleeps.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth_packets.h"
#include "broker/shard_state.h"
#include "coremq/authentication.h"
#include "coremq/broker.h"
#include "coremq/options.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"

namespace coremq::testing {
namespace {

using mqtt::PacketType;

// Generous for a loaded 2-CPU machine; only a broker that stopped reading gets near it.
constexpr int kReadTimeoutMs = 5000;

// Method "CHALLENGE": the client opens with "hello", the broker sends challenge-1 and
// challenge-2, the client must answer each with response-1 and response-2, and the broker
// ends with "welcome". Implements only begin/next/supports_method (the interface as it was
// before re-authentication existed), so re-authentication runs through the default
// begin_reauthentication. Called from every shard thread: the per-client state is locked.
class ChallengeResponseHook final : public AuthenticationHook {
 public:
  bool supports_method(std::string_view method) const override { return method == "CHALLENGE"; }

  Step begin(std::string_view client_id, std::string_view method, std::string_view data) override {
    std::lock_guard lock(mutex_);
    if (method != "CHALLENGE" || data != "hello") return {};
    rounds_[std::string(client_id)] = 1;
    return Step{Step::Result::kContinue, "challenge-1"};
  }

  Step next(std::string_view client_id, std::string_view method, std::string_view data) override {
    std::lock_guard lock(mutex_);
    auto found = rounds_.find(std::string(client_id));
    if (method != "CHALLENGE" || found == rounds_.end()) return {};
    int round = found->second;
    if (data != "response-" + std::to_string(round)) {
      rounds_.erase(found);
      return {};  // kFailure: Not authorized
    }
    if (round == 2) {
      rounds_.erase(found);
      return Step{Step::Result::kSuccess, "welcome"};
    }
    found->second = round + 1;
    return Step{Step::Result::kContinue, "challenge-" + std::to_string(round + 1)};
  }

 private:
  std::mutex mutex_;
  std::map<std::string, int> rounds_;
};

// A raw MQTT 5 client on a blocking TCP socket.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    int on = 1;
    if (connected_) ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(sent));
    }
    return true;
  }

  // The next packet, or nullopt on timeout, end of stream or error (`why` says which).
  std::optional<ServerPacket> read(std::string* why) {
    for (;;) {
      mqtt::FixedHeader header{};
      auto span = std::span(reinterpret_cast<const uint8_t*>(buffer_.data()), buffer_.size());
      mqtt::FrameStatus status = mqtt::parse_fixed_header(span, 1u << 20, &header);
      if (status == mqtt::FrameStatus::kComplete &&
          buffer_.size() >= size_t{header.header_length} + header.remaining_length) {
        ServerPacket packet = decode_server_packet(
            static_cast<uint8_t>(buffer_[0]), span.subspan(header.header_length, header.remaining_length));
        buffer_.erase(0, size_t{header.header_length} + header.remaining_length);
        return packet;
      }
      if (status != mqtt::FrameStatus::kComplete && status != mqtt::FrameStatus::kNeedMore) {
        *why = "the broker sent bytes that do not frame";
        return std::nullopt;
      }
      pollfd poll_fd{fd_, POLLIN, 0};
      int ready = ::poll(&poll_fd, 1, kReadTimeoutMs);
      if (ready == 0) {
        *why = "no packet within " + std::to_string(kReadTimeoutMs) + " ms (the broker stopped reading?)";
        return std::nullopt;
      }
      char chunk[4096];
      ssize_t received = ready > 0 ? ::recv(fd_, chunk, sizeof(chunk), 0) : -1;
      if (received <= 0) {
        *why = received == 0 ? "end of stream" : "receive failed";
        return std::nullopt;
      }
      buffer_.append(chunk, static_cast<size_t>(received));
    }
  }

  // True when the broker closes the connection (after whatever it still sends) in time.
  bool closed_by_peer() {
    std::string why;
    while (read(&why)) {
    }
    return why == "end of stream" || why == "receive failed";
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

// Reads one packet and checks its type (and reason code); fails the test otherwise.
ServerPacket expect_packet(RawClient& client, PacketType type, uint8_t reason_code) {
  std::string why;
  std::optional<ServerPacket> packet = client.read(&why);
  EXPECT_TRUE(packet.has_value()) << "waiting for packet type " << static_cast<int>(type) << ": " << why;
  if (!packet) return {};
  EXPECT_TRUE(packet->ok);
  EXPECT_EQ(packet->type, type);
  EXPECT_EQ(packet->reason_code, reason_code);
  return *packet;
}

std::string pingreq() {
  base::ByteBuffer out;
  mqtt::encode_pingreq(out);
  return std::string(out.view());
}

class EmbeddedEnhancedAuth : public ::testing::TestWithParam<uint32_t> {
 protected:
  void SetUp() override {
    Options options;
    options.bind_address = "127.0.0.1";
    options.port = 0;
    options.threads = GetParam();
    options.pin_threads = false;
    options.log_level = "warning";
    // Small per-shard rings and buffers: the test needs a handful of connections.
    options.ring_entries = 256;
    options.receive_buffer_count = 64;
    options.authentication_hook = std::make_shared<ChallengeResponseHook>();
    broker_ = std::make_unique<Broker>(options);
    std::string error;
    ASSERT_TRUE(broker_->start(&error)) << error;
  }

  void TearDown() override {
    if (!broker_) return;
    broker_->stop();
    broker_->wait();
  }

  // Client ids owned by each shard in turn, so with several shards most connections are
  // accepted by a shard that must hand them to the owner before the exchange starts.
  std::vector<std::string> client_ids(size_t count) const {
    std::vector<std::string> ids;
    uint32_t shards = broker_->shard_count();
    for (int i = 0; ids.size() < count; ++i) {
      char candidate[32];
      std::snprintf(candidate, sizeof(candidate), "auth-client-%d", i);
      if (broker::owner_shard_of(candidate, shards) == ids.size() % shards) ids.emplace_back(candidate);
    }
    return ids;
  }

  // CONNECT with the method, both challenges answered, CONNACK: the client is connected.
  void authenticate(RawClient& client, std::string_view client_id) {
    ASSERT_TRUE(client.send(connect5_bytes(client_id, {.method = "CHALLENGE", .data = "hello"})));
    run_challenges(client);
    ServerPacket connack = expect_packet(client, PacketType::kConnack, 0x00);
    EXPECT_EQ(connack.method, "CHALLENGE");
    EXPECT_EQ(connack.data, "welcome");
  }

  // The broker's two AUTH Continue authentication steps, each answered.
  void run_challenges(RawClient& client) {
    for (int round = 1; round <= 2; ++round) {
      ServerPacket challenge = expect_packet(client, PacketType::kAuth, 0x18);
      ASSERT_EQ(challenge.method, "CHALLENGE");
      ASSERT_EQ(challenge.data, "challenge-" + std::to_string(round));
      ASSERT_TRUE(client.send(auth_bytes(0x18, "CHALLENGE", "response-" + std::to_string(round))));
    }
  }

  void ping(RawClient& client) {
    ASSERT_TRUE(client.send(pingreq()));
    expect_packet(client, PacketType::kPingresp, 0);
  }

  uint16_t port() const { return broker_->port(); }

 private:
  std::unique_ptr<Broker> broker_;
};

TEST_P(EmbeddedEnhancedAuth, MultiStepExchangeThenPingThenReauthentication) {
  for (const std::string& client_id : client_ids(2 * GetParam())) {
    SCOPED_TRACE(client_id);
    RawClient client(port());
    ASSERT_TRUE(client.connected());
    authenticate(client, client_id);
    if (HasFatalFailure() || HasFailure()) return;
    ping(client);
    // MQTT 5.0 section 4.12.1: AUTH Re-authenticate with the same method, the same steps,
    // then AUTH Success instead of CONNACK; the connection stays up.
    ASSERT_TRUE(client.send(auth_bytes(0x19, "CHALLENGE", "hello")));
    run_challenges(client);
    ServerPacket success = expect_packet(client, PacketType::kAuth, 0x00);
    EXPECT_EQ(success.method, "CHALLENGE");
    EXPECT_EQ(success.data, "welcome");
    ping(client);
    if (HasFailure()) return;
  }
}

TEST_P(EmbeddedEnhancedAuth, WrongResponseWhileConnectingIsRefusedWithNotAuthorized) {
  for (const std::string& client_id : client_ids(GetParam())) {
    SCOPED_TRACE(client_id);
    RawClient client(port());
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.send(connect5_bytes(client_id, {.method = "CHALLENGE", .data = "hello"})));
    expect_packet(client, PacketType::kAuth, 0x18);
    ASSERT_TRUE(client.send(auth_bytes(0x18, "CHALLENGE", "not-the-response")));
    expect_packet(client, PacketType::kConnack, 0x87);
    EXPECT_TRUE(client.closed_by_peer());
    if (HasFailure()) return;
  }
}

TEST_P(EmbeddedEnhancedAuth, FailedReauthenticationEndsTheConnectionWithDisconnect) {
  for (const std::string& client_id : client_ids(GetParam())) {
    SCOPED_TRACE(client_id);
    RawClient client(port());
    ASSERT_TRUE(client.connected());
    authenticate(client, client_id);
    if (HasFailure()) return;
    ASSERT_TRUE(client.send(auth_bytes(0x19, "CHALLENGE", "hello")));
    expect_packet(client, PacketType::kAuth, 0x18);
    ASSERT_TRUE(client.send(auth_bytes(0x18, "CHALLENGE", "not-the-response")));
    expect_packet(client, PacketType::kDisconnect, 0x87);  // MQTT-4.12.1-2
    EXPECT_TRUE(client.closed_by_peer());
    if (HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, EmbeddedEnhancedAuth, ::testing::Values(1u, 4u),
                         [](const ::testing::TestParamInfo<uint32_t>& param_info) {
                           return "t" + std::to_string(param_info.param);
                         });

}  // namespace
}  // namespace coremq::testing
