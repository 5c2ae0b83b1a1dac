// signal-malloc: signal handlers that call malloc/free while threads churn.
//
//   signal-malloc [SECONDS] [--threads N] [--interval-us N] [--kill-interval-us N]
//
// Worker threads run the churn workload. A POSIX timer sends SIGUSR1 to the process every
// --interval-us, and a signaller thread sends SIGUSR2 to a random worker every
// --kill-interval-us, so handlers often interrupt a thread inside the allocator. Each handler
// mallocs, grows (realloc) and frees a block, and swaps a block it keeps between invocations.
// Calling malloc from a handler is not async-signal-safe by the letter of POSIX, but programs do
// it and the allocator must not deadlock on its own locks. Pass = the run ends in time; an
// alarm() watchdog reports "deadlock" and exits 1 otherwise.
#include <pthread.h>
#include <time.h>

#include <cerrno>
#include <csignal>
#include <thread>

#include "workload.h"

namespace {

struct Options {
  uint64_t seconds = 5;
  uint64_t threads = 4;
  uint64_t interval_us = 200;
  uint64_t kill_interval_us = 100;
  uint64_t seed = stress::default_seed();
  uint64_t timeout = 0;
  bool quiet = false;
};

Options parse(int argc, char** argv) {
  Options o;
  stress::Cli cli("signal-malloc",
                  "Signal handlers call malloc/free while threads allocate; fails with "
                  "\"deadlock\" if the run does not end in time.");
  cli.positional("SECONDS", "run time in seconds", o.seconds, 1, 1u << 20, false);
  cli.number("threads", "worker threads", o.threads, 1, 256);
  cli.number("interval-us", "period of the process-wide SIGUSR1 timer (process CPU time)", o.interval_us, 10,
             1u << 30);
  cli.number("kill-interval-us", "pause between SIGUSR2s sent to single workers",
             o.kill_interval_us, 1, 1u << 30);
  cli.number("seed", "random seed", o.seed, 0, UINT64_MAX, "from the clock; printed");
  cli.number("timeout", "watchdog in seconds", o.timeout, 0, 1u << 30, "SECONDS + 30");
  cli.flag("quiet", "no progress lines", o.quiet);
  cli.parse(argc, argv);
  if (o.timeout == 0) o.timeout = o.seconds + 30;
  return o;
}

std::atomic<uint64_t> g_handler_calls{0};
uint64_t g_stamp_seed = 0;

// Per-thread state of the handler: plain thread_local data (static TLS, nothing is allocated
// lazily when a handler first touches it).
thread_local void* t_kept = nullptr;
thread_local size_t t_kept_size = 0;
thread_local uint64_t t_rng = 0;

size_t handler_size() {
  t_rng = stress::mix64(t_rng + 0x9e37);
  return 8 + t_rng % 3000;
}

// The handler: a transient block grown with realloc, and a block kept until the next signal.
void on_signal(int) {
  int saved_errno = errno;

  size_t n = handler_size();
  void* p = std::malloc(n);
  if (p == nullptr) stress::fail("malloc(%zu) in a signal handler returned NULL", n);
  std::memset(p, 0x5a, n);
  void* q = std::realloc(p, 2 * n);
  if (q == nullptr) stress::fail("realloc(%zu) in a signal handler returned NULL", 2 * n);
  if (static_cast<uint8_t*>(q)[n - 1] != 0x5a)
    stress::fail("realloc in a signal handler lost the contents of %p", q);
  std::free(q);

  if (t_kept != nullptr) {
    stress::verify(t_kept, t_kept_size, g_stamp_seed, "block kept by a signal handler");
    std::free(t_kept);
  }
  t_kept_size = handler_size();
  t_kept = std::malloc(t_kept_size);
  if (t_kept == nullptr) stress::fail("malloc(%zu) in a signal handler returned NULL", t_kept_size);
  stress::stamp(t_kept, t_kept_size, g_stamp_seed);

  g_handler_calls.fetch_add(1, std::memory_order_relaxed);
  errno = saved_errno;
}

void install_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  // The handler keeps per-thread state (t_kept): it must not interrupt itself through the
  // other signal, or it would verify and free a block another invocation is swapping.
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGUSR1);
  sigaddset(&sa.sa_mask, SIGUSR2);
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGUSR2, &sa, nullptr);
}

void set_signals_blocked(bool blocked) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

// A process-directed SIGUSR1 every interval_us of the process's CPU time (delivered to some
// thread that does not block it: a worker, since everything else blocks it). CPU time, not wall
// time: on a busy machine the process gets less CPU, and a wall-clock timer would then queue
// signals faster than the starved workers can take them, until handlers are all they run.
timer_t start_timer(uint64_t interval_us) {
  struct sigevent ev;
  std::memset(&ev, 0, sizeof ev);
  ev.sigev_notify = SIGEV_SIGNAL;
  ev.sigev_signo = SIGUSR1;
  timer_t timer;
  if (timer_create(CLOCK_PROCESS_CPUTIME_ID, &ev, &timer) != 0)
    stress::fail("timer_create: %s", strerror(errno));
  struct itimerspec spec;
  spec.it_interval.tv_sec = static_cast<time_t>(interval_us / 1000000);
  spec.it_interval.tv_nsec = static_cast<long>(interval_us % 1000000) * 1000;
  spec.it_value = spec.it_interval;
  if (timer_settime(timer, 0, &spec, nullptr) != 0)
    stress::fail("timer_settime: %s", strerror(errno));
  return timer;
}

// Sends SIGUSR2 to random workers until told to stop.
void signal_workers(const std::vector<pthread_t>& targets, const std::atomic<bool>& stop,
                    uint64_t pause_us, uint64_t seed) {
  stress::Rng rng(seed);
  while (!stop.load(std::memory_order_relaxed)) {
    pthread_kill(targets[rng.below(targets.size())], SIGUSR2);
    std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  stress::arm_watchdog(static_cast<unsigned>(o.timeout),
                       "deadlock: malloc in signal handlers hung the run");
  std::printf("signal-malloc: %" PRIu64 " s, %" PRIu64 " threads, timer every %" PRIu64
              " us, targeted signal every %" PRIu64 " us, seed %" PRIu64 "\n",
              o.seconds, o.threads, o.interval_us, o.kill_interval_us, o.seed);
  std::fflush(stdout);
  g_stamp_seed = o.seed ^ 0x516;

  install_handlers();
  set_signals_blocked(true);  // inherited by every thread; workers unblock the signals

  stress::ChurnConfig cfg;
  cfg.working_set = 1000;
  cfg.seed = o.seed;
  stress::Exchange exchange(256);
  stress::Budget budget(0);  // until stop()
  std::atomic<uint64_t> iterations{0};
  std::vector<std::thread> workers;
  for (uint64_t t = 0; t < o.threads; ++t) {
    workers.emplace_back([&, t] {
      t_rng = o.seed + t;
      set_signals_blocked(false);
      stress::ChurnStats st = stress::churn(cfg, exchange, budget, stress::mix64(o.seed + t));
      set_signals_blocked(true);
      if (t_kept != nullptr) {
        stress::verify(t_kept, t_kept_size, g_stamp_seed, "block kept by a signal handler");
        std::free(t_kept);
      }
      iterations.fetch_add(st.allocations);
    });
  }
  std::vector<pthread_t> targets;
  for (std::thread& w : workers) targets.push_back(w.native_handle());

  std::atomic<bool> stop_signals{false};
  timer_t timer = start_timer(o.interval_us);
  std::thread signaller(signal_workers, std::cref(targets), std::cref(stop_signals),
                        o.kill_interval_us, o.seed);

  auto start = stress::Clock::now();
  for (uint64_t s = 1; s <= o.seconds; ++s) {
    std::this_thread::sleep_until(start + std::chrono::seconds(s));
    if (!o.quiet) {
      std::printf("- %" PRIu64 " s: %" PRIu64 " signal handlers ran\n", s,
                  g_handler_calls.load(std::memory_order_relaxed));
      std::fflush(stdout);
    }
  }

  timer_delete(timer);
  stop_signals.store(true);
  signaller.join();
  budget.stop();
  for (std::thread& w : workers) w.join();
  exchange.drain(o.seed);

  uint64_t calls = g_handler_calls.load();
  if (calls == 0) stress::fail("no signal handler ran: the test tested nothing");
  std::printf("signal-malloc: OK: %" PRIu64 " signal handlers with malloc/free, %" PRIu64
              " allocations by the workers, %.2f s\n",
              calls, iterations.load(), stress::seconds_since(start));
  return 0;
}
