// espresso-like: two-level logic minimisation of boolean functions (the pattern of espresso).
//
// Pattern: one thread, objects of mixed lifetimes and sizes. Cubes (16 bytes) are created level
// by level and most die one level later; the cubes that cannot be merged (prime implicants) live
// until the end of their problem; the results of the last --keep problems stay alive while the
// next ones run, so old long-lived objects sit among new short-lived ones. Alongside the cubes:
// hash-set nodes (16 bytes) and bucket arrays (calloc), per-prime lists of the minterms it
// covers (4 bytes to 16 KiB), per-minterm lists of the primes covering it grown with realloc,
// and cover arrays grown with realloc.
//
// Work: --problems functions of 11-16 inputs, each the union of a few random cubes plus scattered
// minterms. For each: the prime implicants by Quine-McCluskey merging (cubes that differ in one
// specified input merge into one with that input free), then a cover chosen greedily (the prime
// covering most still uncovered minterms first). Checked: every prime covers only minterms of the
// function, the cover covers all of them; otherwise exit 1.
//
// Output (stdout, key=value): seconds, checksum (primes and cover sizes), problems, primes,
// cover_cubes, then the process's counters (classic_common.h).
#include "classic_common.h"

namespace {

constexpr const char* kProgram = "espresso-like";

struct Config {
  uint64_t problems = 400;
  uint64_t keep = 4;
  uint64_t seed = 42;
  bool quick = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Minimises random boolean functions (Quine-McCluskey primes, greedy cover): "
                   "objects of mixed lifetimes and sizes (espresso's pattern).");
  o.number("problems", "functions to minimise", c.problems, 1, 1 << 20);
  o.number("keep", "results of the last N problems kept alive", c.keep, 0, 1024);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.flag("quick", "a short run (4 problems)", c.quick);
  o.parse(argc, argv);
  if (c.quick) c.problems = 4;
  return c;
}

struct Cube {
  uint32_t care;   // bit v set: input v is specified
  uint32_t value;  // its value where specified (0 elsewhere)
  uint32_t merged;
  uint32_t id;
};

Cube* new_cube(uint32_t care, uint32_t value) {
  Cube* c = static_cast<Cube*>(classic::xmalloc(kProgram, sizeof(Cube)));
  *c = Cube{care, value, 0, 0};
  return c;
}

// A growable array of pointers, grown with realloc like a C program's cover.
struct CubeList {
  Cube** at = nullptr;
  size_t size = 0, cap = 0;
  void push(Cube* c) {
    if (size == cap) {
      cap = cap ? cap * 2 : 8;
      at = static_cast<Cube**>(classic::xrealloc(kProgram, at, cap * sizeof(Cube*)));
    }
    at[size++] = c;
  }
  void release_all() {
    for (size_t i = 0; i < size; ++i) std::free(at[i]);
    std::free(at);
    *this = CubeList{};
  }
};

// A set of cubes: chained hashing with a malloc'd node per entry.
struct CubeSet {
  struct Node {
    Node* next;
    Cube* cube;
  };
  Node** buckets;
  size_t mask;

  explicit CubeSet(size_t expected) {
    size_t n = 16;
    while (n < expected) n *= 2;
    buckets = static_cast<Node**>(std::calloc(n, sizeof(Node*)));
    if (buckets == nullptr) perfw::die(kProgram, "calloc returned NULL");
    mask = n - 1;
  }
  static size_t hash(uint32_t care, uint32_t value) {
    uint64_t h = (uint64_t{care} << 32 | value) * 0x9e3779b97f4a7c15ULL;
    return static_cast<size_t>(h >> 29);
  }
  Cube* find(uint32_t care, uint32_t value) const {
    for (Node* e = buckets[hash(care, value) & mask]; e; e = e->next)
      if (e->cube->care == care && e->cube->value == value) return e->cube;
    return nullptr;
  }
  void insert(Cube* c) {
    Node* e = static_cast<Node*>(classic::xmalloc(kProgram, sizeof(Node)));
    Node*& head = buckets[hash(c->care, c->value) & mask];
    *e = Node{head, c};
    head = e;
  }
  void release_nodes() {
    for (size_t b = 0; b <= mask; ++b)
      for (Node* e = buckets[b]; e;) {
        Node* next = e->next;
        std::free(e);
        e = next;
      }
    std::free(buckets);
  }
};

struct Result {
  CubeList primes;
  CubeList cover;
};

struct Function {
  unsigned inputs;
  std::vector<uint8_t> on;  // on[m]: minterm m is in the function
};

Function random_function(perfw::Rng& rng) {
  Function f;
  f.inputs = 11 + static_cast<unsigned>(rng.below(6));
  const uint32_t all = (1u << f.inputs) - 1;
  f.on.assign(size_t{1} << f.inputs, 0);
  uint64_t cubes = 4 + rng.below(12);
  for (uint64_t k = 0; k < cubes; ++k) {
    uint32_t free_bits = 0;
    unsigned nfree = 2 + static_cast<unsigned>(rng.below(f.inputs / 2));
    for (unsigned i = 0; i < nfree; ++i) free_bits |= 1u << rng.below(f.inputs);
    uint32_t value = static_cast<uint32_t>(rng.next()) & all & ~free_bits;
    for (uint32_t sub = free_bits;; sub = (sub - 1) & free_bits) {  // every minterm of the cube
      f.on[value | sub] = 1;
      if (sub == 0) break;
    }
  }
  for (uint32_t m = 0; m <= all; ++m)
    if (rng.below(100) < 3) f.on[m] = 1;
  return f;
}

// Quine-McCluskey: returns the prime implicants.
CubeList primes_of(const Function& f) {
  const uint32_t all = (1u << f.inputs) - 1;
  CubeList level;
  for (uint32_t m = 0; m <= all; ++m)
    if (f.on[m]) level.push(new_cube(all, m));
  CubeList primes;
  while (level.size > 0) {
    CubeSet here(level.size);
    for (size_t i = 0; i < level.size; ++i) here.insert(level.at[i]);
    CubeSet next(level.size);
    CubeList next_level;
    for (size_t i = 0; i < level.size; ++i) {
      Cube* c = level.at[i];
      for (uint32_t bits = c->care; bits; bits &= bits - 1) {
        uint32_t bit = bits & -bits;
        Cube* partner = here.find(c->care, c->value ^ bit);
        if (partner == nullptr) continue;
        c->merged = partner->merged = 1;
        uint32_t care = c->care & ~bit, value = c->value & ~bit;
        if (next.find(care, value) == nullptr) {
          Cube* m = new_cube(care, value);
          next.insert(m);
          next_level.push(m);
        }
      }
    }
    for (size_t i = 0; i < level.size; ++i) {
      if (level.at[i]->merged) {
        std::free(level.at[i]);
      } else {
        level.at[i]->id = static_cast<uint32_t>(primes.size);
        primes.push(level.at[i]);
      }
    }
    std::free(level.at);
    here.release_nodes();
    next.release_nodes();
    level = next_level;
  }
  std::free(level.at);
  return primes;
}

// Minterms of a cube, in a malloc'd array of 2^free entries.
uint32_t* minterms_of(const Cube* c, unsigned inputs, uint32_t& count) {
  const uint32_t free_bits = ~c->care & ((1u << inputs) - 1);
  count = 1u << __builtin_popcount(free_bits);
  uint32_t* out = static_cast<uint32_t*>(classic::xmalloc(kProgram, count * sizeof(uint32_t)));
  uint32_t k = 0;
  for (uint32_t sub = free_bits;; sub = (sub - 1) & free_bits) {
    out[k++] = c->value | sub;
    if (sub == 0) break;
  }
  return out;
}

// Greedy cover; checks the primes on the way.
CubeList cover_of(const Function& f, const CubeList& primes) {
  const size_t nm = f.on.size();
  std::vector<uint32_t*> covers(primes.size);
  std::vector<uint32_t> cover_count(primes.size), uncovered(primes.size);
  // For every minterm, the primes covering it (grown with realloc).
  std::vector<uint32_t*> by_minterm(nm, nullptr);
  std::vector<uint32_t> by_count(nm, 0);
  for (size_t p = 0; p < primes.size; ++p) {
    covers[p] = minterms_of(primes.at[p], f.inputs, cover_count[p]);
    uncovered[p] = cover_count[p];
    for (uint32_t i = 0; i < cover_count[p]; ++i) {
      uint32_t m = covers[p][i];
      if (!f.on[m]) perfw::die(kProgram, "a prime implicant covers a minterm outside the function");
      uint32_t n = by_count[m]++;
      if ((n & (n - 1)) == 0)  // 0, 1, 2, 4, ...: grow to the next power of two
        by_minterm[m] = static_cast<uint32_t*>(
            classic::xrealloc(kProgram, by_minterm[m], (n ? 2 * n : 1) * sizeof(uint32_t)));
      by_minterm[m][n] = static_cast<uint32_t>(p);
    }
  }
  std::vector<uint8_t> done(nm, 0);
  size_t left = 0;
  for (size_t m = 0; m < nm; ++m) left += f.on[m];
  CubeList cover;
  while (left > 0) {
    size_t best = 0;
    for (size_t p = 1; p < primes.size; ++p)
      if (uncovered[p] > uncovered[best]) best = p;
    if (uncovered[best] == 0) perfw::die(kProgram, "the primes do not cover the function");
    const Cube* b = primes.at[best];
    cover.push(new_cube(b->care, b->value));
    for (uint32_t i = 0; i < cover_count[best]; ++i) {
      uint32_t m = covers[best][i];
      if (done[m]) continue;
      done[m] = 1;
      --left;
      for (uint32_t k = 0; k < by_count[m]; ++k) --uncovered[by_minterm[m][k]];
    }
  }
  for (uint32_t* c : covers) std::free(c);
  for (uint32_t* l : by_minterm) std::free(l);
  // The check: every minterm of the function is in some cube of the cover, and no cube of the
  // cover holds a minterm outside it.
  std::vector<uint8_t> seen(nm, 0);
  for (size_t i = 0; i < cover.size; ++i) {
    uint32_t count;
    uint32_t* ms = minterms_of(cover.at[i], f.inputs, count);
    for (uint32_t k = 0; k < count; ++k) {
      if (!f.on[ms[k]]) perfw::die(kProgram, "the cover holds a minterm outside the function");
      seen[ms[k]] = 1;
    }
    std::free(ms);
  }
  for (size_t m = 0; m < nm; ++m)
    if (f.on[m] && !seen[m]) perfw::die(kProgram, "the cover misses a minterm");
  return cover;
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);
  perfw::Rng rng(c.seed);
  classic::Report rep;
  uint64_t total_primes = 0, total_cover = 0;
  std::vector<Result> kept;

  double t0 = perfw::now_seconds();
  for (uint64_t k = 0; k < c.problems; ++k) {
    Function f = random_function(rng);
    Result r;
    r.primes = primes_of(f);
    r.cover = cover_of(f, r.primes);
    total_primes += r.primes.size;
    total_cover += r.cover.size;
    rep.checksum = rep.checksum * 31 + r.primes.size * 1000 + r.cover.size;
    kept.push_back(r);
    if (kept.size() > c.keep) {
      kept.front().primes.release_all();
      kept.front().cover.release_all();
      kept.erase(kept.begin());
    }
  }
  for (Result& r : kept) {
    r.primes.release_all();
    r.cover.release_all();
  }
  rep.seconds = perfw::now_seconds() - t0;

  classic::print_report(origin, rep);
  std::printf("problems=%" PRIu64 "\nprimes=%" PRIu64 "\ncover_cubes=%" PRIu64 "\n", c.problems,
              total_primes, total_cover);
  return 0;
}
