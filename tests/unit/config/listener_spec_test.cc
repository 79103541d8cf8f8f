// --listener specs and listener option values (src/config/listener_spec.h): every scheme and
// address form, every key, and a clear error naming the key for each kind of bad spec.
#include "config/listener_spec.h"

#include <gtest/gtest.h>

#include <string>

namespace coremq::config {
namespace {

using Anonymous = ListenerOptions::Anonymous;
using Transport = ListenerOptions::Transport;

ListenerOptions parsed(const std::string& spec) {
  ListenerOptions listener;
  std::string error;
  EXPECT_TRUE(parse_listener_spec(spec, &listener, &error)) << spec << ": " << error;
  return listener;
}

std::string error_of(const std::string& spec) {
  ListenerOptions listener;
  std::string error;
  EXPECT_FALSE(parse_listener_spec(spec, &listener, &error)) << spec;
  return error;
}

TEST(ConfigListenerSpec, SchemesAddressesAndPorts) {
  ListenerOptions plain = parsed("mqtt://127.0.0.1:1883");
  EXPECT_EQ(plain.transport, Transport::kMqtt);
  EXPECT_FALSE(plain.tls);
  EXPECT_EQ(plain.address, "127.0.0.1");
  EXPECT_EQ(plain.port, 1883);
  EXPECT_EQ(plain.allow_anonymous, Anonymous::kDefault);

  ListenerOptions six = parsed("ws://[::1]:8080");
  EXPECT_EQ(six.transport, Transport::kWebSockets);
  EXPECT_EQ(six.address, "::1");
  EXPECT_EQ(parsed("mqtt://:0").address, "");
  EXPECT_EQ(parsed("mqtt://:0").port, 0);
  EXPECT_EQ(parsed("mqtt://localhost:1").address, "");
  EXPECT_EQ(parsed("mqtt://*:1").address, "*");
  EXPECT_EQ(parsed("mqtt://[::]:65535").address, "::");

  ListenerOptions secure = parsed("wss://0.0.0.0:8884,certfile=/c.pem,keyfile=/k.pem");
  EXPECT_TRUE(secure.tls);
  EXPECT_EQ(secure.transport, Transport::kWebSockets);
  EXPECT_TRUE(parsed("mqtts://*:8883,certfile=/c,keyfile=/k").tls);
}

TEST(ConfigListenerSpec, EveryKey) {
  ListenerOptions listener = parsed(
      "mqtts://10.0.0.1:8883,allow_anonymous=false,password_file=/etc/p w,acl_file=/etc/acl,certfile=/c.pem,"
      "keyfile=/k.pem,cafile=/ca.pem,capath=/certs,crlfile=/crl.pem,ciphers=ECDHE+AESGCM:!aNULL,"
      "ciphersuites=TLS_AES_128_GCM_SHA256,tls_version=tlsv1.3,require_certificate=true,"
      "use_identity_as_username=1,use_subject_as_username=false");
  EXPECT_EQ(listener.allow_anonymous, Anonymous::kDeny);
  EXPECT_EQ(listener.password_file, "/etc/p w");
  EXPECT_EQ(listener.acl_file, "/etc/acl");
  EXPECT_EQ(listener.tls_options.certfile, "/c.pem");
  EXPECT_EQ(listener.tls_options.keyfile, "/k.pem");
  EXPECT_EQ(listener.tls_options.cafile, "/ca.pem");
  EXPECT_EQ(listener.tls_options.capath, "/certs");
  EXPECT_EQ(listener.tls_options.crlfile, "/crl.pem");
  EXPECT_EQ(listener.tls_options.ciphers, "ECDHE+AESGCM:!aNULL");
  EXPECT_EQ(listener.tls_options.ciphersuites, "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(listener.tls_options.min_version, "tlsv1.3");
  EXPECT_TRUE(listener.tls_options.require_certificate);
  EXPECT_TRUE(listener.tls_options.use_identity_as_username);
  EXPECT_FALSE(listener.tls_options.use_subject_as_username);
  EXPECT_EQ(parsed("mqtt://0.0.0.0:1,allow_anonymous=true").allow_anonymous, Anonymous::kAllow);
}

TEST(ConfigListenerSpec, ErrorsNameWhatIsWrong) {
  EXPECT_EQ(error_of("127.0.0.1:1883"),
            "expected SCHEME://ADDRESS:PORT[,key=value...] with SCHEME mqtt, mqtts, ws or wss");
  EXPECT_EQ(error_of("tcp://127.0.0.1:1883"), "unknown scheme 'tcp' (mqtt, mqtts, ws or wss)");
  EXPECT_EQ(error_of("mqtt://127.0.0.1"), "'127.0.0.1' has no :PORT");
  EXPECT_EQ(error_of("mqtt://[::1]"), "'[::1]' has no :PORT");
  EXPECT_EQ(error_of("mqtt://127.0.0.1:70000"), "port '70000' is not a number in [0, 65535]");
  EXPECT_EQ(error_of("mqtt://127.0.0.1:"), "port '' is not a number in [0, 65535]");
  EXPECT_EQ(error_of("mqtt://127.0.0.1:-1"), "port '-1' is not a number in [0, 65535]");
  // IPv6 goes in brackets: the last ':' ends the address.
  EXPECT_TRUE(error_of("mqtt://::1:1883").starts_with("'::1' is not an address"))
      << error_of("mqtt://::1:1883");
  EXPECT_TRUE(error_of("mqtt://broker_1.example:1883").starts_with("'broker_1.example' is not an address"));
  EXPECT_TRUE(error_of("mqtt://:1,bogus=1").starts_with("unknown key 'bogus' (keys: allow_anonymous"));
  EXPECT_EQ(error_of("mqtt://:1,allow_anonymous"), "'allow_anonymous' is not key=value");
  EXPECT_EQ(error_of("mqtt://:1,allow_anonymous=maybe"), "allow_anonymous: 'maybe' is not true or false");
  EXPECT_EQ(error_of("mqtt://:1,password_file="), "password_file needs a value");
  EXPECT_EQ(error_of("mqtt://:1,acl_file=/a,acl_file=/b"), "key 'acl_file' given twice");
  EXPECT_EQ(error_of("mqtts://:1,certfile=/c,keyfile=/k,tls_version=tlsv1.1"),
            "tls_version: 'tlsv1.1' is not tlsv1.2 or tlsv1.3 (older versions are not offered)");
  EXPECT_TRUE(error_of("mqtt://:1,certfile=/c").starts_with("certfile is a TLS option"));
  EXPECT_TRUE(
      error_of("ws://:1,require_certificate=true").starts_with("require_certificate is a TLS option"));
  EXPECT_EQ(error_of("mqtts://:1,certfile=/c"),
            "a TLS listener needs certfile and keyfile (keyfile is missing)");
  EXPECT_EQ(error_of("mqtts://:1"), "a TLS listener needs certfile and keyfile (certfile is missing)");
  EXPECT_EQ(error_of("mqtts://:1,certfile=/c,keyfile=/k,require_certificate=true"),
            "require_certificate needs cafile or capath (the CAs client certificates must chain to)");
  EXPECT_EQ(error_of(std::string("mqtt://:1,acl_file=/a\0b", 23)), "acl_file: NUL byte in the value");
  EXPECT_EQ(error_of("mqtt://:1," + std::string(kListenerSpecBytesMax, 'x')), "longer than 16384 bytes");
}

TEST(ConfigListenerSpec, AddressesOfBindAndBindAddressTakeBareIpv6) {
  std::string address;
  std::string error;
  EXPECT_TRUE(parse_listener_address("::1", /*bracketed_ipv6=*/false, &address, &error));
  EXPECT_EQ(address, "::1");
  EXPECT_TRUE(parse_listener_address("[::1]", false, &address, &error));
  EXPECT_EQ(address, "::1");
  EXPECT_FALSE(parse_listener_address("::1", /*bracketed_ipv6=*/true, &address, &error));
  EXPECT_FALSE(parse_listener_address("[127.0.0.1]", false, &address, &error));
  EXPECT_TRUE(parse_listener_address("localhost", false, &address, &error));
  EXPECT_EQ(address, "");
}

// Host names are kept as written (Broker::start resolves them); what cannot be one is refused
// here with the same error as any other bad address.
TEST(ConfigListenerSpec, HostNamesAreKeptForStartUpToResolve) {
  EXPECT_EQ(parsed("mqtt://broker.example:1883").address, "broker.example");
  EXPECT_EQ(parsed("wss://Broker-1.example.org.:8884,certfile=/c,keyfile=/k").address, "Broker-1.example.org.");
  std::string address;
  std::string error;
  EXPECT_TRUE(parse_listener_address("mqtt-host", /*bracketed_ipv6=*/false, &address, &error));
  EXPECT_EQ(address, "mqtt-host");
  std::string too_long;  // 255 characters, over the 253 of RFC 1035
  for (int i = 0; i < 127; ++i) too_long += "a.";
  too_long += "a";
  for (const std::string& bad : {std::string("-host"), std::string("host-"), std::string("a..b"),
                                 std::string("bad_name"), std::string("host name"), std::string("1.2.3"),
                                 std::string("999"), std::string("[host]"), too_long}) {
    error.clear();
    EXPECT_FALSE(parse_listener_address(bad, false, &address, &error)) << bad;
    EXPECT_NE(error.find("is not an address"), std::string::npos) << bad << ": " << error;
  }
  EXPECT_FALSE(parse_listener_address(std::string(64, 'a') + ".example", false, &address, &error));
}

}  // namespace
}  // namespace coremq::config
