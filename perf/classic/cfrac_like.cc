// cfrac-like: factoring integers with heap-allocated bignums (the pattern of cfrac).
//
// Pattern: one thread, a very large number of short-lived small objects of varied sizes. Every
// arithmetic operation returns a freshly malloc'd number and the caller frees its operands'
// temporaries at once, as a bignum library with value semantics does: a number of k 32-bit limbs
// is one block of 8 + 4k bytes (12 to about 80 bytes here), most of them live for a few hundred
// nanoseconds, a handful (the number being factored, the walk's state) for a whole factorisation.
// The division (Knuth's algorithm D) allocates normalised copies of both operands, so sizes vary
// within one operation too.
//
// Work: --numbers composites N = p * q1 [* q2 [* q3]] with p a prime of 22-26 bits and the qi
// primes of 30-62 bits, so N has 2-7 limbs. Each is factored with Pollard's rho in Brent's form
// (x -> x^2 + c mod N, differences multiplied together mod N, a gcd every 32 steps). The factor
// found must divide N, checked with a separate shift-and-subtract remainder, and must be one of
// the primes the program built N from (or a product of them); otherwise the program exits 1.
//
// Output (stdout, key=value): seconds, checksum (sum of the factors found), numbers, steps
// (iterations of the walk), bignum_allocs, then the process's counters (classic_common.h).
#include "classic_common.h"

namespace {

constexpr const char* kProgram = "cfrac-like";

struct Config {
  uint64_t numbers = 800;
  uint64_t seed = 42;
  bool quick = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Factors composites with Pollard's rho on malloc'd bignums: many short-lived "
                   "small objects of varied sizes (cfrac's pattern).");
  o.number("numbers", "composites to factor", c.numbers, 1, 1 << 20);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.flag("quick", "a short run (20 numbers)", c.quick);
  o.parse(argc, argv);
  if (c.quick) c.numbers = 20;
  return c;
}

uint64_t g_allocs = 0;

// --- bignums: non-negative, little-endian 32-bit limbs, always trimmed (no leading zero limb) --

struct Big {
  uint32_t n;  // limbs in use
  uint32_t pad;
  uint32_t limb[];
};

Big* big_alloc(uint32_t n) {
  ++g_allocs;
  Big* b = static_cast<Big*>(classic::xmalloc(kProgram, sizeof(Big) + 4 * size_t{n}));
  b->n = n;
  b->pad = 0;
  return b;
}

Big* trim(Big* b) {
  while (b->n > 0 && b->limb[b->n - 1] == 0) --b->n;
  return b;
}

Big* big_from(uint64_t v) {
  Big* b = big_alloc(2);
  b->limb[0] = static_cast<uint32_t>(v);
  b->limb[1] = static_cast<uint32_t>(v >> 32);
  return trim(b);
}

Big* big_copy(const Big* a) {
  Big* b = big_alloc(a->n);
  std::memcpy(b->limb, a->limb, 4 * size_t{a->n});
  return b;
}

int big_cmp(const Big* a, const Big* b) {
  if (a->n != b->n) return a->n < b->n ? -1 : 1;
  for (uint32_t i = a->n; i-- > 0;)
    if (a->limb[i] != b->limb[i]) return a->limb[i] < b->limb[i] ? -1 : 1;
  return 0;
}

bool big_is_one(const Big* a) {
  return a->n == 1 && a->limb[0] == 1;
}

Big* big_add(const Big* a, const Big* b) {
  if (a->n < b->n) std::swap(a, b);
  Big* r = big_alloc(a->n + 1);
  uint64_t carry = 0;
  for (uint32_t i = 0; i < a->n; ++i) {
    uint64_t s = uint64_t{a->limb[i]} + (i < b->n ? b->limb[i] : 0) + carry;
    r->limb[i] = static_cast<uint32_t>(s);
    carry = s >> 32;
  }
  r->limb[a->n] = static_cast<uint32_t>(carry);
  return trim(r);
}

// a - b for a >= b.
Big* big_sub(const Big* a, const Big* b) {
  Big* r = big_alloc(a->n);
  int64_t borrow = 0;
  for (uint32_t i = 0; i < a->n; ++i) {
    int64_t d = int64_t{a->limb[i]} - (i < b->n ? b->limb[i] : 0) - borrow;
    borrow = d < 0;
    r->limb[i] = static_cast<uint32_t>(d + (borrow << 32));
  }
  return trim(r);
}

Big* big_absdiff(const Big* a, const Big* b) {
  return big_cmp(a, b) >= 0 ? big_sub(a, b) : big_sub(b, a);
}

Big* big_mul(const Big* a, const Big* b) {
  Big* r = big_alloc(a->n + b->n);
  std::memset(r->limb, 0, 4 * size_t{r->n});
  for (uint32_t i = 0; i < a->n; ++i) {
    uint64_t carry = 0;
    for (uint32_t j = 0; j < b->n; ++j) {
      uint64_t t = uint64_t{a->limb[i]} * b->limb[j] + r->limb[i + j] + carry;
      r->limb[i + j] = static_cast<uint32_t>(t);
      carry = t >> 32;
    }
    r->limb[i + b->n] = static_cast<uint32_t>(carry);
  }
  return trim(r);
}

// u mod v (v > 0): Knuth's algorithm D on 32-bit limbs. Allocates the normalised copies of u
// and v and the result.
Big* big_mod(const Big* u, const Big* v) {
  if (big_cmp(u, v) < 0) return big_copy(u);
  const uint32_t n = v->n, m = u->n;
  if (n == 1) {
    uint64_t rem = 0;
    for (uint32_t i = m; i-- > 0;) rem = ((rem << 32) | u->limb[i]) % v->limb[0];
    return big_from(rem);
  }
  const int s = __builtin_clz(v->limb[n - 1]);
  Big* vn = big_alloc(n);
  Big* un = big_alloc(m + 1);
  for (uint32_t i = n - 1; i > 0; --i)
    vn->limb[i] = (v->limb[i] << s) | (s ? v->limb[i - 1] >> (32 - s) : 0);
  vn->limb[0] = v->limb[0] << s;
  un->limb[m] = s ? u->limb[m - 1] >> (32 - s) : 0;
  for (uint32_t i = m - 1; i > 0; --i)
    un->limb[i] = (u->limb[i] << s) | (s ? u->limb[i - 1] >> (32 - s) : 0);
  un->limb[0] = u->limb[0] << s;

  const uint64_t base = uint64_t{1} << 32;
  uint32_t* w = un->limb;
  const uint32_t* d = vn->limb;
  for (int64_t j = int64_t{m} - n; j >= 0; --j) {
    uint64_t top = (uint64_t{w[j + n]} << 32) | w[j + n - 1];
    uint64_t qhat = top / d[n - 1];
    uint64_t rhat = top % d[n - 1];
    while (qhat >= base || qhat * d[n - 2] > ((rhat << 32) | w[j + n - 2])) {
      --qhat;
      rhat += d[n - 1];
      if (rhat >= base) break;
    }
    int64_t borrow = 0;
    for (uint32_t i = 0; i < n; ++i) {
      uint64_t p = qhat * d[i];
      int64_t t = int64_t{w[i + j]} - borrow - static_cast<int64_t>(p & 0xffffffffu);
      w[i + j] = static_cast<uint32_t>(t);
      borrow = static_cast<int64_t>(p >> 32) - (t >> 32);
    }
    int64_t t = int64_t{w[j + n]} - borrow;
    w[j + n] = static_cast<uint32_t>(t);
    if (t < 0) {  // qhat was one too large: add the divisor back
      uint64_t carry = 0;
      for (uint32_t i = 0; i < n; ++i) {
        uint64_t sum = uint64_t{w[i + j]} + d[i] + carry;
        w[i + j] = static_cast<uint32_t>(sum);
        carry = sum >> 32;
      }
      w[j + n] += static_cast<uint32_t>(carry);
    }
  }
  Big* r = big_alloc(n);
  for (uint32_t i = 0; i < n; ++i)
    r->limb[i] = (w[i] >> s) | (s ? static_cast<uint32_t>(uint64_t{w[i + 1]} << (32 - s)) : 0);
  std::free(un);
  std::free(vn);
  return trim(r);
}

Big* big_gcd(const Big* a, const Big* b) {
  Big* x = big_copy(a);
  Big* y = big_copy(b);
  while (y->n != 0) {
    Big* r = big_mod(x, y);
    std::free(x);
    x = y;
    y = r;
  }
  std::free(y);
  return x;
}

// The check: u mod v by binary long division on bits, sharing no code with big_mod.
bool divides(const Big* v, const Big* u) {
  std::vector<uint32_t> rem(v->n + 1, 0);
  for (uint32_t bit = u->n * 32; bit-- > 0;) {
    uint32_t in = (u->limb[bit / 32] >> (bit % 32)) & 1;
    for (size_t i = rem.size(); i-- > 0;) {  // rem = rem * 2 + in
      uint32_t out = rem[i] >> 31;
      rem[i] <<= 1;
      if (i + 1 < rem.size()) rem[i + 1] |= out;
    }
    rem[0] |= in;
    bool ge = true;  // rem >= v ?
    for (size_t i = rem.size(); i-- > 0;) {
      uint32_t vi = i < v->n ? v->limb[i] : 0;
      if (rem[i] != vi) {
        ge = rem[i] > vi;
        break;
      }
    }
    if (ge) {
      int64_t borrow = 0;
      for (size_t i = 0; i < rem.size(); ++i) {
        int64_t t = int64_t{rem[i]} - (i < v->n ? v->limb[i] : 0) - borrow;
        borrow = t < 0;
        rem[i] = static_cast<uint32_t>(t + (borrow << 32));
      }
    }
  }
  for (uint32_t r : rem)
    if (r != 0) return false;
  return true;
}

// --- primes (64-bit, exact) ---------------------------------------------------------------------

uint64_t mulmod(uint64_t a, uint64_t b, uint64_t m) {
  return static_cast<uint64_t>(static_cast<unsigned __int128>(a) * b % m);
}

uint64_t powmod(uint64_t b, uint64_t e, uint64_t m) {
  uint64_t r = 1;
  for (b %= m; e; e >>= 1, b = mulmod(b, b, m))
    if (e & 1) r = mulmod(r, b, m);
  return r;
}

// Deterministic Miller-Rabin: these bases decide every 64-bit number.
bool is_prime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t p : {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37})
    if (n % p == 0) return n == p;
  uint64_t d = n - 1;
  int r = 0;
  while ((d & 1) == 0) d >>= 1, ++r;
  for (uint64_t a : {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37}) {
    uint64_t x = powmod(a, d, n);
    if (x == 1 || x == n - 1) continue;
    bool composite = true;
    for (int i = 1; i < r && composite; ++i) {
      x = mulmod(x, x, n);
      if (x == n - 1) composite = false;
    }
    if (composite) return false;
  }
  return true;
}

uint64_t random_prime(perfw::Rng& rng, unsigned bits) {
  for (;;) {
    uint64_t v = (rng.next() >> (64 - bits)) | (uint64_t{1} << (bits - 1)) | 1;
    if (is_prime(v)) return v;
  }
}

// --- Pollard's rho, Brent's variant --------------------------------------------------------------

struct Walk {
  const Big* n;
  const Big* c;
  uint64_t steps = 0;

  Big* f(const Big* x) {  // x^2 + c mod n
    ++steps;
    Big* sq = big_mul(x, x);
    Big* s = big_add(sq, c);
    std::free(sq);
    Big* r = big_mod(s, n);
    std::free(s);
    return r;
  }
};

// A non-trivial factor of n, or nullptr when this c failed (the caller tries another).
Big* rho(const Big* n, uint64_t c_value, uint64_t x0, uint64_t& steps) {
  constexpr uint64_t kBlock = 32;
  Big* c = big_from(c_value);
  Walk walk{n, c};
  Big* y = big_from(x0);
  Big* x = nullptr;
  Big* ys = nullptr;
  Big* q = big_from(1);
  Big* g = big_from(1);
  for (uint64_t r = 1; big_is_one(g); r *= 2) {
    std::free(x);
    x = big_copy(y);
    for (uint64_t i = 0; i < r; ++i) {
      Big* t = walk.f(y);
      std::free(y);
      y = t;
    }
    for (uint64_t k = 0; k < r && big_is_one(g); k += kBlock) {
      std::free(ys);
      ys = big_copy(y);
      for (uint64_t i = 0; i < std::min(kBlock, r - k); ++i) {
        Big* t = walk.f(y);
        std::free(y);
        y = t;
        Big* diff = big_absdiff(x, y);
        Big* prod = big_mul(q, diff);
        std::free(diff);
        std::free(q);
        q = big_mod(prod, n);
        std::free(prod);
      }
      std::free(g);
      g = big_gcd(q, n);
    }
    if (r > (uint64_t{1} << 26)) break;  // hopeless; cannot happen with these sizes
  }
  if (big_cmp(g, n) == 0) {  // the block overshot: step again one at a time from ys
    do {
      Big* t = walk.f(ys);
      std::free(ys);
      ys = t;
      Big* diff = big_absdiff(x, ys);
      std::free(g);
      g = big_gcd(diff, n);
      std::free(diff);
    } while (big_is_one(g));
  }
  steps += walk.steps;
  std::free(c);
  std::free(x);
  std::free(y);
  std::free(ys);
  std::free(q);
  if (big_is_one(g) || big_cmp(g, n) == 0) {
    std::free(g);
    return nullptr;
  }
  return g;
}

uint64_t low64(const Big* b) {
  uint64_t v = 0;
  for (uint32_t i = 0; i < b->n && i < 2; ++i) v |= uint64_t{b->limb[i]} << (32 * i);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);
  perfw::Rng rng(c.seed);
  classic::Report rep;
  uint64_t steps = 0;

  double t0 = perfw::now_seconds();
  for (uint64_t k = 0; k < c.numbers; ++k) {
    std::vector<uint64_t> primes{random_prime(rng, 22 + static_cast<unsigned>(rng.below(5)))};
    uint64_t extra = 1 + rng.below(3);
    for (uint64_t i = 0; i < extra; ++i)
      primes.push_back(random_prime(rng, 30 + static_cast<unsigned>(rng.below(33))));
    Big* n = big_from(primes[0]);
    for (size_t i = 1; i < primes.size(); ++i) {
      Big* p = big_from(primes[i]);
      Big* t = big_mul(n, p);
      std::free(p);
      std::free(n);
      n = t;
    }
    Big* factor = nullptr;
    for (uint64_t cv = 1; factor == nullptr; ++cv) {
      if (cv > 50) perfw::die(kProgram, "no factor found (arithmetic is broken)");
      factor = rho(n, cv, 2 + rng.below(1000), steps);
    }
    if (!divides(factor, n)) perfw::die(kProgram, "the factor found does not divide N");
    // It must be a product of some of the primes N was made of.
    bool known = false;
    for (unsigned mask = 1; mask < (1u << primes.size()) && !known; ++mask) {
      Big* prod = big_from(1);
      for (size_t i = 0; i < primes.size(); ++i) {
        if (!(mask & (1u << i))) continue;
        Big* p = big_from(primes[i]);
        Big* t = big_mul(prod, p);
        std::free(p);
        std::free(prod);
        prod = t;
      }
      known = big_cmp(prod, factor) == 0;
      std::free(prod);
    }
    if (!known) perfw::die(kProgram, "the factor found is not made of N's primes");
    rep.checksum += low64(factor);
    std::free(factor);
    std::free(n);
  }
  rep.seconds = perfw::now_seconds() - t0;

  classic::print_report(origin, rep);
  std::printf("numbers=%" PRIu64 "\nsteps=%" PRIu64 "\nbignum_allocs=%" PRIu64 "\n", c.numbers,
              steps, g_allocs);
  return 0;
}
