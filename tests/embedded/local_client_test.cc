// In-process clients (include/coremq/local_client.h) through a real coremq::Broker started in
// this process on 127.0.0.1, port 0, with --threads 1 and 4, next to raw MQTT 5 network
// clients (net_client.h): messages cross between the two kinds at QoS 0/1/2, retained
// messages, $share groups, no-local, several host threads at once, a full intake, and
// clients or the broker going away while messages are in flight (run under ASan and TSan by
// the lead). Every wait is on a protocol event (a SUBACK, a PUBACK, a message, a PINGRESP),
// bounded by kWait; nothing sleeps.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "broker/shard_state.h"
#include "coremq/broker.h"
#include "coremq/local_client.h"
#include "embedded_broker.h"
#include "net_client.h"

namespace coremq::testing {
namespace {

constexpr auto kWait = std::chrono::seconds(20);

// A copy of a ReceivedMessage (its views die with the callback).
struct Received {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  std::optional<std::string> content_type;
  std::optional<std::string> response_topic;
  std::optional<std::string> correlation_data;
  std::vector<std::pair<std::string, std::string>> user_properties;
  std::vector<uint32_t> subscription_identifiers;
};

// Collects what a subscription's callback gets (on the delivery thread) for the test thread.
class Inbox {
 public:
  MessageCallback callback() {
    return [this](const ReceivedMessage& message) { add(message); };
  }
  void add(const ReceivedMessage& message) {
    Received copy{std::string(message.topic),
                  std::string(message.payload),
                  message.qos,
                  message.retain,
                  {},
                  {},
                  {},
                  {},
                  message.subscription_identifiers};
    if (message.content_type) copy.content_type = std::string(*message.content_type);
    if (message.response_topic) copy.response_topic = std::string(*message.response_topic);
    if (message.correlation_data) copy.correlation_data = std::string(*message.correlation_data);
    for (const auto& [name, value] : message.user_properties) copy.user_properties.emplace_back(name, value);
    std::lock_guard lock(mutex_);
    messages_.push_back(std::move(copy));
    changed_.notify_all();
  }
  // True once at least `count` messages arrived (within kWait).
  bool wait_for(size_t count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, kWait, [&] { return messages_.size() >= count; });
  }
  std::vector<Received> messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  size_t size() const {
    std::lock_guard lock(mutex_);
    return messages_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Received> messages_;
};

OperationResult get(std::future<OperationResult> future) {
  if (future.wait_for(kWait) != std::future_status::ready) return {LocalStatus::kDisconnected, 0xFF};
  return future.get();
}

class LocalClients : public EmbeddedBrokerTest {
 protected:
  void configure(Options& options) override {
    options.log_level = "warning";
    options.max_queued_messages = 10000;
  }

  std::unique_ptr<LocalClient> local(const std::string& client_id) {
    std::string error;
    LocalClientOptions options;
    options.client_id = client_id;
    std::unique_ptr<LocalClient> client = broker_->connect_local(options, &error);
    EXPECT_NE(client, nullptr) << error;
    return client;
  }
};

TEST_P(LocalClients, InProcessPublishReachesNetworkSubscribersOnEveryShardAtEachQos) {
  std::vector<std::unique_ptr<NetClient>> subscribers;
  for (uint32_t shard = 0; shard < shards(); ++shard) {
    subscribers.push_back(network(id_on_shard("net-sub", shard)));
    std::string why;
    ASSERT_EQ(subscribers.back()->subscribe("sensors/#", 2, &why), 2) << why;
  }
  std::vector<std::unique_ptr<LocalClient>> publishers;
  for (uint32_t shard = 0; shard < shards(); ++shard)
    publishers.push_back(local(id_on_shard("local-pub", shard)));
  std::set<std::string> expected;
  for (size_t p = 0; p < publishers.size(); ++p) {
    for (uint8_t qos = 0; qos <= 2; ++qos) {
      std::string topic = "sensors/" + std::to_string(p) + "/" + std::to_string(qos);
      OperationResult result = get(publishers[p]->publish(topic, "payload-" + topic, qos));
      EXPECT_EQ(result.status, LocalStatus::kOk) << topic;
      EXPECT_EQ(result.reason_code, 0) << topic;  // subscribers exist: not 0x10
      expected.insert(topic);
    }
  }
  for (auto& subscriber : subscribers) {
    std::set<std::string> got;
    for (size_t i = 0; i < expected.size(); ++i) {
      std::string why;
      std::optional<NetPublish> publish = subscriber->receive_publish(&why);
      ASSERT_TRUE(publish) << why;
      EXPECT_EQ(publish->payload, "payload-" + publish->topic);
      EXPECT_EQ(std::to_string(publish->qos), publish->topic.substr(publish->topic.size() - 1));
      got.insert(publish->topic);
    }
    EXPECT_EQ(got, expected);
  }
}

TEST_P(LocalClients, NetworkPublishReachesInProcessSubscribersWithProperties) {
  std::vector<std::unique_ptr<LocalClient>> subscribers;
  std::vector<std::unique_ptr<Inbox>> inboxes;
  for (uint32_t shard = 0; shard < shards(); ++shard) {
    subscribers.push_back(local(id_on_shard("local-sub", shard)));
    inboxes.push_back(std::make_unique<Inbox>());
    SubscribeOptions options;
    options.qos = 2;
    options.subscription_identifier = 7 + shard;
    OperationResult suback = get(subscribers.back()->subscribe("cmd/#", options, inboxes.back()->callback()));
    ASSERT_EQ(suback.status, LocalStatus::kOk);
    ASSERT_EQ(suback.reason_code, 2);  // granted QoS 2
  }
  auto publisher = network("net-pub");
  for (uint8_t qos = 0; qos <= 2; ++qos) {
    std::string why;
    ASSERT_EQ(publisher->publish("cmd/" + std::to_string(qos), "go", qos, false, &why, {{"origin", "net"}}),
              0)
        << why;
  }
  for (uint32_t shard = 0; shard < shards(); ++shard) {
    ASSERT_TRUE(inboxes[shard]->wait_for(3)) << "shard " << shard << " got " << inboxes[shard]->size();
    std::set<std::string> topics;
    for (const Received& message : inboxes[shard]->messages()) {
      topics.insert(message.topic);
      EXPECT_EQ(message.payload, "go");
      EXPECT_EQ(std::to_string(message.qos), message.topic.substr(4));
      EXPECT_FALSE(message.retain);
      ASSERT_EQ(message.user_properties.size(), 1u);
      EXPECT_EQ(message.user_properties[0], (std::pair<std::string, std::string>{"origin", "net"}));
      EXPECT_EQ(message.subscription_identifiers, std::vector<uint32_t>{7 + shard});
    }
    EXPECT_EQ(topics, (std::set<std::string>{"cmd/0", "cmd/1", "cmd/2"}));
  }
}

TEST_P(LocalClients, InProcessToInProcessAtQos2CarriesEveryProperty) {
  auto subscriber = local(id_on_shard("q2-sub", 0));
  auto publisher = local(id_on_shard("q2-pub", shards() - 1));
  Inbox inbox;
  ASSERT_EQ(get(subscriber->subscribe("q2/#", SubscribeOptions{2, false, false, 0, 0}, inbox.callback()))
                .reason_code,
            2);
  MessageProperties properties;
  properties.content_type = "text/plain";
  properties.response_topic = "q2/reply";
  properties.correlation_data = std::string("\x00\x01", 2);
  properties.user_properties = {{"a", "1"}, {"b", "2"}};
  OperationResult result = get(publisher->publish("q2/x", "exactly once", 2, false, properties));
  EXPECT_TRUE(result.ok()) << local_status_name(result.status) << " " << int(result.reason_code);
  ASSERT_TRUE(inbox.wait_for(1));
  Received message = inbox.messages()[0];
  EXPECT_EQ(message.qos, 2);
  EXPECT_EQ(message.payload, "exactly once");
  EXPECT_EQ(message.content_type, "text/plain");
  EXPECT_EQ(message.response_topic, "q2/reply");
  EXPECT_EQ(message.correlation_data, std::string("\x00\x01", 2));
  ASSERT_EQ(message.user_properties.size(), 2u);
  EXPECT_EQ(message.user_properties[1].second, "2");
  EXPECT_TRUE(message.subscription_identifiers.empty());  // none asked for
  // No subscriber: PUBACK 0x10 (No matching subscribers) is a success.
  OperationResult lonely = get(publisher->publish("nobody/listens", "x", 1));
  EXPECT_EQ(lonely.status, LocalStatus::kOk);
  EXPECT_TRUE(lonely.ok());
}

TEST_P(LocalClients, RetainedMessageIsDeliveredOnSubscribe) {
  auto publisher = network("net-retain");
  std::string why;
  // A retained PUBACK waits until every shard has the message (barrier): no race below.
  ASSERT_EQ(publisher->publish("state/lamp", "on", 1, true, &why), 0) << why;
  for (uint32_t shard = 0; shard < shards(); ++shard) {
    auto subscriber = local(id_on_shard("retain-sub", shard));
    Inbox inbox;
    ASSERT_TRUE(
        get(subscriber->subscribe("state/#", SubscribeOptions{1, false, false, 0, 0}, inbox.callback()))
            .ok());
    ASSERT_TRUE(inbox.wait_for(1));
    Received message = inbox.messages()[0];
    EXPECT_EQ(message.topic, "state/lamp");
    EXPECT_EQ(message.payload, "on");
    EXPECT_TRUE(message.retain);
  }
  // And from an in-process publisher to a network subscriber.
  auto local_publisher = local("local-retain");
  ASSERT_TRUE(get(local_publisher->publish("state/door", "closed", 1, true)).ok());
  auto subscriber = network("net-retain-sub");
  ASSERT_EQ(subscriber->subscribe("state/door", 1, &why), 1) << why;
  std::optional<NetPublish> retained = subscriber->receive_publish(&why);
  ASSERT_TRUE(retained) << why;
  EXPECT_EQ(retained->payload, "closed");
  EXPECT_TRUE(retained->retain);
}

TEST_P(LocalClients, SharedSubscriptionSplitsBetweenInProcessAndNetworkMembers) {
  constexpr int kJobs = 20;
  auto local_member = local(id_on_shard("share-local", 0));
  Inbox local_jobs;
  Inbox local_done;
  ASSERT_TRUE(get(local_member->subscribe("$share/workers/jobs/#", SubscribeOptions{1, false, false, 0, 0},
                                          local_jobs.callback()))
                  .ok());
  ASSERT_TRUE(
      get(local_member->subscribe("done", SubscribeOptions{1, false, false, 0, 0}, local_done.callback()))
          .ok());
  auto network_member = network(id_on_shard("share-net", shards() - 1));
  std::string why;
  ASSERT_EQ(network_member->subscribe("$share/workers/jobs/#", 1, &why), 1) << why;
  ASSERT_EQ(network_member->subscribe("done", 1, &why), 1) << why;

  auto publisher = local(id_on_shard("share-pub", shards() > 1 ? 1 : 0));
  for (int i = 0; i < kJobs; ++i)
    ASSERT_TRUE(get(publisher->publish("jobs/" + std::to_string(i), std::to_string(i), 1)).ok());
  ASSERT_TRUE(get(publisher->publish("done", "", 1)).ok());

  // The network member's jobs, up to "done" (one publisher's messages arrive in order).
  std::multiset<std::string> payloads;
  size_t network_count = 0;
  for (;;) {
    std::optional<NetPublish> publish = network_member->receive_publish(&why);
    ASSERT_TRUE(publish) << why;
    if (publish->topic == "done") break;
    payloads.insert(publish->payload);
    ++network_count;
  }
  ASSERT_TRUE(local_done.wait_for(1));
  for (const Received& message : local_jobs.messages()) payloads.insert(message.payload);
  EXPECT_EQ(payloads.size(), size_t{kJobs}) << "each job exactly once across the group";
  EXPECT_EQ(std::set<std::string>(payloads.begin(), payloads.end()).size(), size_t{kJobs});
  EXPECT_GT(network_count, 0u);
  EXPECT_GT(local_jobs.size(), 0u);
}

TEST_P(LocalClients, NoLocalKeepsAClientsOwnMessagesFromIt) {
  auto talker = local(id_on_shard("nolocal-talker", 0));
  auto listener = local(id_on_shard("nolocal-listener", shards() - 1));
  Inbox own;
  Inbox other;
  ASSERT_TRUE(get(talker->subscribe("chat/#", SubscribeOptions{1, true, false, 0, 0}, own.callback())).ok());
  ASSERT_TRUE(
      get(listener->subscribe("chat/#", SubscribeOptions{1, false, false, 0, 0}, other.callback())).ok());
  ASSERT_TRUE(get(talker->publish("chat/1", "mine", 1)).ok());
  auto network_talker = network("nolocal-net");
  std::string why;
  ASSERT_EQ(network_talker->publish("chat/2", "theirs", 1, false, &why), 0) << why;
  ASSERT_TRUE(other.wait_for(2));
  ASSERT_TRUE(own.wait_for(1));
  // chat/1 was routed before chat/2 was even sent: had no-local failed, it would be first.
  std::vector<Received> got = own.messages();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].topic, "chat/2");
}

TEST_P(LocalClients, FourHostThreadsPublishAndSubscribeAtOnce) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  auto subscriber = local(id_on_shard("load-sub", 0));
  Inbox inbox;
  ASSERT_TRUE(
      get(subscriber->subscribe("load/#", SubscribeOptions{1, false, false, 0, 0}, inbox.callback())).ok());
  std::vector<std::unique_ptr<LocalClient>> publishers;
  for (int t = 0; t < kThreads; ++t)
    publishers.push_back(local(id_on_shard("load-pub" + std::to_string(t), t % shards())));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<Inbox>> owns;
  for (int t = 0; t < kThreads; ++t) owns.push_back(std::make_unique<Inbox>());
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      LocalClient& client = *publishers[t];
      if (!get(client.subscribe("own/" + std::to_string(t), SubscribeOptions{}, owns[t]->callback())).ok())
        ++failures;
      std::vector<std::future<OperationResult>> acks;
      for (int i = 0; i < kPerThread; ++i) {
        std::string topic = "load/" + std::to_string(t) + "/" + std::to_string(i);
        // QoS 0 to nobody, through the same intake, in between.
        (void)client.publish("noise/" + std::to_string(t), "x", 0);
        for (int attempt = 0;; ++attempt) {
          std::future<OperationResult> ack = client.publish(topic, std::to_string(i), 1);
          if (ack.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
            OperationResult result = ack.get();
            if (result.status == LocalStatus::kIntakeFull && attempt < 100000) {
              std::this_thread::yield();  // back-pressure: try again
              continue;
            }
            if (!result.ok()) {
              ++failures;
              std::fprintf(stderr, "thread %d publish %d: %s 0x%02x\n", t, i,
                           local_status_name(result.status), result.reason_code);
            }
            break;
          }
          acks.push_back(std::move(ack));
          break;
        }
      }
      for (auto& ack : acks) {
        if (!get(std::move(ack)).ok()) ++failures;
      }
      if (!get(client.unsubscribe("own/" + std::to_string(t))).ok()) ++failures;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(inbox.wait_for(kThreads * kPerThread)) << inbox.size();
  std::set<std::string> topics;
  for (const Received& message : inbox.messages()) topics.insert(message.topic);
  EXPECT_EQ(topics.size(), size_t{kThreads * kPerThread});
}

TEST_P(LocalClients, UnsubscribeInsideACallbackAndACallbackThatThrows) {
  auto client = local(id_on_shard("callbacks", 0));
  Inbox once;
  Inbox marks;
  LocalClient* self = client.get();
  ASSERT_TRUE(get(client->subscribe("once/#", SubscribeOptions{1, false, false, 0, 0},
                                    [&](const ReceivedMessage& message) {
                                      once.add(message);
                                      (void)self->unsubscribe("once/#");  // its future is not waited for
                                    }))
                  .ok());
  ASSERT_TRUE(
      get(client->subscribe("boom/#", SubscribeOptions{1, false, false, 0, 0}, [](const ReceivedMessage&) {
        throw std::runtime_error("host bug");
      })).ok());
  ASSERT_TRUE(get(client->subscribe("mark", SubscribeOptions{1, false, false, 0, 0}, marks.callback())).ok());
  auto publisher = network("callbacks-pub");
  std::string why;
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(publisher->publish("once/" + std::to_string(i), "", 1, false, &why), 0) << why;
  ASSERT_EQ(publisher->publish("boom/1", "", 1, false, &why), 0) << why;
  ASSERT_EQ(publisher->publish("mark", "", 1, false, &why), 0) << why;
  ASSERT_TRUE(marks.wait_for(1));
  EXPECT_EQ(once.size(), 1u) << "the callback unsubscribed itself";
  EXPECT_TRUE(client->connected()) << "a throwing callback does not end the session";
  ASSERT_TRUE(get(client->publish("mark", "again", 1)).ok());
  ASSERT_TRUE(marks.wait_for(2));
}

TEST_P(LocalClients, InvalidArgumentsAreRefusedWithoutADisconnect) {
  auto client = local("args");
  EXPECT_EQ(get(client->publish("a/+", "x", 0)).status, LocalStatus::kInvalidArgument);
  EXPECT_EQ(get(client->publish("", "x", 1)).status, LocalStatus::kInvalidArgument);
  EXPECT_EQ(get(client->publish("a", "x", 3)).status, LocalStatus::kInvalidArgument);
  EXPECT_EQ(get(client->subscribe("$share/g/a", SubscribeOptions{0, true, false, 0, 0},
                                  [](const ReceivedMessage&) {}))
                .status,
            LocalStatus::kInvalidArgument);
  // A filter the broker refuses is a SUBACK reason code, not a disconnect.
  OperationResult bad = get(client->subscribe("a/#/b", SubscribeOptions{}, [](const ReceivedMessage&) {}));
  EXPECT_EQ(bad.status, LocalStatus::kOk);
  EXPECT_GE(bad.reason_code, 0x80);
  EXPECT_TRUE(client->connected());
  EXPECT_TRUE(get(client->publish("a", "x", 1)).ok());
  std::string error;
  LocalClientOptions too_long;
  too_long.client_id = std::string(1000, 'x');
  EXPECT_EQ(broker_->connect_local(too_long, &error), nullptr);
  EXPECT_FALSE(error.empty());
}

TEST_P(LocalClients, ClientsAndCallbacksOutliveAStoppedBroker) {
  auto subscriber = local(id_on_shard("outlive-sub", 0));
  std::atomic<int> delivered{0};
  ASSERT_TRUE(get(subscriber->subscribe("flood/#", SubscribeOptions{1, false, false, 0, 0},
                                        [&](const ReceivedMessage&) { ++delivered; }))
                  .ok());
  auto publisher = local(id_on_shard("outlive-pub", shards() - 1));
  std::vector<std::future<OperationResult>> acks;
  for (int i = 0; i < 300; ++i) acks.push_back(publisher->publish("flood/" + std::to_string(i), "x", 1));
  // A client destroyed while messages for it are in flight (its acknowledgements too).
  auto doomed = local(id_on_shard("outlive-doomed", 0));
  ASSERT_TRUE(
      get(doomed->subscribe("flood/#", SubscribeOptions{1, false, false, 0, 0}, [](const ReceivedMessage&) {
      })).ok());
  for (int i = 0; i < 100; ++i) (void)publisher->publish("flood/late", "x", 1);
  doomed.reset();
  // Stop with messages still moving; every future completes one way or the other.
  stop();
  for (auto& ack : acks) {
    ASSERT_EQ(ack.wait_for(kWait), std::future_status::ready);
    OperationResult result = ack.get();
    EXPECT_TRUE(result.status == LocalStatus::kOk || result.status == LocalStatus::kBrokerStopped ||
                result.status == LocalStatus::kDisconnected);
  }
  EXPECT_FALSE(subscriber->connected());
  EXPECT_EQ(get(subscriber->publish("flood/x", "x", 1)).status, LocalStatus::kBrokerStopped);
  broker_.reset();  // the handles outlive the Broker
  EXPECT_EQ(get(publisher->publish("flood/x", "x", 0)).status, LocalStatus::kBrokerStopped);
  subscriber.reset();
  publisher.reset();
}

TEST_P(LocalClients, StoppingTheBrokerWhileCallbacksAreQueuedRunsThemThenFailsWhatIsLeft) {
  auto subscriber = local(id_on_shard("queued-sub", 0));
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> calls{0};
  ASSERT_TRUE(get(subscriber->subscribe("queued/#", SubscribeOptions{1, false, false, 0, 0},
                                        [&](const ReceivedMessage&) {
                                          if (calls.fetch_add(1) == 0) {
                                            entered.set_value();
                                            released.wait_for(kWait);
                                          }
                                        }))
                  .ok());
  auto publisher = network("queued-pub");
  std::string why;
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(publisher->publish("queued/" + std::to_string(i), "x", 1, false, &why), 0) << why;
  ASSERT_EQ(entered.get_future().wait_for(kWait), std::future_status::ready);
  // The delivery thread is inside the first callback, the others wait behind it.
  std::future<OperationResult> never_acknowledged = subscriber->unsubscribe("queued/#");
  publisher.reset();  // (an open socket would make the stop linger for its DISCONNECT to be read)
  broker_->stop();
  std::thread waiter([&] { broker_->wait(); });
  release.set_value();
  waiter.join();
  EXPECT_GE(calls.load(), 1);
  OperationResult unsubscribed = get(std::move(never_acknowledged));
  EXPECT_TRUE(unsubscribed.status == LocalStatus::kOk || unsubscribed.status == LocalStatus::kBrokerStopped ||
              unsubscribed.status == LocalStatus::kDisconnected);
  EXPECT_FALSE(subscriber->connected());
  subscriber.reset();
}

TEST_P(LocalClients, InlineCallbacksRunOnTheOwnerShardAndAcknowledgeAtEachQos) {
  auto retainer = network("inline-retainer");
  std::string why;
  ASSERT_EQ(retainer->publish("inline/retained", "kept", 1, true, &why), 0) << why;
  LocalClientOptions options;
  options.client_id = id_on_shard("inline", shards() - 1);
  options.inline_callbacks = true;
  // One QoS 1/2 message at a time: the next is sent only once the inline callback's
  // acknowledgement reached the broker.
  options.receive_maximum = 1;
  std::string error;
  auto client = broker_->connect_local(options, &error);
  ASSERT_NE(client, nullptr) << error;
  Inbox inbox;
  Inbox marks;
  std::mutex names_mutex;
  std::set<std::string> thread_names;
  ASSERT_EQ(get(client->subscribe("inline/#", SubscribeOptions{2, false, false, 0, 0},
                                  [&](const ReceivedMessage& message) {
                                    char name[16] = {};
                                    pthread_getname_np(pthread_self(), name, sizeof(name));
                                    {
                                      std::lock_guard lock(names_mutex);
                                      thread_names.insert(name);
                                    }
                                    inbox.add(message);
                                  }))
                .reason_code,
            2);
  ASSERT_TRUE(inbox.wait_for(1));
  EXPECT_EQ(inbox.messages()[0].payload, "kept");
  EXPECT_TRUE(inbox.messages()[0].retain);
  ASSERT_TRUE(get(client->subscribe("mark", SubscribeOptions{1, false, false, 0, 0}, marks.callback())).ok());
  auto publisher = network("inline-pub");
  for (int i = 0; i < 6; ++i) {
    auto qos = static_cast<uint8_t>(i % 3);
    ASSERT_EQ(publisher->publish("inline/" + std::to_string(i), std::to_string(qos), qos, false, &why), 0)
        << why;
  }
  ASSERT_TRUE(inbox.wait_for(7)) << "acknowledgements of inline callbacks let the window move: "
                                 << inbox.size();
  {
    std::lock_guard lock(names_mutex);
    ASSERT_EQ(thread_names.size(), 1u);
    EXPECT_EQ(thread_names.begin()->rfind("coremq-shard", 0), 0u) << *thread_names.begin();
  }
  // Its own operations still complete (through the delivery thread); unsubscribing stops it.
  EXPECT_TRUE(get(client->publish("mark", "1", 1)).ok());
  EXPECT_TRUE(get(client->unsubscribe("inline/#")).ok());
  ASSERT_EQ(publisher->publish("inline/after", "x", 1, false, &why), 0) << why;
  ASSERT_EQ(publisher->publish("mark", "2", 1, false, &why), 0) << why;
  ASSERT_TRUE(marks.wait_for(2));
  EXPECT_EQ(inbox.size(), 7u);
}

TEST_P(LocalClients, AClientDestroyedInsideItsOwnCallbackGetsNoMoreCallbacks) {
  for (bool inline_callbacks : {false, true}) {
    SCOPED_TRACE(inline_callbacks ? "inline" : "delivery thread");
    LocalClientOptions options;
    options.client_id = id_on_shard(inline_callbacks ? "suicide-inline" : "suicide", 0);
    options.inline_callbacks = inline_callbacks;
    std::string error;
    std::unique_ptr<LocalClient> client = broker_->connect_local(options, &error);
    ASSERT_NE(client, nullptr) << error;
    std::atomic<int> calls{0};
    std::promise<void> destroyed;
    ASSERT_TRUE(get(client->subscribe("suicide/#", SubscribeOptions{1, false, false, 0, 0},
                                      [&](const ReceivedMessage&) {
                                        if (++calls > 1) return;
                                        client.reset();  // inside its own callback: does not wait
                                        destroyed.set_value();
                                      }))
                    .ok());
    auto watcher = local(id_on_shard(inline_callbacks ? "suicide-watch-inline" : "suicide-watch", 0));
    Inbox watched;
    ASSERT_TRUE(
        get(watcher->subscribe("suicide/#", SubscribeOptions{1, false, false, 0, 0}, watched.callback()))
            .ok());
    auto publisher = network(inline_callbacks ? "suicide-pub-inline" : "suicide-pub");
    std::string why;
    for (int i = 0; i < 5; ++i)
      ASSERT_EQ(publisher->publish("suicide/" + std::to_string(i), "x", 1, false, &why), 0) << why;
    ASSERT_TRUE(watched.wait_for(5));
    ASSERT_EQ(destroyed.get_future().wait_for(kWait), std::future_status::ready);
    EXPECT_EQ(calls.load(), 1);
  }
}

TEST_P(LocalClients, WithoutSubscriptionIdentifiersMessagesAreMatchedByTopic) {
  restart([](Options& options) { options.subscription_identifiers_available = false; });
  auto client = local(id_on_shard("no-identifiers", 0));
  Inbox doors;
  Inbox lights;
  ASSERT_TRUE(
      get(client->subscribe("room/+/door", SubscribeOptions{1, false, false, 0, 0}, doors.callback())).ok());
  ASSERT_TRUE(get(client->subscribe("$share/g/room/+/light", SubscribeOptions{1, false, false, 0, 0},
                                    lights.callback()))
                  .ok());
  auto publisher = network("no-identifiers-pub");
  std::string why;
  ASSERT_EQ(publisher->publish("room/1/light", "on", 1, false, &why), 0) << why;
  ASSERT_EQ(publisher->publish("room/1/door", "open", 1, false, &why), 0) << why;
  ASSERT_EQ(publisher->publish("room/2/light", "off", 1, false, &why), 0) << why;
  ASSERT_TRUE(lights.wait_for(2));
  ASSERT_TRUE(doors.wait_for(1));
  for (const Received& message : lights.messages()) EXPECT_TRUE(message.topic.ends_with("/light"));
  EXPECT_EQ(doors.messages()[0].topic, "room/1/door");
  EXPECT_EQ(doors.size(), 1u);
}

TEST_P(LocalClients, AResumedSessionDeliversWhatWasQueuedToOnUnmatchedMessage) {
  const std::string id = id_on_shard("persistent", shards() - 1);
  LocalClientOptions options;
  options.client_id = id;
  options.session_expiry_interval_seconds = 60;
  std::string error;
  {
    auto first = broker_->connect_local(options, &error);
    ASSERT_NE(first, nullptr) << error;
    ASSERT_TRUE(get(first->subscribe("persist/#", SubscribeOptions{1, false, false, 0, 0},
                                     [](const ReceivedMessage&) {}))
                    .ok());
  }  // DISCONNECT 0x00: the session stays, with its subscription
  auto publisher = network("persist-pub");
  std::string why;
  ASSERT_EQ(publisher->publish("persist/1", "kept", 1, false, &why), 0)
      << why;  // queued for the offline session
  Inbox unmatched;
  options.clean_start = false;
  options.on_unmatched_message = unmatched.callback();
  auto second = broker_->connect_local(options, &error);
  ASSERT_NE(second, nullptr) << error;
  ASSERT_TRUE(unmatched.wait_for(1));
  EXPECT_EQ(unmatched.messages()[0].topic, "persist/1");
  EXPECT_EQ(unmatched.messages()[0].payload, "kept");
  // Subscribing again takes the filter's messages from then on.
  Inbox inbox;
  ASSERT_TRUE(
      get(second->subscribe("persist/#", SubscribeOptions{1, false, false, 0, 0}, inbox.callback())).ok());
  ASSERT_EQ(publisher->publish("persist/2", "new", 1, false, &why), 0) << why;
  ASSERT_TRUE(inbox.wait_for(1));
  EXPECT_EQ(inbox.messages()[0].payload, "new");
  EXPECT_EQ(unmatched.size(), 1u);
}

TEST_P(LocalClients, ManualAcknowledgementHoldsTheWindowUntilTheHostAcknowledges) {
  LocalClientOptions options;
  options.client_id = id_on_shard("manual", 0);
  options.manual_acknowledgement = true;
  options.receive_maximum = 2;
  std::string error;
  std::unique_ptr<LocalClient> client = broker_->connect_local(options, &error);
  ASSERT_NE(client, nullptr) << error;
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<MessageAcknowledgement> acknowledgements;
  std::vector<std::string> payloads;
  SubscribeOptions subscribe;
  subscribe.qos = 1;
  auto on_message = [&](const ReceivedMessage& message) {
    std::lock_guard lock(mutex);
    acknowledgements.push_back(message.acknowledgement);
    payloads.emplace_back(message.payload);
    changed.notify_all();
  };
  ASSERT_EQ(client->subscribe("work/#", subscribe, on_message).get().reason_code, 1);
  // On the same shard, so each PUBACK to the publisher comes after the message met the window.
  auto publisher = network(id_on_shard("producer", 0));
  std::string why;
  for (const char* payload : {"1", "2", "3"}) ASSERT_EQ(publisher->publish("work/a", payload, 1, false, &why), 0) << why;
  // A SUBACK to the client comes behind whatever the broker sent it before: two messages, the
  // third waiting for an acknowledgement.
  ASSERT_EQ(client->subscribe("other/#", subscribe, on_message).get().reason_code, 1);
  {
    std::lock_guard lock(mutex);
    ASSERT_EQ(payloads, (std::vector<std::string>{"1", "2"}));
    EXPECT_EQ(acknowledgements[0].qos, 1);
    EXPECT_NE(acknowledgements[0].packet_id, acknowledgements[1].packet_id);
  }
  EXPECT_EQ(client->acknowledge(MessageAcknowledgement{}), LocalStatus::kInvalidArgument);
  EXPECT_EQ(client->acknowledge(acknowledgements[0]), LocalStatus::kOk);  // from this (host) thread
  std::unique_lock lock(mutex);
  ASSERT_TRUE(changed.wait_for(lock, kWait, [&] { return payloads.size() == 3; }));
  EXPECT_EQ(payloads[2], "3");
  lock.unlock();
  // A client that acknowledges when callbacks return refuses the call.
  std::unique_ptr<LocalClient> automatic = local(id_on_shard("automatic", 0));
  EXPECT_EQ(automatic->acknowledge(acknowledgements[1]), LocalStatus::kInvalidArgument);
  LocalClientOptions both;
  both.manual_acknowledgement = true;
  both.inline_callbacks = true;
  EXPECT_EQ(broker_->connect_local(both, &error), nullptr);
}

INSTANTIATE_TEST_SUITE_P(Threads, LocalClients, ::testing::Values(1u, 4u),
                         [](const ::testing::TestParamInfo<uint32_t>& param_info) {
                           return "t" + std::to_string(param_info.param);
                         });

// The intake bound: with the delivery thread held in a callback, a close waiting to reach it
// stops the shard from reading its intake, so the intake fills and the next operation is
// refused with kIntakeFull; once the callback returns everything flows again.
class LocalIntakeBound : public LocalClients {};

TEST_P(LocalIntakeBound, AFullIntakeRefusesWithIntakeFullThenRecovers) {
  restart([](Options& options) {
    options.local_intake_capacity = 4;
    options.local_delivery_queue_capacity = 1;
  });
  auto blocked = local("intake-blocked");
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> first{true};
  ASSERT_TRUE(get(blocked->subscribe("hold", SubscribeOptions{}, [&](const ReceivedMessage&) {
                if (first.exchange(false)) {
                  entered.set_value();
                  released.wait_for(kWait);
                }
              })).ok());
  auto victim = local("intake-victim");
  auto publisher = network("intake-net");
  std::string why;
  ASSERT_EQ(publisher->publish("hold", "1", 1, false, &why), 0) << why;
  ASSERT_EQ(entered.get_future().wait_for(kWait), std::future_status::ready);
  // The delivery thread is held: this one fills the delivery queue (capacity 1) ...
  ASSERT_EQ(publisher->publish("hold", "2", 1, false, &why), 0) << why;
  // ... and a takeover of the victim's session makes a close that cannot reach it.
  auto taker = network("intake-victim");
  int accepted = 0;
  LocalStatus status = LocalStatus::kOk;
  for (int i = 0; i < 16 && status == LocalStatus::kOk; ++i) {
    status = get(blocked->publish("nowhere", "x", 0)).status;
    if (status == LocalStatus::kOk) ++accepted;
  }
  EXPECT_EQ(status, LocalStatus::kIntakeFull);
  EXPECT_EQ(accepted, 4) << "the intake holds exactly its capacity";
  release.set_value();
  // Everything flows again; the victim learns it was taken over.
  OperationResult after = {LocalStatus::kIntakeFull, 0};
  for (int i = 0; i < 100000 && after.status == LocalStatus::kIntakeFull; ++i) {
    after = get(blocked->publish("nowhere", "x", 1));
    if (after.status == LocalStatus::kIntakeFull) std::this_thread::yield();
  }
  EXPECT_TRUE(after.ok()) << local_status_name(after.status);
  EXPECT_EQ(get(victim->publish("x", "y", 1)).status, LocalStatus::kDisconnected);
  EXPECT_FALSE(victim->connected());
}

INSTANTIATE_TEST_SUITE_P(Threads, LocalIntakeBound, ::testing::Values(1u),
                         [](const ::testing::TestParamInfo<uint32_t>& param_info) {
                           return "t" + std::to_string(param_info.param);
                         });

}  // namespace
}  // namespace coremq::testing
