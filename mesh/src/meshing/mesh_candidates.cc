#include "meshing/mesh_candidates.h"

#include <cstring>

#include "platform/cpu.h"

namespace mesh {

size_t findMeshPairs(const SpanBits* bits, uint32_t n, Rng& rng, uint32_t probes, uint32_t* order,
                     bool* used, MeshPair* out, size_t maxPairs, uint32_t cheap) {
  if (n < 2 || maxPairs == 0) return 0;
  for (uint32_t i = 0; i < n; ++i) {
    order[i] = i;
    used[i] = false;
  }
  if (cheap > n) cheap = n;
  // Fisher-Yates within each group: the cheap destinations, then the rest.
  auto shuffle = [&](uint32_t first, uint32_t count) {
    for (uint32_t i = count; i-- > 1;) {
      uint32_t j = rng.below(i + 1);
      uint32_t t = order[first + i];
      order[first + i] = order[first + j];
      order[first + j] = t;
    }
  };
  shuffle(0, cheap);
  shuffle(cheap, n - cheap);
  uint32_t half = n / 2;
  const uint32_t* left = order;
  const uint32_t* right = order + half;
  uint32_t rightCount = n - half;
  uint32_t limit = probes < rightCount ? probes : rightCount;
  size_t pairs = 0;
  for (uint32_t i = 0; i < half && pairs < maxPairs; ++i) {
    for (uint32_t k = 0; k < limit; ++k) {
      uint32_t j = right[(i + k) % rightCount];
      if (used[j] || !bitsDisjoint(bits[left[i]], bits[j])) continue;
      used[j] = used[left[i]] = true;
      out[pairs++] = MeshPair{left[i], j};
      break;
    }
  }
  return pairs;
}

size_t fullestFirstScratchWords(uint32_t n, uint32_t slots) {
  return (static_cast<size_t>(n) + 63) / 64 * (slots + kMaxSearchChain + 2);
}

size_t findMeshPairsFullestFirst(const SpanBits* bits, const uint8_t* chain, uint32_t n, uint32_t slots,
                                 uint32_t maxChain, uint32_t* order, uint64_t* columns, MeshPair* out,
                                 size_t maxPairs, uint64_t maxWork) {
  if (n < 2 || maxPairs == 0 || slots == 0 || slots > 256 || maxChain < 2 || maxChain > kMaxSearchChain) return 0;
  const size_t words = (static_cast<size_t>(n) + 63) / 64;
  // Counting sort by live objects, fullest first, stable.
  uint32_t start[258] = {};
  auto liveOf = [&](uint32_t i) { return cpu::countBits4(bits[i].w); };
  for (uint32_t i = 0; i < n; ++i) ++start[257 - liveOf(i)];
  for (uint32_t c = 1; c < 258; ++c) start[c] += start[c - 1];
  for (uint32_t i = 0; i < n; ++i) order[start[256 - liveOf(i)]++] = i;
  // columns[w * slots + s]: bit k set when the candidate at position 64 * w + k has slot s live.
  // shorter[c * words + w]: the candidates at those positions whose chains are at most c long.
  // avail[w]: the candidates not paired or passed over yet.
  uint64_t* shorter = columns + words * slots;
  uint64_t* avail = shorter + words * (kMaxSearchChain + 1);
  std::memset(columns, 0, words * (slots + kMaxSearchChain + 1) * sizeof(uint64_t));
  uint64_t work = words * (slots + kMaxSearchChain) / 8;
  for (uint32_t p = 0; p < n; ++p) {
    const SpanBits& b = bits[order[p]];
    uint64_t* col = columns + (p / 64) * slots;
    uint64_t bit = uint64_t{1} << (p % 64);
    for (int w = 0; w < 4; ++w) {
      for (uint64_t x = b.w[w]; x != 0; x &= x - 1, ++work) col[w * 64 + __builtin_ctzll(x)] |= bit;
    }
    uint32_t length = chain != nullptr && chain[order[p]] > 1 ? chain[order[p]] : 1;
    for (uint32_t c = length; c <= kMaxSearchChain; ++c) shorter[c * words + p / 64] |= bit;
  }
  for (size_t w = 0; w < words; ++w) avail[w] = ~uint64_t{0};
  if (n % 64 != 0) avail[words - 1] = (uint64_t{1} << (n % 64)) - 1;
  uint16_t live[256];
  size_t pairs = 0;
  for (uint32_t p = 0; p < n && pairs < maxPairs && work < maxWork; ++p) {
    uint64_t self = uint64_t{1} << (p % 64);
    if ((avail[p / 64] & self) == 0) continue;
    // Unpaired from here on either way: if nothing fits it now, nothing that stays will.
    avail[p / 64] &= ~self;
    uint32_t length = chain != nullptr && chain[order[p]] > 1 ? chain[order[p]] : 1;
    if (length >= maxChain) continue;
    const uint64_t* room = shorter + (maxChain - length) * words;
    uint32_t count = 0;
    const SpanBits& b = bits[order[p]];
    for (int w = 0; w < 4; ++w) {
      for (uint64_t x = b.w[w]; x != 0; x &= x - 1) live[count++] = static_cast<uint16_t>(w * 64 + __builtin_ctzll(x));
    }
    // Earlier words hold fuller candidates: the first fit found is the fullest.
    for (size_t w = p / 64; w < words; ++w) {
      uint64_t fit = avail[w] & room[w];
      const uint64_t* col = columns + w * slots;
      for (uint32_t k = 0; k < count && fit != 0; ++k) fit &= ~col[live[k]];
      work += count + 1;
      if (fit == 0) continue;
      uint32_t q = static_cast<uint32_t>(w * 64 + __builtin_ctzll(fit));
      avail[w] &= ~(uint64_t{1} << (q % 64));
      out[pairs++] = MeshPair{order[p], order[q]};
      break;
    }
  }
  return pairs;
}

}  // namespace mesh
