// Names of packet types and decoder statuses, for logs and test output.
#include "mqtt/packet.h"
#include "mqtt/decoder.h"

namespace coremq::mqtt {

std::string_view packet_type_name(PacketType type) {
  switch (type) {
    case PacketType::kConnect:
      return "CONNECT";
    case PacketType::kConnack:
      return "CONNACK";
    case PacketType::kPublish:
      return "PUBLISH";
    case PacketType::kPuback:
      return "PUBACK";
    case PacketType::kPubrec:
      return "PUBREC";
    case PacketType::kPubrel:
      return "PUBREL";
    case PacketType::kPubcomp:
      return "PUBCOMP";
    case PacketType::kSubscribe:
      return "SUBSCRIBE";
    case PacketType::kSuback:
      return "SUBACK";
    case PacketType::kUnsubscribe:
      return "UNSUBSCRIBE";
    case PacketType::kUnsuback:
      return "UNSUBACK";
    case PacketType::kPingreq:
      return "PINGREQ";
    case PacketType::kPingresp:
      return "PINGRESP";
    case PacketType::kDisconnect:
      return "DISCONNECT";
    case PacketType::kAuth:
      return "AUTH";
  }
  return "RESERVED";
}

std::string_view frame_status_name(FrameStatus status) {
  switch (status) {
    case FrameStatus::kComplete:
      return "complete";
    case FrameStatus::kNeedMore:
      return "need more";
    case FrameStatus::kMalformed:
      return "malformed";
    case FrameStatus::kTooLarge:
      return "too large";
  }
  return "unknown";
}

std::string_view decode_status_name(DecodeStatus status) {
  switch (status) {
    case DecodeStatus::kOk:
      return "ok";
    case DecodeStatus::kMalformed:
      return "malformed packet";
    case DecodeStatus::kProtocolError:
      return "protocol error";
    case DecodeStatus::kBadProtocolName:
      return "bad protocol name";
    case DecodeStatus::kUnsupportedProtocolLevel:
      return "unsupported protocol level";
    case DecodeStatus::kTooManyTopics:
      return "too many topics";
  }
  return "unknown";
}

}  // namespace coremq::mqtt
