// MQTT 5 property codec (see properties.h). One table describes every identifier: its name, data
// type and the contexts that allow it; decoding, walking and encoding all read that table, so the
// rules of section 2.2.2.2 live in one place.
#include "mqtt/properties.h"

#include <array>

#include "base/assert.h"
#include "mqtt/encoder.h"
#include "mqtt/reader.h"
#include "topic/topic.h"

namespace coremq::mqtt {
namespace {

using detail::Reader;

constexpr uint32_t kPropertyIdMax = 0x2A;

constexpr uint16_t in(PropertyContext context) {
  return static_cast<uint16_t>(1u << static_cast<int>(context));
}

constexpr uint16_t kAllContexts = 0x3FFF;
constexpr uint16_t kPublishOrWill = in(PropertyContext::kPublish) | in(PropertyContext::kWill);
constexpr uint16_t kConnectOrConnack = in(PropertyContext::kConnect) | in(PropertyContext::kConnack);
constexpr uint16_t kAuthExchange =
    in(PropertyContext::kConnect) | in(PropertyContext::kConnack) | in(PropertyContext::kAuth);
constexpr uint16_t kReasonStringContexts =
    in(PropertyContext::kConnack) | in(PropertyContext::kPuback) | in(PropertyContext::kPubrec) |
    in(PropertyContext::kPubrel) | in(PropertyContext::kPubcomp) | in(PropertyContext::kSuback) |
    in(PropertyContext::kUnsuback) | in(PropertyContext::kDisconnect) | in(PropertyContext::kAuth);

struct Descriptor {
  std::string_view name;  // empty: not a property identifier
  PropertyType type = PropertyType::kByte;
  uint16_t contexts = 0;
};

constexpr std::array<Descriptor, kPropertyIdMax + 1> make_descriptors() {
  using enum PropertyType;
  std::array<Descriptor, kPropertyIdMax + 1> table{};
  auto set = [&table](PropertyId id, std::string_view name, PropertyType type, uint16_t contexts) {
    table[static_cast<size_t>(id)] = Descriptor{name, type, contexts};
  };
  set(PropertyId::kPayloadFormatIndicator, "Payload Format Indicator", kByte, kPublishOrWill);
  set(PropertyId::kMessageExpiryInterval, "Message Expiry Interval", kFourByteInteger, kPublishOrWill);
  set(PropertyId::kContentType, "Content Type", kUtf8String, kPublishOrWill);
  set(PropertyId::kResponseTopic, "Response Topic", kUtf8String, kPublishOrWill);
  set(PropertyId::kCorrelationData, "Correlation Data", kBinaryData, kPublishOrWill);
  set(PropertyId::kSubscriptionIdentifier, "Subscription Identifier", kVariableByteInteger,
      in(PropertyContext::kPublish) | in(PropertyContext::kSubscribe));
  set(PropertyId::kSessionExpiryInterval, "Session Expiry Interval", kFourByteInteger,
      kConnectOrConnack | in(PropertyContext::kDisconnect));
  set(PropertyId::kAssignedClientIdentifier, "Assigned Client Identifier", kUtf8String,
      in(PropertyContext::kConnack));
  set(PropertyId::kServerKeepAlive, "Server Keep Alive", kTwoByteInteger, in(PropertyContext::kConnack));
  set(PropertyId::kAuthenticationMethod, "Authentication Method", kUtf8String, kAuthExchange);
  set(PropertyId::kAuthenticationData, "Authentication Data", kBinaryData, kAuthExchange);
  set(PropertyId::kRequestProblemInformation, "Request Problem Information", kByte,
      in(PropertyContext::kConnect));
  set(PropertyId::kWillDelayInterval, "Will Delay Interval", kFourByteInteger, in(PropertyContext::kWill));
  set(PropertyId::kRequestResponseInformation, "Request Response Information", kByte,
      in(PropertyContext::kConnect));
  set(PropertyId::kResponseInformation, "Response Information", kUtf8String, in(PropertyContext::kConnack));
  set(PropertyId::kServerReference, "Server Reference", kUtf8String,
      in(PropertyContext::kConnack) | in(PropertyContext::kDisconnect));
  set(PropertyId::kReasonString, "Reason String", kUtf8String, kReasonStringContexts);
  set(PropertyId::kReceiveMaximum, "Receive Maximum", kTwoByteInteger, kConnectOrConnack);
  set(PropertyId::kTopicAliasMaximum, "Topic Alias Maximum", kTwoByteInteger, kConnectOrConnack);
  set(PropertyId::kTopicAlias, "Topic Alias", kTwoByteInteger, in(PropertyContext::kPublish));
  set(PropertyId::kMaximumQos, "Maximum QoS", kByte, in(PropertyContext::kConnack));
  set(PropertyId::kRetainAvailable, "Retain Available", kByte, in(PropertyContext::kConnack));
  set(PropertyId::kUserProperty, "User Property", kUtf8StringPair, kAllContexts);
  set(PropertyId::kMaximumPacketSize, "Maximum Packet Size", kFourByteInteger, kConnectOrConnack);
  set(PropertyId::kWildcardSubscriptionAvailable, "Wildcard Subscription Available", kByte,
      in(PropertyContext::kConnack));
  set(PropertyId::kSubscriptionIdentifierAvailable, "Subscription Identifier Available", kByte,
      in(PropertyContext::kConnack));
  set(PropertyId::kSharedSubscriptionAvailable, "Shared Subscription Available", kByte,
      in(PropertyContext::kConnack));
  return table;
}

constexpr std::array<Descriptor, kPropertyIdMax + 1> kDescriptors = make_descriptors();

const Descriptor& descriptor(PropertyId id) {
  COREMQ_ASSERT(property_id_defined(static_cast<uint32_t>(id)));
  return kDescriptors[static_cast<size_t>(id)];
}

// Reads one value of `type`; false if it runs past the block (a malformed packet).
[[nodiscard]] bool read_value(Reader& reader, PropertyType type, PropertyCursor::Entry* entry) {
  switch (type) {
    case PropertyType::kByte: {
      uint8_t value = 0;
      if (!reader.read_u8(&value)) return false;
      entry->integer = value;
      return true;
    }
    case PropertyType::kTwoByteInteger: {
      uint16_t value = 0;
      if (!reader.read_u16(&value)) return false;
      entry->integer = value;
      return true;
    }
    case PropertyType::kFourByteInteger:
      return reader.read_u32(&entry->integer);
    case PropertyType::kVariableByteInteger:
      return reader.read_varint(&entry->integer);
    case PropertyType::kUtf8String:
    case PropertyType::kBinaryData:
      return reader.read_length_prefixed(&entry->text);
    case PropertyType::kUtf8StringPair:
      return reader.read_length_prefixed(&entry->text) && reader.read_length_prefixed(&entry->pair_value);
  }
  return false;
}

bool value_is_utf8(PropertyType type, const PropertyCursor::Entry& entry) {
  if (type == PropertyType::kUtf8String) return is_valid_utf8_string(entry.text);
  if (type == PropertyType::kUtf8StringPair) {
    return is_valid_utf8_string(entry.text) && is_valid_utf8_string(entry.pair_value);
  }
  return true;
}

// A Byte property whose only values are 0 and 1.
DecodeStatus store_flag(uint32_t value, std::optional<uint8_t>* field) {
  if (value > 1) return DecodeStatus::kProtocolError;
  *field = static_cast<uint8_t>(value);
  return DecodeStatus::kOk;
}

// A Two Byte Integer property where 0 is a protocol error.
DecodeStatus store_nonzero(uint32_t value, std::optional<uint16_t>* field) {
  if (value == 0) return DecodeStatus::kProtocolError;
  *field = static_cast<uint16_t>(value);
  return DecodeStatus::kOk;
}

// Stores one decoded, well-typed value and applies the value rules of its section.
DecodeStatus store(const PropertyCursor::Entry& entry, Properties* out) {
  const uint32_t value = entry.integer;
  switch (entry.id) {
    case PropertyId::kPayloadFormatIndicator:
      return store_flag(value, &out->payload_format_indicator);
    case PropertyId::kMessageExpiryInterval:
      out->message_expiry_interval_seconds = value;
      break;
    case PropertyId::kContentType:
      out->content_type = entry.text;
      break;
    case PropertyId::kResponseTopic:
      if (!topic::is_valid_topic_name(entry.text)) return DecodeStatus::kProtocolError;  // section 3.3.2.3.5
      out->response_topic = entry.text;
      break;
    case PropertyId::kCorrelationData:
      out->correlation_data = entry.text;
      break;
    case PropertyId::kSubscriptionIdentifier:
      if (value == 0) return DecodeStatus::kProtocolError;  // section 3.8.2.1.2
      if (out->subscription_identifier_count++ == 0) out->subscription_identifier = value;
      break;
    case PropertyId::kSessionExpiryInterval:
      out->session_expiry_interval_seconds = value;
      break;
    case PropertyId::kAssignedClientIdentifier:
      out->assigned_client_identifier = entry.text;
      break;
    case PropertyId::kServerKeepAlive:
      out->server_keep_alive_seconds = static_cast<uint16_t>(value);
      break;
    case PropertyId::kAuthenticationMethod:
      out->authentication_method = entry.text;
      break;
    case PropertyId::kAuthenticationData:
      out->authentication_data = entry.text;
      break;
    case PropertyId::kRequestProblemInformation:
      return store_flag(value, &out->request_problem_information);
    case PropertyId::kWillDelayInterval:
      out->will_delay_interval_seconds = value;
      break;
    case PropertyId::kRequestResponseInformation:
      return store_flag(value, &out->request_response_information);
    case PropertyId::kResponseInformation:
      out->response_information = entry.text;
      break;
    case PropertyId::kServerReference:
      out->server_reference = entry.text;
      break;
    case PropertyId::kReasonString:
      out->reason_string = entry.text;
      break;
    case PropertyId::kReceiveMaximum:
      return store_nonzero(value, &out->receive_maximum);
    case PropertyId::kTopicAliasMaximum:
      out->topic_alias_maximum = static_cast<uint16_t>(value);
      break;
    case PropertyId::kTopicAlias:
      // 0 is not a valid alias (section 3.3.2.3.4), but its answer is DISCONNECT 0x94 (Topic Alias
      // invalid) rather than 0x82, and which aliases are valid depends on the Topic Alias Maximum
      // the broker granted: the broker checks the value.
      out->topic_alias = static_cast<uint16_t>(value);
      break;
    case PropertyId::kMaximumQos:
      return store_flag(value, &out->maximum_qos);
    case PropertyId::kRetainAvailable:
      return store_flag(value, &out->retain_available);
    case PropertyId::kUserProperty:
      out->user_property_count++;
      break;
    case PropertyId::kMaximumPacketSize:
      if (value == 0) return DecodeStatus::kProtocolError;  // section 3.1.2.11.4
      out->maximum_packet_size = value;
      break;
    case PropertyId::kWildcardSubscriptionAvailable:
      return store_flag(value, &out->wildcard_subscription_available);
    case PropertyId::kSubscriptionIdentifierAvailable:
      return store_flag(value, &out->subscription_identifier_available);
    case PropertyId::kSharedSubscriptionAvailable:
      return store_flag(value, &out->shared_subscription_available);
  }
  return DecodeStatus::kOk;
}

DecodeStatus decode_one(Reader& reader, PropertyContext context, uint64_t* seen, Properties* out) {
  uint8_t id_byte = 0;
  if (!reader.read_u8(&id_byte)) return DecodeStatus::kMalformed;
  // The identifier is a variable byte integer, but every defined one fits in its first byte, so a
  // byte with the continuation bit can only start an unknown identifier.
  if (!property_id_defined(id_byte)) return DecodeStatus::kMalformed;
  PropertyCursor::Entry entry{static_cast<PropertyId>(id_byte), 0, {}, {}};
  if (!property_allowed(entry.id, context)) return DecodeStatus::kMalformed;  // section 2.2.2.2
  const uint64_t bit = uint64_t{1} << id_byte;
  if ((*seen & bit) != 0 && !property_may_repeat(entry.id, context)) return DecodeStatus::kProtocolError;
  *seen |= bit;
  const PropertyType type = descriptor(entry.id).type;
  if (!read_value(reader, type, &entry)) return DecodeStatus::kMalformed;
  if (!value_is_utf8(type, entry)) return DecodeStatus::kMalformed;
  return store(entry, out);
}

// Calls visit(entry) for every optional that is set, in identifier order.
template <typename Visit>
void for_each_set(const Properties& properties, Visit&& visit) {
  auto integer = [&visit](PropertyId id, const auto& field) {
    if (field) visit(PropertyCursor::Entry{id, static_cast<uint32_t>(*field), {}, {}});
  };
  auto text = [&visit](PropertyId id, const std::optional<std::string_view>& field) {
    if (field) visit(PropertyCursor::Entry{id, 0, *field, {}});
  };
  integer(PropertyId::kPayloadFormatIndicator, properties.payload_format_indicator);
  integer(PropertyId::kMessageExpiryInterval, properties.message_expiry_interval_seconds);
  text(PropertyId::kContentType, properties.content_type);
  text(PropertyId::kResponseTopic, properties.response_topic);
  text(PropertyId::kCorrelationData, properties.correlation_data);
  integer(PropertyId::kSubscriptionIdentifier, properties.subscription_identifier);
  integer(PropertyId::kSessionExpiryInterval, properties.session_expiry_interval_seconds);
  text(PropertyId::kAssignedClientIdentifier, properties.assigned_client_identifier);
  integer(PropertyId::kServerKeepAlive, properties.server_keep_alive_seconds);
  text(PropertyId::kAuthenticationMethod, properties.authentication_method);
  text(PropertyId::kAuthenticationData, properties.authentication_data);
  integer(PropertyId::kRequestProblemInformation, properties.request_problem_information);
  integer(PropertyId::kWillDelayInterval, properties.will_delay_interval_seconds);
  integer(PropertyId::kRequestResponseInformation, properties.request_response_information);
  text(PropertyId::kResponseInformation, properties.response_information);
  text(PropertyId::kServerReference, properties.server_reference);
  text(PropertyId::kReasonString, properties.reason_string);
  integer(PropertyId::kReceiveMaximum, properties.receive_maximum);
  integer(PropertyId::kTopicAliasMaximum, properties.topic_alias_maximum);
  integer(PropertyId::kTopicAlias, properties.topic_alias);
  integer(PropertyId::kMaximumQos, properties.maximum_qos);
  integer(PropertyId::kRetainAvailable, properties.retain_available);
  integer(PropertyId::kMaximumPacketSize, properties.maximum_packet_size);
  integer(PropertyId::kWildcardSubscriptionAvailable, properties.wildcard_subscription_available);
  integer(PropertyId::kSubscriptionIdentifierAvailable, properties.subscription_identifier_available);
  integer(PropertyId::kSharedSubscriptionAvailable, properties.shared_subscription_available);
}

size_t string_size(std::string_view value) {
  COREMQ_ASSERT(value.size() <= kStringLengthMax);
  return 2 + value.size();
}

// Bytes of one property on the wire, identifier included.
size_t entry_size(const PropertyCursor::Entry& entry) {
  switch (descriptor(entry.id).type) {
    case PropertyType::kByte:
      return 1 + 1;
    case PropertyType::kTwoByteInteger:
      return 1 + 2;
    case PropertyType::kFourByteInteger:
      return 1 + 4;
    case PropertyType::kVariableByteInteger:
      return 1 + remaining_length_size(entry.integer);
    case PropertyType::kUtf8String:
    case PropertyType::kBinaryData:
      return 1 + string_size(entry.text);
    case PropertyType::kUtf8StringPair:
      return 1 + string_size(entry.text) + string_size(entry.pair_value);
  }
  return 0;
}

void append_string(base::ByteBuffer& out, std::string_view value) {
  COREMQ_ASSERT(value.size() <= kStringLengthMax);
  out.append_u16(static_cast<uint16_t>(value.size()));
  out.append(value);
}

void append_entry(base::ByteBuffer& out, const PropertyCursor::Entry& entry) {
  out.append_u8(static_cast<uint8_t>(entry.id));
  switch (descriptor(entry.id).type) {
    case PropertyType::kByte:
      COREMQ_ASSERT(entry.integer <= 0xFF);
      out.append_u8(static_cast<uint8_t>(entry.integer));
      break;
    case PropertyType::kTwoByteInteger:
      COREMQ_ASSERT(entry.integer <= 0xFFFF);
      out.append_u16(static_cast<uint16_t>(entry.integer));
      break;
    case PropertyType::kFourByteInteger:
      out.append_u32(entry.integer);
      break;
    case PropertyType::kVariableByteInteger:
      encode_remaining_length(out, entry.integer);
      break;
    case PropertyType::kUtf8String:
    case PropertyType::kBinaryData:
      append_string(out, entry.text);
      break;
    case PropertyType::kUtf8StringPair:
      append_string(out, entry.text);
      append_string(out, entry.pair_value);
      break;
  }
}

}  // namespace

PropertyContext property_context(PacketType type) {
  switch (type) {
    case PacketType::kConnect:
      return PropertyContext::kConnect;
    case PacketType::kConnack:
      return PropertyContext::kConnack;
    case PacketType::kPublish:
      return PropertyContext::kPublish;
    case PacketType::kPuback:
      return PropertyContext::kPuback;
    case PacketType::kPubrec:
      return PropertyContext::kPubrec;
    case PacketType::kPubrel:
      return PropertyContext::kPubrel;
    case PacketType::kPubcomp:
      return PropertyContext::kPubcomp;
    case PacketType::kSubscribe:
      return PropertyContext::kSubscribe;
    case PacketType::kSuback:
      return PropertyContext::kSuback;
    case PacketType::kUnsubscribe:
      return PropertyContext::kUnsubscribe;
    case PacketType::kUnsuback:
      return PropertyContext::kUnsuback;
    case PacketType::kDisconnect:
      return PropertyContext::kDisconnect;
    case PacketType::kAuth:
      return PropertyContext::kAuth;
    case PacketType::kPingreq:
    case PacketType::kPingresp:
      break;
  }
  COREMQ_ASSERT_MSG(false, "packet type has no properties");
  return PropertyContext::kConnect;
}

bool property_id_defined(uint32_t id) {
  return id <= kPropertyIdMax && !kDescriptors[id].name.empty();
}

PropertyType property_type(PropertyId id) {
  return descriptor(id).type;
}

std::string_view property_name(PropertyId id) {
  return descriptor(id).name;
}

bool property_allowed(PropertyId id, PropertyContext context) {
  return (descriptor(id).contexts & in(context)) != 0;
}

bool property_may_repeat(PropertyId id, PropertyContext context) {
  if (id == PropertyId::kUserProperty) return true;
  return id == PropertyId::kSubscriptionIdentifier && context == PropertyContext::kPublish;
}

DecodeStatus decode_properties(std::span<const uint8_t> bytes, PropertyContext context, Properties* out,
                               size_t* consumed) {
  COREMQ_ASSERT(out != nullptr && consumed != nullptr);
  *out = Properties{};
  Reader outer(bytes);
  uint32_t length = 0;
  if (!outer.read_varint(&length)) return DecodeStatus::kMalformed;
  if (!outer.read_bytes(length, &out->encoded)) return DecodeStatus::kMalformed;

  Reader reader(out->encoded);
  uint64_t seen = 0;
  static_assert(kPropertyIdMax < 64, "one bit of `seen` per identifier");
  while (!reader.at_end()) {
    const DecodeStatus status = decode_one(reader, context, &seen, out);
    if (status != DecodeStatus::kOk) return status;
  }
  // Sections 3.1.2.11.10 / 3.2.2.3.18 / 3.15.2.2.3: data belongs to a method.
  if (out->authentication_data && !out->authentication_method) return DecodeStatus::kProtocolError;
  *consumed = outer.position();
  return DecodeStatus::kOk;
}

bool PropertyCursor::next(Entry* entry) {
  if (position_ == encoded_.size()) return false;
  Reader reader(encoded_.subspan(position_));
  uint8_t id_byte = 0;
  const bool has_id = reader.read_u8(&id_byte);
  COREMQ_ASSERT(has_id);
  COREMQ_ASSERT_MSG(property_id_defined(id_byte), "property block was not validated");
  *entry = Entry{static_cast<PropertyId>(id_byte), 0, {}, {}};
  const bool has_value = read_value(reader, descriptor(entry->id).type, entry);
  COREMQ_ASSERT_MSG(has_value, "property block was not validated");
  position_ += reader.position();
  return true;
}

size_t copy_user_properties(const Properties& properties, std::span<UserProperty> storage) {
  size_t count = 0;
  PropertyCursor cursor(properties);
  PropertyCursor::Entry entry{};
  while (count < storage.size() && cursor.next(&entry)) {
    if (entry.id == PropertyId::kUserProperty) storage[count++] = UserProperty{entry.text, entry.pair_value};
  }
  return count;
}

size_t copy_subscription_identifiers(const Properties& properties, std::span<uint32_t> storage) {
  size_t count = 0;
  PropertyCursor cursor(properties);
  PropertyCursor::Entry entry{};
  while (count < storage.size() && cursor.next(&entry)) {
    if (entry.id == PropertyId::kSubscriptionIdentifier) storage[count++] = entry.integer;
  }
  return count;
}

size_t properties_length(const Properties& properties, std::span<const UserProperty> user_properties,
                         std::span<const uint32_t> subscription_identifiers) {
  size_t length = 0;
  for_each_set(properties, [&length](const PropertyCursor::Entry& entry) { length += entry_size(entry); });
  for (const uint32_t identifier : subscription_identifiers) {
    length += entry_size(PropertyCursor::Entry{PropertyId::kSubscriptionIdentifier, identifier, {}, {}});
  }
  for (const UserProperty& property : user_properties) {
    length += entry_size(PropertyCursor::Entry{PropertyId::kUserProperty, 0, property.name, property.value});
  }
  return length;
}

void encode_property_bytes(base::ByteBuffer& out, PropertyContext context, const Properties& properties,
                           std::span<const UserProperty> user_properties,
                           std::span<const uint32_t> subscription_identifiers) {
  const size_t subscription_identifier_total =
      subscription_identifiers.size() + (properties.subscription_identifier ? 1 : 0);
  COREMQ_ASSERT(subscription_identifier_total <= 1 ||
                property_may_repeat(PropertyId::kSubscriptionIdentifier, context));
  const size_t block_start = out.size();

  auto append = [&out, context](const PropertyCursor::Entry& entry) {
    COREMQ_ASSERT_MSG(property_allowed(entry.id, context), "property not allowed in this packet");
    if (entry.id == PropertyId::kSubscriptionIdentifier) {
      COREMQ_ASSERT(entry.integer != 0 && entry.integer <= kRemainingLengthMax);
    }
    append_entry(out, entry);
  };
  for_each_set(properties, append);
  for (const uint32_t identifier : subscription_identifiers) {
    append(PropertyCursor::Entry{PropertyId::kSubscriptionIdentifier, identifier, {}, {}});
  }
  for (const UserProperty& property : user_properties) {
    append(PropertyCursor::Entry{PropertyId::kUserProperty, 0, property.name, property.value});
  }
  COREMQ_ASSERT(out.size() - block_start ==
                properties_length(properties, user_properties, subscription_identifiers));
}

void encode_properties(base::ByteBuffer& out, PropertyContext context, const Properties& properties,
                       std::span<const UserProperty> user_properties,
                       std::span<const uint32_t> subscription_identifiers) {
  const size_t length = properties_length(properties, user_properties, subscription_identifiers);
  COREMQ_ASSERT(length <= kRemainingLengthMax);
  const size_t start = out.size();
  encode_remaining_length(out, static_cast<uint32_t>(length));
  encode_property_bytes(out, context, properties, user_properties, subscription_identifiers);
  COREMQ_ASSERT(out.size() - start == remaining_length_size(static_cast<uint32_t>(length)) + length);
}

}  // namespace coremq::mqtt
