// The disconnect log line (connection_log.cc) and the event hook's ClientDisconnectedEvent
// (hooks.cc) are made from one EndCause given to ShardState::end_connection: for each way a
// client goes (its DISCONNECT with a reason code, keep-alive timeout, protocol error, takeover,
// an admin kick, connection lost, shutdown) both say the same reason and reason code. The log
// thread writes to a scratch file, read after log_stop; the events are recorded by a hook.
// Single-threaded apart from the log thread; the clock is FakeIo's.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "auth_packets.h"
#include "base/log.h"
#include "coremq/events.h"
#include "shard_harness.h"

namespace coremq::testing {
namespace {

using broker::CloseReason;

// The events as the hook saw them, by client id (the ShardState calls it on this thread).
class RecordedDisconnects : public EventHook {
 public:
  struct Seen {
    DisconnectReason reason;
    uint8_t reason_code;
  };
  void on_client_disconnected(const ClientDisconnectedEvent& event) override {
    seen[std::string(event.client.client_id)].push_back({event.reason, event.reason_code});
  }
  std::map<std::string, std::vector<Seen>> seen;
};

// What a text disconnect line says: `client disconnected client_id="ID" ... reason="R"
// reason_code="0xNN"` (reason_code left out when there is none).
struct LoggedDisconnect {
  std::string reason;
  std::string reason_code;
};

std::string quoted_field(const std::string& line, const std::string& name) {
  const std::string key = " " + name + "=\"";
  size_t start = line.find(key);
  if (start == std::string::npos) return {};
  start += key.size();
  return line.substr(start, line.find('"', start) - start);
}

std::map<std::string, std::vector<LoggedDisconnect>> disconnect_lines(const std::string& path) {
  std::map<std::string, std::vector<LoggedDisconnect>> lines;
  std::ifstream file(path);
  std::string line;
  while (std::getline(file, line)) {
    if (line.find("client disconnected client_id=") == std::string::npos) continue;
    lines[quoted_field(line, "client_id")].push_back(
        {quoted_field(line, "reason"), quoted_field(line, "reason_code")});
  }
  return lines;
}

// The CloseReason a log line names (close_reason_name backwards); kUnknown for "closed".
CloseReason close_reason_named(const std::string& name) {
  for (int value = 0; value <= static_cast<int>(CloseReason::kInterceptor); ++value) {
    if (name == broker::close_reason_name(static_cast<CloseReason>(value)))
      return static_cast<CloseReason>(value);
  }
  ADD_FAILURE() << "no CloseReason is named '" << name << "'";
  return CloseReason::kUnknown;
}

class ShardConnectionLogHook : public ShardHarness {
 protected:
  void SetUp() override {
    ShardHarness::SetUp();
    char name[] = "/tmp/coremq-end-cause-XXXXXX";
    ASSERT_NE(mkdtemp(name), nullptr);
    directory_ = name;
    base::LogOptions log_options;
    log_options.destinations = base::LogDestinations{};
    log_options.destinations.file_path = directory_ + "/coremq.log";
    std::string error;
    ASSERT_TRUE(base::log_start(log_options, &error)) << error;
    base::set_log_level(base::LogLevel::kInfo);
    options.event_hook = events_;
    options.log_connection_lines_per_second = 1000;  // every line of the test, none suppressed
  }
  void TearDown() override {
    base::log_stop();
    base::set_log_level(base::LogLevel::kWarning);
    ShardHarness::TearDown();
    std::filesystem::remove_all(directory_);
  }

  broker::Connection* connect5(std::string_view client_id, const Connect5Options& connect_options = {}) {
    broker::Connection* connection = open();
    feed(connection, connect5_bytes(client_id, connect_options));
    EXPECT_EQ(connection->state, broker::ConnectionState::kConnected) << client_id;
    take_output(connection);
    return connection;
  }

  // Both records of `client_id`'s one disconnect, checked against what was expected and
  // against each other.
  void expect_agree(const std::map<std::string, std::vector<LoggedDisconnect>>& logged,
                    const std::string& client_id, const std::string& log_reason,
                    DisconnectReason event_reason, int reason_code) {
    SCOPED_TRACE(client_id);
    auto line = logged.find(client_id);
    ASSERT_NE(line, logged.end()) << "no disconnect line";
    ASSERT_EQ(line->second.size(), 1u);
    auto event = events_->seen.find(client_id);
    ASSERT_NE(event, events_->seen.end()) << "no disconnect event";
    ASSERT_EQ(event->second.size(), 1u);
    const LoggedDisconnect& text = line->second[0];
    const RecordedDisconnects::Seen& seen = event->second[0];
    std::string code_text;
    if (reason_code >= 0) {
      char buffer[8];
      snprintf(buffer, sizeof(buffer), "0x%02x", reason_code);
      code_text = buffer;
    }
    EXPECT_EQ(text.reason, log_reason);
    EXPECT_EQ(text.reason_code, code_text);
    EXPECT_EQ(seen.reason, event_reason) << disconnect_reason_name(seen.reason);
    EXPECT_EQ(seen.reason_code, reason_code >= 0 ? reason_code : 0);
    // The agreement itself: the line's reason is the event's, its code the event's code.
    EXPECT_EQ(broker::disconnect_reason_of(close_reason_named(text.reason)), seen.reason);
    int logged_code =
        text.reason_code.empty() ? 0 : static_cast<int>(std::strtol(text.reason_code.c_str(), nullptr, 16));
    EXPECT_EQ(logged_code, seen.reason_code);
  }

  std::shared_ptr<RecordedDisconnects> events_ = std::make_shared<RecordedDisconnects>();
  std::string directory_;
};

TEST_F(ShardConnectionLogHook, LogLineAndEventSayTheSameReasonForEachWayAClientGoes) {
  // The client's DISCONNECT with a reason code of its own (MQTT 5, 0x04: with will) and a
  // plain 3.1.1 one (0x00).
  broker::Connection* leaving5 = connect5("leaving5");
  feed(leaving5, encoded([](base::ByteBuffer& out) { mqtt::encode_disconnect_v5(out, 0x04, {}); }));
  broker::Connection* leaving = connect("leaving");
  feed(leaving, disconnect_bytes());
  // Protocol errors: a second CONNECT, from an MQTT 5 client (told 0x82) and a 3.1.1 one (not
  // told, but both records name 0x82).
  broker::Connection* broken5 = connect5("broken5");
  feed(broken5, connect5_bytes("broken5"));
  broker::Connection* broken = connect("broken");
  feed(broken, connect_bytes("broken"));
  // Takeover: the same client id again; the first connection goes.
  connect5("twin");
  connect5("twin");
  // An admin kick (the HTTP API's DELETE /api/v1/clients/{id} calls this on the owner shard).
  connect5("kicked");
  broker::AdminDisconnect kicked = shard().admin_disconnect("kicked", /*discard_session=*/false);
  EXPECT_TRUE(kicked.found && kicked.was_connected);
  // Connection lost: the socket ends without DISCONNECT.
  broker::Connection* lost = connect("lost");
  shard().on_transport_closed(lost);
  // Keep-alive: 1 s (3.1.1) and 2 s (MQTT 5), then silence past 1.5 times the longer.
  connect("idle", {.keep_alive_seconds = 1});
  connect5("idle5", {.keep_alive_seconds = 2});
  tick(io().now + 3001);
  // Shutdown: whoever is still there ("twin", the second connection).
  shard().on_shutdown();
  base::log_stop();

  auto logged = disconnect_lines(directory_ + "/coremq.log");
  expect_agree(logged, "leaving5", "client-disconnect", DisconnectReason::kClientDisconnect, 0x04);
  expect_agree(logged, "leaving", "client-disconnect", DisconnectReason::kClientDisconnect, 0x00);
  expect_agree(logged, "broken5", "protocol-error", DisconnectReason::kProtocolError, 0x82);
  expect_agree(logged, "broken", "protocol-error", DisconnectReason::kProtocolError, 0x82);
  expect_agree(logged, "kicked", "admin", DisconnectReason::kAdministrative, 0x98);
  expect_agree(logged, "lost", "connection-lost", DisconnectReason::kConnectionLost, -1);
  expect_agree(logged, "idle", "keep-alive-timeout", DisconnectReason::kKeepAliveTimeout, 0x8D);
  expect_agree(logged, "idle5", "keep-alive-timeout", DisconnectReason::kKeepAliveTimeout, 0x8D);
  // "twin" went twice: taken over, then at shutdown.
  ASSERT_EQ(logged["twin"].size(), 2u);
  ASSERT_EQ(events_->seen["twin"].size(), 2u);
  EXPECT_EQ(logged["twin"][0].reason, "takeover");
  EXPECT_EQ(logged["twin"][0].reason_code, "0x8e");
  EXPECT_EQ(events_->seen["twin"][0].reason, DisconnectReason::kTakenOver);
  EXPECT_EQ(events_->seen["twin"][0].reason_code, 0x8E);
  EXPECT_EQ(logged["twin"][1].reason, "shutdown");
  EXPECT_EQ(logged["twin"][1].reason_code, "0x8b");
  EXPECT_EQ(events_->seen["twin"][1].reason, DisconnectReason::kShutdown);
  EXPECT_EQ(events_->seen["twin"][1].reason_code, 0x8B);
  // Nothing else went.
  EXPECT_EQ(logged.size(), 9u);
  EXPECT_EQ(events_->seen.size(), 9u);
}

// Every CloseReason has a log name of its own and an event reason (a new one that forgets
// either fails here or does not compile).
TEST(ShardConnectionLogNames, EachCloseReasonHasItsOwnNameAndAnEventReason) {
  std::map<std::string, int> names;
  for (int value = 0; value <= static_cast<int>(CloseReason::kInterceptor); ++value) {
    auto reason = static_cast<CloseReason>(value);
    EXPECT_TRUE(names.emplace(broker::close_reason_name(reason), value).second)
        << broker::close_reason_name(reason);
    EXPECT_NE(std::string(disconnect_reason_name(broker::disconnect_reason_of(reason))), "");
  }
  EXPECT_EQ(broker::disconnect_reason_of(CloseReason::kAdmin), DisconnectReason::kAdministrative);
  EXPECT_EQ(broker::disconnect_reason_of(CloseReason::kInterceptor), DisconnectReason::kAdministrative);
  EXPECT_EQ(broker::disconnect_reason_of(CloseReason::kPacketTooLarge), DisconnectReason::kProtocolError);
}

}  // namespace
}  // namespace coremq::testing
