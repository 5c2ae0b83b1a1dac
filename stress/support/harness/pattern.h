// Byte patterns that an object is filled with and checked against later, so that a lost or
// misplaced write, a stale or wrong page, a short copy or two objects that overlap show up.
//
// The pattern of a seed is position-dependent: word k (bytes [8k, 8k + 8), little-endian) is
// seed + k * kGolden, so a block copied to the wrong offset does not match either. Callers pass
// a seed that differs between objects, usually mix64() of an id or a random word.
//
// Header-only: the loops inline into the programs' hot paths and are compiled with each
// program's flags (sanitizers in the fuzz and property builds).
#ifndef MESH_HARNESS_PATTERN_H
#define MESH_HARNESS_PATTERN_H

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "harness/rng.h"

namespace harness {

inline uint64_t pattern_word(uint64_t seed, size_t k) { return seed + k * kGolden; }

// Byte i of the pattern.
inline uint8_t pattern_byte(uint64_t seed, size_t i) {
  return static_cast<uint8_t>(pattern_word(seed, i / 8) >> (8 * (i % 8)));
}

// Writes the pattern into bytes [from, to) of p, whose byte 0 is the pattern's byte 0.
inline void fill_pattern(void* p, size_t from, size_t to, uint64_t seed) {
  auto* b = static_cast<uint8_t*>(p);
  size_t i = from;
  for (; i < to && i % 8 != 0; ++i) b[i] = pattern_byte(seed, i);
  for (; i + 8 <= to; i += 8) {
    uint64_t w = pattern_word(seed, i / 8);
    std::memcpy(b + i, &w, 8);
  }
  for (; i < to; ++i) b[i] = pattern_byte(seed, i);
}

// Offset of the first byte in [from, to) of p that differs from the pattern, or `to`.
inline size_t find_pattern_mismatch(const void* p, size_t from, size_t to, uint64_t seed) {
  const auto* b = static_cast<const uint8_t*>(p);
  size_t i = from;
  for (; i < to && i % 8 != 0; ++i)
    if (b[i] != pattern_byte(seed, i)) return i;
  for (; i + 8 <= to; i += 8) {
    uint64_t w;
    std::memcpy(&w, b + i, 8);
    if (w != pattern_word(seed, i / 8)) break;  // the byte loop below finds which byte
  }
  for (; i < to; ++i)
    if (b[i] != pattern_byte(seed, i)) return i;
  return to;
}

// Offset of the first byte in [from, to) of p that is not `byte`, or `to`: for memory that must
// be zero (calloc) or hold one fill byte. Compares a word at a time.
inline size_t find_byte_mismatch(const void* p, size_t from, size_t to, uint8_t byte) {
  const auto* b = static_cast<const uint8_t*>(p);
  const uint64_t all = 0x0101010101010101ULL * byte;
  size_t i = from;
  for (; i + 8 <= to; i += 8) {
    uint64_t w;
    std::memcpy(&w, b + i, 8);
    if (w != all) break;
  }
  for (; i < to; ++i)
    if (b[i] != byte) return i;
  return to;
}

}  // namespace harness

#endif  // MESH_HARNESS_PATTERN_H
