// An application message on its way through the broker: topic, payload, QoS and retain
// flag, allocated once when a PUBLISH (or a will) enters the broker and shared by
// reference count by every shard, queue and subscriber that holds it. Immutable after
// creation, so any shard may read it; the count is atomic because references cross
// shards through the SPSC rings. Freed by whichever holder drops the last reference.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>

#include "base/assert.h"

namespace coremq::broker {

class Message {
 public:
  // Where a message came from and what MQTT 5 adds to it.
  struct Origin {
    uint32_t shard = 0;
    // The publishing session, compared by address only (never dereferenced): a client
    // id's sessions all live on one shard, so this identifies the publisher for
    // No Local there. Null for messages with no publishing session.
    const void* session = nullptr;
  };
  struct Extras {
    // MQTT 5 properties forwarded to subscribers unchanged (everything but Topic
    // Alias, Message Expiry Interval and Subscription Identifiers), encoded, without
    // the Property Length.
    std::string_view property_bytes;
    // Monotonic ms after which the message is not delivered any more; 0: never.
    int64_t expires_at_ms = 0;
    // Orders retained updates of one topic across shards (see RetainedStore).
    uint64_t retain_stamp = 0;
    // Monotonic us of the loop turn the message entered in (publish-to-deliver latency);
    // 0: not measured (wills).
    int64_t ingress_us = 0;
  };

  // One allocation holds the header, the topic, the payload and the property bytes.
  static Message* create(std::string_view topic, std::string_view payload, uint8_t qos, bool retain, Origin origin) {
    return create(topic, payload, qos, retain, origin, Extras());
  }
  static Message* create(std::string_view topic, std::string_view payload, uint8_t qos, bool retain, Origin origin,
                         const Extras& extras) {
    COREMQ_ASSERT(qos <= 2);
    COREMQ_ASSERT(topic.size() <= 0xFFFF);
    size_t size = sizeof(Message) + topic.size() + payload.size() + extras.property_bytes.size();
    void* memory = std::malloc(size);
    COREMQ_ASSERT_MSG(memory != nullptr, "out of memory");
    auto* message = new (memory) Message();
    message->topic_size_ = static_cast<uint16_t>(topic.size());
    message->payload_size_ = static_cast<uint32_t>(payload.size());
    message->property_size_ = static_cast<uint32_t>(extras.property_bytes.size());
    message->qos_ = qos;
    message->retain_ = retain;
    message->origin_ = origin;
    message->expires_at_ms_ = extras.expires_at_ms;
    message->retain_stamp_ = extras.retain_stamp;
    message->ingress_us_ = extras.ingress_us;
    char* bytes = message->bytes();
    std::memcpy(bytes, topic.data(), topic.size());
    if (!payload.empty()) std::memcpy(bytes + topic.size(), payload.data(), payload.size());
    if (!extras.property_bytes.empty()) {
      std::memcpy(bytes + topic.size() + payload.size(), extras.property_bytes.data(), extras.property_bytes.size());
    }
    return message;
  }

  // The same, with a payload that stays where it is: inside `block`, a malloc'd buffer of
  // `block_size` bytes the message takes over and frees (a large PUBLISH's receive buffer, so
  // its payload is not copied again).
  static Message* create_around(std::string_view topic, std::string_view payload, void* block, size_t block_size,
                                uint8_t qos, bool retain, Origin origin, const Extras& extras) {
    Message* message = create(topic, std::string_view(), qos, retain, origin, extras);
    message->payload_block_ = block;
    message->payload_at_ = payload.data();
    message->payload_size_ = static_cast<uint32_t>(payload.size());
    message->payload_block_size_ = static_cast<uint32_t>(block_size);
    return message;
  }

  std::string_view topic() const { return {bytes(), topic_size_}; }
  std::string_view payload() const {
    return {payload_block_ != nullptr ? payload_at_ : bytes() + topic_size_, payload_size_};
  }
  std::string_view property_bytes() const {
    size_t inline_payload = payload_block_ != nullptr ? 0 : payload_size_;
    return {bytes() + topic_size_ + inline_payload, property_size_};
  }
  uint8_t qos() const { return qos_; }
  bool retain() const { return retain_; }
  const Origin& origin() const { return origin_; }
  int64_t expires_at_ms() const { return expires_at_ms_; }
  uint64_t retain_stamp() const { return retain_stamp_; }
  int64_t ingress_us() const { return ingress_us_; }
  bool expired(int64_t now_ms) const { return expires_at_ms_ != 0 && now_ms >= expires_at_ms_; }
  size_t memory_size() const {
    size_t payload = payload_block_ != nullptr ? payload_block_size_ : payload_size_;
    return sizeof(Message) + topic_size_ + payload + property_size_;
  }

  void add_reference() { references_.fetch_add(1, std::memory_order_relaxed); }
  void drop_reference() {
    uint32_t before = references_.fetch_sub(1, std::memory_order_acq_rel);
    COREMQ_ASSERT(before >= 1);
    if (before == 1) {
      std::free(payload_block_);
      this->~Message();
      std::free(this);
    }
  }

 private:
  Message() = default;
  char* bytes() { return reinterpret_cast<char*>(this + 1); }
  const char* bytes() const { return reinterpret_cast<const char*>(this + 1); }

  std::atomic<uint32_t> references_{1};
  uint32_t payload_size_ = 0;
  uint32_t property_size_ = 0;
  uint16_t topic_size_ = 0;
  uint8_t qos_ = 0;
  bool retain_ = false;
  Origin origin_;
  int64_t expires_at_ms_ = 0;
  uint64_t retain_stamp_ = 0;
  int64_t ingress_us_ = 0;
  // Null: the payload follows the topic in this allocation (create_around sets them).
  void* payload_block_ = nullptr;
  const char* payload_at_ = nullptr;
  uint32_t payload_block_size_ = 0;
};

// An owning handle to a Message. Moves are free; copies touch the atomic count.
class MessageRef {
 public:
  MessageRef() = default;
  // Adopts a reference the caller already owns (a fresh Message, or one popped from a ring).
  static MessageRef adopt(Message* message) {
    MessageRef ref;
    ref.message_ = message;
    return ref;
  }
  MessageRef(const MessageRef& other) : message_(other.message_) {
    if (message_) message_->add_reference();
  }
  MessageRef& operator=(const MessageRef& other) {
    MessageRef copy(other);
    std::swap(message_, copy.message_);
    return *this;
  }
  MessageRef(MessageRef&& other) noexcept : message_(std::exchange(other.message_, nullptr)) {}
  MessageRef& operator=(MessageRef&& other) noexcept {
    std::swap(message_, other.message_);
    return *this;
  }
  ~MessageRef() {
    if (message_) message_->drop_reference();
  }

  // Gives up ownership without dropping the reference (to pass it through a ring).
  Message* release() { return std::exchange(message_, nullptr); }

  const Message* get() const { return message_; }
  const Message* operator->() const { return message_; }
  const Message& operator*() const { return *message_; }
  explicit operator bool() const { return message_ != nullptr; }

 private:
  Message* message_ = nullptr;
};

}  // namespace coremq::broker
