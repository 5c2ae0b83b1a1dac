#include "meshing/mesh_candidates.h"

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

}  // namespace mesh
