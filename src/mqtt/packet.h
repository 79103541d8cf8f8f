// MQTT control packet types and the decoded forms of each packet (MQTT 3.1, 3.1.1 and 5).
// Pure data: no I/O, no allocation. Every string_view and span in a decoded packet points into the
// packet body the decoder was given, so a decoded packet lives no longer than the receive buffer
// that holds its bytes. The MQTT 5 property blocks (`properties` fields) are decoded only under
// MQTT 5 and stay empty otherwise. Usable from any thread; each value is owned by whoever declared
// it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "mqtt/property_set.h"

namespace coremq::mqtt {

enum class PacketType : uint8_t {
  kConnect = 1,
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
  kPingreq,
  kPingresp,
  kDisconnect,
  kAuth,  // MQTT 5 only
};

// The Protocol Level byte of CONNECT.
enum class ProtocolVersion : uint8_t { kV31 = 3, kV311 = 4, kV5 = 5 };

// CONNACK return codes of MQTT 3.1 / 3.1.1 (section 3.2.2.3). 6..255 are reserved.
enum class ConnectReturnCode : uint8_t {
  kAccepted = 0,
  kUnacceptableProtocolVersion = 1,
  kIdentifierRejected = 2,
  kServerUnavailable = 3,
  kBadUsernameOrPassword = 4,
  kNotAuthorized = 5,
};

// SUBACK return code for a refused subscription (3.1.1 section 3.9.3).
inline constexpr uint8_t kSubackFailure = 0x80;

// Protocol bounds that every encoder and decoder shares.
inline constexpr uint32_t kRemainingLengthMax = 268'435'455;  // largest 4-byte variable byte integer
inline constexpr size_t kRemainingLengthBytesMax = 4;
inline constexpr size_t kFixedHeaderSizeMax = 1 + kRemainingLengthBytesMax;
inline constexpr size_t kStringLengthMax = 65'535;  // strings and binary data carry a 16-bit length
inline constexpr std::string_view kProtocolNameV31 = "MQIsdp";
inline constexpr std::string_view kProtocolName = "MQTT";  // 3.1.1 and 5

std::string_view packet_type_name(PacketType type);

struct FixedHeader {
  PacketType type;
  uint8_t flags;              // low nibble of the first byte
  uint32_t remaining_length;  // bytes after the fixed header
  uint32_t header_length;     // bytes of the fixed header itself: 2..5
};

struct Will {
  std::string_view topic;
  std::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
};

struct ConnectPacket {
  std::string_view protocol_name;  // empty when encoding: derived from protocol_level
  uint8_t protocol_level = 0;      // 0 when encoding means 4 (3.1.1)
  // The level has the bridge bit (0x80, Mosquitto's try_private): decoded, the bit is removed
  // from protocol_level and set here; encoded, the bit is written back (so a decoded CONNECT
  // re-encodes to the same bytes).
  bool bridge = false;
  bool clean_session = true;
  uint16_t keep_alive_seconds = 0;
  std::string_view client_id;
  bool has_will = false;
  Will will;
  bool has_username = false;
  std::string_view username;
  bool has_password = false;
  std::string_view password;
  Properties properties;       // MQTT 5: the CONNECT properties
  Properties will_properties;  // MQTT 5 with a will: the will properties
};

// Under MQTT 5 reason_code is what the server sent and return_code its closest 3.1.1 meaning; under
// 3.1.1 return_code is what the server sent and reason_code its MQTT 5 counterpart.
struct ConnackPacket {
  bool session_present = false;
  ConnectReturnCode return_code = ConnectReturnCode::kAccepted;
  uint8_t reason_code = 0;  // MQTT 5 reason code (section 3.2.2.2)
  Properties properties;
};

struct PublishPacket {
  std::string_view topic;
  std::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;  // present only when qos > 0
  // Set by the decoder: levels of `topic` (counted while validating it); 0 for an empty topic.
  uint32_t topic_levels = 0;
  // MQTT 5: properties.encoded views the block as received, for forwarding. The topic may be empty
  // when properties.topic_alias is set; the receiver resolves the alias.
  Properties properties;
};

// One entry of a SUBSCRIBE payload. The MQTT 5 subscription options are decoded only for MQTT 5 and
// stay at their defaults (which match 3.1.1 behaviour) otherwise.
struct SubscribeTopic {
  std::string_view filter;
  uint8_t qos = 0;
  bool no_local = false;             // MQTT 5
  bool retain_as_published = false;  // MQTT 5
  uint8_t retain_handling = 0;       // MQTT 5: 0 send retained, 1 only if new, 2 never
};

// SUBSCRIBE and UNSUBSCRIBE carry a list: the decoders fill a caller-owned fixed array (the bound on
// topics per packet) and these spans view the filled prefix of it.
struct SubscribePacket {
  uint16_t packet_id = 0;
  std::span<SubscribeTopic> topics;
  Properties properties;  // MQTT 5
};

struct UnsubscribePacket {
  uint16_t packet_id = 0;
  std::span<std::string_view> filters;
  Properties properties;  // MQTT 5
};

// Client side. return_codes views the packet body: one byte per requested filter, each 0, 1, 2 or
// 0x80 (3.1.1) or a SUBACK reason code (MQTT 5).
struct SubackPacket {
  uint16_t packet_id = 0;
  std::span<const uint8_t> return_codes;
  Properties properties;  // MQTT 5
};

// Client side. reason_codes is empty before MQTT 5 (a 3.1.1 UNSUBACK carries only the packet id).
struct UnsubackPacket {
  uint16_t packet_id = 0;
  std::span<const uint8_t> reason_codes;
  Properties properties;  // MQTT 5
};

// PUBACK, PUBREC, PUBREL or PUBCOMP. Under 3.1.1 reason_code is 0 and properties empty.
struct AckPacket {
  PacketType type = PacketType::kPuback;
  uint16_t packet_id = 0;
  uint8_t reason_code = 0;
  Properties properties;
};

// DISCONNECT. Under 3.1.1 the packet is empty: reason_code 0 and no properties.
struct DisconnectPacket {
  uint8_t reason_code = 0;
  Properties properties;
};

// AUTH (MQTT 5 only): one step of an enhanced authentication exchange (section 4.12).
struct AuthPacket {
  uint8_t reason_code = 0;
  Properties properties;
};

}  // namespace coremq::mqtt
