// barnes-like: a Barnes-Hut n-body simulation that rebuilds its octree every step (the pattern
// of barnes).
//
// Pattern: one thread, few allocations next to much computation, and pointer chasing through
// heap objects. The bodies (96 bytes each) are malloc'd one by one at the start and live for the
// whole run; they are read and written every step. Every step builds a new octree of cells (one
// 144-byte malloc per cell, about as many cells as bodies), walks it once per body to compute the
// forces, and frees it. The time is dominated by the tree walks, so what the allocator decides
// is where cells and bodies land relative to each other: cache and TLB behaviour.
//
// Work: --bodies bodies in a few clusters, --steps leapfrog steps with opening angle 0.5. Checked
// at the end: the tree holds every body and the total mass, and the tree's accelerations of 32
// bodies agree with a direct sum over all bodies (median relative error under 2%); else exit 1.
//
// Output (stdout, key=value): seconds, checksum (of the final positions, the same under every
// allocator), bodies, steps, cells (allocated over the run), force_error_median, then the
// process's counters (classic_common.h).
#include <array>
#include <cmath>

#include "classic_common.h"

namespace {

constexpr const char* kProgram = "barnes-like";
constexpr double kTheta = 0.5;
constexpr double kSoft2 = 1e-4;  // softening length squared
constexpr double kDt = 1e-3;

struct Config {
  uint64_t bodies = 12000;
  uint64_t steps = 24;
  uint64_t seed = 42;
  bool quick = false;
};

Config parse(int argc, char** argv) {
  Config c;
  perfw::Options o(kProgram,
                   "Barnes-Hut n-body steps, a malloc'd octree rebuilt and freed every step "
                   "(barnes' pattern).");
  o.number("bodies", "bodies", c.bodies, 64, 1 << 24);
  o.number("steps", "time steps", c.steps, 1, 1 << 20);
  o.number("seed", "random seed", c.seed, 0, UINT64_MAX);
  o.flag("quick", "a short run (2000 bodies, 2 steps)", c.quick);
  o.parse(argc, argv);
  if (c.quick) {
    c.bodies = 2000;
    c.steps = 2;
  }
  return c;
}

struct Body {
  double pos[3], vel[3], acc[3];
  double mass;
  double pad[2];
};

// A cell of the octree. kind[i]: 0 empty, 1 a body, 2 a cell.
struct Cell {
  double center[3];
  double half;
  double com[3];
  double mass;
  void* child[8];
  uint8_t kind[8];
  uint64_t count;
};

uint64_t g_cells = 0;

Cell* new_cell(const double center[3], double half) {
  ++g_cells;
  Cell* c = static_cast<Cell*>(classic::xmalloc(kProgram, sizeof(Cell)));
  for (int d = 0; d < 3; ++d) c->center[d] = center[d];
  c->half = half;
  c->mass = 0;
  c->count = 0;
  for (int i = 0; i < 8; ++i) {
    c->child[i] = nullptr;
    c->kind[i] = 0;
  }
  return c;
}

int octant(const Cell* c, const double p[3]) {
  return (p[0] >= c->center[0]) | (p[1] >= c->center[1]) << 1 | (p[2] >= c->center[2]) << 2;
}

void child_center(const Cell* c, int oct, double out[3]) {
  for (int d = 0; d < 3; ++d) out[d] = c->center[d] + ((oct >> d) & 1 ? 0.5 : -0.5) * c->half;
}

void insert(Cell* c, Body* b, int depth) {
  if (depth > 64) perfw::die(kProgram, "octree too deep (coincident bodies?)");
  int o = octant(c, b->pos);
  if (c->kind[o] == 0) {
    c->child[o] = b;
    c->kind[o] = 1;
  } else if (c->kind[o] == 1) {
    Body* other = static_cast<Body*>(c->child[o]);
    double cc[3];
    child_center(c, o, cc);
    Cell* sub = new_cell(cc, c->half / 2);
    c->child[o] = sub;
    c->kind[o] = 2;
    insert(sub, other, depth + 1);
    insert(sub, b, depth + 1);
  } else {
    insert(static_cast<Cell*>(c->child[o]), b, depth + 1);
  }
}

void summarise(Cell* c) {
  double m = 0, com[3] = {0, 0, 0};
  uint64_t count = 0;
  for (int i = 0; i < 8; ++i) {
    if (c->kind[i] == 1) {
      const Body* b = static_cast<const Body*>(c->child[i]);
      m += b->mass;
      for (int d = 0; d < 3; ++d) com[d] += b->mass * b->pos[d];
      ++count;
    } else if (c->kind[i] == 2) {
      Cell* s = static_cast<Cell*>(c->child[i]);
      summarise(s);
      m += s->mass;
      for (int d = 0; d < 3; ++d) com[d] += s->mass * s->com[d];
      count += s->count;
    }
  }
  c->mass = m;
  c->count = count;
  for (int d = 0; d < 3; ++d) c->com[d] = m > 0 ? com[d] / m : c->center[d];
}

void pull(const double from[3], const double to[3], double mass, double acc[3]) {
  double dx = to[0] - from[0], dy = to[1] - from[1], dz = to[2] - from[2];
  double r2 = dx * dx + dy * dy + dz * dz + kSoft2;
  double inv = mass / (r2 * std::sqrt(r2));
  acc[0] += dx * inv;
  acc[1] += dy * inv;
  acc[2] += dz * inv;
}

void force(const Cell* c, const Body* b, double acc[3]) {
  for (int i = 0; i < 8; ++i) {
    if (c->kind[i] == 1) {
      const Body* o = static_cast<const Body*>(c->child[i]);
      if (o != b) pull(b->pos, o->pos, o->mass, acc);
    } else if (c->kind[i] == 2) {
      const Cell* s = static_cast<const Cell*>(c->child[i]);
      double dx = s->com[0] - b->pos[0], dy = s->com[1] - b->pos[1], dz = s->com[2] - b->pos[2];
      double dist2 = dx * dx + dy * dy + dz * dz;
      double size = 2 * s->half;
      if (size * size < kTheta * kTheta * dist2)
        pull(b->pos, s->com, s->mass, acc);
      else
        force(s, b, acc);
    }
  }
}

void release(Cell* c) {
  for (int i = 0; i < 8; ++i)
    if (c->kind[i] == 2) release(static_cast<Cell*>(c->child[i]));
  std::free(c);
}

Cell* build(const std::vector<Body*>& bodies) {
  double lo[3] = {1e300, 1e300, 1e300}, hi[3] = {-1e300, -1e300, -1e300};
  for (const Body* b : bodies)
    for (int d = 0; d < 3; ++d) {
      lo[d] = std::min(lo[d], b->pos[d]);
      hi[d] = std::max(hi[d], b->pos[d]);
    }
  double center[3], half = 0;
  for (int d = 0; d < 3; ++d) {
    center[d] = (lo[d] + hi[d]) / 2;
    half = std::max(half, (hi[d] - lo[d]) / 2);
  }
  Cell* root = new_cell(center, half * 1.0001 + 1e-12);
  for (Body* b : bodies) insert(root, b, 0);
  summarise(root);
  return root;
}

double unit(perfw::Rng& rng) {
  return static_cast<double>(rng.next() >> 11) / 9007199254740992.0;
}

}  // namespace

int main(int argc, char** argv) {
  const Config c = parse(argc, argv);
  std::string origin = perfw::checked_malloc_origin(kProgram);
  perfw::Rng rng(c.seed);
  classic::Report rep;

  double t0 = perfw::now_seconds();
  // Bodies in 4-8 clusters, each a ball of random radius; masses sum to 1.
  std::vector<Body*> bodies(c.bodies);
  uint64_t clusters = 4 + rng.below(5);
  std::vector<std::array<double, 4>> centers(clusters);
  for (auto& k : centers)
    k = {unit(rng) * 4 - 2, unit(rng) * 4 - 2, unit(rng) * 4 - 2, 0.2 + unit(rng) * 0.6};
  for (uint64_t i = 0; i < c.bodies; ++i) {
    Body* b = static_cast<Body*>(classic::xmalloc(kProgram, sizeof(Body)));
    const auto& k = centers[rng.below(clusters)];
    double p[3];
    do {
      for (double& v : p) v = unit(rng) * 2 - 1;
    } while (p[0] * p[0] + p[1] * p[1] + p[2] * p[2] > 1);
    for (int d = 0; d < 3; ++d) {
      b->pos[d] = k[d] + k[3] * p[d];
      b->vel[d] = (unit(rng) - 0.5) * 0.1;
      b->acc[d] = 0;
    }
    b->mass = 1.0 / static_cast<double>(c.bodies);
    bodies[i] = b;
  }

  double median_error = 0;
  for (uint64_t step = 0; step < c.steps; ++step) {
    Cell* root = build(bodies);
    if (root->count != c.bodies || std::fabs(root->mass - 1.0) > 1e-9)
      perfw::die(kProgram, "the octree lost bodies or mass");
    for (Body* b : bodies) {
      double acc[3] = {0, 0, 0};
      force(root, b, acc);
      for (int d = 0; d < 3; ++d) b->acc[d] = acc[d];
    }
    if (step + 1 == c.steps) {  // check the tree's forces against a direct sum
      std::vector<double> errors;
      for (int s = 0; s < 32; ++s) {
        const Body* b = bodies[(static_cast<uint64_t>(s) * 7919) % c.bodies];
        double direct[3] = {0, 0, 0};
        for (const Body* o : bodies)
          if (o != b) pull(b->pos, o->pos, o->mass, direct);
        double num = 0, den = 0;
        for (int d = 0; d < 3; ++d) {
          num += (b->acc[d] - direct[d]) * (b->acc[d] - direct[d]);
          den += direct[d] * direct[d];
        }
        errors.push_back(std::sqrt(num / den));
      }
      median_error = perfw::median_of(errors);
      if (!(median_error < 0.02)) perfw::die(kProgram, "tree forces disagree with a direct sum");
    }
    release(root);
    for (Body* b : bodies)
      for (int d = 0; d < 3; ++d) {
        b->vel[d] += b->acc[d] * kDt;
        b->pos[d] += b->vel[d] * kDt;
      }
  }
  double sum = 0;
  for (Body* b : bodies) {
    sum += std::fabs(b->pos[0]) + std::fabs(b->pos[1]) + std::fabs(b->pos[2]);
    std::free(b);
  }
  rep.seconds = perfw::now_seconds() - t0;
  rep.checksum = static_cast<uint64_t>(sum * 1e6);

  classic::print_report(origin, rep);
  std::printf("bodies=%" PRIu64 "\nsteps=%" PRIu64 "\ncells=%" PRIu64 "\n", c.bodies, c.steps,
              g_cells);
  std::printf("force_error_median=%.6f\n", median_error);
  return 0;
}
