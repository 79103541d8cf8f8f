// The config file's lines, value checks, include_dir order and environment variables; the
// Mosquitto options themselves are in mosquitto_options.cc. See config_file.h.
#include "config/config_file.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "absl/strings/str_format.h"

namespace coremq::config {

namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  return text;
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_blank(text[i])) ++i;
    size_t start = i;
    while (i < text.size() && !is_blank(text[i])) ++i;
    if (i > start) words.emplace_back(text.substr(start, i - start));
  }
  return words;
}

std::string dashed(std::string_view flag) {
  std::string name(flag);
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

bool parse_bool(std::string_view text, bool* value) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // Mosquitto takes true/false/1/0; the flag parser also takes these.
  if (lower == "true" || lower == "1" || lower == "yes" || lower == "y" || lower == "t") {
    *value = true;
    return true;
  }
  if (lower == "false" || lower == "0" || lower == "no" || lower == "n" || lower == "f") {
    *value = false;
    return true;
  }
  return false;
}

}  // namespace

std::string format_diagnostic(const Diagnostic& diagnostic) {
  return absl::StrFormat("%s: %s: %s", diagnostic.where,
                         diagnostic.severity == Severity::kError ? "error" : "warning", diagnostic.message);
}

bool has_errors(const std::vector<Diagnostic>& diagnostics) {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

std::vector<Directive> parse_lines(std::string_view text, std::string_view file_name,
                                   std::vector<Diagnostic>* diagnostics) {
  std::vector<Directive> directives;
  uint32_t line_number = 0;
  size_t position = 0;
  while (position < text.size()) {
    size_t end = text.find('\n', position);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(position, end - position);
    position = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string where = absl::StrFormat("%s:%u", file_name, line_number);
    if (line.find('\0') != std::string_view::npos) {
      diagnostics->push_back({Severity::kError, where, "NUL byte in line"});
      continue;
    }
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    size_t name_end = 0;
    while (name_end < line.size() && !is_blank(line[name_end])) ++name_end;
    Directive directive;
    directive.where = std::move(where);
    directive.name = std::string(line.substr(0, name_end));
    directive.value = std::string(trim(line.substr(name_end)));
    directive.words = split_words(directive.value);
    directives.push_back(std::move(directive));
  }
  return directives;
}

bool check_flag_value(const FlagCatalog& catalog, std::string_view flag, std::string_view value,
                      std::string* canonical, std::string* error) {
  auto it = catalog.find(flag);
  if (it == catalog.end()) {
    *error = absl::StrFormat("no flag --%s", dashed(flag));
    return false;
  }
  const FlagSpec& spec = it->second;
  switch (spec.type) {
    case FlagType::kBool: {
      bool parsed = false;
      if (!parse_bool(value, &parsed)) {
        *error = absl::StrFormat("--%s: '%s' is not true or false", dashed(flag), value);
        return false;
      }
      *canonical = parsed ? "true" : "false";
      return true;
    }
    case FlagType::kUint32: {
      uint64_t parsed = 0;
      auto [end, status] = std::from_chars(value.data(), value.data() + value.size(), parsed);
      if (value.empty() || status != std::errc() || end != value.data() + value.size() ||
          parsed > std::numeric_limits<uint32_t>::max()) {
        *error = absl::StrFormat("--%s: '%s' is not a number in [0, 4294967295]", dashed(flag), value);
        return false;
      }
      if (parsed < spec.low || parsed > spec.high) {
        *error =
            absl::StrFormat("--%s=%u is out of range [%u, %u]", dashed(flag), parsed, spec.low, spec.high);
        return false;
      }
      *canonical = std::to_string(parsed);
      return true;
    }
    case FlagType::kString:
      *canonical = std::string(value);
      return true;
  }
  return false;
}

std::vector<std::string> included_files(const std::string& directory, std::vector<std::string> names) {
  const std::string_view suffix = ".conf";
  std::erase_if(names, [&](const std::string& name) {
    return name.size() <= suffix.size() ||
           std::string_view(name).substr(name.size() - suffix.size()) != suffix;
  });
  // Mosquitto's order: compare case-insensitively; at the first character that differs only in
  // case, the upper-case one goes first.
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    size_t i = 0;
    for (; i < a.size() && i < b.size(); ++i) {
      int upper_a = std::toupper(static_cast<unsigned char>(a[i]));
      int upper_b = std::toupper(static_cast<unsigned char>(b[i]));
      if (upper_a != upper_b) return upper_a < upper_b;
      if (a[i] != b[i]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[i]);
    }
    return a.size() < b.size();
  });
  for (std::string& name : names) name = directory + "/" + name;
  return names;
}

std::string environment_name(std::string_view flag) {
  std::string name = "COREMQ_";
  for (char c : flag) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

std::vector<Setting> settings_from_environment(const FlagCatalog& catalog,
                                               const std::function<const char*(const char*)>& getenv,
                                               std::vector<Diagnostic>* diagnostics) {
  std::vector<Setting> settings;
  for (const auto& [flag, spec] : catalog) {
    std::string variable = environment_name(flag);
    const char* value = getenv(variable.c_str());
    if (value == nullptr) continue;
    std::string canonical;
    std::string error;
    if (!check_flag_value(catalog, flag, value, &canonical, &error)) {
      diagnostics->push_back({Severity::kError, variable, error});
      continue;
    }
    settings.push_back({flag, canonical, variable});
  }
  return settings;
}

}  // namespace coremq::config
