// The --help text and the man page OPTIONS section of the programs (coremq, mqtt-bench), made
// from one description of their flags so the two cannot say different things. Each program
// lists its flags (from Abseil's registry: base/flag_help_absl.h) and a placement table that
// puts a flag in a group and names its value ("--bind=ADDRESS"); a flag the table does not
// name lands in the last group, so a flag added anywhere is still shown. Pure functions with
// no Abseil flags dependency (the library links them); any thread.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coremq::base {

// One flag as a user sees it.
struct FlagHelp {
  std::string name;           // Abseil's name, with underscores: "max_connections"
  std::string placeholder;    // what follows '=': "N", "FILE", "true|false"; empty: nothing
  std::string default_value;  // as typed on the command line; empty shows as "empty"
  std::string help;           // one paragraph
};

// Where a flag goes in the help: `group` is one of FlagGroups::titles (the same string_view
// constant, compared by content); `placeholder` overrides the one made from the flag's type.
struct FlagPlacement {
  std::string_view flag;  // underscore name
  std::string_view group;
  std::string_view placeholder = {};
};

struct FlagGroups {
  std::span<const std::string_view> titles;   // in print order; the last takes unplaced flags
  std::span<const FlagPlacement> placements;  // in print order within a group
};

// The user's spelling of a flag: "max_connections" -> "max-connections".
std::string dashed_flag_name(std::string_view name);

// `text` as lines of at most `width` columns (words longer than that get a line of their own),
// each indented by `indent` spaces and ended by '\n'.
std::string wrap_paragraph(std::string_view text, size_t indent, size_t width);

// The flags, grouped and in the table's order (unplaced ones sorted by name in the last group,
// empty groups left out), with a placement's placeholder applied. Asserts that every placement
// names a title.
struct FlagSection {
  std::string_view title;
  std::vector<FlagHelp> flags;
};
std::vector<FlagSection> group_flags(std::span<const FlagHelp> flags, const FlagGroups& groups);

// For --help: per group a "Title:" line, then per flag "  --name=PLACEHOLDER  (default: X)" and
// its help wrapped at `width` columns, indented by 6.
std::string render_flag_help(std::span<const FlagHelp> flags, const FlagGroups& groups, size_t width = 80);

// For a man page: per group ".SS Title", per flag a ".TP" paragraph, every roff special
// character escaped. Goes in place of the page's OPTIONS body.
std::string render_flag_roff(std::span<const FlagHelp> flags, const FlagGroups& groups);

// `text` as roff body text: backslashes escaped, a leading '.' or '\'' protected, and the
// hyphens of option names (--bind, -c) written as \- so they render and copy as ASCII minus.
std::string roff_escape(std::string_view text);

}  // namespace coremq::base
