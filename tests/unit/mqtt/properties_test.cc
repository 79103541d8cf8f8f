// MQTT 5 property codec: the identifier table against the spec's table 2-4 (written out here
// independently), round trips in every context, and each decoding rule: repeats, contexts, value
// ranges, UTF-8, truncation.
#include <array>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "base/byte_buffer.h"
#include "mqtt/properties.h"

namespace coremq::mqtt {
namespace {

using Context = PropertyContext;

constexpr Context kAllContexts[] = {
    Context::kConnect,     Context::kWill,     Context::kConnack,    Context::kPublish,   Context::kPuback,
    Context::kPubrec,      Context::kPubrel,   Context::kPubcomp,    Context::kSubscribe, Context::kSuback,
    Context::kUnsubscribe, Context::kUnsuback, Context::kDisconnect, Context::kAuth,
};

struct Expected {
  PropertyType type;
  std::set<Context> contexts;
};

// Table 2-4 of section 2.2.2.2, copied from the spec rather than from the implementation.
const std::map<uint8_t, Expected>& spec_table() {
  using enum PropertyType;
  static const std::set<Context> every(std::begin(kAllContexts), std::end(kAllContexts));
  static const std::map<uint8_t, Expected> table = {
      {0x01, {kByte, {Context::kPublish, Context::kWill}}},
      {0x02, {kFourByteInteger, {Context::kPublish, Context::kWill}}},
      {0x03, {kUtf8String, {Context::kPublish, Context::kWill}}},
      {0x08, {kUtf8String, {Context::kPublish, Context::kWill}}},
      {0x09, {kBinaryData, {Context::kPublish, Context::kWill}}},
      {0x0B, {kVariableByteInteger, {Context::kPublish, Context::kSubscribe}}},
      {0x11, {kFourByteInteger, {Context::kConnect, Context::kConnack, Context::kDisconnect}}},
      {0x12, {kUtf8String, {Context::kConnack}}},
      {0x13, {kTwoByteInteger, {Context::kConnack}}},
      {0x15, {kUtf8String, {Context::kConnect, Context::kConnack, Context::kAuth}}},
      {0x16, {kBinaryData, {Context::kConnect, Context::kConnack, Context::kAuth}}},
      {0x17, {kByte, {Context::kConnect}}},
      {0x18, {kFourByteInteger, {Context::kWill}}},
      {0x19, {kByte, {Context::kConnect}}},
      {0x1A, {kUtf8String, {Context::kConnack}}},
      {0x1C, {kUtf8String, {Context::kConnack, Context::kDisconnect}}},
      {0x1F,
       {kUtf8String,
        {Context::kConnack, Context::kPuback, Context::kPubrec, Context::kPubrel, Context::kPubcomp,
         Context::kSuback, Context::kUnsuback, Context::kDisconnect, Context::kAuth}}},
      {0x21, {kTwoByteInteger, {Context::kConnect, Context::kConnack}}},
      {0x22, {kTwoByteInteger, {Context::kConnect, Context::kConnack}}},
      {0x23, {kTwoByteInteger, {Context::kPublish}}},
      {0x24, {kByte, {Context::kConnack}}},
      {0x25, {kByte, {Context::kConnack}}},
      {0x26, {kUtf8StringPair, every}},
      {0x27, {kFourByteInteger, {Context::kConnect, Context::kConnack}}},
      {0x28, {kByte, {Context::kConnack}}},
      {0x29, {kByte, {Context::kConnack}}},
      {0x2A, {kByte, {Context::kConnack}}},
  };
  return table;
}

std::vector<uint8_t> to_vector(const base::ByteBuffer& buffer) {
  return std::vector<uint8_t>(buffer.data(), buffer.data() + buffer.size());
}

// Appends with push_back: g++ 12 at -O3 reports a false -Warray-bounds on vector::insert here.
void append(std::vector<uint8_t>& to, const std::vector<uint8_t>& bytes) {
  for (const uint8_t byte : bytes) to.push_back(byte);
}

// A block with the given properties (id and raw value bytes), Property Length in front.
std::vector<uint8_t> block(std::initializer_list<std::vector<uint8_t>> properties) {
  std::vector<uint8_t> content;
  for (const auto& property : properties) append(content, property);
  EXPECT_LT(content.size(), 128u);
  std::vector<uint8_t> bytes;
  bytes.push_back(static_cast<uint8_t>(content.size()));
  append(bytes, content);
  return bytes;
}

std::vector<uint8_t> string_property(uint8_t id, std::string_view text) {
  std::vector<uint8_t> bytes = {id, 0, static_cast<uint8_t>(text.size())};
  for (const char character : text) bytes.push_back(static_cast<uint8_t>(character));
  return bytes;
}

DecodeStatus decode(const std::vector<uint8_t>& bytes, Context context, Properties* out = nullptr) {
  Properties properties;
  size_t consumed = 0;
  const DecodeStatus status = decode_properties(bytes, context, out ? out : &properties, &consumed);
  if (status == DecodeStatus::kOk) {
    EXPECT_EQ(consumed, bytes.size());
  }
  return status;
}

// One valid raw value for a property of each type (flags 1, integers 5, strings "v").
std::vector<uint8_t> sample_property(uint8_t id) {
  switch (spec_table().at(id).type) {
    case PropertyType::kByte:
      return {id, 1};
    case PropertyType::kTwoByteInteger:
      return {id, 0, 5};
    case PropertyType::kFourByteInteger:
      return {id, 0, 0, 0, 5};
    case PropertyType::kVariableByteInteger:
      return {id, 5};
    case PropertyType::kUtf8String:
    case PropertyType::kBinaryData:
      return string_property(id, "v");
    case PropertyType::kUtf8StringPair:
      return {id, 0, 1, 'k', 0, 1, 'v'};
  }
  return {};
}

TEST(MqttProperties, IdentifierTableMatchesSpec) {
  EXPECT_EQ(std::size(kAllPropertyIds), spec_table().size());
  for (uint32_t id = 0; id < 256; id++) {
    const auto expected = spec_table().find(static_cast<uint8_t>(id));
    ASSERT_EQ(property_id_defined(id), expected != spec_table().end()) << id;
    if (expected == spec_table().end()) continue;
    const auto property = static_cast<PropertyId>(id);
    EXPECT_EQ(property_type(property), expected->second.type) << id;
    EXPECT_FALSE(property_name(property).empty());
    for (const Context context : kAllContexts) {
      EXPECT_EQ(property_allowed(property, context), expected->second.contexts.count(context) == 1)
          << property_name(property) << " in context " << static_cast<int>(context);
    }
  }
  EXPECT_EQ(property_name(PropertyId::kTopicAliasMaximum), "Topic Alias Maximum");
  EXPECT_FALSE(property_id_defined(0x1B));
  EXPECT_FALSE(property_id_defined(0x2B));
}

TEST(MqttProperties, EmptyBlock) {
  Properties properties;
  size_t consumed = 0;
  const std::vector<uint8_t> bytes = {0x00, 0xAA};  // a byte after the block belongs to the packet
  ASSERT_EQ(decode_properties(bytes, Context::kPublish, &properties, &consumed), DecodeStatus::kOk);
  EXPECT_EQ(consumed, 1u);
  EXPECT_TRUE(properties.encoded.empty());
  EXPECT_FALSE(properties.payload_format_indicator.has_value());

  base::ByteBuffer buffer;
  encode_properties(buffer, Context::kPublish, Properties{});
  EXPECT_EQ(to_vector(buffer), std::vector<uint8_t>{0x00});
}

TEST(MqttProperties, PublishWireBytes) {
  Properties properties;
  properties.payload_format_indicator = 1;
  properties.message_expiry_interval_seconds = 0x10;
  properties.topic_alias = 5;
  const std::array<UserProperty, 1> user = {UserProperty{"a", "b"}};
  base::ByteBuffer buffer;
  encode_properties(buffer, Context::kPublish, properties, user);
  // Property Length counts what follows it: 2 + 5 + 3 + 7 = 17.
  const std::vector<uint8_t> expected = {17, 0x01, 1,    0x02, 0, 0,   0, 0x10, 0x23,
                                         0,  5,    0x26, 0,    1, 'a', 0, 1,    'b'};
  EXPECT_EQ(to_vector(buffer), expected);
  EXPECT_EQ(properties_length(properties, user), 17u);
}

// Every property a context allows, set to a sample value, survives encode then decode.
TEST(MqttProperties, RoundTripEveryContext) {
  for (const Context context : kAllContexts) {
    SCOPED_TRACE(static_cast<int>(context));
    std::vector<uint8_t> content;
    for (const PropertyId id : kAllPropertyIds) {
      if (!property_allowed(id, context)) continue;
      append(content, sample_property(static_cast<uint8_t>(id)));
    }
    ASSERT_LT(content.size(), 128u);
    std::vector<uint8_t> wire;
    wire.push_back(static_cast<uint8_t>(content.size()));
    append(wire, content);

    Properties decoded;
    ASSERT_EQ(decode(wire, context, &decoded), DecodeStatus::kOk);
    EXPECT_EQ(decoded.user_property_count, 1u);
    std::array<UserProperty, 2> users;
    ASSERT_EQ(copy_user_properties(decoded, users), 1u);
    EXPECT_EQ(users[0].name, "k");
    EXPECT_EQ(users[0].value, "v");
    std::array<uint32_t, 2> identifiers{};
    const size_t identifier_count = copy_subscription_identifiers(decoded, identifiers);

    // The encoder writes in identifier order with User Property last, as sample blocks are built
    // except that User Property (0x26) sits before 0x27..0x2A there; compare field by field.
    base::ByteBuffer buffer;
    encode_properties(buffer, context, decoded, std::span<const UserProperty>(users.data(), 1));
    EXPECT_EQ(buffer.size(), wire.size());
    Properties again;
    size_t consumed = 0;
    ASSERT_EQ(decode_properties(buffer.span(), context, &again, &consumed), DecodeStatus::kOk);
    EXPECT_EQ(consumed, buffer.size());
    EXPECT_EQ(again.payload_format_indicator, decoded.payload_format_indicator);
    EXPECT_EQ(again.message_expiry_interval_seconds, decoded.message_expiry_interval_seconds);
    EXPECT_EQ(again.content_type, decoded.content_type);
    EXPECT_EQ(again.response_topic, decoded.response_topic);
    EXPECT_EQ(again.correlation_data, decoded.correlation_data);
    EXPECT_EQ(again.subscription_identifier, decoded.subscription_identifier);
    EXPECT_EQ(again.subscription_identifier_count, identifier_count);
    EXPECT_EQ(again.session_expiry_interval_seconds, decoded.session_expiry_interval_seconds);
    EXPECT_EQ(again.assigned_client_identifier, decoded.assigned_client_identifier);
    EXPECT_EQ(again.server_keep_alive_seconds, decoded.server_keep_alive_seconds);
    EXPECT_EQ(again.authentication_method, decoded.authentication_method);
    EXPECT_EQ(again.authentication_data, decoded.authentication_data);
    EXPECT_EQ(again.request_problem_information, decoded.request_problem_information);
    EXPECT_EQ(again.will_delay_interval_seconds, decoded.will_delay_interval_seconds);
    EXPECT_EQ(again.request_response_information, decoded.request_response_information);
    EXPECT_EQ(again.response_information, decoded.response_information);
    EXPECT_EQ(again.server_reference, decoded.server_reference);
    EXPECT_EQ(again.reason_string, decoded.reason_string);
    EXPECT_EQ(again.receive_maximum, decoded.receive_maximum);
    EXPECT_EQ(again.topic_alias_maximum, decoded.topic_alias_maximum);
    EXPECT_EQ(again.topic_alias, decoded.topic_alias);
    EXPECT_EQ(again.maximum_qos, decoded.maximum_qos);
    EXPECT_EQ(again.retain_available, decoded.retain_available);
    EXPECT_EQ(again.maximum_packet_size, decoded.maximum_packet_size);
    EXPECT_EQ(again.wildcard_subscription_available, decoded.wildcard_subscription_available);
    EXPECT_EQ(again.subscription_identifier_available, decoded.subscription_identifier_available);
    EXPECT_EQ(again.shared_subscription_available, decoded.shared_subscription_available);
    EXPECT_EQ(again.user_property_count, 1u);

    // Every allowed property was present.
    size_t present = 0;
    PropertyCursor cursor(decoded);
    PropertyCursor::Entry entry{};
    while (cursor.next(&entry)) present++;
    size_t allowed = 0;
    for (const PropertyId id : kAllPropertyIds) allowed += property_allowed(id, context) ? 1 : 0;
    EXPECT_EQ(present, allowed);
  }
}

TEST(MqttProperties, ConnackFieldsDecoded) {
  const auto bytes = block({{0x11, 0, 0, 0x0E, 0x10},
                            string_property(0x12, "auto-1"),
                            {0x13, 0, 30},
                            {0x21, 0, 20},
                            {0x22, 0, 10},
                            {0x24, 0},
                            {0x25, 1},
                            {0x27, 0, 1, 0, 0},
                            {0x28, 0},
                            {0x29, 1},
                            {0x2A, 0}});
  Properties properties;
  ASSERT_EQ(decode(bytes, Context::kConnack, &properties), DecodeStatus::kOk);
  EXPECT_EQ(properties.session_expiry_interval_seconds, 3600u);
  EXPECT_EQ(properties.assigned_client_identifier, "auto-1");
  EXPECT_EQ(properties.server_keep_alive_seconds, 30);
  EXPECT_EQ(properties.receive_maximum, 20);
  EXPECT_EQ(properties.topic_alias_maximum, 10);
  EXPECT_EQ(properties.maximum_qos, 0);
  EXPECT_EQ(properties.retain_available, 1);
  EXPECT_EQ(properties.maximum_packet_size, 65536u);
  EXPECT_EQ(properties.wildcard_subscription_available, 0);
  EXPECT_EQ(properties.subscription_identifier_available, 1);
  EXPECT_EQ(properties.shared_subscription_available, 0);
  EXPECT_FALSE(properties.reason_string.has_value());
}

TEST(MqttProperties, UserPropertiesRepeatInOrder) {
  const auto bytes =
      block({{0x26, 0, 1, 'a', 0, 1, '1'}, {0x01, 0}, {0x26, 0, 1, 'a', 0, 1, '2'}, {0x26, 0, 1, 'b', 0, 0}});
  Properties properties;
  ASSERT_EQ(decode(bytes, Context::kPublish, &properties), DecodeStatus::kOk);
  EXPECT_EQ(properties.user_property_count, 3u);
  std::array<UserProperty, 4> storage;
  ASSERT_EQ(copy_user_properties(properties, storage), 3u);
  EXPECT_EQ(storage[0].name, "a");
  EXPECT_EQ(storage[0].value, "1");
  EXPECT_EQ(storage[1].value, "2");
  EXPECT_EQ(storage[2].name, "b");
  EXPECT_EQ(storage[2].value, "");
  std::array<UserProperty, 2> small;
  EXPECT_EQ(copy_user_properties(properties, small), 2u);

  base::ByteBuffer buffer;
  Properties only_format;
  only_format.payload_format_indicator = 0;
  encode_properties(buffer, Context::kPublish, only_format, std::span<const UserProperty>(storage.data(), 3));
  Properties again;
  size_t consumed = 0;
  ASSERT_EQ(decode_properties(buffer.span(), Context::kPublish, &again, &consumed), DecodeStatus::kOk);
  EXPECT_EQ(again.user_property_count, 3u);
}

TEST(MqttProperties, SubscriptionIdentifiersRepeatOnlyInPublish) {
  // 1, 128 (two bytes) and 268435455 (four bytes).
  const auto bytes = block({{0x0B, 1}, {0x0B, 0x80, 0x01}, {0x0B, 0xFF, 0xFF, 0xFF, 0x7F}});
  Properties properties;
  ASSERT_EQ(decode(bytes, Context::kPublish, &properties), DecodeStatus::kOk);
  EXPECT_EQ(properties.subscription_identifier, 1u);
  EXPECT_EQ(properties.subscription_identifier_count, 3u);
  std::array<uint32_t, 3> identifiers{};
  ASSERT_EQ(copy_subscription_identifiers(properties, identifiers), 3u);
  EXPECT_EQ(identifiers, (std::array<uint32_t, 3>{1, 128, 268'435'455}));
  EXPECT_EQ(decode(bytes, Context::kSubscribe), DecodeStatus::kProtocolError);
  EXPECT_EQ(decode(block({{0x0B, 7}}), Context::kSubscribe, &properties), DecodeStatus::kOk);
  EXPECT_EQ(properties.subscription_identifier, 7u);

  base::ByteBuffer buffer;
  Properties first;
  first.subscription_identifier = 1;
  const std::array<uint32_t, 2> more = {128, 268'435'455};
  encode_properties(buffer, Context::kPublish, first, {}, more);
  EXPECT_EQ(to_vector(buffer), bytes);
}

// Section 2.2.2.2 and the "more than once" rule of each property.
TEST(MqttProperties, RepeatsAndContexts) {
  for (const auto& [id, expected] : spec_table()) {
    for (const Context context : kAllContexts) {
      const auto property = static_cast<PropertyId>(id);
      SCOPED_TRACE(testing::Message()
                   << property_name(property) << " in context " << static_cast<int>(context));
      // Authentication Data needs an Authentication Method beside it.
      const auto method = id == 0x16 ? string_property(0x15, "m") : std::vector<uint8_t>{};
      const auto once = block({method, sample_property(id)});
      const auto twice = block({method, sample_property(id), sample_property(id)});
      if (expected.contexts.count(context) == 0) {
        EXPECT_EQ(decode(once, context), DecodeStatus::kMalformed);
        continue;
      }
      EXPECT_EQ(decode(once, context), DecodeStatus::kOk);
      const bool may_repeat = id == 0x26 || (id == 0x0B && context == Context::kPublish);
      EXPECT_EQ(property_may_repeat(property, context), may_repeat);
      EXPECT_EQ(decode(twice, context), may_repeat ? DecodeStatus::kOk : DecodeStatus::kProtocolError);
    }
  }
}

TEST(MqttProperties, UnknownIdentifiersAreMalformed) {
  for (const uint8_t id : {0x00, 0x04, 0x0A, 0x14, 0x1B, 0x20, 0x2B, 0x7F, 0xFF}) {
    EXPECT_EQ(decode(block({{id, 0}}), Context::kPublish), DecodeStatus::kMalformed) << int{id};
  }
  // A multi-byte identifier encoding, even of a known value, is no defined identifier.
  EXPECT_EQ(decode(block({{0x81, 0x00, 1}}), Context::kPublish), DecodeStatus::kMalformed);
}

TEST(MqttProperties, ValueRules) {
  const std::pair<std::vector<uint8_t>, Context> protocol_errors[] = {
      {{0x01, 2}, Context::kPublish},                      // Payload Format Indicator
      {{0x17, 2}, Context::kConnect},                      // Request Problem Information
      {{0x19, 2}, Context::kConnect},                      // Request Response Information
      {{0x24, 2}, Context::kConnack},                      // Maximum QoS
      {{0x25, 2}, Context::kConnack},                      // Retain Available
      {{0x28, 2}, Context::kConnack},                      // Wildcard Subscription Available
      {{0x29, 0xFF}, Context::kConnack},                   // Subscription Identifier Available
      {{0x2A, 2}, Context::kConnack},                      // Shared Subscription Available
      {{0x21, 0, 0}, Context::kConnect},                   // Receive Maximum 0
      {{0x27, 0, 0, 0, 0}, Context::kConnack},             // Maximum Packet Size 0
      {{0x0B, 0}, Context::kSubscribe},                    // Subscription Identifier 0
      {string_property(0x08, "a/+"), Context::kWill},      // Response Topic with a wildcard
      {string_property(0x08, ""), Context::kPublish},      // empty Response Topic
      {string_property(0x16, "data"), Context::kConnect},  // Authentication Data without a method
  };
  for (const auto& [property, context] : protocol_errors) {
    EXPECT_EQ(decode(block({property}), context), DecodeStatus::kProtocolError)
        << testing::PrintToString(property);
  }
  // The zero values that are allowed.
  EXPECT_EQ(decode(block({{0x22, 0, 0}}), Context::kConnect), DecodeStatus::kOk);  // Topic Alias Maximum 0
  EXPECT_EQ(decode(block({{0x13, 0, 0}}), Context::kConnack), DecodeStatus::kOk);  // Server Keep Alive 0
  // Topic Alias 0 is invalid, but the receiver answers it with 0x94 after checking its own maximum.
  EXPECT_EQ(decode(block({{0x23, 0, 0}}), Context::kPublish), DecodeStatus::kOk);
  EXPECT_EQ(decode(block({{0x24, 1}}), Context::kConnack), DecodeStatus::kOk);
  EXPECT_EQ(decode(block({string_property(0x15, "SCRAM"), string_property(0x16, "x")}), Context::kAuth),
            DecodeStatus::kOk);
}

TEST(MqttProperties, Utf8Rules) {
  EXPECT_EQ(decode(block({string_property(0x03, "a\x80")}), Context::kPublish), DecodeStatus::kMalformed);
  EXPECT_EQ(decode(block({string_property(0x1F, std::string_view("a\0", 2))}), Context::kPuback),
            DecodeStatus::kMalformed);
  EXPECT_EQ(decode(block({{0x26, 0, 1, 0xC0, 0, 1, 'v'}}), Context::kPuback), DecodeStatus::kMalformed);
  EXPECT_EQ(decode(block({{0x26, 0, 1, 'k', 0, 1, 0xFF}}), Context::kPuback), DecodeStatus::kMalformed);
  // Correlation Data and Authentication Data are binary.
  EXPECT_EQ(decode(block({string_property(0x09, "\xFF\x00")}), Context::kPublish), DecodeStatus::kOk);
}

TEST(MqttProperties, Truncation) {
  EXPECT_EQ(decode({}, Context::kPublish), DecodeStatus::kMalformed);      // no length
  EXPECT_EQ(decode({0x80}, Context::kPublish), DecodeStatus::kMalformed);  // length cut
  EXPECT_EQ(decode({0x80, 0x80, 0x80, 0x80, 0x01}, Context::kPublish), DecodeStatus::kMalformed);  // 5 bytes
  EXPECT_EQ(decode({0x03, 0x01, 0x01}, Context::kPublish), DecodeStatus::kMalformed);  // block past the end
  EXPECT_EQ(decode({0x01, 0x01}, Context::kPublish), DecodeStatus::kMalformed);        // value missing
  EXPECT_EQ(decode({0x02, 0x02, 0, 0, 0}, Context::kPublish), DecodeStatus::kMalformed);
  EXPECT_EQ(decode({0x03, 0x23, 0x00}, Context::kPublish), DecodeStatus::kMalformed);  // length says 3, has 2
  EXPECT_EQ(decode({0x02, 0x0B, 0x80}, Context::kPublish), DecodeStatus::kMalformed);  // varint value cut
  EXPECT_EQ(decode({0x06, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01}, Context::kPublish), DecodeStatus::kMalformed);
  EXPECT_EQ(decode({0x04, 0x26, 0, 1, 'k'}, Context::kPublish),
            DecodeStatus::kMalformed);  // pair value missing

  // Every prefix of a rich valid block fails, and nothing reads past the exact-size copy.
  const auto valid = block({{0x01, 1},
                            {0x02, 0, 0, 0, 9},
                            string_property(0x03, "text/plain"),
                            string_property(0x08, "reply/to"),
                            {0x0B, 0x80, 0x01},
                            {0x26, 0, 1, 'k', 0, 1, 'v'}});
  ASSERT_EQ(decode(valid, Context::kPublish), DecodeStatus::kOk);
  for (size_t prefix = 0; prefix < valid.size(); prefix++) {
    const std::vector<uint8_t> cut(valid.begin(), valid.begin() + static_cast<long>(prefix));
    EXPECT_EQ(decode(cut, Context::kPublish), DecodeStatus::kMalformed) << prefix;
  }
}

TEST(MqttProperties, RandomBlocksNeverCrash) {
  std::mt19937 random(99);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<size_t> length(0, 30);
  std::uniform_int_distribution<size_t> context_index(0, std::size(kAllContexts) - 1);
  // Mostly defined identifiers, so that the walk goes past the first property.
  std::uniform_int_distribution<size_t> id_index(0, std::size(kAllPropertyIds) - 1);
  size_t accepted = 0;
  for (int iteration = 0; iteration < 50'000; iteration++) {
    std::vector<uint8_t> bytes(length(random));
    for (uint8_t& value : bytes) value = static_cast<uint8_t>(byte(random));
    if (!bytes.empty()) bytes[0] = static_cast<uint8_t>(std::min<size_t>(bytes.size() - 1, bytes[0] & 0x7F));
    if (bytes.size() > 1) bytes[1] = static_cast<uint8_t>(kAllPropertyIds[id_index(random)]);
    Properties properties;
    size_t consumed = 0;
    const Context context = kAllContexts[context_index(random)];
    if (decode_properties(bytes, context, &properties, &consumed) != DecodeStatus::kOk) continue;
    accepted++;
    ASSERT_LE(consumed, bytes.size());
    // An accepted block can always be walked and re-encoded.
    PropertyCursor cursor(properties);
    PropertyCursor::Entry entry{};
    uint32_t users = 0;
    while (cursor.next(&entry)) users += entry.id == PropertyId::kUserProperty ? 1 : 0;
    EXPECT_EQ(users, properties.user_property_count);
  }
  EXPECT_GT(accepted, 100u);
}

TEST(MqttPropertiesDeathTest, EncodingAPropertyTheContextForbidsAsserts) {
  Properties properties;
  properties.topic_alias = 3;
  base::ByteBuffer buffer;
  EXPECT_DEATH(encode_properties(buffer, Context::kConnect, properties), "not allowed");
}

TEST(MqttProperties, ContextOfPacketType) {
  EXPECT_EQ(property_context(PacketType::kConnect), Context::kConnect);
  EXPECT_EQ(property_context(PacketType::kPublish), Context::kPublish);
  EXPECT_EQ(property_context(PacketType::kAuth), Context::kAuth);
  EXPECT_EQ(property_context(PacketType::kUnsuback), Context::kUnsuback);
}

}  // namespace
}  // namespace coremq::mqtt
