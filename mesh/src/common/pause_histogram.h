// A lock-free histogram of durations (mesh steps, application waits on meshing).
//
// Four buckets per power of two of nanoseconds (the two bits after the leading one pick the
// quarter), so a bucket's upper bound is at most 25% above its lower one; percentiles are
// reported as that upper bound (never above the largest time recorded). record() uses relaxed
// atomics only and may run in a signal handler.
#pragma once

#include <atomic>
#include <cstdint>

namespace mesh {

class PauseHistogram {
 public:
  static constexpr int kBuckets = 4 * 40;

  void record(uint64_t ns) {
    uint64_t prev = max_.load(std::memory_order_relaxed);
    while (ns > prev && !max_.compare_exchange_weak(prev, ns, std::memory_order_relaxed)) {
    }
    int b = bucket(ns);
    counts_[b < kBuckets ? b : kBuckets - 1].fetch_add(1, std::memory_order_relaxed);
  }

  // A copy of the counts that percentiles are computed from; add() merges several histograms.
  struct Snapshot {
    uint64_t counts[kBuckets] = {};
    uint64_t max = 0;
    uint64_t total = 0;
    uint64_t percentileNs(double fraction) const;
  };
  void addTo(Snapshot* s) const {
    for (int i = 0; i < kBuckets; ++i) {
      uint64_t n = counts_[i].load(std::memory_order_relaxed);
      s->counts[i] += n;
      s->total += n;
    }
    uint64_t m = max_.load(std::memory_order_relaxed);
    if (m > s->max) s->max = m;
  }

  uint64_t maxNs() const { return max_.load(std::memory_order_relaxed); }
  uint64_t percentileNs(double fraction) const {
    Snapshot s;
    addTo(&s);
    return s.percentileNs(fraction);
  }

  static int bucket(uint64_t ns) {
    if (ns < 4) return 0;
    int top = 63 - __builtin_clzll(ns);
    return 4 * top + static_cast<int>((ns >> (top - 2)) & 3);
  }
  // Upper bound (exclusive) of a bucket's times.
  static uint64_t bucketLimitNs(int b) {
    if (b == 0) return 4;
    int top = b / 4;
    uint64_t quarter = static_cast<uint64_t>(b % 4);
    return ((uint64_t{4} + quarter + 1) << top) / 4;
  }

 private:
  std::atomic<uint64_t> max_{0};
  std::atomic<uint64_t> counts_[kBuckets] = {};
};

inline uint64_t PauseHistogram::Snapshot::percentileNs(double fraction) const {
  if (total == 0) return 0;
  uint64_t want = static_cast<uint64_t>(fraction * static_cast<double>(total));
  if (want == 0) want = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts[i];
    if (seen >= want) {
      uint64_t limit = bucketLimitNs(i);
      return limit < max ? limit : max;
    }
  }
  return max;
}

}  // namespace mesh
