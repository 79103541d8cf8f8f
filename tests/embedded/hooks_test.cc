// The message interceptor (include/coremq/interception.h) and the event hook
// (include/coremq/events.h) through a real coremq::Broker started in this process on
// 127.0.0.1, port 0, with --threads 1 and 4: raw network clients (net_client.h, MQTT 5 and
// 3.1.1) and in-process clients publish; what subscribers get, what publishers are answered
// and what the hooks are told is checked. Every wait is on a protocol event (a SUBACK, a
// PUBACK, a message, a PINGRESP) or on the hook's own report, bounded by kWait; nothing sleeps.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "auth_packets.h"
#include "broker/shard_state.h"
#include "coremq/authentication.h"
#include "coremq/broker.h"
#include "coremq/events.h"
#include "coremq/interception.h"
#include "coremq/local_client.h"
#include "embedded_broker.h"
#include "net_client.h"

namespace coremq::testing {
namespace {

constexpr auto kWait = std::chrono::seconds(20);

// Decides by the topic's first level: pass/..., rewrite/..., drop/... (0x87), drop99/...
// (0x99), dropodd/... (0x05, not a PUBACK error: becomes 0x80), badrewrite/... (to a wildcard
// topic: dropped with 0x83), props/... (every property replaced), kick/... (disconnect 0x98).
class TestInterceptor : public MessageInterceptor {
 public:
  struct Seen {
    std::string client_id;
    std::string topic;
    std::string payload;
    uint8_t qos = 0;
    uint8_t protocol_version = 0;
    bool in_process = false;
    std::vector<std::pair<std::string, std::string>> user_properties;
  };

  InterceptionVerdict on_publish(const InterceptedMessage& message, MessageRewrite& rewrite,
                                 HookDeferral& /*deferral*/) override {
    EXPECT_TRUE(rewrite.empty());
    {
      std::lock_guard lock(mutex_);
      Seen seen{std::string(message.client.client_id), std::string(message.topic), std::string(message.payload),
                message.qos, message.protocol_version, message.client.in_process, {}};
      for (const auto& [name, value] : message.user_properties) seen.user_properties.emplace_back(name, value);
      seen_.push_back(std::move(seen));
    }
    std::string_view topic = message.topic;
    auto starts = [&](std::string_view prefix) { return topic.substr(0, prefix.size()) == prefix; };
    if (starts("rewrite/")) {
      rewrite.topic = "rewritten/" + std::string(topic.substr(8));
      rewrite.payload = "[" + std::string(message.payload) + "]";
      return InterceptionVerdict::pass();
    }
    if (starts("props/")) {
      MessageProperties properties;
      properties.content_type = "text/plain";
      properties.user_properties.push_back({"stamped", "yes"});
      rewrite.properties = std::move(properties);
      return InterceptionVerdict::pass();
    }
    if (starts("drop99/")) return InterceptionVerdict::drop(0x99);
    if (starts("dropodd/")) return InterceptionVerdict::drop(0x05);
    if (starts("drop/")) return InterceptionVerdict::drop();
    if (starts("badrewrite/")) {
      rewrite.topic = "a/+/b";
      return InterceptionVerdict::pass();
    }
    if (starts("kick/")) return InterceptionVerdict::disconnect(0x98);
    return InterceptionVerdict::pass();
  }

  std::vector<Seen> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Seen> seen_;
};

// Records every event (called on shard threads) for the test thread.
class TestEvents : public EventHook {
 public:
  struct Event {
    std::string kind;  // connected, disconnected, subscribed, unsubscribed, dropped
    std::string client_id;
    std::string detail;  // address / filter / topic
    uint8_t number = 0;  // protocol version / qos
    uint8_t code = 0;    // reason code
    int reason = -1;     // DisconnectReason or DropReason
    bool flag = false;   // will published / in-process
  };

  void on_client_connected(const ClientConnectedEvent& event) override {
    add({"connected", std::string(event.client.client_id), std::string(event.address), event.protocol_version, 0, -1,
         event.client.in_process});
  }
  void on_client_disconnected(const ClientDisconnectedEvent& event) override {
    add({"disconnected", std::string(event.client.client_id), "", 0, event.reason_code,
         static_cast<int>(event.reason), event.will_published});
  }
  void on_subscription_added(const SubscriptionEvent& event) override {
    add({"subscribed", std::string(event.client.client_id), std::string(event.filter), event.qos, 0, -1,
         event.no_local});
  }
  void on_subscription_removed(const SubscriptionEvent& event) override {
    add({"unsubscribed", std::string(event.client.client_id), std::string(event.filter), 0, 0, -1, false});
  }
  void on_message_dropped(const MessageDroppedEvent& event) override {
    add({"dropped", std::string(event.client.client_id), std::string(event.topic), event.qos, 0,
         static_cast<int>(event.reason), false});
  }

  // Waits until `count` events of `kind` for `client_id` were reported; returns them all.
  std::vector<Event> wait_for(std::string_view kind, std::string_view client_id, size_t count = 1) {
    std::unique_lock lock(mutex_);
    std::vector<Event> found;
    changed_.wait_for(lock, kWait, [&] {
      found = matching(kind, client_id);
      return found.size() >= count;
    });
    return found;
  }
  std::vector<Event> now(std::string_view kind, std::string_view client_id) {
    std::lock_guard lock(mutex_);
    return matching(kind, client_id);
  }

 private:
  void add(Event event) {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
    changed_.notify_all();
  }
  std::vector<Event> matching(std::string_view kind, std::string_view client_id) const {
    std::vector<Event> found;
    for (const Event& event : events_) {
      if (event.kind == kind && event.client_id == client_id) found.push_back(event);
    }
    return found;
  }
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Event> events_;
};

// Refuses every PUBLISH to secret/... (for the dropped-message event of an authorization refusal).
class DenySecret : public AuthorizationHook {
 public:
  bool allow_publish(const ClientIdentity&, std::string_view topic, uint8_t, bool) override {
    return topic.substr(0, 7) != "secret/";
  }
  bool allow_subscribe(const ClientIdentity&, std::string_view, uint8_t) override { return true; }
  bool allow_receive(const ClientIdentity&, std::string_view) override { return true; }
};

// A host thread that answers deferred decisions after a delay (an external service's round
// trip), in the order they came. Joined on destruction.
class Answerer {
 public:
  using Answer = std::function<void(HookCompletion&)>;
  explicit Answerer(std::chrono::milliseconds delay) : delay_(delay), thread_([this] { run(); }) {}
  ~Answerer() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }
  void add(HookCompletion completion, Answer answer) {
    std::lock_guard lock(mutex_);
    queue_.emplace_back(std::move(completion), std::move(answer));
    changed_.notify_all();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto [completion, answer] = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      std::this_thread::sleep_for(delay_);  // the simulated service, not a test synchronisation
      answer(completion);
      lock.lock();
    }
  }
  std::chrono::milliseconds delay_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::pair<HookCompletion, Answer>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

// Defers what the topic (or filter) asks for: async-pass/..., async-drop/..., async-rewrite/...
// are answered by the Answerer; never/... is kept unanswered (until the test ends); orphan/...
// has its handle destroyed at once.
class AsyncInterceptor : public MessageInterceptor {
 public:
  AsyncInterceptor() : answerer_(std::chrono::milliseconds(100)) {}
  ~AsyncInterceptor() override = default;
  InterceptionVerdict on_publish(const InterceptedMessage& message, MessageRewrite&,
                                 HookDeferral& deferral) override {
    std::string_view topic = message.topic;
    auto starts = [&](std::string_view prefix) { return topic.substr(0, prefix.size()) == prefix; };
    if (starts("async-pass/")) {
      answerer_.add(deferral.defer(), [](HookCompletion& completion) { completion.allow(); });
    } else if (starts("async-drop/")) {
      answerer_.add(deferral.defer(), [](HookCompletion& completion) { completion.deny(0x99); });
    } else if (starts("async-rewrite/")) {
      answerer_.add(deferral.defer(), [](HookCompletion& completion) {
        MessageRewrite rewrite;
        rewrite.topic = "rewritten/async";
        rewrite.payload = "later";
        completion.complete(InterceptionVerdict::pass(), std::move(rewrite));
      });
    } else if (starts("never/")) {
      std::lock_guard lock(mutex_);
      unanswered_.push_back(deferral.defer());
    } else if (starts("orphan/")) {
      HookCompletion dropped = deferral.defer();
    } else {
      return InterceptionVerdict::pass();
    }
    return InterceptionVerdict::defer();
  }

 private:
  std::mutex mutex_;
  std::vector<HookCompletion> unanswered_;
  Answerer answerer_;  // last: joined first, while the rest is alive
};

// Authorization decided later for publishes to ask/... and subscriptions to ask/...: refused.
class AsyncAuthorization : public AuthorizationHook {
 public:
  AsyncAuthorization() : answerer_(std::chrono::milliseconds(50)) {}
  bool allow_publish(const ClientIdentity&, std::string_view, uint8_t, bool) override { return true; }
  bool allow_subscribe(const ClientIdentity&, std::string_view, uint8_t) override { return true; }
  bool allow_receive(const ClientIdentity&, std::string_view) override { return true; }
  Decision decide_publish(const ClientIdentity&, std::string_view topic, uint8_t, bool,
                          HookDeferral& deferral) override {
    if (topic.substr(0, 4) != "ask/") return Decision::kAllow;
    answerer_.add(deferral.defer(), [](HookCompletion& completion) { completion.deny(); });
    return Decision::kDefer;
  }
  Decision decide_subscribe(const ClientIdentity&, std::string_view filter, uint8_t,
                            HookDeferral& deferral) override {
    if (filter.substr(0, 4) == "ask/") {
      answerer_.add(deferral.defer(), [](HookCompletion& completion) { completion.deny(); });
      return Decision::kDefer;
    }
    if (filter.substr(0, 7) == "askok/") {
      answerer_.add(deferral.defer(), [](HookCompletion& completion) { completion.allow(); });
      return Decision::kDefer;
    }
    return Decision::kAllow;
  }

 private:
  Answerer answerer_;
};

// Enhanced authentication (method "async") answered later: "fast" succeeds, "twostep" asks
// for "response" in a second step, "never" is not answered (until the test ends).
class AsyncAuthenticator : public AuthenticationHook {
 public:
  AsyncAuthenticator() : answerer_(std::chrono::milliseconds(100)) {}
  bool supports_method(std::string_view method) const override { return method == "async"; }
  Step begin(std::string_view, std::string_view, std::string_view) override { return {}; }
  Step next(std::string_view, std::string_view, std::string_view) override { return {}; }
  Step begin_deferrable(std::string_view, std::string_view, std::string_view data, HookDeferral& deferral) override {
    if (data == "never") {
      std::lock_guard lock(mutex_);
      unanswered_.push_back(deferral.defer());
    } else if (data == "twostep") {
      answerer_.add(deferral.defer(), [](HookCompletion& completion) {
        completion.authenticate({AuthenticationStep::Result::kContinue, "challenge", 0});
      });
    } else {
      answerer_.add(deferral.defer(), [](HookCompletion& completion) {
        completion.authenticate({AuthenticationStep::Result::kSuccess, "welcome", 0});
      });
    }
    return {AuthenticationStep::Result::kDefer, {}, 0};
  }
  Step begin_reauthentication_deferrable(std::string_view, std::string_view, std::string_view,
                                         HookDeferral& deferral) override {
    answerer_.add(deferral.defer(), [](HookCompletion& completion) {
      completion.authenticate({AuthenticationStep::Result::kSuccess, "again", 0});
    });
    return {AuthenticationStep::Result::kDefer, {}, 0};
  }
  Step next_deferrable(std::string_view, std::string_view, std::string_view data, HookDeferral& deferral) override {
    bool right = data == "response";
    answerer_.add(deferral.defer(), [right](HookCompletion& completion) {
      completion.authenticate(right ? AuthenticationStep{AuthenticationStep::Result::kSuccess, "in", 0}
                                    : AuthenticationStep{AuthenticationStep::Result::kFailure, {}, 0x86});
    });
    return {AuthenticationStep::Result::kDefer, {}, 0};
  }

 private:
  std::mutex mutex_;
  std::vector<HookCompletion> unanswered_;
  Answerer answerer_;
};

// An MQTT 3.1.1 client on top of NetClient's socket and framing.
class Net311 {
 public:
  explicit Net311(uint16_t port) : client_(port) {}
  bool connect(std::string_view client_id, std::string* why, uint16_t keep_alive = 0) {
    mqtt::ConnectPacket connect;
    connect.protocol_level = 4;
    connect.client_id = client_id;
    connect.keep_alive_seconds = keep_alive;
    base::ByteBuffer out;
    mqtt::encode_connect(out, connect);
    if (!client_.send(out)) return false;
    std::optional<NetPacket> packet = client_.read(why);
    return packet && packet->type == mqtt::PacketType::kConnack && packet->body.size() == 2 && packet->body[1] == 0;
  }
  // PUBLISH and its QoS flow; true when every expected answer came (3.1.1 has no reason codes).
  bool publish(std::string_view topic, std::string_view payload, uint8_t qos, std::string* why) {
    mqtt::PublishPacket publish;
    publish.topic = topic;
    publish.payload = payload;
    publish.qos = qos;
    publish.packet_id = qos > 0 ? ++last_packet_id_ : 0;
    base::ByteBuffer out;
    mqtt::encode_publish(out, publish, mqtt::ProtocolVersion::kV311, {});
    if (!client_.send(out)) return false;
    if (qos == 0) return true;
    std::optional<NetPacket> ack = client_.read(why);
    if (!ack || ack->type != (qos == 1 ? mqtt::PacketType::kPuback : mqtt::PacketType::kPubrec)) return false;
    if (qos == 1) return true;
    base::ByteBuffer pubrel;
    mqtt::encode_ack(pubrel, mqtt::PacketType::kPubrel, publish.packet_id);
    if (!client_.send(pubrel)) return false;
    std::optional<NetPacket> pubcomp = client_.read(why);
    return pubcomp && pubcomp->type == mqtt::PacketType::kPubcomp;
  }
  NetClient& raw() { return client_; }

 private:
  NetClient client_;
  uint16_t last_packet_id_ = 0;
};

class Hooks : public EmbeddedBrokerTest {
 protected:
  void configure(Options& options) override {
    options.message_interceptor = interceptor_;
    options.event_hook = events_;
  }

  std::shared_ptr<TestInterceptor> interceptor_ = std::make_shared<TestInterceptor>();
  std::shared_ptr<TestEvents> events_ = std::make_shared<TestEvents>();
};

TEST_P(Hooks, InterceptorPassesRewritesAndDropsWithMqtt5ReasonCodes) {
  std::string why;
  auto subscriber = network(id_on_shard("sub", 1));
  ASSERT_EQ(subscriber->subscribe("#", 1, &why), 1) << why;
  const std::string publisher_id = id_on_shard("pub", 2);
  auto publisher = network(publisher_id);

  EXPECT_EQ(publisher->publish("pass/a", "p1", 1, false, &why, {{"k", "v"}}), 0) << why;
  EXPECT_EQ(publisher->publish("drop/a", "d1", 1, false, &why), 0x87) << why;
  EXPECT_EQ(publisher->publish("drop99/a", "d2", 2, false, &why), 0x99) << why;  // PUBREC ends it
  EXPECT_EQ(publisher->publish("dropodd/a", "d3", 1, false, &why), 0x80) << why;
  EXPECT_EQ(publisher->publish("badrewrite/a", "d4", 1, false, &why), 0x83) << why;
  EXPECT_EQ(publisher->publish("drop/q0", "d5", 0, false, &why), 0) << why;
  EXPECT_EQ(publisher->publish("rewrite/a", "r1", 2, false, &why), 0) << why;
  EXPECT_EQ(publisher->publish("props/a", "r2", 1, false, &why, {{"old", "gone"}}), 0) << why;
  EXPECT_EQ(publisher->publish("pass/end", "p2", 1, false, &why), 0) << why;

  // In publish order, so the end marker shows that nothing dropped was delivered.
  std::vector<NetPublish> received;
  while (received.empty() || received.back().topic != "pass/end") {
    std::optional<NetPublish> message = subscriber->receive_publish(&why);
    ASSERT_TRUE(message) << why;
    received.push_back(std::move(*message));
  }
  ASSERT_EQ(received.size(), 4u);
  EXPECT_EQ(received[0].topic, "pass/a");
  EXPECT_EQ(received[0].payload, "p1");
  EXPECT_EQ(received[0].user_properties, (std::vector<std::pair<std::string, std::string>>{{"k", "v"}}));
  EXPECT_EQ(received[1].topic, "rewritten/a");
  EXPECT_EQ(received[1].payload, "[r1]");
  EXPECT_EQ(received[1].qos, 1);  // the subscription's maximum
  EXPECT_EQ(received[2].topic, "props/a");
  EXPECT_EQ(received[2].user_properties, (std::vector<std::pair<std::string, std::string>>{{"stamped", "yes"}}));
  EXPECT_EQ(received[3].payload, "p2");

  std::vector<TestInterceptor::Seen> seen = interceptor_->seen();
  ASSERT_EQ(seen.size(), 9u);
  EXPECT_EQ(seen[0].client_id, publisher_id);
  EXPECT_EQ(seen[0].protocol_version, 5);
  EXPECT_EQ(seen[0].qos, 1);
  EXPECT_EQ(seen[0].user_properties, (std::vector<std::pair<std::string, std::string>>{{"k", "v"}}));
  EXPECT_FALSE(seen[0].in_process);

  // Each drop is reported to the event hook against the publisher.
  std::vector<TestEvents::Event> dropped = events_->wait_for("dropped", publisher_id, 5);
  ASSERT_EQ(dropped.size(), 5u);
  for (const auto& event : dropped) EXPECT_EQ(event.reason, static_cast<int>(DropReason::kInterceptor));
  EXPECT_EQ(dropped[0].detail, "drop/a");
}

TEST_P(Hooks, Mqtt311PublisherIsAcknowledgedAndItsDroppedMessageIsNotDelivered) {
  std::string why;
  auto subscriber = network(id_on_shard("sub", 1));
  ASSERT_EQ(subscriber->subscribe("#", 2, &why), 2) << why;
  Net311 publisher(broker_->port());
  ASSERT_TRUE(publisher.connect(id_on_shard("pub311", 2), &why)) << why;
  EXPECT_TRUE(publisher.publish("drop/a", "d1", 1, &why)) << why;
  EXPECT_TRUE(publisher.publish("drop/b", "d2", 2, &why)) << why;  // PUBREC, PUBREL, PUBCOMP as usual
  EXPECT_TRUE(publisher.publish("rewrite/c", "r", 2, &why)) << why;
  std::optional<NetPublish> message = subscriber->receive_publish(&why);
  ASSERT_TRUE(message) << why;
  EXPECT_EQ(message->topic, "rewritten/c");
  EXPECT_EQ(message->payload, "[r]");
  EXPECT_EQ(message->qos, 2);
  // The end marker, read past the QoS 2 message's PUBREL: nothing dropped came in between.
  EXPECT_TRUE(publisher.publish("pass/end", "e", 1, &why)) << why;
  std::optional<NetPublish> end = subscriber->receive_publish(&why);
  ASSERT_TRUE(end) << why;
  EXPECT_EQ(end->topic, "pass/end");
  std::vector<TestInterceptor::Seen> seen = interceptor_->seen();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].protocol_version, 4);
}

TEST_P(Hooks, InProcessPublishesAreInterceptedToo) {
  std::string why;
  auto subscriber = network(id_on_shard("sub", 1));
  ASSERT_EQ(subscriber->subscribe("rewritten/#", 1, &why), 1) << why;
  LocalClientOptions options;
  options.client_id = id_on_shard("local", 3);
  std::string error;
  std::unique_ptr<LocalClient> local = broker_->connect_local(options, &error);
  ASSERT_NE(local, nullptr) << error;
  OperationResult dropped = local->publish("drop/x", "d", 1).get();
  EXPECT_EQ(dropped.status, LocalStatus::kOk);
  EXPECT_EQ(dropped.reason_code, 0x87);
  OperationResult rewritten = local->publish("rewrite/x", "r", 1).get();
  EXPECT_TRUE(rewritten.ok());
  std::optional<NetPublish> message = subscriber->receive_publish(&why);
  ASSERT_TRUE(message) << why;
  EXPECT_EQ(message->topic, "rewritten/x");
  EXPECT_EQ(message->payload, "[r]");
  std::vector<TestInterceptor::Seen> seen = interceptor_->seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0].in_process);
  EXPECT_EQ(seen[0].client_id, options.client_id);
}

TEST_P(Hooks, ConnectSubscribeUnsubscribeAndDisconnectAreReportedOnceWithTheirFields) {
  std::string why;
  const std::string id = id_on_shard("events", 1);
  auto client = network(id);
  std::vector<TestEvents::Event> connected = events_->now("connected", id);
  ASSERT_EQ(connected.size(), 1u);  // reported before the CONNACK was sent
  EXPECT_EQ(connected[0].number, 5);
  EXPECT_EQ(connected[0].detail.substr(0, 10), "127.0.0.1:");
  EXPECT_FALSE(connected[0].flag);

  ASSERT_EQ(client->subscribe("a/+/c", 1, &why, /*no_local=*/true), 1) << why;
  std::vector<TestEvents::Event> subscribed = events_->now("subscribed", id);
  ASSERT_EQ(subscribed.size(), 1u);
  EXPECT_EQ(subscribed[0].detail, "a/+/c");
  EXPECT_EQ(subscribed[0].number, 1);
  EXPECT_TRUE(subscribed[0].flag);

  std::string_view filter = "a/+/c";
  base::ByteBuffer out;
  mqtt::encode_unsubscribe(out, 77, std::span(&filter, 1), mqtt::ProtocolVersion::kV5, {});
  ASSERT_TRUE(client->send(out));
  std::optional<NetPacket> unsuback = client->read(&why);
  ASSERT_TRUE(unsuback && unsuback->type == mqtt::PacketType::kUnsuback) << why;
  std::vector<TestEvents::Event> unsubscribed = events_->now("unsubscribed", id);
  ASSERT_EQ(unsubscribed.size(), 1u);
  EXPECT_EQ(unsubscribed[0].detail, "a/+/c");

  base::ByteBuffer disconnect;
  mqtt::encode_disconnect_v5(disconnect, 0x04, {});  // with will message
  ASSERT_TRUE(client->send(disconnect));
  std::vector<TestEvents::Event> gone = events_->wait_for("disconnected", id);
  ASSERT_EQ(gone.size(), 1u);
  EXPECT_EQ(gone[0].reason, static_cast<int>(DisconnectReason::kClientDisconnect));
  EXPECT_EQ(gone[0].code, 0x04);
  // The in-process client is reported too, with no address.
  const std::string local_id = id_on_shard("local-events", 2);
  {
    LocalClientOptions options;
    options.client_id = local_id;
    std::string error;
    std::unique_ptr<LocalClient> local = broker_->connect_local(options, &error);
    ASSERT_NE(local, nullptr) << error;
    std::vector<TestEvents::Event> local_connected = events_->wait_for("connected", local_id);
    ASSERT_EQ(local_connected.size(), 1u);
    EXPECT_TRUE(local_connected[0].flag);
    EXPECT_EQ(local_connected[0].detail, "");
  }
  std::vector<TestEvents::Event> local_gone = events_->wait_for("disconnected", local_id);
  ASSERT_EQ(local_gone.size(), 1u);
  EXPECT_EQ(local_gone[0].reason, static_cast<int>(DisconnectReason::kClientDisconnect));
  EXPECT_EQ(events_->now("disconnected", id).size(), 1u);
}

TEST_P(Hooks, EachDisconnectReasonIsReportedOnce) {
  std::string why;
  // Connection lost: the socket closes without DISCONNECT.
  const std::string lost_id = id_on_shard("lost", 0);
  network(lost_id).reset();
  // Protocol error: a second CONNECT.
  const std::string error_id = id_on_shard("error", 1);
  auto bad = network(error_id);
  mqtt::ConnectPacket connect;
  connect.protocol_level = 5;
  connect.client_id = error_id;
  base::ByteBuffer out;
  mqtt::encode_connect(out, connect);
  ASSERT_TRUE(bad->send(out));
  // Taken over: the same client id again.
  const std::string taken_id = id_on_shard("taken", 2);
  auto first = network(taken_id);
  auto second = network(taken_id);
  // Keep-alive: 1 s, then silence (expires after 1.5 s, checked on the shard's tick).
  const std::string idle_id = id_on_shard("idle", 3);
  Net311 idle(broker_->port());
  ASSERT_TRUE(idle.connect(idle_id, &why, /*keep_alive=*/1)) << why;
  // Administrative: the interceptor ends the client.
  const std::string kicked_id = id_on_shard("kicked", 0);
  auto kicked = network(kicked_id);
  mqtt::PublishPacket publish;
  publish.topic = "kick/me";
  base::ByteBuffer kick;
  mqtt::encode_publish(kick, publish, mqtt::ProtocolVersion::kV5, {});
  ASSERT_TRUE(kicked->send(kick));
  std::optional<NetPacket> told = kicked->read(&why);
  ASSERT_TRUE(told && told->type == mqtt::PacketType::kDisconnect) << why;
  EXPECT_EQ(static_cast<uint8_t>(told->body[0]), 0x98);

  auto expect_once = [&](const std::string& id, DisconnectReason reason, uint8_t code) {
    std::vector<TestEvents::Event> gone = events_->wait_for("disconnected", id);
    ASSERT_EQ(gone.size(), 1u) << id;
    EXPECT_EQ(gone[0].reason, static_cast<int>(reason)) << id << ": " << disconnect_reason_name(
                                                               static_cast<DisconnectReason>(gone[0].reason));
    EXPECT_EQ(gone[0].code, code) << id;
  };
  expect_once(lost_id, DisconnectReason::kConnectionLost, 0);
  expect_once(error_id, DisconnectReason::kProtocolError, 0x82);
  expect_once(taken_id, DisconnectReason::kTakenOver, 0x8E);
  expect_once(idle_id, DisconnectReason::kKeepAliveTimeout, 0x8D);
  expect_once(kicked_id, DisconnectReason::kAdministrative, 0x98);
  EXPECT_EQ(events_->now("connected", taken_id).size(), 2u);

  // Shutdown: the one still connected (the second of the takeover) is reported at stop.
  stop();
  std::vector<TestEvents::Event> gone = events_->now("disconnected", taken_id);
  ASSERT_EQ(gone.size(), 2u);
  EXPECT_EQ(gone[1].reason, static_cast<int>(DisconnectReason::kShutdown));
  EXPECT_EQ(gone[1].code, 0x8B);
  for (const std::string& id : {lost_id, error_id, idle_id, kicked_id}) {
    EXPECT_EQ(events_->now("disconnected", id).size(), 1u) << id;
  }
}

TEST_P(Hooks, DroppedMessagesAreReportedWithTheirReason) {
  restart([](Options& options) {
    options.max_queued_messages = 2;
    options.authorization_hook = std::make_shared<DenySecret>();
  });
  std::string why;
  // An offline persistent session: QoS 0 for it is dropped (offline), QoS 1 queued up to 2.
  const std::string offline_id = id_on_shard("offline", 1);
  {
    LocalClientOptions options;
    options.client_id = offline_id;
    options.clean_start = false;
    options.session_expiry_interval_seconds = 600;
    std::string error;
    std::unique_ptr<LocalClient> local = broker_->connect_local(options, &error);
    ASSERT_NE(local, nullptr) << error;
    SubscribeOptions subscribe;
    subscribe.qos = 1;
    ASSERT_EQ(local->subscribe("data/#", subscribe, [](const ReceivedMessage&) {}).get().reason_code, 1);
  }
  const std::string publisher_id = id_on_shard("pub", 2);
  auto publisher = network(publisher_id);
  EXPECT_EQ(publisher->publish("data/0", "x", 0, false, &why), 0) << why;
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(publisher->publish("data/" + std::to_string(i), "x", 1, false, &why), 0) << why;
  EXPECT_EQ(publisher->publish("secret/a", "x", 1, false, &why), 0x87) << why;

  std::vector<TestEvents::Event> dropped = events_->wait_for("dropped", offline_id, 2);
  ASSERT_EQ(dropped.size(), 2u);
  EXPECT_EQ(dropped[0].detail, "data/0");
  EXPECT_EQ(dropped[0].reason, static_cast<int>(DropReason::kOffline));
  EXPECT_EQ(dropped[1].detail, "data/3");
  EXPECT_EQ(dropped[1].number, 1);
  EXPECT_EQ(dropped[1].reason, static_cast<int>(DropReason::kQueueFull));
  std::vector<TestEvents::Event> refused = events_->wait_for("dropped", publisher_id);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].detail, "secret/a");
  EXPECT_EQ(refused[0].reason, static_cast<int>(DropReason::kAuthorization));
}


// Asynchronous decisions: answered later from another thread, timed out, refused when too many
// are pending; while one client waits, the others go on.
class AsyncHooks : public Hooks {};

TEST_P(AsyncHooks, InterceptorAnswersFromAnotherThreadWhileOtherClientsGoOn) {
  auto interceptor = std::make_shared<AsyncInterceptor>();
  restart([&](Options& options) {
    options.message_interceptor = interceptor;
    options.hook_timeout_ms = 20000;
  });
  std::string why;
  auto subscriber = network(id_on_shard("sub", 1));
  ASSERT_EQ(subscriber->subscribe("#", 1, &why), 1) << why;
  const std::string publisher_id = id_on_shard("pub", 2);
  auto publisher = network(publisher_id);
  // Several deferred publishes in a row, sent at once: each waits for its answer, in order,
  // and the PINGREQ behind them is answered only after them.
  base::ByteBuffer burst;
  auto add_publish = [&](std::string_view topic, uint16_t packet_id) {
    mqtt::PublishPacket publish;
    publish.topic = topic;
    publish.payload = "early";
    publish.qos = 1;
    publish.packet_id = packet_id;
    mqtt::encode_publish(burst, publish, mqtt::ProtocolVersion::kV5, {});
  };
  add_publish("async-pass/a", 101);
  add_publish("async-drop/b", 102);
  add_publish("async-rewrite/c", 103);
  mqtt::encode_pingreq(burst);
  ASSERT_TRUE(publisher->send(burst));
  // Meanwhile another client on the same shard publishes and is answered at once.
  auto other = network(id_on_shard("other", 2));
  EXPECT_EQ(other->publish("plain/x", "now", 1, false, &why), 0) << why;
  std::optional<NetPublish> plain = subscriber->receive_publish(&why);
  ASSERT_TRUE(plain) << why;
  EXPECT_EQ(plain->topic, "plain/x");

  std::vector<std::pair<uint16_t, uint8_t>> acks;
  for (int i = 0; i < 3; ++i) {
    std::optional<NetPacket> packet = publisher->read(&why);
    ASSERT_TRUE(packet && packet->type == mqtt::PacketType::kPuback) << why;
    mqtt::AckPacket ack;
    ASSERT_EQ(mqtt::decode_ack(packet->span(), packet->flags, mqtt::PacketType::kPuback, mqtt::ProtocolVersion::kV5,
                               &ack),
              mqtt::DecodeStatus::kOk);
    acks.emplace_back(ack.packet_id, ack.reason_code);
  }
  EXPECT_EQ(acks, (std::vector<std::pair<uint16_t, uint8_t>>{{101, 0}, {102, 0x99}, {103, 0}}));
  std::optional<NetPacket> pong = publisher->read(&why);
  ASSERT_TRUE(pong && pong->type == mqtt::PacketType::kPingresp) << why;

  std::optional<NetPublish> first = subscriber->receive_publish(&why);
  ASSERT_TRUE(first) << why;
  EXPECT_EQ(first->topic, "async-pass/a");
  std::optional<NetPublish> second = subscriber->receive_publish(&why);
  ASSERT_TRUE(second) << why;
  EXPECT_EQ(second->topic, "rewritten/async");
  EXPECT_EQ(second->payload, "later");
}

TEST_P(AsyncHooks, AnUnansweredDecisionTimesOutWithUnspecifiedErrorAndAnOrphanAtOnce) {
  auto interceptor = std::make_shared<AsyncInterceptor>();
  restart([&](Options& options) {
    options.message_interceptor = interceptor;
    options.hook_timeout_ms = 1000;
  });
  std::string why;
  auto publisher = network(id_on_shard("pub", 0));
  // The handle destroyed unanswered answers at once, as a timeout.
  EXPECT_EQ(publisher->publish("orphan/a", "x", 1, false, &why), 0x80) << why;
  auto subscriber = network(id_on_shard("sub", 0));
  ASSERT_EQ(subscriber->subscribe("plain/#", 1, &why), 1) << why;
  mqtt::PublishPacket publish;
  publish.topic = "never/a";
  publish.qos = 2;
  publish.packet_id = 9;
  base::ByteBuffer out;
  mqtt::encode_publish(out, publish, mqtt::ProtocolVersion::kV5, {});
  mqtt::encode_pingreq(out);
  ASSERT_TRUE(publisher->send(out));
  // Others on the same shard go on while it waits (a full round trip each).
  auto other = network(id_on_shard("other", 0));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(other->publish("plain/x", "now", 1, false, &why), 0) << why;
    ASSERT_TRUE(subscriber->receive_publish(&why)) << why;
  }
  // PUBREC 0x80 once hook_timeout_ms passed (ticks are about a second apart), then PINGRESP.
  std::optional<NetPacket> pubrec = publisher->read(&why);
  ASSERT_TRUE(pubrec && pubrec->type == mqtt::PacketType::kPubrec) << why;
  mqtt::AckPacket ack;
  ASSERT_EQ(mqtt::decode_ack(pubrec->span(), pubrec->flags, mqtt::PacketType::kPubrec, mqtt::ProtocolVersion::kV5,
                             &ack),
            mqtt::DecodeStatus::kOk);
  EXPECT_EQ(ack.packet_id, 9);
  EXPECT_EQ(ack.reason_code, 0x80);
  std::optional<NetPacket> pong = publisher->read(&why);
  ASSERT_TRUE(pong && pong->type == mqtt::PacketType::kPingresp) << why;
}

TEST_P(AsyncHooks, PastMaxPendingDecisionsAPublishIsRefusedWithQuotaExceeded) {
  auto interceptor = std::make_shared<AsyncInterceptor>();
  restart([&](Options& options) {
    options.message_interceptor = interceptor;
    options.max_pending_hook_decisions = 1;
    options.hook_timeout_ms = 20000;
  });
  std::string why;
  auto waiting = network(id_on_shard("waiting", 1));
  mqtt::PublishPacket publish;
  publish.topic = "never/a";
  publish.qos = 1;
  publish.packet_id = 5;
  base::ByteBuffer out;
  mqtt::encode_publish(out, publish, mqtt::ProtocolVersion::kV5, {});
  ASSERT_TRUE(waiting->send(out));
  // The one decision this shard may wait for is taken once `waiting` is held: a round trip of
  // a client on the same shard, sent after it, proves the shard read it.
  auto second = network(id_on_shard("second", 1));
  ASSERT_TRUE(second->ping(&why)) << why;
  EXPECT_EQ(second->publish("never/b", "x", 1, false, &why), 0x97) << why;
  EXPECT_EQ(second->publish("plain/c", "x", 1, false, &why), 0) << why;  // not deferred: passed
}

TEST_P(AsyncHooks, AuthorizationRefusesPublishesAndSubscriptionsLater) {
  restart([&](Options& options) { options.authorization_hook = std::make_shared<AsyncAuthorization>(); });
  std::string why;
  auto client = network(id_on_shard("client", 3));
  EXPECT_EQ(client->publish("ask/a", "x", 1, false, &why), 0x87) << why;
  EXPECT_EQ(client->publish("free/a", "x", 1, false, &why), 0) << why;
  // One SUBSCRIBE, three filters: the middle one refused later, the last allowed later.
  std::vector<mqtt::SubscribeTopic> topics(3);
  topics[0].filter = "free/#";
  topics[0].qos = 1;
  topics[1].filter = "ask/#";
  topics[1].qos = 1;
  topics[2].filter = "askok/#";
  topics[2].qos = 2;
  base::ByteBuffer out;
  mqtt::encode_subscribe(out, 7, topics, mqtt::ProtocolVersion::kV5, {});
  ASSERT_TRUE(client->send(out));
  std::optional<NetPacket> packet = client->read(&why);
  ASSERT_TRUE(packet && packet->type == mqtt::PacketType::kSuback) << why;
  mqtt::SubackPacket suback;
  ASSERT_EQ(mqtt::decode_suback(packet->span(), packet->flags, mqtt::ProtocolVersion::kV5, &suback),
            mqtt::DecodeStatus::kOk);
  EXPECT_EQ(suback.packet_id, 7);
  EXPECT_EQ(std::vector<uint8_t>(suback.return_codes.begin(), suback.return_codes.end()),
            (std::vector<uint8_t>{1, 0x87, 2}));
  // The granted ones work, each reported once.
  auto publisher = network(id_on_shard("publisher", 0));
  EXPECT_EQ(publisher->publish("askok/x", "y", 1, false, &why), 0) << why;
  std::optional<NetPublish> message = client->receive_publish(&why);
  ASSERT_TRUE(message) << why;
  EXPECT_EQ(message->topic, "askok/x");
  ASSERT_TRUE(client->ping(&why)) << why;
  std::vector<TestEvents::Event> subscribed = events_->now("subscribed", id_on_shard("client", 3));
  ASSERT_EQ(subscribed.size(), 2u);
  EXPECT_EQ(subscribed[0].detail, "free/#");
  EXPECT_EQ(subscribed[1].detail, "askok/#");
}


TEST_P(AsyncHooks, AuthenticationAnsweredLaterConnectsAndAnUnansweredOneTimesOut) {
  restart([&](Options& options) {
    options.authentication_hook = std::make_shared<AsyncAuthenticator>();
    options.hook_timeout_ms = 1000;
  });
  std::string why;
  auto server_packet = [&](NetClient& client) {
    std::optional<NetPacket> packet = client.read(&why);
    EXPECT_TRUE(packet) << why;
    if (!packet) return ServerPacket{};
    return decode_server_packet(static_cast<uint8_t>(static_cast<uint8_t>(packet->type) << 4 | packet->flags),
                                packet->span());
  };
  auto send = [](NetClient& client, const std::string& bytes) {
    base::ByteBuffer out;
    out.append(bytes);
    return client.send(out);
  };
  // Never answered: CONNACK 0x88 Server unavailable once hook_timeout_ms passed.
  NetClient waiting(broker_->port());
  ASSERT_TRUE(send(waiting, connect5_bytes(id_on_shard("waiting", 0), {.method = "async", .data = "never"})));
  // One step, answered from another thread.
  NetClient fast(broker_->port());
  ASSERT_TRUE(send(fast, connect5_bytes(id_on_shard("fast", 0), {.method = "async", .data = "fast"})));
  ServerPacket connack = server_packet(fast);
  EXPECT_EQ(connack.type, mqtt::PacketType::kConnack);
  EXPECT_EQ(connack.reason_code, 0);
  EXPECT_EQ(connack.data, "welcome");
  // A re-authentication answered later; the PINGREQ behind it waits for it.
  base::ByteBuffer ping;
  mqtt::encode_pingreq(ping);
  ASSERT_TRUE(send(fast, auth_bytes(0x19, "async", "renew") + std::string(ping.view())));
  ServerPacket renewed = server_packet(fast);
  EXPECT_EQ(renewed.type, mqtt::PacketType::kAuth);
  EXPECT_EQ(renewed.reason_code, 0x00);
  EXPECT_EQ(renewed.data, "again");
  EXPECT_EQ(server_packet(fast).type, mqtt::PacketType::kPingresp);
  // Two steps, each answered later.
  NetClient twostep(broker_->port());
  ASSERT_TRUE(send(twostep, connect5_bytes(id_on_shard("twostep", 0), {.method = "async", .data = "twostep"})));
  ServerPacket challenge = server_packet(twostep);
  EXPECT_EQ(challenge.type, mqtt::PacketType::kAuth);
  EXPECT_EQ(challenge.reason_code, 0x18);
  EXPECT_EQ(challenge.data, "challenge");
  base::ByteBuffer pingreq;
  mqtt::encode_pingreq(pingreq);
  ASSERT_TRUE(send(twostep, auth_bytes(0x18, "async", "response") + std::string(pingreq.view())));
  connack = server_packet(twostep);
  EXPECT_EQ(connack.type, mqtt::PacketType::kConnack);
  EXPECT_EQ(connack.reason_code, 0);
  EXPECT_EQ(connack.data, "in");
  EXPECT_EQ(server_packet(twostep).type, mqtt::PacketType::kPingresp);  // sent behind the AUTH, answered after
  // A client without enhanced authentication goes on meanwhile.
  auto plain = network(id_on_shard("plain", 0));
  ASSERT_TRUE(plain->ping(&why)) << why;
  ServerPacket refused = server_packet(waiting);
  EXPECT_EQ(refused.type, mqtt::PacketType::kConnack);
  EXPECT_EQ(refused.reason_code, 0x88);
  // A wrong second step is refused with the hook's code.
  NetClient wrong(broker_->port());
  ASSERT_TRUE(send(wrong, connect5_bytes(id_on_shard("wrong", 0), {.method = "async", .data = "twostep"})));
  EXPECT_EQ(server_packet(wrong).type, mqtt::PacketType::kAuth);
  ASSERT_TRUE(send(wrong, auth_bytes(0x18, "async", "guess")));
  refused = server_packet(wrong);
  EXPECT_EQ(refused.type, mqtt::PacketType::kConnack);
  EXPECT_EQ(refused.reason_code, 0x86);
}

INSTANTIATE_TEST_SUITE_P(Threads, AsyncHooks, ::testing::Values(1u, 4u),
                         [](const ::testing::TestParamInfo<uint32_t>& param_info) {
                           return "t" + std::to_string(param_info.param);
                         });

INSTANTIATE_TEST_SUITE_P(Threads, Hooks, ::testing::Values(1u, 4u),
                         [](const ::testing::TestParamInfo<uint32_t>& param_info) {
                           return "t" + std::to_string(param_info.param);
                         });

}  // namespace
}  // namespace coremq::testing
