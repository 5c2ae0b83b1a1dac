// glibc-simple-like: batches of same-size blocks allocated and freed in allocation order (the
// pattern of glibc's benchtests malloc-simple).
//
// Pattern: the fastest paths of an allocator, a thread cache filled and drained: for each block
// size of 16 to 128 bytes (small sizes, as the benchmark is usually run) and each batch of 25,
// 100, 400 or 1600 blocks, malloc the whole batch (stamping every block), then check and free
// the blocks in the order they were allocated; many rounds of that. It runs three times, as glibc's
// benchmark does: on the main thread of a process that is still single-threaded, on the main thread
// after a second thread has started (a multithreaded process; the thread only waits), and on a
// thread of its own.
//
// Checked: every block holds its stamp when it is freed; else exit 1.
//
// Output (stdout, key=value): seconds (all three runs), single_s, main_mt_s, thread_s, checksum,
// blocks, then the process's counters (classic_common.h).
#include <condition_variable>
#include <mutex>

#include "classic_common.h"

namespace {

constexpr const char* kProgram = "glibc-simple-like";
constexpr size_t kSizes[] = {16, 32, 48, 64, 96, 128};
constexpr size_t kBatches[] = {25, 100, 400, 1600};

struct Config {
  uint64_t rounds = 600;
  uint64_t seed = 42;
  bool quick = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Mallocs batches of same-size blocks and frees them in order, single-threaded, "
                   "in a multithreaded process and on a thread (glibc malloc-simple's pattern).");
  o.number("rounds", "1600-block rounds per size and batch length", c.rounds, 1, 1 << 24);
  o.number("seed", "random seed (stamps)", c.seed, 0, UINT64_MAX);
  o.flag("quick", "a short run (10 rounds)", c.quick);
  o.parse(argc, argv);
  if (c.quick) c.rounds = 10;
  return c;
}

struct Tally {
  uint64_t blocks = 0;
  uint64_t checksum = 0;
};

void run_loops(const Config& c, Tally& tally) {
  void* blocks[1600];
  uint64_t tag = c.seed;
  for (size_t size : kSizes) {
    for (size_t batch : kBatches) {
      uint64_t repeats = c.rounds * (1600 / batch);
      for (uint64_t r = 0; r < repeats; ++r) {
        for (size_t i = 0; i < batch; ++i) {
          blocks[i] = classic::xmalloc(kProgram, size);
          classic::stamp(blocks[i], size, tag + i);
        }
        for (size_t i = 0; i < batch; ++i)
          classic::free_stamped(kProgram, blocks[i], size, tag + i);
        tally.blocks += batch;
        tag += batch;
      }
      tally.checksum += tag;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);
  Tally tally;

  // 1. the main thread of a single-threaded process
  double t0 = perfw::now_seconds();
  run_loops(c, tally);
  double single_s = perfw::now_seconds() - t0;

  // 2. the main thread while another thread exists (it waits and allocates nothing)
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::thread idle([&] {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return done; });
  });
  t0 = perfw::now_seconds();
  run_loops(c, tally);
  double main_mt_s = perfw::now_seconds() - t0;
  {
    std::lock_guard<std::mutex> lock(m);
    done = true;
  }
  cv.notify_all();
  idle.join();

  // 3. a thread of its own
  double thread_s = classic::run_threads(1, [&](uint64_t) { run_loops(c, tally); });

  classic::Report rep;
  rep.seconds = single_s + main_mt_s + thread_s;
  rep.checksum = tally.checksum;
  classic::print_report(origin, rep);
  std::printf("single_s=%.4f\nmain_mt_s=%.4f\nthread_s=%.4f\nblocks=%" PRIu64 "\n", single_s,
              main_mt_s, thread_s, tally.blocks);
  return 0;
}
