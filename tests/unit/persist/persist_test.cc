// Durable persistence (src/persist, src/broker/persistence.cc): record encodings round-trip and
// refuse every damaged form; the store's committer answers batches in order, holds them while
// writes fail and recovers; a reopened store gives back what was written, placed by owner
// shard for any shard count, expired records dropped; and ShardState withholds a retained
// PUBACK and a persistent session's SUBACK until the committer says their batch is durable.
// Suites are named Persist*. Each store lives in its own temporary directory.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "../broker/shard_harness.h"
#include "broker/shard_state.h"
#include "persist/records.h"
#include "persist/store.h"
#include "persist_fixture.h"

namespace coremq::testing {
namespace {

using persist::RetainedRecord;
using persist::SessionRecord;

SessionRecord sample_session() {
  SessionRecord record;
  record.client_id = "device-17";
  record.expiry_seconds = 3600;
  record.will_delay_seconds = 5;
  record.disconnected_at_unix_ms = 1'700'000'000'000;
  persist::WillRecord& will = record.will.emplace();
  will.topic = "status/device-17";
  will.payload = "gone";
  will.property_bytes = std::string("\x03\x00\x04text", 7);
  will.message_expiry_seconds = 60;
  will.qos = 1;
  will.retain = true;
  record.subscriptions.push_back({"a/+/c", 2, true, false, 1, 42});
  record.subscriptions.push_back({"$share/g/x/#", 1, false, true, 2, 0});
  return record;
}

TEST(PersistRecords, RetainedRoundTrips) {
  RetainedRecord record{"sensors/1", std::string("v\0al", 4), "props", 1, (7u << 8) | 3, 1'800'000'000'000};
  std::string value;
  persist::encode_retained(record, &value);
  RetainedRecord decoded;
  std::string error;
  ASSERT_TRUE(persist::decode_retained(persist::retained_key(record.topic), value, &decoded, &error)) << error;
  EXPECT_EQ(decoded.topic, record.topic);
  EXPECT_EQ(decoded.payload, record.payload);
  EXPECT_EQ(decoded.property_bytes, record.property_bytes);
  EXPECT_EQ(decoded.qos, 1);
  EXPECT_EQ(decoded.stamp, record.stamp);
  EXPECT_EQ(decoded.expires_at_unix_ms, record.expires_at_unix_ms);
}

TEST(PersistRecords, SessionRoundTrips) {
  SessionRecord record = sample_session();
  std::string value;
  persist::encode_session(record, &value);
  SessionRecord decoded;
  std::string error;
  ASSERT_TRUE(persist::decode_session(persist::session_key(record.client_id), value, &decoded, &error)) << error;
  EXPECT_EQ(decoded.client_id, "device-17");
  EXPECT_EQ(decoded.expiry_seconds, 3600u);
  EXPECT_EQ(decoded.will_delay_seconds, 5u);
  EXPECT_EQ(decoded.disconnected_at_unix_ms, record.disconnected_at_unix_ms);
  ASSERT_TRUE(decoded.will.has_value());
  EXPECT_EQ(decoded.will->topic, "status/device-17");
  EXPECT_EQ(decoded.will->property_bytes, record.will->property_bytes);
  EXPECT_TRUE(decoded.will->retain);
  ASSERT_EQ(decoded.subscriptions.size(), 2u);
  EXPECT_EQ(decoded.subscriptions[0].filter, "a/+/c");
  EXPECT_TRUE(decoded.subscriptions[0].no_local);
  EXPECT_EQ(decoded.subscriptions[0].identifier, 42u);
  EXPECT_EQ(decoded.subscriptions[1].retain_handling, 2);
  EXPECT_TRUE(decoded.subscriptions[1].retain_as_published);
}

TEST(PersistRecords, EveryTruncationAndTrailingByteIsRefused) {
  std::string session_value;
  persist::encode_session(sample_session(), &session_value);
  std::string retained_value;
  persist::encode_retained(RetainedRecord{"t", "p", "", 0, 1, 0}, &retained_value);
  std::string error;
  for (size_t size = 0; size < session_value.size(); ++size) {
    SessionRecord decoded;
    EXPECT_FALSE(persist::decode_session("Sdevice-17", session_value.substr(0, size), &decoded, &error)) << size;
  }
  for (size_t size = 0; size < retained_value.size(); ++size) {
    RetainedRecord decoded;
    EXPECT_FALSE(persist::decode_retained("Rt", retained_value.substr(0, size), &decoded, &error)) << size;
  }
  SessionRecord decoded;
  std::string longer = session_value;
  longer.push_back('x');
  EXPECT_FALSE(persist::decode_session("Sdevice-17", longer, &decoded, &error));
  EXPECT_NE(error.find("after the last field"), std::string::npos) << error;
}

TEST(PersistRecords, UnknownVersionKeyTypeAndOutOfRangeValuesAreRefused) {
  std::string value;
  persist::encode_retained(RetainedRecord{"t", "p", "", 1, 1, 0}, &value);
  RetainedRecord decoded;
  std::string error;
  std::string newer = value;
  newer[0] = 9;
  EXPECT_FALSE(persist::decode_retained("Rt", newer, &decoded, &error));
  EXPECT_NE(error.find("version"), std::string::npos) << error;
  EXPECT_FALSE(persist::decode_retained("St", value, &decoded, &error));  // a session key
  EXPECT_FALSE(persist::decode_retained("R", value, &decoded, &error));   // no topic
  std::string bad_qos = value;
  bad_qos[1] = 3;
  EXPECT_FALSE(persist::decode_retained("Rt", bad_qos, &decoded, &error));
  // A huge length must be refused before anything is allocated for it.
  std::string huge = value;
  huge[18] = '\xff';
  huge[19] = '\xff';
  huge[20] = '\xff';
  huge[21] = '\xff';
  EXPECT_FALSE(persist::decode_retained("Rt", huge, &decoded, &error));
}

// A store with its committer running; the test thread plays every shard.
void put_session(persist::ShardJournal& journal, const std::string& client_id, uint32_t expiry,
                 int64_t disconnected_at) {
  SessionRecord record;
  record.client_id = client_id;
  record.expiry_seconds = expiry;
  record.disconnected_at_unix_ms = disconnected_at;
  std::string filter = "t/";
  filter += client_id;
  record.subscriptions.push_back({filter, 1, false, false, 0, 0});
  std::string value;
  persist::encode_session(record, &value);
  journal.put(persist::session_key(client_id), value);
}

TEST(PersistStore, BatchesAreAnsweredInOrderAndReloadedByOwnerShard) {
  TempDir dir;
  const int64_t now = 1'800'000'000'000;
  {
    StoreFixture fixture(dir.path());
    persist::ShardJournal& journal = fixture.store->journal(0);
    fixture.store->start();
    EXPECT_EQ(journal.batch_needed(), 0u);  // nothing written: nothing to wait for
    for (int i = 0; i < 20; ++i) put_session(journal, "client-" + std::to_string(i), 0xFFFFFFFF, 0);
    put_session(journal, "expired", 10, now - 11'000);
    put_session(journal, "not-yet", 10, now - 9'000);
    EXPECT_EQ(journal.batch_needed(), 1u);
    journal.submit();
    std::string value;
    persist::encode_retained(RetainedRecord{"r/1", "payload", "", 1, 5 << 8, 0}, &value);
    fixture.store->journal(1).put(persist::retained_key("r/1"), value);
    persist::encode_retained(RetainedRecord{"r/old", "payload", "", 1, 6 << 8, now - 1}, &value);
    fixture.store->journal(1).put(persist::retained_key("r/old"), value);
    fixture.store->journal(1).submit();
    journal.erase(persist::session_key("client-19"));
    journal.submit();
    EXPECT_EQ(journal.batch_needed(), 2u);
    EXPECT_FALSE(journal.has_changes());
    ASSERT_TRUE(fixture.wait_durable(0, 2));
    ASSERT_TRUE(fixture.wait_durable(1, 1));
    EXPECT_GT(fixture.wakes.load(), 0);
    fixture.store->stop();
  }
  // Reopened with three shards: every session on its owner shard, whatever wrote it.
  StoreFixture reopened(dir.path(), 3);
  persist::LoadedState loaded;
  std::string error;
  ASSERT_TRUE(reopened.store->load(now, &loaded, &error)) << error;
  EXPECT_EQ(loaded.sessions, 20u);  // 19 of client-*, and not-yet
  EXPECT_EQ(loaded.expired_dropped, 2u);
  EXPECT_EQ(loaded.corrupt_skipped, 0u);
  ASSERT_EQ(loaded.retained.size(), 1u);
  EXPECT_EQ(loaded.retained[0].topic, "r/1");
  EXPECT_EQ(loaded.retained[0].stamp, 5u << 8);
  size_t placed = 0;
  for (uint32_t shard = 0; shard < 3; ++shard) {
    for (const persist::LoadedSession& session : loaded.sessions_by_shard[shard]) {
      const SessionRecord& record = session.record;
      EXPECT_EQ(broker::owner_shard_of(record.client_id, 3), shard) << record.client_id;
      EXPECT_NE(record.client_id, "client-19");
      ++placed;
    }
  }
  EXPECT_EQ(placed, 20u);
  // The expired ones were deleted at load: a second load does not see them.
  persist::LoadedState again;
  ASSERT_TRUE(reopened.store->load(now, &again, &error)) << error;
  EXPECT_EQ(again.expired_dropped, 0u);
}

TEST(PersistStore, FailingWritesHoldTheAnswersUntilTheyRecover) {
  TempDir dir;
  StoreFixture fixture(dir.path(), 1, PersistenceOptions::Fsync::kAlways);
  persist::ShardJournal& journal = fixture.store->journal(0);
  fixture.store->fail_next_writes_for_test(3);
  fixture.store->start();
  put_session(journal, "a", 0xFFFFFFFF, 0);
  journal.submit();
  put_session(journal, "b", 0xFFFFFFFF, 0);
  journal.submit();
  // Three failed attempts at 100 ms pauses, then both batches, in order, synced.
  ASSERT_TRUE(fixture.wait_durable(0, 2));
  EXPECT_GE(fixture.store->write_failures(), 3u);
  EXPECT_GE(fixture.store->syncs(), 1u);
  EXPECT_EQ(fixture.store->batches_written(), 2u);
}

TEST(PersistStore, ABusyRingKeepsTheBatchOpenAndLosesNothing) {
  TempDir dir;
  {
    StoreFixture fixture(dir.path(), 1);
    persist::ShardJournal& journal = fixture.store->journal(0);
    // Not started: the ring (capacity 4) fills, later changes join the open batch.
    for (int i = 0; i < 10; ++i) {
      std::string client_id = "client-";
      client_id += std::to_string(i);
      put_session(journal, client_id, 0xFFFFFFFF, 0);
      journal.submit();
    }
    EXPECT_TRUE(journal.submit_pending());
    EXPECT_GT(journal.submits_delayed(), 0u);
    fixture.store->start();
    uint64_t needed = journal.batch_needed();
    while (journal.submit_pending()) {
      journal.drain_answers();
      journal.submit();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_TRUE(fixture.wait_durable(0, needed));
    fixture.store->stop();
  }
  StoreFixture reopened(dir.path(), 1);
  persist::LoadedState loaded;
  std::string error;
  ASSERT_TRUE(reopened.store->load(0, &loaded, &error)) << error;
  EXPECT_EQ(loaded.sessions, 10u);
}

TEST(PersistStore, ASecondOpenOfTheSameDirectoryIsRefusedClearly) {
  TempDir dir;
  StoreFixture first(dir.path(), 1);
  std::string error;
  PersistenceOptions options = first.options;
  EXPECT_EQ(persist::Store::open(options, 1, nullptr, &error), nullptr);
  EXPECT_NE(error.find("in use by another process"), std::string::npos) << error;
  options.data_dir = dir.path() + "/missing/parent";
  EXPECT_EQ(persist::Store::open(options, 1, nullptr, &error), nullptr);
  EXPECT_NE(error.find("cannot create it"), std::string::npos) << error;
}

TEST(PersistStore, CorruptRecordsAreSkippedAndCounted) {
  TempDir dir;
  {
    StoreFixture fixture(dir.path(), 1);
    persist::ShardJournal& journal = fixture.store->journal(0);
    fixture.store->start();
    journal.put(persist::session_key("broken"), "\x01garbage");
    journal.put(persist::retained_key("broken"), std::string(1, '\x07'));
    journal.put("Zunknown", "x");
    put_session(journal, "good", 0xFFFFFFFF, 0);
    journal.submit();
    ASSERT_TRUE(fixture.wait_durable(0, 1));
    fixture.store->stop();
  }
  StoreFixture reopened(dir.path(), 1);
  persist::LoadedState loaded;
  std::string error;
  ASSERT_TRUE(reopened.store->load(0, &loaded, &error)) << error;
  EXPECT_EQ(loaded.sessions, 1u);
  EXPECT_EQ(loaded.corrupt_skipped, 3u);
}

// ShardState over a FakeIo with a real store: the answers wait for the committer.
class PersistGating : public ::testing::Test {
 protected:
  void SetUp() override {
    base::set_log_level(base::LogLevel::kWarning);
    fixture_ = std::make_unique<StoreFixture>(dir_.path(), 1);
    fixture_->store->start();
    io_ = std::make_unique<FakeIo>(0, 1);
    io_->now = 1000;
    state_ = std::make_unique<broker::ShardState>(0, 1, options_, *io_);
    state_->set_journal(&fixture_->store->journal(0), 0);
  }
  void TearDown() override {
    state_.reset();
    io_.reset();
  }
  broker::Connection* connect(std::string_view client_id, bool clean) {
    connections_.push_back(std::make_unique<broker::Connection>());
    broker::Connection* connection = connections_.back().get();
    connection->fd = static_cast<int>(connections_.size());
    state_->on_connection_opened(connection);
    ConnectOptions connect_options;
    connect_options.clean_session = clean;
    feed(connection, connect_bytes(client_id, connect_options));
    EXPECT_EQ(connection->state, broker::ConnectionState::kConnected);
    if (clean) {
      EXPECT_EQ(take(connection), connack_bytes(false, mqtt::ConnectReturnCode::kAccepted));
    }
    return connection;
  }
  void feed(broker::Connection* connection, std::string_view bytes) {
    state_->on_bytes(connection, std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  }
  static std::string take(broker::Connection* connection) {
    std::string bytes(connection->output.view());
    connection->output.clear();
    return bytes;
  }
  // A new persistent session subscribed to a/# at `qos`, its CONNACK and SUBACK durable and read.
  broker::Connection* persistent_subscriber(std::string_view client_id, uint8_t qos) {
    broker::Connection* connection = connect(client_id, /*clean=*/false);
    commit_turn();
    feed(connection, subscribe_bytes(3, {{"a/#", qos}}));
    commit_turn();
    take(connection);
    return connection;
  }
  // The shard loop's end of turn and its next drain, until the journal has caught up.
  void commit_turn() {
    persist::ShardJournal& journal = fixture_->store->journal(0);
    uint64_t needed = journal.batch_needed();
    state_->submit_journal();
    ASSERT_TRUE(fixture_->wait_durable(0, needed));
    state_->on_durable();
  }

  TempDir dir_;
  Options options_;
  std::unique_ptr<StoreFixture> fixture_;
  std::unique_ptr<FakeIo> io_;
  std::unique_ptr<broker::ShardState> state_;
  std::vector<std::unique_ptr<broker::Connection>> connections_;
};

TEST_F(PersistGating, RetainedPubackWaitsForItsBatchAndLaterAnswersKeepTheirOrder) {
  broker::Connection* publisher = connect("publisher", true);
  feed(publisher, publish_bytes("state/1", "on", 1, 7, /*retain=*/true) + pingreq_bytes());
  EXPECT_EQ(take(publisher), "");  // neither the PUBACK nor the PINGRESP behind it
  // The acknowledgement waits without holding the client's input (a pipelining publisher's
  // acks share batches); what it sends meanwhile is answered behind it.
  EXPECT_FALSE(publisher->input_held);
  EXPECT_EQ(publisher->answers_waiting, 2u);
  EXPECT_EQ(state_->counters().answers_held_for_store, 2u);
  commit_turn();
  EXPECT_EQ(take(publisher), ack_bytes(mqtt::PacketType::kPuback, 7) + pingresp_bytes());
  EXPECT_EQ(publisher->answers_waiting, 0u);
  // A live (not retained) QoS 1 message writes nothing and is answered at once.
  feed(publisher, publish_bytes("live/1", "x", 1, 8));
  EXPECT_EQ(take(publisher), ack_bytes(mqtt::PacketType::kPuback, 8));
}

TEST_F(PersistGating, PersistentSessionsSubackWaitsAndItsRecordReloads) {
  broker::Connection* subscriber = connect("keeper", /*clean=*/false);
  // A new persistent session: the CONNACK (and the PINGRESP behind it) waits for its record.
  feed(subscriber, pingreq_bytes());
  EXPECT_EQ(take(subscriber), "");
  EXPECT_TRUE(subscriber->input_held);
  commit_turn();
  EXPECT_EQ(take(subscriber), connack_bytes(false, mqtt::ConnectReturnCode::kAccepted) + pingresp_bytes());
  feed(subscriber, subscribe_bytes(3, {{"a/#", 1}}));
  EXPECT_EQ(take(subscriber), "");
  commit_turn();
  EXPECT_EQ(take(subscriber), suback_bytes(3, {1}));
  // A clean session's SUBACK has nothing to wait for.
  broker::Connection* passer = connect("passer", /*clean=*/true);
  feed(passer, subscribe_bytes(4, {{"b/#", 0}}));
  EXPECT_EQ(take(passer), suback_bytes(4, {0}));
  fixture_->store->stop();
  persist::LoadedState loaded;
  std::string error;
  state_.reset();
  fixture_.reset();
  StoreFixture reopened(dir_.path(), 1);
  ASSERT_TRUE(reopened.store->load(0, &loaded, &error)) << error;
  ASSERT_EQ(loaded.sessions, 1u);
  const SessionRecord& record = loaded.sessions_by_shard[0][0].record;
  EXPECT_EQ(record.client_id, "keeper");
  ASSERT_EQ(record.subscriptions.size(), 1u);
  EXPECT_EQ(record.subscriptions[0].filter, "a/#");
  EXPECT_EQ(record.subscriptions[0].qos, 1);
  // Restored into a fresh shard: offline, subscribed, and a message for it is queued.
  FakeIo io(0, 1);
  io.now = 5000;
  broker::ShardState restored(0, 1, options_, io);
  restored.restore_session(loaded.sessions_by_shard[0][0], {});
  EXPECT_EQ(restored.session_count(), 1u);
  EXPECT_EQ(restored.subscription_count(), 1u);
}


TEST_F(PersistGating, LiveMessageForAnOfflinePersistentSessionIsAcknowledgedOnceStoredAndReloads) {
  broker::Connection* keeper = persistent_subscriber("keeper", 1);
  feed(keeper, disconnect_bytes());
  commit_turn();
  broker::Connection* publisher = connect("publisher", /*clean=*/true);
  feed(publisher, publish_bytes("a/1", "queued", 1, 8) + pingreq_bytes());
  // Queued for the offline session: the PUBACK (and the PINGRESP behind it) wait for the store,
  // while the client's input is not held.
  EXPECT_EQ(take(publisher), "");
  EXPECT_FALSE(publisher->input_held);
  // Its records are written when the batch leaves (ShardState::write_deferred_records).
  EXPECT_EQ(state_->stored_messages(), 0u);
  commit_turn();
  EXPECT_EQ(state_->stored_messages(), 1u);
  EXPECT_EQ(take(publisher), ack_bytes(mqtt::PacketType::kPuback, 8) + pingresp_bytes());
  // A message no persistent session takes is answered at once.
  feed(publisher, publish_bytes("b/1", "live", 1, 9));
  EXPECT_EQ(take(publisher), ack_bytes(mqtt::PacketType::kPuback, 9));
  fixture_->store->stop();
  state_.reset();
  fixture_.reset();

  // Reloaded into a fresh shard, the session gets its message when it comes back.
  StoreFixture reopened(dir_.path(), 1);
  persist::LoadedState loaded;
  std::string error;
  ASSERT_TRUE(reopened.store->load(0, &loaded, &error)) << error;
  ASSERT_EQ(loaded.outgoing_messages, 1u);
  broker::ShardState::RestoredBodies bodies;
  for (const persist::BodyRecord& body : loaded.bodies) {
    bodies.emplace(body.id, broker::MessageRef::adopt(broker::Message::create(body.topic, body.payload, body.qos,
                                                                              body.retain, {})));
  }
  reopened.store->start();
  state_ = std::make_unique<broker::ShardState>(0, 1, options_, *io_);
  state_->set_journal(&reopened.store->journal(0), 0);
  state_->restore_session(loaded.sessions_by_shard[0][0], bodies);
  bodies.clear();
  EXPECT_EQ(state_->stored_messages(), 1u);
  connections_.clear();
  keeper = connect("keeper", /*clean=*/false);
  EXPECT_EQ(take(keeper),
            connack_bytes(true, mqtt::ConnectReturnCode::kAccepted) + publish_bytes("a/1", "queued", 1, 1));
  // Acknowledged: its records go (the body with its last entry).
  feed(keeper, ack_bytes(mqtt::PacketType::kPuback, 1));
  EXPECT_EQ(state_->stored_messages(), 0u);
  persist::ShardJournal& journal = reopened.store->journal(0);
  uint64_t needed = journal.batch_needed();
  journal.submit();
  ASSERT_TRUE(reopened.wait_durable(0, needed));
  state_.reset();
  reopened.store->stop();
  persist::LoadedState after;
  ASSERT_TRUE(reopened.store->load(0, &after, &error)) << error;
  EXPECT_EQ(after.outgoing_messages, 0u);
  EXPECT_TRUE(after.bodies.empty());
}

TEST_F(PersistGating, Qos2ToAPersistentSessionLeavesOnlyOnceItsRecordIsDurable) {
  broker::Connection* keeper = persistent_subscriber("keeper", 2);
  broker::Connection* publisher = connect("publisher", /*clean=*/true);
  feed(publisher, publish_bytes("a/1", "once", 2, 8) + publish_bytes("a/2", "after", 1, 9));
  // Not sent before its record is durable (a crash would forget it while the client has it);
  // the QoS 1 message behind it waits in the queue too, keeping the order.
  EXPECT_EQ(take(keeper), "");
  EXPECT_EQ(take(publisher), "");
  commit_turn();
  EXPECT_EQ(take(keeper), publish_bytes("a/1", "once", 2, 1) + publish_bytes("a/2", "after", 1, 2));
  EXPECT_EQ(take(publisher), ack_bytes(mqtt::PacketType::kPubrec, 8) + ack_bytes(mqtt::PacketType::kPuback, 9));
  // PUBREC: the PUBREL waits for the record saying so.
  feed(keeper, ack_bytes(mqtt::PacketType::kPubrec, 1));
  EXPECT_EQ(take(keeper), "");
  commit_turn();
  EXPECT_EQ(take(keeper), ack_bytes(mqtt::PacketType::kPubrel, 1));
}

TEST_F(PersistGating, Qos2FromTheQueueLeavesOnlyOnceItsPacketIdIsDurable) {
  // A window of one: the second message waits in the queue (its "queued" record durable) and
  // moves to the window when the first completes; its PUBLISH, with the packet id it gets then,
  // leaves only once the record naming that id is durable (else a crash would restore it as
  // queued and send it again under a new id).
  options_.max_inflight = 1;
  state_ = std::make_unique<broker::ShardState>(0, 1, options_, *io_);
  state_->set_journal(&fixture_->store->journal(0), 0);
  broker::Connection* keeper = persistent_subscriber("keeper", 2);
  broker::Connection* publisher = connect("publisher", /*clean=*/true);
  feed(publisher, publish_bytes("a/1", "first", 2, 8) + publish_bytes("a/2", "second", 2, 9));
  commit_turn();
  EXPECT_EQ(take(keeper), publish_bytes("a/1", "first", 2, 1));
  feed(keeper, ack_bytes(mqtt::PacketType::kPubrec, 1));
  commit_turn();
  EXPECT_EQ(take(keeper), ack_bytes(mqtt::PacketType::kPubrel, 1));
  feed(keeper, ack_bytes(mqtt::PacketType::kPubcomp, 1));
  EXPECT_EQ(take(keeper), "");  // the second one's record with its packet id is not durable yet
  commit_turn();
  EXPECT_EQ(take(keeper), publish_bytes("a/2", "second", 2, 2));
}

// A session's queue held for a batch still open when an earlier batch becomes durable stays
// held, and goes once its own batch is durable (the held list kept its client id).
TEST_F(PersistGating, AQueueHeldForALaterBatchGoesWhenThatBatchIsDurable) {
  broker::Connection* keeper = persistent_subscriber("keeper", 2);
  broker::Connection* publisher = connect("publisher", /*clean=*/true);
  persist::ShardJournal& journal = fixture_->store->journal(0);
  feed(publisher, publish_bytes("r/1", "x", 1, 7, /*retain=*/true));
  uint64_t earlier = journal.batch_needed();
  state_->submit_journal();  // with the committer
  // Its record goes in the next batch, still open: the keeper's queue waits for that one.
  feed(publisher, publish_bytes("a/1", "two", 2, 8));
  ASSERT_TRUE(fixture_->wait_durable(0, earlier));
  state_->on_durable();
  EXPECT_EQ(take(keeper), "");
  commit_turn();
  EXPECT_EQ(take(keeper), publish_bytes("a/1", "two", 2, 1));
}

// Deferred records are written when their batch leaves: a QoS 0 message queued between two
// QoS 1 ones (behind a full window, online) has no record, and must not hide the older one.
TEST_F(PersistGating, DeferredQueueRecordsAreWrittenPastQos0EntriesBetweenThem) {
  options_.max_inflight = 1;
  state_ = std::make_unique<broker::ShardState>(0, 1, options_, *io_);
  state_->set_journal(&fixture_->store->journal(0), 0);
  broker::Connection* keeper = persistent_subscriber("keeper", 1);
  broker::Connection* publisher = connect("publisher", /*clean=*/true);
  feed(publisher, publish_bytes("a/1", "sent", 1, 8) + publish_bytes("a/2", "queued", 1, 9) +
                      publish_bytes("a/3", "qos0", 0) + publish_bytes("a/4", "last", 1, 10));
  EXPECT_EQ(state_->stored_messages(), 0u);  // deferred
  commit_turn();
  // The one in the window and both QoS 1 ones in the queue.
  EXPECT_EQ(state_->stored_messages(), 3u);
  EXPECT_EQ(take(publisher), ack_bytes(mqtt::PacketType::kPuback, 8) + ack_bytes(mqtt::PacketType::kPuback, 9) +
                                 ack_bytes(mqtt::PacketType::kPuback, 10));
  EXPECT_EQ(take(keeper), publish_bytes("a/1", "sent", 1, 1));
}

// Two shards on one store: the retained topic's owner is the other shard, so the publisher's
// PUBACK waits for the peer's barrier ack, and the peer gives it only once its own batch (the
// retained record) is durable: the barrier extended, not a second mechanism.
TEST(PersistCrossShard, RetainedPubackWaitsForTheOwnerShardsDurableRecord) {
  base::set_log_level(base::LogLevel::kWarning);
  TempDir dir;
  StoreFixture fixture(dir.path(), 2);
  fixture.store->start();
  Options options;
  std::vector<std::unique_ptr<FakeIo>> ios;
  std::vector<std::unique_ptr<broker::ShardState>> shards;
  for (uint32_t shard = 0; shard < 2; ++shard) {
    ios.push_back(std::make_unique<FakeIo>(shard, 2));
    ios.back()->now = 1000;
    shards.push_back(std::make_unique<broker::ShardState>(shard, 2, options, *ios.back()));
    shards.back()->set_journal(&fixture.store->journal(shard), 0);
  }
  auto carry = [&](uint32_t from, uint32_t to) {
    size_t carried = 0;
    for (FakeIo::Post& post : ios[from]->take_posts()) {
      if (post.target_shard != to) {
        ios[from]->posts.push_back(post);
        continue;
      }
      shards[to]->on_cross_shard(post.item);
      ++carried;
    }
    return carried;
  };
  std::string publisher_id;
  for (int i = 0; publisher_id.empty(); ++i) {
    std::string candidate = "pub-" + std::to_string(i);
    if (broker::owner_shard_of(candidate, 2) == 0) publisher_id = candidate;
  }
  std::string topic;
  for (int i = 0; topic.empty(); ++i) {
    std::string candidate = "owned/" + std::to_string(i);
    if (broker::owner_shard_of(candidate, 2) == 1) topic = candidate;
  }
  broker::Connection publisher;
  publisher.fd = 1;
  auto feed = [&](std::string_view bytes) {
    shards[0]->on_bytes(&publisher, std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  };
  shards[0]->on_connection_opened(&publisher);
  feed(connect_bytes(publisher_id));
  ASSERT_EQ(publisher.state, broker::ConnectionState::kConnected);
  publisher.output.clear();
  feed(publish_bytes(topic, "kept", 1, 5, /*retain=*/true));
  EXPECT_EQ(fixture.store->journal(0).batch_needed(), 0u);  // not the owner: shard 0 writes nothing
  EXPECT_EQ(publisher.output.view(), "");
  EXPECT_EQ(carry(0, 1), 2u);  // the retained update, then the barrier request
  EXPECT_TRUE(fixture.store->journal(1).has_changes());
  EXPECT_EQ(carry(1, 0), 0u);  // the ack waits for shard 1's batch
  EXPECT_EQ(publisher.output.view(), "");
  uint64_t needed = fixture.store->journal(1).batch_needed();
  fixture.store->journal(1).submit();
  ASSERT_TRUE(fixture.wait_durable(1, needed));
  shards[1]->on_durable();
  EXPECT_EQ(carry(1, 0), 1u);
  EXPECT_EQ(publisher.output.view(), ack_bytes(mqtt::PacketType::kPuback, 5));
  shards.clear();
  ios.clear();
}

}  // namespace
}  // namespace coremq::testing
