// Candidate search for meshing, as pure functions over span bitmaps (no heap state), so they can
// be tested on their own. Two searches: the split mesher (size classes of many objects per span,
// and same-thread meshing) and fullest first (the other classes; Mesher::selectPairsLocked).
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

// "Fullest first": the candidates are taken in order of live
// objects, fullest first, and each is paired with the fullest candidate still unpaired whose live
// objects sit at other offsets. Pairing the fullest spans first fills destinations up instead of
// leaving many half-full ones that no longer fit each other (on random spans of 16 slots at 25%
// occupancy, steps of 16 meshes reach about 90% occupancy where the split mesher's stop near
// 64%: MeshCandidatesFullestFirst.FillsSpansFurtherThanTheSplitMesher).
// The search is exact: a candidate goes unpaired only if no unpaired candidate fits it. It keeps
// one bitset over the candidates per slot (which candidates have that slot live): the candidates
// that fit a span are the unpaired ones in none of its live slots' sets, read 64 at a time.
//
// Meshing a span into another joins their chains (the virtual spans each backs), and a chain may
// be at most maxChain long: chain[i] is candidate i's length (at least 1), and only candidates
// whose chains fit together are paired (of very sparse spans, the fullest would otherwise keep
// finding partners it cannot take).
//
// slots: objects per span (at most 256; no bit at or above it may be set); maxChain at most
// kMaxSearchChain. Scratch: order[n];
// columns[fullestFirstScratchWords(n, slots)]. Candidates of equal occupancy keep their order (so
// cheap destinations placed first stay first). maxWork bounds the 64-bit operations of the search
// (setting up the bitsets included); the search stops there with the pairs found so far.
inline constexpr uint32_t kMaxSearchChain = 8;
size_t fullestFirstScratchWords(uint32_t n, uint32_t slots);
size_t findMeshPairsFullestFirst(const SpanBits* bits, const uint8_t* chain, uint32_t n, uint32_t slots,
                                 uint32_t maxChain, uint32_t* order, uint64_t* columns, MeshPair* out,
                                 size_t maxPairs, uint64_t maxWork);

}  // namespace mesh
