// mstress-like: threads that allocate, free and swap objects at random through a shared table,
// in rounds of new threads (the pattern of mimalloc's stress test, mstress).
//
// Pattern: each of --rounds rounds starts --threads threads. A thread keeps up to --live objects
// of its own and takes --steps random steps: allocate (most sizes 8 B-1 KiB, one in 100 of
// 1-64 KiB, one in 1000 of 64-512 KiB), free a random object of its own, or swap one of its
// objects with a random cell of a table shared by all threads (so it later frees objects other
// threads made). At the end of a round a thread frees half of what it holds and leaves the other
// half in the shared table for the next round's threads: objects outlive the threads that made
// them, the heap's live set keeps moving between thread caches, and thread caches come and go.
//
// Checked: every object holds its stamp when it is freed, and all objects are freed by the end
// (a count); else exit 1.
//
// Output (stdout, key=value): seconds, checksum, threads, rounds, objects, swaps, then the
// process's counters (classic_common.h).
#include "classic_common.h"

namespace {

constexpr const char* kProgram = "mstress-like";

struct Config {
  uint64_t threads = 2;
  uint64_t rounds = 30;
  uint64_t steps = 300000;
  uint64_t live = 2000;
  uint64_t table = 4096;
  uint64_t seed = 42;
  bool quick = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Rounds of threads allocating, freeing and swapping objects through a shared "
                   "table; objects outlive their threads (mstress' pattern).");
  o.number("threads", "threads per round", c.threads, 1, 1024);
  o.number("rounds", "rounds (new threads each)", c.rounds, 1, 1 << 20);
  o.number("steps", "steps per thread and round", c.steps, 1, 1ULL << 40);
  o.number("live", "objects a thread holds at most", c.live, 1, 1 << 24);
  o.number("table", "cells of the shared table", c.table, 1, 1 << 24);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.flag("quick", "a short run (2 rounds of 30000 steps)", c.quick);
  o.parse(argc, argv);
  if (c.quick) {
    c.rounds = 2;
    c.steps = 30000;
  }
  return c;
}

size_t object_size(perfw::Rng& rng) {
  uint64_t r = rng.below(1000);
  if (r == 0) return (64 << 10) + rng.below(448 << 10);
  if (r < 10) return (1 << 10) + rng.below(63 << 10);
  return 8 + rng.below(1017);
}

struct alignas(64) Tally {
  uint64_t made = 0, freed = 0, swaps = 0, sum = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);
  std::vector<std::atomic<void*>> table(c.table);
  for (auto& cell : table) cell.store(nullptr);
  std::vector<Tally> tally(c.threads);
  classic::Report rep;

  for (uint64_t round = 0; round < c.rounds; ++round) {
    rep.seconds += classic::run_threads(c.threads, [&](uint64_t t) {
      perfw::Rng rng(c.seed + round * 1315423911 + t * 2654435761u);
      Tally& my = tally[t];
      std::vector<void*> held;
      held.reserve(c.live);
      uint64_t id = (round << 32) | (t << 24);
      for (uint64_t s = 0; s < c.steps; ++s) {
        uint64_t r = rng.below(100);
        if (r < 50 || held.empty()) {
          if (held.size() < c.live) {
            held.push_back(classic::new_block(kProgram, object_size(rng), ++id));
            ++my.made;
          }
        } else if (r < 85) {
          size_t k = rng.below(held.size());
          my.sum += classic::free_block(kProgram, held[k]);
          ++my.freed;
          held[k] = held.back();
          held.pop_back();
        } else {
          size_t k = rng.below(held.size());
          void* got = table[rng.below(c.table)].exchange(held[k], std::memory_order_acq_rel);
          ++my.swaps;
          if (got != nullptr) {
            held[k] = got;
          } else {
            held[k] = held.back();
            held.pop_back();
          }
        }
      }
      // Free half, leave the rest in the table for the next round's threads.
      for (size_t k = 0; k < held.size(); ++k) {
        if (k % 2 == 0) {
          my.sum += classic::free_block(kProgram, held[k]);
          ++my.freed;
          continue;
        }
        void* got = table[rng.below(c.table)].exchange(held[k], std::memory_order_acq_rel);
        if (got != nullptr) {
          my.sum += classic::free_block(kProgram, got);
          ++my.freed;
        }
      }
    });
  }
  uint64_t made = 0, freed = 0, swaps = 0;
  for (auto& cell : table)
    if (void* p = cell.exchange(nullptr)) {
      tally[0].sum += classic::free_block(kProgram, p);
      ++tally[0].freed;
    }
  for (const Tally& t : tally) {
    made += t.made;
    freed += t.freed;
    swaps += t.swaps;
    rep.checksum += t.sum;
  }
  if (made != freed) perfw::die(kProgram, "objects were lost or freed twice");

  classic::print_report(origin, rep);
  std::printf("threads=%" PRIu64 "\nrounds=%" PRIu64 "\nobjects=%" PRIu64 "\nswaps=%" PRIu64 "\n",
              c.threads, c.rounds, made, swaps);
  return 0;
}
