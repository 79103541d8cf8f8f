// The password checker's threads over real SPSC rings, with a verifier the test controls:
// verdicts come back to the shard that asked, with its token; repeated credentials hit the
// cache; a reload empties it; a full queue refuses at once.
#include "auth/password_checker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace coremq::auth {
namespace {

using Clock = std::chrono::steady_clock;

// Accepts "right"; counts calls; can be made to block until released (a slow hash).
class TestVerifier final : public PasswordVerifier {
 public:
  bool verify(std::string_view, bool has_password, std::string_view password) const override {
    calls.fetch_add(1);
    std::unique_lock lock(mutex);
    released.wait(lock, [this] { return !blocking; });
    return has_password && password == "right";
  }
  void block() {
    std::lock_guard lock(mutex);
    blocking = true;
  }
  void release() {
    {
      std::lock_guard lock(mutex);
      blocking = false;
    }
    released.notify_all();
  }
  mutable std::atomic<int> calls{0};

 private:
  mutable std::mutex mutex;
  mutable std::condition_variable released;
  bool blocking = false;
};

// Collects verdicts per shard as the shards' wake function would have them drained.
struct Shards {
  explicit Shards(uint32_t count) : woken(count) {}
  std::vector<std::atomic<int>> woken;
};

std::vector<PasswordVerdict> wait_verdicts(PasswordChecker& checker, uint32_t shard, size_t count) {
  std::vector<PasswordVerdict> verdicts;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (verdicts.size() < count && Clock::now() < deadline) {
    checker.drain_verdicts(shard, [&](PasswordVerdict&& verdict) { verdicts.push_back(verdict); });
    std::this_thread::yield();
  }
  return verdicts;
}

PasswordCheckRequest request(uint64_t token, std::string password, std::string username = "alice") {
  return PasswordCheckRequest{token, 0, true, std::move(username), std::move(password)};
}

TEST(PasswordChecker, VerdictsReturnToTheShardThatAskedWithItsToken) {
  auto verifier = std::make_shared<TestVerifier>();
  Shards shards(3);
  PasswordChecker checker(3, 2, 16, {verifier}, [&](uint32_t shard) { shards.woken[shard].fetch_add(1); });
  checker.start();
  ASSERT_TRUE(checker.submit(0, request(10, "right")));
  ASSERT_TRUE(checker.submit(2, request(20, "wrong")));
  ASSERT_TRUE(checker.submit(2, request(21, "right", "bob")));
  auto first = wait_verdicts(checker, 0, 1);
  auto third = wait_verdicts(checker, 2, 2);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].token, 10u);
  EXPECT_TRUE(first[0].accepted);
  ASSERT_EQ(third.size(), 2u);
  EXPECT_EQ(third[0].token, 20u);
  EXPECT_FALSE(third[0].accepted);
  EXPECT_EQ(third[1].token, 21u);
  EXPECT_TRUE(third[1].accepted);
  EXPECT_GE(shards.woken[0].load(), 1);
  EXPECT_GE(shards.woken[2].load(), 1);
  EXPECT_EQ(shards.woken[1].load(), 0);
  checker.stop();
}

TEST(PasswordChecker, RepeatedCredentialsAreHashedOnceUntilAReload) {
  auto verifier = std::make_shared<TestVerifier>();
  PasswordChecker checker(1, 1, 16, {verifier}, [](uint32_t) {});
  checker.start();
  ASSERT_TRUE(checker.submit(0, request(1, "right")));
  ASSERT_EQ(wait_verdicts(checker, 0, 1).size(), 1u);
  ASSERT_TRUE(checker.submit(0, request(2, "right")));
  auto cached = wait_verdicts(checker, 0, 1);
  ASSERT_EQ(cached.size(), 1u);
  EXPECT_TRUE(cached[0].accepted);
  EXPECT_EQ(verifier->calls.load(), 1);
  // Another password of the same user is not the cached one.
  ASSERT_TRUE(checker.submit(0, request(3, "wrong")));
  auto other = wait_verdicts(checker, 0, 1);
  ASSERT_EQ(other.size(), 1u);
  EXPECT_FALSE(other[0].accepted);
  EXPECT_EQ(verifier->calls.load(), 2);
  // A reload: the next check hashes again, against the new file.
  auto reloaded = std::make_shared<TestVerifier>();
  checker.set_verifier(0, reloaded);
  ASSERT_TRUE(checker.submit(0, request(4, "right")));
  ASSERT_EQ(wait_verdicts(checker, 0, 1).size(), 1u);
  EXPECT_EQ(reloaded->calls.load(), 1);
  checker.stop();
}

TEST(PasswordChecker, FullQueueRefusesAtOnce) {
  auto verifier = std::make_shared<TestVerifier>();
  verifier->block();
  PasswordChecker checker(1, 1, 4, {verifier}, [](uint32_t) {});
  checker.start();
  // The first is taken by the worker, which blocks in it; then 4 fill the ring; then no more.
  ASSERT_TRUE(checker.submit(0, request(1, "first")));
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (verifier->calls.load() == 0 && Clock::now() < deadline) std::this_thread::yield();
  ASSERT_EQ(verifier->calls.load(), 1);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(checker.submit(0, request(uint64_t(i + 2), std::string(1, char('a' + i)))));
  EXPECT_FALSE(checker.submit(0, request(99, "more")));
  int accepted = 5;
  verifier->release();
  EXPECT_EQ(wait_verdicts(checker, 0, size_t(accepted)).size(), size_t(accepted));
  checker.stop();
}

// Each check takes 20 ms, like a $7$ hash of 50,000 rounds.
class SlowVerifier final : public PasswordVerifier {
 public:
  bool verify(std::string_view, bool, std::string_view) const override {
    calls.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return false;
  }
  mutable std::atomic<int> calls{0};
};

// stop() must not hash the queued backlog first: a flood of wrong passwords (here 2 s of
// checks) would hold the broker's shutdown past any deadline.
TEST(PasswordChecker, StopDropsTheQueuedChecks) {
  auto verifier = std::make_shared<SlowVerifier>();
  PasswordChecker checker(1, 1, 128, {verifier}, [](uint32_t) {});
  checker.start();
  // Each password differs: the checker would answer a repeated one from its cache.
  for (uint64_t token = 1; token <= 100; ++token) {
    ASSERT_TRUE(checker.submit(0, request(token, "wrong " + std::to_string(token))));
  }
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (verifier->calls.load() == 0 && Clock::now() < deadline) std::this_thread::yield();
  auto stop_start = Clock::now();
  checker.stop();
  EXPECT_LT(Clock::now() - stop_start, std::chrono::milliseconds(1000));
  EXPECT_LE(verifier->calls.load(), 10);
}

// One checker thread serves two shards; shard 0 is flooded with slow checks (the flood refills
// its lane as it is served). Shard 1's check must not wait for shard 0's whole backlog.
TEST(PasswordChecker, AFloodedShardDoesNotStarveAnother) {
  auto verifier = std::make_shared<SlowVerifier>();
  PasswordChecker checker(2, 1, 128, {verifier}, [](uint32_t) {});
  checker.start();
  for (uint64_t token = 1; token <= 50; ++token) {
    ASSERT_TRUE(checker.submit(0, request(token, "flood " + std::to_string(token))));
  }
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (verifier->calls.load() == 0 && Clock::now() < deadline) std::this_thread::yield();
  ASSERT_TRUE(checker.submit(1, request(1000, "other shard")));
  auto verdicts = wait_verdicts(checker, 1, 1);
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts[0].token, 1000u);
  EXPECT_LE(verifier->calls.load(), 5) << "shard 1 waited behind shard 0's backlog";
  checker.stop();
}

TEST(PasswordChecker, ListenerWithoutAVerifierRefuses) {
  PasswordChecker checker(1, 1, 4, {nullptr}, [](uint32_t) {});
  checker.start();
  ASSERT_TRUE(checker.submit(0, request(1, "right")));
  auto verdicts = wait_verdicts(checker, 0, 1);
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_FALSE(verdicts[0].accepted);
  checker.stop();
}

}  // namespace
}  // namespace coremq::auth

namespace coremq::auth {
namespace {

TEST(PasswordChecker, ChecksThatWaitedPastTheStaleBoundAreNotRun) {
  // The worker is held in a slow check while three more wait behind it past the bound: they
  // come back `expired` without being hashed, so a backlog of slow hashes for clients the
  // connect timeout already closed costs nothing.
  auto verifier = std::make_shared<TestVerifier>();
  verifier->block();
  PasswordChecker checker(1, 1, 16, {verifier}, [](uint32_t) {}, /*stale_after_ms=*/50);
  checker.start();
  ASSERT_TRUE(checker.submit(0, request(1, "right")));
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (verifier->calls.load() == 0 && Clock::now() < deadline) std::this_thread::yield();
  for (uint64_t token = 2; token <= 4; ++token) ASSERT_TRUE(checker.submit(0, request(token, "right")));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the wait being measured, not a sync
  verifier->release();
  auto verdicts = wait_verdicts(checker, 0, 4);
  ASSERT_EQ(verdicts.size(), 4u);
  EXPECT_TRUE(verdicts[0].accepted);
  EXPECT_FALSE(verdicts[0].expired);
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_TRUE(verdicts[i].expired) << i;
    EXPECT_FALSE(verdicts[i].accepted) << i;
  }
  EXPECT_EQ(verifier->calls.load(), 1);
  EXPECT_EQ(checker.expired_checks(), 3u);
  checker.stop();
}

}  // namespace
}  // namespace coremq::auth
