// The programs' --help text and man page OPTIONS; see flag_help.h.
#include "base/flag_help.h"

#include <algorithm>

#include "base/assert.h"

namespace coremq::base {

namespace {

std::string default_shown(const FlagHelp& flag) {
  return flag.default_value.empty() ? "empty" : flag.default_value;
}

std::string usage_form(const FlagHelp& flag) {
  std::string form = "--" + dashed_flag_name(flag.name);
  if (!flag.placeholder.empty()) form += "=" + flag.placeholder;
  return form;
}

bool is_option_character(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

}  // namespace

std::string dashed_flag_name(std::string_view name) {
  std::string dashed(name);
  std::replace(dashed.begin(), dashed.end(), '_', '-');
  return dashed;
}

std::string wrap_paragraph(std::string_view text, size_t indent, size_t width) {
  COREMQ_ASSERT(indent < width);
  std::string out;
  std::string line;
  auto flush = [&] {
    if (line.empty()) return;
    out.append(indent, ' ');
    out += line;
    out += '\n';
    line.clear();
  };
  size_t position = 0;
  while (position < text.size()) {
    size_t start = text.find_first_not_of(" \t\n", position);
    if (start == std::string_view::npos) break;
    size_t end = text.find_first_of(" \t\n", start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view word = text.substr(start, end - start);
    if (!line.empty() && indent + line.size() + 1 + word.size() > width) flush();
    if (!line.empty()) line += ' ';
    line += word;
    position = end;
  }
  flush();
  return out;
}

std::vector<FlagSection> group_flags(std::span<const FlagHelp> flags, const FlagGroups& groups) {
  COREMQ_ASSERT(!groups.titles.empty());
  std::vector<FlagSection> sections;
  for (std::string_view title : groups.titles) sections.push_back({title, {}});
  std::vector<bool> placed(flags.size(), false);
  for (const FlagPlacement& placement : groups.placements) {
    auto title = std::find(groups.titles.begin(), groups.titles.end(), placement.group);
    COREMQ_ASSERT_MSG(title != groups.titles.end(),
                      "a flag placement names a group that is not in the titles");
    for (size_t i = 0; i < flags.size(); ++i) {
      if (placed[i] || flags[i].name != placement.flag) continue;
      FlagHelp flag = flags[i];
      if (!placement.placeholder.empty()) flag.placeholder = std::string(placement.placeholder);
      sections[static_cast<size_t>(title - groups.titles.begin())].flags.push_back(std::move(flag));
      placed[i] = true;
    }
  }
  // A flag nobody placed yet (a new one) is still shown, in the last group.
  std::vector<FlagHelp> rest;
  for (size_t i = 0; i < flags.size(); ++i) {
    if (!placed[i]) rest.push_back(flags[i]);
  }
  std::sort(rest.begin(), rest.end(), [](const FlagHelp& a, const FlagHelp& b) { return a.name < b.name; });
  for (FlagHelp& flag : rest) sections.back().flags.push_back(std::move(flag));
  std::erase_if(sections, [](const FlagSection& section) { return section.flags.empty(); });
  return sections;
}

std::string render_flag_help(std::span<const FlagHelp> flags, const FlagGroups& groups, size_t width) {
  constexpr size_t kHelpIndent = 6;
  std::string out;
  for (const FlagSection& section : group_flags(flags, groups)) {
    out += "\n";
    out += section.title;
    out += ":\n";
    for (const FlagHelp& flag : section.flags) {
      std::string head = "  " + usage_form(flag);
      std::string default_text = "(default: " + default_shown(flag) + ")";
      std::string help = flag.help;
      // The default goes on the flag's line when it fits, else it opens the paragraph.
      if (head.size() + 2 + default_text.size() <= width) {
        head += "  " + default_text;
      } else {
        help = default_text + " " + help;
      }
      out += head + "\n";
      out += wrap_paragraph(help, kHelpIndent, width);
    }
  }
  return out;
}

std::string roff_escape(std::string_view text) {
  std::string out;
  bool in_option = false;  // inside a token that began with '-' at a word boundary
  char previous = ' ';
  for (char c : text) {
    if (!is_option_character(c)) in_option = false;
    if (c == '-' && (in_option || !is_option_character(previous))) in_option = true;
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-' && in_option) {
      out += "\\-";
    } else {
      out += c;
    }
    previous = c;
  }
  // A body line must not start with a control character.
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

std::string render_flag_roff(std::span<const FlagHelp> flags, const FlagGroups& groups) {
  std::string out;
  for (const FlagSection& section : group_flags(flags, groups)) {
    out += ".SS " + roff_escape(section.title) + "\n";
    for (const FlagHelp& flag : section.flags) {
      out += ".TP\n\\fB" + roff_escape("--" + dashed_flag_name(flag.name)) + "\\fR";
      if (!flag.placeholder.empty()) out += "=\\fI" + roff_escape(flag.placeholder) + "\\fR";
      out += " (default: " + roff_escape(default_shown(flag)) + ")\n";
      out += roff_escape(flag.help) + "\n";
    }
  }
  return out;
}

}  // namespace coremq::base
