// JsonWriter and FlatJsonObject (src/admin/json_writer.h, json_reader.h).
#include <gtest/gtest.h>

#include "admin/json_reader.h"
#include "admin/json_writer.h"

namespace coremq::admin {
namespace {

TEST(JsonWriterTest, NestsAndPlacesCommas) {
  JsonWriter out;
  out.begin_object().key("a").number(1).key("b").begin_array().string("x").boolean(false).null().end_array();
  out.key("c").begin_object().end_object().key("d").number_signed(-5).end_object();
  EXPECT_EQ(out.text(), R"({"a":1,"b":["x",false,null],"c":{},"d":-5})");
  EXPECT_TRUE(out.complete());
}

TEST(JsonWriterTest, EscapesControlQuotesAndBackslash) {
  std::string out;
  append_json_string(std::string("a\"b\\c\n\t\x01\x7f", 9), &out);
  EXPECT_EQ(out, R"("a\"b\\c\n\t\u0001\u007f")");
}

TEST(JsonWriterTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  std::string out;
  append_json_string("caf\xc3\xa9 \xf0\x9f\x98\x80", &out);
  EXPECT_EQ(out, "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
  out.clear();
  // A lone continuation byte, an overlong '/', a surrogate, a truncated sequence.
  append_json_string("\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82", &out);
  EXPECT_EQ(out, R"("\ufffd|\ufffd\ufffd|\ufffd\ufffd\ufffd|\ufffd\ufffd")");
}

TEST(JsonReaderTest, ReadsAFlatObject) {
  FlatJsonObject object;
  std::string error;
  ASSERT_TRUE(object.parse(R"( {"topic":"a/b", "qos": 2, "retain":true, "x":null, "n":-7} )", &error))
      << error;
  ASSERT_NE(object.find("topic"), nullptr);
  EXPECT_EQ(object.find("topic")->text, "a/b");
  EXPECT_EQ(object.find("qos")->integer, 2);
  EXPECT_TRUE(object.find("retain")->boolean);
  EXPECT_EQ(object.find("x")->kind, JsonValue::Kind::kNull);
  EXPECT_EQ(object.find("n")->integer, -7);
  EXPECT_EQ(object.find("missing"), nullptr);
}

TEST(JsonReaderTest, DecodesEscapesAndSurrogatePairs) {
  FlatJsonObject object;
  std::string error;
  ASSERT_TRUE(object.parse(R"({"s":"\"\\\/\n\u00e9\ud83d\ude00"})", &error)) << error;
  EXPECT_EQ(object.find("s")->text, "\"\\/\n\xc3\xa9\xf0\x9f\x98\x80");
}

TEST(JsonReaderTest, RefusesWhatItDoesNotTakeWithAnOffset) {
  const char* bad[] = {
      "",
      "[]",
      "{",
      R"({"a"})",
      R"({"a":})",
      R"({"a":1,})",
      R"({"a":[1]})",
      R"({"a":{}})",
      R"({"a":1.5})",
      R"({"a":01})",
      R"({"a":"\ud800"})",
      R"({"a":"x)",
      R"({"a":1} x)",
      R"({a:1})",
      "{\"a\":\"\x01\"}",
      R"({"a":99999999999999999999})",
      R"({"a":tru})",
  };
  for (const char* text : bad) {
    FlatJsonObject object;
    std::string error;
    EXPECT_FALSE(object.parse(text, &error)) << text;
    EXPECT_TRUE(error.starts_with("offset ")) << text << ": " << error;
  }
}

TEST(JsonReaderTest, BoundsTheMemberCount) {
  std::string text = "{";
  for (size_t i = 0; i <= FlatJsonObject::kMembersMax; ++i) {
    if (i != 0) text.push_back(',');
    text.append("\"k").append(std::to_string(i)).append("\":1");
  }
  text += "}";
  FlatJsonObject object;
  std::string error;
  EXPECT_FALSE(object.parse(text, &error));
  EXPECT_NE(error.find("too many members"), std::string::npos);
}

}  // namespace
}  // namespace coremq::admin
