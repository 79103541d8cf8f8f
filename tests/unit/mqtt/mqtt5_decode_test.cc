// MQTT 5 packet decoders: one table row per rule (each a body that breaks exactly that rule, built
// byte by byte here rather than by the encoder), the decoded fields of hand-built packets, the
// short forms of the acknowledgements, DISCONNECT and AUTH, and truncation of every valid body at
// every byte (each prefix an exact-size copy, so that ASan sees any read past it).
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "mqtt/decoder.h"
#include "mqtt/packet.h"
#include "mqtt/properties.h"

namespace coremq::mqtt {
namespace {

constexpr auto kV5 = ProtocolVersion::kV5;
constexpr auto kOk = DecodeStatus::kOk;
constexpr auto kMalformed = DecodeStatus::kMalformed;
constexpr auto kProtocolError = DecodeStatus::kProtocolError;

// Builds packet bodies and property blocks byte by byte.
class Body {
 public:
  Body& u8(uint8_t value) {
    bytes_.push_back(value);
    return *this;
  }
  Body& u16(uint16_t value) { return u8(static_cast<uint8_t>(value >> 8)).u8(static_cast<uint8_t>(value)); }
  Body& u32(uint32_t value) {
    return u16(static_cast<uint16_t>(value >> 16)).u16(static_cast<uint16_t>(value));
  }
  Body& raw(std::string_view value) {
    bytes_.insert(bytes_.end(), value.begin(), value.end());
    return *this;
  }
  Body& raw(const std::vector<uint8_t>& value) {
    bytes_.insert(bytes_.end(), value.begin(), value.end());
    return *this;
  }
  Body& str(std::string_view value) { return u16(static_cast<uint16_t>(value.size())).raw(value); }
  Body& varint(uint32_t value) {
    do {
      uint8_t byte = value & 0x7F;
      value >>= 7;
      if (value > 0) byte |= 0x80;
      u8(byte);
    } while (value > 0);
    return *this;
  }
  // A property block: Property Length, then `block`.
  Body& props(const Body& block = Body()) {
    return varint(static_cast<uint32_t>(block.bytes().size())).raw(block.bytes());
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// One property each, identifier first.
Body byte_property(uint8_t id, uint8_t value) {
  return Body().u8(id).u8(value);
}
Body u16_property(uint8_t id, uint16_t value) {
  return Body().u8(id).u16(value);
}
Body u32_property(uint8_t id, uint32_t value) {
  return Body().u8(id).u32(value);
}
Body string_property(uint8_t id, std::string_view value) {
  return Body().u8(id).str(value);
}
Body user_property(std::string_view name, std::string_view value) {
  return Body().u8(0x26).str(name).str(value);
}
Body subscription_identifier(uint32_t value) {
  return Body().u8(0x0B).varint(value);
}
Body join(std::initializer_list<Body> parts) {
  Body all;
  for (const Body& part : parts) all.raw(part.bytes());
  return all;
}

// CONNECT body of level 5 up to and including the keep alive.
Body connect_header(uint8_t connect_flags) {
  return Body().str("MQTT").u8(5).u8(connect_flags).u16(30);
}

// Decodes `body` as an MQTT 5 packet of `type` with the right decoder and storage for four topics.
DecodeStatus decode_v5(PacketType type, uint8_t flags, std::span<const uint8_t> body) {
  std::array<SubscribeTopic, 4> topics;
  std::array<std::string_view, 4> filters;
  switch (type) {
    case PacketType::kConnect: {
      ConnectPacket packet;
      return decode_connect(body, flags, &packet);
    }
    case PacketType::kConnack: {
      ConnackPacket packet;
      return decode_connack(body, flags, kV5, &packet);
    }
    case PacketType::kPublish: {
      PublishPacket packet;
      return decode_publish(body, flags, kV5, &packet);
    }
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp: {
      AckPacket packet;
      return decode_ack(body, flags, type, kV5, &packet);
    }
    case PacketType::kSubscribe: {
      SubscribePacket packet;
      return decode_subscribe(body, flags, kV5, topics, &packet);
    }
    case PacketType::kSuback: {
      SubackPacket packet;
      return decode_suback(body, flags, kV5, &packet);
    }
    case PacketType::kUnsubscribe: {
      UnsubscribePacket packet;
      return decode_unsubscribe(body, flags, kV5, filters, &packet);
    }
    case PacketType::kUnsuback: {
      UnsubackPacket packet;
      return decode_unsuback(body, flags, kV5, &packet);
    }
    case PacketType::kDisconnect: {
      DisconnectPacket packet;
      return decode_disconnect(body, flags, kV5, &packet);
    }
    case PacketType::kAuth: {
      AuthPacket packet;
      return decode_auth(body, flags, &packet);
    }
    case PacketType::kPingreq:
    case PacketType::kPingresp:
      return decode_empty(body, flags, type);
  }
  return kMalformed;
}

struct Case {
  const char* name;
  PacketType type;
  uint8_t flags;
  std::vector<uint8_t> body;
  DecodeStatus expected;
};

std::vector<Case> connect_cases() {
  constexpr auto kConnect = PacketType::kConnect;
  const Body all_connect_properties =
      join({u32_property(0x11, 3600), u16_property(0x21, 10), u32_property(0x27, 1 << 20),
            u16_property(0x22, 5), byte_property(0x17, 0), byte_property(0x19, 1), user_property("k", "v"),
            user_property("k", "w"), string_property(0x15, "SCRAM-SHA-1"), string_property(0x16, "data")});
  const Body all_will_properties =
      join({byte_property(0x01, 1), u32_property(0x02, 60), string_property(0x03, "text/plain"),
            string_property(0x08, "reply/here"), string_property(0x09, "\x01\x02"), u32_property(0x18, 5),
            user_property("a", "b")});
  return {
      {"minimal", kConnect, 0, connect_header(0x02).props().str("id").bytes(), kOk},
      {"every connect property", kConnect, 0,
       connect_header(0x02).props(all_connect_properties).str("id").bytes(), kOk},
      {"will with every will property", kConnect, 0,
       connect_header(0x2C).props().str("id").props(all_will_properties).str("w/t").str("bye").bytes(), kOk},
      {"password without username", kConnect, 0, connect_header(0x40).props().str("id").str("pw").bytes(),
       kOk},
      {"username and password", kConnect, 0, connect_header(0xC2).props().str("id").str("u").str("p").bytes(),
       kOk},
      {"properties missing", kConnect, 0, connect_header(0x02).bytes(), kMalformed},
      {"properties missing before client id", kConnect, 0, connect_header(0x02).str("id").bytes(),
       kMalformed},
      {"property length past the end", kConnect, 0, connect_header(0x02).u8(20).str("id").bytes(),
       kMalformed},
      {"property length five bytes", kConnect, 0, connect_header(0x02).raw("\x80\x80\x80\x80\x01").bytes(),
       kMalformed},
      {"receive maximum 0", kConnect, 0, connect_header(0x02).props(u16_property(0x21, 0)).str("id").bytes(),
       kProtocolError},
      {"maximum packet size 0", kConnect, 0,
       connect_header(0x02).props(u32_property(0x27, 0)).str("id").bytes(), kProtocolError},
      {"request problem information 2", kConnect, 0,
       connect_header(0x02).props(byte_property(0x17, 2)).str("id").bytes(), kProtocolError},
      {"request response information 2", kConnect, 0,
       connect_header(0x02).props(byte_property(0x19, 2)).str("id").bytes(), kProtocolError},
      {"authentication data without method", kConnect, 0,
       connect_header(0x02).props(string_property(0x16, "x")).str("id").bytes(), kProtocolError},
      {"session expiry twice", kConnect, 0,
       connect_header(0x02).props(join({u32_property(0x11, 1), u32_property(0x11, 1)})).str("id").bytes(),
       kProtocolError},
      {"topic alias not a connect property", kConnect, 0,
       connect_header(0x02).props(u16_property(0x23, 1)).str("id").bytes(), kMalformed},
      {"will delay not a connect property", kConnect, 0,
       connect_header(0x02).props(u32_property(0x18, 1)).str("id").bytes(), kMalformed},
      {"unknown property", kConnect, 0, connect_header(0x02).props(byte_property(0x04, 0)).str("id").bytes(),
       kMalformed},
      {"will properties missing", kConnect, 0,
       connect_header(0x04).props().str("id").str("t").str("p").bytes(), kMalformed},
      {"will payload format 2", kConnect, 0,
       connect_header(0x04).props().str("id").props(byte_property(0x01, 2)).str("t").str("p").bytes(),
       kProtocolError},
      {"session expiry not a will property", kConnect, 0,
       connect_header(0x04).props().str("id").props(u32_property(0x11, 1)).str("t").str("p").bytes(),
       kMalformed},
      {"will response topic wildcard", kConnect, 0,
       connect_header(0x04).props().str("id").props(string_property(0x08, "a/#")).str("t").str("p").bytes(),
       kProtocolError},
      {"will topic empty", kConnect, 0,
       connect_header(0x04).props().str("id").props().str("").str("p").bytes(), kProtocolError},
      {"user property not utf8", kConnect, 0,
       connect_header(0x02).props(user_property("k", "\xC0")).str("id").bytes(), kMalformed},
      {"trailing byte", kConnect, 0, connect_header(0x02).props().str("id").u8(0).bytes(), kMalformed},
  };
}

std::vector<Case> publish_cases() {
  constexpr auto kPublish = PacketType::kPublish;
  return {
      {"qos 0", kPublish, 0x0, Body().str("a/b").props().raw("payload").bytes(), kOk},
      {"qos 1 with properties", kPublish, 0x2,
       Body()
           .str("a/b")
           .u16(7)
           .props(join({byte_property(0x01, 1), u32_property(0x02, 10), string_property(0x03, "json"),
                        string_property(0x08, "r"), string_property(0x09, "id"), user_property("x", "y")}))
           .raw("{}")
           .bytes(),
       kOk},
      {"empty topic with alias", kPublish, 0x0, Body().str("").props(u16_property(0x23, 3)).raw("p").bytes(),
       kOk},
      {"empty topic with alias 0", kPublish, 0x0, Body().str("").props(u16_property(0x23, 0)).bytes(), kOk},
      {"topic and alias 0", kPublish, 0x0, Body().str("t").props(u16_property(0x23, 0)).bytes(), kOk},
      {"empty topic without alias", kPublish, 0x0, Body().str("").props().raw("p").bytes(), kProtocolError},
      {"topic wildcard with alias", kPublish, 0x0, Body().str("a/+").props(u16_property(0x23, 1)).bytes(),
       kProtocolError},
      {"subscription identifier from a client", kPublish, 0x0,
       Body().str("t").props(subscription_identifier(1)).bytes(), kProtocolError},
      {"payload format 2", kPublish, 0x0, Body().str("t").props(byte_property(0x01, 2)).bytes(),
       kProtocolError},
      {"message expiry twice", kPublish, 0x0,
       Body().str("t").props(join({u32_property(0x02, 1), u32_property(0x02, 2)})).bytes(), kProtocolError},
      {"topic alias twice", kPublish, 0x0,
       Body().str("t").props(join({u16_property(0x23, 1), u16_property(0x23, 2)})).bytes(), kProtocolError},
      {"session expiry not a publish property", kPublish, 0x0,
       Body().str("t").props(u32_property(0x11, 1)).bytes(), kMalformed},
      {"properties missing", kPublish, 0x0, Body().str("t").bytes(), kMalformed},
      {"properties missing after packet id", kPublish, 0x2, Body().str("t").u16(1).bytes(), kMalformed},
      {"property length past the end", kPublish, 0x0, Body().str("t").u8(3).u8(0x01).bytes(), kMalformed},
      {"property value past the block", kPublish, 0x0, Body().str("t").u8(2).u8(0x02).u8(0).u16(0).bytes(),
       kMalformed},
      {"packet id 0", kPublish, 0x2, Body().str("t").u16(0).props().bytes(), kProtocolError},
  };
}

std::vector<Case> subscribe_cases() {
  constexpr auto kSubscribe = PacketType::kSubscribe;
  constexpr auto kUnsubscribe = PacketType::kUnsubscribe;
  return {
      {"subscribe every option", kSubscribe, 2, Body().u16(1).props().str("a/#").u8(0x2E).bytes(), kOk},
      {"subscribe identifier and user property", kSubscribe, 2,
       Body()
           .u16(1)
           .props(join({subscription_identifier(268'435'455), user_property("k", "v")}))
           .str("a")
           .u8(1)
           .bytes(),
       kOk},
      {"subscribe shared", kSubscribe, 2, Body().u16(1).props().str("$share/g/a").u8(0x01).bytes(), kOk},
      {"subscribe shared with no local", kSubscribe, 2,
       Body().u16(1).props().str("$share/g/a").u8(0x05).bytes(), kProtocolError},
      {"subscribe identifier 0", kSubscribe, 2,
       Body().u16(1).props(subscription_identifier(0)).str("a").u8(0).bytes(), kProtocolError},
      {"subscribe identifier twice", kSubscribe, 2,
       Body()
           .u16(1)
           .props(join({subscription_identifier(1), subscription_identifier(2)}))
           .str("a")
           .u8(0)
           .bytes(),
       kProtocolError},
      {"subscribe qos 3", kSubscribe, 2, Body().u16(1).props().str("a").u8(0x03).bytes(), kMalformed},
      {"subscribe retain handling 3", kSubscribe, 2, Body().u16(1).props().str("a").u8(0x30).bytes(),
       kMalformed},
      {"subscribe reserved bit 6", kSubscribe, 2, Body().u16(1).props().str("a").u8(0x40).bytes(),
       kMalformed},
      {"subscribe reserved bit 7", kSubscribe, 2, Body().u16(1).props().str("a").u8(0x80).bytes(),
       kMalformed},
      {"subscribe second entry bad", kSubscribe, 2,
       Body().u16(1).props().str("a").u8(0).str("b").u8(0xC0).bytes(), kMalformed},
      {"subscribe no filters", kSubscribe, 2, Body().u16(1).props().bytes(), kProtocolError},
      {"subscribe properties missing", kSubscribe, 2, Body().u16(1).str("a").u8(0).bytes(), kMalformed},
      {"subscribe topic alias not allowed", kSubscribe, 2,
       Body().u16(1).props(u16_property(0x23, 1)).str("a").u8(0).bytes(), kMalformed},
      {"subscribe packet id 0", kSubscribe, 2, Body().u16(0).props().str("a").u8(0).bytes(), kProtocolError},
      {"unsubscribe", kUnsubscribe, 2, Body().u16(1).props().str("a").bytes(), kOk},
      {"unsubscribe user property", kUnsubscribe, 2,
       Body().u16(1).props(user_property("k", "")).str("a/+").bytes(), kOk},
      {"unsubscribe subscription identifier", kUnsubscribe, 2,
       Body().u16(1).props(subscription_identifier(1)).str("a").bytes(), kMalformed},
      {"unsubscribe no filters", kUnsubscribe, 2, Body().u16(1).props().bytes(), kProtocolError},
      {"unsubscribe properties missing", kUnsubscribe, 2, Body().u16(1).bytes(), kMalformed},
      {"unsubscribe property length past the end", kUnsubscribe, 2, Body().u16(1).u8(9).str("a").bytes(),
       kMalformed},
  };
}

std::vector<Case> ack_cases() {
  std::vector<Case> cases;
  for (const PacketType type :
       {PacketType::kPuback, PacketType::kPubrec, PacketType::kPubrel, PacketType::kPubcomp}) {
    const uint8_t flags = type == PacketType::kPubrel ? 2 : 0;
    const uint8_t failure = type == PacketType::kPubrel || type == PacketType::kPubcomp ? 0x92 : 0x80;
    const uint8_t success_only_elsewhere =
        type == PacketType::kPubrel || type == PacketType::kPubcomp ? 0x10 : 0x92;
    cases.push_back({"ack id only", type, flags, Body().u16(5).bytes(), kOk});
    cases.push_back({"ack reason only", type, flags, Body().u16(5).u8(failure).bytes(), kOk});
    cases.push_back(
        {"ack reason and empty properties", type, flags, Body().u16(5).u8(0).props().bytes(), kOk});
    cases.push_back({"ack reason and properties", type, flags,
                     Body()
                         .u16(5)
                         .u8(failure)
                         .props(join({string_property(0x1F, "why"), user_property("k", "v")}))
                         .bytes(),
                     kOk});
    cases.push_back(
        {"ack wrong flags", type, static_cast<uint8_t>(flags ^ 2), Body().u16(5).bytes(), kMalformed});
    cases.push_back({"ack packet id 0", type, flags, Body().u16(0).bytes(), kProtocolError});
    cases.push_back({"ack one byte", type, flags, Body().u8(5).bytes(), kMalformed});
    cases.push_back({"ack undefined reason", type, flags, Body().u16(5).u8(0x05).bytes(), kMalformed});
    cases.push_back({"ack reason of another packet", type, flags,
                     Body().u16(5).u8(success_only_elsewhere).bytes(), kMalformed});
    cases.push_back({"ack property not allowed", type, flags,
                     Body().u16(5).u8(0).props(u16_property(0x23, 1)).bytes(), kMalformed});
    cases.push_back(
        {"ack reason string twice", type, flags,
         Body().u16(5).u8(0).props(join({string_property(0x1F, "a"), string_property(0x1F, "b")})).bytes(),
         kProtocolError});
    cases.push_back(
        {"ack property length past the end", type, flags, Body().u16(5).u8(0).u8(4).bytes(), kMalformed});
    cases.push_back(
        {"ack trailing byte", type, flags, Body().u16(5).u8(0).props().u8(0).bytes(), kMalformed});
  }
  return cases;
}

std::vector<Case> disconnect_and_auth_cases() {
  constexpr auto kDisconnect = PacketType::kDisconnect;
  constexpr auto kAuth = PacketType::kAuth;
  const Body method = string_property(0x15, "SCRAM-SHA-1");
  return {
      {"disconnect empty", kDisconnect, 0, {}, kOk},
      {"disconnect reason only", kDisconnect, 0, Body().u8(0x04).bytes(), kOk},
      {"disconnect with properties", kDisconnect, 0,
       Body()
           .u8(0x8B)
           .props(join({u32_property(0x11, 0), string_property(0x1F, "bye"), string_property(0x1C, "b:1"),
                        user_property("k", "v")}))
           .bytes(),
       kOk},
      {"disconnect flags", kDisconnect, 1, {}, kMalformed},
      {"disconnect undefined reason", kDisconnect, 0, Body().u8(0x01).bytes(), kMalformed},
      {"disconnect reason of another packet", kDisconnect, 0, Body().u8(0x18).bytes(), kMalformed},
      {"disconnect property not allowed", kDisconnect, 0, Body().u8(0).props(u16_property(0x21, 1)).bytes(),
       kMalformed},
      {"disconnect session expiry twice", kDisconnect, 0,
       Body().u8(0).props(join({u32_property(0x11, 1), u32_property(0x11, 1)})).bytes(), kProtocolError},
      {"disconnect property length past the end", kDisconnect, 0, Body().u8(0).u8(1).bytes(), kMalformed},
      {"disconnect trailing byte", kDisconnect, 0, Body().u8(0).props().u8(0).bytes(), kMalformed},
      {"auth empty", kAuth, 0, {}, kOk},
      {"auth continue", kAuth, 0,
       Body().u8(0x18).props(join({method, string_property(0x16, "\xFF\x00")})).bytes(), kOk},
      {"auth reauthenticate", kAuth, 0,
       Body().u8(0x19).props(join({method, string_property(0x1F, "again"), user_property("k", "v")})).bytes(),
       kOk},
      {"auth success with method", kAuth, 0, Body().u8(0x00).props(method).bytes(), kOk},
      {"auth flags", kAuth, 1, {}, kMalformed},
      {"auth reason without properties", kAuth, 0, Body().u8(0x18).bytes(), kMalformed},
      {"auth without method", kAuth, 0, Body().u8(0x18).props(string_property(0x1F, "x")).bytes(),
       kProtocolError},
      {"auth data without method", kAuth, 0, Body().u8(0x18).props(string_property(0x16, "x")).bytes(),
       kProtocolError},
      {"auth method twice", kAuth, 0, Body().u8(0x18).props(join({method, method})).bytes(), kProtocolError},
      {"auth undefined reason", kAuth, 0, Body().u8(0x01).props(method).bytes(), kMalformed},
      {"auth reason of another packet", kAuth, 0, Body().u8(0x04).props(method).bytes(), kMalformed},
      {"auth property not allowed", kAuth, 0,
       Body().u8(0x18).props(join({method, u32_property(0x11, 1)})).bytes(), kMalformed},
      {"auth trailing byte", kAuth, 0, Body().u8(0x18).props(method).u8(0).bytes(), kMalformed},
  };
}

std::vector<Case> client_side_cases() {
  constexpr auto kConnack = PacketType::kConnack;
  constexpr auto kSuback = PacketType::kSuback;
  constexpr auto kUnsuback = PacketType::kUnsuback;
  const Body all_connack_properties = join(
      {u32_property(0x11, 60), string_property(0x12, "auto-1"), u16_property(0x13, 30),
       string_property(0x15, "m"), string_property(0x16, "d"), string_property(0x1A, "resp"),
       string_property(0x1C, "other"), string_property(0x1F, "ok"), u16_property(0x21, 100),
       u16_property(0x22, 10), byte_property(0x24, 1), byte_property(0x25, 0), user_property("k", "v"),
       u32_property(0x27, 65536), byte_property(0x28, 1), byte_property(0x29, 0), byte_property(0x2A, 1)});
  return {
      {"connack", kConnack, 0, Body().u8(0).u8(0).props().bytes(), kOk},
      {"connack every property", kConnack, 0, Body().u8(1).u8(0).props(all_connack_properties).bytes(), kOk},
      {"connack refused", kConnack, 0, Body().u8(0).u8(0x87).props(string_property(0x1F, "no")).bytes(), kOk},
      {"connack session on refusal", kConnack, 0, Body().u8(1).u8(0x80).props().bytes(), kProtocolError},
      {"connack reason of another packet", kConnack, 0, Body().u8(0).u8(0x10).props().bytes(), kMalformed},
      {"connack reserved flags", kConnack, 0, Body().u8(2).u8(0).props().bytes(), kMalformed},
      {"connack properties missing", kConnack, 0, Body().u8(0).u8(0).bytes(), kMalformed},
      {"connack maximum qos 2", kConnack, 0, Body().u8(0).u8(0).props(byte_property(0x24, 2)).bytes(),
       kProtocolError},
      {"connack will delay not allowed", kConnack, 0, Body().u8(0).u8(0).props(u32_property(0x18, 1)).bytes(),
       kMalformed},
      {"connack trailing byte", kConnack, 0, Body().u8(0).u8(0).props().u8(0).bytes(), kMalformed},
      {"suback", kSuback, 0, Body().u16(1).props().u8(0).u8(1).u8(2).u8(0x80).u8(0x87).u8(0xA2).bytes(), kOk},
      {"suback with properties", kSuback, 0, Body().u16(1).props(string_property(0x1F, "r")).u8(0x9E).bytes(),
       kOk},
      {"suback unsuback code", kSuback, 0, Body().u16(1).props().u8(0x11).bytes(), kMalformed},
      {"suback undefined code", kSuback, 0, Body().u16(1).props().u8(0x03).bytes(), kMalformed},
      {"suback no codes", kSuback, 0, Body().u16(1).props().bytes(), kProtocolError},
      {"suback properties missing", kSuback, 0, Body().u16(1).bytes(), kMalformed},
      {"unsuback", kUnsuback, 0, Body().u16(1).props().u8(0).u8(0x11).u8(0x8F).bytes(), kOk},
      {"unsuback with properties", kUnsuback, 0,
       Body().u16(1).props(user_property("a", "b")).u8(0x87).bytes(), kOk},
      {"unsuback suback code", kUnsuback, 0, Body().u16(1).props().u8(0x01).bytes(), kMalformed},
      {"unsuback no codes", kUnsuback, 0, Body().u16(1).props().bytes(), kProtocolError},
      {"unsuback properties missing", kUnsuback, 0, Body().u16(1).bytes(), kMalformed},
  };
}

void run_cases(const std::vector<Case>& cases) {
  for (const Case& test_case : cases) {
    const DecodeStatus status = decode_v5(test_case.type, test_case.flags, test_case.body);
    EXPECT_EQ(status, test_case.expected) << packet_type_name(test_case.type) << ": " << test_case.name
                                          << " (got " << decode_status_name(status) << ")";
  }
}

TEST(Mqtt5Malformed, Connect) {
  run_cases(connect_cases());
}
TEST(Mqtt5Malformed, Publish) {
  run_cases(publish_cases());
}
TEST(Mqtt5Malformed, SubscribeAndUnsubscribe) {
  run_cases(subscribe_cases());
}
TEST(Mqtt5Malformed, Acks) {
  run_cases(ack_cases());
}
TEST(Mqtt5Malformed, DisconnectAndAuth) {
  run_cases(disconnect_and_auth_cases());
}
TEST(Mqtt5Malformed, ClientSide) {
  run_cases(client_side_cases());
}

// Where a prefix of a valid body is itself a valid packet: the short forms of the acknowledgements
// (2 and 3 bytes), DISCONNECT (0 and 1) and AUTH (0), a PUBLISH with a shorter payload, and a
// SUBACK / UNSUBACK with fewer codes.
bool prefix_may_decode(const Case& test_case, size_t prefix, size_t payload_start) {
  switch (test_case.type) {
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return prefix == 2 || prefix == 3;
    case PacketType::kDisconnect:
      return prefix <= 1;
    case PacketType::kAuth:
      return prefix == 0;
    case PacketType::kPublish:
    case PacketType::kSuback:
    case PacketType::kUnsuback:
      return prefix >= payload_start;
    default:
      return false;
  }
}

// Where the payload of a PUBLISH, SUBACK or UNSUBACK body starts (after the property block).
size_t payload_start(const Case& test_case) {
  const std::span<const uint8_t> body = test_case.body;
  size_t position = 0;
  if (test_case.type == PacketType::kPublish) {
    position = 2 + ((body[0] << 8) | body[1]) + ((test_case.flags & 0x06) ? 2 : 0);
  } else if (test_case.type == PacketType::kSuback || test_case.type == PacketType::kUnsuback) {
    position = 2;
  } else {
    return body.size();
  }
  Properties properties;
  size_t consumed = 0;
  const PropertyContext context = property_context(test_case.type);
  EXPECT_EQ(decode_properties(body.subspan(position), context, &properties, &consumed), kOk);
  // A SUBACK / UNSUBACK needs one code.
  return position + consumed + (test_case.type == PacketType::kPublish ? 0 : 1);
}

TEST(Mqtt5Malformed, EveryTruncationFails) {
  size_t checked = 0;
  for (auto source : {connect_cases, publish_cases, subscribe_cases, ack_cases, disconnect_and_auth_cases,
                      client_side_cases}) {
    for (const Case& test_case : source()) {
      if (test_case.expected != kOk) continue;
      const size_t start = payload_start(test_case);
      for (size_t prefix = 0; prefix < test_case.body.size(); prefix++) {
        const std::vector<uint8_t> truncated(test_case.body.begin(),
                                             test_case.body.begin() + static_cast<long>(prefix));
        const DecodeStatus status = decode_v5(test_case.type, test_case.flags, truncated);
        if (prefix_may_decode(test_case, prefix, start)) continue;
        EXPECT_NE(status, kOk) << packet_type_name(test_case.type) << ": " << test_case.name << " cut to "
                               << prefix;
        checked++;
      }
    }
  }
  EXPECT_GT(checked, 500u);
}

// Under 3.1.1 the new decoders keep the old forms: an ack is exactly the identifier, DISCONNECT
// empty, and CONNACK / SUBACK / UNSUBACK carry no property block.
TEST(Mqtt5Malformed, OlderVersionsKeepTheirForms) {
  constexpr auto kV311 = ProtocolVersion::kV311;
  AckPacket ack;
  const std::vector<uint8_t> id_only = Body().u16(9).bytes();
  const std::vector<uint8_t> with_reason = Body().u16(9).u8(0).bytes();
  EXPECT_EQ(decode_ack(id_only, 0, PacketType::kPuback, kV311, &ack), kOk);
  EXPECT_EQ(ack.packet_id, 9);
  EXPECT_EQ(ack.type, PacketType::kPuback);
  EXPECT_EQ(decode_ack(with_reason, 0, PacketType::kPuback, kV311, &ack), kMalformed);
  EXPECT_EQ(decode_ack(id_only, 0, PacketType::kPubrel, ProtocolVersion::kV31, &ack), kMalformed);  // flags
  DisconnectPacket disconnect;
  EXPECT_EQ(decode_disconnect({}, 0, kV311, &disconnect), kOk);
  EXPECT_EQ(decode_disconnect(Body().u8(0).bytes(), 0, kV311, &disconnect), kMalformed);
  EXPECT_EQ(decode_ack(id_only, 0, PacketType::kPuback, static_cast<ProtocolVersion>(6), &ack),
            DecodeStatus::kUnsupportedProtocolLevel);
  ConnackPacket connack;
  EXPECT_EQ(decode_connack(Body().u8(0).u8(5).bytes(), 0, kV311, &connack), kOk);
  EXPECT_EQ(connack.reason_code, 0x87);  // Not authorized, the MQTT 5 form of return code 5
  SubackPacket suback;
  EXPECT_EQ(decode_suback(Body().u16(1).props().u8(0).bytes(), 0, kV311, &suback),
            kOk);  // 0x00 read as a code
  EXPECT_EQ(suback.return_codes.size(), 2u);
  EXPECT_TRUE(suback.properties.encoded.empty());
}

TEST(Mqtt5Decode, ConnectFields) {
  const Body connect_properties =
      join({u32_property(0x11, 10), u16_property(0x21, 20), user_property("k", "v"),
            string_property(0x15, "PLAIN"), string_property(0x16, "secret")});
  const Body will_properties = join({u32_property(0x18, 30), byte_property(0x01, 1)});
  const std::vector<uint8_t> body = connect_header(0xEC)  // username, password, will retain, will qos 1
                                        .props(connect_properties)
                                        .str("client")
                                        .props(will_properties)
                                        .str("will/topic")
                                        .str("gone")
                                        .str("user")
                                        .str("pass")
                                        .bytes();
  ConnectPacket connect;
  ASSERT_EQ(decode_connect(body, 0, &connect), kOk);
  EXPECT_EQ(connect.protocol_level, 5);
  EXPECT_FALSE(connect.clean_session);
  EXPECT_EQ(connect.keep_alive_seconds, 30);
  EXPECT_EQ(connect.client_id, "client");
  EXPECT_EQ(connect.properties.session_expiry_interval_seconds, 10u);
  EXPECT_EQ(connect.properties.receive_maximum, 20);
  EXPECT_EQ(connect.properties.user_property_count, 1u);
  EXPECT_EQ(connect.properties.authentication_method, "PLAIN");
  EXPECT_EQ(connect.properties.authentication_data, "secret");
  EXPECT_EQ(connect.properties.encoded.size(), connect_properties.bytes().size());
  ASSERT_TRUE(connect.has_will);
  EXPECT_EQ(connect.will.qos, 1);
  EXPECT_TRUE(connect.will.retain);
  EXPECT_EQ(connect.will.topic, "will/topic");
  EXPECT_EQ(connect.will.payload, "gone");
  EXPECT_EQ(connect.will_properties.will_delay_interval_seconds, 30u);
  EXPECT_EQ(connect.will_properties.payload_format_indicator, 1);
  EXPECT_FALSE(connect.will_properties.session_expiry_interval_seconds);
  EXPECT_EQ(connect.username, "user");
  EXPECT_EQ(connect.password, "pass");
}

// The CONNECT variable header example of section 3.1.2.12 (figure 3-8): protocol name "MQTT",
// level 5, flags 0xCE, keep alive 10, and a Session Expiry Interval of 10.
TEST(Mqtt5Decode, SpecConnectExample) {
  const std::vector<uint8_t> body = {0, 4,  'M', 'Q',  'T', 'T', 5, 0xCE,
                                     0, 10, 5,   0x11, 0,   0,   0, 10,  // header
                                     0, 1,  'c',                         // client id
                                     0,                                  // will props
                                     0, 1,  't', 0,    0,                // will
                                     0, 1,  'u', 0,    1,   'p'};
  ConnectPacket connect;
  ASSERT_EQ(decode_connect(body, 0, &connect), kOk);
  EXPECT_EQ(connect.keep_alive_seconds, 10);
  EXPECT_TRUE(connect.clean_session);
  EXPECT_EQ(connect.will.qos, 1);
  EXPECT_FALSE(connect.will.retain);
  EXPECT_EQ(connect.properties.session_expiry_interval_seconds, 10u);
  EXPECT_EQ(connect.will.topic, "t");
  EXPECT_TRUE(connect.will.payload.empty());
  EXPECT_EQ(connect.username, "u");
  EXPECT_EQ(connect.password, "p");
}

TEST(Mqtt5Decode, PublishFields) {
  const Body properties = join({u16_property(0x23, 4), string_property(0x08, "reply"),
                                user_property("a", "1"), user_property("b", "2")});
  const std::vector<uint8_t> body = Body().str("").u16(77).props(properties).raw("hello").bytes();
  PublishPacket publish;
  ASSERT_EQ(decode_publish(body, 0x0B, kV5, &publish), kOk);  // dup, qos 1, retain
  EXPECT_TRUE(publish.topic.empty());
  EXPECT_EQ(publish.packet_id, 77);
  EXPECT_TRUE(publish.dup && publish.retain);
  EXPECT_EQ(publish.payload, "hello");
  EXPECT_EQ(publish.properties.topic_alias, 4);
  EXPECT_EQ(publish.properties.response_topic, "reply");
  EXPECT_EQ(publish.properties.user_property_count, 2u);
  ASSERT_EQ(publish.properties.encoded.size(), properties.bytes().size());
  EXPECT_EQ(publish.properties.encoded.data(), body.data() + 2 + 2 + 1);  // a view of the body
  std::array<UserProperty, 4> users;
  ASSERT_EQ(copy_user_properties(publish.properties, users), 2u);
  EXPECT_EQ(users[1].name, "b");
  EXPECT_EQ(users[1].value, "2");

  // What a client receives may carry several Subscription Identifiers.
  const std::vector<uint8_t> to_client =
      Body().str("a/b").props(join({subscription_identifier(1), subscription_identifier(200'000)})).bytes();
  ASSERT_EQ(decode_publish(to_client, 0, kV5, &publish), kProtocolError);
  ASSERT_EQ(decode_publish_from_server(to_client, 0, kV5, &publish), kOk);
  EXPECT_EQ(publish.topic, "a/b");
  EXPECT_TRUE(publish.payload.empty());
  EXPECT_EQ(publish.properties.subscription_identifier_count, 2u);
  std::array<uint32_t, 4> identifiers;
  ASSERT_EQ(copy_subscription_identifiers(publish.properties, identifiers), 2u);
  EXPECT_EQ(identifiers[1], 200'000u);
  // The client side keeps the topic rules.
  EXPECT_EQ(decode_publish_from_server(Body().str("").props().bytes(), 0, kV5, &publish), kProtocolError);
}

TEST(Mqtt5Decode, SubscribeOptions) {
  const std::vector<uint8_t> body = Body()
                                        .u16(3)
                                        .props(subscription_identifier(42))
                                        .str("a/+")
                                        .u8(0x2E)  // qos 2, no local, retain as published, handling 2
                                        .str("b")
                                        .u8(0x11)  // qos 1, handling 1
                                        .str("$share/g/c")
                                        .u8(0x08)
                                        .bytes();
  std::array<SubscribeTopic, 4> storage;
  SubscribePacket subscribe;
  ASSERT_EQ(decode_subscribe(body, 2, kV5, storage, &subscribe), kOk);
  EXPECT_EQ(subscribe.packet_id, 3);
  EXPECT_EQ(subscribe.properties.subscription_identifier, 42u);
  ASSERT_EQ(subscribe.topics.size(), 3u);
  EXPECT_EQ(subscribe.topics[0].filter, "a/+");
  EXPECT_EQ(subscribe.topics[0].qos, 2);
  EXPECT_TRUE(subscribe.topics[0].no_local);
  EXPECT_TRUE(subscribe.topics[0].retain_as_published);
  EXPECT_EQ(subscribe.topics[0].retain_handling, 2);
  EXPECT_EQ(subscribe.topics[1].qos, 1);
  EXPECT_FALSE(subscribe.topics[1].no_local);
  EXPECT_FALSE(subscribe.topics[1].retain_as_published);
  EXPECT_EQ(subscribe.topics[1].retain_handling, 1);
  EXPECT_EQ(subscribe.topics[2].qos, 0);
  EXPECT_TRUE(subscribe.topics[2].retain_as_published);

  std::array<std::string_view, 4> filters;
  UnsubscribePacket unsubscribe;
  const std::vector<uint8_t> unsubscribe_body =
      Body().u16(4).props(user_property("k", "v")).str("a/+").str("b").bytes();
  ASSERT_EQ(decode_unsubscribe(unsubscribe_body, 2, kV5, filters, &unsubscribe), kOk);
  EXPECT_EQ(unsubscribe.packet_id, 4);
  EXPECT_EQ(unsubscribe.properties.user_property_count, 1u);
  ASSERT_EQ(unsubscribe.filters.size(), 2u);
  EXPECT_EQ(unsubscribe.filters[1], "b");
}

TEST(Mqtt5Decode, AckShortForms) {
  AckPacket ack;
  ASSERT_EQ(decode_ack(Body().u16(10).bytes(), 0, PacketType::kPubrec, kV5, &ack), kOk);
  EXPECT_EQ(ack.type, PacketType::kPubrec);
  EXPECT_EQ(ack.packet_id, 10);
  EXPECT_EQ(ack.reason_code, 0);
  EXPECT_TRUE(ack.properties.encoded.empty());

  ASSERT_EQ(decode_ack(Body().u16(11).u8(0x10).bytes(), 0, PacketType::kPuback, kV5, &ack), kOk);
  EXPECT_EQ(ack.packet_id, 11);
  EXPECT_EQ(ack.reason_code, 0x10);

  const std::vector<uint8_t> full =
      Body().u16(12).u8(0x92).props(string_property(0x1F, "unknown id")).bytes();
  ASSERT_EQ(decode_ack(full, 2, PacketType::kPubrel, kV5, &ack), kOk);
  EXPECT_EQ(ack.type, PacketType::kPubrel);
  EXPECT_EQ(ack.reason_code, 0x92);
  EXPECT_EQ(ack.properties.reason_string, "unknown id");

  DisconnectPacket disconnect;
  ASSERT_EQ(decode_disconnect({}, 0, kV5, &disconnect), kOk);
  EXPECT_EQ(disconnect.reason_code, 0);
  ASSERT_EQ(decode_disconnect(Body().u8(0x04).bytes(), 0, kV5, &disconnect), kOk);
  EXPECT_EQ(disconnect.reason_code, 0x04);
  const std::vector<uint8_t> with_properties = Body().u8(0x8E).props(u32_property(0x11, 7)).bytes();
  ASSERT_EQ(decode_disconnect(with_properties, 0, kV5, &disconnect), kOk);
  EXPECT_EQ(disconnect.reason_code, 0x8E);
  EXPECT_EQ(disconnect.properties.session_expiry_interval_seconds, 7u);

  AuthPacket auth;
  ASSERT_EQ(decode_auth({}, 0, &auth), kOk);
  EXPECT_EQ(auth.reason_code, 0);
  EXPECT_FALSE(auth.properties.authentication_method);
  const std::vector<uint8_t> continue_body = Body().u8(0x18).props(string_property(0x15, "K")).bytes();
  ASSERT_EQ(decode_auth(continue_body, 0, &auth), kOk);
  EXPECT_EQ(auth.reason_code, 0x18);
  EXPECT_EQ(auth.properties.authentication_method, "K");
}

TEST(Mqtt5Decode, ClientSideFields) {
  ConnackPacket connack;
  const std::vector<uint8_t> accepted =
      Body().u8(1).u8(0).props(join({string_property(0x12, "id-7"), u16_property(0x21, 5)})).bytes();
  ASSERT_EQ(decode_connack(accepted, 0, kV5, &connack), kOk);
  EXPECT_TRUE(connack.session_present);
  EXPECT_EQ(connack.reason_code, 0);
  EXPECT_EQ(connack.return_code, ConnectReturnCode::kAccepted);
  EXPECT_EQ(connack.properties.assigned_client_identifier, "id-7");
  EXPECT_EQ(connack.properties.receive_maximum, 5);
  ASSERT_EQ(decode_connack(Body().u8(0).u8(0x86).props().bytes(), 0, kV5, &connack), kOk);
  EXPECT_EQ(connack.reason_code, 0x86);
  EXPECT_EQ(connack.return_code, ConnectReturnCode::kBadUsernameOrPassword);

  SubackPacket suback;
  const std::vector<uint8_t> suback_body =
      Body().u16(2).props(string_property(0x1F, "r")).u8(1).u8(0x97).bytes();
  ASSERT_EQ(decode_suback(suback_body, 0, kV5, &suback), kOk);
  EXPECT_EQ(suback.packet_id, 2);
  EXPECT_EQ(suback.properties.reason_string, "r");
  ASSERT_EQ(suback.return_codes.size(), 2u);
  EXPECT_EQ(suback.return_codes[1], 0x97);

  UnsubackPacket unsuback;
  const std::vector<uint8_t> unsuback_body = Body().u16(3).props().u8(0x11).bytes();
  ASSERT_EQ(decode_unsuback(unsuback_body, 0, kV5, &unsuback), kOk);
  EXPECT_EQ(unsuback.packet_id, 3);
  ASSERT_EQ(unsuback.reason_codes.size(), 1u);
  EXPECT_EQ(unsuback.reason_codes[0], 0x11);
}

}  // namespace
}  // namespace coremq::mqtt
