// See password_checker.h. Checker threads and shard threads meet only in the SPSC rings, the
// eventfds and the atomics of PasswordChecker.
#include "auth/password_checker.h"

#include <openssl/evp.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "base/assert.h"
#include "base/log.h"

namespace coremq::auth {

struct PasswordChecker::Worker {
  int event_fd = -1;
  std::thread thread;
  std::vector<uint32_t> shards;  // the lanes this worker serves
  struct Cached {
    int64_t expires_ms = 0;
    bool accepted = false;
  };
  absl::flat_hash_map<std::string, Cached> cache;
  uint64_t cache_generation = 0;
};

namespace {

int64_t monotonic_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// listener, username and SHA-256(password): the cache never holds a password itself.
std::string cache_key(const PasswordCheckRequest& request) {
  std::string key;
  key.push_back(static_cast<char>(request.listener));
  key.push_back(request.has_password ? 'p' : '-');
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(request.password.data(), request.password.size(), digest, &length, EVP_sha256(), nullptr) !=
      1) {
    return {};  // no key: not cached
  }
  key.append(reinterpret_cast<const char*>(digest), length);
  key.append(request.username);
  return key;
}

}  // namespace

PasswordChecker::PasswordChecker(uint32_t shard_count, uint32_t thread_count, uint32_t queue_capacity,
                                 std::vector<std::shared_ptr<const PasswordVerifier>> verifiers,
                                 std::function<void(uint32_t shard)> wake_shard, int64_t stale_after_ms)
    : shard_count_(shard_count),
      stale_after_ms_(stale_after_ms),
      verifiers_(std::move(verifiers)),
      wake_shard_(std::move(wake_shard)) {
  COREMQ_ASSERT(shard_count > 0 && thread_count > 0 && queue_capacity > 0);
  for (uint32_t shard = 0; shard < shard_count; ++shard)
    lanes_.push_back(std::make_unique<Lane>(queue_capacity));
  thread_count = std::min(thread_count, shard_count);
  for (uint32_t t = 0; t < thread_count; ++t) {
    auto worker = std::make_unique<Worker>();
    worker->event_fd = ::eventfd(0, EFD_CLOEXEC);
    COREMQ_ASSERT_MSG(worker->event_fd >= 0, "eventfd for the password checker");
    for (uint32_t shard = t; shard < shard_count; shard += thread_count) worker->shards.push_back(shard);
    workers_.push_back(std::move(worker));
  }
}

PasswordChecker::~PasswordChecker() {
  stop();
  for (auto& worker : workers_) ::close(worker->event_fd);
}

void PasswordChecker::start() {
  for (auto& worker : workers_) {
    Worker* raw = worker.get();
    raw->thread = std::thread([this, raw] { run(*raw); });
  }
}

void PasswordChecker::stop() {
  stopping_.store(true, std::memory_order_release);
  for (auto& worker : workers_) {
    uint64_t one = 1;
    (void)!::write(worker->event_fd, &one, sizeof(one));
  }
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
}

bool PasswordChecker::submit(uint32_t shard, PasswordCheckRequest&& request) {
  COREMQ_ASSERT(shard < shard_count_);
  request.queued_ms = monotonic_ms();
  if (!lanes_[shard]->requests.try_push(std::move(request))) return false;
  uint64_t one = 1;
  // A full counter (EAGAIN) already means "wake up".
  (void)!::write(workers_[shard % workers_.size()]->event_fd, &one, sizeof(one));
  return true;
}

void PasswordChecker::set_verifier(uint8_t listener, std::shared_ptr<const PasswordVerifier> verifier) {
  {
    std::lock_guard lock(verifiers_mutex_);
    COREMQ_ASSERT(listener < verifiers_.size());
    verifiers_[listener] = std::move(verifier);
  }
  verifier_generation_.fetch_add(1, std::memory_order_acq_rel);
}

std::shared_ptr<const PasswordVerifier> PasswordChecker::verifier(uint8_t listener) const {
  std::lock_guard lock(verifiers_mutex_);
  if (listener >= verifiers_.size()) return nullptr;
  return verifiers_[listener];
}

void PasswordChecker::run(Worker& worker) {
  while (!stopping_.load(std::memory_order_acquire)) {
    uint64_t generation = verifier_generation_.load(std::memory_order_acquire);
    if (generation != worker.cache_generation) {
      worker.cache.clear();  // a reloaded file: earlier verdicts may be wrong now
      worker.cache_generation = generation;
    }
    bool worked = false;
    for (uint32_t shard : worker.shards) {
      Lane& lane = *lanes_[shard];
      size_t answered = 0;
      PasswordCheckRequest request;
      // A bounded batch per shard, so one shard's flood does not starve another's checks: bounded
      // in time too, as a flooded lane refills while it is served and slow hashes (tens of ms
      // each) would otherwise hold the thread on it for kDrainMax checks. A stop ends the batch:
      // the queue may hold a flood of slow hashes nobody waits for any more.
      const int64_t batch_start = monotonic_ms();
      while (answered < kDrainMax && !stopping_.load(std::memory_order_acquire) &&
             (answered == 0 || monotonic_ms() - batch_start < kBatchMillis) &&
             lane.requests.try_pop(request)) {
        int64_t now = monotonic_ms();
        // Hashing for a client that waited past the bound would be work for nobody, and it is
        // what lets a flood of slow hashes outlast every waiting client's connect timeout.
        bool expired = stale_after_ms_ > 0 && now - request.queued_ms > stale_after_ms_;
        std::string key = expired ? std::string() : cache_key(request);
        bool accepted = false;
        auto cached = key.empty() ? worker.cache.end() : worker.cache.find(key);
        if (expired) {
          expired_checks_.fetch_add(1, std::memory_order_relaxed);
        } else if (cached != worker.cache.end() && cached->second.expires_ms > now) {
          accepted = cached->second.accepted;
        } else {
          std::shared_ptr<const PasswordVerifier> decider = verifier(request.listener);
          accepted =
              decider != nullptr && decider->verify(request.username, request.has_password, request.password);
          if (!key.empty()) {
            if (worker.cache.size() >= kCacheEntries) worker.cache.clear();  // bounded; refilled as asked
            worker.cache[key] = Worker::Cached{now + kCacheSeconds * 1000, accepted};
          }
        }
        // The password is not kept past its check.
        OPENSSL_cleanse(request.password.data(), request.password.size());
        // The verdict ring is as large as the request ring, and a shard drains it every turn.
        // A batch can answer more than that while the shard sleeps (the lane refills as it is
        // served), so a full ring wakes the shard before waiting for it; if the shard stopped,
        // nobody waits for the verdict.
        if (!lane.verdicts.try_push(PasswordVerdict{request.token, accepted, expired})) {
          wake_shard_(shard);
          while (!lane.verdicts.try_push(PasswordVerdict{request.token, accepted, expired})) {
            if (stopping_.load(std::memory_order_acquire)) return;
            std::this_thread::yield();
          }
        }
        ++answered;
      }
      if (answered > 0) {
        worked = true;
        wake_shard_(shard);
      }
    }
    if (worked) continue;
    uint64_t value = 0;
    // Blocks until a shard submits (or stop()).
    if (::read(worker.event_fd, &value, sizeof(value)) < 0 && errno != EINTR) {
      LOG_WARNING("password checker: reading its eventfd failed: %s", std::strerror(errno));
    }
  }
}

}  // namespace coremq::auth
