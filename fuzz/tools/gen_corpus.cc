// Writes the committed seed corpus of the fuzz harness (fuzz/corpus/seed-*), deterministically:
// hand-written scenarios that reach each part of the heap, plus a few pseudo-random mixes from
// fixed seeds.
//   mesh-fuzz-gen-corpus DIR           (re)writes DIR/seed-*
//   mesh-fuzz-gen-corpus --check DIR   exit 1 unless DIR/seed-* are exactly what would be written
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "harness/rng.h"
#include "miniheap/size_classes.h"
#include "model/ops.h"

namespace fs = std::filesystem;
using mesh::model::InputFlags;
using mesh::model::Op;
using mesh::model::OpKind;

namespace {

struct Seed {
  std::string name;
  InputFlags flags;
  std::vector<Op> ops;
};

Op op(OpKind kind, uint32_t size = 0, uint16_t target = 0, uint8_t arg = 0, uint8_t alignLog2 = 4) {
  Op o;
  o.kind = kind;
  o.size = size;
  o.target = target;
  o.arg = arg;
  o.alignLog2 = alignLog2;
  return o;
}

uint32_t classSize(int cls) { return mesh::sizeClass(cls).size; }

std::vector<Op> everyClass() {
  std::vector<Op> ops;
  for (int c = 0; c < mesh::kNumClasses; ++c) ops.push_back(op(OpKind::kMalloc, classSize(c)));
  for (int c = 0; c < mesh::kNumClasses; ++c) ops.push_back(op(OpKind::kUsableSize, 0, c));
  for (int c = 0; c < mesh::kNumClasses; ++c) ops.push_back(op(OpKind::kFree, 0, 0));
  return ops;
}

std::vector<Op> classBoundaries() {
  std::vector<Op> ops;
  for (int c = 0; c < mesh::kNumClasses; ++c) {
    ops.push_back(op(OpKind::kMalloc, classSize(c) - 1));
    ops.push_back(op(OpKind::kMalloc, classSize(c) + 1));
  }
  ops.push_back(op(OpKind::kMalloc, 0));
  ops.push_back(op(OpKind::kMalloc, 16385));
  ops.push_back(op(OpKind::kFreeEvery, 0, 0, 0));
  ops.push_back(op(OpKind::kCompact, 0, 0, 1));
  return ops;
}

std::vector<Op> reallocLadder() {
  std::vector<Op> ops{op(OpKind::kMalloc, 1)};
  for (uint32_t s : {8u, 24u, 100u, 1000u, 4096u, 16384u, 16385u, 70000u, 1u << 20, 4u << 20,
                     3u << 20, 100000u, 20000u, 16384u, 5000u, 64u, 1u}) {
    ops.push_back(op(OpKind::kRealloc, s, 0));
    ops.push_back(op(OpKind::kUsableSize, 0, 0));
  }
  ops.push_back(op(OpKind::kRealloc, 0, 0));  // realloc(p, 0) frees
  ops.push_back(op(OpKind::kRealloc, 300));   // realloc(NULL, 300)
  return ops;
}

std::vector<Op> alignedAll() {
  std::vector<Op> ops;
  for (uint8_t lg = mesh::model::kMinAlignLog2; lg <= mesh::model::kMaxAlignLog2; ++lg) {
    ops.push_back(op(OpKind::kAligned, 1, 0, 0, lg));
    ops.push_back(op(OpKind::kAligned, 3000, 0, 0, lg));
    ops.push_back(op(OpKind::kAligned, 40000, 0, 0, lg));
  }
  ops.push_back(op(OpKind::kAligned, 0, 0, 0, 16));
  ops.push_back(op(OpKind::kFreeEvery, 0, 1, 0));
  ops.push_back(op(OpKind::kRealloc, 20000, 3));
  return ops;
}

std::vector<Op> callocRecycled() {
  std::vector<Op> ops;
  for (uint32_t s : {48u, 2000u, 16384u, 50000u, 2u << 20}) {
    ops.push_back(op(OpKind::kAllocMany, s, 0, 7));
    ops.push_back(op(OpKind::kFreeEvery, 0, 0, 0));
    ops.push_back(op(OpKind::kCalloc, s, 0, 3));
    ops.push_back(op(OpKind::kCalloc, s, 0, 0));
  }
  return ops;
}

std::vector<Op> handOff() {
  std::vector<Op> ops{op(OpKind::kAllocMany, 256, 0, 63)};
  for (uint16_t t = 0; t < 24; ++t) ops.push_back(op(OpKind::kHandOff, 0, static_cast<uint16_t>(t * 7)));
  for (uint32_t s : {16u, 256u, 8192u, 100000u}) ops.push_back(op(OpKind::kRemoteAlloc, s));
  ops.push_back(op(OpKind::kFreeEvery, 0, 0, 1));
  ops.push_back(op(OpKind::kCompact, 0, 0, 0));
  return ops;
}

std::vector<Op> retiredThread() {
  std::vector<Op> ops;
  for (int i = 0; i < 40; ++i) ops.push_back(op(OpKind::kRemoteAlloc, 64 + 16 * (i % 8)));
  ops.push_back(op(OpKind::kRetireThread));
  ops.push_back(op(OpKind::kFreeEvery, 0, 0, 1));
  ops.push_back(op(OpKind::kRemoteAlloc, 64));
  ops.push_back(op(OpKind::kHandOff, 0, 5));
  ops.push_back(op(OpKind::kCompact, 0, 0, 1));
  return ops;
}

// Many partly used spans of one class: what meshing works on.
std::vector<Op> fragmentAndCompact(uint32_t size) {
  std::vector<Op> ops;
  for (int i = 0; i < 8; ++i) ops.push_back(op(OpKind::kAllocMany, size, 0, 127));
  ops.push_back(op(OpKind::kFreeEvery, 0, 0, 1));  // stride 3
  ops.push_back(op(OpKind::kFreeEvery, 0, 1, 0));  // stride 2
  ops.push_back(op(OpKind::kCompact, 0, 0, 1));
  ops.push_back(op(OpKind::kAllocMany, size, 0, 31));
  ops.push_back(op(OpKind::kCompact, 0, 0, 0));
  ops.push_back(op(OpKind::kRealloc, size * 2, 11));
  return ops;
}

std::vector<Op> oversizeAll() {
  std::vector<Op> ops{op(OpKind::kMalloc, 100)};
  for (uint8_t v = 0; v < 7; ++v) ops.push_back(op(OpKind::kOversize, 0, 0, v));
  ops.push_back(op(OpKind::kMalloc, 100));
  return ops;
}

std::vector<Op> mixed(uint64_t seed, int count) {
  // A fixed-seed generator (splitmix64, modulo reduction) for the mixed sequences.
  harness::ModuloRng rng(seed);
  std::vector<Op> ops;
  for (int i = 0; i < count; ++i) {
    Op o;
    o.kind = static_cast<OpKind>(rng.below(mesh::model::kOpKindCount));
    if (o.kind == OpKind::kRetireThread && rng.below(4) != 0) o.kind = OpKind::kMalloc;
    // One draw per statement: argument evaluation order differs between compilers.
    uint8_t selector = static_cast<uint8_t>(rng.below(8));
    uint32_t value = rng.below(1u << 24);
    o.size = mesh::model::decodeSize(selector, value);
    o.alignLog2 = static_cast<uint8_t>(4 + rng.below(13));
    o.arg = static_cast<uint8_t>(rng.below(256));
    o.target = static_cast<uint16_t>(rng.below(65536));
    if (o.kind == OpKind::kAllocMany) o.arg %= 16;  // keep seeds quick
    ops.push_back(mesh::model::normalized(o));
  }
  return ops;
}

std::vector<Seed> seeds() {
  std::vector<Seed> s;
  s.push_back({"every-class", {}, everyClass()});
  s.push_back({"class-boundaries", {}, classBoundaries()});
  s.push_back({"realloc-ladder", {}, reallocLadder()});
  s.push_back({"aligned-all", {}, alignedAll()});
  s.push_back({"calloc-recycled", {}, callocRecycled()});
  s.push_back({"hand-off", {}, handOff()});
  s.push_back({"retired-thread", {}, retiredThread()});
  s.push_back({"fragment-compact-64", {}, fragmentAndCompact(64)});
  s.push_back({"fragment-compact-1024", {}, fragmentAndCompact(1024)});
  s.push_back({"fragment-compact-anon", {true, 3}, fragmentAndCompact(256)});
  s.push_back({"oversize-all", {}, oversizeAll()});
  for (int i = 0; i < 16; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "mixed-%02d", i);
    InputFlags flags{i % 5 == 4, static_cast<uint8_t>(i)};
    s.push_back({name, flags, mixed(1000 + i, 40 + 20 * (i % 6))});
  }
  return s;
}

std::vector<uint8_t> readFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
  bool check = argc == 3 && std::strcmp(argv[1], "--check") == 0;
  if (!(argc == 2 && argv[1][0] != '-') && !check) {
    std::fprintf(stderr, "usage: mesh-fuzz-gen-corpus [--check] DIR\n");
    return 2;
  }
  fs::path dir = argv[argc - 1];
  std::set<std::string> expected;
  int stale = 0;
  for (const Seed& s : seeds()) {
    std::vector<uint8_t> bytes = mesh::model::encodeOps(s.flags, s.ops);
    std::string file = "seed-" + s.name;
    expected.insert(file);
    if (check) {
      if (readFile(dir / file) != bytes) {
        std::fprintf(stderr, "mesh-fuzz-gen-corpus: %s is missing or differs\n", file.c_str());
        ++stale;
      }
      continue;
    }
    std::ofstream out(dir / file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "mesh-fuzz-gen-corpus: cannot write %s\n", (dir / file).c_str());
      return 1;
    }
  }
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind("seed-", 0) == 0 && expected.count(name) == 0) {
      std::fprintf(stderr, "mesh-fuzz-gen-corpus: %s is not generated any more\n", name.c_str());
      ++stale;
    }
  }
  if (check && stale != 0) {
    std::fprintf(stderr, "mesh-fuzz-gen-corpus: regenerate with: mesh-fuzz-gen-corpus %s\n",
                 dir.c_str());
    return 1;
  }
  std::printf("mesh-fuzz-gen-corpus: %zu seeds %s\n", expected.size(), check ? "up to date" : "written");
  return 0;
}
