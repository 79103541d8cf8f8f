// Reason code names and the table of which packet may carry which code (section 2.4, table 2-6).
#include "mqtt/reason_code.h"

namespace coremq::mqtt {
namespace {

constexpr uint16_t packet_bit(PacketType type) {
  return static_cast<uint16_t>(1u << static_cast<int>(type));
}

constexpr uint16_t kConnack = packet_bit(PacketType::kConnack);
constexpr uint16_t kPuback = packet_bit(PacketType::kPuback);
constexpr uint16_t kPubrec = packet_bit(PacketType::kPubrec);
constexpr uint16_t kPubrel = packet_bit(PacketType::kPubrel);
constexpr uint16_t kPubcomp = packet_bit(PacketType::kPubcomp);
constexpr uint16_t kSuback = packet_bit(PacketType::kSuback);
constexpr uint16_t kUnsuback = packet_bit(PacketType::kUnsuback);
constexpr uint16_t kDisconnect = packet_bit(PacketType::kDisconnect);
constexpr uint16_t kAuth = packet_bit(PacketType::kAuth);
// The failure codes that every acknowledgement of a request may carry.
constexpr uint16_t kRequestAcks = kConnack | kPuback | kPubrec | kSuback | kUnsuback | kDisconnect;

struct Entry {
  uint8_t code;
  std::string_view name;
  uint16_t packets;
};

constexpr Entry kTable[] = {
    {0x00, "Success",
     kConnack | kPuback | kPubrec | kPubrel | kPubcomp | kSuback | kUnsuback | kDisconnect | kAuth},
    {0x01, "Granted QoS 1", kSuback},
    {0x02, "Granted QoS 2", kSuback},
    {0x04, "Disconnect with Will Message", kDisconnect},
    {0x10, "No matching subscribers", kPuback | kPubrec},
    {0x11, "No subscription existed", kUnsuback},
    {0x18, "Continue authentication", kAuth},
    {0x19, "Re-authenticate", kAuth},
    {0x80, "Unspecified error", kRequestAcks},
    {0x81, "Malformed Packet", kConnack | kDisconnect},
    {0x82, "Protocol Error", kConnack | kDisconnect},
    {0x83, "Implementation specific error", kRequestAcks},
    {0x84, "Unsupported Protocol Version", kConnack},
    {0x85, "Client Identifier not valid", kConnack},
    {0x86, "Bad User Name or Password", kConnack},
    {0x87, "Not authorized", kRequestAcks},
    {0x88, "Server unavailable", kConnack},
    {0x89, "Server busy", kConnack | kDisconnect},
    {0x8A, "Banned", kConnack},
    {0x8B, "Server shutting down", kDisconnect},
    {0x8C, "Bad authentication method", kConnack | kDisconnect},
    {0x8D, "Keep Alive timeout", kDisconnect},
    {0x8E, "Session taken over", kDisconnect},
    {0x8F, "Topic Filter invalid", kSuback | kUnsuback | kDisconnect},
    {0x90, "Topic Name invalid", kConnack | kPuback | kPubrec | kDisconnect},
    {0x91, "Packet Identifier in use", kPuback | kPubrec | kSuback | kUnsuback},
    {0x92, "Packet Identifier not found", kPubrel | kPubcomp},
    {0x93, "Receive Maximum exceeded", kDisconnect},
    {0x94, "Topic Alias invalid", kDisconnect},
    {0x95, "Packet too large", kConnack | kDisconnect},
    {0x96, "Message rate too high", kDisconnect},
    {0x97, "Quota exceeded", kConnack | kPuback | kPubrec | kSuback | kDisconnect},
    {0x98, "Administrative action", kDisconnect},
    {0x99, "Payload format invalid", kConnack | kPuback | kPubrec | kDisconnect},
    {0x9A, "Retain not supported", kConnack | kDisconnect},
    {0x9B, "QoS not supported", kConnack | kDisconnect},
    {0x9C, "Use another server", kConnack | kDisconnect},
    {0x9D, "Server moved", kConnack | kDisconnect},
    {0x9E, "Shared Subscriptions not supported", kSuback | kDisconnect},
    {0x9F, "Connection rate exceeded", kConnack | kDisconnect},
    {0xA0, "Maximum connect time", kDisconnect},
    {0xA1, "Subscription Identifiers not supported", kSuback | kDisconnect},
    {0xA2, "Wildcard Subscriptions not supported", kSuback | kDisconnect},
};

const Entry* find(uint8_t code) {
  for (const Entry& entry : kTable) {
    if (entry.code == code) return &entry;
  }
  return nullptr;
}

}  // namespace

std::string_view reason_code_name(ReasonCode code) {
  const Entry* entry = find(static_cast<uint8_t>(code));
  return entry ? entry->name : "Unknown";
}

bool reason_code_defined(uint8_t code) {
  return find(code) != nullptr;
}

bool reason_code_allowed(PacketType type, ReasonCode code) {
  const Entry* entry = find(static_cast<uint8_t>(code));
  return entry != nullptr && (entry->packets & packet_bit(type)) != 0;
}

ReasonCode reason_code_for(ConnectReturnCode code) {
  switch (code) {
    case ConnectReturnCode::kAccepted:
      return ReasonCode::kSuccess;
    case ConnectReturnCode::kUnacceptableProtocolVersion:
      return ReasonCode::kUnsupportedProtocolVersion;
    case ConnectReturnCode::kIdentifierRejected:
      return ReasonCode::kClientIdentifierNotValid;
    case ConnectReturnCode::kServerUnavailable:
      return ReasonCode::kServerUnavailable;
    case ConnectReturnCode::kBadUsernameOrPassword:
      return ReasonCode::kBadUserNameOrPassword;
    case ConnectReturnCode::kNotAuthorized:
      return ReasonCode::kNotAuthorized;
  }
  return ReasonCode::kUnspecifiedError;
}

ConnectReturnCode connect_return_code_for(ReasonCode code) {
  switch (code) {
    case ReasonCode::kSuccess:
      return ConnectReturnCode::kAccepted;
    case ReasonCode::kUnsupportedProtocolVersion:
      return ConnectReturnCode::kUnacceptableProtocolVersion;
    case ReasonCode::kClientIdentifierNotValid:
      return ConnectReturnCode::kIdentifierRejected;
    case ReasonCode::kBadUserNameOrPassword:
    case ReasonCode::kBadAuthenticationMethod:
      return ConnectReturnCode::kBadUsernameOrPassword;
    case ReasonCode::kServerUnavailable:
    case ReasonCode::kServerBusy:
    case ReasonCode::kServerShuttingDown:
    case ReasonCode::kUseAnotherServer:
    case ReasonCode::kServerMoved:
    case ReasonCode::kConnectionRateExceeded:
    case ReasonCode::kQuotaExceeded:
      return ConnectReturnCode::kServerUnavailable;
    default:
      return ConnectReturnCode::kNotAuthorized;
  }
}

ReasonCode reason_code_for(DecodeStatus status) {
  switch (status) {
    case DecodeStatus::kOk:
      return ReasonCode::kSuccess;
    case DecodeStatus::kMalformed:
      return ReasonCode::kMalformedPacket;
    case DecodeStatus::kProtocolError:
      return ReasonCode::kProtocolError;
    case DecodeStatus::kBadProtocolName:
    case DecodeStatus::kUnsupportedProtocolLevel:
      return ReasonCode::kUnsupportedProtocolVersion;
    case DecodeStatus::kTooManyTopics:
      return ReasonCode::kQuotaExceeded;
  }
  return ReasonCode::kUnspecifiedError;
}

}  // namespace coremq::mqtt
