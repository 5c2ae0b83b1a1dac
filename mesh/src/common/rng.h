// A tiny xorshift generator for randomized slot placement. Not for cryptography.
#pragma once

#include <cstdint>

namespace mesh {

class Rng {
 public:
  explicit constexpr Rng(uint64_t seed = 0x9E3779B97F4A7C15ull) : s_(seed | 1) {}
  uint64_t next() {
    s_ ^= s_ << 13;
    s_ ^= s_ >> 7;
    s_ ^= s_ << 17;
    return s_;
  }
  // Uniform in [0, n) for n > 0 (multiply-shift, no division).
  uint32_t below(uint32_t n) {
    return static_cast<uint32_t>(((next() >> 32) * static_cast<uint64_t>(n)) >> 32);
  }

 private:
  uint64_t s_;
};

}  // namespace mesh
