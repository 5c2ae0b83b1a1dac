// Deterministic pseudo-random numbers for the test and benchmark programs: SplitMix64 (one word
// of state, good statistical quality, a few instructions per number). A seed gives the same
// sequence under every allocator, so a failing stress run or a perf figure can be reproduced.
#ifndef MESH_HARNESS_RNG_H
#define MESH_HARNESS_RNG_H

#include <cstdint>

namespace harness {

// The golden-ratio increment of SplitMix64: consecutive states differ in about half their bits.
inline constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// The SplitMix64 finaliser: a bijective, well-mixed function of one word. mix64(x + kGolden) is
// one SplitMix64 step from state x.
inline uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// How a random word becomes a number below n. Both are kept because recorded runs depend on
// them: the stress programs print their seed so a failure can be replayed (multiply-shift), and
// the perf programs' checksums and size mixes are in results/ (modulo).
enum class Reduce {
  kMultiplyShift,  // (word * n) >> 64: no division; its tiny bias is irrelevant here
  kModulo,         // word % n
};

template <Reduce kReduce>
class BasicRng {
 public:
  explicit BasicRng(uint64_t seed) : state_(seed) {}

  uint64_t next() { return mix64(state_ += kGolden); }

  // Uniform in [0, n), n > 0.
  uint64_t below(uint64_t n) {
    if constexpr (kReduce == Reduce::kModulo) {
      return next() % n;
    } else {
      return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
    }
  }
  // Uniform in [lo, hi].
  uint64_t between(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  // True with probability 1/n.
  bool one_in(uint64_t n) { return below(n) == 0; }

 private:
  uint64_t state_;
};

// The stress programs' generator.
using Rng = BasicRng<Reduce::kMultiplyShift>;
// The perf programs' and the fuzz corpus generator's.
using ModuloRng = BasicRng<Reduce::kModulo>;

}  // namespace harness

#endif  // MESH_HARNESS_RNG_H
