// Large payloads in ShardState: staged by reference between their headers for a connection
// that allows it (broker/output_references.h), copied otherwise and past the per-send bound,
// counted against the output bounds; and a large PUBLISH assembled in the input buffer
// becoming its message without a copy (Message::create_around).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "broker/message.h"
#include "shard_harness.h"

namespace coremq::testing {
namespace {

using mqtt::PacketType;

// The byte stream a gathered send would put on the wire: output with each referenced payload
// at its offset. Takes both, as take_output does.
std::string take_gathered(broker::Connection* connection) {
  std::string stream;
  std::string_view headers = connection->output.view();
  size_t at = 0;
  if (connection->references) {
    for (const broker::PayloadReference& reference : connection->references->pending) {
      stream.append(headers.substr(at, reference.offset - at));
      stream.append(reference.message->payload());
      at = reference.offset;
    }
    connection->references->pending.clear();
    connection->references->pending_bytes = 0;
  }
  stream.append(headers.substr(at));
  connection->output.clear();
  return stream;
}

std::string payload_of(char seed, size_t size) {
  std::string payload(size, '\0');
  for (size_t i = 0; i < size; ++i) payload[i] = static_cast<char>(seed + i * 7);
  return payload;
}

class ShardLargePayloads : public ShardHarness {
 protected:
  void SetUp() override {
    ShardHarness::SetUp();
    options.payload_reference_min_bytes = 1024;
  }

  broker::Connection* plain_tcp_subscriber(std::string_view client_id, std::string_view filter, uint8_t qos) {
    broker::Connection* subscriber = connect(client_id);
    subscriber->payloads_by_reference = true;  // what the shard loop sets for plain TCP
    subscribe(subscriber, filter, qos);
    return subscriber;
  }

  // `bytes` as the socket would bring a large packet: in reads of one 2 KiB receive buffer.
  void feed_in_reads(broker::Connection* connection, std::string_view bytes) {
    for (size_t at = 0; at < bytes.size(); at += 2048) feed(connection, bytes.substr(at, 2048));
  }
};

TEST_F(ShardLargePayloads, StagedByReferenceBetweenTheirHeaders) {
  broker::Connection* subscriber = plain_tcp_subscriber("sub", "t", 1);
  broker::Connection* publisher = connect("pub");
  std::string small = "small";
  std::string threshold = payload_of('a', 1024);
  std::string below = payload_of('b', 1023);
  std::string large = payload_of('c', 100000);
  feed(publisher, publish_bytes("t", small) + publish_bytes("t", threshold) + publish_bytes("t", below) +
                      publish_bytes("t", large, 1, 9));
  ASSERT_NE(subscriber->references, nullptr);
  EXPECT_EQ(subscriber->references->pending.size(), 2u);
  EXPECT_EQ(subscriber->references->pending_bytes, 1024u + 100000u);
  EXPECT_EQ(subscriber->unsent_output_bytes(), subscriber->output.size() + 1024u + 100000u);
  EXPECT_EQ(take_gathered(subscriber), publish_bytes("t", small) + publish_bytes("t", threshold) +
                                           publish_bytes("t", below) + publish_bytes("t", large, 1, 1));
  EXPECT_EQ(shard().counters().payloads_sent_by_reference, 2u);
  EXPECT_EQ(take_output(publisher), ack_bytes(PacketType::kPuback, 9));
}

TEST_F(ShardLargePayloads, CopiedForConnectionsThatSendThroughATransport) {
  broker::Connection* subscriber = connect("sub");  // TLS, WebSocket, in-process: no flag
  subscribe(subscriber, "t", 0);
  broker::Connection* publisher = connect("pub");
  std::string large = payload_of('d', 50000);
  feed(publisher, publish_bytes("t", large));
  EXPECT_EQ(subscriber->references, nullptr);
  EXPECT_EQ(take_output(subscriber), publish_bytes("t", large));
  EXPECT_EQ(shard().counters().payloads_sent_by_reference, 0u);
}

TEST_F(ShardLargePayloads, CopiedPastThePerSendBound) {
  broker::Connection* subscriber = plain_tcp_subscriber("sub", "t", 0);
  broker::Connection* publisher = connect("pub");
  constexpr size_t kMessages = broker::kPayloadReferencesPerSendMax + 10;
  std::string expected;
  std::string packets;
  for (size_t i = 0; i < kMessages; ++i) {
    std::string packet = publish_bytes("t", payload_of(static_cast<char>(i), 2000));
    packets += packet;
    expected += packet;
  }
  feed(publisher, packets);
  EXPECT_EQ(subscriber->references->pending.size(), broker::kPayloadReferencesPerSendMax);
  EXPECT_EQ(shard().counters().payload_references_over_bound, 10u);
  EXPECT_EQ(take_gathered(subscriber), expected);
}

TEST_F(ShardLargePayloads, ReferencedBytesCountAgainstTheOutputBound) {
  options.max_client_output_bytes = 120000;
  broker::Connection* subscriber = plain_tcp_subscriber("sub", "t", 0);
  broker::Connection* publisher = connect("pub");
  std::string large = payload_of('e', 60000);
  feed(publisher, publish_bytes("t", large) + publish_bytes("t", large) + publish_bytes("t", large));
  // Two fit under the bound; the third finds over 120,000 bytes staged by reference and is dropped.
  EXPECT_EQ(subscriber->references->pending.size(), 3u - 1u);
  EXPECT_EQ(shard().counters().qos0_dropped_slow_consumer, 1u);
  EXPECT_EQ(take_gathered(subscriber), publish_bytes("t", large) + publish_bytes("t", large));
}

TEST_F(ShardLargePayloads, AssembledInTheInputBufferTheMessageTakesItOver) {
  broker::Connection* subscriber = plain_tcp_subscriber("sub", "t", 0);
  broker::Connection* publisher = connect("pub");
  std::string large = payload_of('f', 300000);
  std::string packet = publish_bytes("t", large, 0, 0, /*retain=*/true);
  feed_in_reads(publisher, packet);
  EXPECT_EQ(shard().counters().payloads_received_in_place, 1u);
  EXPECT_TRUE(publisher->input.empty());
  EXPECT_EQ(take_gathered(subscriber), publish_bytes("t", large));
  // The retained copy holds the same buffer: a later subscriber gets every byte.
  broker::Connection* late = connect("late");
  late->payloads_by_reference = true;
  feed(late, subscribe_bytes(1, {{"t", 0}}));
  EXPECT_EQ(take_gathered(late), suback_bytes(1, {0}) + publish_bytes("t", large, 0, 0, /*retain=*/true));
  // The publisher's next packets start from an empty input buffer.
  feed(publisher, pingreq_bytes());
  EXPECT_EQ(take_output(publisher), pingresp_bytes());
}

TEST_F(ShardLargePayloads, AReadEndingOnePacketAndStartingTheNextStillHandsItsBufferOver) {
  broker::Connection* subscriber = plain_tcp_subscriber("sub", "t", 0);
  broker::Connection* publisher = connect("pub");
  std::string large = payload_of('g', 10000);
  std::string next = publish_bytes("t", "next");
  std::string stream = publish_bytes("t", large) + next + publish_bytes("t", "ab");
  // The second read holds the end of the large PUBLISH, a whole small one and the start of a
  // third: the buffered packet takes only its own bytes, the rest is read from the receive
  // buffer, and the tail waits in a fresh input buffer.
  feed(publisher, std::string_view(stream).substr(0, 3000));
  feed(publisher, std::string_view(stream).substr(3000, stream.size() - 3000 - 2));
  EXPECT_EQ(shard().counters().payloads_received_in_place, 1u);
  EXPECT_EQ(publisher->input.size(), publish_bytes("t", "ab").size() - 2);
  feed(publisher, std::string_view(stream).substr(stream.size() - 2));
  EXPECT_TRUE(publisher->input.empty());
  EXPECT_EQ(take_gathered(subscriber), stream);
}

TEST_F(ShardLargePayloads, APacketKeptWithoutItsWholeFixedHeaderIsCopied) {
  broker::Connection* subscriber = plain_tcp_subscriber("sub", "t", 0);
  broker::Connection* publisher = connect("pub");
  std::string large = payload_of('i', 10000);
  std::string stream = publish_bytes("t", large) + publish_bytes("t", "next");
  // One byte first: its size is unknown, so the next read goes into the buffer whole and the
  // payload does not end it.
  feed(publisher, std::string_view(stream).substr(0, 1));
  feed(publisher, std::string_view(stream).substr(1));
  EXPECT_EQ(shard().counters().payloads_received_in_place, 0u);
  EXPECT_TRUE(publisher->input.empty());
  EXPECT_EQ(take_gathered(subscriber), stream);
}

TEST_F(ShardLargePayloads, ZeroThresholdCopiesEverything) {
  options.payload_reference_min_bytes = 0;
  broker::Connection* subscriber = plain_tcp_subscriber("sub", "t", 0);
  broker::Connection* publisher = connect("pub");
  std::string large = payload_of('h', 70000);
  std::string packet = publish_bytes("t", large);
  feed_in_reads(publisher, packet);
  EXPECT_EQ(subscriber->references, nullptr);
  EXPECT_EQ(shard().counters().payloads_received_in_place, 0u);
  EXPECT_EQ(take_output(subscriber), packet);
}

TEST(MessageAround, PayloadStaysInItsBlockAndPropertiesFollowTheTopic) {
  std::string block_bytes = "xxxxPAYLOAD";
  auto* block = static_cast<char*>(std::malloc(block_bytes.size()));
  std::memcpy(block, block_bytes.data(), block_bytes.size());
  broker::Message::Extras extras;
  extras.property_bytes = "\x26props";
  broker::MessageRef message = broker::MessageRef::adopt(broker::Message::create_around(
      "a/b", std::string_view(block + 4, 7), block, block_bytes.size(), 1, true, broker::Message::Origin{}, extras));
  EXPECT_EQ(message->topic(), "a/b");
  EXPECT_EQ(message->payload(), "PAYLOAD");
  EXPECT_EQ(message->payload().data(), block + 4);
  EXPECT_EQ(message->property_bytes(), "\x26props");
  EXPECT_EQ(message->memory_size(), sizeof(broker::Message) + 3 + block_bytes.size() + 6);
  EXPECT_EQ(message->qos(), 1);
  EXPECT_TRUE(message->retain());
  // The block is freed with the message (ASan reports a leak otherwise).
}

}  // namespace
}  // namespace coremq::testing
