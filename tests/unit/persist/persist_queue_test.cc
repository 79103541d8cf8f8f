// Durable queues (src/persist records B/q/i and Store::load's repairs): body and outgoing
// records round-trip and refuse states that do not fit; one session's keys are short and sort
// in sequence order inside its own range; a load drops what expired, deletes orphans and
// unreferenced bodies, gives each shard its own copy of a body that sessions now on different
// shards share, and converts a format-1 store (keys by client id).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "base/log.h"
#include "broker/shard_state.h"
#include "persist/records.h"
#include "persist/store.h"
#include "persist_fixture.h"

namespace coremq::testing {
namespace {

using persist::BodyRecord;
using persist::OutgoingRecord;
using persist::OutgoingState;

BodyRecord sample_body(uint64_t id) {
  BodyRecord body;
  body.id = id;
  body.topic = "fleet/7/temp";
  body.payload = std::string("2\0.5", 4);
  body.property_bytes = "\x01\x01";
  body.qos = 2;
  body.retain = true;
  body.expires_at_unix_ms = 1'900'000'000'000;
  return body;
}

OutgoingRecord sample_outgoing(uint64_t session_number, uint64_t sequence, uint64_t body_id,
                               OutgoingState state, uint16_t packet_id) {
  OutgoingRecord record;
  record.session_number = session_number;
  record.sequence = sequence;
  record.body_id = body_id;
  record.state = state;
  record.packet_id = packet_id;
  record.qos = 2;
  record.retain_flag = true;
  record.subscription_ids = {7, 268'435'455};
  record.shared_group = "g/fleet/#";
  return record;
}

TEST(PersistQueueRecords, BodyAndOutgoingRoundTrip) {
  BodyRecord body = sample_body(uint64_t{3} << 48 | 9);
  std::string value;
  persist::encode_body(body, &value);
  BodyRecord decoded;
  std::string error;
  ASSERT_TRUE(persist::decode_body(persist::body_key(body.id), value, &decoded, &error)) << error;
  EXPECT_EQ(decoded.id, body.id);
  EXPECT_EQ(decoded.topic, body.topic);
  EXPECT_EQ(decoded.payload, body.payload);
  EXPECT_EQ(decoded.property_bytes, body.property_bytes);
  EXPECT_EQ(decoded.qos, 2);
  EXPECT_TRUE(decoded.retain);
  EXPECT_EQ(decoded.expires_at_unix_ms, body.expires_at_unix_ms);

  for (auto [state, body_id, packet_id] : {std::tuple{OutgoingState::kQueued, uint64_t{5}, uint16_t{0}},
                                           std::tuple{OutgoingState::kPublishSent, uint64_t{5}, uint16_t{65535}},
                                           std::tuple{OutgoingState::kPubrelSent, uint64_t{0}, uint16_t{1}}}) {
    OutgoingRecord record = sample_outgoing(uint64_t{2} << 48 | 7, 42, body_id, state, packet_id);
    persist::encode_outgoing(record, &value);
    OutgoingRecord back;
    ASSERT_TRUE(
        persist::decode_outgoing(persist::outgoing_key(uint64_t{2} << 48 | 7, 42), value, &back, &error))
        << error;
    EXPECT_EQ(back.session_number, uint64_t{2} << 48 | 7);
    EXPECT_EQ(back.sequence, 42u);
    EXPECT_EQ(back.state, state);
    EXPECT_EQ(back.body_id, body_id);
    EXPECT_EQ(back.packet_id, packet_id);
    EXPECT_EQ(back.subscription_ids, record.subscription_ids);
    EXPECT_EQ(back.shared_group, "g/fleet/#");
    std::string again;
    persist::encode_outgoing(back, &again);
    EXPECT_EQ(again, value);
  }
}

TEST(PersistQueueRecords, StatesThatDoNotFitAreRefused) {
  std::string value, error;
  OutgoingRecord back;
  std::string key = persist::outgoing_key(3, 1);
  // Queued with a packet id; sent without one; PUBREL sent with a body, or for QoS 1.
  OutgoingRecord queued_with_id = sample_outgoing(3, 1, 5, OutgoingState::kQueued, 3);
  OutgoingRecord sent_without_id = sample_outgoing(3, 1, 5, OutgoingState::kPublishSent, 0);
  OutgoingRecord pubrel_with_body = sample_outgoing(3, 1, 5, OutgoingState::kPubrelSent, 3);
  OutgoingRecord pubrel_qos1 = sample_outgoing(3, 1, 0, OutgoingState::kPubrelSent, 3);
  pubrel_qos1.qos = 1;
  for (const OutgoingRecord& bad : {queued_with_id, sent_without_id, pubrel_with_body, pubrel_qos1}) {
    persist::encode_outgoing(bad, &value);
    error.clear();
    EXPECT_FALSE(persist::decode_outgoing(key, value, &back, &error));
    EXPECT_FALSE(error.empty());
  }
  OutgoingRecord good = sample_outgoing(3, 1, 5, OutgoingState::kQueued, 0);
  persist::encode_outgoing(good, &value);
  EXPECT_FALSE(persist::decode_outgoing(key, value + "x", &back, &error));  // trailing bytes
  EXPECT_FALSE(persist::decode_outgoing(key, value.substr(0, value.size() - 1), &back, &error));
  EXPECT_FALSE(persist::decode_outgoing(key.substr(0, 5), value, &back, &error));
  EXPECT_FALSE(persist::decode_outgoing(key + "x", value, &back, &error));
  EXPECT_FALSE(persist::decode_outgoing(std::string("q") + std::string(8, '\0') + key.substr(9), value, &back,
                                        &error));  // session number 0
  EXPECT_FALSE(persist::decode_outgoing(persist::legacy_outgoing_key("c", 1), value, &back, &error));
  uint64_t number = 0;
  uint16_t packet_id = 0;
  EXPECT_FALSE(
      persist::decode_incoming_qos2(persist::incoming_qos2_key(3, 9), "xx", &number, &packet_id, &error));
  ASSERT_TRUE(persist::decode_incoming_qos2(persist::incoming_qos2_key(3, 9), persist::incoming_qos2_value(),
                                            &number, &packet_id, &error));
  EXPECT_EQ(number, 3u);
  EXPECT_EQ(packet_id, 9);
  // Format 1's keys still parse, for the load's conversion.
  std::string client;
  ASSERT_TRUE(persist::decode_legacy_incoming_qos2(persist::legacy_incoming_qos2_key("c", 9),
                                                   persist::incoming_qos2_value(), &client, &packet_id,
                                                   &error));
  EXPECT_EQ(client, "c");
  EXPECT_EQ(packet_id, 9);
  std::string legacy_client;
  ASSERT_TRUE(persist::decode_legacy_outgoing(persist::legacy_outgoing_key("c", 1), value, &back,
                                              &legacy_client, &error))
      << error;
  EXPECT_EQ(legacy_client, "c");
  EXPECT_EQ(back.session_number, 0u);
  EXPECT_EQ(back.sequence, 1u);
}

TEST(PersistQueueRecords, KeysAreShortAndOneSessionsSortInSequenceOrderInsideItsRange) {
  // q + number (8, big-endian) + sequence (8, big-endian): the bytes, whatever the client id.
  EXPECT_EQ(persist::outgoing_key(uint64_t{1} << 48 | 0x0203, 0x0405),
            std::string("q\x00\x01\x00\x00\x00\x00\x02\x03\x00\x00\x00\x00\x00\x00\x04\x05", 17));
  EXPECT_EQ(persist::incoming_qos2_key(5, 0x0607),
            std::string("i\x00\x00\x00\x00\x00\x00\x00\x05\x06\x07", 11));
  uint64_t number = 0, sequence = 0;
  ASSERT_TRUE(persist::parse_outgoing_key(persist::outgoing_key(77, 1u << 20), &number, &sequence));
  EXPECT_EQ(number, 77u);
  EXPECT_EQ(sequence, 1u << 20);
  EXPECT_LT(persist::outgoing_key(7, 2), persist::outgoing_key(7, 10));
  EXPECT_LT(persist::outgoing_key(7, 255), persist::outgoing_key(7, 256));
  auto [begin, end] = persist::outgoing_range(7);
  for (uint64_t sequence_in : {uint64_t{1}, uint64_t{1} << 40, ~uint64_t{0}}) {
    std::string key = persist::outgoing_key(7, sequence_in);
    EXPECT_LE(begin, key);
    EXPECT_LT(key, end);
  }
  // Every other session's keys, and every other record type's, are outside 7's range.
  for (uint64_t other : {uint64_t{6}, uint64_t{8}, uint64_t{7} << 8, uint64_t{7} << 48, ~uint64_t{0}}) {
    std::string key = persist::outgoing_key(other, 1);
    EXPECT_TRUE(key < begin || key >= end) << other;
    key = persist::incoming_qos2_key(7, 1);
    EXPECT_TRUE(key < begin || key >= end);
  }
  auto [incoming_begin, incoming_end] = persist::incoming_qos2_range(7);
  EXPECT_LE(incoming_begin, persist::incoming_qos2_key(7, 65535));
  EXPECT_LT(persist::incoming_qos2_key(7, 65535), incoming_end);
  EXPECT_GE(persist::incoming_qos2_key(8, 1), incoming_end);
  // Every type's prefix is its key byte (the fuzzer and the load's range deletes build keys
  // from it).
  using persist::RecordType;
  for (RecordType type : {RecordType::kMeta, RecordType::kRetained, RecordType::kSession, RecordType::kBody,
                          RecordType::kOutgoing, RecordType::kIncomingQos2, RecordType::kLegacyOutgoing,
                          RecordType::kLegacyIncomingQos2}) {
    EXPECT_EQ(persist::key_prefix(type), std::string(1, static_cast<char>(type)));
  }
  EXPECT_EQ(persist::outgoing_key(1, 1).substr(0, 1), persist::key_prefix(RecordType::kOutgoing));
  // Format 1's keys sort apart from format 2's: the load deletes their whole range.
  EXPECT_LT(persist::legacy_outgoing_key("zzz", 1), "R");
  EXPECT_LT(persist::legacy_incoming_qos2_key("zzz", 1), "J");
  EXPECT_GT(persist::outgoing_key(1, 1), "R");
  EXPECT_GT(persist::incoming_qos2_key(1, 1), "J");
}

void put_body(persist::ShardJournal& journal, const BodyRecord& body) {
  std::string value;
  persist::encode_body(body, &value);
  journal.put(persist::body_key(body.id), value);
}

void put_outgoing(persist::ShardJournal& journal, const OutgoingRecord& record) {
  std::string value;
  persist::encode_outgoing(record, &value);
  journal.put(persist::outgoing_key(record.session_number, record.sequence), value);
}

// session_number 0: a format-1 record.
void put_session_record(persist::ShardJournal& journal, const std::string& client_id,
                        uint64_t session_number) {
  persist::SessionRecord record;
  record.client_id = client_id;
  record.session_number = session_number;
  record.expiry_seconds = 3600;
  std::string value;
  persist::encode_session(record, &value);
  journal.put(persist::session_key(client_id), value);
}

// Two client ids owned by different shards when there are two.
std::pair<std::string, std::string> ids_on_two_shards() {
  std::string first = "keeper-0";
  for (int i = 1;; ++i) {
    std::string second = "keeper-" + std::to_string(i);
    if (broker::owner_shard_of(second, 2) != broker::owner_shard_of(first, 2)) return {first, second};
  }
}

TEST(PersistQueueLoad, RepairsOrphansExpiryAndSharedBodies) {
  base::set_log_level(base::LogLevel::kError);
  TempDir dir;
  auto [one, two] = ids_on_two_shards();
  const int64_t now = 1'800'000'000'000;
  {
    StoreFixture fixture(dir.path(), 1);
    persist::ShardJournal& journal = fixture.store->journal(0);
    put_session_record(journal, one, 1);
    put_session_record(journal, two, 2);
    BodyRecord shared = sample_body(11);
    BodyRecord expired = sample_body(12);
    expired.expires_at_unix_ms = now - 1;
    BodyRecord unreferenced = sample_body(13);
    for (const BodyRecord& body : {shared, expired, unreferenced}) put_body(journal, body);
    // Both sessions queued `shared` (one shard wrote them all); `one` also an expired message, a
    // PUBREL-sent exchange and a message whose body is missing; a session that is gone left one.
    put_outgoing(journal, sample_outgoing(1, 1, 11, OutgoingState::kPublishSent, 4));
    put_outgoing(journal, sample_outgoing(1, 2, 12, OutgoingState::kQueued, 0));
    put_outgoing(journal, sample_outgoing(1, 3, 0, OutgoingState::kPubrelSent, 5));
    put_outgoing(journal, sample_outgoing(1, 4, 99, OutgoingState::kQueued, 0));
    put_outgoing(journal, sample_outgoing(2, 1, 11, OutgoingState::kQueued, 0));
    put_outgoing(journal, sample_outgoing(3, 1, 11, OutgoingState::kQueued, 0));  // number 3: gone
    journal.put(persist::incoming_qos2_key(1, 77), persist::incoming_qos2_value());
    journal.put(persist::incoming_qos2_key(3, 78), persist::incoming_qos2_value());
    journal.submit();
    fixture.store->start();
    ASSERT_TRUE(fixture.wait_durable(0, 1));
    fixture.store->stop();
  }
  StoreFixture reopened(dir.path(), 2);
  persist::LoadedState loaded;
  std::string error;
  ASSERT_TRUE(reopened.store->load(now, &loaded, &error)) << error;
  EXPECT_EQ(loaded.sessions, 2u);
  EXPECT_EQ(loaded.expired_dropped, 1u);   // the expired message
  EXPECT_EQ(loaded.corrupt_skipped, 1u);   // the missing body
  EXPECT_EQ(loaded.outgoing_messages, 3u);  // one: sent + PUBREL sent; two: queued
  // The shared body is kept for one shard and copied (a new id) for the other.
  ASSERT_EQ(loaded.bodies.size(), 2u);
  EXPECT_NE(loaded.bodies[0].id, loaded.bodies[1].id);
  EXPECT_EQ(loaded.bodies[0].payload, loaded.bodies[1].payload);
  std::vector<uint64_t> named;
  for (uint32_t shard = 0; shard < 2; ++shard) {
    for (const persist::LoadedSession& session : loaded.sessions_by_shard[shard]) {
      for (const OutgoingRecord& entry : session.outgoing) {
        if (entry.body_id != 0) named.push_back(entry.body_id);
      }
      if (session.record.client_id == one) {
        ASSERT_EQ(session.outgoing.size(), 2u);
        EXPECT_EQ(session.outgoing[0].sequence, 1u);
        EXPECT_EQ(session.outgoing[1].state, OutgoingState::kPubrelSent);
        EXPECT_EQ(session.incoming_qos2, std::vector<uint16_t>{77});
      }
    }
  }
  ASSERT_EQ(named.size(), 2u);
  EXPECT_NE(named[0], named[1]);
  // New ids start above every loaded one, whichever shard makes them.
  constexpr uint64_t kSequence = (uint64_t{1} << 48) - 1;
  uint64_t fresh = reopened.store->journal(1).next_body_id();
  EXPECT_EQ(fresh >> 48, 1u);
  for (const BodyRecord& body : loaded.bodies) EXPECT_GT(fresh & kSequence, body.id & kSequence);
  // The repairs were written: a second load finds nothing to repair and the same state.
  persist::LoadedState again;
  ASSERT_TRUE(reopened.store->load(now, &again, &error)) << error;
  EXPECT_EQ(again.expired_dropped, 0u);
  EXPECT_EQ(again.corrupt_skipped, 0u);
  EXPECT_EQ(again.outgoing_messages, 3u);
  EXPECT_EQ(again.bodies.size(), 2u);
  EXPECT_EQ(again.converted, 0u);
  // New session numbers, too, start above every loaded one (3 was an orphan's, deleted by the
  // first load, so it may be given again).
  EXPECT_GT(reopened.store->journal(0).next_session_number() & kSequence, 2u);
}

// A store written by a build of format 1: the marker says 1, sessions have no number, their
// outgoing and incoming QoS 2 records are keyed by client id. The load converts it once.
TEST(PersistQueueLoad, AFormatOneStoreIsConvertedAtLoad) {
  base::set_log_level(base::LogLevel::kError);
  TempDir dir;
  auto [one, two] = ids_on_two_shards();
  const int64_t now = 1'800'000'000'000;
  auto legacy_outgoing = [](persist::ShardJournal& journal, const std::string& client_id,
                            OutgoingRecord record) {
    std::string value;
    persist::encode_outgoing(record, &value);
    journal.put(persist::legacy_outgoing_key(client_id, record.sequence), value);
  };
  {
    StoreFixture fixture(dir.path(), 1);
    persist::ShardJournal& journal = fixture.store->journal(0);
    journal.put("Mformat", std::string(1, '\x01'));
    put_session_record(journal, one, 0);
    put_session_record(journal, two, 0);
    put_body(journal, sample_body(11));
    // Written out of order on purpose: the load keeps key (= sequence) order.
    legacy_outgoing(journal, one, sample_outgoing(0, 9, 11, OutgoingState::kQueued, 0));
    legacy_outgoing(journal, one, sample_outgoing(0, 3, 11, OutgoingState::kPublishSent, 4));
    legacy_outgoing(journal, one, sample_outgoing(0, 5, 0, OutgoingState::kPubrelSent, 6));
    legacy_outgoing(journal, two, sample_outgoing(0, 1, 11, OutgoingState::kQueued, 0));
    legacy_outgoing(journal, "gone", sample_outgoing(0, 1, 11, OutgoingState::kQueued, 0));
    journal.put(persist::legacy_incoming_qos2_key(one, 77), persist::incoming_qos2_value());
    journal.put(persist::legacy_incoming_qos2_key("gone", 78), persist::incoming_qos2_value());
    journal.submit();
    fixture.store->start();
    ASSERT_TRUE(fixture.wait_durable(0, 1));
    fixture.store->stop();
  }
  // Every session with its records, whatever the shard count now.
  auto check = [&](const persist::LoadedState& loaded, uint32_t shards, std::vector<uint64_t>* numbers) {
    EXPECT_EQ(loaded.sessions, 2u);
    EXPECT_EQ(loaded.corrupt_skipped, 0u);
    EXPECT_EQ(loaded.outgoing_messages, 4u);
    for (uint32_t shard = 0; shard < shards; ++shard) {
      for (const persist::LoadedSession& session : loaded.sessions_by_shard[shard]) {
        EXPECT_EQ(broker::owner_shard_of(session.record.client_id, shards), shard);
        EXPECT_NE(session.record.session_number, 0u);
        numbers->push_back(session.record.session_number);
        for (const OutgoingRecord& entry : session.outgoing) {
          EXPECT_EQ(entry.session_number, session.record.session_number);
        }
        if (session.record.client_id == one) {
          ASSERT_EQ(session.outgoing.size(), 3u);
          EXPECT_EQ(session.outgoing[0].sequence, 3u);
          EXPECT_EQ(session.outgoing[0].state, OutgoingState::kPublishSent);
          EXPECT_EQ(session.outgoing[0].packet_id, 4);
          EXPECT_EQ(session.outgoing[1].state, OutgoingState::kPubrelSent);
          EXPECT_EQ(session.outgoing[2].sequence, 9u);
          EXPECT_EQ(session.incoming_qos2, std::vector<uint16_t>{77});
        } else {
          ASSERT_EQ(session.outgoing.size(), 1u);
          EXPECT_TRUE(session.incoming_qos2.empty());
        }
      }
    }
    ASSERT_EQ(numbers->size(), 2u);
    EXPECT_NE((*numbers)[0], (*numbers)[1]);
  };
  std::vector<uint64_t> numbers;
  {
    StoreFixture reopened(dir.path(), 2);
    persist::LoadedState loaded;
    std::string error;
    ASSERT_TRUE(reopened.store->load(now, &loaded, &error)) << error;
    // Two sessions renumbered, four outgoing records and one QoS 2 id rekeyed.
    EXPECT_EQ(loaded.converted, 7u);
    check(loaded, 2, &numbers);
  }
  // The conversion was written (and the format-1 keys deleted, the orphans with them): a second
  // load, with another shard count, converts nothing and finds the same sessions and numbers.
  StoreFixture again_fixture(dir.path(), 3);
  persist::LoadedState again;
  std::string error;
  ASSERT_TRUE(again_fixture.store->load(now, &again, &error)) << error;
  EXPECT_EQ(again.converted, 0u);
  std::vector<uint64_t> numbers_again;
  check(again, 3, &numbers_again);
  std::sort(numbers.begin(), numbers.end());
  std::sort(numbers_again.begin(), numbers_again.end());
  EXPECT_EQ(numbers, numbers_again);
}

// The marker a load writes is the one open() checks: a store of a format newer than this build
// knows is refused with a message that says so.
TEST(PersistQueueLoad, AStoreOfANewerFormatIsRefused) {
  base::set_log_level(base::LogLevel::kError);
  TempDir dir;
  {
    StoreFixture fixture(dir.path(), 1);
    persist::ShardJournal& journal = fixture.store->journal(0);
    journal.put("Mformat", std::string(1, static_cast<char>(persist::kStoreFormat + 1)));
    journal.submit();
    fixture.store->start();
    ASSERT_TRUE(fixture.wait_durable(0, 1));
    fixture.store->stop();
  }
  PersistenceOptions options;
  options.engine = PersistenceOptions::Engine::kRocksDb;
  options.data_dir = dir.path();
  std::string error;
  EXPECT_EQ(persist::Store::open(options, 1, nullptr, &error), nullptr);
  EXPECT_NE(error.find("newer coremq"), std::string::npos) << error;
}

// The encoded value of a retained record of `topic` with `payload` (QoS 1, stamp 1 << 8).
std::string retained(const std::string& topic, const std::string& payload) {
  std::string value;
  persist::encode_retained(persist::RetainedRecord{topic, payload, "", 1, 1 << 8, 0}, &value);
  return value;
}

// The store under dir as a fresh one-shard broker loads it (no deadline passed).
bool reload(const std::string& dir, persist::LoadedState* loaded) {
  StoreFixture reopened(dir, 1);
  std::string error;
  bool ok = reopened.store->load(0, loaded, &error);
  EXPECT_TRUE(ok) << error;
  return ok;
}

// The retained records as loaded, "topic=first five bytes of the payload", sorted.
std::vector<std::string> loaded_topics(const persist::LoadedState& loaded) {
  std::vector<std::string> topics;
  for (const persist::RetainedRecord& record : loaded.retained) topics.push_back(record.topic + "=" + record.payload.substr(0, 5));
  std::sort(topics.begin(), topics.end());
  return topics;
}

TEST(PersistJournal, WhatIsCreatedAndErasedInOneBatchNeverReachesTheStore) {
  base::set_log_level(base::LogLevel::kError);
  TempDir dir;
  {
    StoreFixture fixture(dir.path(), 1);
    persist::ShardJournal& journal = fixture.store->journal(0);
    fixture.store->start();
    journal.create(persist::retained_key("a"), retained("a", "1"));
    journal.erase(persist::retained_key("a"));  // same batch: elided
    EXPECT_EQ(journal.changes_elided(), 1u);
    EXPECT_TRUE(journal.has_changes());  // the batch still leaves (answers wait for its number)
    journal.create(persist::retained_key("b"), retained("b", "1"));
    journal.put(persist::retained_key("b"), retained("b", "2"));  // replaces the creating put
    journal.submit();
    ASSERT_TRUE(fixture.wait_durable(0, 1));
    journal.erase(persist::retained_key("b"));  // created in an earlier batch: a real delete
    journal.create(persist::retained_key("c"), retained("c", std::string(100 * 1024, 'x')));
    journal.create(persist::retained_key("a"), retained("a", "again"));  // a key elided before
    journal.submit();
    ASSERT_TRUE(fixture.wait_durable(0, 2));
    EXPECT_EQ(journal.changes_elided(), 1u);
    fixture.store->stop();
  }
  persist::LoadedState loaded;
  ASSERT_TRUE(reload(dir.path(), &loaded));
  EXPECT_EQ(loaded_topics(loaded), (std::vector<std::string>{"a=again", "c=xxxxx"}));
}

// Queue entries and bodies find their record in the open batch through the slot their holder
// keeps (ShardJournal::create_tracked): one created and erased in one batch costs nothing, also
// after a put replaced it; a slot whose batch left, or that a range delete passed, or that now
// names another key's op, only writes the change as it comes and never drops another record.
TEST(PersistJournal, TrackedRecordsAreElidedThroughTheirSlotAndStaleSlotsOnlyWrite) {
  base::set_log_level(base::LogLevel::kError);
  TempDir dir;
  std::string value;
  persist::encode_outgoing(sample_outgoing(1, 1, 0, OutgoingState::kPubrelSent, 5), &value);
  auto key = [](uint64_t sequence) { return persist::outgoing_key(1, sequence); };
  {
    StoreFixture fixture(dir.path(), 1);
    persist::ShardJournal& journal = fixture.store->journal(0);
    fixture.store->start();
    persist::JournalSlot first_of_batch_1;
    journal.create_tracked(key(10), value, &first_of_batch_1);
    put_session_record(journal, "client-1", 1);
    put_session_record(journal, "client-2", 2);
    persist::JournalSlot replaced;
    persist::JournalSlot kept;
    persist::JournalSlot left_with_batch;
    journal.create_tracked(key(1), value, &replaced);
    journal.put_tracked(key(1), value, &replaced);  // still new: replaces the creating put
    journal.erase_tracked(key(1), &replaced);
    EXPECT_EQ(journal.changes_elided(), 1u);
    journal.create_tracked(key(2), value, &left_with_batch);
    journal.create_tracked(key(3), value, &kept);
    journal.submit();
    ASSERT_TRUE(fixture.wait_durable(0, 1));
    // Batch 2: its first op takes index 0, the index first_of_batch_1 still names.
    persist::JournalSlot first_of_batch_2;
    journal.create_tracked(key(11), value, &first_of_batch_2);
    ASSERT_EQ(first_of_batch_2.index, first_of_batch_1.index);
    journal.erase_tracked(key(10), &first_of_batch_1);  // another key's op now: a real delete
    journal.erase_tracked(key(2), &left_with_batch);     // in the store: a real delete
    persist::JournalSlot before_range;
    journal.create_tracked(key(4), value, &before_range);
    auto [begin, end] = persist::outgoing_range(2);  // another session's: does not cover key(4)
    journal.erase_range(begin, end);
    journal.put_tracked(key(4), value, &before_range);  // past the range delete: a plain put
    EXPECT_EQ(before_range.index, persist::JournalSlot::kNone);
    journal.erase_tracked(key(4), &before_range);
    EXPECT_EQ(journal.changes_elided(), 1u);
    journal.submit();
    ASSERT_TRUE(fixture.wait_durable(0, 2));
    fixture.store->stop();
  }
  persist::LoadedState loaded;
  ASSERT_TRUE(reload(dir.path(), &loaded));
  std::vector<uint64_t> sequences;
  for (const persist::LoadedSession& session : loaded.sessions_by_shard[0]) {
    if (session.record.session_number != 1) continue;
    for (const OutgoingRecord& entry : session.outgoing) sequences.push_back(entry.sequence);
  }
  EXPECT_EQ(sequences, (std::vector<uint64_t>{3, 11}));
}

// Erases of three or more queue entries (or bodies) with consecutive numbers leave as one range
// delete (ShardJournal::submit), which must remove exactly them: not the entry before or after
// the run, not one in a gap, not another session's.
TEST(PersistJournal, RunsOfErasedQueueEntriesAndBodiesBecomeRangeDeletesOfExactlyThem) {
  base::set_log_level(base::LogLevel::kError);
  TempDir dir;
  {
    StoreFixture fixture(dir.path(), 1);
    persist::ShardJournal& journal = fixture.store->journal(0);
    fixture.store->start();
    put_session_record(journal, "client-1", 1);
    put_session_record(journal, "client-2", 2);
    for (uint64_t sequence = 1; sequence <= 10; ++sequence) {
      put_body(journal, sample_body(sequence));
      put_outgoing(journal, sample_outgoing(1, sequence, sequence, OutgoingState::kQueued, 0));
    }
    for (uint64_t sequence = 1; sequence <= 3; ++sequence) {
      put_body(journal, sample_body(10 + sequence));
      put_outgoing(journal, sample_outgoing(2, sequence, 10 + sequence, OutgoingState::kQueued, 0));
    }
    journal.submit();
    ASSERT_TRUE(fixture.wait_durable(0, 1));
    // Session 1's entries 2-4 and 6-9 go, erased in an order unlike the keys'; 1, 5 and 10 stay.
    for (uint64_t sequence : {9, 3, 2, 7, 4, 6, 8}) {
      journal.erase(persist::outgoing_key(1, sequence));
      journal.erase(persist::body_key(sequence));
    }
    journal.submit();
    ASSERT_TRUE(fixture.wait_durable(0, 2));
    EXPECT_EQ(journal.erases_coalesced(), 14u);  // 2-4 and 6-9, entries and bodies
    fixture.store->stop();
  }
  persist::LoadedState loaded;
  ASSERT_TRUE(reload(dir.path(), &loaded));
  EXPECT_EQ(loaded.corrupt_skipped, 0u);  // no entry lost its body
  std::map<uint64_t, std::vector<uint64_t>> sequences;
  for (const persist::LoadedSession& session : loaded.sessions_by_shard[0]) {
    for (const OutgoingRecord& entry : session.outgoing) sequences[session.record.session_number].push_back(entry.sequence);
  }
  EXPECT_EQ(sequences[1], (std::vector<uint64_t>{1, 5, 10}));
  EXPECT_EQ(sequences[2], (std::vector<uint64_t>{1, 2, 3}));
  std::vector<uint64_t> bodies;
  for (const persist::BodyRecord& body : loaded.bodies) bodies.push_back(body.id);
  std::sort(bodies.begin(), bodies.end());
  EXPECT_EQ(bodies, (std::vector<uint64_t>{1, 5, 10, 11, 12, 13}));
}

// A batch leaves sorted by key with only each key's last change (ShardJournal::order_for_write),
// which must not change what the store ends with: a later change of a key wins, and a range
// delete covers exactly the changes made before it, never one made after it.
TEST(PersistJournal, ABatchWrittenInKeyOrderEndsWhereItsChangesInOrderWould) {
  base::set_log_level(base::LogLevel::kError);
  TempDir dir;
  {
    StoreFixture fixture(dir.path(), 1);
    persist::ShardJournal& journal = fixture.store->journal(0);
    fixture.store->start();
    journal.put(persist::retained_key("a"), retained("a", "1"));
    journal.put(persist::retained_key("d"), retained("d", "1"));
    journal.submit();
    ASSERT_TRUE(fixture.wait_durable(0, 1));
    journal.put(persist::retained_key("c"), retained("c", "1"));
    journal.put(persist::retained_key("b"), retained("b", "1"));
    journal.put(persist::retained_key("b"), retained("b", "2"));  // supersedes b=1
    journal.erase(persist::retained_key("a"));
    journal.put(persist::retained_key("a"), retained("a", "3"));  // supersedes the delete
    journal.put(persist::retained_key("d"), retained("d", "2"));
    journal.erase(persist::retained_key("d"));  // supersedes d=2: d is gone
    // Covers b and c as written so far; the c written after it stays.
    journal.erase_range(persist::retained_key("b"), persist::retained_key("c\xff"));
    journal.put(persist::retained_key("c"), retained("c", "4"));
    journal.put(persist::retained_key("e"), retained("e", "1"));
    // Keys equal in their first 16 bytes (the sort's integer part): the rest decides.
    journal.put(persist::retained_key("sensors/building-2/x"), retained("sensors/building-2/x", "1"));
    journal.put(persist::retained_key("sensors/building-2/a"), retained("sensors/building-2/a", "1"));
    journal.put(persist::retained_key("sensors/building-2/x"), retained("sensors/building-2/x", "2"));
    journal.put(persist::retained_key("sensors/building-2"), retained("sensors/building-2", "1"));
    journal.submit();
    ASSERT_TRUE(fixture.wait_durable(0, 2));
    EXPECT_EQ(journal.changes_superseded(), 4u);
    fixture.store->stop();
  }
  persist::LoadedState loaded;
  ASSERT_TRUE(reload(dir.path(), &loaded));
  EXPECT_EQ(loaded_topics(loaded), (std::vector<std::string>{"a=3", "c=4", "e=1", "sensors/building-2/a=1",
                                              "sensors/building-2/x=2", "sensors/building-2=1"}));
}

// Queue keys are inserted into RocksDB's memtable with a hint per record type, which RocksDB 7.8
// also applies to range tombstones whose key is in the hint's domain (facebook/rocksdb#5118):
// a session's range delete between puts of other sessions' keys, in one memtable, must leave
// every later put readable and delete exactly that session's earlier ones.
TEST(PersistJournal, RangeDeletesAmongHintedQueueInsertsKeepEveryLaterPut) {
  base::set_log_level(base::LogLevel::kError);
  TempDir dir;
  constexpr uint64_t kSessions = 40;
  constexpr uint64_t kGone = 7;
  std::string value;
  persist::encode_outgoing(sample_outgoing(1, 1, 0, OutgoingState::kPubrelSent, 5), &value);
  {
    StoreFixture fixture(dir.path(), 1);
    persist::ShardJournal& journal = fixture.store->journal(0);
    fixture.store->start();
    for (uint64_t number = 1; number <= kSessions; ++number) {
      put_session_record(journal, "client-" + std::to_string(number), number);
    }
    uint64_t batch = 0;
    for (uint64_t round = 0; round < 4; ++round) {
      for (uint64_t number = 1; number <= kSessions; ++number) {
        for (uint64_t sequence = round * 10 + 1; sequence <= round * 10 + 10; ++sequence) {
          journal.put(persist::outgoing_key(number, sequence), value);
        }
        journal.put(persist::incoming_qos2_key(number, static_cast<uint16_t>(round + 1)),
                    persist::incoming_qos2_value());
        if (number == kGone && round == 2) {
          auto [begin, end] = persist::outgoing_range(kGone);
          journal.erase_range(begin, end);
          auto [incoming_begin, incoming_end] = persist::incoming_qos2_range(kGone);
          journal.erase_range(incoming_begin, incoming_end);
        }
      }
      journal.submit();
      ASSERT_TRUE(fixture.wait_durable(0, ++batch));
    }
    fixture.store->stop();
  }
  persist::LoadedState loaded;
  ASSERT_TRUE(reload(dir.path(), &loaded));
  EXPECT_EQ(loaded.corrupt_skipped, 0u);
  ASSERT_EQ(loaded.sessions, kSessions);
  for (const persist::LoadedSession& session : loaded.sessions_by_shard[0]) {
    uint64_t number = session.record.session_number;
    std::vector<uint64_t> sequences;
    for (const OutgoingRecord& entry : session.outgoing) sequences.push_back(entry.sequence);
    std::vector<uint64_t> expected;
    for (uint64_t sequence = number == kGone ? 31 : 1; sequence <= 40; ++sequence)
      expected.push_back(sequence);
    EXPECT_EQ(sequences, expected) << number;
    EXPECT_EQ(session.incoming_qos2,
              number == kGone ? std::vector<uint16_t>{4} : (std::vector<uint16_t>{1, 2, 3, 4}))
        << number;
  }
}

}  // namespace
}  // namespace coremq::testing
