// Durable queues (src/persist records B/Q/I and Store::load's repairs): body and outgoing
// records round-trip and refuse states that do not fit; one client's keys sort in sequence order
// inside its own range; a load drops what expired, deletes orphans and unreferenced bodies, and
// gives each shard its own copy of a body that sessions now on different shards share.
#include <gtest/gtest.h>

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

OutgoingRecord sample_outgoing(std::string client_id, uint64_t sequence, uint64_t body_id, OutgoingState state,
                               uint16_t packet_id) {
  OutgoingRecord record;
  record.client_id = std::move(client_id);
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
    OutgoingRecord record = sample_outgoing("device-1", 42, body_id, state, packet_id);
    persist::encode_outgoing(record, &value);
    OutgoingRecord back;
    ASSERT_TRUE(persist::decode_outgoing(persist::outgoing_key("device-1", 42), value, &back, &error)) << error;
    EXPECT_EQ(back.client_id, "device-1");
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
  std::string key = persist::outgoing_key("c", 1);
  // Queued with a packet id; sent without one; PUBREL sent with a body, or for QoS 1.
  OutgoingRecord queued_with_id = sample_outgoing("c", 1, 5, OutgoingState::kQueued, 3);
  OutgoingRecord sent_without_id = sample_outgoing("c", 1, 5, OutgoingState::kPublishSent, 0);
  OutgoingRecord pubrel_with_body = sample_outgoing("c", 1, 5, OutgoingState::kPubrelSent, 3);
  OutgoingRecord pubrel_qos1 = sample_outgoing("c", 1, 0, OutgoingState::kPubrelSent, 3);
  pubrel_qos1.qos = 1;
  for (const OutgoingRecord& bad : {queued_with_id, sent_without_id, pubrel_with_body, pubrel_qos1}) {
    persist::encode_outgoing(bad, &value);
    error.clear();
    EXPECT_FALSE(persist::decode_outgoing(key, value, &back, &error));
    EXPECT_FALSE(error.empty());
  }
  OutgoingRecord good = sample_outgoing("c", 1, 5, OutgoingState::kQueued, 0);
  persist::encode_outgoing(good, &value);
  EXPECT_FALSE(persist::decode_outgoing(key, value + "x", &back, &error));  // trailing bytes
  EXPECT_FALSE(persist::decode_outgoing(key, value.substr(0, value.size() - 1), &back, &error));
  EXPECT_FALSE(persist::decode_outgoing(persist::outgoing_key("c", 1).substr(0, 5), value, &back, &error));
  std::string client;
  uint16_t packet_id = 0;
  EXPECT_FALSE(persist::decode_incoming_qos2(persist::incoming_qos2_key("c", 9), "xx", &client, &packet_id, &error));
  ASSERT_TRUE(persist::decode_incoming_qos2(persist::incoming_qos2_key("c", 9), persist::incoming_qos2_value(),
                                            &client, &packet_id, &error));
  EXPECT_EQ(client, "c");
  EXPECT_EQ(packet_id, 9);
}

TEST(PersistQueueRecords, OneClientsKeysSortInSequenceOrderInsideItsRange) {
  EXPECT_LT(persist::outgoing_key("a", 2), persist::outgoing_key("a", 10));
  EXPECT_LT(persist::outgoing_key("a", 255), persist::outgoing_key("a", 256));
  auto [begin, end] = persist::outgoing_range("a");
  for (uint64_t sequence : {uint64_t{1}, uint64_t{1} << 40, ~uint64_t{0}}) {
    std::string key = persist::outgoing_key("a", sequence);
    EXPECT_LE(begin, key);
    EXPECT_LT(key, end);
  }
  // Another client's keys, however their ids begin, are outside "a"'s range.
  for (std::string_view other : {"ab", "a\xff", "b", "\x01"}) {
    std::string key = persist::outgoing_key(other, 1);
    EXPECT_TRUE(key < begin || key >= end) << other;
  }
}

void put_body(persist::ShardJournal& journal, const BodyRecord& body) {
  std::string value;
  persist::encode_body(body, &value);
  journal.put(persist::body_key(body.id), value);
}

void put_outgoing(persist::ShardJournal& journal, const OutgoingRecord& record) {
  std::string value;
  persist::encode_outgoing(record, &value);
  journal.put(persist::outgoing_key(record.client_id, record.sequence), value);
}

void put_session_record(persist::ShardJournal& journal, const std::string& client_id) {
  persist::SessionRecord record;
  record.client_id = client_id;
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
    put_session_record(journal, one);
    put_session_record(journal, two);
    BodyRecord shared = sample_body(11);
    BodyRecord expired = sample_body(12);
    expired.expires_at_unix_ms = now - 1;
    BodyRecord unreferenced = sample_body(13);
    for (const BodyRecord& body : {shared, expired, unreferenced}) put_body(journal, body);
    // Both sessions queued `shared` (one shard wrote them all); `one` also an expired message, a
    // PUBREL-sent exchange and a message whose body is missing; a session that is gone left one.
    put_outgoing(journal, sample_outgoing(one, 1, 11, OutgoingState::kPublishSent, 4));
    put_outgoing(journal, sample_outgoing(one, 2, 12, OutgoingState::kQueued, 0));
    put_outgoing(journal, sample_outgoing(one, 3, 0, OutgoingState::kPubrelSent, 5));
    put_outgoing(journal, sample_outgoing(one, 4, 99, OutgoingState::kQueued, 0));
    put_outgoing(journal, sample_outgoing(two, 1, 11, OutgoingState::kQueued, 0));
    put_outgoing(journal, sample_outgoing("gone", 1, 11, OutgoingState::kQueued, 0));
    journal.put(persist::incoming_qos2_key(one, 77), persist::incoming_qos2_value());
    journal.put(persist::incoming_qos2_key("gone", 78), persist::incoming_qos2_value());
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
}

TEST(PersistJournal, WhatIsCreatedAndErasedInOneBatchNeverReachesTheStore) {
  base::set_log_level(base::LogLevel::kError);
  TempDir dir;
  auto retained = [](const std::string& topic, const std::string& payload) {
    std::string value;
    persist::encode_retained(persist::RetainedRecord{topic, payload, "", 1, 1 << 8, 0}, &value);
    return value;
  };
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
  StoreFixture reopened(dir.path(), 1);
  persist::LoadedState loaded;
  std::string error;
  ASSERT_TRUE(reopened.store->load(0, &loaded, &error)) << error;
  std::vector<std::string> topics;
  for (const persist::RetainedRecord& record : loaded.retained) topics.push_back(record.topic + "=" + record.payload.substr(0, 5));
  EXPECT_EQ(topics, (std::vector<std::string>{"a=again", "c=xxxxx"}));
}

}  // namespace
}  // namespace coremq::testing
