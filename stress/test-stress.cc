// test-stress: multithreaded allocation churn with cross-thread frees and content checks.
//
//   test-stress THREADS LOAD ITERATIONS      e.g. test-stress 64 10 20000000
//
// THREADS workers share ITERATIONS steps of the churn workload (workload.h). Each worker holds
// LOAD% of 5000 blocks; blocks of mostly small sizes are stamped on allocation and verified before
// they are freed, and about one step in eight hands a block to another thread.
#include <algorithm>
#include <thread>

#include "workload.h"

namespace {

constexpr uint64_t kBlocksAtFullLoad = 5000;

struct Options {
  uint64_t threads = 0;
  uint64_t load = 0;
  uint64_t iterations = 0;
  uint64_t seed = stress::default_seed();
  uint64_t handoff = 8;
  uint64_t timeout = 0;
  bool quiet = false;  // no progress lines (the start and summary lines stay)
};

Options parse(int argc, char** argv) {
  Options o;
  stress::Cli cli("test-stress",
                  "Threads allocate, stamp, verify and free random-size blocks, handing blocks "
                  "to each other (cross-thread frees).");
  cli.positional("THREADS", "worker threads (1..1024)", o.threads, 1, 1024);
  cli.positional("LOAD", "working set in percent of 5000 blocks per thread (1..1000)", o.load, 1,
                 1000);
  cli.positional("ITERATIONS", "total steps over all threads", o.iterations, 1, 1'000'000'000'000);
  cli.number("seed", "random seed", o.seed, 0, UINT64_MAX, "from the clock; printed");
  cli.number("handoff", "hand a block to another thread with chance 1/N", o.handoff, 1, 1u << 30);
  cli.number("timeout", "fail if not done after N seconds (0 = no limit)", o.timeout, 0, 1u << 30);
  cli.flag("quiet", "no progress lines", o.quiet);
  cli.epilog("example: test-stress 64 10 20000000");
  cli.parse(argc, argv);
  return o;
}

// Prints "- iterations left: N, use - S s" at each tenth of the work (and at least every 5 s)
// until all workers are done.
void report_progress(const Options& o, const stress::Budget& budget,
                     const std::atomic<uint64_t>& done, stress::Clock::time_point start) {
  stress::ProgressTicker ticker(o.iterations);
  while (done.load() < o.threads) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    uint64_t left = budget.remaining();
    double now = stress::seconds_since(start);
    if (o.quiet || !ticker.due(left, now)) continue;
    std::printf("- iterations left: %" PRIu64 ", use - %.2f s\n", left, now);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  stress::arm_watchdog(static_cast<unsigned>(o.timeout), "test-stress did not finish in time");

  stress::ChurnConfig cfg;
  cfg.working_set = std::max<uint64_t>(16, kBlocksAtFullLoad * o.load / 100);
  cfg.seed = o.seed;
  cfg.handoff_one_in = o.handoff;
  {
    std::printf("test-stress: %" PRIu64 " threads, load %" PRIu64 "%% (%zu blocks each), %" PRIu64
                " iterations, seed %" PRIu64 "\n",
                o.threads, o.load, cfg.working_set, o.iterations, o.seed);
    std::fflush(stdout);
  }

  stress::Exchange exchange(std::max<uint64_t>(256, o.threads * 32));
  stress::Budget budget(o.iterations);
  std::vector<stress::ChurnStats> stats(o.threads);
  std::atomic<uint64_t> done{0};
  auto start = stress::Clock::now();

  std::vector<std::thread> workers;
  for (uint64_t t = 0; t < o.threads; ++t) {
    workers.emplace_back([&, t] {
      stats[t] = stress::churn(cfg, exchange, budget, stress::mix64(o.seed * 1000003 + t));
      done.fetch_add(1);
    });
  }
  report_progress(o, budget, done, start);
  for (std::thread& w : workers) w.join();

  stress::ChurnStats total;
  for (const stress::ChurnStats& s : stats) total.add(s);
  total.frees += exchange.drain(o.seed);
  double secs = stress::seconds_since(start);
  if (total.allocations != total.frees) {
    stress::fail("%" PRIu64 " allocations but %" PRIu64 " frees: blocks were lost",
                 total.allocations, total.frees);
  }

  uint64_t ops = total.allocations + total.frees;
  std::printf("test-stress: OK: %" PRIu64 " iterations, %" PRIu64 " allocations, %" PRIu64
              " frees, %" PRIu64 " hand-offs\n",
              o.iterations, total.allocations, total.frees, total.handoffs);
  std::printf("summary: ops=%" PRIu64 " seconds=%.3f ops_per_sec=%.0f\n", ops, secs,
              secs > 0 ? static_cast<double>(ops) / secs : 0.0);
  return 0;
}
