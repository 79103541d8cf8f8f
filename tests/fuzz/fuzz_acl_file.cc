// libFuzzer target for the Mosquitto ACL file reader and the per-session decisions
// (src/auth/acl_file.h): any bytes as an ACL file, then compiled for a few identities and
// asked about topics and filters cut from the input.
//
// Input: the file's text, then optionally "\n%%\n" followed by lines: the first two are a
// username and a client id (an empty username line means anonymous), the rest are topics and
// filters to ask about.
//
// Checked on every input: no crash, sanitizer report or assertion; a refused file has an error
// that names the file ("acl:" prefix) and a line or the whole file; for an accepted file, the
// decisions are deterministic, can_subscribe never refuses a filter that matches one of the
// input's readable topics (its contract), and the fast matcher agrees with topic::topic_matches.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/acl_file.h"
#include "topic/topic.h"

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty() && lines.size() < 64) {
    size_t newline = text.find('\n');
    lines.push_back(text.substr(0, newline));
    if (newline == std::string_view::npos) break;
    text.remove_prefix(newline + 1);
  }
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view file_text = input;
  std::string_view questions;
  if (size_t split = input.find("\n%%\n"); split != std::string_view::npos) {
    file_text = input.substr(0, split);
    questions = input.substr(split + 4);
  }
  coremq::auth::AclFileLimits limits;
  limits.rules_max = 256;  // keeps each input's compiled lists small
  std::string error;
  auto file = coremq::auth::AclFile::parse(file_text, "acl", &error, limits);
  if (file == nullptr) {
    require(error.rfind("acl:", 0) == 0);
    return 0;
  }
  std::vector<std::string_view> lines = lines_of(questions);
  std::optional<std::string_view> username;
  std::string_view client_id = "client";
  if (!lines.empty() && !lines[0].empty()) username = lines[0];
  if (lines.size() > 1 && !lines[1].empty()) client_id = lines[1];
  std::vector<std::string_view> asked(lines.begin() + std::min<size_t>(2, lines.size()), lines.end());
  asked.push_back("a/b");
  asked.push_back("#");
  asked.push_back("$SYS/x");

  coremq::auth::CompiledAcl acl = file->compile(username, client_id);
  // Moved, as the broker moves it into the session: its rules must not point into the old one.
  auto first = std::make_unique<coremq::auth::CompiledAcl>(file->compile(username, client_id));
  coremq::auth::CompiledAcl again = std::move(*first);
  first.reset();
  std::vector<std::string_view> readable;
  for (std::string_view text : asked) {
    if (coremq::topic::is_valid_topic_name(text)) {
      bool receive = acl.can_receive(text);
      require(receive == again.can_receive(text));
      require(acl.can_publish(text) == again.can_publish(text));
      if (receive) readable.push_back(text);
    }
  }
  for (std::string_view text : asked) {
    if (!coremq::topic::is_valid_topic_filter(text)) continue;
    bool subscribe = acl.can_subscribe(text);
    for (std::string_view topic : readable) {
      bool matches = coremq::topic::topic_matches(text, topic);
      require(matches == coremq::auth::acl_filter_matches(text, topic));
      if (matches) require(subscribe);
    }
  }
  return 0;
}
