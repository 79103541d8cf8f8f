// A fake IoPort that lets a test or a fuzzer drive broker::ShardState in-process, with no
// sockets and no ring: it records what the protocol side asks of the I/O side (flushes,
// closes, hand-offs, cross-shard posts, resumes of held input) and serves a clock the caller sets. It does what the
// real shard loop (src/shard/shard.cc) does with ownership: a hand-off takes the
// connection's unread input, and a posted item's pointee (a Message reference, an
// InterestChange, a ConnectionHandoff) belongs to the fake until someone takes it or the
// fake is destroyed, which releases it.
// Header-only so the GoogleTest unit tests (g++) and the libFuzzer targets (clang) share it.
// Single-threaded; owned by the test, and must outlive the ShardState that uses it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/assert.h"
#include "base/byte_buffer.h"
#include "broker/connection.h"
#include "broker/cross_shard.h"
#include "broker/message.h"
#include "broker/shard_state.h"

namespace coremq::testing {

// Frees whatever a cross-shard item owns, as a receiving shard would after handling it.
using broker::release_cross_shard_item;

// A message as shard `origin_shard` makes it from a PUBLISH; the caller owns one reference.
inline broker::Message* make_message(std::string_view topic, std::string_view payload, uint8_t qos, bool retain,
                                     uint32_t origin_shard) {
  return broker::Message::create(topic, payload, qos, retain, broker::Message::Origin{origin_shard, nullptr});
}

class FakeIo final : public broker::IoPort {
 public:
  struct Post {
    uint32_t target_shard;
    broker::CrossShardItem item;
  };
  struct Close {
    broker::Connection* connection;
    bool flush_first;
  };
  // A connection moved to another shard, with every byte it had read (as the real loop
  // builds a ConnectionHandoff). The Connection itself stays with its owner (the test),
  // which must not feed it again: the real loop frees it at the end of the turn.
  struct HandOff {
    broker::Connection* connection;
    uint32_t target_shard;
    int64_t accepted_at_ms;
    std::vector<uint8_t> input;
  };

  FakeIo(uint32_t shard_id, uint32_t shard_count) : shard_id_(shard_id), shard_count_(shard_count) {
    COREMQ_ASSERT(shard_id < shard_count);
  }
  ~FakeIo() override {
    for (Post& post : posts) release_cross_shard_item(post.item);
  }
  FakeIo(const FakeIo&) = delete;
  FakeIo& operator=(const FakeIo&) = delete;

  void request_flush(broker::Connection* connection) override {
    COREMQ_ASSERT(connection != nullptr);
    flush_requests.push_back(connection);
  }

  void close_connection(broker::Connection* connection, bool flush_first) override {
    // The protocol side must have finished with the connection before asking for this.
    COREMQ_ASSERT(connection->state == broker::ConnectionState::kClosing);
    for (const Close& close : closes) COREMQ_ASSERT_MSG(close.connection != connection, "closed twice");
    closes.push_back(Close{connection, flush_first});
  }

  void hand_off_connection(broker::Connection* connection, uint32_t target_shard) override {
    COREMQ_ASSERT(connection->state == broker::ConnectionState::kHandingOff);
    COREMQ_ASSERT(target_shard < shard_count_ && target_shard != shard_id_);
    std::span<const uint8_t> input = connection->input.span();
    handoffs.push_back(
        HandOff{connection, target_shard, connection->accepted_at_ms, std::vector<uint8_t>(input.begin(), input.end())});
    // The real loop moves the buffer into the hand-off; the bytes are no longer this shard's.
    base::ByteBuffer moved = std::move(connection->input);
    connection->fd = -1;
  }

  void post(uint32_t target_shard, broker::CrossShardItem item) override {
    COREMQ_ASSERT(target_shard < shard_count_ && target_shard != shard_id_);
    COREMQ_ASSERT(item.from_shard == shard_id_);
    bool barrier = item.kind == broker::CrossShardItem::Kind::kBarrierRequest ||
                   item.kind == broker::CrossShardItem::Kind::kBarrierAck;
    COREMQ_ASSERT(barrier ? item.sequence > 0 : item.pointer != nullptr);
    posts.push_back(Post{target_shard, item});
  }

  void resume_input(broker::Connection* connection) override {
    // The contract: only for a connection the protocol side just stopped holding.
    COREMQ_ASSERT(!connection->input_held);
    // Connected, or still authenticating after a deferred step (async_hooks.cc).
    COREMQ_ASSERT(connection->state == broker::ConnectionState::kConnected ||
                  connection->state == broker::ConnectionState::kAuthenticating);
    resumes.push_back(connection);
  }

  int64_t now_ms() const override { return now; }

  // A password check asked of the checker; the test answers with ShardState::on_password_verdict.
  struct PasswordCheck {
    uint64_t token;
    uint8_t listener;
    std::string username;
    bool has_password;
    std::string password;
  };
  bool check_password(uint64_t token, uint8_t listener, std::string_view username, bool has_password,
                      std::string_view password) override {
    if (password_checker_full) return false;
    password_checks.push_back(
        PasswordCheck{token, listener, std::string(username), has_password, std::string(password)});
    return true;
  }

  // Asynchronous hook decisions: without `make_completion` none can be taken (the broker
  // refuses as busy); with it the test makes the handle and answers with
  // ShardState::on_hook_answer(token). Every token asked is recorded.
  std::function<HookCompletion(uint64_t token, uint32_t index)> make_completion;
  std::vector<uint64_t> deferred_tokens;
  HookCompletion defer_decision(uint64_t token, uint32_t index) override {
    if (!make_completion) return {};
    deferred_tokens.push_back(token);
    return make_completion(token, index);
  }

  // Hands the recorded posts over to the caller, who now owns their pointees.
  std::vector<Post> take_posts() { return std::exchange(posts, {}); }

  bool was_closed(const broker::Connection* connection) const {
    for (const Close& close : closes) {
      if (close.connection == connection) return true;
    }
    return false;
  }

  bool was_handed_off(const broker::Connection* connection) const {
    for (const HandOff& handoff : handoffs) {
      if (handoff.connection == connection) return true;
    }
    return false;
  }

  void drop_posts() {
    for (Post& post : posts) release_cross_shard_item(post.item);
    posts.clear();
  }

  int64_t now = 0;
  std::vector<broker::Connection*> flush_requests;
  std::vector<Close> closes;
  std::vector<HandOff> handoffs;
  std::vector<Post> posts;
  // Connections whose held input the protocol side asked the loop to replay, in order.
  std::vector<broker::Connection*> resumes;
  std::vector<PasswordCheck> password_checks;
  bool password_checker_full = false;

 private:
  const uint32_t shard_id_;
  const uint32_t shard_count_;
};

}  // namespace coremq::testing
