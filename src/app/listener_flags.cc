// The binary's listeners; see listener_flags.h.
#include "app/listener_flags.h"

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "config/listener_spec.h"

ABSL_DECLARE_FLAG(std::string, listener);
ABSL_DECLARE_FLAG(std::string, bind);
ABSL_DECLARE_FLAG(bool, allow_anonymous);
ABSL_DECLARE_FLAG(std::string, password_file);

namespace coremq::app {

std::vector<std::string> listener_arguments(const std::vector<std::string>& arguments) {
  std::vector<std::string> specs;
  for (size_t i = 1; i < arguments.size(); ++i) {
    const std::string& argument = arguments[i];
    if (argument == "--") break;
    for (std::string_view prefix : {"--listener=", "-listener="}) {
      if (argument.starts_with(prefix)) specs.push_back(argument.substr(prefix.size()));
    }
    if ((argument == "--listener" || argument == "-listener") && i + 1 < arguments.size()) {
      specs.push_back(arguments[++i]);
    }
  }
  return specs;
}

namespace {

bool parse_specs(const std::vector<std::string>& specs, std::string_view origin, Options* options,
                 std::string* error) {
  for (const std::string& spec : specs) {
    ListenerOptions listener;
    std::string message;
    if (!config::parse_listener_spec(spec, &listener, &message)) {
      *error = absl::StrFormat("%s--listener=%s: %s", origin, spec, message);
      return false;
    }
    options->listeners.push_back(std::move(listener));
  }
  return true;
}

}  // namespace

bool listeners_from_flags(const std::vector<std::string>& command_line_specs, const FileListeners& file,
                          Options* options, std::string* error) {
  options->listeners.clear();
  bool allow_anonymous = absl::GetFlag(FLAGS_allow_anonymous);
  std::string password_file = absl::GetFlag(FLAGS_password_file);
  std::string from_environment = absl::GetFlag(FLAGS_listener);
  bool default_listener = false;
  if (!command_line_specs.empty()) {
    if (!parse_specs(command_line_specs, "", options, error)) return false;
  } else if (!from_environment.empty()) {
    // Only the environment (or a `listener` flag line absl saw) can have set it here.
    if (!parse_specs({from_environment}, "COREMQ_LISTENER: ", options, error)) return false;
  } else {
    default_listener = !file.read || file.default_listener_opened;
    if (default_listener) {
      ListenerOptions listener = file.default_listener;
      std::string message;
      if (!config::parse_listener_address(options->bind_address, /*bracketed_ipv6=*/false, &listener.address,
                                          &message)) {
        *error = absl::StrFormat("--bind=%s: %s", options->bind_address, message);
        return false;
      }
      listener.port = options->port;
      if (allow_anonymous) {
        listener.allow_anonymous = ListenerOptions::Anonymous::kAllow;
        listener.refuse_unchecked_usernames = false;  // the flag opens the listener the file closed
      }
      if (!options->acl_file.empty()) listener.acl_file = options->acl_file;
      if (!password_file.empty()) listener.password_file = password_file;
      options->listeners.push_back(std::move(listener));
    }
    for (const config::ConfigListener& listener : file.listeners)
      options->listeners.push_back(listener.options);
  }
  if ((!options->acl_file.empty() || !password_file.empty()) && !default_listener) {
    *error =
        "--acl-file and --password-file are for the listener --bind/--port make, and there is none here "
        "(--listener or the config file's listener sections give them): write acl_file=/password_file= in the "
        "--listener spec, or acl_file/password_file in the file";
    return false;
  }
  if (allow_anonymous && !default_listener) {
    *error =
        "--allow-anonymous opens the listener --bind/--port make, and there is none here (--listener or the "
        "config file's listener sections give them): write allow_anonymous=true in the --listener spec, or "
        "allow_anonymous true in the file";
    return false;
  }
  return true;
}

}  // namespace coremq::app
