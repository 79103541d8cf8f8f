// MQTT 5 reason codes (section 2.4) and their mapping to and from the MQTT 3.1.1 CONNACK return
// codes and the decoder statuses. Constants and pure functions; usable from any thread.
#pragma once

#include <cstdint>
#include <string_view>

#include "mqtt/decoder.h"
#include "mqtt/packet.h"

namespace coremq::mqtt {

// One enumerator per meaning; 0x00 has three names because the spec gives it three.
enum class ReasonCode : uint8_t {
  kSuccess = 0x00,
  kNormalDisconnection = 0x00,
  kGrantedQos0 = 0x00,
  kGrantedQos1 = 0x01,
  kGrantedQos2 = 0x02,
  kDisconnectWithWillMessage = 0x04,
  kNoMatchingSubscribers = 0x10,
  kNoSubscriptionExisted = 0x11,
  kContinueAuthentication = 0x18,
  kReauthenticate = 0x19,
  kUnspecifiedError = 0x80,
  kMalformedPacket = 0x81,
  kProtocolError = 0x82,
  kImplementationSpecificError = 0x83,
  kUnsupportedProtocolVersion = 0x84,
  kClientIdentifierNotValid = 0x85,
  kBadUserNameOrPassword = 0x86,
  kNotAuthorized = 0x87,
  kServerUnavailable = 0x88,
  kServerBusy = 0x89,
  kBanned = 0x8A,
  kServerShuttingDown = 0x8B,
  kBadAuthenticationMethod = 0x8C,
  kKeepAliveTimeout = 0x8D,
  kSessionTakenOver = 0x8E,
  kTopicFilterInvalid = 0x8F,
  kTopicNameInvalid = 0x90,
  kPacketIdentifierInUse = 0x91,
  kPacketIdentifierNotFound = 0x92,
  kReceiveMaximumExceeded = 0x93,
  kTopicAliasInvalid = 0x94,
  kPacketTooLarge = 0x95,
  kMessageRateTooHigh = 0x96,
  kQuotaExceeded = 0x97,
  kAdministrativeAction = 0x98,
  kPayloadFormatInvalid = 0x99,
  kRetainNotSupported = 0x9A,
  kQosNotSupported = 0x9B,
  kUseAnotherServer = 0x9C,
  kServerMoved = 0x9D,
  kSharedSubscriptionsNotSupported = 0x9E,
  kConnectionRateExceeded = 0x9F,
  kMaximumConnectTime = 0xA0,
  kSubscriptionIdentifiersNotSupported = 0xA1,
  kWildcardSubscriptionsNotSupported = 0xA2,
};

// Codes 0x80 and above report failure (section 2.4).
inline constexpr bool is_error(ReasonCode code) {
  return static_cast<uint8_t>(code) >= 0x80;
}

// The spec's name of the code ("Success" for 0x00); "Unknown" for a value the spec does not define.
std::string_view reason_code_name(ReasonCode code);

// True when the spec defines `code` as a reason code at all.
bool reason_code_defined(uint8_t code);

// True when table 2-6 lists `code` for packets of `type`. PUBLISH, SUBSCRIBE, UNSUBSCRIBE, CONNECT,
// PINGREQ and PINGRESP carry no reason code, so nothing is allowed for them.
bool reason_code_allowed(PacketType type, ReasonCode code);

// CONNACK: what a 3.1.1 refusal becomes under MQTT 5 and back. A reason code with no 3.1.1
// counterpart becomes kServerUnavailable for bad-but-transient server states and kNotAuthorized
// otherwise, the closest refusal a 3.1.1 client understands.
ReasonCode reason_code_for(ConnectReturnCode code);
ConnectReturnCode connect_return_code_for(ReasonCode code);

// The reason code a server sends (CONNACK or DISCONNECT) for a packet the decoder rejected.
ReasonCode reason_code_for(DecodeStatus status);

}  // namespace coremq::mqtt
