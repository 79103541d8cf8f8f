// Host names of listeners (src/io/resolve.h): which strings are host names, getaddrinfo's
// answer for localhost (from /etc/hosts: no DNS query leaves the machine), and the error text
// of a name that does not resolve.
#include "io/resolve.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <gtest/gtest.h>
#include <algorithm>
#include <string>
#include <vector>

namespace coremq::io {
namespace {

TEST(IoResolve, HostNameSyntax) {
  for (const char* name :
       {"localhost", "broker", "mqtt-1.example.org", "MQTT.Example.", "a", "x1.y2", "1a.b"}) {
    EXPECT_TRUE(is_host_name(name)) << name;
  }
  for (const char* text : {"", ".", "127.0.0.1", "1.2.3", "10", "::1", "[::1]", "*", "-a", "a-", "a..b", ".a",
                           "a b", "a_b", "a/b", "a:1883"}) {
    EXPECT_FALSE(is_host_name(text)) << text;
  }
  EXPECT_TRUE(is_host_name(std::string(63, 'a')));
  EXPECT_FALSE(is_host_name(std::string(64, 'a')));
  std::string longest;                             // 253 characters
  while (longest.size() < 248) longest += "abc.";  // 62 labels: 248 characters
  longest += "abcde";
  ASSERT_EQ(longest.size(), kHostNameBytesMax);
  EXPECT_TRUE(is_host_name(longest));
  EXPECT_FALSE(is_host_name(longest + "d"));
}

TEST(IoResolve, LocalhostGivesNumericAddressesEachOnce) {
  std::vector<std::string> addresses;
  std::string error;
  ASSERT_TRUE(resolve_host_addresses("localhost", &addresses, &error)) << error;
  // getaddrinfo returns each address once per socket type unless asked for SOCK_STREAM; either
  // way each is listed once here.
  EXPECT_NE(std::find(addresses.begin(), addresses.end(), "127.0.0.1"), addresses.end());
  std::vector<std::string> sorted = addresses;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
  for (const std::string& address : addresses) {
    unsigned char buffer[16];
    EXPECT_TRUE(inet_pton(AF_INET, address.c_str(), buffer) == 1 ||
                inet_pton(AF_INET6, address.c_str(), buffer) == 1)
        << address;
  }
}

TEST(IoResolve, NumericAddressesResolveToThemselves) {
  std::vector<std::string> addresses;
  std::string error;
  ASSERT_TRUE(resolve_host_addresses("127.0.0.1", &addresses, &error)) << error;
  EXPECT_EQ(addresses, std::vector<std::string>{"127.0.0.1"});
}

TEST(IoResolve, FailureNamesTheHostAndTheReason) {
  EXPECT_EQ(resolve_error_message("broker.example", EAI_NONAME),
            std::string("cannot resolve host name 'broker.example': ") + gai_strerror(EAI_NONAME));
  // An empty name fails inside getaddrinfo itself (EAI_NONAME), before any lookup.
  std::vector<std::string> addresses;
  std::string error;
  EXPECT_FALSE(resolve_host_addresses("", &addresses, &error));
  EXPECT_TRUE(error.starts_with("cannot resolve host name '': ")) << error;
  EXPECT_TRUE(addresses.empty());
}

}  // namespace
}  // namespace coremq::io
