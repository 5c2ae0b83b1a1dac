// The two pure parts of meshing, tested on their own: the search for pairs of spans whose live
// objects sit at different offsets (meshing/mesh_candidates.h), and the bounded count of the
// process's mappings that the mapping budget relies on (os::MapsCounter).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

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
