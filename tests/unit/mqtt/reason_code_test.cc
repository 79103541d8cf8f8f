// MQTT 5 reason codes: the table of section 2.4 and the mappings to 3.1.1 and decoder statuses.
#include <cstdint>

#include <gtest/gtest.h>

#include "mqtt/reason_code.h"

namespace coremq::mqtt {
namespace {

TEST(MqttReasonCode, DefinedCodes) {
  int defined = 0;
  for (int code = 0; code < 256; code++) defined += reason_code_defined(static_cast<uint8_t>(code)) ? 1 : 0;
  EXPECT_EQ(defined, 43);
  EXPECT_TRUE(reason_code_defined(0xA2));
  EXPECT_FALSE(reason_code_defined(0x03));
  EXPECT_FALSE(reason_code_defined(0xA3));
  EXPECT_EQ(reason_code_name(ReasonCode::kPacketTooLarge), "Packet too large");
  EXPECT_EQ(reason_code_name(ReasonCode::kNormalDisconnection), "Success");
  EXPECT_EQ(reason_code_name(static_cast<ReasonCode>(0x03)), "Unknown");
  EXPECT_FALSE(is_error(ReasonCode::kNoMatchingSubscribers));
  EXPECT_TRUE(is_error(ReasonCode::kUnspecifiedError));
}

TEST(MqttReasonCode, AllowedPerPacket) {
  EXPECT_TRUE(reason_code_allowed(PacketType::kSuback, ReasonCode::kGrantedQos2));
  EXPECT_FALSE(reason_code_allowed(PacketType::kPuback, ReasonCode::kGrantedQos2));
  EXPECT_TRUE(reason_code_allowed(PacketType::kPuback, ReasonCode::kNoMatchingSubscribers));
  EXPECT_FALSE(reason_code_allowed(PacketType::kPubrel, ReasonCode::kNoMatchingSubscribers));
  EXPECT_TRUE(reason_code_allowed(PacketType::kPubrel, ReasonCode::kPacketIdentifierNotFound));
  EXPECT_TRUE(reason_code_allowed(PacketType::kDisconnect, ReasonCode::kDisconnectWithWillMessage));
  EXPECT_TRUE(reason_code_allowed(PacketType::kConnack, ReasonCode::kMalformedPacket));
  EXPECT_FALSE(reason_code_allowed(PacketType::kPuback, ReasonCode::kMalformedPacket));
  EXPECT_TRUE(reason_code_allowed(PacketType::kDisconnect, ReasonCode::kSessionTakenOver));
  EXPECT_FALSE(reason_code_allowed(PacketType::kConnack, ReasonCode::kSessionTakenOver));
  EXPECT_TRUE(reason_code_allowed(PacketType::kAuth, ReasonCode::kContinueAuthentication));
  EXPECT_TRUE(reason_code_allowed(PacketType::kUnsuback, ReasonCode::kNoSubscriptionExisted));
  for (const PacketType type : {PacketType::kConnect, PacketType::kPublish, PacketType::kSubscribe,
                                PacketType::kUnsubscribe, PacketType::kPingreq, PacketType::kPingresp}) {
    for (int code = 0; code < 256; code++) {
      EXPECT_FALSE(reason_code_allowed(type, static_cast<ReasonCode>(code)));
    }
  }
  EXPECT_FALSE(reason_code_allowed(PacketType::kSuback, static_cast<ReasonCode>(0x03)));
}

TEST(MqttReasonCode, ConnectReturnCodeMapping) {
  for (uint8_t value = 0; value <= 5; value++) {
    const auto code = static_cast<ConnectReturnCode>(value);
    EXPECT_EQ(connect_return_code_for(reason_code_for(code)), code);
    EXPECT_TRUE(reason_code_allowed(PacketType::kConnack, reason_code_for(code)));
  }
  EXPECT_EQ(connect_return_code_for(ReasonCode::kServerBusy), ConnectReturnCode::kServerUnavailable);
  EXPECT_EQ(connect_return_code_for(ReasonCode::kBanned), ConnectReturnCode::kNotAuthorized);
}

TEST(MqttReasonCode, DecodeStatusMapping) {
  EXPECT_EQ(reason_code_for(DecodeStatus::kMalformed), ReasonCode::kMalformedPacket);
  EXPECT_EQ(reason_code_for(DecodeStatus::kProtocolError), ReasonCode::kProtocolError);
  EXPECT_EQ(reason_code_for(DecodeStatus::kUnsupportedProtocolLevel),
            ReasonCode::kUnsupportedProtocolVersion);
  for (const DecodeStatus status :
       {DecodeStatus::kMalformed, DecodeStatus::kProtocolError, DecodeStatus::kTooManyTopics}) {
    EXPECT_TRUE(reason_code_allowed(PacketType::kDisconnect, reason_code_for(status)));
  }
}

}  // namespace
}  // namespace coremq::mqtt
