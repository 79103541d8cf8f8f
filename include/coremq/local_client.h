// In-process clients of an embedded coremq::Broker: a host program publishes and subscribes
// without a socket, as a real MQTT 5 session on the shard that owns its client id, so every
// broker rule (QoS, in-flight window, queues, retained messages, $share groups, no-local,
// subscription identifiers, session expiry) applies as it does to a network client.
// Get one with Broker::connect_local(); see docs/EMBEDDING.md ("In-process clients").
//
// Threads: publish/subscribe/unsubscribe may be called from any host thread at once.
// Message callbacks and completion callbacks run on the broker's delivery thread, one at a
// time; a future completes there too. Destroy a LocalClient on a host thread (not inside one
// of its callbacks) once no other thread uses it.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#ifndef COREMQ_API
#define COREMQ_API __attribute__((visibility("default")))
#endif

namespace coremq {

class LocalClientCore;

// What became of an operation before the broker answered it (kOk: it was handed to the
// broker; its MQTT reason code then says what the broker made of it).
enum class LocalStatus : uint8_t {
  kOk = 0,
  // The owner shard's intake is full (Options::local_intake_capacity): nothing was sent; try
  // again later. Counted in the shard's local_intake_full counter.
  kIntakeFull,
  // As many QoS 1/2 publishes are unacknowledged as the broker takes (Options::receive_maximum),
  // or 65535 operations of any kind are awaiting an answer.
  kTooManyInFlight,
  // The session ended (taken over by a client with the same id, or the broker closed it).
  kDisconnected,
  // The broker stopped (or was never started).
  kBrokerStopped,
  // A topic, filter, QoS or option the broker would treat as a protocol error (a wildcard in
  // a topic name, QoS above Options::maximum_qos, no-local on a $share filter ...).
  kInvalidArgument,
  // connect_local only: the broker refused the CONNECT (the reason code says why).
  kRefused,
};
COREMQ_API const char* local_status_name(LocalStatus status);

// The answer to an operation: status kOk and the MQTT 5 reason code of the PUBACK, PUBCOMP
// (QoS 2: PUBREC when it refuses), SUBACK (the granted QoS, or an error >= 0x80) or UNSUBACK;
// a QoS 0 publish completes with kOk/0 once the owner shard's intake took it.
struct OperationResult {
  LocalStatus status = LocalStatus::kOk;
  uint8_t reason_code = 0;
  bool ok() const { return status == LocalStatus::kOk && reason_code < 0x80; }
};

struct UserProperty {
  std::string name;
  std::string value;
};

// MQTT 5 PUBLISH properties a host may set (topic aliases and subscription identifiers are
// the broker's business).
struct MessageProperties {
  std::optional<uint8_t> payload_format_indicator;  // 1: the payload is UTF-8
  std::optional<uint32_t> message_expiry_interval_seconds;
  std::optional<std::string> content_type;
  std::optional<std::string> response_topic;
  std::optional<std::string> correlation_data;
  std::vector<UserProperty> user_properties;
};

// What LocalClient::acknowledge takes for a QoS 1/2 message a client with
// LocalClientOptions::manual_acknowledgement received (a copyable value: keep it past the
// callback). QoS 0 messages need none (qos 0 here).
struct MessageAcknowledgement {
  uint16_t packet_id = 0;
  uint8_t qos = 0;
};

// A message delivered to a subscription's callback. The views point into the delivery
// thread's buffers: valid only during the callback (copy what must outlive it).
struct ReceivedMessage {
  std::string_view topic;
  std::string_view payload;
  uint8_t qos = 0;
  bool retain = false;  // set on retained messages sent at subscribe (or retain-as-published)
  bool duplicate = false;
  std::optional<uint8_t> payload_format_indicator;
  std::optional<uint32_t> message_expiry_interval_seconds;
  std::optional<std::string_view> content_type;
  std::optional<std::string_view> response_topic;
  std::optional<std::string_view> correlation_data;
  std::vector<std::pair<std::string_view, std::string_view>> user_properties;
  // The identifiers given in SubscribeOptions of the subscriptions this message matched (none
  // for subscriptions made without one).
  std::vector<uint32_t> subscription_identifiers;
  // With manual_acknowledgement: what to pass to LocalClient::acknowledge once the host is done
  // with a QoS 1/2 message (the broker counts it in flight until then).
  MessageAcknowledgement acknowledgement;
};

struct SubscribeOptions {
  uint8_t qos = 0;
  bool no_local = false;  // not on $share filters (MQTT-3.8.3-4)
  bool retain_as_published = false;
  uint8_t retain_handling = 0;  // 0 send retained, 1 only for a new subscription, 2 never
  // Reported back in ReceivedMessage::subscription_identifiers; 0: none. 1..268435455.
  uint32_t subscription_identifier = 0;
};

struct LocalClientOptions {
  // Empty: "coremq-local-N" is made up. The id picks the shard the session lives on.
  std::string client_id;
  bool clean_start = true;
  // MQTT 5 Session Expiry Interval: how long the session (its subscriptions and queued
  // messages) outlives the LocalClient; 0 ends it with the client.
  uint32_t session_expiry_interval_seconds = 0;
  // QoS 1/2 messages the broker may have unacknowledged towards this client (Receive
  // Maximum): callbacks of that many messages may be queued on the delivery thread at once.
  uint16_t receive_maximum = 64;
  // Called (on the delivery thread) for a message that no subscription of this LocalClient
  // takes: with clean_start false, what a resumed session had queued arrives before the host
  // could subscribe again. Empty: such messages are acknowledged unseen.
  std::function<void(const ReceivedMessage& message)> on_unmatched_message;
  // Run this client's message callbacks (and on_unmatched_message) on the broker shard that
  // owns the session, as the message is sent, instead of on the delivery thread: no hand-off,
  // no queue, and QoS 1/2 acknowledged in the same turn. For hosts that promise their
  // callbacks never block, not even briefly: while one runs, every client of that shard waits.
  // A callback over 1 ms is counted (local_inline_callbacks_slow) and logged. Completion
  // callbacks and futures still complete on the delivery thread, and a callback must not wait
  // for one (the shard it blocks is the one that would answer).
  bool inline_callbacks = false;
  // A QoS 1/2 message is acknowledged (PUBACK, or PUBREC for QoS 2) when the host calls
  // LocalClient::acknowledge(message.acknowledgement), from any thread, not when its callback
  // returns: for hosts that hand messages to work of their own. Until then it counts against
  // receive_maximum, so a host that never acknowledges gets no more QoS 1/2 messages (and the
  // broker queues them). Messages no callback takes are acknowledged unseen as before. Not with
  // inline_callbacks (connect_local refuses the pair).
  bool manual_acknowledgement = false;
};

using MessageCallback = std::function<void(const ReceivedMessage& message)>;
using ResultCallback = std::function<void(OperationResult result)>;

// One in-process MQTT 5 session. Owned by the host (Broker::connect_local returns it); its
// destructor disconnects (DISCONNECT 0x00: the will-less normal end) and waits until the
// owner shard has seen that, so no callback of it runs once it returns. It may outlive the
// Broker: it then only answers kBrokerStopped.
class COREMQ_API LocalClient {
 public:
  ~LocalClient();
  LocalClient(const LocalClient&) = delete;
  LocalClient& operator=(const LocalClient&) = delete;

  const std::string& client_id() const;
  // False once the broker ended the session (see LocalStatus::kDisconnected) or stopped.
  bool connected() const;

  // Publishes from any thread. The future completes with kOk/0 for QoS 0 once the owner
  // shard's intake took the message, on PUBACK for QoS 1 and on PUBCOMP for QoS 2 (with their
  // reason code: 0x10 "no matching subscribers" is a success), or at once with the
  // LocalStatus that stopped it.
  std::future<OperationResult> publish(std::string_view topic, std::string_view payload, uint8_t qos = 0,
                                       bool retain = false, const MessageProperties& properties = {});
  // The callback form: returns kOk when the message was handed to the broker, and then
  // `on_complete` (may be empty) runs later on the delivery thread for QoS 1/2; for QoS 0 the
  // return value is the whole answer and `on_complete` is not called. Any other status:
  // nothing was sent and `on_complete` is not called.
  [[nodiscard]] LocalStatus publish(std::string_view topic, std::string_view payload, uint8_t qos,
                                    bool retain, const MessageProperties& properties,
                                    ResultCallback on_complete);

  // Subscribes `filter` ("$share/group/filter" joins a shared subscription); `on_message` runs
  // on the delivery thread for each message of this subscription (QoS 1/2 ones are
  // acknowledged when it returns). Subscribing the same filter again replaces the options and
  // the callback. The future completes on SUBACK: reason_code is the granted QoS or an error.
  std::future<OperationResult> subscribe(std::string_view filter, const SubscribeOptions& options,
                                         MessageCallback on_message);
  // Completes on UNSUBACK (0x00, or 0x11 "no subscription existed").
  std::future<OperationResult> unsubscribe(std::string_view filter);

  // With LocalClientOptions::manual_acknowledgement: acknowledges a QoS 1/2 message, from any
  // thread, once. kOk: sent; kIntakeFull: not sent, call again later; kInvalidArgument: not a
  // QoS 1/2 message's acknowledgement, or the client does not acknowledge manually;
  // kDisconnected / kBrokerStopped: the session is gone (a persistent one gets the message
  // again when it resumes).
  [[nodiscard]] LocalStatus acknowledge(const MessageAcknowledgement& acknowledgement);

 private:
  friend class BrokerImpl;
  explicit LocalClient(std::unique_ptr<LocalClientCore> core);
  std::unique_ptr<LocalClientCore> core_;
};

}  // namespace coremq
