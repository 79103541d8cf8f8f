// The config file reader: syntax, every error and warning with its FILE:LINE, listener sections,
// include_dir order, Mosquitto's "no limit" values and the precedence of the environment over the
// file. Files live in memory (MemoryFiles); the catalog mimics the binary's flags.
#include "config/config_file.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "test_catalog.h"

namespace coremq::config {
namespace {

const FlagCatalog& test_catalog() { return testing::config_test_catalog(); }

class MemoryFiles final : public FileSource {
 public:
  std::map<std::string, std::vector<std::string>> directories;
  std::map<std::string, std::string> files;

  bool list_directory(const std::string& directory, std::vector<std::string>* names,
                      std::string* error) override {
    auto it = directories.find(directory);
    if (it == directories.end()) {
      *error = "No such file or directory";
      return false;
    }
    *names = it->second;
    return true;
  }
  bool read_file(const std::string& path, std::string* text, std::string* error) override {
    auto it = files.find(path);
    if (it == files.end()) {
      *error = "not a regular file";
      return false;
    }
    *text = it->second;
    return true;
  }
};

struct Read {
  ConfigResult result;
  // flag -> final value and where it came from (the last setting wins, as when applied in order).
  std::map<std::string, Setting> final_values() const {
    std::map<std::string, Setting> values;
    for (const Setting& setting : result.settings) values[setting.flag] = setting;
    return values;
  }
  std::vector<std::string> messages(Severity severity) const {
    std::vector<std::string> out;
    for (const Diagnostic& diagnostic : result.diagnostics) {
      if (diagnostic.severity == severity) out.push_back(format_diagnostic(diagnostic));
    }
    return out;
  }
};

Read read(const std::string& text, MemoryFiles* files = nullptr) {
  MemoryFiles empty;
  return Read{read_config(text, "main.conf", test_catalog(), files ? files : &empty)};
}

std::string value_of(const Read& r, const std::string& flag) {
  auto values = r.final_values();
  auto it = values.find(flag);
  return it == values.end() ? "<unset>" : it->second.value;
}

TEST(ConfigSyntax, CommentsBlankLinesAndWhitespace) {
  std::vector<Diagnostic> diagnostics;
  auto directives = parse_lines(
      "# comment\n\n   \t\n  max_connections   10  \r\n\t# indented comment\n"
      "response_information_prefix  a b  c \nlast 1",
      "f.conf", &diagnostics);
  EXPECT_TRUE(diagnostics.empty());
  ASSERT_EQ(directives.size(), 3u);
  EXPECT_EQ(directives[0].where, "f.conf:4");
  EXPECT_EQ(directives[0].name, "max_connections");
  EXPECT_EQ(directives[0].value, "10");
  EXPECT_EQ(directives[1].where, "f.conf:6");
  EXPECT_EQ(directives[1].value, "a b  c");
  EXPECT_EQ(directives[1].words, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(directives[2].where, "f.conf:7");
}

TEST(ConfigSyntax, NulByteIsAnErrorWithItsLine) {
  std::vector<Diagnostic> diagnostics;
  parse_lines(std::string("a 1\nb \0 2\n", 10), "f.conf", &diagnostics);
  ASSERT_EQ(diagnostics.size(), 1u);
  EXPECT_EQ(format_diagnostic(diagnostics[0]), "f.conf:2: error: NUL byte in line");
}

TEST(ConfigMapping, MosquittoOptionsBecomeFlags) {
  Read r = read(
      "listener 1884 127.0.0.1\nmax_inflight_messages 5\nmax_queued_messages 7\nmax_packet_size 4096\n"
      "max_keepalive 30\nretain_available false\nmax_connections 12\nmaximum_qos 1\nmax_topic_alias 3\n");
  EXPECT_TRUE(r.result.diagnostics.empty()) << r.messages(Severity::kError).size();
  ASSERT_EQ(r.result.listeners.size(), 1u);
  EXPECT_EQ(r.result.listeners[0].options.port, 1884);
  EXPECT_EQ(r.result.listeners[0].options.address, "127.0.0.1");
  EXPECT_FALSE(r.result.default_listener_opened);  // a `listener` line and no port/bind_address
  EXPECT_EQ(value_of(r, "max_inflight"), "5");
  EXPECT_EQ(value_of(r, "max_queued_messages"), "7");
  EXPECT_EQ(value_of(r, "max_packet_size"), "4096");
  EXPECT_EQ(value_of(r, "max_keepalive"), "30");
  EXPECT_EQ(value_of(r, "retain_available"), "false");
  EXPECT_EQ(value_of(r, "max_connections"), "12");
  EXPECT_EQ(value_of(r, "max_qos"), "1");
  EXPECT_EQ(value_of(r, "topic_alias_maximum"), "3");
  EXPECT_EQ(r.final_values()["max_keepalive"].where, "main.conf:5");
  EXPECT_FALSE(r.result.local_only);
}

TEST(ConfigMapping, PersistenceAndItsLocationBecomeTheStoreFlags) {
  Read r = read("persistence true\npersistence_location /var/lib/coremq\n");
  EXPECT_TRUE(r.result.diagnostics.empty());
  EXPECT_EQ(value_of(r, "persistence"), "rocksdb");
  EXPECT_EQ(value_of(r, "data_dir"), "/var/lib/coremq");
  EXPECT_EQ(value_of(read("persistence 0\n"), "persistence"), "none");
  Read bad = read("persistence maybe\n");
  ASSERT_EQ(bad.messages(Severity::kError).size(), 1u);
  EXPECT_EQ(bad.messages(Severity::kError)[0], "main.conf:1: error: persistence must be true or false, not 'maybe'");
}

TEST(ConfigMapping, MosquittoNoLimitValuesAreTheLargestCoremqTakes) {
  Read r = read("port 1883\nmax_connections -1\nmax_inflight_messages 0\nmax_queued_messages 0\n");
  EXPECT_TRUE(r.result.diagnostics.empty());
  EXPECT_EQ(value_of(r, "max_connections"), "50000000");
  EXPECT_EQ(value_of(r, "max_inflight"), "65535");
  EXPECT_EQ(value_of(r, "max_queued_messages"), "4294967295");
}

TEST(ConfigMapping, CoremqFlagsInEitherSpelling) {
  Read r = read(
      "port 1\nmax-topic-levels 100\nmax_topic_levels 90\npin-threads false\n"
      "response_information_prefix reply/to me\n");
  EXPECT_TRUE(r.result.diagnostics.empty());
  EXPECT_EQ(value_of(r, "max_topic_levels"), "90");  // the later line wins
  EXPECT_EQ(value_of(r, "pin_threads"), "false");
  EXPECT_EQ(value_of(r, "response_information_prefix"), "reply/to me");
}

TEST(ConfigErrors, EachNamesItsFileAndLine) {
  Read r = read(
      "port 1883\n"
      "bogus_option 1\n"               // 2: unknown
      "max_connections many\n"         // 3: not a number
      "max_inflight_messages 70000\n"  // 4: out of range
      "max_keepalive\n"                // 5: no value
      "max_packet_size 10 20\n"        // 6: two values
      "retain_available maybe\n"       // 7: not a bool
      "max-topic-levels 0\n"           // 8: out of range, coremq flag
      "topic a/b both 0\n"             // 9: bridge option outside a bridge
      "log_type loud\n"                // 10: unknown log type
      "log_dest carrier-pigeon\n"      // 11: unknown destination
      "allow_anonymous perhaps\n"      // 12: not a bool
      "bind_address example_com\n"     // 13: neither numeric nor a host name
      "config other.conf\n");          // 14: not settable from a file
  EXPECT_EQ(
      r.messages(Severity::kError),
      (std::vector<std::string>{
          "main.conf:2: error: unknown option 'bogus_option'",
          "main.conf:3: error: max_connections many: 'many' is not a number",
          "main.conf:4: error: max_inflight_messages 70000: --max-inflight=70000 is out of range [1, 65535]",
          "main.conf:5: error: max_keepalive needs a value",
          "main.conf:6: error: max_packet_size takes one value, not '10 20'",
          "main.conf:7: error: retain_available maybe: --retain-available: 'maybe' is not true or false",
          "main.conf:8: error: max-topic-levels 0: --max-topic-levels=0 is out of range [1, 65536]",
          "main.conf:9: error: topic is a bridge option: it belongs after a `connection` line",
          "main.conf:10: error: log_type loud: unknown log type 'loud'",
          "main.conf:11: error: log_dest carrier-pigeon: unknown log destination 'carrier-pigeon'",
          "main.conf:12: error: allow_anonymous perhaps: allow_anonymous: 'perhaps' is not true or false",
          "main.conf:13: error: bind_address example_com: 'example_com' is not an address: write a numeric IPv4 "
          "address, a numeric IPv6 address, a host name, `localhost` or nothing for loopback only (127.0.0.1 and "
          "::1), or `*` for every interface",
          "main.conf:14: error: unknown option 'config'",
      }));
}

TEST(ConfigWarnings, UnsupportedMosquittoOptionsAreIgnoredWithTheirLine) {
  Read r = read(
      "listener 1883\n"
      "autosave_interval 1800\n"                    // 2
      "persistence_file mosquitto.db\n"             // 3
      "log_dest file /var/log/mosquitto.log\n"      // 4
      "sys_interval 10\n"                           // 5
      "connection uplink\n"                         // 6: a bridge section, taken
      "round_robin true\n"                          // 7: a bridge option coremq ignores
      "topic # both 0\n"
      "address 10.0.0.1:1883\n"
      "log_type subscribe\n"    // 10
      "protocol websockets\n"   // 11: the listener's transport, no warning
      "allow_anonymous true\n"  // no warning
      "persistence false\n"
      "log_dest stderr\n"
      "per_listener_settings true\n"
      "protocol mqtt\n");
  EXPECT_TRUE(r.messages(Severity::kError).empty()) << r.messages(Severity::kError)[0];
  std::vector<std::string> warnings = r.messages(Severity::kWarning);
  std::vector<std::string> expected_prefixes = {
      "main.conf:2: warning: autosave_interval is not supported yet and is ignored",
      "main.conf:3: warning: persistence_file is not supported yet and is ignored",
      "main.conf:7: warning: round_robin is not supported and is ignored",
      "main.conf:10: warning: log_type subscribe is ignored",
  };
  ASSERT_EQ(warnings.size(), expected_prefixes.size());
  for (size_t i = 0; i < warnings.size(); ++i) {
    EXPECT_TRUE(warnings[i].starts_with(expected_prefixes[i])) << warnings[i];
  }
}

// Each log_dest line adds a destination (as in Mosquitto); together they are --log-dest.
// sys_interval is --sys-interval.
TEST(ConfigLogAndSys, LogDestLinesAddUpAndSysIntervalIsAFlag) {
  Read r = read(
      "log_dest stderr\n"
      "log_dest file /var/log/coremq dir/coremq.log  \n"
      "log_dest syslog\n"
      "log_dest topic\n"  // 4: Mosquitto's $SYS/broker/log topics: not supported, a warning
      "sys_interval 3\n");
  EXPECT_TRUE(r.messages(Severity::kError).empty()) << r.messages(Severity::kError)[0];
  EXPECT_EQ(value_of(r, "log_dest"), "stderr,file:/var/log/coremq dir/coremq.log,syslog");
  EXPECT_EQ(value_of(r, "sys_interval"), "3");
  std::vector<std::string> warnings = r.messages(Severity::kWarning);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_TRUE(warnings[0].starts_with("main.conf:4: warning: log_dest topic is not supported")) << warnings[0];
  Read bad = read("sys_interval 100000\n");
  ASSERT_EQ(bad.messages(Severity::kError).size(), 1u);
}

// Settings that restrict who may connect, or how, cannot be ignored with a warning: the broker
// would run more open than the file asks. Each one coremq has no equivalent for is an error
// naming its line (passwords, ACLs and TLS files are listener settings now).
TEST(ConfigErrors, AccessRestrictionsThatCannotBeEnforcedAreErrors) {
  Read r = read(
      "listener 1883\n"
      "psk_file /etc/mosquitto/psk\n"    // 2
      "dhparamfile /etc/tls/dh.pem\n"    // 3
      "tls_engine pkcs11\n"              // 4
      "plugin /usr/lib/auth.so\n"        // 5
      "clientid_prefixes sensor-\n");    // 6
  std::vector<std::string> errors = r.messages(Severity::kError);
  std::vector<std::string> expected_prefixes = {
      "main.conf:2: error: psk_file cannot be enforced: coremq does not support this TLS option",
      "main.conf:3: error: dhparamfile cannot be enforced: coremq does not support this TLS option",
      "main.conf:4: error: tls_engine cannot be enforced: coremq does not support this TLS option",
      "main.conf:5: error: plugin cannot be enforced: authentication",
      "main.conf:6: error: clientid_prefixes cannot be enforced: authentication",
  };
  ASSERT_EQ(errors.size(), expected_prefixes.size());
  for (size_t i = 0; i < errors.size(); ++i) {
    EXPECT_TRUE(errors[i].starts_with(expected_prefixes[i])) << errors[i];
  }
}

TEST(ConfigListeners, DefaultListenerFromPortAndBindAddress) {
  Read both = read("port 1999\nbind_address ::1\n");
  EXPECT_EQ(value_of(both, "bind"), "::1");
  EXPECT_EQ(value_of(both, "port"), "1999");
  EXPECT_TRUE(both.result.default_listener_opened);
  EXPECT_TRUE(both.result.listeners.empty());
  // `port` alone: every interface, as Mosquitto's default listener.
  Read port_only = read("port 1999\n");
  EXPECT_EQ(value_of(port_only, "bind"), "*");
  EXPECT_EQ(port_only.final_values()["bind"].where, "main.conf:1");
  EXPECT_EQ(value_of(read("bind_address [::1]\n"), "bind"), "::1");
  EXPECT_EQ(value_of(read("bind_address localhost\n"), "bind"), "");
}

TEST(ConfigListeners, ListenerSectionsBecomeListeners) {
  Read all_interfaces = read("listener 1885\n");
  ASSERT_EQ(all_interfaces.result.listeners.size(), 1u);
  EXPECT_EQ(all_interfaces.result.listeners[0].options.address, "*");
  EXPECT_EQ(all_interfaces.result.listeners[0].options.port, 1885);
  EXPECT_EQ(all_interfaces.result.listeners[0].where, "main.conf:1");
  EXPECT_EQ(value_of(all_interfaces, "port"), "<unset>");
  // A '#' after the port starts a comment, as in Mosquitto.
  EXPECT_TRUE(read("listener 1885 # the main one\n").result.diagnostics.empty());
}

// Two listener sections plus Mosquitto's default listener (port): three listeners, each with the
// options of its section; TLS once a section has a certificate.
TEST(ConfigListeners, SeveralListenersWithTheirOwnOptions) {
  Read r = read(
      "port 1883\n"
      "listener 8883 0.0.0.0\n"
      "certfile /tls/server.crt\n"
      "keyfile /tls/server key.pem\n"
      "cafile /tls/ca.pem\n"
      "require_certificate true\n"
      "use_identity_as_username true\n"
      "tls_version tlsv1.3\n"
      "ciphers_tls1.3 TLS_AES_256_GCM_SHA384\n"
      "listener 8080 ::1\n"
      "protocol websockets\n");
  EXPECT_TRUE(r.result.diagnostics.empty()) << r.messages(Severity::kError)[0];
  EXPECT_TRUE(r.result.default_listener_opened);
  EXPECT_EQ(value_of(r, "port"), "1883");
  EXPECT_EQ(value_of(r, "bind"), "*");
  EXPECT_FALSE(r.result.default_listener.tls);
  ASSERT_EQ(r.result.listeners.size(), 2u);
  const ListenerOptions& secure = r.result.listeners[0].options;
  EXPECT_TRUE(secure.tls);
  EXPECT_EQ(secure.address, "0.0.0.0");
  EXPECT_EQ(secure.tls_options.keyfile, "/tls/server key.pem");  // paths take the rest of the line
  EXPECT_EQ(secure.tls_options.cafile, "/tls/ca.pem");
  EXPECT_TRUE(secure.tls_options.require_certificate);
  EXPECT_TRUE(secure.tls_options.use_identity_as_username);
  EXPECT_EQ(secure.tls_options.min_version, "tlsv1.3");
  EXPECT_EQ(secure.tls_options.ciphersuites, "TLS_AES_256_GCM_SHA384");
  const ListenerOptions& web = r.result.listeners[1].options;
  EXPECT_EQ(web.transport, ListenerOptions::Transport::kWebSockets);
  EXPECT_FALSE(web.tls);
  EXPECT_EQ(web.address, "::1");
}

// per_listener_settings false (Mosquitto's default): allow_anonymous, password_file and acl_file
// apply to every listener wherever they are written, the last one winning.
TEST(ConfigListeners, SecurityOptionsAreGlobalWithoutPerListenerSettings) {
  Read r = read(
      "allow_anonymous false\n"
      "port 1883\n"
      "listener 1884\n"
      "password_file /etc/passwd-a\n"
      "listener 1885\n"
      "acl_file /etc/acl\n"
      "allow_anonymous true\n");
  EXPECT_TRUE(r.result.diagnostics.empty());
  ASSERT_EQ(r.result.listeners.size(), 2u);
  for (const ListenerOptions* listener :
       {&r.result.default_listener, &r.result.listeners[0].options, &r.result.listeners[1].options}) {
    EXPECT_EQ(listener->allow_anonymous, ListenerOptions::Anonymous::kAllow);
    EXPECT_EQ(listener->password_file, "/etc/passwd-a");
    EXPECT_EQ(listener->acl_file, "/etc/acl");
  }
}

TEST(ConfigListeners, SecurityOptionsPerListenerWithPerListenerSettings) {
  Read r = read(
      "per_listener_settings true\n"
      "port 1883\n"
      "allow_anonymous true\n"
      "listener 1884\n"
      "password_file /etc/passwd-a\n"
      "listener 1885\n"
      "allow_anonymous false\n"
      "acl_file /etc/acl\n");
  EXPECT_TRUE(r.result.diagnostics.empty());
  ASSERT_EQ(r.result.listeners.size(), 2u);
  EXPECT_EQ(r.result.default_listener.allow_anonymous, ListenerOptions::Anonymous::kAllow);
  EXPECT_EQ(r.result.default_listener.password_file, "");
  // Not set: refused, as in Mosquitto 2 once a file defines a listener.
  EXPECT_EQ(r.result.listeners[0].options.allow_anonymous, ListenerOptions::Anonymous::kDeny);
  EXPECT_EQ(r.result.listeners[0].options.password_file, "/etc/passwd-a");
  EXPECT_EQ(r.result.listeners[0].options.acl_file, "");
  EXPECT_EQ(r.result.listeners[1].options.allow_anonymous, ListenerOptions::Anonymous::kDeny);
  EXPECT_EQ(r.result.listeners[1].options.password_file, "");
  EXPECT_EQ(r.result.listeners[1].options.acl_file, "/etc/acl");
}

// Mosquitto 2: allow_anonymous defaults to false once the file defines a listener (even on
// loopback, where coremq's flags let anonymous clients in), and to true in local-only mode.
TEST(ConfigListeners, AnonymousClientsAreRefusedByDefaultOnceTheFileDefinesAListener) {
  Read sections = read("listener 1883 127.0.0.1\nlistener 8883 ::1\n");
  ASSERT_EQ(sections.result.listeners.size(), 2u);
  for (const ConfigListener& listener : sections.result.listeners) {
    EXPECT_EQ(listener.options.allow_anonymous, ListenerOptions::Anonymous::kDeny) << listener.where;
  }
  Read port = read("port 1883\nbind_address localhost\n");
  EXPECT_EQ(port.result.default_listener.allow_anonymous, ListenerOptions::Anonymous::kDeny);
  Read local_only = read("max_keepalive 30\n");
  EXPECT_TRUE(local_only.result.local_only);
  EXPECT_EQ(local_only.result.default_listener.allow_anonymous, ListenerOptions::Anonymous::kDefault);
  Read allowed = read("listener 1883 127.0.0.1\nallow_anonymous true\n");
  EXPECT_EQ(allowed.result.listeners[0].options.allow_anonymous, ListenerOptions::Anonymous::kAllow);
  EXPECT_FALSE(allowed.result.listeners[0].options.refuse_unchecked_usernames);
}

// Mosquitto 2 checks usernames only against a password file: a listener of the file that refuses
// anonymous clients and has none refuses every client (but certificate users).
TEST(ConfigListeners, NoPasswordFileAndNoAnonymousRefusesUsernamesToo) {
  Read r = read(
      "per_listener_settings true\n"
      "listener 1883 127.0.0.1\n"  // refuses everyone
      "listener 1884 127.0.0.1\n"
      "password_file /etc/passwd-a\n"
      "listener 1885 127.0.0.1\n"
      "allow_anonymous true\n");
  ASSERT_EQ(r.result.listeners.size(), 3u);
  EXPECT_TRUE(r.result.listeners[0].options.refuse_unchecked_usernames);
  EXPECT_FALSE(r.result.listeners[1].options.refuse_unchecked_usernames);
  EXPECT_FALSE(r.result.listeners[2].options.refuse_unchecked_usernames);
  EXPECT_TRUE(r.result.diagnostics.empty());
  // Local-only mode with allow_anonymous false said outright: the same.
  Read local = read("max_keepalive 30\nallow_anonymous false\n");
  EXPECT_TRUE(local.result.local_only);
  EXPECT_TRUE(local.result.default_listener.refuse_unchecked_usernames);
}

TEST(ConfigListeners, BadListenerSettingsNameTheirLine) {
  EXPECT_EQ(read("listener 8883\ncafile /ca.pem\n").messages(Severity::kError),
            (std::vector<std::string>{"main.conf:1: error: listener: cafile is a TLS option: the listener needs TLS "
                                      "(mqtts:// or wss://, or certfile and keyfile in a config file)"}));
  EXPECT_EQ(read("listener 8883\ncertfile /c.pem\n").messages(Severity::kError),
            (std::vector<std::string>{
                "main.conf:1: error: listener: a TLS listener needs certfile and keyfile (keyfile is missing)"}));
  EXPECT_EQ(read("listener 8883\ntls_version tlsv1\n").messages(Severity::kError),
            (std::vector<std::string>{"main.conf:2: error: tls_version tlsv1: tls_version: 'tlsv1' is not tlsv1.2 "
                                      "or tlsv1.3 (older versions are not offered)"}));
  EXPECT_EQ(read("listener 8883\nprotocol http\n").messages(Severity::kError),
            (std::vector<std::string>{"main.conf:2: error: protocol must be mqtt or websockets, not 'http'"}));
  EXPECT_EQ(read("listener 8883\nallow_anonymous maybe\n").messages(Severity::kError).size(), 1u);
  // TLS options before the first `listener` line belong to a default listener there is none of.
  EXPECT_EQ(read("certfile /c.pem\nlistener 8883\n").messages(Severity::kWarning).size(), 1u);
}

TEST(ConfigListeners, ListenerOptionsInItsSectionApplyToIt) {
  Read r = read("max_inflight_messages 3\nlistener 1886 127.0.0.1\nmax_connections 9\nmaximum_qos 1\n");
  EXPECT_TRUE(r.result.diagnostics.empty());
  EXPECT_EQ(value_of(r, "max_connections"), "9");
  EXPECT_EQ(value_of(r, "max_qos"), "1");
  EXPECT_EQ(value_of(r, "max_inflight"), "3");
}

TEST(ConfigListeners, PortTwiceWarnsAsMosquitto) {
  // port and bind_address together are the one default listener; port twice warns as Mosquitto does.
  Read twice = read("port 1883\nbind_address 127.0.0.1\nport 1884\n");
  EXPECT_TRUE(twice.messages(Severity::kError).empty());
  EXPECT_EQ(twice.messages(Severity::kWarning),
            (std::vector<std::string>{
                "main.conf:3: warning: port given more than once: the last one is used (as in Mosquitto)"}));
  EXPECT_EQ(value_of(twice, "port"), "1884");
}

TEST(ConfigListeners, BadListenerLines) {
  EXPECT_EQ(read("listener\n").messages(Severity::kError),
            (std::vector<std::string>{"main.conf:1: error: listener needs a value"}));
  EXPECT_EQ(
      read("listener 0 /run/mqtt.sock\n").messages(Severity::kError),
      (std::vector<std::string>{"main.conf:1: error: listener 0 /run/mqtt.sock: port 0 is a Unix socket "
                                "listener in Mosquitto; coremq has none"}));
  EXPECT_EQ(read("listener 70000\n").messages(Severity::kError).size(), 1u);
  EXPECT_EQ(read("listener 1883 127.0.0.1 extra\n").messages(Severity::kError).size(), 1u);
}

TEST(ConfigListeners, NoListenerMeansLoopbackOnlyAsMosquitto2) {
  Read r = read("max_connections 10\n");
  EXPECT_TRUE(r.result.local_only);
  EXPECT_TRUE(r.result.default_listener_opened);
  EXPECT_EQ(value_of(r, "bind"), "<unset>");  // --bind's default is loopback only
}

TEST(ConfigLogType, MostVerboseTypeIsTheLevel) {
  EXPECT_EQ(value_of(read("port 1\nlog_type error\nlog_type warning\n"), "log_level"), "warning");
  EXPECT_EQ(value_of(read("port 1\nlog_type error\nlog_type information\n"), "log_level"), "info");
  EXPECT_EQ(value_of(read("port 1\nlog_type all\n"), "log_level"), "debug");
  EXPECT_EQ(value_of(read("port 1\nlog_type debug\nlog_type none\n"), "log_level"), "none");
  EXPECT_EQ(value_of(read("port 1\nlog_dest none\n"), "log_level"), "none");
}

TEST(ConfigIncludeDir, ConfFilesInMosquittoOrderAtThePointOfTheLine) {
  std::vector<std::string> names = {"b.conf", "a.conf",  "B.conf", ".conf",     "notes.txt",
                                    "A.conf", "10.conf", "2.conf", "a.conf.bak"};
  EXPECT_EQ(included_files("d", names), (std::vector<std::string>{"d/10.conf", "d/2.conf", "d/A.conf",
                                                                  "d/a.conf", "d/B.conf", "d/b.conf"}));

  MemoryFiles files;
  files.directories["conf.d"] = {"20-late.conf", "10-early.conf", "README"};
  files.files["conf.d/10-early.conf"] = "max_connections 100\nmax_keepalive 40\n";
  files.files["conf.d/20-late.conf"] = "max_connections 200\n\nbogus 1\ninclude_dir /elsewhere\n";
  Read r = read("port 1883\nmax_connections 1\ninclude_dir conf.d\nmax_keepalive 50\n", &files);
  EXPECT_EQ(r.result.files,
            (std::vector<std::string>{"main.conf", "conf.d/10-early.conf", "conf.d/20-late.conf"}));
  EXPECT_EQ(value_of(r, "max_connections"), "200");
  EXPECT_EQ(r.final_values()["max_connections"].where, "conf.d/20-late.conf:1");
  EXPECT_EQ(value_of(r, "max_keepalive"), "50");  // the main file's line after include_dir
  EXPECT_EQ(r.messages(Severity::kError),
            (std::vector<std::string>{"conf.d/20-late.conf:3: error: unknown option 'bogus'"}));
  EXPECT_EQ(
      r.messages(Severity::kWarning),
      (std::vector<std::string>{"conf.d/20-late.conf:4: warning: include_dir is read only from the main "
                                "config file (as in Mosquitto); ignored"}));
}

TEST(ConfigIncludeDir, MissingDirectoryAndUnreadableFileAreErrorsAtTheLine) {
  MemoryFiles files;
  files.directories["d"] = {"x.conf"};
  EXPECT_EQ(
      read("port 1\ninclude_dir /nowhere\n", &files).messages(Severity::kError),
      (std::vector<std::string>{"main.conf:2: error: include_dir /nowhere: No such file or directory"}));
  EXPECT_EQ(read("port 1\n\ninclude_dir d\n", &files).messages(Severity::kError),
            (std::vector<std::string>{
                "main.conf:3: error: include_dir: cannot read d/x.conf: not a regular file"}));
}

TEST(ConfigEnvironment, VariablesOverrideTheFileAndNameThemselvesInErrors) {
  std::map<std::string, std::string> environment = {{"COREMQ_MAX_CONNECTIONS", "20"},
                                                    {"COREMQ_MAX_KEEPALIVE", "0"},
                                                    {"COREMQ_RETAIN_AVAILABLE", "no"},
                                                    {"COREMQ_UNRELATED", "1"}};
  auto getenv = [&](const char* name) -> const char* {
    auto it = environment.find(name);
    return it == environment.end() ? nullptr : it->second.c_str();
  };
  std::vector<Diagnostic> diagnostics;
  std::vector<Setting> from_environment = settings_from_environment(test_catalog(), getenv, &diagnostics);
  ASSERT_EQ(diagnostics.size(), 1u);
  EXPECT_EQ(format_diagnostic(diagnostics[0]),
            "COREMQ_MAX_KEEPALIVE: error: --max-keepalive=0 is out of range [1, 65535]");

  // Applied after the file's settings, in that order: the environment wins.
  Read file = read("port 1883\nmax_connections 10\nmax_packet_size 4096\n");
  std::vector<Setting> all = file.result.settings;
  all.insert(all.end(), from_environment.begin(), from_environment.end());
  std::map<std::string, Setting> final_values;
  for (const Setting& setting : all) final_values[setting.flag] = setting;
  EXPECT_EQ(final_values["max_connections"].value, "20");
  EXPECT_EQ(final_values["max_connections"].where, "COREMQ_MAX_CONNECTIONS");
  EXPECT_EQ(final_values["retain_available"].value, "false");
  EXPECT_EQ(final_values["max_packet_size"].where, "main.conf:3");
  EXPECT_EQ(environment_name("max_client_output_bytes"), "COREMQ_MAX_CLIENT_OUTPUT_BYTES");
}

}  // namespace
}  // namespace coremq::config
