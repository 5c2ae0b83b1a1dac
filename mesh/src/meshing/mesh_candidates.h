// Candidate search for meshing, as a pure function over span bitmaps (no heap state), so it can
// be tested on its own.
//
// "Split mesher": shuffle the spans, split them into two halves, and for each span of the first
// half probe up to `probes` spans of the second half (starting at its own index, wrapping), taking
// the first one whose live bitmap does not intersect its own and that is not paired yet. With
// random object placement this finds a constant fraction of the best possible matching while
// doing at most n/2 * probes bitmap tests (four 64-bit ANDs each).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/rng.h"

namespace mesh {

struct SpanBits {
  uint64_t w[4];
};

inline bool bitsDisjoint(const SpanBits& a, const SpanBits& b) {
  return ((a.w[0] & b.w[0]) | (a.w[1] & b.w[1]) | (a.w[2] & b.w[2]) | (a.w[3] & b.w[3])) == 0;
}

struct MeshPair {
  uint32_t a;
  uint32_t b;
};

// bits[0..n) are the candidates; order[] and used[] are scratch arrays of n entries. Writes at
// most maxPairs pairs of indices into bits to out and returns how many. Every index appears in at
// most one pair and every pair's bitmaps are disjoint. The first `cheap` candidates are cheap
// destinations (already in the memory file): they are shuffled among themselves and searched
// first, each against the others, so a pair takes one of them where it can.
size_t findMeshPairs(const SpanBits* bits, uint32_t n, Rng& rng, uint32_t probes, uint32_t* order,
                     bool* used, MeshPair* out, size_t maxPairs, uint32_t cheap = 0);

}  // namespace mesh
