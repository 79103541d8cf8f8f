// Listener addresses given as host names (io/resolve.h): a coremq::Broker whose listener names a
// loopback host from /etc/hosts resolves it once at start, binds what it resolves to, and a raw
// MQTT client connects there (CONNECT/CONNACK and a PINGREQ/PINGRESP round trip). Only names
// in /etc/hosts are used, so no DNS query leaves the machine; without such a name other than
// `localhost` (which the broker treats as the loopback default, not a name) the test skips.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "broker/listeners.h"
#include "coremq/broker.h"
#include "net_client.h"

namespace coremq::testing {
namespace {

// The first name /etc/hosts maps to 127.0.0.1 other than localhost (Debian's `127.0.1.1
// hostname` line is not used: the client below connects to 127.0.0.1). Empty when none.
std::string loopback_host_name() {
  std::ifstream hosts("/etc/hosts");
  std::string line;
  while (std::getline(hosts, line)) {
    std::istringstream words(line.substr(0, line.find('#')));
    std::string address;
    std::string name;
    if (!(words >> address) || address != "127.0.0.1") continue;
    while (words >> name) {
      if (name != "localhost" && name.find('.') == std::string::npos) return name;
    }
  }
  return "";
}

TEST(EmbeddedHostName, ListenerOnALoopbackHostNameServesClients) {
  std::string name = loopback_host_name();
  if (name.empty()) GTEST_SKIP() << "/etc/hosts maps no name but localhost to 127.0.0.1";
  Options options;
  options.threads = 1;
  options.pin_threads = false;
  ListenerOptions listener;
  listener.address = name;
  listener.port = 0;
  // A host name never counts as loopback for the anonymous default (listeners.h).
  EXPECT_FALSE(broker::anonymous_allowed(listener)) << name;
  listener.allow_anonymous = ListenerOptions::Anonymous::kAllow;
  options.listeners = {listener};
  Broker broker(options);
  std::string error;
  ASSERT_TRUE(broker.start(&error)) << name << ": " << error;
  ASSERT_NE(broker.listener_port(0), 0);
  {
    NetClient client(broker.listener_port(0));
    std::string why;
    ASSERT_TRUE(client.connect("host-name-client", &why)) << why;
    ASSERT_TRUE(client.ping(&why)) << why;
  }
  broker.stop();
  broker.wait();
}

}  // namespace
}  // namespace coremq::testing
