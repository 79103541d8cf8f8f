// Mosquitto's options (mosquitto.conf(5), Mosquitto 2.0) and what each becomes in coremq: a flag
// setting, a listener's setting (listener sections, TLS and security options, through
// listener_spec.h's setter so the file and --listener take the same values), a warning that it is
// ignored, or an error. coremq's own flags are accepted in the same `name value` form. See
// config_file.h.
#include <algorithm>
#include <charconv>
#include <optional>
#include <string_view>

#include "absl/strings/str_format.h"
#include "config/config_file.h"
#include "config/bridge_spec.h"
#include "config/listener_spec.h"

namespace coremq::config {

namespace {

enum class Kind {
  kFlag,            // one value for the flag named in `flag`, checked against the catalog
  kFlagIfPresent,   // as kFlag when the binary has that flag; otherwise ignored with `why`
  kPort,            // the default listener's port
  kBindAddress,     // the default listener's address
  kListener,        // `listener PORT [ADDRESS]`: a listener section
  kMaxConnections,  // -1 (any negative) = no limit
  kMaxInflight,     // 0 (or negative, or 65535) = no limit
  kMaxQueued,       // 0 (or negative) = no limit
  kLogType,
  kLogDest,
  kIncludeDir,
  kConnection,    // `connection NAME`: a bridge section
  kBridgeOption,  // valid only inside a bridge section
  kTrueOnly,      // matches coremq when true; false is ignored with `why`
  kFalseOnly,     // matches coremq when false; true is ignored with `why`
  kProtocol,      // the listener's transport: mqtt or websockets
  kListenerOption,       // a TLS option of the current listener section; `flag` is its spec key
  kSecurityOption,       // allow_anonymous, password_file, acl_file: as per_listener_settings says
  kPerListenerSettings,  // whether the security options are per listener or global
  kIgnored,       // ignored with `why`
  kNotEnforced,   // restricts who may connect, or how: coremq cannot enforce it yet, so an error
  kPersistence,   // `persistence true|false`: --persistence=rocksdb|none
};

struct MosquittoOption {
  std::string_view name;
  Kind kind;
  std::string_view flag = {};
  std::string_view why = {};
};

constexpr std::string_view kTls = "coremq does not support this TLS option";
constexpr std::string_view kAuth =
    "authentication and access control are not supported yet: every client would be accepted";
constexpr std::string_view kPersistence =
    "coremq keeps its store in RocksDB under persistence_location (see docs/PERSISTENCE.md)";
constexpr std::string_view kLog = "coremq writes its own log format (--log-format text|json)";
constexpr std::string_view kListenerFeature = "coremq's listener has no such setting";

constexpr MosquittoOption kOptions[] = {
    {"port", Kind::kPort, "port"},
    {"bind_address", Kind::kBindAddress, "bind"},
    {"bind", Kind::kBindAddress, "bind"},  // coremq's own --bind opens the same one listener
    {"listener", Kind::kListener},
    {"max_connections", Kind::kMaxConnections, "max_connections"},
    {"max_inflight_messages", Kind::kMaxInflight, "max_inflight"},
    {"max_queued_messages", Kind::kMaxQueued, "max_queued_messages"},
    {"max_packet_size", Kind::kFlag, "max_packet_size"},
    {"max_keepalive", Kind::kFlag, "max_keepalive"},
    {"retain_available", Kind::kFlag, "retain_available"},
    {"max_qos", Kind::kFlag, "max_qos"},
    {"maximum_qos", Kind::kFlag, "max_qos"},
    {"max_topic_alias", Kind::kFlag, "topic_alias_maximum"},
    {"sys_interval", Kind::kFlag, "sys_interval"},
    {"log_type", Kind::kLogType, "log_level"},
    {"log_dest", Kind::kLogDest, "log_level"},
    {"include_dir", Kind::kIncludeDir},
    {"connection", Kind::kConnection},
    {"allow_anonymous", Kind::kSecurityOption, "allow_anonymous"},
    {"password_file", Kind::kSecurityOption, "password_file"},
    {"acl_file", Kind::kSecurityOption, "acl_file"},
    {"persistence", Kind::kPersistence, "persistence"},
    {"persistence_location", Kind::kFlag, "data_dir"},
    {"retained_persistence", Kind::kFalseOnly, {}, kPersistence},
    {"per_listener_settings", Kind::kPerListenerSettings},
    {"protocol", Kind::kProtocol},
    // TLS, per listener section (the listener has TLS once it has a certfile).
    {"cafile", Kind::kListenerOption, "cafile"},
    {"capath", Kind::kListenerOption, "capath"},
    {"certfile", Kind::kListenerOption, "certfile"},
    {"keyfile", Kind::kListenerOption, "keyfile"},
    {"ciphers", Kind::kListenerOption, "ciphers"},
    {"ciphers_tls1.3", Kind::kListenerOption, "ciphersuites"},
    {"crlfile", Kind::kListenerOption, "crlfile"},
    {"require_certificate", Kind::kListenerOption, "require_certificate"},
    {"tls_version", Kind::kListenerOption, "tls_version"},
    {"use_identity_as_username", Kind::kListenerOption, "use_identity_as_username"},
    {"use_subject_as_username", Kind::kListenerOption, "use_subject_as_username"},
    {"dhparamfile", Kind::kNotEnforced, {}, kTls},
    {"tls_engine", Kind::kNotEnforced, {}, kTls},
    {"tls_engine_kpass_sha1", Kind::kNotEnforced, {}, kTls},
    {"tls_keyform", Kind::kNotEnforced, {}, kTls},
    {"psk_hint", Kind::kNotEnforced, {}, kTls},
    {"psk_file", Kind::kNotEnforced, {}, kTls},
    // Authentication and access control.
    {"plugin", Kind::kNotEnforced, {}, kAuth},
    {"auth_plugin", Kind::kNotEnforced, {}, kAuth},
    {"global_plugin", Kind::kNotEnforced, {}, kAuth},
    {"plugin_load", Kind::kNotEnforced, {}, kAuth},
    {"plugin_use", Kind::kNotEnforced, {}, kAuth},
    {"auth_plugin_deny_special_chars", Kind::kIgnored, {}, kAuth},
    {"listener_allow_anonymous", Kind::kIgnored, {}, kAuth},
    {"listener_auto_id_prefix", Kind::kIgnored, {}, kAuth},
    {"allow_zero_length_clientid", Kind::kIgnored, {}, kAuth},
    {"auto_id_prefix", Kind::kIgnored, {}, kAuth},
    {"clientid_prefixes", Kind::kNotEnforced, {}, kAuth},
    {"check_retain_source", Kind::kIgnored, {}, kAuth},
    {"use_username_as_clientid", Kind::kIgnored, {}, kAuth},
    // Persistence.
    {"persistence_file", Kind::kIgnored, {}, kPersistence},
    {"autosave_interval", Kind::kIgnored, {}, kPersistence},
    {"autosave_on_changes", Kind::kIgnored, {}, kPersistence},
    {"persistent_client_expiration",
     Kind::kIgnored,
     {},
     "offline MQTT 3.1.1 sessions are kept until --max-sessions is reached"},
    // Logging.
    {"log_facility", Kind::kIgnored, {}, kLog},
    {"log_timestamp", Kind::kIgnored, {}, kLog},
    {"log_timestamp_format", Kind::kIgnored, {}, kLog},
    {"connection_messages", Kind::kIgnored, {}, kLog},
    {"websockets_log_level", Kind::kIgnored, {}, kLog},
    // Listener features.
    {"bind_interface", Kind::kIgnored, {}, kListenerFeature},
    {"http_dir", Kind::kIgnored, {}, kListenerFeature},
    {"mount_point", Kind::kIgnored, {}, kListenerFeature},
    {"socket_domain", Kind::kIgnored, {}, kListenerFeature},
    {"websockets_headers_size", Kind::kIgnored, {}, kListenerFeature},
    // Everything else Mosquitto has.
    {"allow_duplicate_messages", Kind::kIgnored, {}, "coremq has no such setting"},
    {"max_inflight_bytes", Kind::kIgnored, {}, "use --max-inflight (messages) and --max-client-output-bytes"},
    {"max_queued_bytes", Kind::kIgnored, {}, "use --max-queued-messages and --max-client-output-bytes"},
    {"memory_limit", Kind::kIgnored, {}, "coremq bounds each queue and buffer instead (see its flags)"},
    {"message_size_limit",
     Kind::kIgnored,
     {},
     "coremq has no payload limit: max_packet_size bounds whole packets"},
    {"pid_file", Kind::kIgnored, {}, "coremq writes no pid file (systemd tracks it)"},
    {"queue_qos0_messages", Kind::kIgnored, {}, "coremq has no such setting"},
    {"retry_interval", Kind::kIgnored, {}, "Mosquitto 2 dropped it too"},
    {"set_tcp_nodelay", Kind::kIgnored, {}, "coremq has no such setting"},
    {"upgrade_outgoing_qos", Kind::kIgnored, {}, "coremq has no such setting"},
    {"user", Kind::kIgnored, {}, "coremq does not change user; run it as the user it should be"},
};

// Options that only mean something inside a bridge (`connection`) section.
constexpr std::string_view kBridgeOptions[] = {
    "address",
    "addresses",
    "bridge_alpn",
    "bridge_attempt_unsubscribe",
    "bridge_bind_address",
    "bridge_cafile",
    "bridge_capath",
    "bridge_certfile",
    "bridge_identity",
    "bridge_insecure",
    "bridge_keyfile",
    "bridge_max_inflight",
    "bridge_max_inflight_qos2",
    "bridge_max_packet_size",
    "bridge_max_queued_messages",
    "bridge_outgoing_retain",
    "bridge_protocol_version",
    "bridge_psk",
    "bridge_require_ocsp",
    "bridge_tls_version",
    "cleansession",
    "clientid",
    "idle_timeout",
    "keepalive_interval",
    "local_cleansession",
    "local_clientid",
    "local_password",
    "local_username",
    "notifications",
    "notifications_local_only",
    "notification_topic",
    "password",
    "remote_clientid",
    "remote_password",
    "remote_username",
    "restart_timeout",
    "round_robin",
    "start_type",
    "threshold",
    "topic",
    "try_private",
    "username",
};

const MosquittoOption* find_option(std::string_view name) {
  for (const MosquittoOption& option : kOptions) {
    if (option.name == name) return &option;
  }
  for (std::string_view bridge_option : kBridgeOptions) {
    if (bridge_option == name) {
      static constexpr MosquittoOption kBridge{"", Kind::kBridgeOption};
      return &kBridge;
    }
  }
  // Plugin options are named by the plugin.
  if (name.starts_with("auth_opt_") || name.starts_with("plugin_opt_")) {
    static constexpr MosquittoOption kPluginOption{"", Kind::kIgnored, {}, kAuth};
    return &kPluginOption;
  }
  return nullptr;
}

bool parse_int64(std::string_view text, int64_t* value) {
  auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return !text.empty() && status == std::errc() && end == text.data() + text.size();
}

// Mosquitto log types, as coremq's single threshold: the most verbose type given wins.
enum LogTypeBits : uint32_t { kLogDebug = 1, kLogInfo = 2, kLogWarning = 4, kLogError = 8 };

class Reader {
 public:
  Reader(const FlagCatalog& catalog, FileSource* files, ConfigResult* result)
      : catalog_(catalog), files_(files), result_(result) {}

  void read(std::string_view text, const std::string& file_name, int level) {
    result_->files.push_back(file_name);
    if (text.size() > kFileBytesMax) {
      error(file_name, absl::StrFormat("larger than %u bytes", kFileBytesMax));
      return;
    }
    for (const Directive& directive : parse_lines(text, file_name, &result_->diagnostics)) {
      handle(directive, level);
    }
  }

  void finish() {
    if (default_listener_where_.empty() && result_->listeners.empty()) {
      // Mosquitto 2: a config without listener, port or bind_address listens on loopback only,
      // which is --bind's default.
      result_->local_only = true;
    } else if (!bind_address_seen_ && !default_listener_where_.empty()) {
      // `port` alone: Mosquitto's default listener takes every interface.
      set_checked("bind", "*", default_listener_where_, "port (no bind_address: every interface)");
    }
    result_->default_listener_opened = result_->local_only || !default_listener_where_.empty();
    if (!per_listener_settings_) {
      // Mosquitto's default: the security options apply to every listener, wherever written.
      apply_security(global_security_, &result_->default_listener);
      for (ConfigListener& listener : result_->listeners) apply_security(global_security_, &listener.options);
    }
    if (!result_->local_only) {
      // Mosquitto 2: allow_anonymous defaults to false once the file defines a listener (true
      // only in local-only mode). coremq's own default would let anonymous clients in on a
      // loopback listener, or one with require_certificate: more open than the same file under
      // Mosquitto, so a file's listener without allow_anonymous refuses them.
      refuse_anonymous_by_default(&result_->default_listener);
      for (ConfigListener& listener : result_->listeners) refuse_anonymous_by_default(&listener.options);
    }
    if (result_->default_listener_opened) refuse_unchecked_usernames(&result_->default_listener);
    for (ConfigListener& listener : result_->listeners) refuse_unchecked_usernames(&listener.options);
    if (result_->default_listener_opened) {
      finish_listener(&result_->default_listener,
                      default_listener_where_.empty() ? first_default_option_where_ : default_listener_where_);
    } else if (!first_default_option_where_.empty() ||
               (per_listener_settings_ && !first_default_security_where_.empty())) {
      warn(first_default_option_where_.empty() ? first_default_security_where_ : first_default_option_where_,
           "listener options before the first `listener` line belong to the default listener, and there is none "
           "(no port or bind_address): ignored");
    }
    for (ConfigListener& listener : result_->listeners) finish_listener(&listener.options, listener.where);
    for (const ConfigBridge& bridge : result_->bridges) {
      std::string message;
      if (!check_bridge(bridge.options, &message)) error(bridge.where, message);
    }
  }

 private:
  void warn(const std::string& where, std::string message) {
    result_->diagnostics.push_back({Severity::kWarning, where, std::move(message)});
  }
  void error(const std::string& where, std::string message) {
    result_->diagnostics.push_back({Severity::kError, where, std::move(message)});
  }
  // A setting that restricts who may connect, or how (TLS, passwords, ACLs, no anonymous
  // clients): ignoring it would leave the broker more open than the file asks, which an
  // operator may not notice in a log. So coremq refuses to start instead.
  void refuse_unenforceable(const std::string& where, std::string_view setting, std::string_view why) {
    error(where, absl::StrFormat("%s cannot be enforced: %s; refusing to start rather than run more open than "
                                 "this file asks (remove the line to run without it)",
                                 setting, why));
  }

  // Adds flag=value after checking it; `written` is the line as the user wrote it, for errors.
  void set_checked(const std::string& flag, const std::string& value, const std::string& where,
                   const std::string& written) {
    std::string canonical;
    std::string message;
    if (!check_flag_value(catalog_, flag, value, &canonical, &message)) {
      error(where, absl::StrFormat("%s: %s", written, message));
      return;
    }
    result_->settings.push_back({flag, canonical, where});
  }

  // The one value of a numeric or boolean option; false (with an error) when there is not one.
  bool single_word(const Directive& directive) {
    if (directive.words.size() == 1) return true;
    error(directive.where, directive.words.empty() ? absl::StrFormat("%s needs a value", directive.name)
                                                   : absl::StrFormat("%s takes one value, not '%s'",
                                                                     directive.name, directive.value));
    return false;
  }

  // The security options as written: per listener section, and globally (the last of each).
  struct Security {
    std::optional<ListenerOptions::Anonymous> allow_anonymous;
    std::optional<std::string> password_file;
    std::optional<std::string> acl_file;
  };
  static void apply_security(const Security& security, ListenerOptions* listener) {
    if (security.allow_anonymous) listener->allow_anonymous = *security.allow_anonymous;
    if (security.password_file) listener->password_file = *security.password_file;
    if (security.acl_file) listener->acl_file = *security.acl_file;
  }

  static void refuse_anonymous_by_default(ListenerOptions* listener) {
    if (listener->allow_anonymous == ListenerOptions::Anonymous::kDefault) {
      listener->allow_anonymous = ListenerOptions::Anonymous::kDeny;
    }
  }

  // Mosquitto 2 checks a username only against the password file (or a plugin); with neither,
  // allow_anonymous decides for every client, with or without a username. So a listener of the
  // file that refuses anonymous clients and has no password file refuses the others too, but
  // for usernames its certificates give (the broker says so at start, src/shard/broker.cc).
  static void refuse_unchecked_usernames(ListenerOptions* listener) {
    if (listener->allow_anonymous != ListenerOptions::Anonymous::kDeny || !listener->password_file.empty())
      return;
    listener->refuse_unchecked_usernames = true;
  }

  // A listener is TLS once it has a certificate or key, as in Mosquitto; then its options must
  // make sense together.
  void finish_listener(ListenerOptions* listener, const std::string& where) {
    listener->tls = !listener->tls_options.certfile.empty() || !listener->tls_options.keyfile.empty();
    std::string message;
    if (!check_listener(*listener, &message)) error(where, absl::StrFormat("listener: %s", message));
  }

  // The listener section the options being read belong to: the default listener's before the
  // first `listener` line.
  ListenerOptions* section(const std::string& where) {
    if (result_->listeners.empty()) {
      if (first_default_option_where_.empty()) first_default_option_where_ = where;
      return &result_->default_listener;
    }
    return &result_->listeners.back().options;
  }

  // `port` or `bind_address` (or coremq's `bind`): Mosquitto's default listener.
  void open_default_listener(const std::string& where) {
    if (default_listener_where_.empty()) default_listener_where_ = where;
  }

  void listener_option(const Directive& directive, const MosquittoOption& option) {
    std::string_view key = option.flag;
    // Paths take the rest of the line; booleans and versions one word.
    bool is_path = key != "require_certificate" && key != "use_identity_as_username" &&
                   key != "use_subject_as_username" && key != "tls_version" && key != "allow_anonymous";
    if (!is_path && !single_word(directive)) return;
    std::string value = is_path ? directive.value : directive.words[0];
    std::string message;
    if (!set_listener_option(key, value, section(directive.where), &message)) {
      error(directive.where, absl::StrFormat("%s %s: %s", directive.name, directive.value, message));
    }
  }

  void security_option(const Directive& directive, const MosquittoOption& option) {
    std::string_view key = option.flag;
    bool is_path = key != "allow_anonymous";
    if (!is_path && !single_word(directive)) return;
    std::string value = is_path ? directive.value : directive.words[0];
    ListenerOptions parsed;
    std::string message;
    if (!set_listener_option(key, value, &parsed, &message)) {
      error(directive.where, absl::StrFormat("%s %s: %s", directive.name, directive.value, message));
      return;
    }
    Security* own = result_->listeners.empty() ? &default_security_ : &section_security_;
    if (result_->listeners.empty() && first_default_security_where_.empty()) {
      first_default_security_where_ = directive.where;
    }
    for (Security* security : {own, &global_security_}) {
      if (key == "allow_anonymous") security->allow_anonymous = parsed.allow_anonymous;
      if (key == "password_file") security->password_file = parsed.password_file;
      if (key == "acl_file") security->acl_file = parsed.acl_file;
    }
    // Per listener: in force at once in its section (global_security_ replaces it at finish
    // when per_listener_settings is false).
    apply_security(*own, result_->listeners.empty() ? &result_->default_listener
                                                    : &result_->listeners.back().options);
  }

  void handle(const Directive& directive, int level) {
    std::string name = directive.name;
    std::replace(name.begin(), name.end(), '-', '_');
    const MosquittoOption* option = find_option(name);
    if (option == nullptr) {
      if (name != "config" && catalog_.contains(name)) {
        coremq_flag(directive, name);
      } else {
        error(directive.where, absl::StrFormat("unknown option '%s'", directive.name));
      }
      return;
    }
    if (option->kind != Kind::kBridgeOption && option->kind != Kind::kConnection && directive.value.empty()) {
      error(directive.where, absl::StrFormat("%s needs a value", directive.name));
      return;
    }
    mosquitto_option(directive, *option, level);
  }

  // The option's name with '-' written as '_' (the spelling find_option looked up).
  static std::string name_of(const Directive& directive) {
    std::string name = directive.name;
    std::replace(name.begin(), name.end(), '-', '_');
    return name;
  }

  void coremq_flag(const Directive& directive, const std::string& flag) {
    const FlagSpec& spec = catalog_.find(flag)->second;
    if (spec.type == FlagType::kString) {
      set_checked(flag, directive.value, directive.where, directive.name + " " + directive.value);
    } else if (single_word(directive)) {
      set_checked(flag, directive.words[0], directive.where, directive.name + " " + directive.value);
    }
  }

  void mosquitto_option(const Directive& directive, const MosquittoOption& option, int level) {
    const std::string& where = directive.where;
    const std::string written = directive.name + (directive.value.empty() ? "" : " " + directive.value);
    const std::string flag(option.flag);
    switch (option.kind) {
      case Kind::kFlag:
        if (single_word(directive)) set_checked(flag, directive.words[0], where, written);
        return;
      case Kind::kFlagIfPresent:
        if (!catalog_.contains(flag)) {
          warn(where,
               absl::StrFormat("%s is not supported yet and is ignored: %s", directive.name, option.why));
        } else if (single_word(directive)) {
          set_checked(flag, directive.words[0], where, written);
        }
        return;
      case Kind::kPort:
        if (!single_word(directive)) return;
        if (default_listener_port_seen_) {
          warn(where, "port given more than once: the last one is used (as in Mosquitto)");
        }
        default_listener_port_seen_ = true;
        open_default_listener(where);
        set_checked(flag, directive.words[0], where, written);
        return;
      case Kind::kBindAddress:
        if (!single_word(directive)) return;
        open_default_listener(where);
        bind_address_seen_ = true;
        address(flag, directive.words[0], where, written);
        return;
      case Kind::kListener:
        listener(directive, written);
        return;
      case Kind::kMaxConnections:
      case Kind::kMaxInflight:
      case Kind::kMaxQueued:
        unlimited_number(directive, option.kind, flag, written);
        return;
      case Kind::kLogType:
        log_type(directive, written);
        return;
      case Kind::kLogDest:
        log_dest(directive, written);
        return;
      case Kind::kIncludeDir:
        include_dir(directive, level);
        return;
      case Kind::kConnection:
        if (directive.words.size() != 1) {
          error(where, "connection needs one bridge name");
          return;
        }
        in_bridge_ = true;
        for (const ConfigBridge& bridge : result_->bridges) {
          if (bridge.options.name == directive.words[0]) {
            error(where, absl::StrFormat("bridge '%s' is defined twice (first at %s)", directive.words[0],
                                         bridge.where));
          }
        }
        result_->bridges.push_back(ConfigBridge{BridgeOptions{}, where});
        result_->bridges.back().options.name = directive.words[0];
        return;
      case Kind::kBridgeOption: {
        if (!in_bridge_) {
          error(where, absl::StrFormat("%s is a bridge option: it belongs after a `connection` line",
                                       directive.name));
          return;
        }
        std::string message;
        switch (set_bridge_option(name_of(directive), directive.words, &result_->bridges.back().options,
                                  &message)) {
          case BridgeOptionStatus::kSet:
            break;
          case BridgeOptionStatus::kUnsupported:
            warn(where, message);
            break;
          case BridgeOptionStatus::kError:
          case BridgeOptionStatus::kUnknown:
            error(where, message);
            break;
        }
        return;
      }
      case Kind::kTrueOnly:
      case Kind::kFalseOnly:
        boolean_option(directive, option);
        return;
      case Kind::kPersistence: {
        if (!single_word(directive)) return;
        const std::string& word = directive.words[0];
        if (word != "true" && word != "false" && word != "1" && word != "0") {
          error(where, absl::StrFormat("%s must be true or false, not '%s'", directive.name, word));
          return;
        }
        set_checked(flag, word == "true" || word == "1" ? "rocksdb" : "none", where, written);
        return;
      }
      case Kind::kPerListenerSettings: {
        if (!single_word(directive)) return;
        const std::string& word = directive.words[0];
        if (word != "true" && word != "false" && word != "1" && word != "0") {
          error(where, absl::StrFormat("%s must be true or false, not '%s'", directive.name, word));
          return;
        }
        per_listener_settings_ = word == "true" || word == "1";
        return;
      }
      case Kind::kListenerOption:
        listener_option(directive, option);
        return;
      case Kind::kSecurityOption:
        security_option(directive, option);
        return;
      case Kind::kProtocol:
        if (!single_word(directive)) return;
        if (directive.words[0] == "websockets") {
          section(where)->transport = ListenerOptions::Transport::kWebSockets;
        } else if (directive.words[0] == "mqtt") {
          section(where)->transport = ListenerOptions::Transport::kMqtt;
        } else {
          error(where, absl::StrFormat("protocol must be mqtt or websockets, not '%s'", directive.words[0]));
        }
        return;
      case Kind::kIgnored:
        warn(where,
             absl::StrFormat("%s is not supported yet and is ignored: %s", directive.name, option.why));
        return;
      case Kind::kNotEnforced:
        refuse_unenforceable(where, directive.name, option.why);
        return;
    }
  }

  void address(const std::string& flag, const std::string& value, const std::string& where,
               const std::string& written) {
    std::string normalized;
    std::string message;
    if (!parse_listener_address(value, /*bracketed_ipv6=*/false, &normalized, &message)) {
      error(where, absl::StrFormat("%s: %s", written, message));
      return;
    }
    set_checked(flag, normalized, where, written);
  }

  void listener(const Directive& directive, const std::string& written) {
    std::vector<std::string> words = directive.words;
    // As in Mosquitto, a '#' word after the port starts a comment.
    if (words.size() >= 2 && words[1].starts_with("#")) words.resize(1);
    int64_t port = 0;
    if (words.size() > 2 || !parse_int64(words[0], &port) || port < 0 || port > 65535) {
      error(directive.where,
            absl::StrFormat("%s: expected `listener PORT [ADDRESS]` with PORT in [1, 65535]", written));
      return;
    }
    if (port == 0) {
      error(directive.where,
            absl::StrFormat("%s: port 0 is a Unix socket listener in Mosquitto; coremq has none", written));
      return;
    }
    ConfigListener listener;
    listener.where = directive.where;
    listener.options.port = static_cast<uint16_t>(port);
    // No address: every interface (IPv4 and IPv6), as Mosquitto does.
    std::string message;
    if (words.size() == 2 &&
        !parse_listener_address(words[1], /*bracketed_ipv6=*/false, &listener.options.address, &message)) {
      error(directive.where, absl::StrFormat("%s: %s", written, message));
      return;
    }
    if (words.size() == 1) listener.options.address.assign(1, '*');  // GCC 12 -Wrestrict misfires on = "*"
    result_->listeners.push_back(std::move(listener));
    section_security_ = Security{};
  }

  void unlimited_number(const Directive& directive, Kind kind, const std::string& flag,
                        const std::string& written) {
    if (!single_word(directive)) return;
    int64_t value = 0;
    if (!parse_int64(directive.words[0], &value)) {
      error(directive.where, absl::StrFormat("%s: '%s' is not a number", written, directive.words[0]));
      return;
    }
    bool unlimited = kind == Kind::kMaxConnections
                         ? value < 0
                         : value <= 0 || (kind == Kind::kMaxInflight && value == 65535);
    auto spec = catalog_.find(flag);
    if (unlimited && spec != catalog_.end()) {
      // Mosquitto's "no limit" is the largest value coremq accepts for the flag.
      set_checked(flag, std::to_string(spec->second.high), directive.where, written);
    } else {
      set_checked(flag, directive.words[0], directive.where, written);
    }
  }

  void log_type(const Directive& directive, const std::string& written) {
    for (const std::string& type : directive.words) {
      if (type == "none") {
        log_types_ = 0;
        log_none_ = true;
      } else if (type == "all" || type == "debug") {
        log_types_ |= kLogDebug;
      } else if (type == "information" || type == "notice") {
        log_types_ |= kLogInfo;
      } else if (type == "warning") {
        log_types_ |= kLogWarning;
      } else if (type == "error") {
        log_types_ |= kLogError;
      } else if (type == "subscribe" || type == "unsubscribe" || type == "websockets" || type == "internal") {
        warn(directive.where, absl::StrFormat("log_type %s is ignored: coremq has no such log lines", type));
        continue;
      } else {
        error(directive.where, absl::StrFormat("%s: unknown log type '%s'", written, type));
        return;
      }
    }
    const char* level = (log_types_ & kLogDebug)     ? "debug"
                        : (log_types_ & kLogInfo)    ? "info"
                        : (log_types_ & kLogWarning) ? "warning"
                        : (log_types_ & kLogError)   ? "error"
                        : log_none_                  ? "none"
                                                     : nullptr;
    if (level != nullptr) set_checked("log_level", level, directive.where, written);
  }

  void log_dest(const Directive& directive, const std::string& written) {
    // Each log_dest line adds a destination, as in Mosquitto; together they become --log-dest.
    const std::string& destination = directive.words[0];
    std::string added;
    if (destination == "stderr" || destination == "syslog") {
      added = destination;
    } else if (destination == "none") {
      set_checked("log_level", "none", directive.where, written);
      return;
    } else if (destination == "file") {
      if (directive.words.size() < 2) {
        error(directive.where, "log_dest file needs a path");
        return;
      }
      // The rest of the line: a path may hold spaces.
      std::string_view path = std::string_view(directive.value).substr(4);
      while (!path.empty() && (path.front() == ' ' || path.front() == '\t')) path.remove_prefix(1);
      while (!path.empty() && (path.back() == ' ' || path.back() == '\t')) path.remove_suffix(1);
      added = "file:" + std::string(path);
    } else if (destination == "stdout" || destination == "topic" || destination == "dlt") {
      warn(directive.where,
           absl::StrFormat("log_dest %s is not supported and is ignored: coremq logs to stderr, a file or syslog",
                           destination));
      return;
    } else {
      error(directive.where, absl::StrFormat("%s: unknown log destination '%s'", written, destination));
      return;
    }
    if (!catalog_.contains("log_dest")) return;
    log_destinations_ += (log_destinations_.empty() ? "" : ",") + added;
    set_checked("log_dest", log_destinations_, directive.where, written);
  }

  void boolean_option(const Directive& directive, const MosquittoOption& option) {
    if (!single_word(directive)) return;
    bool value = false;
    const std::string& word = directive.words[0];
    if (word == "true" || word == "1") {
      value = true;
    } else if (word != "false" && word != "0") {
      error(directive.where, absl::StrFormat("%s must be true or false, not '%s'", directive.name, word));
      return;
    }
    if ((option.kind == Kind::kTrueOnly && !value) || (option.kind == Kind::kFalseOnly && value)) {
      warn(directive.where, absl::StrFormat("%s %s is not supported yet and is ignored: %s", directive.name,
                                            word, option.why));
    }
  }

  void include_dir(const Directive& directive, int level) {
    if (level > 0) {
      warn(directive.where, "include_dir is read only from the main config file (as in Mosquitto); ignored");
      return;
    }
    std::vector<std::string> names;
    std::string message;
    if (!files_->list_directory(directive.value, &names, &message)) {
      error(directive.where, absl::StrFormat("include_dir %s: %s", directive.value, message));
      return;
    }
    std::vector<std::string> paths = included_files(directive.value, std::move(names));
    if (paths.size() > kIncludedFilesMax) {
      error(directive.where,
            absl::StrFormat("include_dir %s: more than %u .conf files", directive.value, kIncludedFilesMax));
      return;
    }
    for (const std::string& path : paths) {
      std::string text;
      if (!files_->read_file(path, &text, &message)) {
        error(directive.where, absl::StrFormat("include_dir: cannot read %s: %s", path, message));
        continue;
      }
      read(text, path, level + 1);
    }
  }

  const FlagCatalog& catalog_;
  FileSource* files_;
  ConfigResult* result_;
  std::string default_listener_where_;      // the first port/bind_address line; empty: none
  std::string first_default_option_where_;  // the first listener option before any `listener` line
  std::string first_default_security_where_;  // the first security option there
  bool bind_address_seen_ = false;
  bool default_listener_port_seen_ = false;
  bool per_listener_settings_ = false;  // Mosquitto's default
  Security default_security_;  // written before the first `listener` line
  Security section_security_;  // written in the current `listener` section
  Security global_security_;   // the last of each, anywhere
  bool in_bridge_ = false;
  uint32_t log_types_ = 0;
  bool log_none_ = false;
  std::string log_destinations_;  // every log_dest so far, as --log-dest takes them
};

}  // namespace

ConfigResult read_config(std::string_view text, const std::string& file_name, const FlagCatalog& catalog,
                         FileSource* files) {
  ConfigResult result;
  Reader reader(catalog, files, &result);
  reader.read(text, file_name, 0);
  reader.finish();
  return result;
}

}  // namespace coremq::config
