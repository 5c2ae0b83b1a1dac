// churn: multithreaded malloc/free churn with cross-thread frees, as little else as possible.
//
// Each of --threads threads owns --slots slots holding live objects (random sizes in
// [--min-size, --max-size]). One operation picks a random slot, frees its object and puts a new
// one there. With chance --remote-pct percent the old object is not freed by its owner but
// swapped into a random cell of a shared mailbox (one atomic exchange); whatever the cell held
// before - usually an object another thread allocated - is freed instead. So a share of all
// frees are remote frees and memory migrates between threads, as in a server whose requests are
// finished by other threads. Unlike stress/test-stress, objects are not verified (only their
// first word is written and read), so the figure is dominated by the allocator.
//
// Every thread runs --ops operations after a warm-up that fills its slots; the figure is wall
// time over all threads' operations.
//
// Output (stdout, key=value): malloc_from threads ops seconds ns_per_op ops_per_sec
// remote_frees (frees of an object another thread allocated) cpu_seconds pss_kb rss_kb maps
#include <sys/resource.h>

#include <atomic>
#include <memory>
#include <thread>

#include "workload_common.h"

namespace {

constexpr const char* kProgram = "churn";

struct Config {
  uint64_t threads = 2;
  uint64_t ops = 5'000'000;
  uint64_t slots = 1000;
  uint64_t min_size = 16;
  uint64_t max_size = 1024;
  uint64_t remote_pct = 25;
  uint64_t mailbox = 4096;
  uint64_t seed = 42;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Threads replace random live objects; a share of the frees happen on another "
                   "thread. Prints wall time per operation (one malloc plus one free).");
  o.number("threads", "worker threads", c.threads, 1, 1024);
  o.number("ops", "operations per thread", c.ops, 1, 1ULL << 40);
  o.number("slots", "live objects per thread", c.slots, 1, 1 << 24);
  o.number("min-size", "smallest object in bytes", c.min_size, 16, 1 << 24);
  o.number("max-size", "largest object in bytes", c.max_size, 16, 1 << 24);
  o.number("remote-pct", "percent of frees handed to the shared mailbox", c.remote_pct, 0, 100);
  o.number("mailbox", "cells of the shared mailbox", c.mailbox, 1, 1 << 24);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.parse(argc, argv);
  if (c.max_size < c.min_size) o.usage_error("--max-size must not be below --min-size");
  return c;
}

// The first word of every object holds the index of the thread that allocated it.
struct alignas(64) Worker {
  uint64_t remote_frees = 0;
  uint64_t frees = 0;
};

void* make(perfw::Rng& rng, const Config& c, uint64_t owner) {
  size_t n = rng.between(c.min_size, c.max_size);
  void* p = std::malloc(n);
  if (p == nullptr) perfw::die(kProgram, "malloc returned NULL");
  *static_cast<volatile uint64_t*>(p) = owner;
  return p;
}

void release(void* p, uint64_t self, Worker& w) {
  if (*static_cast<volatile uint64_t*>(p) != self) ++w.remote_frees;
  ++w.frees;
  std::free(p);
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);

  std::unique_ptr<std::atomic<void*>[]> mailbox(new std::atomic<void*>[c.mailbox]);
  for (uint64_t i = 0; i < c.mailbox; ++i) mailbox[i].store(nullptr);
  std::vector<Worker> workers(c.threads);
  std::atomic<uint64_t> ready{0};
  std::atomic<bool> go{false};
  std::atomic<uint64_t> finished{0};
  std::atomic<bool> teardown{false};
  double t_start = 0, t_end = 0;

  auto body = [&](uint64_t self) {
    perfw::Rng rng(perfw::Rng(c.seed + 0x1000 * (self + 1)).next());
    Worker& w = workers[self];
    std::vector<void*> slots(c.slots);
    for (void*& s : slots) s = make(rng, c, self);
    ready.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();

    for (uint64_t op = 0; op < c.ops; ++op) {
      uint64_t r = rng.next();
      void*& slot = slots[r % c.slots];
      if ((r >> 32) % 100 < c.remote_pct) {
        void* other = mailbox[(r >> 20) % c.mailbox].exchange(slot, std::memory_order_acq_rel);
        if (other != nullptr) release(other, self, w);
      } else {
        release(slot, self, w);
      }
      slot = make(rng, c, self);
    }
    if (finished.fetch_add(1) + 1 == c.threads) t_end = perfw::now_seconds();
    // Keep the live set until every thread is done (late threads still see a full heap) and
    // the main thread has sampled the footprint.
    while (!teardown.load(std::memory_order_acquire)) std::this_thread::yield();
    for (void* s : slots) release(s, self, w);
  };

  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < c.threads; ++t) threads.emplace_back(body, t);
  while (ready.load() < c.threads) std::this_thread::yield();
  t_start = perfw::now_seconds();
  go.store(true, std::memory_order_release);

  // The footprint once every thread is done but still holds its live set.
  while (finished.load() < c.threads) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  long pss = perfw::smaps_rollup_kib("Pss");
  long rss = perfw::smaps_rollup_kib("Rss");
  long maps = perfw::mapping_count();
  teardown.store(true, std::memory_order_release);
  for (std::thread& t : threads) t.join();

  Worker drain;
  for (uint64_t i = 0; i < c.mailbox; ++i)
    if (void* p = mailbox[i].exchange(nullptr)) release(p, UINT64_MAX, drain);

  uint64_t total_ops = c.threads * c.ops, remote = 0;
  for (const Worker& w : workers) remote += w.remote_frees;
  double secs = t_end - t_start;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
               (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;

  std::printf("malloc_from=%s\n", origin.c_str());
  std::printf("threads=%" PRIu64 "\nops=%" PRIu64 "\n", c.threads, total_ops);
  std::printf("seconds=%.4f\n", secs);
  std::printf("ns_per_op=%.3f\n", secs > 0 ? secs * 1e9 / static_cast<double>(total_ops) : 0.0);
  std::printf("ops_per_sec=%.0f\n", secs > 0 ? static_cast<double>(total_ops) / secs : 0.0);
  std::printf("remote_frees=%" PRIu64 "\n", remote);
  std::printf("cpu_seconds=%.3f\n", cpu);
  std::printf("pss_kb=%ld\nrss_kb=%ld\nmaps=%ld\n", pss, rss, maps);
  return 0;
}
