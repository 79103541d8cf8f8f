// What the persistence unit tests share: a temporary directory removed at the end, and a
// store on it with a small commit queue whose answers a test can wait for.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "coremq/options.h"
#include "persist/store.h"

namespace coremq::testing {

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/coremq-persist-XXXXXX";
    path_ = ::mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct StoreFixture {
  explicit StoreFixture(const std::string& dir, uint32_t shards = 2,
                        PersistenceOptions::Fsync fsync = PersistenceOptions::Fsync::kBatch) {
    options.engine = PersistenceOptions::Engine::kRocksDb;
    options.data_dir = dir;
    options.fsync = fsync;
    options.commit_queue_capacity = 4;
    options.batches_in_flight = 8;  // above the ring: the store tests fill it
    std::string error;
    store = persist::Store::open(options, shards, [this](uint32_t) { ++wakes; }, &error);
    EXPECT_NE(store, nullptr) << error;
  }
  // Drains shard `shard`'s answers until `batch` is durable or 10 s pass.
  bool wait_durable(uint32_t shard, uint64_t batch) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      store->journal(shard).drain_answers();
      if (store->journal(shard).is_durable(batch)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }
  PersistenceOptions options;
  std::atomic<int> wakes{0};
  std::unique_ptr<persist::Store> store;
};

}  // namespace coremq::testing
