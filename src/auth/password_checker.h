// The password checker: a few threads that hash the passwords of CONNECTs against the
// listeners' password files, so that no hash (PBKDF2, argon2id: microseconds to tens of
// milliseconds each) ever runs on a shard's thread and a flood of wrong passwords costs the
// shards nothing but a ring push per CONNECT.
//
// Threading: checker thread t serves the shards s with s % thread_count == t. Each shard has
// one bounded SPSC request ring to its checker thread and one SPSC verdict ring back; a shard
// pushes, then wakes its checker thread (eventfd); a checker thread pushes verdicts, then
// wakes the shard (the shard's wake function, from the constructor). A full request ring is
// refused at once (the shard answers Server busy), so nothing here grows without bound.
// Verdicts are cached briefly per thread (kCacheSeconds, kCacheEntries) keyed by listener,
// username and a SHA-256 of the password, so a reconnect storm of one fleet hashes each
// password once; set_verifier (a reload) empties the caches.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/spsc_ring.h"

namespace coremq::auth {

// Decides one credential: slow (it hashes), thread-safe, called on checker threads only.
class PasswordVerifier {
 public:
  virtual ~PasswordVerifier() = default;
  virtual bool verify(std::string_view username, bool has_password, std::string_view password) const = 0;
};

struct PasswordCheckRequest {
  uint64_t token = 0;
  uint8_t listener = 0;
  bool has_password = false;
  std::string username;
  std::string password;
  int64_t queued_ms = 0;  // set by submit(): a check that waited past the stale bound is not run
};

struct PasswordVerdict {
  uint64_t token = 0;
  bool accepted = false;
  // Not checked: it waited in the queue longer than the stale bound (its client has most likely
  // been closed by the connect timeout already; one still there is told Server busy).
  bool expired = false;
};

class PasswordChecker {
 public:
  // verifiers: by listener index (null: that listener has no password file; asking for it
  // is refused). wake_shard(s) wakes shard s from a checker thread.
  // stale_after_ms: a check that waited this long in the queue is answered `expired` without
  // hashing (the broker passes its connect timeout: nobody waits longer); 0: never.
  PasswordChecker(uint32_t shard_count, uint32_t thread_count, uint32_t queue_capacity,
                  std::vector<std::shared_ptr<const PasswordVerifier>> verifiers,
                  std::function<void(uint32_t shard)> wake_shard, int64_t stale_after_ms = 0);
  ~PasswordChecker();
  PasswordChecker(const PasswordChecker&) = delete;
  PasswordChecker& operator=(const PasswordChecker&) = delete;

  void start();
  // Joins the threads; requests still queued are dropped (their shards are stopping).
  void stop();

  // Shard `shard`'s thread: queues a check and wakes the thread serving it; false when that
  // shard's queue is full (the request is left untouched).
  [[nodiscard]] bool submit(uint32_t shard, PasswordCheckRequest&& request);
  // Shard `shard`'s thread: calls on_verdict(PasswordVerdict&&) for each verdict that came back.
  template <typename F>
  void drain_verdicts(uint32_t shard, F&& on_verdict) {
    lanes_[shard]->verdicts.drain(std::forward<F>(on_verdict), kDrainMax);
  }
  bool has_verdicts(uint32_t shard) const { return !lanes_[shard]->verdicts.empty(); }
  // Checks answered `expired`, over the whole run (any thread; for tests and the stats).
  uint64_t expired_checks() const { return expired_checks_.load(std::memory_order_relaxed); }

  // Any thread (a reload): listener's new verifier for every check from now on.
  void set_verifier(uint8_t listener, std::shared_ptr<const PasswordVerifier> verifier);

  static constexpr int64_t kCacheSeconds = 10;
  static constexpr size_t kCacheEntries = 4096;

 private:
  static constexpr size_t kDrainMax = 1024;
  static constexpr int64_t kBatchMillis = 5;  // a lane's turn: this long, or one slow check
  struct Lane {  // one shard's rings
    explicit Lane(size_t capacity) : requests(capacity), verdicts(capacity) {}
    base::SpscRing<PasswordCheckRequest> requests;
    base::SpscRing<PasswordVerdict> verdicts;
  };
  struct Worker;
  void run(Worker& worker);
  std::shared_ptr<const PasswordVerifier> verifier(uint8_t listener) const;

  const uint32_t shard_count_;
  const int64_t stale_after_ms_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::vector<std::unique_ptr<Worker>> workers_;
  // Checker threads and set_verifier meet only here. A mutex rather than atomic<shared_ptr>:
  // taken once per check (microseconds to milliseconds of hashing) by checker threads only,
  // never by a shard; and libstdc++ 12's atomic<shared_ptr> hides its lock from TSan.
  mutable std::mutex verifiers_mutex_;
  std::vector<std::shared_ptr<const PasswordVerifier>> verifiers_;
  std::atomic<uint64_t> verifier_generation_{0};
  std::function<void(uint32_t)> wake_shard_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> expired_checks_{0};
};

}  // namespace coremq::auth
