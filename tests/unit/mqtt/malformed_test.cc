// Table-driven checks of every validation rule the decoders enforce (one row per rule, each a
// packet body that breaks exactly that rule), plus the robustness properties the fuzzers rely on:
// no truncation of a valid packet decodes, and random bytes never read out of bounds.
#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "base/byte_buffer.h"
#include "mqtt/decoder.h"
#include "mqtt/encoder.h"
#include "mqtt/packet.h"

namespace coremq::mqtt {
namespace {

// Builds packet bodies byte by byte.
class Body {
 public:
  Body& u8(uint8_t value) {
    bytes_.push_back(value);
    return *this;
  }
  Body& u16(uint16_t value) { return u8(static_cast<uint8_t>(value >> 8)).u8(static_cast<uint8_t>(value)); }
  Body& raw(std::string_view value) {
    bytes_.insert(bytes_.end(), value.begin(), value.end());
    return *this;
  }
  Body& str(std::string_view value) { return u16(static_cast<uint16_t>(value.size())).raw(value); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// CONNECT body up to and including the keep alive.
Body connect_header(uint8_t connect_flags, std::string_view name = "MQTT", uint8_t level = 4) {
  Body body;
  body.str(name).u8(level).u8(connect_flags).u16(30);
  return body;
}

// Decodes `body` as `type` with the right decoder and storage for four topics.
DecodeStatus decode_body(PacketType type, uint8_t flags, std::span<const uint8_t> body,
                         ProtocolVersion version = ProtocolVersion::kV311) {
  std::array<SubscribeTopic, 4> topics;
  std::array<std::string_view, 4> filters;
  switch (type) {
    case PacketType::kConnect: {
      ConnectPacket packet;
      return decode_connect(body, flags, &packet);
    }
    case PacketType::kConnack: {
      ConnackPacket packet;
      return decode_connack(body, flags, version, &packet);
    }
    case PacketType::kPublish: {
      PublishPacket packet;
      return decode_publish(body, flags, version, &packet);
    }
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp: {
      if (version == ProtocolVersion::kV5) {
        AckPacket packet;
        return decode_ack(body, flags, type, version, &packet);
      }
      uint16_t packet_id = 0;
      return decode_packet_id_only(body, flags, type, &packet_id);
    }
    case PacketType::kSubscribe: {
      SubscribePacket packet;
      return decode_subscribe(body, flags, version, topics, &packet);
    }
    case PacketType::kSuback: {
      SubackPacket packet;
      return decode_suback(body, flags, version, &packet);
    }
    case PacketType::kUnsubscribe: {
      UnsubscribePacket packet;
      return decode_unsubscribe(body, flags, version, filters, &packet);
    }
    case PacketType::kUnsuback: {
      UnsubackPacket packet;
      return decode_unsuback(body, flags, version, &packet);
    }
    case PacketType::kDisconnect:
      if (version == ProtocolVersion::kV5) {
        DisconnectPacket packet;
        return decode_disconnect(body, flags, version, &packet);
      }
      return decode_empty(body, flags, type);
    case PacketType::kPingreq:
    case PacketType::kPingresp:
      return decode_empty(body, flags, type);
    case PacketType::kAuth: {
      AuthPacket packet;
      return decode_auth(body, flags, &packet);
    }
  }
  return DecodeStatus::kMalformed;
}

struct Case {
  const char* name;
  PacketType type;
  uint8_t flags;
  std::vector<uint8_t> body;
  DecodeStatus expected;
  ProtocolVersion version = ProtocolVersion::kV311;
};

constexpr auto kOk = DecodeStatus::kOk;
constexpr auto kMalformed = DecodeStatus::kMalformed;
constexpr auto kProtocolError = DecodeStatus::kProtocolError;

// Bytes that are not UTF-8: a lone continuation byte, and U+0000.
constexpr std::string_view kBadUtf8 = "a\x80";
constexpr std::string_view kNul = std::string_view("a\0b", 3);

std::vector<Case> connect_cases() {
  constexpr auto kConnect = PacketType::kConnect;
  return {
      {"valid", kConnect, 0, connect_header(0x02).str("id").bytes(), kOk},
      {"fixed header flags set", kConnect, 1, connect_header(0x02).str("id").bytes(), kMalformed},
      {"protocol name truncated", kConnect, 0, Body().u16(4).raw("MQ").bytes(), kMalformed},
      {"level missing", kConnect, 0, Body().str("MQTT").bytes(), kMalformed},
      {"unknown protocol name", kConnect, 0, connect_header(0x02, "MQTX").str("id").bytes(),
       DecodeStatus::kBadProtocolName},
      {"empty protocol name", kConnect, 0, connect_header(0x02, "").str("id").bytes(),
       DecodeStatus::kBadProtocolName},
      {"MQTT level 3", kConnect, 0, connect_header(0x02, "MQTT", 3).str("id").bytes(),
       DecodeStatus::kUnsupportedProtocolLevel},
      {"MQTT level 5", kConnect, 0, connect_header(0x02, "MQTT", 5).u8(0).str("id").bytes(), kOk},
      {"MQTT level 6", kConnect, 0, connect_header(0x02, "MQTT", 6).str("id").bytes(),
       DecodeStatus::kUnsupportedProtocolLevel},
      {"MQIsdp level 4", kConnect, 0, connect_header(0x02, "MQIsdp", 4).str("id").bytes(),
       DecodeStatus::kUnsupportedProtocolLevel},
      {"MQIsdp level 3", kConnect, 0, connect_header(0x02, "MQIsdp", 3).str("id").bytes(), kOk},
      {"connect flags missing", kConnect, 0, Body().str("MQTT").u8(4).bytes(), kMalformed},
      {"keep alive truncated", kConnect, 0, Body().str("MQTT").u8(4).u8(2).u8(0).bytes(), kMalformed},
      {"reserved connect flag", kConnect, 0, connect_header(0x03).str("id").bytes(), kMalformed},
      {"will qos without will flag", kConnect, 0, connect_header(0x08).str("id").bytes(), kMalformed},
      {"will retain without will flag", kConnect, 0, connect_header(0x20).str("id").bytes(), kMalformed},
      {"will qos 3", kConnect, 0, connect_header(0x1C).str("id").str("t").str("p").bytes(), kMalformed},
      {"will qos 2 retained", kConnect, 0, connect_header(0x34).str("id").str("t").str("p").bytes(), kOk},
      {"password without username", kConnect, 0, connect_header(0x40).str("id").str("pw").bytes(),
       kMalformed},
      {"password without username 3.1", kConnect, 0,
       connect_header(0x40, "MQIsdp", 3).str("id").str("pw").bytes(), kOk},
      {"client id missing", kConnect, 0, connect_header(0x02).bytes(), kMalformed},
      {"client id truncated", kConnect, 0, connect_header(0x02).u16(5).raw("abc").bytes(), kMalformed},
      {"client id not utf8", kConnect, 0, connect_header(0x02).str(kBadUtf8).bytes(), kMalformed},
      {"client id with nul", kConnect, 0, connect_header(0x02).str(kNul).bytes(), kMalformed},
      {"will topic missing", kConnect, 0, connect_header(0x04).str("id").bytes(), kMalformed},
      {"will payload missing", kConnect, 0, connect_header(0x04).str("id").str("t").bytes(), kMalformed},
      {"will topic not utf8", kConnect, 0, connect_header(0x04).str("id").str(kBadUtf8).str("p").bytes(),
       kMalformed},
      {"will topic wildcard", kConnect, 0, connect_header(0x04).str("id").str("a/+").str("p").bytes(),
       kProtocolError},
      {"will topic empty", kConnect, 0, connect_header(0x04).str("id").str("").str("p").bytes(),
       kProtocolError},
      {"will payload binary", kConnect, 0, connect_header(0x04).str("id").str("t").str(kBadUtf8).bytes(),
       kOk},
      {"username missing", kConnect, 0, connect_header(0x80).str("id").bytes(), kMalformed},
      {"username not utf8", kConnect, 0, connect_header(0x80).str("id").str(kBadUtf8).bytes(), kMalformed},
      {"password missing", kConnect, 0, connect_header(0xC0).str("id").str("u").bytes(), kMalformed},
      {"password binary", kConnect, 0, connect_header(0xC0).str("id").str("u").str(kNul).bytes(), kOk},
      {"trailing byte", kConnect, 0, connect_header(0x02).str("id").u8(0).bytes(), kMalformed},
      {"trailing byte after password", kConnect, 0,
       connect_header(0xC0).str("id").str("u").str("p").u8(1).bytes(), kMalformed},
  };
}

std::vector<Case> publish_cases() {
  constexpr auto kPublish = PacketType::kPublish;
  return {
      {"qos 0", kPublish, 0x0, Body().str("a/b").raw("payload").bytes(), kOk},
      {"qos 1", kPublish, 0x2, Body().str("a/b").u16(1).raw("payload").bytes(), kOk},
      {"qos 2 dup retain", kPublish, 0xD, Body().str("a/b").u16(1).bytes(), kOk},
      {"qos 3", kPublish, 0x6, Body().str("a/b").u16(1).bytes(), kMalformed},
      {"qos 3 dup", kPublish, 0xE, Body().str("a/b").u16(1).bytes(), kMalformed},
      {"dup with qos 0", kPublish, 0x8, Body().str("a/b").bytes(), kMalformed},
      {"packet id 0 qos 1", kPublish, 0x2, Body().str("a/b").u16(0).bytes(), kProtocolError},
      {"packet id 0 qos 2", kPublish, 0x4, Body().str("a/b").u16(0).bytes(), kProtocolError},
      {"packet id missing", kPublish, 0x2, Body().str("a/b").bytes(), kMalformed},
      {"packet id truncated", kPublish, 0x2, Body().str("a/b").u8(1).bytes(), kMalformed},
      {"empty body", kPublish, 0x0, {}, kMalformed},
      {"topic length truncated", kPublish, 0x0, Body().u8(0).bytes(), kMalformed},
      {"topic truncated", kPublish, 0x0, Body().u16(10).raw("abc").bytes(), kMalformed},
      {"topic not utf8", kPublish, 0x0, Body().str(kBadUtf8).bytes(), kMalformed},
      {"topic with nul", kPublish, 0x0, Body().str(kNul).bytes(), kMalformed},
      {"topic surrogate", kPublish, 0x0, Body().str("\xED\xA0\x80").bytes(), kMalformed},
      {"topic empty", kPublish, 0x0, Body().str("").raw("x").bytes(), kProtocolError},
      {"topic plus", kPublish, 0x0, Body().str("a/+/b").bytes(), kProtocolError},
      {"topic hash", kPublish, 0x0, Body().str("a/#").bytes(), kProtocolError},
      {"payload binary", kPublish, 0x0, Body().str("t").raw(kNul).raw(kBadUtf8).bytes(), kOk},
  };
}

std::vector<Case> subscribe_cases() {
  constexpr auto kSubscribe = PacketType::kSubscribe;
  constexpr auto kUnsubscribe = PacketType::kUnsubscribe;
  return {
      {"subscribe valid", kSubscribe, 2, Body().u16(1).str("a/#").u8(2).bytes(), kOk},
      {"subscribe flags 0", kSubscribe, 0, Body().u16(1).str("a").u8(0).bytes(), kMalformed},
      {"subscribe flags 3", kSubscribe, 3, Body().u16(1).str("a").u8(0).bytes(), kMalformed},
      {"subscribe flags 0xA", kSubscribe, 0xA, Body().u16(1).str("a").u8(0).bytes(), kMalformed},
      {"subscribe packet id 0", kSubscribe, 2, Body().u16(0).str("a").u8(0).bytes(), kProtocolError},
      {"subscribe packet id truncated", kSubscribe, 2, Body().u8(1).bytes(), kMalformed},
      {"subscribe empty payload", kSubscribe, 2, Body().u16(1).bytes(), kProtocolError},
      {"subscribe qos 3", kSubscribe, 2, Body().u16(1).str("a").u8(3).bytes(), kMalformed},
      {"subscribe reserved bit 2", kSubscribe, 2, Body().u16(1).str("a").u8(0x04).bytes(), kMalformed},
      {"subscribe reserved bit 7", kSubscribe, 2, Body().u16(1).str("a").u8(0x81).bytes(), kMalformed},
      {"subscribe second entry bad", kSubscribe, 2, Body().u16(1).str("a").u8(0).str("b").u8(0x10).bytes(),
       kMalformed},
      {"subscribe qos missing", kSubscribe, 2, Body().u16(1).str("a").bytes(), kMalformed},
      {"subscribe filter truncated", kSubscribe, 2, Body().u16(1).u16(3).raw("a").bytes(), kMalformed},
      {"subscribe filter not utf8", kSubscribe, 2, Body().u16(1).str(kBadUtf8).u8(0).bytes(), kMalformed},
      {"subscribe filter with nul", kSubscribe, 2, Body().u16(1).str(kNul).u8(0).bytes(), kMalformed},
      {"subscribe trailing byte", kSubscribe, 2, Body().u16(1).str("a").u8(0).u8(0).bytes(), kMalformed},
      {"subscribe too many", kSubscribe, 2,
       Body().u16(1).str("a").u8(0).str("b").u8(0).str("c").u8(0).str("d").u8(0).str("e").u8(0).bytes(),
       DecodeStatus::kTooManyTopics},
      // Filter syntax is answered per filter by the caller (SUBACK 0x80), not by the decoder.
      {"subscribe bad filter syntax", kSubscribe, 2, Body().u16(1).str("a/#/b").u8(0).bytes(), kOk},
      {"unsubscribe valid", kUnsubscribe, 2, Body().u16(1).str("b/+").bytes(), kOk},
      {"unsubscribe flags 0", kUnsubscribe, 0, Body().u16(1).str("a").bytes(), kMalformed},
      {"unsubscribe flags 6", kUnsubscribe, 6, Body().u16(1).str("a").bytes(), kMalformed},
      {"unsubscribe packet id 0", kUnsubscribe, 2, Body().u16(0).str("a").bytes(), kProtocolError},
      {"unsubscribe empty payload", kUnsubscribe, 2, Body().u16(1).bytes(), kProtocolError},
      {"unsubscribe empty body", kUnsubscribe, 2, {}, kMalformed},
      {"unsubscribe filter not utf8", kUnsubscribe, 2, Body().u16(1).str(kBadUtf8).bytes(), kMalformed},
      {"unsubscribe filter truncated", kUnsubscribe, 2, Body().u16(1).u16(2).raw("a").bytes(), kMalformed},
      {"unsubscribe trailing byte", kUnsubscribe, 2, Body().u16(1).str("a").u8(0).bytes(), kMalformed},
      {"unsubscribe too many", kUnsubscribe, 2,
       Body().u16(1).str("a").str("b").str("c").str("d").str("e").bytes(), DecodeStatus::kTooManyTopics},
  };
}

std::vector<Case> small_packet_cases() {
  std::vector<Case> cases;
  for (const PacketType type :
       {PacketType::kPuback, PacketType::kPubrec, PacketType::kPubrel, PacketType::kPubcomp}) {
    const uint8_t good_flags = type == PacketType::kPubrel ? 2 : 0;
    const uint8_t bad_flags = type == PacketType::kPubrel ? 0 : 2;
    cases.push_back({"ack valid", type, good_flags, Body().u16(5).bytes(), kOk});
    cases.push_back({"ack wrong flags", type, bad_flags, Body().u16(5).bytes(), kMalformed});
    cases.push_back({"ack flags 1", type, 1, Body().u16(5).bytes(), kMalformed});
    cases.push_back({"ack packet id 0", type, good_flags, Body().u16(0).bytes(), kProtocolError});
    cases.push_back({"ack empty", type, good_flags, {}, kMalformed});
    cases.push_back({"ack short", type, good_flags, Body().u8(5).bytes(), kMalformed});
    cases.push_back({"ack trailing byte", type, good_flags, Body().u16(5).u8(0).bytes(), kMalformed});
  }
  for (const PacketType type : {PacketType::kPingreq, PacketType::kPingresp, PacketType::kDisconnect}) {
    cases.push_back({"empty valid", type, 0, {}, kOk});
    cases.push_back({"empty flags set", type, 1, {}, kMalformed});
    cases.push_back({"empty with body", type, 0, Body().u8(0).bytes(), kMalformed});
  }
  constexpr auto kConnack = PacketType::kConnack;
  constexpr auto kSuback = PacketType::kSuback;
  constexpr auto kUnsuback = PacketType::kUnsuback;
  const std::vector<Case> client_side = {
      {"connack valid", kConnack, 0, Body().u8(1).u8(0).bytes(), kOk},
      {"connack flags", kConnack, 1, Body().u8(0).u8(0).bytes(), kMalformed},
      {"connack reserved ack bits", kConnack, 0, Body().u8(2).u8(0).bytes(), kMalformed},
      {"connack reserved code", kConnack, 0, Body().u8(0).u8(6).bytes(), kMalformed},
      {"connack session on refusal", kConnack, 0, Body().u8(1).u8(5).bytes(), kProtocolError},
      {"connack short", kConnack, 0, Body().u8(0).bytes(), kMalformed},
      {"connack long", kConnack, 0, Body().u8(0).u8(0).u8(0).bytes(), kMalformed},
      {"suback valid", kSuback, 0, Body().u16(1).u8(0).u8(1).u8(2).u8(0x80).bytes(), kOk},
      {"suback flags", kSuback, 2, Body().u16(1).u8(0).bytes(), kMalformed},
      {"suback reserved code", kSuback, 0, Body().u16(1).u8(3).bytes(), kMalformed},
      {"suback reserved code 0x81", kSuback, 0, Body().u16(1).u8(0x81).bytes(), kMalformed},
      {"suback packet id 0", kSuback, 0, Body().u16(0).u8(0).bytes(), kProtocolError},
      {"suback no codes", kSuback, 0, Body().u16(1).bytes(), kProtocolError},
      {"suback short", kSuback, 0, Body().u8(1).bytes(), kMalformed},
      {"unsuback valid", kUnsuback, 0, Body().u16(1).bytes(), kOk},
      {"unsuback flags", kUnsuback, 2, Body().u16(1).bytes(), kMalformed},
      {"unsuback packet id 0", kUnsuback, 0, Body().u16(0).bytes(), kProtocolError},
      {"unsuback long", kUnsuback, 0, Body().u16(1).u8(0).bytes(), kMalformed},
  };
  cases.insert(cases.end(), client_side.begin(), client_side.end());
  return cases;
}

void run_cases(const std::vector<Case>& cases) {
  for (const Case& test_case : cases) {
    EXPECT_EQ(decode_body(test_case.type, test_case.flags, test_case.body, test_case.version),
              test_case.expected)
        << packet_type_name(test_case.type) << ": " << test_case.name << " (got "
        << decode_status_name(decode_body(test_case.type, test_case.flags, test_case.body, test_case.version))
        << ")";
  }
}

TEST(MqttMalformed, Connect) {
  run_cases(connect_cases());
}
TEST(MqttMalformed, Publish) {
  run_cases(publish_cases());
}
TEST(MqttMalformed, SubscribeAndUnsubscribe) {
  run_cases(subscribe_cases());
}
TEST(MqttMalformed, AcksPingsAndClientSide) {
  run_cases(small_packet_cases());
}

TEST(MqttMalformed, UnsupportedLevelStillReportsLevel) {
  const std::vector<uint8_t> body = connect_header(0x02, "MQTT", 6).str("id").bytes();
  ConnectPacket packet;
  ASSERT_EQ(decode_connect(body, 0, &packet), DecodeStatus::kUnsupportedProtocolLevel);
  EXPECT_EQ(packet.protocol_name, "MQTT");
  EXPECT_EQ(packet.protocol_level, 6);
}

// Every strict prefix of a valid body must fail to decode, and none may read past its end: under
// ASan an overread aborts the test. PUBLISH and SUBACK are left out because a prefix of them can be
// a valid packet (a shorter payload, fewer return codes); list packets in the tables have one entry.
TEST(MqttMalformed, EveryTruncationFails) {
  std::vector<Case> valid;
  for (auto source : {connect_cases, subscribe_cases, small_packet_cases}) {
    for (Case& test_case : source()) {
      if (test_case.expected == kOk && test_case.type != PacketType::kSuback)
        valid.push_back(std::move(test_case));
    }
  }
  ASSERT_GT(valid.size(), 10u);
  for (const Case& test_case : valid) {
    for (size_t prefix = 0; prefix < test_case.body.size(); prefix++) {
      // An exact-size copy, so that ASan sees any read past the prefix.
      const std::vector<uint8_t> truncated(test_case.body.begin(),
                                           test_case.body.begin() + static_cast<long>(prefix));
      EXPECT_NE(decode_body(test_case.type, test_case.flags, truncated, test_case.version), kOk)
          << packet_type_name(test_case.type) << ": " << test_case.name << " cut to " << prefix;
    }
  }
}

// A deterministic stand-in for the fuzzer: random bodies for every decoder and random headers.
TEST(MqttMalformed, RandomBytesNeverCrash) {
  std::mt19937 random(12345);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 40);
  size_t accepted = 0;
  for (int iteration = 0; iteration < 20'000; iteration++) {
    std::vector<uint8_t> bytes(static_cast<size_t>(length(random)));
    for (uint8_t& value : bytes) value = static_cast<uint8_t>(byte(random));
    FixedHeader header{};
    (void)parse_fixed_header(bytes, 1u << 20, &header);
    for (uint8_t type = 1; type <= 15; type++) {
      for (const uint8_t flags : {uint8_t{0}, uint8_t{2}, static_cast<uint8_t>(iteration & 0x0F)}) {
        constexpr ProtocolVersion kVersions[] = {ProtocolVersion::kV31, ProtocolVersion::kV311,
                                                 ProtocolVersion::kV5};
        const ProtocolVersion version = kVersions[iteration % 3];
        if (decode_body(static_cast<PacketType>(type), flags, bytes, version) == kOk) accepted++;
      }
    }
  }
  // PUBLISH and the empty packets accept some random input; the point is that nothing crashed.
  EXPECT_GT(accepted, 0u);
}

}  // namespace
}  // namespace coremq::mqtt
