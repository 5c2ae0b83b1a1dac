// docs/behaviour.md section D (light): cross-thread frees with content checks on every object.
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "api_test_util.h"

namespace mesh_api_test {
namespace {

// Every object starts with this header; the rest is FillPattern(seed).
struct Header {
  uint64_t seed;
  uint64_t size;
};

// A bounded queue of batches of objects handed from producers to consumers.
class BatchQueue {
 public:
  explicit BatchQueue(size_t max_batches) : max_(max_batches) {}
  void Push(std::vector<void*> batch) {
    std::unique_lock<std::mutex> lock(mu_);
    not_full_.wait(lock, [&] { return q_.size() < max_; });
    q_.push_back(std::move(batch));
    not_empty_.notify_one();
  }
  // false when closed and drained.
  bool Pop(std::vector<void*>* out) {
    std::unique_lock<std::mutex> lock(mu_);
    not_empty_.wait(lock, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return false;
    *out = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return true;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<std::vector<void*>> q_;
  size_t max_;
  bool closed_ = false;
};

size_t PickSize(std::mt19937_64& rng) {
  uint64_t r = rng();
  if (r % 1000 == 0) return 65536 + (r >> 20) % (1 << 20);  // occasional large object
  return sizeof(Header) + (r >> 10) % 2048;
}

TEST(Threads, D16_ProducerConsumerCrossThreadFree) {
  constexpr int kProducers = 2, kConsumers = 2;
  constexpr uint64_t kObjectsPerProducer = 500000;  // 1M objects in total
  constexpr size_t kBatch = 256;
  BatchQueue queue(64);
  std::atomic<uint64_t> bad{0}, consumed{0}, misaligned{0};

  auto producer = [&](int id) {
    std::mt19937_64 rng(uint64_t(id) * 7919 + 1);
    std::vector<void*> batch;
    batch.reserve(kBatch);
    for (uint64_t i = 0; i < kObjectsPerProducer; ++i) {
      size_t n = PickSize(rng);
      void* p = malloc(n);
      if (!p) {
        bad.fetch_add(1);
        continue;
      }
      if (!IsAligned(p, 16)) misaligned.fetch_add(1);
      Header h{(uint64_t(id) << 40) | i, n};
      memcpy(p, &h, sizeof h);
      FillPattern(static_cast<char*>(p) + sizeof h, n - sizeof h, h.seed);
      batch.push_back(p);
      if (batch.size() == kBatch) {
        queue.Push(std::move(batch));
        batch = {};
        batch.reserve(kBatch);
      }
    }
    if (!batch.empty()) queue.Push(std::move(batch));
  };
  auto consumer = [&] {
    std::vector<void*> batch;
    while (queue.Pop(&batch)) {
      for (void* p : batch) {
        Header h;
        memcpy(&h, p, sizeof h);
        if (h.size < sizeof h || h.size > (2u << 20) || malloc_usable_size(p) < h.size ||
            !CheckPattern(static_cast<char*>(p) + sizeof h, h.size - sizeof h, h.seed)) {
          bad.fetch_add(1);
        }
        free(p);
        consumed.fetch_add(1, std::memory_order_relaxed);
      }
    }
  };

  std::vector<std::thread> producers, consumers;
  for (int i = 0; i < kConsumers; ++i) consumers.emplace_back(consumer);
  for (int i = 0; i < kProducers; ++i) producers.emplace_back(producer, i);
  for (auto& t : producers) t.join();
  queue.Close();
  for (auto& t : consumers) t.join();

  EXPECT_EQ(bad.load(), 0u) << "objects damaged in transit (overlap or duplicate hand-out)";
  EXPECT_EQ(misaligned.load(), 0u);
  EXPECT_EQ(consumed.load(), kProducers * kObjectsPerProducer);
}

TEST(Threads, D17_ThreadsExitWithLiveObjectsFreedByOthers) {
  // Short-lived threads leave their objects behind; the main thread frees them later.
  std::vector<std::pair<void*, size_t>> leftovers;
  std::mutex mu;
  mesh_stats s0 = Stats();
  for (int round = 0; round < 20; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        std::vector<std::pair<void*, size_t>> mine;
        for (int i = 0; i < 500; ++i) {
          size_t n = 16 + size_t((i * 37 + t) % 700);
          void* p = malloc(n);
          if (!p) continue;
          FillPattern(p, n, n);
          mine.emplace_back(p, n);
        }
        std::lock_guard<std::mutex> lock(mu);
        leftovers.insert(leftovers.end(), mine.begin(), mine.end());
      });
    }
    for (auto& th : threads) th.join();
    ASSERT_EQ(leftovers.size(), 8u * 500u);
    for (auto [p, n] : leftovers) {
      ASSERT_TRUE(CheckPattern(p, n, n)) << "object of an exited thread damaged";
      free(p);
    }
    leftovers.clear();
  }
  if (HaveLibmesh()) {
    mesh_stats s1 = Stats();
    EXPECT_LT(s1.bytes_in_use, s0.bytes_in_use + (4u << 20)) << "memory of exited threads leaked";
    EXPECT_LT(s1.thread_heaps, s0.thread_heaps + 8) << "thread heaps of exited threads stay alive";
  }
}

}  // namespace
}  // namespace mesh_api_test
