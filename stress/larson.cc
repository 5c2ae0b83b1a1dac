// larson: server simulation in the style of the Larson & Krishnan benchmark.
//
//   larson SECONDS MIN_SIZE MAX_SIZE CHUNKS_PER_THREAD ROUNDS SEED THREADS
//   e.g. larson 5 8 1000 5000 100 4141 2
//
// There are THREADS "lanes", each an array of CHUNKS_PER_THREAD live chunks. A lane is served by
// one thread at a time: the thread repeatedly frees a random chunk and replaces it with a new one
// of random size in [MIN_SIZE, MAX_SIZE]. After ROUNDS replacements the thread exits and a new
// thread takes the lane over, so chunks are freed by threads other than the ones that allocated
// them. The run lasts SECONDS and ends with "Throughput = N operations per second", where an
// operation is one free plus one malloc. A few bytes of every chunk are checked before its free.
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "common.h"

namespace {

struct Options {
  uint64_t seconds = 0, min_size = 0, max_size = 0, chunks = 0, rounds = 0, seed = 0, threads = 0;
  uint64_t timeout = 0;
  bool quiet = false;
};

Options parse(int argc, char** argv) {
  Options o;
  stress::Cli cli("larson",
                  "Larson-style server simulation: lanes of chunks are replaced at random and "
                  "passed from thread to thread; prints the throughput.");
  cli.positional("SECONDS", "run time in seconds", o.seconds, 1, 1u << 30);
  cli.positional("MIN_SIZE", "smallest chunk in bytes", o.min_size, 1, 1u << 30);
  cli.positional("MAX_SIZE", "largest chunk in bytes", o.max_size, 1, 1u << 30);
  cli.positional("CHUNKS_PER_THREAD", "live chunks per lane", o.chunks, 1, 1u << 24);
  cli.positional("ROUNDS", "replacements before a lane moves to a new thread", o.rounds, 1,
                 UINT64_MAX);
  cli.positional("SEED", "random seed", o.seed, 0, UINT64_MAX);
  cli.positional("THREADS", "lanes (concurrent threads)", o.threads, 1, 1024);
  cli.number("timeout", "fail if not done after N seconds (0 = SECONDS + 60)", o.timeout, 0,
             1u << 30);
  cli.flag("quiet", "no progress lines", o.quiet);
  cli.epilog("example: larson 5 8 1000 5000 100 4141 2");
  cli.parse(argc, argv);
  if (o.max_size < o.min_size) cli.usage_error("MAX_SIZE must not be below MIN_SIZE");
  return o;
}

struct Chunk {
  void* p = nullptr;
  size_t n = 0;
};

struct Lane {
  explicit Lane(uint64_t seed) : rng(seed) {}
  std::vector<Chunk> chunks;
  stress::Rng rng;
  std::thread thread;
  std::atomic<uint64_t> ops{0};  // read by the progress printer
  uint64_t generations = 0;      // threads that have served this lane
};

class Simulation {
 public:
  explicit Simulation(const Options& o) : o_(o) {
    for (uint64_t i = 0; i < o.threads; ++i)
      lanes_.push_back(std::make_unique<Lane>(stress::mix64(o.seed + 7919 * (i + 1))));
  }

  // Fills every lane with its initial chunks (allocated by the main thread).
  void populate() {
    for (auto& lane : lanes_) {
      lane->chunks.resize(o_.chunks);
      for (Chunk& c : lane->chunks) c = allocate(lane->rng);
    }
  }

  // Runs for SECONDS, restarting each lane on a new thread whenever its thread finishes.
  void run() {
    start_ = stress::Clock::now();
    auto deadline = start_ + std::chrono::seconds(o_.seconds);
    for (size_t i = 0; i < lanes_.size(); ++i) launch(i);
    auto next_report = start_ + std::chrono::seconds(1);

    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      auto now = stress::Clock::now();
      if (now >= deadline) break;
      cv_.wait_until(lock, std::min(deadline, next_report), [&] { return !finished_.empty(); });
      while (!finished_.empty()) {
        size_t i = finished_.front();
        finished_.pop_front();
        lock.unlock();
        lanes_[i]->thread.join();
        if (stress::Clock::now() < deadline)
          launch(i);
        else
          --running_;
        lock.lock();
      }
      if (stress::Clock::now() >= next_report) {
        lock.unlock();
        report();
        lock.lock();
        next_report += std::chrono::seconds(1);
      }
    }
    stop_.store(true);
    lock.unlock();
    wait_for_all();
    elapsed_ = stress::seconds_since(start_);
  }

  // Verifies and frees every remaining chunk; prints the results.
  void finish() {
    uint64_t ops = total_ops(), generations = 0;
    for (auto& lane : lanes_) {
      generations += lane->generations;
      for (Chunk& c : lane->chunks) release(c, "final free");
    }
    std::printf("larson: OK: %" PRIu64 " lanes, %" PRIu64 " threads in total, %" PRIu64
                " operations in %.3f s\n",
                o_.threads, generations, ops, elapsed_);
    std::printf("Throughput = %.0f operations per second\n",
                elapsed_ > 0 ? static_cast<double>(ops) / elapsed_ : 0.0);
  }

 private:
  Chunk allocate(stress::Rng& rng) {
    Chunk c;
    c.n = rng.between(o_.min_size, o_.max_size);
    c.p = stress::xmalloc(c.n, "larson");
    stress::stamp(c.p, c.n, o_.seed, stress::StampMode::kLight);
    return c;
  }

  void release(Chunk& c, const char* ctx) {
    stress::verify(c.p, c.n, o_.seed, ctx, stress::StampMode::kLight);
    std::free(c.p);
    c = Chunk{};
  }

  // One thread's turn on a lane: ROUNDS replacements (or until the run stops).
  void serve(size_t i) {
    Lane& lane = *lanes_[i];
    uint64_t done = 0;
    for (; done < o_.rounds && !stop_.load(std::memory_order_relaxed); ++done) {
      Chunk& c = lane.chunks[lane.rng.below(lane.chunks.size())];
      release(c, "free of a chunk allocated by an earlier thread");
      c = allocate(lane.rng);
      if ((done & 1023) == 1023) lane.ops.fetch_add(1024, std::memory_order_relaxed);
    }
    lane.ops.fetch_add(done & 1023, std::memory_order_relaxed);
    std::lock_guard<std::mutex> guard(mu_);
    finished_.push_back(i);
    cv_.notify_one();
  }

  void launch(size_t i) {
    Lane& lane = *lanes_[i];
    ++lane.generations;
    if (lane.generations == 1) ++running_;
    lane.thread = std::thread([this, i] { serve(i); });
  }

  // After stop: joins each lane's last thread.
  void wait_for_all() {
    std::unique_lock<std::mutex> lock(mu_);
    while (running_ > 0) {
      cv_.wait(lock, [&] { return !finished_.empty(); });
      size_t i = finished_.front();
      finished_.pop_front();
      lock.unlock();
      lanes_[i]->thread.join();
      lock.lock();
      --running_;
    }
  }

  uint64_t total_ops() const {
    uint64_t ops = 0;
    for (const auto& lane : lanes_) ops += lane->ops.load(std::memory_order_relaxed);
    return ops;
  }

  void report() {
    if (o_.quiet) return;
    std::printf("- %.1f s: %" PRIu64 " operations\n", stress::seconds_since(start_), total_ops());
    std::fflush(stdout);
  }

  const Options& o_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<size_t> finished_;  // lanes whose thread has finished and needs joining
  uint64_t running_ = 0;         // lanes with a thread that has not been joined for good
  std::atomic<bool> stop_{false};
  stress::Clock::time_point start_;
  double elapsed_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  uint64_t timeout = o.timeout != 0 ? o.timeout : o.seconds + 60;
  stress::arm_watchdog(static_cast<unsigned>(timeout), "larson did not finish in time");
  if (!o.quiet) {
    std::printf("larson: %" PRIu64 " s, sizes %" PRIu64 "..%" PRIu64 ", %" PRIu64
                " chunks per lane, %" PRIu64 " rounds, seed %" PRIu64 ", %" PRIu64 " threads\n",
                o.seconds, o.min_size, o.max_size, o.chunks, o.rounds, o.seed, o.threads);
    std::fflush(stdout);
  }
  Simulation sim(o);
  sim.populate();
  sim.run();
  sim.finish();
  return 0;
}
