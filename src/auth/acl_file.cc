// Mosquitto ACL files: the parser (main thread, start-up or reload), the per-session
// compilation (a shard, at CONNECT) and the checks (a shard, on the publish path). See
// acl_file.h for the rules; the comments here say where Mosquitto's reading is followed
// to the letter and why.
#include "auth/acl_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_format.h"
#include "base/assert.h"

namespace coremq::auth {

namespace {

// Mosquitto trims with isspace() in the C locale.
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

std::string_view trim_blanks(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// strtok_r(s, " ") in the way Mosquitto calls it: skips spaces (only ' ', not tabs), takes
// the word up to the next space, and leaves *rest just past that one space (or empty).
// Returns false when nothing but spaces is left.
bool next_word(std::string_view* text, std::string_view* word) {
  size_t start = text->find_first_not_of(' ');
  if (start == std::string_view::npos) return false;
  size_t end = text->find(' ', start);
  if (end == std::string_view::npos) {
    *word = text->substr(start);
    *text = std::string_view();
  } else {
    *word = text->substr(start, end - start);
    *text = text->substr(end + 1);
  }
  return true;
}

// mosquitto_sub_topic_check: '+' and '#' as whole levels ('#' last), at most 65535 bytes
// and at most 200 '/' (Mosquitto's TOPIC_HIERARCHY_LIMIT). No UTF-8 check, as Mosquitto.
bool valid_acl_filter(std::string_view filter, std::string* why) {
  if (filter.size() > 65535) {
    *why = "is longer than 65535 bytes";
    return false;
  }
  size_t slashes = 0;
  for (size_t i = 0; i < filter.size(); ++i) {
    char c = filter[i];
    bool level_start = i == 0 || filter[i - 1] == '/';
    bool level_end = i + 1 == filter.size() || filter[i + 1] == '/';
    if (c == '+' && !(level_start && level_end)) {
      *why = "has '+' that is not a whole level";
      return false;
    }
    if (c == '#' && !(level_start && i + 1 == filter.size())) {
      *why = "has '#' that is not the whole last level";
      return false;
    }
    slashes += c == '/';
  }
  if (slashes > 200) {
    *why = "has more than 200 '/' (Mosquitto's limit)";
    return false;
  }
  return true;
}

bool has_wildcard_character(std::string_view name) { return name.find_first_of("+#") != std::string_view::npos; }

// Levels of a filter, for the SUBSCRIBE check (never on the publish path).
std::vector<std::string_view> split_levels(std::string_view text) {
  std::vector<std::string_view> levels;
  size_t start = 0;
  for (;;) {
    size_t slash = text.find('/', start);
    if (slash == std::string_view::npos) {
      levels.push_back(text.substr(start));
      return levels;
    }
    levels.push_back(text.substr(start, slash - start));
    start = slash + 1;
  }
}

bool is_wildcard(std::string_view level) { return level == "+" || level == "#"; }

// The filter matching exactly the topics both filters match, or false when there are none.
bool intersect(const std::vector<std::string_view>& a, const std::vector<std::string_view>& b,
               std::vector<std::string_view>* out) {
  out->clear();
  size_t i = 0, j = 0;
  for (;;) {
    if (i < a.size() && a[i] == "#") {
      out->insert(out->end(), b.begin() + static_cast<ptrdiff_t>(j), b.end());
      break;
    }
    if (j < b.size() && b[j] == "#") {
      out->insert(out->end(), a.begin() + static_cast<ptrdiff_t>(i), a.end());
      break;
    }
    if (i == a.size() || j == b.size()) {
      if (i != a.size() || j != b.size()) return false;
      break;
    }
    if (a[i] == "+") {
      out->push_back(b[j]);
    } else if (b[j] == "+" || a[i] == b[j]) {
      out->push_back(a[i]);
    } else {
      return false;
    }
    ++i;
    ++j;
  }
  COREMQ_ASSERT(!out->empty());  // both have a level, and '#' keeps the other's (or its parent)
  // A filter starting with a wildcard matches no '$' topic, so neither does the meet.
  bool dollar = !is_wildcard(out->front()) && out->front().starts_with('$');
  if (dollar && (is_wildcard(a.front()) || is_wildcard(b.front()))) return false;
  return true;
}

// Every topic `inner` matches is matched by `outer`.
bool contained(const std::vector<std::string_view>& inner, const std::vector<std::string_view>& outer) {
  bool inner_dollar = !is_wildcard(inner.front()) && inner.front().starts_with('$');
  if (inner_dollar && is_wildcard(outer.front())) return false;
  size_t i = 0, j = 0;
  for (;;) {
    if (j < outer.size() && outer[j] == "#") return true;
    if (i == inner.size()) return j == outer.size();
    if (j == outer.size()) return false;
    if (inner[i] == "#") return false;
    if (outer[j] != "+" && (inner[i] == "+" || inner[i] != outer[j])) return false;
    ++i;
    ++j;
  }
}

}  // namespace

bool acl_filter_matches(std::string_view filter, std::string_view topic) {
  // One pass over both strings, character by character (as mosquitto_topic_matches_sub): no
  // level splitting, and most rules fail on their first character. `filter` is valid, so a
  // '+' or '#' always starts a level and '#' is the last one.
  const size_t filter_size = filter.size();
  const size_t topic_size = topic.size();
  if (filter_size == 0 || topic_size == 0) return false;
  if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#')) return false;
  size_t f = 0, t = 0;
  while (f < filter_size) {
    char c = filter[f];
    if (c == '#') return true;  // the rest of the topic, none included ("a/#" matches "a/")
    if (c != '+') {
      if (t < topic_size && topic[t] == c) {
        ++f;
        ++t;
        continue;
      }
      // The topic ended where the filter goes on with "/#": '#' also matches the parent level.
      return t == topic_size && c == '/' && f + 2 == filter_size && filter[f + 1] == '#';
    }
    while (t < topic_size && topic[t] != '/') ++t;  // '+': one level, possibly empty
    ++f;
    if (f == filter_size) return t == topic_size;
    // filter[f] is '/': the topic must go on to another level too, unless only "/#" is left.
    if (t == topic_size) return f + 2 == filter_size && filter[f + 1] == '#';
    ++f;
    ++t;
  }
  return t == topic_size;
}

void AclFile::add_rule(RuleList* list, Rule rule) {
  // Mosquitto puts deny rules at the front of the list, so they are checked first.
  if (rule.access == 0) {
    list->rules.insert(list->rules.begin() + static_cast<ptrdiff_t>(list->deny_count), std::move(rule));
    ++list->deny_count;
  } else {
    list->rules.push_back(std::move(rule));
  }
}

bool AclFile::add_line(std::string_view line, size_t line_number, std::optional<std::string>* user,
                       std::string* error) {
  auto fail = [&](std::string_view why) {
    *error = absl::StrFormat("%s:%u: %s", path_, line_number, why);
    return false;
  };
  // As aclfile__parse: trailing blanks (isspace) go; a line whose very first character is '#'
  // is a comment; words are split on spaces only, so a tab-indented line or an indented '#'
  // is an invalid line, as in Mosquitto.
  while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
  if (line.empty() || line.front() == '#') return true;
  std::string_view rest = line;
  std::string_view keyword;
  if (!next_word(&rest, &keyword)) return true;  // only spaces
  if (keyword == "topic" || keyword == "pattern") {
    std::string_view access_word;
    if (!next_word(&rest, &access_word)) return fail(absl::StrFormat("empty topic in '%s' line", keyword));
    std::string_view topic;
    uint8_t access = kAccessRead | kAccessWrite;
    if (rest.empty()) {
      // One word: it is the topic, with read and write access ("topic read" is the topic "read").
      topic = access_word;
    } else {
      topic = trim_blanks(rest);
      if (access_word == "read") {
        access = kAccessRead;
      } else if (access_word == "write") {
        access = kAccessWrite;
      } else if (access_word == "readwrite") {
        access = kAccessRead | kAccessWrite;
      } else if (access_word == "deny") {
        access = 0;
      } else {
        return fail(absl::StrFormat("invalid access type '%s' (read, write, readwrite or deny)", access_word));
      }
    }
    std::string why;
    if (topic.empty()) return fail("empty topic");
    if (!valid_acl_filter(topic, &why)) return fail(absl::StrFormat("invalid topic '%s': it %s", topic, why));
    if (rule_count_ >= limits_rules_max_) {
      return fail(absl::StrFormat("more than %u rules (the ACL file limit)", limits_rules_max_));
    }
    ++rule_count_;
    Rule rule{std::string(topic), access, false, false};
    if (keyword == "pattern") {
      rule.has_username = topic.find("%u") != std::string_view::npos;
      rule.has_client_id = topic.find("%c") != std::string_view::npos;
      if (!rule.has_username && !rule.has_client_id) {
        warnings_.push_back(absl::StrFormat("%s:%u: pattern '%s' contains neither %%c nor %%u", path_, line_number,
                                            topic));
      }
      has_patterns_ = true;
      add_rule(&patterns_, std::move(rule));
    } else if (user->has_value()) {
      add_rule(&users_[**user], std::move(rule));
    } else {
      add_rule(&anonymous_, std::move(rule));
    }
    return true;
  }
  if (keyword == "user") {
    std::string_view name = trim_blanks(rest);
    if (name.empty()) return fail("missing username after 'user'");
    *user = std::string(name);
    return true;
  }
  return fail(absl::StrFormat("invalid line starting '%s' (topic, pattern, user or a '#' comment)", keyword));
}

std::shared_ptr<const AclFile> AclFile::parse(std::string_view text, std::string_view path, std::string* error,
                                              const AclFileLimits& limits) {
  COREMQ_ASSERT(error != nullptr);
  if (text.size() > limits.file_bytes_max) {
    *error = absl::StrFormat("%s: larger than %u bytes (the ACL file limit)", path, limits.file_bytes_max);
    return nullptr;
  }
  std::shared_ptr<AclFile> file(new AclFile());
  file->path_ = std::string(path);
  file->limits_rules_max_ = limits.rules_max;
  std::optional<std::string> user;
  size_t line_number = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t newline = text.find('\n', start);
    size_t end = newline == std::string_view::npos ? text.size() : newline;
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (line.size() > limits.line_bytes_max) {
      *error = absl::StrFormat("%s:%u: line longer than %u bytes", path, line_number, limits.line_bytes_max);
      return nullptr;
    }
    // Mosquitto reads lines as C strings, so a NUL would silently cut a rule short.
    if (line.find('\0') != std::string_view::npos) {
      *error = absl::StrFormat("%s:%u: NUL byte in line", path, line_number);
      return nullptr;
    }
    if (!file->add_line(line, line_number, &user, error)) return nullptr;
  }
  return file;
}

std::shared_ptr<const AclFile> load_acl_file(const std::string& path, std::string* error,
                                             const AclFileLimits& limits) {
  COREMQ_ASSERT(error != nullptr);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = absl::StrFormat("%s: cannot open: %s", path, std::strerror(errno));
    return nullptr;
  }
  struct stat status {};
  if (::fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
    ::close(fd);
    *error = absl::StrFormat("%s: not a regular file", path);
    return nullptr;
  }
  if (static_cast<uint64_t>(status.st_size) > limits.file_bytes_max) {
    ::close(fd);
    *error = absl::StrFormat("%s: larger than %u bytes (the ACL file limit)", path, limits.file_bytes_max);
    return nullptr;
  }
  std::string text;
  char buffer[65536];
  for (;;) {
    ssize_t got = ::read(fd, buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      *error = absl::StrFormat("%s: read failed: %s", path, std::strerror(errno));
      ::close(fd);
      return nullptr;
    }
    if (got == 0) break;
    text.append(buffer, static_cast<size_t>(got));
    if (text.size() > limits.file_bytes_max) {  // grew while being read
      ::close(fd);
      *error = absl::StrFormat("%s: larger than %u bytes (the ACL file limit)", path, limits.file_bytes_max);
      return nullptr;
    }
  }
  ::close(fd);
  return AclFile::parse(text, path, error, limits);
}

CompiledAcl AclFile::compile(std::optional<std::string_view> username, std::string_view client_id) const {
  CompiledAcl compiled;
  compiled.file_ = shared_from_this();
  // A zero-length username is no username to Mosquitto: the anonymous rules apply. (Plain
  // bool and view from here: GCC 12 sees optional<string_view> as maybe-uninitialized.)
  const bool has_name = username.has_value() && !username->empty();
  const std::string_view name = has_name ? *username : std::string_view();
  const RuleList* own = &anonymous_;
  if (has_name) {
    auto found = users_.find(name);
    own = found == users_.end() ? nullptr : &found->second;
  }
  // CVE-2017-7650: a '+' or '#' in a name substituted into a pattern would widen it, so
  // Mosquitto refuses at the pattern stage outright (the user's own topic rules still apply).
  compiled.patterns_refused_ =
      has_patterns_ && ((has_name && has_wildcard_character(name)) || has_wildcard_character(client_id));
  auto applies = [&](const Rule& rule) { return !compiled.patterns_refused_ && (!rule.has_username || has_name); };
  size_t pattern_count = 0;
  for (const Rule& rule : patterns_.rules) pattern_count += applies(rule);
  // Exact sizes: a fleet holds one of these per session.
  auto& rules = compiled.rules_;
  rules.reserve((own != nullptr ? own->rules.size() : 0) + pattern_count);
  if (own != nullptr) {
    for (const Rule& rule : own->rules) rules.push_back(CompiledAcl::Rule{rule.filter, rule.access});
    compiled.user_denies_end_ = static_cast<uint32_t>(own->deny_count);
  }
  compiled.user_end_ = static_cast<uint32_t>(rules.size());
  compiled.pattern_denies_end_ = compiled.user_end_;

  // Substituted filters go into one heap block (one allocation per session), which the views
  // point into: made once it is complete, and kept by a unique_ptr, so moving the CompiledAcl
  // moves no character (a std::string would, for short texts). Patterns are already deny-first.
  std::string buffer;
  std::vector<std::pair<size_t, size_t>> spans;  // (offset, size) in buffer; offset npos: as written
  for (const Rule& rule : patterns_.rules) {
    if (!applies(rule)) continue;
    if (!rule.has_username && !rule.has_client_id) {
      spans.emplace_back(std::string::npos, 0);
      continue;
    }
    // Mosquitto substitutes "%c" and "%u" wherever they are, not only as a whole level.
    size_t offset = buffer.size();
    const std::string& filter = rule.filter;
    for (size_t i = 0; i < filter.size(); ++i) {
      if (i + 1 < filter.size() && filter[i] == '%') {
        if (filter[i + 1] == 'c') {
          buffer.append(client_id);
          ++i;
          continue;
        }
        if (filter[i + 1] == 'u' && has_name) {
          buffer.append(name);
          ++i;
          continue;
        }
      }
      buffer.push_back(filter[i]);
    }
    spans.emplace_back(offset, buffer.size() - offset);
  }
  if (!buffer.empty()) {
    compiled.substituted_ = std::make_unique<char[]>(buffer.size());
    std::memcpy(compiled.substituted_.get(), buffer.data(), buffer.size());
  }
  const std::string_view block(compiled.substituted_.get(), buffer.size());
  size_t next = 0;
  for (const Rule& rule : patterns_.rules) {
    if (!applies(rule)) continue;
    auto [offset, size] = spans[next++];
    std::string_view filter = offset == std::string::npos ? std::string_view(rule.filter)
                                                          : block.substr(offset, size);
    rules.push_back(CompiledAcl::Rule{filter, rule.access});
    if (rule.access == 0) compiled.pattern_denies_end_ = static_cast<uint32_t>(rules.size());
  }
  COREMQ_ASSERT(next == spans.size() && rules.size() == (own != nullptr ? own->rules.size() : 0) + pattern_count);
  return compiled;
}

bool CompiledAcl::check(std::string_view topic, uint8_t access) const {
  if (file_ == nullptr) return true;  // no ACL file: everything allowed
  // acl__check_dollar runs before any rule: $SYS is the broker's to publish (but for a
  // bridge's connection state), and a topic starting "$share" is never a real topic.
  if (topic.starts_with("$SYS")) {
    if (access == kAccessWrite && !acl_filter_matches("$SYS/broker/connection/+/state", topic)) return false;
  } else if (topic.starts_with("$share")) {
    return false;
  }
  const Rule* rules = rules_.data();
  for (uint32_t i = 0; i < user_denies_end_; ++i) {
    if (acl_filter_matches(rules[i].filter, topic)) return false;
  }
  for (uint32_t i = user_denies_end_; i < user_end_; ++i) {
    if ((rules[i].access & access) != 0 && acl_filter_matches(rules[i].filter, topic)) return true;
  }
  if (patterns_refused_) return false;
  for (uint32_t i = user_end_; i < pattern_denies_end_; ++i) {
    if (acl_filter_matches(rules[i].filter, topic)) return false;
  }
  for (uint32_t i = pattern_denies_end_; i < rules_.size(); ++i) {
    if ((rules[i].access & access) != 0 && acl_filter_matches(rules[i].filter, topic)) return true;
  }
  return false;
}

bool CompiledAcl::can_subscribe(std::string_view filter, bool* over_budget) const {
  if (file_ == nullptr) return true;
  if (filter.empty()) return false;
  std::vector<std::string_view> wanted = split_levels(filter);
  std::vector<std::string_view> meet;
  // Grants times denies can be large for a user with many rules, and a SUBSCRIBE may carry
  // thousands of filters: past this many comparisons the filter is granted (delivery checks
  // still refuse each message), so the shard never spends long on one SUBSCRIBE.
  uint32_t budget = kSubscribeCheckBudget;
  // Some topic of `filter` is readable when it is in a read grant and, for all we can tell
  // cheaply, not refused: the meet of the filter and the grant is not wholly inside one deny
  // that comes before the grant. A meet covered only by several denies together is let
  // through (delivery checks still refuse each message), so this never refuses wrongly.
  auto readable_through = [&](uint32_t grants_begin, uint32_t grants_end, uint32_t denies_end,
                              bool include_pattern_denies) {
    for (uint32_t g = grants_begin; g < grants_end; ++g) {
      if ((rules_[g].access & kAccessRead) == 0) continue;
      if (budget == 0) {
        if (over_budget != nullptr) *over_budget = true;
        return true;
      }
      --budget;
      if (!intersect(wanted, split_levels(rules_[g].filter), &meet)) continue;
      // $SYS and $share topics follow their own rules (check()); let delivery decide.
      bool covered = false;
      auto covered_by = [&](uint32_t begin, uint32_t end) {
        for (uint32_t d = begin; d < end && !covered && budget > 0; ++d, --budget) {
          covered = contained(meet, split_levels(rules_[d].filter));
        }
      };
      covered_by(0, denies_end);
      if (include_pattern_denies) covered_by(user_end_, pattern_denies_end_);
      if (!covered) {
        // Also when the budget ran out before a covering deny was found.
        if (budget == 0 && over_budget != nullptr) *over_budget = true;
        return true;
      }
    }
    return false;
  };
  if (readable_through(user_denies_end_, user_end_, user_denies_end_, false)) return true;
  if (patterns_refused_) return false;
  return readable_through(pattern_denies_end_, static_cast<uint32_t>(rules_.size()), user_denies_end_, true);
}

}  // namespace coremq::auth
