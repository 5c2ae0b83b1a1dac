// The two pure parts of meshing, tested on their own: the search for pairs of spans whose live
// objects sit at different offsets (meshing/mesh_candidates.h), and the bounded count of the
// process's mappings that the mapping budget relies on (os::MapsCounter).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "meshing/mesh_candidates.h"
#include "platform/os.h"

namespace mesh {
namespace {

// --- candidate search ------------------------------------------------------------------------

size_t pairsOf(const std::vector<SpanBits>& bits, uint32_t probes, std::vector<MeshPair>* out,
               uint64_t seed = 1) {
  uint32_t n = static_cast<uint32_t>(bits.size());
  std::vector<uint32_t> order(n);
  std::unique_ptr<bool[]> used(new bool[n]);
  out->resize(n / 2 + 1);
  Rng rng(seed);
  size_t k = findMeshPairs(bits.data(), n, rng, probes, order.data(), used.get(), out->data(), out->size());
  out->resize(k);
  return k;
}

// Spans already in the memory file (the first `cheap` candidates) are destinations that cost
// two remaps fewer: the search pairs each of them first.
TEST(MeshCandidates, CheapDestinationsArePairedFirst) {
  std::vector<SpanBits> bits(100);  // all empty: any two mesh
  uint32_t n = 100, cheap = 10;
  std::vector<uint32_t> order(n);
  std::unique_ptr<bool[]> used(new bool[n]);
  std::vector<MeshPair> out(n / 2);
  Rng rng(3);
  size_t k = findMeshPairs(bits.data(), n, rng, 8, order.data(), used.get(), out.data(), 20, cheap);
  ASSERT_EQ(k, 20u);
  for (size_t i = 0; i < cheap; ++i) {
    EXPECT_TRUE(out[i].a < cheap || out[i].b < cheap) << "pair " << i << " has no cheap span";
  }
  std::vector<MeshPair> plain(n / 2);
  Rng rng2(3);
  size_t withCheap = 0;
  k = findMeshPairs(bits.data(), n, rng2, 8, order.data(), used.get(), plain.data(), 20);
  for (size_t i = 0; i < k; ++i) withCheap += plain[i].a < cheap || plain[i].b < cheap;
  EXPECT_LT(withCheap, cheap) << "without the hint, cheap spans are not favoured";
}

TEST(MeshCandidates, PairsAreDisjointAndUseEachSpanOnce) {
  Rng rng(7);
  std::vector<SpanBits> bits(500);
  for (auto& b : bits) {
    for (auto& w : b.w) w = rng.next() & rng.next() & rng.next();  // ~1/8 occupancy
  }
  std::vector<MeshPair> pairs;
  size_t k = pairsOf(bits, 64, &pairs);
  EXPECT_GT(k, 100u);
  std::set<uint32_t> seen;
  for (const MeshPair& p : pairs) {
    EXPECT_TRUE(bitsDisjoint(bits[p.a], bits[p.b]));
    EXPECT_TRUE(seen.insert(p.a).second);
    EXPECT_TRUE(seen.insert(p.b).second);
  }
}

TEST(MeshCandidates, FullSpansNeverPair) {
  std::vector<SpanBits> bits(10);
  for (auto& b : bits) std::memset(b.w, 0xff, sizeof b.w);
  std::vector<MeshPair> pairs;
  EXPECT_EQ(pairsOf(bits, 64, &pairs), 0u);
}

TEST(MeshCandidates, ComplementaryHalvesMeshCompletelyWithEnoughProbes) {
  std::vector<SpanBits> bits(64);
  for (size_t i = 0; i < bits.size(); ++i) {
    uint64_t w = (i % 2 == 0) ? 0x5555555555555555ull : 0xaaaaaaaaaaaaaaaaull;
    for (auto& x : bits[i].w) x = w;
  }
  std::vector<MeshPair> pairs;
  EXPECT_EQ(pairsOf(bits, 64, &pairs), 32u);
}

TEST(MeshCandidates, TooFewSpans) {
  std::vector<SpanBits> one(1);
  std::vector<MeshPair> pairs;
  EXPECT_EQ(pairsOf(one, 64, &pairs), 0u);
}

// --- fullest first (the search mesh steps use) ---------------------------------------------

size_t fullestFirst(const std::vector<SpanBits>& bits, uint32_t slots, std::vector<MeshPair>* out,
                    size_t maxPairs = ~size_t{0}, uint64_t maxWork = ~uint64_t{0},
                    const std::vector<uint8_t>& chain = {}, uint32_t maxChain = 7) {
  uint32_t n = static_cast<uint32_t>(bits.size());
  std::vector<uint32_t> order(n);
  std::vector<uint64_t> columns(fullestFirstScratchWords(n, slots) + 1);
  out->resize(n / 2 + 1);
  size_t k = findMeshPairsFullestFirst(bits.data(), chain.empty() ? nullptr : chain.data(), n, slots, maxChain,
                                       order.data(), columns.data(), out->data(), std::min(maxPairs, out->size()),
                                       maxWork);
  out->resize(k);
  return k;
}

SpanBits spanOf(std::initializer_list<int> slots) {
  SpanBits b{};
  for (int s : slots) b.w[s / 64] |= uint64_t{1} << (s % 64);
  return b;
}

int liveOf(const SpanBits& b) {
  return __builtin_popcountll(b.w[0]) + __builtin_popcountll(b.w[1]) + __builtin_popcountll(b.w[2]) +
         __builtin_popcountll(b.w[3]);
}

// The fullest span takes the fullest span that fits it, then the next fullest unpaired span does
// the same: 12 live + 4 live, then 8 + 4; the span of 2 that also fit the first is left.
TEST(MeshCandidatesFullestFirst, TheFullestSpanTakesTheFullestThatFits) {
  std::vector<SpanBits> bits = {
      spanOf({12, 13}),                                   // 0: 2 live, fits 1 and 2
      spanOf({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}),     // 1: 12 live
      spanOf({8, 9, 10, 11}),                             // 2: 4 live, fits 3
      spanOf({0, 1, 2, 3, 4, 5, 6, 7}),                   // 3: 8 live
      spanOf({12, 13, 14, 15}),                           // 4: 4 live, fits 1 and 3
  };
  std::vector<MeshPair> pairs;
  ASSERT_EQ(fullestFirst(bits, 16, &pairs), 2u);
  EXPECT_EQ(pairs[0].a, 1u);
  EXPECT_EQ(pairs[0].b, 4u) << "12 live must take the 4 at 12-15, the fullest that fits";
  EXPECT_EQ(pairs[1].a, 3u);
  EXPECT_EQ(pairs[1].b, 2u) << "8 live then takes the 4 at 8-11 (the 2 at 12-13 fits too)";
}

// Exact: when the search ends (unbounded), no two unpaired spans fit each other, and every pair
// fits and uses each span once. Random spans of 16 to 256 slots at several occupancies.
TEST(MeshCandidatesFullestFirst, NoTwoSpansLeftUnpairedFitEachOther) {
  Rng rng(11);
  for (uint32_t slots : {16u, 25u, 64u, 256u}) {
    for (int density : {2, 3, 4}) {  // about 1/4, 1/8, 1/16 of the slots live
      std::vector<SpanBits> bits(700);
      for (auto& b : bits) {
        for (uint32_t s = 0; s < slots; ++s) {
          uint64_t r = rng.next();
          bool live = density == 2 ? (r & 3) == 0 : density == 3 ? (r & 7) == 0 : (r & 15) == 0;
          if (live) b.w[s / 64] |= uint64_t{1} << (s % 64);
        }
      }
      std::vector<MeshPair> pairs;
      size_t k = fullestFirst(bits, slots, &pairs);
      // (At 256 slots and a quarter live, two spans almost never fit: none may be found.)
      if (slots < 256 || density > 2) {
        EXPECT_GT(k, 0u) << slots << " slots";
      }
      std::vector<bool> paired(bits.size());
      for (const MeshPair& p : pairs) {
        EXPECT_TRUE(bitsDisjoint(bits[p.a], bits[p.b]));
        EXPECT_FALSE(paired[p.a] || paired[p.b]) << "a span in two pairs";
        paired[p.a] = paired[p.b] = true;
      }
      for (size_t i = 0; i < bits.size(); ++i) {
        for (size_t j = i + 1; j < bits.size() && !paired[i]; ++j) {
          ASSERT_FALSE(!paired[j] && bitsDisjoint(bits[i], bits[j]))
              << "spans " << i << " and " << j << " fit but were left (slots " << slots << ")";
        }
      }
    }
  }
}

// What the order buys, on what Redis leaves behind: spans of 16 slots with a quarter of the
// objects left at random. Steps of at most 16 meshes each (as the pacing makes), the pairs merged
// between steps, until a step finds none: fullest first ends with the spans at least 80% full,
// the split mesher (64 probes) below 70% (measured: 91% and 64%).
double occupancyAfterMeshing(bool fullestFirstSearch) {
  Rng rng(5);
  const uint32_t slots = 16;
  std::vector<SpanBits> bits(1500);
  int live = 0;
  for (auto& b : bits) {
    for (uint32_t s = 0; s < slots; ++s) {
      if ((rng.next() & 3) == 0) b.w[0] |= uint64_t{1} << s;
    }
    live += liveOf(b);
  }
  Rng search(9);
  for (;;) {
    std::vector<MeshPair> pairs;
    size_t k = fullestFirstSearch ? fullestFirst(bits, slots, &pairs, 16) : pairsOf(bits, 64, &pairs, search.next());
    if (k == 0) break;
    if (k > 16) pairs.resize(16);
    std::vector<bool> gone(bits.size());
    for (const MeshPair& p : pairs) {
      for (int w = 0; w < 4; ++w) bits[p.a].w[w] |= bits[p.b].w[w];
      gone[p.b] = true;
    }
    std::vector<SpanBits> left;
    for (size_t i = 0; i < bits.size(); ++i) {
      if (!gone[i]) left.push_back(bits[i]);
    }
    bits.swap(left);
  }
  return static_cast<double>(live) / (static_cast<double>(bits.size()) * slots);
}

TEST(MeshCandidatesFullestFirst, FillsSpansFurtherThanTheSplitMesher) {
  double fullest = occupancyAfterMeshing(true), split = occupancyAfterMeshing(false);
  EXPECT_GE(fullest, 0.80);
  EXPECT_LT(split, 0.70);
}

// Chains: a span that backs 5 virtual spans cannot take one that backs 3 (at most 7), but can
// take one that backs 2; one that already backs 7 takes none.
TEST(MeshCandidatesFullestFirst, OnlySpansWhoseChainsFitTogetherArePaired) {
  std::vector<SpanBits> bits = {spanOf({0, 1, 2, 3, 4, 5}), spanOf({8, 9}), spanOf({10}), spanOf({0, 1, 2, 3, 4, 5, 6}),
                                spanOf({12})};
  std::vector<uint8_t> chain = {5, 3, 2, 7, 1};
  std::vector<MeshPair> pairs;
  ASSERT_EQ(fullestFirst(bits, 16, &pairs, ~size_t{0}, ~uint64_t{0}, chain, 7), 2u);
  // Span 3 (7 live, chain 7) fits 1, 2 and 4 by its bits, but no chain fits beside it.
  EXPECT_EQ(pairs[0].a, 0u);
  EXPECT_EQ(pairs[0].b, 2u) << "chain 5 must skip the fuller span of chain 3";
  EXPECT_EQ(pairs[1].a, 1u);
  EXPECT_EQ(pairs[1].b, 4u);
  for (const MeshPair& p : pairs) EXPECT_LE(chain[p.a] + chain[p.b], 7);
  // Without the chains, the fullest takes the fullest that fits.
  ASSERT_EQ(fullestFirst(bits, 16, &pairs), 2u);
  EXPECT_EQ(pairs[0].a, 3u);
  EXPECT_EQ(pairs[0].b, 1u);
}

// Equally full spans keep their order (the mesher puts spans already in the memory file first).
TEST(MeshCandidatesFullestFirst, EquallyFullSpansKeepTheirOrder) {
  std::vector<SpanBits> bits(10);  // all empty: any two fit
  std::vector<MeshPair> pairs;
  ASSERT_EQ(fullestFirst(bits, 32, &pairs), 5u);
  for (uint32_t i = 0; i < 5; ++i) {
    EXPECT_EQ(pairs[i].a, 2 * i);
    EXPECT_EQ(pairs[i].b, 2 * i + 1);
  }
}

TEST(MeshCandidatesFullestFirst, StopsAtItsBounds) {
  std::vector<SpanBits> bits(200);  // all empty
  std::vector<MeshPair> pairs;
  EXPECT_EQ(fullestFirst(bits, 256, &pairs, 7), 7u);
  EXPECT_EQ(fullestFirst(bits, 256, &pairs, ~size_t{0}, 1), 0u) << "setting up alone exceeds the bound";
  EXPECT_EQ(fullestFirst(bits, 256, &pairs), 100u);
  std::vector<SpanBits> one(1);
  EXPECT_EQ(fullestFirst(one, 16, &pairs), 0u);
  std::vector<SpanBits> full(10);
  for (auto& b : full) std::memset(b.w, 0xff, sizeof b.w);
  EXPECT_EQ(fullestFirst(full, 256, &pairs), 0u);
}

// --- the mapping count ----------------------------------------------------------------------

TEST(MapsCounter, CountsInBoundedSteps) {
  os::MapsCounter counter;
  long lines = -1;
  int calls = 1;
  // 256 bytes a call: several calls for any real process (a maps line is ~50-100 bytes).
  while (!counter.step(256, &lines)) ++calls;
  EXPECT_FALSE(counter.inProgress());
  long direct = os::mappingCount();
  EXPECT_GT(calls, 1);
  EXPECT_GT(lines, 5);
  EXPECT_NEAR(static_cast<double>(lines), static_cast<double>(direct), 3.0);
  // A count dropped halfway (as a fork child does) starts over.
  EXPECT_FALSE(counter.step(256, &lines));
  EXPECT_TRUE(counter.inProgress());
  counter.reset();
  EXPECT_FALSE(counter.inProgress());
  while (!counter.step(1 << 20, &lines)) {
  }
  EXPECT_NEAR(static_cast<double>(lines), static_cast<double>(direct), 3.0);
}

TEST(MapsCounter, NeverReadsOrClosesADescriptorTheApplicationReused) {
  os::MapsCounter counter;
  long lines = -1;
  ASSERT_FALSE(counter.step(256, &lines));
  int fd = counter.fdForTest();
  ASSERT_GE(fd, 0);
  // The application closes "all" descriptors and a pipe of its own takes the number.
  ASSERT_EQ(close(fd), 0);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_EQ(dup2(p[0], fd), fd);
  ASSERT_EQ(write(p[1], "app", 3), 3);
  while (!counter.step(1 << 20, &lines)) {
  }
  EXPECT_GT(lines, 5);
  EXPECT_NEAR(static_cast<double>(lines), static_cast<double>(os::mappingCount()), 3.0);
  // The application's pipe is still open under that number, with its data unread.
  char buf[4] = {};
  ASSERT_EQ(read(fd, buf, 3), 3) << "the counter read or closed the application's descriptor";
  EXPECT_STREQ(buf, "app");
  // A reset with the number reused leaves it alone too.
  ASSERT_FALSE(counter.step(256, &lines));
  int mine = counter.fdForTest();
  ASSERT_EQ(dup2(p[1], mine), mine);
  counter.reset();
  EXPECT_EQ(fcntl(mine, F_GETFD), 0) << "reset closed a descriptor that was not its own";
  close(mine);
  close(fd);
  close(p[0]);
  close(p[1]);
}

}  // namespace
}  // namespace mesh
