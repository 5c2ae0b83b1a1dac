// xmalloc-like: producer threads allocate, consumer threads free (the pattern of xmalloc-test).
//
// Pattern: every free is a remote free. --threads threads split into producers and consumers
// (half each, at least one of each). A producer mallocs objects of 16-512 bytes, writes a stamp
// into each, and hands them over in batches of --batch pointers (the pointer array is malloc'd
// too and freed by the consumer) through a shared queue holding at most --queue batches; a
// consumer takes a batch, checks and frees every object and the array. Memory allocated on one
// thread is always returned on another, so an allocator must move freed memory back to the
// producers (or let it pile up), and the queue keeps the two sides' timing loosely coupled, as a
// pipeline of stages does.
//
// Checked: every object holds its stamp, and the consumers free exactly as many objects as the
// producers made; else exit 1.
//
// Output (stdout, key=value): seconds, checksum, threads, producers, objects, batch, then the
// process's counters (classic_common.h).
#include <condition_variable>
#include <deque>
#include <mutex>

#include "classic_common.h"

namespace {

constexpr const char* kProgram = "xmalloc-like";

struct Config {
  uint64_t threads = 2;
  uint64_t objects = 8'000'000;
  uint64_t batch = 256;
  uint64_t queue = 64;
  uint64_t seed = 42;
  bool quick = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Producer threads malloc objects and pass them in batches to consumer threads "
                   "that free them (xmalloc-test's pattern).");
  o.number("threads", "threads (half producers, at least 2)", c.threads, 2, 1024);
  o.number("objects", "objects made by all producers together", c.objects, 1, 1ULL << 40);
  o.number("batch", "objects per hand-over", c.batch, 1, 1 << 20);
  o.number("queue", "batches the queue holds at most", c.queue, 1, 1 << 20);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.flag("quick", "a short run (200000 objects)", c.quick);
  o.parse(argc, argv);
  if (c.quick) c.objects = 200'000;
  return c;
}

struct Batch {
  void** items;
  uint64_t count;
};

class Queue {
 public:
  explicit Queue(size_t limit) : limit_(limit) {}
  void push(Batch b) {
    std::unique_lock<std::mutex> lock(m_);
    not_full_.wait(lock, [&] { return q_.size() < limit_; });
    q_.push_back(b);
    not_empty_.notify_one();
  }
  // False when the producers are done and nothing is left.
  bool pop(Batch& out) {
    std::unique_lock<std::mutex> lock(m_);
    not_empty_.wait(lock, [&] { return !q_.empty() || producers_left_ == 0; });
    if (q_.empty()) return false;
    out = q_.front();
    q_.pop_front();
    not_full_.notify_one();
    return true;
  }
  void set_producers(uint64_t n) { producers_left_ = n; }
  void producer_done() {
    std::lock_guard<std::mutex> lock(m_);
    if (--producers_left_ == 0) not_empty_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable not_full_, not_empty_;
  std::deque<Batch> q_;
  size_t limit_;
  uint64_t producers_left_ = 0;
};

size_t object_size(uint64_t id) {
  return 16 + (id * 0x9e3779b97f4a7c15ULL >> 32) % 497;
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);
  const uint64_t producers = c.threads / 2;
  const uint64_t per_producer = (c.objects + producers - 1) / producers;
  Queue queue(c.queue);
  queue.set_producers(producers);
  std::vector<uint64_t> freed(c.threads * 8, 0), sums(c.threads * 8, 0);
  classic::Report rep;

  rep.seconds = classic::run_threads(c.threads, [&](uint64_t t) {
    if (t < producers) {
      uint64_t id = c.seed + t * per_producer * 2;
      for (uint64_t made = 0; made < per_producer;) {
        uint64_t n = std::min(c.batch, per_producer - made);
        Batch b{static_cast<void**>(classic::xmalloc(kProgram, n * sizeof(void*))), n};
        for (uint64_t i = 0; i < n; ++i, ++id) {
          b.items[i] = classic::new_block(kProgram, object_size(id), id);
        }
        made += n;
        queue.push(b);
      }
      queue.producer_done();
    } else {
      Batch b{};
      uint64_t count = 0, sum = 0;
      while (queue.pop(b)) {
        for (uint64_t i = 0; i < b.count; ++i) {
          sum += classic::free_block(kProgram, b.items[i]);
        }
        count += b.count;
        std::free(b.items);
      }
      freed[t * 8] = count;
      sums[t * 8] = sum;
    }
  });
  uint64_t total = 0;
  for (uint64_t t = 0; t < c.threads; ++t) {
    total += freed[t * 8];
    rep.checksum += sums[t * 8];
  }
  if (total != per_producer * producers) perfw::die(kProgram, "objects were lost between threads");

  classic::print_report(origin, rep);
  std::printf("threads=%" PRIu64 "\nproducers=%" PRIu64 "\nobjects=%" PRIu64 "\nbatch=%" PRIu64
              "\n",
              c.threads, producers, total, c.batch);
  return 0;
}
