// Mosquitto ACL files (mosquitto.conf(5) `acl_file`), read exactly as Mosquitto 2.0 reads
// them, and the per-session form the broker checks on the publish path.
//
// An AclFile is parsed once (start-up or reload, on the main thread: load_acl_file reads the
// disk) and is immutable afterwards: every shard holds the same
// std::shared_ptr<const AclFile> in its ListenerSecurity, and a reload swaps that pointer for
// new connections. At CONNECT the session's shard calls compile(username, client id), which
// picks the rules that apply to that client (its `user` section, or the anonymous section)
// and substitutes %u/%c in the `pattern` rules once, so a check walks a short list of plain
// filters and touches no shared map. A CompiledAcl belongs to one session on one shard.
//
// The decision, as mosquitto 2.0.11 makes it (src/security_default.c), checked against the
// real broker by tests/integration/test_21_acl.py:
//   1. `$SYS...` topics cannot be published (only `$SYS/broker/connection/+/state`), and
//      `$share...` topics can be neither published nor received, whatever the file says.
//   2. The client's `topic` rules: any matching `deny` refuses; else any matching rule with
//      the access asked for allows.
//   3. If the file has `pattern` rules and the username or client id contains '+' or '#',
//      refused (such a name could widen a pattern). Otherwise the patterns, %c and %u
//      substituted anywhere in the text ('/' in a name is substituted as is): a matching
//      `deny` refuses, a matching rule with the access allows. A pattern with %u does not
//      apply to a client without a username.
//   4. Otherwise refused. So a file with no rule for a client refuses it everything.
// A username of zero length counts as none (Mosquitto treats it so). Mosquitto 2.0 grants
// every SUBSCRIBE and filters on delivery only; coremq also refuses, at SUBSCRIBE, a filter
// through which nothing could ever be read (can_subscribe), and filters on delivery exactly
// as Mosquitto does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/string_map.h"

namespace coremq::auth {

// Access bits of a rule; a `deny` rule has none.
inline constexpr uint8_t kAccessRead = 1;
inline constexpr uint8_t kAccessWrite = 2;

// Bounds on what load_acl_file and AclFile::parse accept; past one the file is refused with
// an error naming it (start-up fails, a reload keeps the old file).
struct AclFileLimits {
  size_t file_bytes_max = 64 * 1024 * 1024;
  size_t rules_max = 1000000;
  // A rule's topic may be 65535 bytes (an MQTT string); the rest is the keyword and blanks.
  size_t line_bytes_max = 65535 + 1024;
};

class CompiledAcl;

class AclFile : public std::enable_shared_from_this<AclFile> {
 public:
  struct Rule {
    std::string filter;  // a valid topic filter; %c / %u still in it for patterns
    uint8_t access = 0;  // kAccessRead | kAccessWrite; 0 for deny
    bool has_username = false;   // pattern: contains %u (skipped for clients without one)
    bool has_client_id = false;  // pattern: contains %c
  };
  // The rules of one `user` section (or the anonymous one), deny rules first as Mosquitto
  // orders them.
  struct RuleList {
    std::vector<Rule> rules;
    size_t deny_count = 0;
  };

  // Parses the text of an ACL file; `path` only names it in errors ("PATH:LINE: reason").
  // Returns null with *error set on the first bad line, as Mosquitto refuses the whole file.
  static std::shared_ptr<const AclFile> parse(std::string_view text, std::string_view path, std::string* error,
                                              const AclFileLimits& limits = {});

  // The rules that apply to one client, with %u/%c substituted. `username` is the MQTT
  // username (or the identity a certificate gave); nullopt or empty for anonymous clients.
  CompiledAcl compile(std::optional<std::string_view> username, std::string_view client_id) const;

  // Notes worth a log line that do not make the file invalid (a pattern without %c or %u,
  // which Mosquitto warns about too), as "PATH:LINE: text".
  const std::vector<std::string>& warnings() const { return warnings_; }
  size_t rule_count() const { return rule_count_; }
  size_t user_count() const { return users_.size(); }
  const std::string& path() const { return path_; }

 private:
  AclFile() = default;
  bool add_line(std::string_view line, size_t line_number, std::optional<std::string>* user, std::string* error);
  static void add_rule(RuleList* list, Rule rule);

  std::string path_;
  RuleList anonymous_;  // rules before any `user` line
  base::StringMap<RuleList> users_;
  RuleList patterns_;
  bool has_patterns_ = false;
  size_t rule_count_ = 0;
  size_t limits_rules_max_ = 0;
  std::vector<std::string> warnings_;
};

// Reads and parses the file at `path`. Blocking file I/O: start-up or reload only, never on
// a shard thread. Null with *error set ("PATH: reason" or "PATH:LINE: reason") on failure.
std::shared_ptr<const AclFile> load_acl_file(const std::string& path, std::string* error,
                                             const AclFileLimits& limits = {});

// One session's view of an AclFile: the rules that apply to its client, as plain filters.
// Owned by the session (on its shard); keeps the file alive, since the user rules point into it.
class CompiledAcl {
 public:
  CompiledAcl() = default;

  // PUBLISH from the client (and its will, checked when the will is published).
  bool can_publish(std::string_view topic) const { return check(topic, kAccessWrite); }
  // A message on `topic` may be delivered to the client (live, queued or retained).
  bool can_receive(std::string_view topic) const { return check(topic, kAccessRead); }
  // A SUBSCRIBE filter (for `$share/{group}/{filter}`, give the filter part): false when no
  // topic the filter matches could ever be read, so the subscription would be useless.
  // Conservative: true whenever some readable topic may match; delivery checks decide the rest.
  // *over_budget (if given) is set when the answer is true only because the check stopped at
  // kSubscribeCheckBudget comparisons.
  bool can_subscribe(std::string_view filter, bool* over_budget = nullptr) const;
  // Filter comparisons can_subscribe makes at most for one filter; past them it grants.
  static constexpr uint32_t kSubscribeCheckBudget = 4096;

  size_t rule_count() const { return rules_.size(); }

 private:
  friend class AclFile;
  struct Rule {
    std::string_view filter;  // into file_'s rules or substituted_
    uint8_t access = 0;
  };
  bool check(std::string_view topic, uint8_t access) const;

  std::shared_ptr<const AclFile> file_;
  // The substituted pattern filters, one after the other (rules_ holds views into it; a heap
  // block so that moving this object leaves them in place).
  std::unique_ptr<char[]> substituted_;
  // In the order they are checked: user denies, user grants, pattern denies, pattern grants.
  std::vector<Rule> rules_;
  uint32_t user_denies_end_ = 0;
  uint32_t user_end_ = 0;
  uint32_t pattern_denies_end_ = 0;
  // The file has patterns and the username or client id contains '+' or '#': the pattern
  // stage refuses everything.
  bool patterns_refused_ = false;
};

// Filter matching as Mosquitto's mosquitto_topic_matches_sub and coremq's topic_matches
// agree on it: '+' one level, '#' any number including none, '$' topics only by filters
// whose first level is not a wildcard. Fast path for ACL checks (no allocation).
bool acl_filter_matches(std::string_view filter, std::string_view topic);

}  // namespace coremq::auth
