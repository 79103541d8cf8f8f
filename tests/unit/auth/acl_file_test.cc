// Unit tests of the Mosquitto ACL file reader and the per-session decisions (src/auth/acl_file.h):
// the file read line by line as mosquitto 2.0.11 reads it (each case below was checked against
// the real mosquitto), the decision order (user denies, user grants, pattern denies, pattern
// grants), %u/%c substitution and its refusal for '+'/'#' names, the $SYS/$share rules, the
// conservative SUBSCRIBE check, and the fast matcher against topic::topic_matches on random
// filters and topics. Suites are named Acl* so --gtest_filter='Acl*' selects them.
#include "auth/acl_file.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "topic/topic.h"

namespace coremq::auth {
namespace {

std::shared_ptr<const AclFile> parse_ok(std::string_view text) {
  std::string error;
  auto file = AclFile::parse(text, "acl", &error);
  EXPECT_NE(file, nullptr) << error;
  return file;
}

std::string parse_error(std::string_view text, const AclFileLimits& limits = {}) {
  std::string error;
  auto file = AclFile::parse(text, "acl", &error, limits);
  EXPECT_EQ(file, nullptr) << "accepted: " << text;
  return error;
}

TEST(AclFileParse, LinesAsMosquittoReadsThem) {
  auto file = parse_ok(
      "# comment\n"
      "\n"
      "   \n"
      "topic read pub/#\r\n"          // CRLF: trailing blanks go
      "   topic write lead/spaces\n"  // leading spaces are skipped by strtok
      "topic read   spaced topic/x  \n"
      "topic just/one/word\n"  // one word: the topic, read and write
      "topic read\n"           // the topic "read"
      "user alice\n"
      "topic deny a/secret/#\n"
      "topic readwrite a/#\n"
      "user bob smith\n"  // a username with a space
      "topic read b/#\n"
      "pattern write dev/%c/#\n");
  EXPECT_EQ(file->rule_count(), 9u);
  EXPECT_EQ(file->user_count(), 2u);
  CompiledAcl anonymous = file->compile(std::nullopt, "c1");
  EXPECT_TRUE(anonymous.can_receive("pub/1"));
  EXPECT_FALSE(anonymous.can_publish("pub/1"));
  EXPECT_TRUE(anonymous.can_publish("lead/spaces"));
  EXPECT_TRUE(anonymous.can_receive("spaced topic/x"));
  EXPECT_TRUE(anonymous.can_publish("just/one/word"));
  EXPECT_TRUE(anonymous.can_receive("just/one/word"));
  EXPECT_TRUE(anonymous.can_publish("read"));
  EXPECT_TRUE(anonymous.can_publish("dev/c1/x"));
  CompiledAcl bob = file->compile("bob smith", "c2");
  EXPECT_TRUE(bob.can_receive("b/1"));
  EXPECT_FALSE(bob.can_receive("pub/1"));  // a user does not get the anonymous rules
}

TEST(AclFileParse, BadLinesNameTheirLine) {
  EXPECT_EQ(parse_error("topic read ok\ntopic read a/b#\n"),
            "acl:2: invalid topic 'a/b#': it has '#' that is not the whole last level");
  EXPECT_EQ(parse_error("user\n"), "acl:1: missing username after 'user'");
  EXPECT_EQ(parse_error("user   \t \n"), "acl:1: missing username after 'user'");
  EXPECT_EQ(parse_error("topic foo bar\n"), "acl:1: invalid access type 'foo' (read, write, readwrite or deny)");
  EXPECT_EQ(parse_error("topic\n"), "acl:1: empty topic in 'topic' line");
  EXPECT_EQ(parse_error("pattern   \n"), "acl:1: empty topic in 'pattern' line");
  // Mosquitto splits on spaces only and takes only a first-character '#' as a comment.
  EXPECT_NE(parse_error("  # indented\n").find("acl:1: invalid line starting '#'"), std::string::npos);
  EXPECT_NE(parse_error("\ttopic read a\n").find("acl:1: invalid line"), std::string::npos);
  EXPECT_NE(parse_error("Topic read a\n").find("invalid line"), std::string::npos);
  EXPECT_NE(parse_error("topic read a+\n").find("'+' that is not a whole level"), std::string::npos);
  EXPECT_NE(parse_error("topic read +/+/#/\n").find("acl:1: invalid topic"), std::string::npos);
  EXPECT_NE(parse_error(std::string("topic read a\0b\n", 15)).find("acl:1: NUL byte"), std::string::npos);
}

TEST(AclFileParse, MosquittosTopicBounds) {
  std::string levels_201 = "a";
  for (int i = 0; i < 200; ++i) levels_201 += "/a";
  parse_ok("topic read " + levels_201 + "\n");
  EXPECT_NE(parse_error("topic read " + levels_201 + "/a\n").find("more than 200 '/'"), std::string::npos);
  parse_ok("topic read " + std::string(65535, 'a') + "\n");
  EXPECT_NE(parse_error("topic read " + std::string(65536, 'a') + "\n").find("longer than 65535"),
            std::string::npos);
}

TEST(AclFileParse, LimitsRefuseTheFile) {
  AclFileLimits limits;
  limits.rules_max = 2;
  EXPECT_EQ(parse_error("topic a\ntopic b\ntopic c\n", limits), "acl:3: more than 2 rules (the ACL file limit)");
  limits = {};
  limits.line_bytes_max = 10;
  EXPECT_EQ(parse_error("topic a\ntopic read abcdef\n", limits), "acl:2: line longer than 10 bytes");
  limits = {};
  limits.file_bytes_max = 4;
  EXPECT_EQ(parse_error("topic a\n", limits), "acl: larger than 4 bytes (the ACL file limit)");
}

TEST(AclFileParse, PatternWithoutSubstitutionIsAWarning) {
  auto file = parse_ok("pattern read all/#\npattern read dev/%c\n");
  ASSERT_EQ(file->warnings().size(), 1u);
  EXPECT_EQ(file->warnings()[0], "acl:1: pattern 'all/#' contains neither %c nor %u");
}

TEST(AclFileLoad, ReadsTheFileAndNamesAMissingOne) {
  std::string error;
  EXPECT_EQ(load_acl_file("/nonexistent/acl", &error), nullptr);
  EXPECT_NE(error.find("/nonexistent/acl: cannot open"), std::string::npos);
  EXPECT_EQ(load_acl_file("/tmp", &error), nullptr);
  EXPECT_EQ(error, "/tmp: not a regular file");
  std::string path = ::testing::TempDir() + "/acl_file_test.acl";
  FILE* out = std::fopen(path.c_str(), "w");
  ASSERT_NE(out, nullptr);
  std::fputs("topic read a/#\nuser x\ntopic bad#\n", out);
  std::fclose(out);
  EXPECT_EQ(load_acl_file(path, &error), nullptr);
  EXPECT_EQ(error.rfind(path + ":3: invalid topic 'bad#'", 0), 0u) << error;
}

TEST(AclDecision, DenyBeatsGrantAndUserRulesBeatPatterns) {
  auto file = parse_ok(
      "user alice\n"
      "topic readwrite a/#\n"
      "topic deny a/secret/#\n"  // later in the file, still checked first
      "topic write w/only\n"
      "topic read r/only\n"
      "pattern deny a/%u/#\n"  // never reached for a/...: alice's own grant decides first
      "pattern readwrite dev/%c/#\n"
      "pattern deny dev/%c/locked/#\n");
  CompiledAcl alice = file->compile("alice", "alice-1");
  EXPECT_TRUE(alice.can_publish("a/1"));
  EXPECT_TRUE(alice.can_receive("a/1"));
  EXPECT_FALSE(alice.can_publish("a/secret/1"));
  EXPECT_FALSE(alice.can_receive("a/secret"));  // '#' matches the parent level
  EXPECT_TRUE(alice.can_publish("a/alice/x"));
  EXPECT_TRUE(alice.can_publish("w/only"));
  EXPECT_FALSE(alice.can_receive("w/only"));
  EXPECT_TRUE(alice.can_receive("r/only"));
  EXPECT_FALSE(alice.can_publish("r/only"));
  EXPECT_TRUE(alice.can_publish("dev/alice-1/x"));
  EXPECT_FALSE(alice.can_publish("dev/alice-1/locked/x"));
  EXPECT_FALSE(alice.can_publish("dev/other/x"));
  EXPECT_FALSE(alice.can_receive("zzz"));
}

TEST(AclDecision, WhoGetsWhichSection) {
  auto file = parse_ok("topic read anon/#\nuser bob\ntopic read b/#\npattern read users/%u/#\n");
  CompiledAcl anonymous = file->compile(std::nullopt, "x");
  CompiledAcl empty_name = file->compile("", "x");  // counts as anonymous, as in Mosquitto
  CompiledAcl bob = file->compile("bob", "x");
  CompiledAcl carol = file->compile("carol", "x");  // no section: patterns only
  EXPECT_TRUE(anonymous.can_receive("anon/1"));
  EXPECT_TRUE(empty_name.can_receive("anon/1"));
  EXPECT_FALSE(empty_name.can_receive("users//1"));  // %u does not apply without a username
  EXPECT_FALSE(bob.can_receive("anon/1"));
  EXPECT_TRUE(bob.can_receive("users/bob/1"));
  EXPECT_FALSE(carol.can_receive("anon/1"));
  EXPECT_FALSE(carol.can_receive("b/1"));
  EXPECT_TRUE(carol.can_receive("users/carol/x"));
  EXPECT_FALSE(carol.can_receive("users/bob/x"));
}

TEST(AclDecision, SectionsOfOneUserAreMerged) {
  auto file = parse_ok("user a\ntopic read one\nuser b\ntopic read two\nuser a\ntopic read three\n");
  CompiledAcl a = file->compile("a", "x");
  EXPECT_TRUE(a.can_receive("one"));
  EXPECT_TRUE(a.can_receive("three"));
  EXPECT_FALSE(a.can_receive("two"));
}

TEST(AclDecision, SubstitutionAsMosquittoDoesIt) {
  auto file = parse_ok("pattern read users/%u/#\npattern read x_%c_y\npattern read both/%u/%c\n");
  // '/' in a name is substituted as is (mosquitto 2.0.11 refuses only '+' and '#').
  CompiledAcl slash = file->compile("u/x", "d/e");
  EXPECT_TRUE(slash.can_receive("users/u/x/1"));
  EXPECT_TRUE(slash.can_receive("x_d/e_y"));  // not only as a whole level
  EXPECT_TRUE(slash.can_receive("both/u/x/d/e"));
  CompiledAcl anonymous = file->compile(std::nullopt, "k");
  EXPECT_TRUE(anonymous.can_receive("x_k_y"));
  EXPECT_FALSE(anonymous.can_receive("both/%u/k"));  // a %u pattern is skipped, not kept literally
}

TEST(AclDecision, AMovedCompiledAclKeepsItsSubstitutedRules) {
  // Short substituted texts: a std::string would keep them inline and a move would leave the
  // rules' views behind.
  auto file = parse_ok("pattern read d/%c\npattern deny d/%c/x\npattern write u/%u\n");
  auto compiled = std::make_unique<CompiledAcl>(file->compile("u1", "c1"));
  CompiledAcl moved = std::move(*compiled);
  compiled.reset();
  EXPECT_TRUE(moved.can_receive("d/c1"));
  EXPECT_FALSE(moved.can_receive("d/c1/x"));
  EXPECT_FALSE(moved.can_receive("d/c2"));
  EXPECT_TRUE(moved.can_publish("u/u1"));
  EXPECT_EQ(moved.rule_count(), 3u);
}

TEST(AclDecision, WildcardInANameRefusesThePatternStage) {
  auto file = parse_ok("topic read anon/#\nuser p+\ntopic read plus/#\npattern read all/#\n");
  CompiledAcl plus_user = file->compile("p+", "c");
  EXPECT_TRUE(plus_user.can_receive("plus/1"));  // the user's own rules still apply
  EXPECT_FALSE(plus_user.can_receive("all/1"));
  CompiledAcl hash_id = file->compile(std::nullopt, "c#1");
  EXPECT_TRUE(hash_id.can_receive("anon/1"));
  EXPECT_FALSE(hash_id.can_receive("all/1"));
  EXPECT_TRUE(file->compile(std::nullopt, "c1").can_receive("all/1"));
  // Without patterns in the file, a '+' name is not refused anything.
  auto no_patterns = parse_ok("topic read anon/#\n");
  EXPECT_TRUE(no_patterns->compile(std::nullopt, "c+1").can_receive("anon/1"));
}

TEST(AclDecision, DollarTopics) {
  auto file = parse_ok("topic readwrite #\ntopic readwrite $SYS/#\ntopic readwrite $foo/#\ntopic readwrite $share/#\n");
  CompiledAcl client = file->compile(std::nullopt, "c");
  EXPECT_FALSE(client.can_publish("$SYS/x"));  // the broker's, whatever the file says
  EXPECT_FALSE(client.can_publish("$SYSTEM"));  // Mosquitto compares the first 4 characters
  EXPECT_TRUE(client.can_publish("$SYS/broker/connection/bridge1/state"));
  EXPECT_TRUE(client.can_receive("$SYS/x"));
  EXPECT_TRUE(client.can_publish("$foo/x"));
  EXPECT_FALSE(client.can_publish("$share/g/x"));
  EXPECT_FALSE(client.can_receive("$share/g/x"));
  auto plain = parse_ok("topic readwrite #\n");
  EXPECT_FALSE(plain->compile(std::nullopt, "c").can_receive("$SYS/x"));  // '#' does not reach '$'
  EXPECT_FALSE(plain->compile(std::nullopt, "c").can_publish("$foo/x"));
}

TEST(AclDecision, EmptyFileRefusesEverything) {
  auto file = parse_ok("# nothing\n");
  CompiledAcl client = file->compile("u", "c");
  EXPECT_FALSE(client.can_publish("a"));
  EXPECT_FALSE(client.can_receive("a"));
  EXPECT_FALSE(client.can_subscribe("#"));
  CompiledAcl none;  // no file: everything allowed
  EXPECT_TRUE(none.can_publish("a"));
  EXPECT_TRUE(none.can_subscribe("#"));
}

TEST(AclSubscribe, RefusesOnlyFiltersNothingReadableMatches) {
  auto file = parse_ok(
      "topic read a/#\n"
      "topic deny a/secret/#\n"
      "topic write w/#\n"
      "topic read $foo/#\n"
      "pattern read dev/%c/#\n"
      "pattern deny dev/%c/locked/#\n");
  CompiledAcl client = file->compile(std::nullopt, "c1");
  EXPECT_TRUE(client.can_subscribe("#"));
  EXPECT_TRUE(client.can_subscribe("+/+"));
  EXPECT_TRUE(client.can_subscribe("a/b"));
  EXPECT_TRUE(client.can_subscribe("a/+/c"));
  EXPECT_FALSE(client.can_subscribe("a/secret"));  // the deny's '#' covers its parent level too
  EXPECT_FALSE(client.can_subscribe("a/secret/#"));
  EXPECT_FALSE(client.can_subscribe("a/secret/+/x"));
  EXPECT_FALSE(client.can_subscribe("w/#"));  // write only
  EXPECT_FALSE(client.can_subscribe("zzz"));
  EXPECT_TRUE(client.can_subscribe("$foo/x"));
  EXPECT_FALSE(client.can_subscribe("$bar/#"));
  EXPECT_TRUE(client.can_subscribe("dev/c1/x"));
  EXPECT_TRUE(client.can_subscribe("dev/+/x"));
  EXPECT_FALSE(client.can_subscribe("dev/c1/locked/x"));
  EXPECT_FALSE(client.can_subscribe("dev/c2/x"));
}

TEST(AclSubscribe, PastItsBudgetTheCheckGrants) {
  // 100 grants x 100 denies is over the budget of comparisons: the filter is granted even
  // though every grant is covered by a deny (delivery checks still refuse each message).
  std::string text;
  for (int i = 0; i < 100; ++i) text += "topic deny x" + std::to_string(i) + "/#\n";
  for (int i = 0; i < 100; ++i) text += "topic read x" + std::to_string(i) + "/a\n";
  auto file = parse_ok(text);
  CompiledAcl client = file->compile(std::nullopt, "c");
  EXPECT_FALSE(client.can_receive("x5/a"));
  bool over_budget = false;
  EXPECT_TRUE(client.can_subscribe("#", &over_budget));
  EXPECT_TRUE(over_budget);
  over_budget = false;
  EXPECT_FALSE(client.can_subscribe("x5/a", &over_budget));  // few comparisons: refused
  EXPECT_FALSE(over_budget);
  EXPECT_FALSE(client.can_subscribe("x5/+", &over_budget));  // x5/# covers x5/a
  EXPECT_FALSE(over_budget);
}

TEST(AclSubscribe, DollarFiltersNeedADollarRule) {
  auto file = parse_ok("topic read #\n");
  CompiledAcl client = file->compile(std::nullopt, "c");
  EXPECT_TRUE(client.can_subscribe("#"));
  EXPECT_FALSE(client.can_subscribe("$SYS/#"));
}

// The contract of can_subscribe checked by brute force: whenever some topic of a small universe
// that the filter matches is readable, the filter is granted.
TEST(AclSubscribe, NeverRefusesAFilterWithAReadableTopic) {
  std::vector<std::string> levels = {"a", "b", "$x", "+", "#", ""};
  std::mt19937 random(7);
  auto make = [&](bool wildcards, bool allow_dollar) {
    std::string text;
    size_t count = 1 + random() % 3;
    for (size_t i = 0; i < count; ++i) {
      std::string level;
      do {
        level = levels[random() % levels.size()];
      } while ((!wildcards && (level == "+" || level == "#")) || (level == "#" && i + 1 != count) ||
               (level == "$x" && (!allow_dollar || i != 0)));
      text += (i ? "/" : "") + level;
    }
    return text;
  };
  std::vector<std::string> topics;
  for (int i = 0; i < 300; ++i) topics.push_back(make(false, true));
  for (int round = 0; round < 300; ++round) {
    std::string text;
    for (int r = 0; r < 4; ++r) {
      const char* access[] = {"read", "deny", "readwrite", "write"};
      text += std::string("topic ") + access[random() % 4] + " " + make(true, true) + "\n";
    }
    auto file = parse_ok(text);
    CompiledAcl client = file->compile(std::nullopt, "c");
    for (int f = 0; f < 20; ++f) {
      std::string filter = make(true, true);
      for (const std::string& topic : topics) {
        if (topic::topic_matches(filter, topic) && client.can_receive(topic)) {
          ASSERT_TRUE(client.can_subscribe(filter)) << text << "filter " << filter << " readable " << topic;
          break;
        }
      }
    }
  }
}

TEST(AclMatch, AgreesWithTheReferenceMatcher) {
  std::vector<std::string> levels = {"a", "b", "ab", "ba", "", "$s", "$", "+", "#"};
  std::mt19937 random(11);
  auto make = [&](bool filter) {
    std::string text;
    size_t count = 1 + random() % 4;
    for (size_t i = 0; i < count; ++i) {
      std::string level;
      do {
        level = levels[random() % levels.size()];
      } while ((!filter && (level == "+" || level == "#")) || (level == "#" && i + 1 != count));
      text += (i ? "/" : "") + level;
    }
    return text;
  };
  for (int i = 0; i < 300000; ++i) {
    std::string filter = make(true);
    std::string topic = make(false);
    if (topic.empty()) continue;
    ASSERT_EQ(acl_filter_matches(filter, topic), topic::topic_matches(filter, topic)) << filter << " " << topic;
  }
}

}  // namespace
}  // namespace coremq::auth
