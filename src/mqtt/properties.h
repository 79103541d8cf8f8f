// MQTT 5 properties (section 2.2.2): the identifiers and data types of every property, a decoder
// from a property block into a Properties struct of views, and an encoder back to bytes. Like the
// rest of the codec it does no I/O and never allocates while decoding: string and binary values
// point into the decoded bytes, and the properties that may repeat (User Property, and Subscription
// Identifier in PUBLISH) are counted and can be walked again with PropertyCursor. Pure functions,
// callable from any thread; a Properties lives no longer than the bytes it was decoded from.
//
// The decoders of decoder.h call decode_properties for the block of each MQTT 5 packet; the
// Properties and UserProperty structs themselves live in property_set.h so that packet.h can hold them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "base/byte_buffer.h"
#include "mqtt/decoder.h"
#include "mqtt/packet.h"
#include "mqtt/property_set.h"

namespace coremq::mqtt {

// Property identifiers, section 2.2.2.2 table 2-4.
enum class PropertyId : uint8_t {
  kPayloadFormatIndicator = 0x01,
  kMessageExpiryInterval = 0x02,
  kContentType = 0x03,
  kResponseTopic = 0x08,
  kCorrelationData = 0x09,
  kSubscriptionIdentifier = 0x0B,
  kSessionExpiryInterval = 0x11,
  kAssignedClientIdentifier = 0x12,
  kServerKeepAlive = 0x13,
  kAuthenticationMethod = 0x15,
  kAuthenticationData = 0x16,
  kRequestProblemInformation = 0x17,
  kWillDelayInterval = 0x18,
  kRequestResponseInformation = 0x19,
  kResponseInformation = 0x1A,
  kServerReference = 0x1C,
  kReasonString = 0x1F,
  kReceiveMaximum = 0x21,
  kTopicAliasMaximum = 0x22,
  kTopicAlias = 0x23,
  kMaximumQos = 0x24,
  kRetainAvailable = 0x25,
  kUserProperty = 0x26,
  kMaximumPacketSize = 0x27,
  kWildcardSubscriptionAvailable = 0x28,
  kSubscriptionIdentifierAvailable = 0x29,
  kSharedSubscriptionAvailable = 0x2A,
};

// Every identifier above, in ascending order (for tests and tables).
inline constexpr PropertyId kAllPropertyIds[] = {
    PropertyId::kPayloadFormatIndicator,
    PropertyId::kMessageExpiryInterval,
    PropertyId::kContentType,
    PropertyId::kResponseTopic,
    PropertyId::kCorrelationData,
    PropertyId::kSubscriptionIdentifier,
    PropertyId::kSessionExpiryInterval,
    PropertyId::kAssignedClientIdentifier,
    PropertyId::kServerKeepAlive,
    PropertyId::kAuthenticationMethod,
    PropertyId::kAuthenticationData,
    PropertyId::kRequestProblemInformation,
    PropertyId::kWillDelayInterval,
    PropertyId::kRequestResponseInformation,
    PropertyId::kResponseInformation,
    PropertyId::kServerReference,
    PropertyId::kReasonString,
    PropertyId::kReceiveMaximum,
    PropertyId::kTopicAliasMaximum,
    PropertyId::kTopicAlias,
    PropertyId::kMaximumQos,
    PropertyId::kRetainAvailable,
    PropertyId::kUserProperty,
    PropertyId::kMaximumPacketSize,
    PropertyId::kWildcardSubscriptionAvailable,
    PropertyId::kSubscriptionIdentifierAvailable,
    PropertyId::kSharedSubscriptionAvailable,
};

// Data types of section 1.5.
enum class PropertyType : uint8_t {
  kByte,
  kTwoByteInteger,
  kFourByteInteger,
  kVariableByteInteger,
  kUtf8String,
  kBinaryData,
  kUtf8StringPair,
};

// Where a property block appears: one per packet type that has one, plus the will properties of
// CONNECT, which allow a different set.
enum class PropertyContext : uint8_t {
  kConnect,
  kWill,
  kConnack,
  kPublish,
  kPuback,
  kPubrec,
  kPubrel,
  kPubcomp,
  kSubscribe,
  kSuback,
  kUnsubscribe,
  kUnsuback,
  kDisconnect,
  kAuth,
};

// The context of the property block of `type`; PINGREQ and PINGRESP have none (asserts).
PropertyContext property_context(PacketType type);

// False for a byte that is not a property identifier.
bool property_id_defined(uint32_t id);
// For a defined identifier only (asserts otherwise).
PropertyType property_type(PropertyId id);
std::string_view property_name(PropertyId id);
bool property_allowed(PropertyId id, PropertyContext context);
// True for User Property everywhere and Subscription Identifier in PUBLISH (section 3.3.2.3.8).
bool property_may_repeat(PropertyId id, PropertyContext context);

// Reads the property block at the start of `bytes` (Property Length, then the properties) into
// *out, which is reset first. On kOk, *consumed is the size of the length varint plus the block.
// Statuses follow section 2.2.2.2 and the per-property rules of sections 3.x:
//   kMalformed: a length or value runs past the block or the packet, a length varint over four
//     bytes, an unknown identifier, an identifier not valid for `context`, a string that is not
//     valid UTF-8.
//   kProtocolError: a property other than User Property (or Subscription Identifier in PUBLISH)
//     appears twice; a value the spec forbids (a 0/1 flag with another value, Maximum QoS above 1,
//     Receive Maximum / Maximum Packet Size / Subscription Identifier of 0, a Response Topic with
//     wildcards); Authentication Data without Authentication Method.
// A Topic Alias of 0 decodes: whether an alias is valid depends on the Topic Alias Maximum the
// receiver granted, so the receiver checks it and answers 0x94 (Topic Alias invalid).
[[nodiscard]] DecodeStatus decode_properties(std::span<const uint8_t> bytes, PropertyContext context,
                                             Properties* out, size_t* consumed);

// Walks a block that decode_properties accepted, one property at a time, in wire order; for
// forwarding properties and for reading the repeated ones. Lives on the caller's stack.
class PropertyCursor {
 public:
  struct Entry {
    PropertyId id;
    uint32_t integer = 0;         // Byte, Two/Four Byte Integer, Variable Byte Integer
    std::string_view text;        // UTF-8 String, Binary Data, or the name of a pair
    std::string_view pair_value;  // the value of a UTF-8 String Pair
  };

  explicit PropertyCursor(std::span<const uint8_t> encoded) : encoded_(encoded) {}
  explicit PropertyCursor(const Properties& properties) : encoded_(properties.encoded) {}

  // False at the end. Asserts on bytes that were not validated by decode_properties.
  bool next(Entry* entry);

 private:
  std::span<const uint8_t> encoded_;
  size_t position_ = 0;
};

// Copies the User Properties / Subscription Identifiers of a decoded block into caller storage, in
// wire order; returns how many were written (at most storage.size(); the struct holds the count).
size_t copy_user_properties(const Properties& properties, std::span<UserProperty> storage);
size_t copy_subscription_identifiers(const Properties& properties, std::span<uint32_t> storage);

// Size of the block (Property Length not included) that encode_properties writes.
size_t properties_length(const Properties& properties, std::span<const UserProperty> user_properties = {},
                         std::span<const uint32_t> subscription_identifiers = {});

// Appends Property Length and every property that is set, in identifier order: first the optionals
// of `properties`, with the subscription_identifier optional followed by each of
// `subscription_identifiers`, and User Properties last, from `user_properties` (the counts and
// `encoded` of `properties` are ignored). A property not allowed in `context`, a repeat where none
// is allowed, or an out-of-range value is a bug in the caller and asserts.
void encode_properties(base::ByteBuffer& out, PropertyContext context, const Properties& properties,
                       std::span<const UserProperty> user_properties = {},
                       std::span<const uint32_t> subscription_identifiers = {});

// The same properties without the Property Length in front: a raw block for the MQTT 5 encoders of
// encoder.h, which take property bytes and write the length themselves. Appends to `out`, so a
// caller can add properties it writes itself (or forwards) before or after.
void encode_property_bytes(base::ByteBuffer& out, PropertyContext context, const Properties& properties,
                           std::span<const UserProperty> user_properties = {},
                           std::span<const uint32_t> subscription_identifiers = {});

}  // namespace coremq::mqtt
