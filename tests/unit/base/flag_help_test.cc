// The --help and man page renderer (src/base/flag_help.h): grouping by the placement table
// (a flag it does not name lands in the last group), the user's spelling with dashes, defaults,
// wrapping at 80 columns, and roff escaping.
#include "base/flag_help.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace coremq::base {
namespace {

constexpr std::string_view kNetwork = "Network";
constexpr std::string_view kOther = "Other";
constexpr std::string_view kTitles[] = {kNetwork, "Empty group", kOther};
constexpr FlagPlacement kPlacements[] = {
    {"port", kNetwork},
    {"bind", kNetwork, "ADDRESS"},
};
constexpr FlagGroups kGroups = {kTitles, kPlacements};

std::vector<FlagHelp> flags() {
  return {
      {"bind", "VALUE", "", "Address to listen on."},
      {"zeta_flag", "N", "3", "A flag nobody placed."},
      {"port", "N", "1883", "TCP port."},
      {"alpha_flag", "true|false", "true",
       "A long paragraph that has to be wrapped because it goes on and on well past the eightieth column of "
       "a terminal, with --some-option and a path /etc/coremq/coremq.conf in it."},
  };
}

TEST(BaseFlagHelp, GroupsFollowTheTableAndUnplacedFlagsGoLast) {
  std::vector<FlagSection> sections = group_flags(flags(), kGroups);
  ASSERT_EQ(sections.size(), 2u);  // the empty group is left out
  EXPECT_EQ(sections[0].title, kNetwork);
  ASSERT_EQ(sections[0].flags.size(), 2u);
  EXPECT_EQ(sections[0].flags[0].name, "port");  // the table's order, not the input's
  EXPECT_EQ(sections[0].flags[1].name, "bind");
  EXPECT_EQ(sections[0].flags[1].placeholder, "ADDRESS");  // the placement's placeholder wins
  EXPECT_EQ(sections[1].title, kOther);
  ASSERT_EQ(sections[1].flags.size(), 2u);
  EXPECT_EQ(sections[1].flags[0].name, "alpha_flag");  // unplaced: by name
  EXPECT_EQ(sections[1].flags[1].name, "zeta_flag");
}

TEST(BaseFlagHelp, HelpTextUsesDashesDefaultsAndEightyColumns) {
  std::string text = render_flag_help(flags(), kGroups);
  EXPECT_NE(text.find("\nNetwork:\n  --port=N  (default: 1883)\n      TCP port.\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("  --bind=ADDRESS  (default: empty)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  --alpha-flag=true|false  (default: true)\n"), std::string::npos) << text;
  EXPECT_NE(text.find("--zeta-flag=N"), std::string::npos);
  EXPECT_EQ(text.find("zeta_flag"), std::string::npos);
  EXPECT_EQ(text.find("Empty group"), std::string::npos);
  std::istringstream lines(text);
  std::string line;
  int lines_of_alpha = 0;
  while (std::getline(lines, line)) {
    EXPECT_LE(line.size(), 80u) << line;
    if (line.starts_with("      ") && text.find("A long paragraph") != std::string::npos) ++lines_of_alpha;
  }
  EXPECT_GE(lines_of_alpha, 3);
}

TEST(BaseFlagHelp, DefaultThatDoesNotFitOpensTheParagraph) {
  std::vector<FlagHelp> one = {{"listener", std::string(70, 'X'), "mqtt://127.0.0.1:1883", "A listener."}};
  std::string text = render_flag_help(one, kGroups);
  EXPECT_NE(text.find("  --listener=" + std::string(70, 'X') +
                      "\n      (default: mqtt://127.0.0.1:1883) A listener.\n"),
            std::string::npos)
      << text;
}

TEST(BaseFlagHelp, WrapKeepsWordsWholeAndIndents) {
  EXPECT_EQ(wrap_paragraph("one two three", 2, 10), "  one two\n  three\n");
  EXPECT_EQ(wrap_paragraph("  spaced   out\n words ", 0, 80), "spaced out words\n");
  EXPECT_EQ(wrap_paragraph("a " + std::string(20, 'w') + " b", 4, 12),
            "    a\n    " + std::string(20, 'w') + "\n    b\n");
  EXPECT_EQ(wrap_paragraph("", 4, 80), "");
}

TEST(BaseFlagHelp, RoffEscapesOptionsBackslashesAndControlLines) {
  EXPECT_EQ(roff_escape("see --max-connections and -c, not thread-per-core"),
            "see \\-\\-max\\-connections and \\-c, not thread-per-core");
  EXPECT_EQ(roff_escape("a\\b"), "a\\eb");
  EXPECT_EQ(roff_escape(".starts with a dot"), "\\&.starts with a dot");
  EXPECT_EQ(roff_escape("'quoted"), "\\&'quoted");
  std::string roff = render_flag_roff(flags(), kGroups);
  EXPECT_TRUE(roff.starts_with(".SS Network\n.TP\n\\fB\\-\\-port\\fR=\\fIN\\fR (default: 1883)\nTCP port.\n"))
      << roff;
  EXPECT_NE(roff.find("\\fB\\-\\-alpha\\-flag\\fR=\\fItrue|false\\fR (default: true)\n"), std::string::npos);
  EXPECT_NE(roff.find(".SS Other\n"), std::string::npos);
}

TEST(BaseFlagHelp, DashedName) {
  EXPECT_EQ(dashed_flag_name("max_connections"), "max-connections");
  EXPECT_EQ(dashed_flag_name("port"), "port");
}

}  // namespace
}  // namespace coremq::base
